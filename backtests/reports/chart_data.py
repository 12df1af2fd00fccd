"""The data behind the interactive charts, packed small: what the page's script draws.

Columns of numbers travel as base64 typed arrays (``{"b": blob id, "d": dtype, "k": scale}``) in a
shared blob table, so identical columns (the same candles under two strategies) are stored once:

* times: ``i4`` minutes after the first bar (``t0``, epoch seconds), exact for any bar size >= 1m;
* prices and equity: ``i4`` cents (``k`` = 100), exact to the cent; amounts above $21M switch to
  ``f8`` so nothing overflows;
* volume: ``f4``; RSI: ``u2`` hundredths.

Missing values use the type's sentinel (``i4``: -2**31, ``u2``: 65535) or NaN (floats) and come
back as NaN. Everything here only reads saved results: no indicator or metric is recomputed.

Long series are thinned (:func:`thinning`): beyond :data:`MAX_NATIVE` bars a chart carries its
last :data:`NATIVE_BARS` bars as they are and the bars before them as candles of the finest
display timeframe that keeps them within :data:`HISTORY_BARS` (open first, high max, low min,
close last, volume summed; lines, equity and buy-and-hold at each candle's last value), the way
the page itself aggregates when zoomed out. A page cannot load finer detail later (it is one
offline file), so a million 1-minute bars would otherwise make a 100 MB page; the page says where
native bars begin.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtests.reports.format import is_missing
from backtests.reports.tables import nearest_levels
from backtests.results import BacktestResult
from data.frame import timeframe_length, timeframe_of

#: A chart carries up to this many bars as they are (the 44,000-bar hourly report stays native);
#: longer series keep their last NATIVE_BARS and at most HISTORY_BARS aggregated candles before.
MAX_NATIVE = 50_000
NATIVE_BARS = 20_000
HISTORY_BARS = 10_000
#: The page's display timeframes in seconds (``LADDER`` in templates/report.js); weeks open on
#: Monday 00:00 UTC (1970-01-05, 4 days after the epoch), as there.
LADDER = (60, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 2 * 86400, 3 * 86400,
          7 * 86400, 14 * 86400, 28 * 86400)
_MONDAY = 4 * 86400

I4_NA = -(2**31)
U2_NA = 65535
_I4_MAX_CENTS = 2**31 - 1


class Blobs:
    """A table of base64 arrays, each stored once however often it is referenced."""

    def __init__(self) -> None:
        self.table: dict[str, str] = {}

    def add(self, values: Any, dtype: str, scale: float = 1.0) -> dict[str, Any]:
        """Pack ``values`` (NaN for missing) as ``dtype`` (``i4``, ``u2``, ``f4``, ``f8``) after
        multiplying by ``scale``; return the reference the page decodes."""
        a = np.asarray(values, dtype=float) * scale
        if dtype == "i4" and np.nanmax(np.abs(a), initial=0.0) > _I4_MAX_CENTS:
            dtype = "f8"  # would overflow: keep the values exact as float64
        if dtype in ("i4", "u2"):
            na = I4_NA if dtype == "i4" else U2_NA
            packed = np.where(np.isfinite(a), np.rint(a), na).astype("<" + dtype)
        else:
            packed = a.astype("<" + dtype)
        raw = packed.tobytes()
        key = hashlib.blake2b(raw + dtype.encode(), digest_size=8).hexdigest()
        self.table.setdefault(key, base64.b64encode(raw).decode("ascii"))
        return {"b": key, "d": dtype, "k": scale}


def epoch_seconds(times: Any) -> np.ndarray:
    """UTC epoch seconds (int64) of timestamps (tz-aware or naive-UTC)."""
    idx = pd.DatetimeIndex(times)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.as_unit("s").asi8


@dataclass(frozen=True)
class Thinning:
    """Which rows of a per-bar series a chart ships: rows ``cut`` and later as they are, rows
    before ``cut`` as one row per ``tf``-second bin (``starts``: each bin's first row); ``times``
    (epoch seconds) of the shipped rows, a bin's start for the aggregated ones. ``cut == 0``:
    every row as it is."""

    cut: int
    tf: int
    starts: np.ndarray
    times: np.ndarray

    def first(self, v: np.ndarray) -> np.ndarray:
        return v if not self.cut else np.r_[v[self.starts], v[self.cut:]]

    def last(self, v: np.ndarray) -> np.ndarray:
        return v if not self.cut else np.r_[v[np.r_[self.starts[1:], self.cut] - 1], v[self.cut:]]

    def reduce(self, ufunc: np.ufunc, v: np.ndarray) -> np.ndarray:
        return v if not self.cut else np.r_[ufunc.reduceat(v[:self.cut], self.starts),
                                            v[self.cut:]]

    def last_valid(self, v: np.ndarray) -> np.ndarray:
        """Each bin's last non-missing value (NaN if none), as the page aggregates lines."""
        if not self.cut:
            return v
        ids = np.repeat(np.arange(len(self.starts)), np.diff(np.r_[self.starts, self.cut]))
        agg = pd.Series(v[:self.cut]).groupby(ids).last().reindex(range(len(self.starts)))
        return np.r_[agg.to_numpy(dtype=float), v[self.cut:]]


def bin_start(sec: np.ndarray, tf: int) -> np.ndarray:
    """The start (epoch s) of the ``tf``-second display candle holding each time in ``sec``
    (weeks and longer open on Monday, as on the page)."""
    off = _MONDAY if tf >= 7 * 86400 else 0
    return (sec - off) // tf * tf + off


def thinning(sec: np.ndarray, step: int) -> Thinning:
    """How to ship the bars at epoch seconds ``sec`` (``step``: the bar length, s): everything when
    there are at most :data:`MAX_NATIVE`; else the last :data:`NATIVE_BARS` as they
    are and the rest in bins of the finest :data:`LADDER` timeframe (at least ``step``) giving at
    most :data:`HISTORY_BARS` bins (the coarsest if none does)."""
    n = len(sec)
    if n <= MAX_NATIVE:
        return Thinning(0, 0, np.zeros(0, np.int64), sec)
    cut = n - NATIVE_BARS
    hist = sec[:cut]
    for tf in (x for x in LADDER if x >= step):
        bins = bin_start(hist, tf)
        starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
        if len(starts) <= HISTORY_BARS:
            break
    return Thinning(cut, tf, starts, np.r_[bins[starts], sec[cut:]])


def thinning_of(index: pd.Index, prices: pd.DataFrame) -> Thinning:
    """:func:`thinning` of a series on ``index`` whose bars are those of ``prices``."""
    return thinning(epoch_seconds(index), bar_seconds(prices))


def tf_label(seconds: int) -> str:
    """``"1m"``, ``"4h"``, ``"1d"``, ``"2w"``: a bar length in seconds as the page writes it."""
    for unit, name in ((7 * 86400, "w"), (86400, "d"), (3600, "h"), (60, "m")):
        if seconds % unit == 0:
            return f"{seconds // unit}{name}"
    return f"{seconds}s"


def thinning_note(prices: pd.DataFrame) -> str:
    """One sentence saying which bars a chart of ``prices`` shows aggregated ("" if none)."""
    th = thinning_of(prices.index, prices)
    if not th.cut:
        return ""
    first = pd.Timestamp(int(th.times[len(th.starts)]), unit="s", tz="UTC")
    return (f"This page carries the last {len(prices) - th.cut:,} bars as they are (from "
            f"{first:%Y-%m-%d %H:%M} UTC); the {th.cut:,} bars before them are shown as "
            f"{len(th.starts):,} {tf_label(th.tf)} candles (high, low and volume kept; lines, "
            f"equity and buy & hold at each candle's last value), so the page stays small. "
            f"Trades, metrics and tables use every bar.")


def _times(blobs: Blobs, sec: np.ndarray) -> dict[str, Any]:
    t0 = int(sec[0]) if len(sec) else 0
    return {"t0": t0, "t": blobs.add((sec - t0) / 60.0, "i4")}


def bar_seconds(prices: pd.DataFrame) -> int:
    """The bar length in seconds (:func:`data.frame.timeframe_of`; a day for a single bar)."""
    if len(prices) < 2 and not prices.attrs.get("timeframe"):
        return 86_400  # nothing to go by; one bar draws the same either way
    return int(timeframe_length(timeframe_of(prices)).total_seconds())


def candles(blobs: Blobs, prices: pd.DataFrame) -> dict[str, Any]:
    """OHLCV columns of ``prices`` (volume omitted when absent), thinned (:func:`thinning`):
    ``n`` bars in all, ``native_from`` (epoch s, None: all native) the first bar shipped as it
    is, ``history_tf`` (s) the candle length of the bars before it."""
    th = thinning_of(prices.index, prices)
    col = {k: prices[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close")}
    out = {"n": len(prices), "step": bar_seconds(prices), **_times(blobs, th.times),
           "native_from": int(th.times[len(th.starts)]) if th.cut else None,
           "history_tf": th.tf,
           "o": blobs.add(th.first(col["open"]), "i4", 100),
           "h": blobs.add(th.reduce(np.maximum, col["high"]), "i4", 100),
           "l": blobs.add(th.reduce(np.minimum, col["low"]), "i4", 100),
           "c": blobs.add(th.last(col["close"]), "i4", 100)}
    if "volume" in prices:
        out["v"] = blobs.add(th.reduce(np.add, prices["volume"].to_numpy(dtype=float)), "f4")
    return out


LINES = ("wema200", "support", "resistance")


def indicator_lines(blobs: Blobs, result: BacktestResult) -> dict[str, Any]:
    """The per-bar lines drawn with the candles (200-week EMA, support, resistance) and RSI,
    aligned to the candles (reindexed: a bar without a value is missing)."""
    ind = result.indicator_columns(*LINES, "rsi")
    out: dict[str, Any] = {}
    if ind is None or len(ind.columns) == 0:
        return out
    ind = ind.reindex(result.prices.index)
    th = thinning_of(ind.index, result.prices)
    for col in LINES:
        if col in ind and ind[col].notna().any():
            out[col] = blobs.add(th.last_valid(ind[col].to_numpy(dtype=float)), "i4", 100)
    if "rsi" in ind and ind["rsi"].notna().any():
        out["rsi"] = blobs.add(th.last_valid(ind["rsi"].clip(0, 100).to_numpy(dtype=float)),
                               "u2", 100)
    return out


def equity_series(blobs: Blobs, result: BacktestResult) -> dict[str, Any]:
    """Equity and buy-and-hold per bar (the page draws the drawdown from the equity)."""
    eq = result.equity.astype(float)
    th = thinning_of(eq.index, result.prices)
    out: dict[str, Any] = {**_times(blobs, th.times),
                           "equity": blobs.add(th.last(eq.to_numpy()), "i4", 100)}
    if result.benchmark is not None and len(result.benchmark) == len(eq):
        out["benchmark"] = blobs.add(th.last(result.benchmark.astype(float).to_numpy()), "i4",
                                     100)
    return out


def _num(x: Any, decimals: int = 6) -> float | None:
    return None if is_missing(x) else round(float(x), decimals)


def _why(result: BacktestResult, trades: pd.DataFrame) -> list[str]:
    """Why each trade was taken, from the saved result: the entry tag, RSI at the signal bar,
    and the flip or retest the strategy saw last before the signal (zone, kind, confirmation)."""
    ind = result.indicator_columns("rsi")
    rsi = ind["rsi"].to_numpy(dtype=float) if "rsi" in ind else None
    ev = result.events
    has_ev = ev is not None and len(ev) and {"bar", "kind"} <= set(ev.columns)
    ev_bars = ev["bar"].to_numpy() if has_ev else np.array([], dtype=int)
    tags = trades["tag"].to_numpy(dtype=object) if "tag" in trades else [None] * len(trades)
    entry = trades["entry_bar"].to_numpy()
    sig = trades["signal_bar"].to_numpy(dtype=object) if "signal_bar" in trades \
        else [None] * len(trades)
    sbs = [int(s) if not is_missing(s) else int(e) - 1 for s, e in zip(sig, entry, strict=True)]
    ks = np.searchsorted(ev_bars, np.asarray(sbs, dtype=np.int64), side="right") - 1
    # The event rows the trades refer to, read once as plain values (one ``ev.iloc[k]`` per
    # trade cost ~0.45 s per 4,000 trades on 1M minute bars).
    near = [int(k) for k, sb in zip(ks, sbs, strict=True) if k >= 0 and sb - ev_bars[k] <= 30]
    rows: dict[int, dict[str, Any]] = {}
    if has_ev and near:
        uniq = sorted(set(near))
        sub = ev.iloc[uniq]
        cols = {c: sub[c].to_numpy(dtype=object) for c in
                ("kind", "flip_kind", "level_low", "level_high", "confirmed_by") if c in sub}
        rows = {k: {c: v[i] for c, v in cols.items()} for i, k in enumerate(uniq)}
    out = []
    for tag, sb, k in zip(tags, sbs, ks, strict=True):
        parts = []
        if not is_missing(tag) and str(tag):
            parts.append(f"signal: {tag}")
        if rsi is not None and 0 <= sb < len(rsi) and np.isfinite(rsi[sb]):
            parts.append(f"RSI {rsi[sb]:.1f} at the signal close")
        if has_ev and k >= 0 and sb - ev_bars[k] <= 30:
            e = rows[int(k)]
            # A retest has no flip kind: the categorical's missing value is NaN, which is truthy.
            fk = e.get("flip_kind")
            kind = str(e["kind"] if is_missing(fk) else fk).replace("_", " ")
            zone = ""
            if not is_missing(e.get("level_low")) and not is_missing(e.get("level_high")):
                zone = f" zone ${float(e['level_low']):,.0f}–${float(e['level_high']):,.0f}"
            conf = e.get("confirmed_by")
            conf = f", confirmed by {str(conf).replace('_', ' ')}" if not is_missing(conf) \
                else ""
            ago = sb - int(ev_bars[k])
            when = "on the signal bar" if ago == 0 else f"{ago} bar{'s' * (ago != 1)} before"
            parts.append(f"last S/R event: {kind}{zone}{conf} ({when})")
        out.append("; ".join(parts) or "no reason recorded")
    return out


TRADE_FIELDS = ("entry_time", "exit_time", "side", "size", "entry_price", "exit_price", "fees",
                "funding", "pnl", "return_pct", "exit_reason", "leverage", "liquidation_price",
                "mae_pct", "mfe_pct", "tag", "bars", "stop", "target", "why")


def trade_table(result: BacktestResult) -> dict[str, list[Any]]:
    """The trade list as columns (:data:`TRADE_FIELDS`; times in epoch seconds). ``stop``
    (``stop``, else the ``initial_stop`` placed at entry) and ``target`` are filled when the
    saved trades record them, else missing."""
    t = result.trades
    n = len(t)

    def col(name: str, decimals: int = 2) -> list[Any]:
        return [_num(v, decimals) for v in t[name]] if name in t else [None] * n

    fees = t["entry_fee"].fillna(0) + t["exit_fee"].fillna(0)
    return {
        "entry_time": epoch_seconds(t["entry_time"]).tolist() if n else [],
        "exit_time": epoch_seconds(t["exit_time"]).tolist() if n else [],
        "side": [int(s) for s in t["side"]],
        "size": col("size", 8),
        "entry_price": col("entry_price"),
        "exit_price": col("exit_price"),
        "fees": [_num(v, 4) for v in fees],
        "funding": col("funding", 4),
        "pnl": col("pnl", 4),
        "return_pct": col("return_pct", 4),
        "exit_reason": [str(v) for v in t["exit_reason"]],
        "leverage": col("leverage", 4),
        "liquidation_price": col("liquidation_price"),
        "mae_pct": col("mae_pct", 4),
        "mfe_pct": col("mfe_pct", 4),
        "tag": ["" if is_missing(v) else str(v) for v in t["tag"]] if "tag" in t else [""] * n,
        "bars": (t["exit_bar"] - t["entry_bar"]).astype(int).tolist() if n else [],
        "stop": col("stop") if "stop" in t else col("initial_stop"),
        "target": col("target"),
        "why": _why(result, t),
    }


EVENTS_SHOWN = 60  # an event kind with more markers starts hidden (the chart's toggle shows it)


def events(result: BacktestResult) -> list[dict[str, Any]]:
    """Flip/retest events as chart markers: time (epoch s), kind, level (price).

    On a thinned chart (:func:`thinning`) the events before the native bars are merged per
    history candle and kind, as the page merges markers per displayed bar: ``t`` the candle's
    start, ``price`` the last event's, ``n`` how many there were (only when more than one).
    Minute data has ~500,000 flips and retests in a million bars (~40 MB of markers).
    """
    ev = result.events
    if ev is None or len(ev) == 0 or not {"time", "kind"} <= set(ev.columns):
        return []
    col = next((c for c in ("price", "level", "close", "break_close") if c in ev.columns), None)
    kinds = ev["flip_kind"].fillna(ev["kind"]) if "flip_kind" in ev else ev["kind"]
    # Merged and listed by the kind's number, named at the end: converting ~540,000 kinds of
    # minute data to strings and grouping by them was most of this function (0.37 s a result).
    codes, uniques = pd.factorize(kinds, use_na_sentinel=False)
    names = pd.Series(uniques, dtype=kinds.dtype).astype(str).tolist()  # as kinds.astype(str)
    frame = pd.DataFrame({"t": epoch_seconds(ev["time"]), "kind": codes,
                          "price": ev[col].to_numpy(dtype=float) if col else np.nan, "n": 1})
    prices = result.prices
    th = thinning_of(prices.index, prices) if prices is not None and len(prices) else None
    if th is not None and th.cut:
        old = frame["t"].to_numpy() < th.times[len(th.starts)]
        hist = frame[old].assign(t=lambda f: bin_start(f["t"].to_numpy(), th.tf))
        hist = hist.groupby(["t", "kind"], sort=False).agg(price=("price", "last"),
                                                           n=("n", "size")).reset_index()
        frame = pd.concat([hist, frame[~old]], ignore_index=True)
    out = []
    for t, k, p, n in zip(frame["t"], frame["kind"], frame["price"], frame["n"], strict=True):
        mk = {"t": int(t), "kind": names[k], "price": _num(p) if col else None}
        if n > 1:
            mk["n"] = int(n)
        out.append(mk)
    return out


def levels(table: pd.DataFrame, last_close: float, k: int) -> list[dict[str, Any]]:
    """The ``k`` S/R zones nearest to ``last_close``, highest first, for price lines."""
    near = nearest_levels(table, last_close, k)
    if near.empty:
        return []
    out = []
    for _, z in near.sort_values("low", ascending=False).iterrows():
        centre = z["centre"] if "centre" in z else (z["low"] + z["high"]) / 2
        out.append({"centre": _num(centre), "low": _num(z["low"]), "high": _num(z["high"]),
                    "role": str(z.get("role", "")),
                    "touches": None if is_missing(z.get("touches")) else int(z["touches"])})
    return out
