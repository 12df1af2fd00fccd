"""Signals the strategies use: breakdowns, RSI states, proximity and 200-week-EMA confluence.

All per-bar outputs are causal (checked by truncation tests). :func:`signal_frame` gathers them
in one DataFrame.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from data.frame import like_input, to_canonical
from indicators.core import atr as ta_atr
from indicators.core import rsi as ta_rsi
from indicators.flips import FlipResult, flips
from indicators.keylevels import weekly_ema_or_nan
from indicators.levels import LevelParams, takes_level_params

__all__ = [
    "RSI_STATES",
    "breakdown_signal",
    "confluence",
    "oversold",
    "proximity_pct",
    "signal_frame",
]

RSI_STATES = ("deeply_oversold", "oversold", "neutral", "overbought")


def breakdown_signal(df: pd.DataFrame, **params: object) -> pd.Series:
    """True on the bar whose close confirms a break of support (a support->resistance flip).

    The rule and ``params`` (``buffer_atr``/``buffer_pct``, ``confirm_closes``, ``retest_bars``
    and the level parameters) are those of :func:`indicators.flips.flips`; the signal is its
    ``breakdown`` column, a bool Series on ``df``'s own index.
    """
    return flips(df, **params).bars["breakdown"].rename("breakdown")


def check_rsi_thresholds(threshold: float, deep: float, overbought: float) -> None:
    if not (0 <= deep < threshold < overbought <= 100):
        raise ValueError(
            "RSI thresholds must satisfy 0 <= deep < threshold < overbought <= 100, got "
            f"deep={deep}, threshold={threshold}, overbought={overbought}"
        )


def oversold(
    rsi: pd.Series | np.ndarray,
    threshold: float = 30.0,
    deep: float = 20.0,
    overbought: float = 70.0,
) -> pd.Series | np.ndarray:
    """RSI state per bar: ``deeply_oversold`` (rsi < deep), ``oversold`` (rsi < threshold),
    ``overbought`` (rsi > overbought), else ``neutral``; missing where the RSI is NaN (warm-up).

    Returns:
        For a Series an ordered categorical Series (categories :data:`RSI_STATES`) on the same
        index, named ``rsi_state``; for an array an object array (None where the RSI is NaN).
    """
    check_rsi_thresholds(threshold, deep, overbought)
    r = np.asarray(rsi, dtype=np.float64)
    code = np.select([r < deep, r < threshold, r > overbought], [0, 1, 3], default=2)
    code = np.where(np.isnan(r), -1, code)
    if isinstance(rsi, pd.Series):
        cat = pd.Categorical.from_codes(code, categories=list(RSI_STATES), ordered=True)
        return pd.Series(cat, index=rsi.index, name="rsi_state")
    names = np.array([*RSI_STATES, None], dtype=object)
    return names[code]  # code -1 picks the trailing None


def proximity_pct(price, level):
    """Signed distance of ``price`` from ``level`` in percent of the level:
    ``(price - level) / level x 100`` (positive: price above the level). NaN where the level is
    NaN or not positive. Scalars, arrays or Series (aligned by pandas) in, the same kind out."""
    if isinstance(level, pd.Series | pd.DataFrame) or isinstance(price, pd.Series | pd.DataFrame):
        lvl = level.where(level > 0) if isinstance(level, pd.Series) else (
            level if level > 0 else np.nan)
        return (price - lvl) / lvl * 100.0
    lv = np.asarray(level, dtype=np.float64)
    lv = np.where(lv > 0, lv, np.nan)
    # in place after the first operation: the same roundings as ``(price - lv) / lv * 100``,
    # one per-bar array instead of three (fresh arrays cost page faults on long frames)
    out = np.asarray(price, dtype=np.float64) - lv
    if np.ndim(out) == 0:
        return float(out / lv * 100.0)
    out /= lv
    out *= 100.0
    return out


def confluence(
    df: pd.DataFrame, sr: pd.DataFrame, wema: pd.Series, tolerance_pct: float = 3.0
) -> pd.Series:
    """True where the nearest support zone and the (200-week) EMA are within ``tolerance_pct``.

    The distance is from the EMA to the zone's band ``[support_low, support_high]`` (0 when the
    EMA lies inside the band), in percent of the EMA. False where either is missing.

    Args:
        df: the candle frame the other inputs are aligned to (its index is checked).
        sr: per-bar levels (:func:`indicators.levels.sr_levels` or ``flips(...).bars``).
        wema: the EMA per bar (e.g. :func:`indicators.htf.weekly_ema` in closed mode).
    """
    if not (isinstance(tolerance_pct, int | float) and math.isfinite(tolerance_pct)
            and tolerance_pct >= 0):
        raise ValueError(f"tolerance_pct must be a number >= 0, got {tolerance_pct!r}")
    for name, obj in (("sr", sr), ("wema", wema)):
        if not obj.index.equals(df.index):
            raise ValueError(f"confluence: {name} is not aligned to df.index (compute it on df)")
    lo = sr["support_low"].to_numpy(dtype=np.float64)
    hi = sr["support_high"].to_numpy(dtype=np.float64)
    w = wema.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        # max(lo - w, w - hi, 0) worked out in one array (the same values as nested maxima)
        gap = lo - w
        np.maximum(gap, w - hi, out=gap)
        np.maximum(gap, 0.0, out=gap)
        ok = gap <= tolerance_pct / 100.0 * w
    ok &= ~np.isnan(gap)
    ok &= w > 0
    return pd.Series(ok, index=df.index, name="confluence", copy=False)


@takes_level_params("zones", "flips", "rank")
def signal_frame(
    df: pd.DataFrame,
    *,
    rsi_period: int = 14,
    rsi_oversold: float = 30.0,
    rsi_deep: float = 20.0,
    rsi_overbought: float = 70.0,
    flip_result: FlipResult | None = None,
    params: LevelParams,
) -> pd.DataFrame:
    """Every per-bar column the strategies need, causal, on ``df``'s own index (any frame
    :func:`data.frame.to_canonical` accepts).

    Columns: ``close``, ``rsi`` (TA-Lib Wilder RSI), ``rsi_state`` (:func:`oversold`),
    ``wema200`` (closed-mode weekly EMA, named after the ``wema_period`` level parameter; NaN
    without enough weekly history or for bars longer than a week), the six S/R columns,
    ``dist_support_pct`` and ``dist_resistance_pct`` (close vs the zone centre,
    :func:`proximity_pct`), ``dist_wema_pct``, ``confluence`` (:func:`confluence` with the
    ``confluence_pct`` level parameter), ``breakdown``, ``breakout``, ``flipped_resistance``
    (+ ``_low``/``_high``), ``flipped_support`` (+ band), ``retest_rejected``, ``retest_held``
    and ``atr`` (TA-Lib ATR with the ``atr_period`` level parameter). The zone and flip
    parameters go to :func:`indicators.flips.flips` (or ``flip_result``, its result on the same
    ``df`` and parameters, is used: ValueError if it was computed on others).
    """
    check_rsi_thresholds(rsi_oversold, rsi_deep, rsi_overbought)
    user_df, df = df, to_canonical(df)
    close = df["close"]
    wema_period, confluence_pct = params.wema_period, params.confluence_pct
    if flip_result is not None:
        flip_result.check(df.index, params)
    res = flip_result if flip_result is not None else flips(df, params=params)
    bars = res.bars
    out = pd.DataFrame(index=df.index)

    def fresh(values: np.ndarray) -> pd.Series:
        # A new array made here goes into the frame as it is: a NumPy array assigned to a
        # column is copied (pandas 3), one more per-bar array to fault in on long frames.
        return pd.Series(values, index=df.index, copy=False)

    close_np = close.to_numpy(dtype=np.float64)
    out["close"] = close.astype(np.float64)
    out["rsi"] = fresh(np.asarray(ta_rsi(close_np, rsi_period), dtype=np.float64))
    out["rsi_state"] = oversold(out["rsi"], rsi_oversold, rsi_deep, rsi_overbought)
    wname = f"wema{wema_period}"
    # a Series on the same index goes in without a copy (pandas tracks the sharing)
    out[wname] = weekly_ema_or_nan(df, wema_period).astype(np.float64)
    for c in bars.columns[:6]:
        out[c] = bars[c]
    out["dist_support_pct"] = fresh(proximity_pct(close_np, out["support"].to_numpy()))
    out["dist_resistance_pct"] = fresh(proximity_pct(close_np, out["resistance"].to_numpy()))
    out["dist_wema_pct"] = fresh(proximity_pct(close_np, out[wname].to_numpy()))
    out["confluence"] = confluence(df, bars, out[wname], confluence_pct)
    for c in bars.columns[6:]:
        out[c] = bars[c]
    out["atr"] = fresh(np.asarray(ta_atr(df["high"].to_numpy(dtype=np.float64),
                                         df["low"].to_numpy(dtype=np.float64), close_np,
                                         res.params.atr_period), dtype=np.float64))
    return like_input(out, user_df)
