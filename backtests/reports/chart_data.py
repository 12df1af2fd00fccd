"""The data behind the interactive charts, packed small: what the page's script draws.

Columns of numbers travel as base64 typed arrays (``{"b": blob id, "d": dtype, "k": scale}``) in a
shared blob table, so identical columns (the same candles under two strategies) are stored once:

* times: ``i4`` minutes after the first bar (``t0``, epoch seconds), exact for any bar size >= 1m;
* prices and equity: ``i4`` cents (``k`` = 100), exact to the cent; amounts above $21M switch to
  ``f8`` so nothing overflows;
* volume: ``f4``; RSI: ``u2`` hundredths.

Missing values use the type's sentinel (``i4``: -2**31, ``u2``: 65535) or NaN (floats) and come
back as NaN. Everything here only reads saved results: no indicator or metric is recomputed.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import numpy as np
import pandas as pd

from backtests.reports.format import is_missing
from backtests.reports.tables import nearest_levels
from backtests.results import BacktestResult
from data.frame import timeframe_length, timeframe_of

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


def _times(blobs: Blobs, index: pd.Index) -> dict[str, Any]:
    sec = epoch_seconds(index)
    t0 = int(sec[0]) if len(sec) else 0
    return {"t0": t0, "t": blobs.add((sec - t0) / 60.0, "i4")}


def bar_seconds(prices: pd.DataFrame) -> int:
    """The bar length in seconds (:func:`data.frame.timeframe_of`; a day for a single bar)."""
    if len(prices) < 2 and not prices.attrs.get("timeframe"):
        return 86_400  # nothing to go by; one bar draws the same either way
    return int(timeframe_length(timeframe_of(prices)).total_seconds())


def candles(blobs: Blobs, prices: pd.DataFrame) -> dict[str, Any]:
    """OHLCV columns of ``prices`` (volume omitted when absent)."""
    out = {"n": len(prices), "step": bar_seconds(prices), **_times(blobs, prices.index)}
    for col in ("open", "high", "low", "close"):
        out[col[0]] = blobs.add(prices[col], "i4", 100)
    if "volume" in prices:
        out["v"] = blobs.add(prices["volume"], "f4")
    return out


LINES = ("wema200", "support", "resistance")


def indicator_lines(blobs: Blobs, result: BacktestResult) -> dict[str, Any]:
    """The per-bar lines drawn with the candles (200-week EMA, support, resistance) and RSI,
    aligned to the candles (reindexed: a bar without a value is missing)."""
    ind = result.indicators
    out: dict[str, Any] = {}
    if ind is None or len(ind.columns) == 0:
        return out
    ind = ind.reindex(result.prices.index)
    for col in LINES:
        if col in ind and ind[col].notna().any():
            out[col] = blobs.add(ind[col], "i4", 100)
    if "rsi" in ind and ind["rsi"].notna().any():
        out["rsi"] = blobs.add(ind["rsi"].clip(0, 100), "u2", 100)
    return out


def equity_series(blobs: Blobs, result: BacktestResult) -> dict[str, Any]:
    """Equity and buy-and-hold per bar (the page draws the drawdown from the equity)."""
    eq = result.equity.astype(float)
    out: dict[str, Any] = {**_times(blobs, eq.index), "equity": blobs.add(eq, "i4", 100)}
    if result.benchmark is not None and len(result.benchmark) == len(eq):
        out["benchmark"] = blobs.add(result.benchmark.astype(float).to_numpy(), "i4", 100)
    return out


def _num(x: Any, decimals: int = 6) -> float | None:
    return None if is_missing(x) else round(float(x), decimals)


def _why(result: BacktestResult, trades: pd.DataFrame) -> list[str]:
    """Why each trade was taken, from the saved result: the entry tag, RSI at the signal bar,
    and the flip or retest the strategy saw last before the signal (zone, kind, confirmation)."""
    ind = result.indicators
    rsi = ind["rsi"].to_numpy(dtype=float) if ind is not None and "rsi" in ind else None
    ev = result.events
    has_ev = ev is not None and len(ev) and {"bar", "kind"} <= set(ev.columns)
    ev_bars = ev["bar"].to_numpy() if has_ev else np.array([], dtype=int)
    out = []
    for t in trades.itertuples(index=False):
        parts = []
        tag = getattr(t, "tag", None)
        if not is_missing(tag) and str(tag):
            parts.append(f"signal: {tag}")
        sb = getattr(t, "signal_bar", None)
        sb = int(sb) if not is_missing(sb) else int(t.entry_bar) - 1
        if rsi is not None and 0 <= sb < len(rsi) and np.isfinite(rsi[sb]):
            parts.append(f"RSI {rsi[sb]:.1f} at the signal close")
        if has_ev:
            k = int(np.searchsorted(ev_bars, sb, side="right")) - 1
            if k >= 0 and sb - ev_bars[k] <= 30:
                e = ev.iloc[k]
                kind = str(e.get("flip_kind") or e["kind"]).replace("_", " ")
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
    """Flip/retest events as chart markers: time (epoch s), kind, level (price)."""
    ev = result.events
    if ev is None or len(ev) == 0 or not {"time", "kind"} <= set(ev.columns):
        return []
    col = next((c for c in ("price", "level", "close", "break_close") if c in ev.columns), None)
    secs = epoch_seconds(ev["time"])
    kinds = ev["flip_kind"].fillna(ev["kind"]) if "flip_kind" in ev else ev["kind"]
    return [
        {"t": int(s), "kind": str(k), "price": _num(p) if col else None}
        for s, k, p in zip(secs, kinds, ev[col] if col else [None] * len(ev), strict=True)
    ]


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
