"""Signals the strategies use: breakdowns, RSI states, proximity and 200-week-EMA confluence.

All per-bar outputs are causal (checked by truncation tests). :func:`signal_frame` gathers them
in one DataFrame.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from data.frame import like_input, to_canonical
from data.perbar import CompactFrame, Distance, ZoneGroup, distance_pct
from indicators.core import atr as ta_atr
from indicators.core import rsi as ta_rsi
from indicators.flips import FLAG_COLUMNS, ZONE_GROUPS, FlipResult, ZoneBars, flips
from indicators.keylevels import weekly_ema_or_nan
from indicators.levels import LevelParams, takes_level_params

__all__ = [
    "RSI_STATES",
    "breakdown_signal",
    "confluence",
    "oversold",
    "proximity_pct",
    "signal_columns",
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
    price = np.asarray(price, dtype=np.float64)
    if np.ndim(price) == 0 and lv.ndim == 0:
        lv = np.where(lv > 0, lv, np.nan)
        return float((price - lv) / lv * 100.0)
    return distance_pct(price, lv)


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
    for name, obj in (("sr", sr), ("wema", wema)):
        if not obj.index.equals(df.index):
            raise ValueError(f"confluence: {name} is not aligned to df.index (compute it on df)")
    ok = confluence_values(sr["support_low"].to_numpy(dtype=np.float64),
                           sr["support_high"].to_numpy(dtype=np.float64),
                           wema.to_numpy(dtype=np.float64), tolerance_pct)
    return pd.Series(ok, index=df.index, name="confluence", copy=False)


def confluence_values(lo: np.ndarray, hi: np.ndarray, w: np.ndarray, tolerance_pct: float,
                      *, overwrite: bool = False) -> np.ndarray:
    """:func:`confluence` on float64 arrays (support band ``lo``/``hi`` and EMA ``w``, price
    units): a bool array, True where the EMA is within ``tolerance_pct`` % of itself from the
    band. ``overwrite``: ``lo`` and ``hi`` are the caller's own scratch arrays, worked in
    (no per-bar temporaries). ValueError unless ``tolerance_pct`` is a number >= 0."""
    if not (isinstance(tolerance_pct, int | float) and math.isfinite(tolerance_pct)
            and tolerance_pct >= 0):
        raise ValueError(f"tolerance_pct must be a number >= 0, got {tolerance_pct!r}")
    with np.errstate(invalid="ignore"):
        # max(lo - w, w - hi, 0) worked out in one array (the same values as nested maxima)
        gap = np.subtract(lo, w, out=lo if overwrite else None)
        above = np.subtract(w, hi, out=hi if overwrite else None)
        np.maximum(gap, above, out=gap)
        np.maximum(gap, 0.0, out=gap)
        ok = gap <= np.multiply(tolerance_pct / 100.0, w, out=above)
    ok &= ~np.isnan(gap)
    ok &= w > 0
    return ok


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
    user_df, df = df, to_canonical(df)
    held = signal_columns(df, params, flip_result,
                          (rsi_period, rsi_oversold, rsi_deep, rsi_overbought))
    # every column but the close decoded; the close is the candles' own, copy-on-write (not
    # the copy a read of the compact frame makes of its read-only view)
    out = held.frame([c for c in held.columns if c != "close"])
    out.insert(int(held.columns.get_loc("close")), "close", df["close"].astype(np.float64))
    return like_input(out, user_df)


def signal_columns(
    df: pd.DataFrame,
    params: LevelParams,
    flip_result: FlipResult | None = None,
    rsi: tuple[int, float, float, float] = (14, 30.0, 20.0, 70.0),
) -> CompactFrame:
    """:func:`signal_frame`'s columns held compactly (:class:`data.perbar.CompactFrame`) for
    the level parameters ``params``, ``flip_result`` (as :func:`signal_frame`'s) and ``rsi``
    (:func:`signal_frame`'s ``rsi_period``, ``rsi_oversold``, ``rsi_deep`` and
    ``rsi_overbought``), never as a dense frame: the four zone groups as the S/R engine's
    int32 codes into its table (16 bytes per bar instead of 96), columns that rarely change as
    runs, ``close`` as a view of the candles' own (read-only). ``.frame()`` reads back
    :func:`signal_frame`'s values bit for bit (on ``to_canonical(df)``'s index);
    ``.column(name)`` one column. Every other array is this frame's own (nothing another
    caller holds, inside :mod:`indicators.memo` too). The strategies build their signals on it
    (issue 17: the peak memory of a long backtest)."""
    rsi_period, rsi_oversold, rsi_deep, rsi_overbought = rsi
    check_rsi_thresholds(rsi_oversold, rsi_deep, rsi_overbought)
    df = to_canonical(df)
    idx = df.index
    close = df["close"]
    wema_period, confluence_pct = params.wema_period, params.confluence_pct
    if flip_result is not None:
        flip_result.check(df.index, params)
    res = flip_result if flip_result is not None else flips(df, params=params)
    held = res.zone_bars
    if not isinstance(held, ZoneBars):  # a result a caller built with a DataFrame of bars
        held = ZoneBars.of_frame(held)

    close_np = close.to_numpy(dtype=np.float64)
    rsi_values = np.asarray(ta_rsi(close_np, rsi_period), dtype=np.float64)
    state = oversold(pd.Series(rsi_values, index=idx, copy=False), rsi_oversold, rsi_deep,
                     rsi_overbought)
    wname = f"wema{wema_period}"
    # a Series on the same index is held copy-on-write (the memo may share it)
    wema_s = weekly_ema_or_nan(df, wema_period).astype(np.float64)
    wema = wema_s.to_numpy()
    groups = {name: ZoneGroup(*held.group(name)) for name in ZONE_GROUPS}
    # (the decoded bands are this call's own: worked in)
    conf = confluence_values(held.column("support_low"), held.column("support_high"), wema,
                             confluence_pct, overwrite=True)
    atr = np.asarray(ta_atr(df["high"].to_numpy(dtype=np.float64),
                            df["low"].to_numpy(dtype=np.float64), close_np,
                            res.params.atr_period), dtype=np.float64)
    flag = {name: held.column(name) for name in FLAG_COLUMNS}  # copies: the memo's are shared
    columns = [
        ("close", close_np), ("rsi", rsi_values), ("rsi_state", state.array), (wname, wema_s),
        ("support", groups["support"]), ("resistance", groups["resistance"]),
        # proximity_pct of the close, worked out when read (~8 bytes per bar each, held)
        ("dist_support_pct", Distance("close", "support")),
        ("dist_resistance_pct", Distance("close", "resistance")),
        ("dist_wema_pct", Distance("close", wname)), ("confluence", conf),
        ("breakdown", flag["breakdown"]), ("breakout", flag["breakout"]),
        ("flipped_resistance", groups["flipped_resistance"]),
        ("flipped_support", groups["flipped_support"]),
        ("retest_rejected", flag["retest_rejected"]), ("retest_held", flag["retest_held"]),
        ("atr", atr),
    ]
    return CompactFrame.build(idx, columns)
