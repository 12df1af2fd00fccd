"""The squeeze as plain data for a report: computed once by the job, stored with the results,
drawn by the report without recomputing (:func:`squeeze_summary`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backtests.squeeze.liqmap import MAP_LEVERAGES, MODEL_NOTE, liquidation_map
from backtests.squeeze.survival import CAVEAT, leverage_survival
from data.frame import infer_timeframe, parse_timeframe
from indicators.liquidation import MarginModel

__all__ = ["HEATMAP_LEVERAGES", "squeeze_summary"]

#: Leverages shown in the report's heatmap (the curve keeps every step 1x..100x).
HEATMAP_LEVERAGES = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100)


def _clean(values: np.ndarray) -> list:
    """Floats rounded for the page, NaN -> None (JSON null)."""
    return [None if not np.isfinite(v) else round(float(v), 4) for v in np.asarray(values)]


def squeeze_summary(df: pd.DataFrame, entry_days: int = 365, horizon: str = "30D",
                    map_window: str = "30D", model: MarginModel | None = None,
                    map_bins: int = 60) -> dict[str, Any]:
    """JSON-safe squeeze of ``df``: survival of the entries of the last ``entry_days`` days over
    ``horizon`` (heatmap: days from entry to liquidation per :data:`HEATMAP_LEVERAGES`, None =
    survived; max surviving leverage per entry; safe-leverage curve 1x..100x) and the
    liquidation map of the positions opened in the last ``map_window``.

    Entries are opened at each day's close (every bar of daily or coarser data; the last bar of
    each UTC day of intraday data).

    Keys: ``horizon``, ``model``, ``caveat``, ``entry_time`` (ISO), ``entries`` (which bars are
    entries, in words), ``heatmap_leverages``,
    ``days_to_liquidation`` ({side: [[per leverage] per entry]}), ``max_leverage`` ({side:
    [...]}), ``curve`` ({``leverage``, ``long``, ``short``: shares 0..1, ``entries``}),
    ``summary`` (lines), ``map`` ({``as_of``, ``price``, ``window``, ``note``, ``low``, ``high``,
    ``long``, ``short``: quote volume per price bin}).
    """
    model = model or MarginModel()
    start = df.index[-1] - pd.Timedelta(days=entry_days)
    # One entry per day at its close: on daily data every bar, on intraday data the heatmap
    # keeps a column per day (its canvas is ~1,000 px wide) instead of one per bar (525,600 a
    # year on minute bars, each with 100 leverages per side held in memory).
    res = leverage_survival(df, start=max(start, df.index[0]), horizon=horizon, model=model,
                            daily=True)
    bars_per_day = pd.Timedelta(days=1) / parse_timeframe(
        df.attrs.get("timeframe") or infer_timeframe(df.index))
    opens = res.index.as_unit("ns").asi8
    opened = opens[res.entry_bars] + (res.table["opened_at"].iloc[0]
                                      - res.table["entry_time"].iloc[0]).value
    cols = [int(lev) - 1 for lev in HEATMAP_LEVERAGES]
    days, maxlev = {}, {}
    for side, bars in res.liq_bars.items():
        sub = bars[:, cols]
        d = (opens[np.maximum(sub, 0)] - opened[:, None]) / 86_400e9
        d = np.where(sub >= 0, np.maximum(d, 0.0), np.nan)
        days[side] = [_clean(row) for row in d]
        maxlev[side] = _clean(res.table.loc[res.table["side"] == side, "max_leverage"])
    curve = res.curve()
    lm = liquidation_map(df, window=map_window, model=model, leverages=MAP_LEVERAGES)
    strip = lm.strip(bins=map_bins, lo=lm.price * 0.5, hi=lm.price * 1.5)
    return {
        "horizon": res.horizon,
        "model": res.model_line(),
        "caveat": CAVEAT,
        "entry_time": [t.isoformat() for t in res.index[res.entry_bars]],
        "entries": ("one per bar" if bars_per_day <= 1 else
                    f"one per day, at its close (the last of its {bars_per_day:g} bars)"),
        "complete": [bool(c) for c in res.complete],
        "heatmap_leverages": list(HEATMAP_LEVERAGES),
        "days_to_liquidation": days,
        "max_leverage": maxlev,
        "curve": {
            "leverage": [float(v) for v in res.leverages],
            **{s: _clean(curve.loc[curve["side"] == s, "liquidated_share"])
               for s in res.liq_bars},
            "entries": int(res.complete.sum()),
        },
        "summary": res.summary(),
        "map": {
            "as_of": lm.as_of.isoformat(), "price": lm.price, "window": lm.window,
            "note": MODEL_NOTE, "low": _clean(strip["low"]), "high": _clean(strip["high"]),
            "long": _clean(strip["long"]), "short": _clean(strip["short"]),
        },
    }
