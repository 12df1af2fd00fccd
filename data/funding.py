"""Funding rates of BTC perpetual swaps: download (ccxt), CSV import, and the schedule the engines
charge.

* :func:`download_funding` fills the store (:meth:`data.store.DataStore.write_funding`) through
  ccxt's unified ``fetchFundingRateHistory``, page by page from the last stored event (resumable;
  every page is merged atomically as it arrives), with the same bounded retries as the candle
  downloader and a progress bar. Tested exchanges: binance (USDT-M ``BTC/USDT:USDT``) and bybit
  (linear ``BTC/USDT:USDT``).
* :func:`read_funding_csv` reads a CSV of ``timestamp,funding_rate`` (ISO times or epoch ms;
  Binance's ``fundingTime,fundingRate`` export and ccxt's ``timestamp,fundingRate`` also work).
* :func:`funding_schedule` turns real funding events into what
  :class:`backtests.config.BacktestConfig` charges: rates on the 8-hour grid (00/08/16 UTC). An
  event between grid times (venues with 4 h or 1 h funding) is charged at the next grid time,
  never before it happened; grid times before the series starts or after it ends get the constant
  ``fallback`` rate.

Rates are fractions of notional per funding event; longs pay when positive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data.download import fetch_with_retries, make_exchange
from data.frame import DataError
from data.store import DataStore

__all__ = ["FUNDING_EXCHANGES", "FUNDING_GRID", "FundingResult", "download_funding",
           "funding_schedule", "looks_like_funding_csv", "perpetual_symbol", "read_funding_csv",
           "store_funding", "stored_funding"]

FUNDING_EXCHANGES: tuple[str, ...] = ("binance", "bybit")
FUNDING_GRID = pd.Timedelta(hours=8)
#: Binance's BTCUSDT perpetual started funding on 2019-09-10; nothing older exists anywhere.
FUNDING_GENESIS = pd.Timestamp("2019-09-01", tz="UTC")
_PAGE = {"binance": 1000, "bybit": 200}  # the endpoints' documented maximum page sizes
_MAX_RATE = 0.1  # |rate| per event above 10 % is not a funding rate (a percent typed as such?)


def perpetual_symbol(exchange: str) -> str:
    """The BTC perpetual whose funding is downloaded from ``exchange`` by default."""
    return "BTC/USDT:USDT"


def _perpetual_market(exchange: str, symbol: str) -> dict[str, Any] | None:
    """A ccxt market entry for the BTC/USDT linear perpetual (no load_markets download)."""
    if symbol.upper() != "BTC/USDT:USDT" or exchange not in FUNDING_EXCHANGES:
        return None
    return {"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT",
            "settle": "USDT", "baseId": "BTC", "quoteId": "USDT", "settleId": "USDT",
            "type": "swap", "spot": False, "margin": False, "swap": True, "future": False,
            "option": False, "contract": True, "linear": True, "inverse": False,
            "contractSize": 1.0, "active": True, "precision": {}, "limits": {},
            "info": {"fundingInterval": 480}}


@dataclass
class FundingResult:
    """What :func:`download_funding` did: events added, the stored span, requests made."""

    exchange: str
    symbol: str
    path: str
    added: int = 0
    rows: int = 0
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    requests: int = 0
    retries: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line (plus notes)."""
        span = (f"{self.start:%Y-%m-%d %H:%M} -> {self.end:%Y-%m-%d %H:%M}"
                if self.start is not None else "empty")
        lines = [f"{self.exchange} {self.symbol} funding: {self.added} new rate(s), {self.rows} "
                 f"stored ({span}) in {self.path}"]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _check_rates(s: pd.Series, where: str) -> pd.Series:
    if s.index.has_duplicates:
        raise DataError(f"{where}: two funding rates for {s.index[s.index.duplicated()][0]}",
                        hint="keep one rate per funding time")
    if not s.index.is_monotonic_increasing:
        s = s.sort_index()
    bad = ~np.isfinite(s.to_numpy()) | (np.abs(s.to_numpy()) >= _MAX_RATE)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: funding rate {s.iloc[i]!r} at {s.index[i]} is not a rate "
                        f"(a fraction of notional, |rate| < {_MAX_RATE})",
                        hint="0.0001 = 0.01 % per funding event")
    return s


def _merge(old: pd.Series | None, new: pd.Series, where: str) -> pd.Series:
    """Union of two rate series; the same time with two different rates is refused."""
    if old is None or old.empty:
        return new
    common = old.index.intersection(new.index)
    diff = common[old.loc[common].to_numpy() != new.loc[common].to_numpy()]
    if len(diff):
        raise DataError(f"{where}: conflicting funding rates for {diff[0]} (stored "
                        f"{old.loc[diff[0]]!r}, new {new.loc[diff[0]]!r})",
                        hint="one source is wrong; store it under another exchange name")
    out = pd.concat([old, new[~new.index.isin(old.index)]]).sort_index()
    out.name = "funding_rate"
    return out


def store_funding(store: DataStore, rates: pd.Series, exchange: str, symbol: str,
                  source: str) -> pd.Series:
    """Merge ``rates`` into the stored series for (exchange, symbol); returns the merged one."""
    path = store.funding_path(exchange, symbol)
    # Under the series lock: a concurrent import or download merges after this one, not over it.
    with store.funding_lock(exchange, symbol):
        old = store.read_funding(exchange, symbol) if path.exists() else None
        merged = _merge(old, _check_rates(rates, source), str(path))
        store.write_funding(merged, exchange, symbol, source=source, locked=True)
    return merged


_TIME_COLS = ("timestamp", "fundingtime", "funding_time", "time", "calc_time", "date")
_RATE_COLS = ("funding_rate", "fundingrate", "rate", "last_funding_rate")


def looks_like_funding_csv(path: str | Path) -> bool:
    """Whether the first line of ``path`` names a funding-rate column (cheap sniff)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.readline()
    except OSError:
        return False
    names = {re.sub(r"\s+", "", c).strip('"').lower() for c in head.split(",")}
    return bool(names & {"funding_rate", "fundingrate"})


def read_funding_csv(path: str | Path) -> pd.Series:
    """A funding CSV as a Series of rates indexed by event time (UTC).

    Columns (case-insensitive): a time (``timestamp``, ``fundingTime``, ``time``, ...; ISO text
    or epoch milliseconds) and a rate (``funding_rate``, ``fundingRate``, ``rate``; a fraction,
    e.g. 0.0001). Raises :class:`DataError` naming the file and what to fix."""
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read funding file {path}: {exc}") from None
    cols = {re.sub(r"\s+", "", c).lower(): c for c in raw.columns}
    tcol = next((cols[c] for c in _TIME_COLS if c in cols), None)
    rcol = next((cols[c] for c in _RATE_COLS if c in cols), None)
    if tcol is None or rcol is None or raw.empty:
        raise DataError(f"{path.name} is not a funding-rate CSV (columns: "
                        f"{', '.join(map(str, raw.columns))})",
                        hint="columns timestamp,funding_rate (ISO time or epoch ms; rate as a "
                             "fraction, 0.0001 = 0.01 %)")
    t = raw[tcol]
    try:
        if pd.api.types.is_numeric_dtype(t):
            idx = pd.to_datetime(t.astype(np.int64), unit="ms", utc=True)
        else:
            idx = pd.to_datetime(t, utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError):
        raise DataError(f"{path.name}: column {tcol!r} holds no times",
                        hint="ISO times (2024-01-01T08:00:00Z) or epoch milliseconds") from None
    rates = pd.to_numeric(raw[rcol], errors="coerce")
    if rates.isna().any():
        row = int(np.flatnonzero(rates.isna().to_numpy())[0])
        raise DataError(f"{path.name}: row {row + 2} has no numeric funding rate "
                        f"({raw[rcol].iloc[row]!r})", hint="one rate per line, e.g. 0.0001")
    out = pd.Series(rates.to_numpy(np.float64), index=pd.DatetimeIndex(idx).as_unit("ns"),
                    name="funding_rate")
    out.index.name = "timestamp"
    out = _check_rates(out, path.name)
    out.attrs["source"] = f"import of {path.name}"
    return out


def funding_schedule(rates: pd.Series, index: pd.DatetimeIndex, timeframe: pd.Timedelta,
                     fallback: float = 0.0) -> pd.Series:
    """Rates on the 8-hour grid for bars ``index`` (each ``timeframe`` long), as
    :class:`backtests.config.BacktestConfig` takes them (forward-filled between grid times).

    An event at a grid time stays there; one between grid times is charged at the next grid time
    (summed with the rate due there). Grid times in the bars' span without any event before the
    series' first or after its last event get ``fallback``; inside the span, a grid time without
    an event pays nothing. Returns the schedule from the first bar's open, one entry per change
    of rate (forward-filled by the config, so equal consecutive rates are dropped).
    """
    step = FUNDING_GRID.value
    t0 = index[0].value // step * step
    t1 = -(-(index[-1].value + timeframe.value) // step) * step
    grid = np.arange(t0, t1 + 1, step, dtype=np.int64)
    ev = rates.index.as_unit("ns").asi8
    due = -(-ev // step) * step  # ceil to the grid: never charged before it happened
    summed = pd.Series(rates.to_numpy(np.float64)).groupby(due).sum()
    out = np.full(len(grid), float(fallback))
    inside = (grid >= due.min()) & (grid <= due.max()) if len(due) else np.zeros(len(grid), bool)
    out[inside] = 0.0  # inside the series' span a grid time without an event pays nothing
    pos = np.searchsorted(grid, summed.index.to_numpy())
    ok = (pos < len(grid)) & (grid[np.minimum(pos, len(grid) - 1)] == summed.index.to_numpy())
    out[pos[ok]] = summed.to_numpy()[ok]
    # the config forward-fills its Series: keep only the grid times where the rate changes
    keep = np.r_[True, out[1:] != out[:-1]]
    sched = pd.Series(out[keep], index=pd.DatetimeIndex(grid[keep], tz="UTC").as_unit("ns"),
                      name="funding_rate")
    sched.attrs["source"] = rates.attrs.get("source", "funding series")
    return sched


def download_funding(exchange: str = "binance", symbol: str | None = None,
                     since: str | pd.Timestamp | None = None, store: DataStore | None = None,
                     progress: bool = True, *, retries: int = 5, backoff: float = 1.0,
                     timeout: float = 10.0, page_size: int | None = None,
                     now: pd.Timestamp | None = None) -> FundingResult:
    """Download (or extend) a perpetual's funding-rate history into the store.

    Resumes after the last stored event (``since`` only matters for a new series; default: the
    first BTC perpetual funding, 2019-09). Transient failures (timeouts, 429, 5xx) are retried
    ``retries`` times with exponential backoff; then :class:`DownloadError` says what was saved.

    Raises:
        DataError: an exchange without funding history, or a bad symbol.
        DownloadError / ExchangeUnreachableError: as :func:`data.download.download`.
    """
    # ccxt takes ~1 s to import: only when downloading (as data.download does)
    import ccxt
    from tqdm.auto import tqdm

    eid = exchange.strip().lower()
    symbol = (symbol or perpetual_symbol(eid)).upper()
    store = store if store is not None else DataStore()
    client = make_exchange(eid, symbol, timeout=timeout,
                           market=_perpetual_market(eid, symbol), need="fetchFundingRateHistory")
    limit = min(int(page_size), _PAGE.get(eid, 100)) if page_size else _PAGE.get(eid, 100)
    now_ts = _utc(now, "now") if now is not None else pd.Timestamp.now(tz="UTC")
    path = store.funding_path(eid, symbol)
    stored = store.read_funding(eid, symbol) if path.exists() else None
    if stored is not None and len(stored):
        cursor = stored.index[-1] + pd.Timedelta(milliseconds=1)
    else:
        cursor = _utc(since, "--since") if since is not None else FUNDING_GENESIS
    res = FundingResult(eid, symbol, str(path))
    source = f"{eid} {symbol} funding via ccxt {ccxt.__version__}"
    bar = tqdm(total=max(0, int((now_ts - cursor) / FUNDING_GRID)), unit="rate",
               desc=f"{eid} {symbol} funding", disable=not progress, leave=False)
    first = True
    try:
        while cursor < now_ts:
            since_ms = int(cursor.value // 1_000_000)
            # an explicit window of `limit` grid periods: bybit answers the newest `limit` events
            # of [start, end], and ccxt's default end (start + limit periods, inclusive) can hold
            # limit + 1 of them, which would silently drop the oldest
            until_ms = since_ms + limit * (FUNDING_GRID.value // 1_000_000) - 1
            rows = fetch_with_retries(
                lambda a=since_ms, b=until_ms: client.fetch_funding_rate_history(
                    symbol, since=a, limit=limit, params={"until": b}),
                client=client, what=f"{symbol} funding",
                at=f"rates from {cursor.isoformat()}",
                retries=retries, backoff=backoff, stats=res, first_request=first,
                saved=lambda: _saved(res, store))
            first = False
            rows = [r for r in rows if r.get("timestamp") is not None
                    and since_ms <= r["timestamp"] <= min(until_ms, now_ts.value // 1_000_000)]
            if not rows:
                # nothing in this window (before the contract existed, or a pause): next one
                cursor = pd.Timestamp(until_ms + 1, unit="ms", tz="UTC")
                continue
            times = pd.to_datetime([r["timestamp"] for r in rows], unit="ms", utc=True)
            page = pd.Series([float(r["fundingRate"]) for r in rows],
                             index=pd.DatetimeIndex(times).as_unit("ns"), name="funding_rate")
            page = page[~page.index.duplicated()]
            before = len(stored) if stored is not None else 0
            stored = store_funding(store, page, eid, symbol, source)
            res.added += len(stored) - before
            bar.update(len(stored) - before)
            # a full page may end before the window does: continue right after its last event
            full = len(rows) >= limit
            cursor = (page.index[-1] + pd.Timedelta(milliseconds=1) if full
                      else pd.Timestamp(until_ms + 1, unit="ms", tz="UTC"))
    finally:
        bar.close()
    _totals(res, store)
    return res


#: Where :func:`stored_funding` looks, in order: the venues downloaded by default, then imports.
STORE_PREFERENCE: tuple[tuple[str, str], ...] = (("binance", "BTC/USDT:USDT"),
                                                  ("bybit", "BTC/USDT:USDT"),
                                                  ("imported", "BTC/USDT:USDT"))


def stored_funding(store: DataStore) -> pd.Series | None:
    """The first funding series found in ``store`` (see :data:`STORE_PREFERENCE`), or None;
    ``attrs["source"]`` names it."""
    for exchange, symbol in STORE_PREFERENCE:
        if store.funding_path(exchange, symbol).exists():
            rates = store.read_funding(exchange, symbol)
            rates.attrs["source"] = f"{exchange} {symbol} funding ({rates.attrs['source']})"
            return rates
    return None


def _utc(value: object, what: str) -> pd.Timestamp:
    """``value`` (date text, Timestamp or epoch nanoseconds) as a UTC timestamp."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise DataError(f"{what} {value!r} is not a date", hint="use YYYY-MM-DD") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _totals(res: FundingResult, store: DataStore) -> None:
    if store.funding_path(res.exchange, res.symbol).exists():
        s = store.read_funding(res.exchange, res.symbol)
        res.rows, res.start, res.end = len(s), s.index[0], s.index[-1]


def _saved(res: FundingResult, store: DataStore) -> str:
    _totals(res, store)
    if not res.rows:
        return "nothing was saved"
    return (f"saved so far: {res.rows} rate(s) up to {res.end.isoformat()} ({res.added} new) "
            f"in {res.path}")

