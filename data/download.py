"""Download candles from exchanges' public OHLCV endpoints (through ccxt, no API key).

:func:`download` fills the local :class:`~data.store.DataStore` page by page:

* **incremental**: it resumes after the last stored candle, so re-running the same command after an
  interruption (or a day later) fetches only what is missing; no duplicates are ever stored;
* **safe**: every page is merged into the store atomically as soon as it arrives, so an
  interruption loses nothing already fetched;
* **honest**: the still-forming last candle (open time + timeframe > now) is dropped, and a hole the
  exchange really has is reported in :attr:`DownloadResult.gaps`, never filled;
* **polite**: ccxt's rate limiter is on; timeouts, 429s and 5xx answers are retried with
  exponential backoff a bounded number of times, then a :class:`DownloadError` says what was
  saved and that re-running resumes.

Markets: ccxt normally calls ``load_markets()`` first, which downloads every market of the exchange
(megabytes, several requests). For the well-known BTC pairs of the supported exchanges the market
entry is built here from the exchange's documented pair id and passed in with
``exchange.set_markets``; any other symbol falls back to ``load_markets()``, which also
validates it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from data.frame import OHLCV, DataError, parse_timeframe
from data.store import DataStore, Gap, find_gaps

SUPPORTED_EXCHANGES: tuple[str, ...] = ("binance", "bitstamp", "coinbase", "kraken")
DEFAULT_SYMBOLS: dict[str, str] = {
    "binance": "BTC/USDT",
    "bitstamp": "BTC/USD",
    "coinbase": "BTC/USD",
    "kraken": "BTC/USD",
}
# Where to start when nothing is stored and no --since is given: the Bitcoin genesis block.
GENESIS = pd.Timestamp("2009-01-03", tz="UTC")

# Exchange pair ids of the usual BTC markets (from each exchange's API documentation).
_KRAKEN_IDS = {
    "BTC/USD": "XXBTZUSD",
    "BTC/EUR": "XXBTZEUR",
    "BTC/GBP": "XXBTZGBP",
    "BTC/CAD": "XXBTZCAD",
    "BTC/JPY": "XXBTZJPY",
    "BTC/USDT": "XBTUSDT",
    "BTC/USDC": "XBTUSDC",
}
_FIAT_AND_STABLE = ("USD", "USDT", "USDC", "EUR", "GBP", "BUSD", "FDUSD", "TUSD", "DAI")

# ccxt maps these to a different bar length (bitstamp "1w" -> 3 days, kraken "2w" -> 15 days).
_BROKEN_TIMEFRAMES = {("bitstamp", "1w"), ("kraken", "2w")}

OFFLINE_HINT = (
    "to work offline, import a candle file instead: btc-backtest data import FILE. "
    "Files: Binance klines from https://data.binance.vision, Yahoo Finance BTC-USD history CSV "
    "(https://finance.yahoo.com/quote/BTC-USD/history), CryptoDataDownload CSVs "
    "(https://www.cryptodatadownload.com/data/), Bitstamp/Kaggle minute CSVs, or a TradingView "
    "chart export"
)


class DownloadError(DataError):
    """A download that could not finish; what was fetched before the failure is stored."""


class ExchangeUnreachableError(DownloadError):
    """The exchange could not be reached at all (offline, DNS failure, connection refused)."""


@dataclass
class DownloadResult:
    """What a :func:`download` call did.

    ``added`` counts candles new to the store; ``rows``/``start``/``end`` describe the whole stored
    series afterwards; ``gaps`` lists holes the exchange has in the fetched range as
    ``(first_missing_open, last_missing_open, n_bars)``; ``dropped_forming`` is the open time of
    the still-forming candle that was not stored; ``requests`` counts HTTP requests (retries
    included).
    """

    exchange: str
    symbol: str
    timeframe: str
    path: str
    added: int = 0
    rows: int = 0
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    gaps: list[Gap] = field(default_factory=list)
    dropped_forming: pd.Timestamp | None = None
    requests: int = 0
    retries: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One human-readable paragraph."""
        span = f"{_day(self.start)} -> {_day(self.end)}" if self.start is not None else "empty"
        lines = [
            f"{self.exchange} {self.symbol} {self.timeframe}: {self.added} new candle(s), "
            f"{self.rows} stored ({span}) in {self.path}"
        ]
        for first, last, n in self.gaps:
            lines.append(
                f"  hole at the exchange: {n} bar(s) missing {first.isoformat()} -> "
                f"{last.isoformat()} (not filled)"
            )
        if self.dropped_forming is not None:
            lines.append(f"  skipped the still-forming candle {self.dropped_forming.isoformat()}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _day(ts: pd.Timestamp | None) -> str:
    if ts is None:
        return "?"
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")


def default_symbol(exchange: str) -> str:
    """The BTC pair downloaded from ``exchange`` when no symbol is given."""
    return DEFAULT_SYMBOLS.get(exchange.lower(), "BTC/USDT")


def known_market(exchange: str, symbol: str) -> dict[str, Any] | None:
    """A ccxt market entry for a well-known spot pair, or None when ccxt must load markets."""
    base, _, quote = symbol.upper().partition("/")
    if not base or not quote or ":" in quote or quote not in _FIAT_AND_STABLE or base != "BTC":
        return None
    if exchange == "binance":
        market_id = base + quote
    elif exchange == "bitstamp":
        market_id = (base + quote).lower()
    elif exchange == "coinbase":
        market_id = f"{base}-{quote}"
    elif exchange == "kraken":
        market_id = _KRAKEN_IDS.get(f"{base}/{quote}")
    else:
        market_id = None
    if market_id is None:
        return None
    return {
        "id": market_id,
        "symbol": f"{base}/{quote}",
        "base": base,
        "quote": quote,
        "baseId": base,
        "quoteId": quote,
        "type": "spot",
        "spot": True,
        "margin": False,
        "swap": False,
        "future": False,
        "option": False,
        "contract": False,
        "linear": None,
        "inverse": None,
        "active": True,
    }


def make_exchange(exchange: str, symbol: str, *, timeout: float = 10.0,
                  market: dict[str, Any] | None = None, need: str = "fetchOHLCV") -> Any:
    """A ccxt exchange client with rate limiting on and, when possible, the market passed in.

    ``market`` (a ccxt market entry) is set instead of :func:`known_market`'s spot entry;
    ``need`` is the ccxt capability the caller uses.

    Raises:
        DataError: for an unknown exchange id or one without that capability.
    """
    import ccxt

    eid = exchange.strip().lower()
    if eid not in ccxt.exchanges:
        raise DataError(
            f"unknown exchange {exchange!r}",
            hint=f"use one of {', '.join(SUPPORTED_EXCHANGES)} (or another ccxt exchange id)",
        )
    client = getattr(ccxt, eid)({"enableRateLimit": True, "timeout": int(timeout * 1000)})
    if not client.has.get(need):
        what = "OHLCV candles" if need == "fetchOHLCV" else need
        raise DataError(
            f"{eid} offers no {what} through ccxt",
            hint=f"use one of {', '.join(SUPPORTED_EXCHANGES)}" if need == "fetchOHLCV"
            else "use binance or bybit",
        )
    market = market if market is not None else known_market(eid, symbol)
    if market is not None:
        client.set_markets([market])
    return client


def _page_limit(client: Any) -> int:
    feat = (getattr(client, "features", None) or {}).get("spot") or {}
    limit = (feat.get("fetchOHLCV") or {}).get("limit")
    return int(limit) if limit else 500


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def _to_ts(value: object, what: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"cannot parse {what} {value!r}", hint="use a date like 2020-01-31") \
            from exc
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def _unreachable(exc: BaseException) -> bool:
    """Whether a ccxt NetworkError was caused by failing to connect at all (not a slow answer)."""
    import requests

    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, requests.exceptions.ReadTimeout):
            return False
        if isinstance(cur, requests.exceptions.ConnectionError):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def download(
    exchange: str = "binance",
    symbol: str | None = None,
    timeframe: str = "1d",
    since: str | pd.Timestamp | None = None,
    until: str | pd.Timestamp | None = None,
    store: DataStore | None = None,
    progress: bool = True,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 10.0,
    page_size: int | None = None,
    now: pd.Timestamp | None = None,
) -> DownloadResult:
    """Download (or extend) one series into the store and return what was done.

    Args:
        exchange: ccxt exchange id; tested: binance, bitstamp, coinbase, kraken.
        symbol: unified pair; default BTC/USDT on binance, BTC/USD elsewhere.
        timeframe: candle length, e.g. ``"1d"``, ``"1h"``.
        since: first candle open time wanted (UTC) when nothing is stored yet; default: as far
            back as the exchange goes. With data stored, the download resumes after the last
            stored candle.
        until: stop before candles opening at or after this time (UTC); default: now.
        store: where to save (default :class:`DataStore` ``()``).
        progress: show a tqdm progress bar on stderr.
        retries: retries per request on timeouts, 429 and 5xx answers before giving up.
        backoff: first retry delay in seconds; doubled on each further retry (capped at 60 s).
        timeout: per-request timeout in seconds.
        page_size: candles per request (default and maximum: the exchange's own limit).
        now: the current time (for tests); candles still forming at ``now`` are never stored.

    Raises:
        ExchangeUnreachableError: the first request could not connect (offline).
        DownloadError: retries exhausted or the exchange refused the request; everything fetched
            before is stored, and re-running resumes.
        DataError: unknown exchange, symbol or timeframe.
    """
    import ccxt

    eid = exchange.strip().lower()
    symbol = (symbol or default_symbol(eid)).upper()
    store = store if store is not None else DataStore()
    step = parse_timeframe(timeframe)
    client = make_exchange(eid, symbol, timeout=timeout)
    if timeframe not in (client.timeframes or {}) or (eid, timeframe) in _BROKEN_TIMEFRAMES:
        offered = [t for t in (client.timeframes or {}) if (eid, t) not in _BROKEN_TIMEFRAMES]
        raise DataError(
            f"{eid} does not offer {timeframe} candles",
            hint=f"use one of {', '.join(offered)}, or download a finer timeframe and resample",
        )
    limit = _page_limit(client)
    if page_size is not None:
        limit = max(1, min(int(page_size), limit))
    now_ts = _to_ts(now, "now") if now is not None else pd.Timestamp.now(tz="UTC")
    since_ts = _to_ts(since, "--since")
    until_ts = _to_ts(until, "--until")
    end_ts = min(until_ts, now_ts) if until_ts is not None else now_ts
    step_ms = _ms(pd.Timestamp(0, tz="UTC") + step)

    path = store.path(eid, symbol, timeframe)
    last = store.last_timestamp(eid, symbol, timeframe)
    if last is not None:
        expected: pd.Timestamp | None = last + step
        if since_ts is not None and since_ts > expected:
            raise DataError(
                f"--since {since_ts.date()} is after the last stored candle {last.isoformat()} "
                f"+ {timeframe}; the store would get a hole",
                source=str(path),
                hint="omit --since to resume, or delete the stored file first",
            )
        cursor = expected
        first_stored = store.read(eid, symbol, timeframe).index[0]
        if since_ts is not None and since_ts < first_stored:
            notes = [
                f"--since {since_ts.isoformat()} is before the stored candles (from "
                f"{first_stored.isoformat()}); earlier candles are not backfilled: delete "
                f"{path} to download from --since"
            ]
        else:
            notes = []
    else:
        notes = []
        expected = None
        cursor = since_ts if since_ts is not None else GENESIS
    result = DownloadResult(eid, symbol, timeframe, str(path), notes=notes)
    source = f"{eid} {symbol} {timeframe} via ccxt {ccxt.__version__}"

    from tqdm.auto import tqdm

    bar = tqdm(
        total=max(0, int((end_ts - cursor) // step)),
        unit="candle",
        desc=f"{eid} {symbol} {timeframe}",
        disable=not progress,
        leave=False,
    )
    first_request = True
    try:
        while cursor < end_ts:
            rows = _fetch_page(
                client, symbol, timeframe, cursor, limit, retries, backoff, result,
                first_request, store,
            )
            first_request = False
            rows = [r for r in rows if r[0] is not None and r[0] >= _ms(cursor)]
            if not rows:
                # Windowed endpoints (bitstamp, coinbase) answer nothing for a window before the
                # market existed: move to the next window; otherwise we are done.
                nxt = cursor + limit * step
                if nxt >= end_ts:
                    break
                cursor = nxt
                continue
            _check_spacing(rows, step_ms, eid, timeframe)
            complete = [r for r in rows if r[0] + step_ms <= _ms(now_ts) and r[0] < _ms(end_ts)]
            forming = [r for r in rows if r[0] + step_ms > _ms(now_ts)]
            if forming:
                result.dropped_forming = pd.Timestamp(forming[0][0], unit="ms", tz="UTC")
            if complete and since_ts is not None and last is None and not result.added:
                first = pd.Timestamp(complete[0][0], unit="ms", tz="UTC")
                if first >= since_ts + step:
                    result.notes.append(
                        f"{eid} has no {timeframe} candles from {since_ts.isoformat()} to "
                        f"{first.isoformat()} (its history starts later or it serves only recent "
                        "candles, e.g. kraken keeps the last 720)"
                    )
            if complete:
                page = _frame(complete, timeframe, source)
                holes = find_gaps(page.index, timeframe)
                if expected is not None and page.index[0] > expected:
                    n = int((page.index[0] - expected) // step)
                    holes.insert(0, (expected, page.index[0] - step, n))
                result.gaps.extend(holes)
                before = store.last_timestamp(eid, symbol, timeframe)
                store.append(page, eid, symbol, timeframe, source=source, allow_gap=True)
                new = int((page.index > before).sum()) if before is not None else len(page)
                result.added += new
                bar.update(new)
                expected = page.index[-1] + step
            if len(complete) < len(rows):
                break  # reached the forming candle or --until
            nxt = pd.Timestamp(rows[-1][0], unit="ms", tz="UTC") + step
            if nxt <= cursor:
                break  # the exchange did not move forward; never loop forever
            cursor = nxt
    finally:
        bar.close()
    _fill_totals(result, store)
    return result


def _fill_totals(result: DownloadResult, store: DataStore) -> None:
    for entry in store.list():
        if str(entry.path) == result.path:
            result.rows, result.start, result.end = entry.rows, entry.start, entry.end


def _saved_so_far(result: DownloadResult, store: DataStore) -> str:
    _fill_totals(result, store)
    if not result.rows:
        return "nothing was saved"
    return (
        f"saved so far: {result.rows} candle(s) {_day(result.start)} -> {_day(result.end)} "
        f"({result.added} new) in {result.path}"
    )


def _fetch_page(
    client: Any,
    symbol: str,
    timeframe: str,
    cursor: pd.Timestamp,
    limit: int,
    retries: int,
    backoff: float,
    result: DownloadResult,
    first_request: bool,
    store: DataStore,
) -> list[list[Any]]:
    """One ``fetch_ohlcv`` call with bounded exponential backoff on transient failures."""
    return fetch_with_retries(
        lambda: client.fetch_ohlcv(symbol, timeframe, since=_ms(cursor), limit=limit),
        client=client, what=f"{symbol} {timeframe}", at=f"candles from {cursor.isoformat()}",
        retries=retries, backoff=backoff, stats=result, first_request=first_request,
        saved=lambda: _saved_so_far(result, store),
    )


T = TypeVar("T")


def fetch_with_retries(fetch: Callable[[], T], *, client: Any, what: str, at: str,
                       retries: int, backoff: float, stats: Any, first_request: bool,
                       saved: Callable[[], str]) -> T:
    """Call ``fetch`` (one ccxt request) with bounded exponential backoff on transient failures.

    ``stats`` gets its ``requests``/``retries`` counters increased; ``what`` (the series) and
    ``at`` (e.g. "candles from <time>") name the request and ``saved()`` says what is stored, in
    the error messages.

    Raises:
        ExchangeUnreachableError: the first request could not connect at all.
        DownloadError: retries exhausted or the exchange refused the request.
        DataError: the exchange has no such market.
    """
    import ccxt

    attempt = 0
    while True:
        stats.requests += 1
        try:
            return fetch()
        except ccxt.BadSymbol as exc:
            raise DataError(
                f"{client.id} has no market {what.split()[0]}: {exc}",
                hint=f"BTC pairs: {default_symbol(client.id)}; see the exchange's market list",
            ) from exc
        except ccxt.NetworkError as exc:
            if first_request and attempt == 0 and _unreachable(exc):
                raise ExchangeUnreachableError(
                    f"could not reach {client.id} ({client.urls.get('www', client.id)}): "
                    "no internet connection, DNS failure or connection refused",
                    hint=OFFLINE_HINT,
                ) from exc
            if attempt >= retries:
                raise DownloadError(
                    f"{client.id} {what}: gave up at {at} after {attempt + 1} attempt(s) "
                    f"({type(exc).__name__}: {exc}); {saved()}",
                    hint="run the same command again later: it resumes after the last saved "
                    "one",
                ) from exc
            # 429 / DDoS protection: the exchange asked us to slow down, so wait longer.
            factor = 4.0 if isinstance(exc, ccxt.DDoSProtection) else 1.0
            time.sleep(min(60.0, backoff * factor * 2**attempt))
            attempt += 1
            stats.retries += 1
        except ccxt.ExchangeError as exc:
            raise DownloadError(
                f"{client.id} refused the request for {what} {at}: {exc}; {saved()}",
                hint="check the symbol and timeframe; re-running resumes after the last saved "
                "one",
            ) from exc


def _check_spacing(rows: list[list[Any]], step_ms: int, exchange: str, timeframe: str) -> None:
    """Refuse candles that are not on the requested timeframe (a wrong ccxt mapping, e.g.)."""
    times = [r[0] for r in rows]
    for a, b in itertools.pairwise(times):
        if b <= a or (b - a) % step_ms:
            raise DownloadError(
                f"{exchange} returned {timeframe} candles {pd.Timedelta(b - a, unit='ms')} apart "
                f"at {pd.Timestamp(a, unit='ms', tz='UTC').isoformat()}",
                hint="this timeframe is not served correctly; use another timeframe and resample",
            )


def _frame(rows: list[list[Any]], timeframe: str, source: str) -> pd.DataFrame:
    idx = pd.DatetimeIndex(
        pd.to_datetime([r[0] for r in rows], unit="ms", utc=True), name="timestamp"
    ).as_unit("ns")
    values = np.array([r[1:6] for r in rows], dtype=np.float64)  # None (missing) -> NaN
    if not np.isfinite(values).all():
        r, c = np.argwhere(~np.isfinite(values))[0]
        raise DownloadError(
            f"the exchange sent no valid {OHLCV[c]} for a candle",
            source=source,
            timestamp=idx[r],
            hint="try again later or use another exchange",
        )
    df = pd.DataFrame(values, index=idx, columns=list(OHLCV))
    df.attrs.update(
        timeframe=timeframe,
        source=source,
        downloaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return df
