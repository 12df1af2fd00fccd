"""Higher-timeframe EMA on lower-timeframe bars; the headline is the 200-week EMA on daily bars.

The input bars (daily, intraday or weekly) are grouped into higher-timeframe bins with
:func:`data.resample.period_start` (weekly bins open **Monday 00:00 UTC**, as on Binance and
TradingView); the bin's close is the close of its last input bar. The EMA runs over those closes
with ``talib.EMA`` (so it is exactly TA-Lib's EMA of the weekly closes) and is mapped back onto
every input bar. Two modes say which weekly closes a bar may use:

``mode="closed"`` (default)
    Only completed weeks. On every input bar of week W the value is the EMA over the weekly
    closes up to and including week W-1. It changes on the first bar of a new week and stays flat
    through the week, like backtrader's resampled weekly data or TradingView's
    ``request.security(..., close[1], lookahead=barmerge.lookahead_on)``. Every week used ended at
    or before the open of the bar (bin end <= bar open < bar close), so nothing is taken from the
    future. Note that on the last bar of week W (Sunday on daily bars, Sunday 23:00 on hourly
    bars) week W has just ended but is still not included: the value moves at the next bar.
    Use ``developing`` for the value that includes it.

``mode="developing"``
    The running week's provisional close is the current bar's close, as a live chart shows it:
    ``value_t = prev + alpha * (close_t - prev)`` where ``prev`` is the closed EMA through week
    W-1 and ``alpha = 2 / (period + 1)``. On the last bar of a week it equals, exactly, the closed
    value shown on the first bar of the next week. While the EMA is seeding, it follows TA-Lib: the
    first value is the simple average of the first ``period`` weekly closes, the current close
    counting as the ``period``-th one.

Weeks are counted as the data has them:

* **A first partial week counts.** Data that starts mid-week (the Bitstamp daily file starts on
  a Friday) yields a first weekly close from fewer bars; it is still the real close of that week
  on that exchange, and TradingView's weekly chart shows it the same way, so it is the first of
  the ``period`` seed values. ``attrs["first_week_partial"]`` says when this happened.
* **A week with no bars at all** (a data gap) is absent: no close is invented, the EMA simply
  continues with the next week that has bars (so "week W-1" means the last week with data).

Seeding (how much history is needed): TA-Lib starts the EMA with the SMA of the first
``period`` weekly closes, so the first value needs ``period`` weeks (200 weeks ~ 3.8 years for the
200-week EMA); after that the seed keeps a weight of ``(1 - alpha) ** n`` n weeks later, which
falls below 1% only after 461 more weeks for period 200 (~8.8 years). Until then the value depends
on where the data starts. :func:`htf_ema_warmup` returns these figures, and the returned Series
carries them in ``attrs`` together with the first input bar that has a value and the first one
where the seed weight is below the tolerance.

Monthly input cannot be split into weeks: a :class:`~data.frame.DataError` says so.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numba as nb
import numpy as np
import pandas as pd
import talib
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from data.frame import DataError, like_input, parse_timeframe, to_canonical
from data.resample import bin_starts, coarser_bins, period_start

__all__ = ["HtfEmaWarmup", "htf_ema", "htf_ema_warmup", "weekly_ema"]

Mode = Literal["closed", "developing"]
_MODES = ("closed", "developing")


@dataclass(frozen=True)
class HtfEmaWarmup:
    """How much higher-timeframe history an EMA needs (TA-Lib seeding).

    Attributes:
        timeframe: the higher timeframe, e.g. ``"1w"``.
        period: EMA period in higher-timeframe bars.
        alpha: smoothing factor ``2 / (period + 1)``.
        seed_bars: bars needed for the first value (``period``: the seed is their SMA).
        settle_bars: further bars until the seed's weight ``(1 - alpha) ** n`` is below
            ``tolerance`` (461 for period 200 at 1%).
        tolerance: the seed-weight threshold used for ``settle_bars``.
        meaningful_bars: ``seed_bars + settle_bars``: total history before the value no longer
            depends (beyond ``tolerance``) on where the data starts.
    """

    timeframe: str
    period: int
    alpha: float
    seed_bars: int
    settle_bars: int
    tolerance: float
    meaningful_bars: int


def htf_ema_warmup(period: int, timeframe: str = "1w", tolerance: float = 0.01) -> HtfEmaWarmup:
    """Seeding facts of a ``period``-bar EMA on ``timeframe`` (see :class:`HtfEmaWarmup`).

    ``htf_ema_warmup(200)`` -> 200 seed weeks, then 461 weeks until the seed weighs < 1%.
    """
    p = _check_period(period)
    if not 0 < tolerance < 1:
        raise DataError(f"tolerance must be between 0 and 1, got {tolerance}")
    parse_timeframe(timeframe)
    alpha = 2.0 / (p + 1)
    # Smallest n with (1 - alpha)**n < tolerance. period 1 means alpha = 1: no memory at all.
    settle = 0 if alpha >= 1 else math.floor(math.log(tolerance) / math.log1p(-alpha)) + 1
    return HtfEmaWarmup(
        timeframe=str(timeframe),
        period=p,
        alpha=alpha,
        seed_bars=p,
        settle_bars=settle,
        tolerance=tolerance,
        meaningful_bars=p + settle,
    )


def _check_period(period: object) -> int:
    if isinstance(period, bool) or not isinstance(period, int | np.integer) or period < 1:
        raise DataError(
            f"EMA period must be a positive integer, got {period!r}",
            hint="e.g. weekly_ema(df, period=200)",
        )
    return int(period)


@intrinsic
def _fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """Fused multiply-add ``a * b + c`` with one rounding (LLVM's llvm.fma, always exact)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        d = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [d], ir.FunctionType(d, [d, d, d]))
        return builder.call(fn, args)

    return sig, codegen


@nb.njit(cache=True)
def _ema_step_fused(close: np.ndarray, prev: np.ndarray, k: float) -> np.ndarray:
    out = np.empty_like(close)
    for i in range(close.shape[0]):
        out[i] = _fma(close[i] - prev[i], k, prev[i])
    return out


@functools.cache
def _talib_ema_is_fused() -> bool:
    """Whether the TA-Lib C library computes its EMA step with a fused multiply-add.

    TA-Lib's step is ``((x - prev) * k) + prev``; compilers may fuse it into one FMA (GCC does on
    CPUs that have it), which changes the last bit of a fraction of a percent of results. To match
    TA-Lib bit for bit we ask it once, on inputs where the two roundings differ.
    """
    rng = np.random.default_rng(20_240_101)
    k = 2.0 / 3.0  # period 2
    for _ in range(100_000):
        x = rng.uniform(1.0, 100_000.0, 3)
        prev = (x[0] + x[1]) / 2.0  # TA-Lib's seed for period 2
        d = x[2] - prev
        plain = d * k + prev
        fused = float(Fraction(d) * Fraction(k) + Fraction(prev))
        if plain != fused:
            got = float(talib.EMA(x, timeperiod=2)[2])
            if got not in (plain, fused):
                raise RuntimeError(f"TA-Lib's EMA step gave {got}, neither {plain} nor {fused}")
            return got == fused
    return False  # pragma: no cover (a difference shows up within a few hundred draws)


def _ema_step(close: np.ndarray, prev: np.ndarray, k: float) -> np.ndarray:
    """One EMA step per bar, ``(close - prev) * k + prev``, rounded exactly as TA-Lib rounds it.

    So the developing value on a bin's last bar is bit-identical to TA-Lib's EMA of the bin
    closes (the closed value of the next bin), on any platform.
    """
    if _talib_ema_is_fused():
        return _ema_step_fused(close, prev, k)
    return (close - prev) * k + prev


def _bins(df: pd.DataFrame, timeframe: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group the bars of ``df`` into ``timeframe`` bins.

    Returns ``(count, first, last)``: the number of bars of each bin (in time order) and the
    positions of each bin's first and last bar (no per-bar array: a bin's value goes to its
    bars by ``np.repeat(values, count)``, the same as indexing by each bar's bin number).
    """
    _src_tf, _src, dst = coarser_bins(df, timeframe, "compute a {dst} EMA from {src} bars",
                                   user_sets="source")
    first, _start = bin_starts(df.index, dst)
    last = np.r_[first[1:] - 1, len(df) - 1]
    return last - first + 1, first, last


def htf_ema(
    df: pd.DataFrame,
    timeframe: str = "1w",
    period: int = 200,
    mode: Mode = "closed",
    *,
    tolerance: float = 0.01,
) -> pd.Series:
    """EMA of higher-timeframe closes, aligned to ``df``'s bars (see the module docstring).

    Args:
        df: candle frame (daily, intraday or weekly bars; any frame
            :func:`data.frame.to_canonical` accepts; ``attrs["timeframe"]`` is used when set,
            else the timeframe is inferred).
        timeframe: the higher timeframe, ``"1w"`` by default (weekly bins open Monday 00:00 UTC;
            others are aligned to 00:00 UTC). A whole multiple of the input timeframe.
        period: EMA period in higher-timeframe bars.
        mode: ``"closed"`` (completed bins only) or ``"developing"`` (the current close stands
            in for the running bin's close).
        tolerance: seed-weight threshold reported in ``attrs["settled_at"]``.

    Returns:
        float64 Series in price units on ``df``'s own index, named ``"ema_<period>_<timeframe>"``
        (``"..._developing"`` in developing mode); NaN until the EMA is seeded. ``attrs``:
        ``period``, ``timeframe``, ``mode``, ``seed_bars``, ``settle_bars``, ``tolerance``,
        ``first_valid_at`` (first input bar with a value, or None), ``settled_at`` (first input
        bar whose value gives the seed less than ``tolerance`` weight, or None) and
        ``first_week_partial`` (the data starts after the open of its first bin, e.g. mid-week).

    Raises:
        DataError: unusable frame (see :func:`data.frame.to_canonical`), monthly input, a
        timeframe that is not a multiple of the input's, misaligned bars, NaN/inf closes, bad
        period or mode.
    """
    user_df, df = df, to_canonical(df)
    p = _check_period(period)
    if mode not in _MODES:
        raise DataError(f"unknown mode {mode!r}", hint="use mode='closed' or mode='developing'")
    warm = htf_ema_warmup(p, timeframe, tolerance)
    close = df["close"].to_numpy()
    finite = np.isfinite(close)
    if not finite.all():
        pos = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"close is {close[pos]}; the EMA cannot skip a missing close",
            source=df.attrs.get("source"),
            timestamp=df.index[pos],
            hint="drop or repair the bar (data.validate reports such rows)",
        )
    n = len(df)
    out = np.empty(0)  # (every branch below makes its own per-bar array)
    first_week_partial = False
    if n:
        count, first, last = _bins(df, timeframe)
        bin_close = close[last]
        # TA-Lib's EMA over the bin closes: bit-exact with talib.EMA(weekly closes, period).
        bin_ema = talib.EMA(bin_close, timeperiod=p)
        prev = np.empty_like(bin_ema)  # EMA through the previous bin, per bin
        prev[0] = np.nan
        prev[1:] = bin_ema[:-1]
        if mode == "closed":
            out = np.repeat(prev, count)
        elif p == 1:
            # TA-Lib's EMA of period 1 returns its input untouched (no (x - prev) * 1 + prev
            # rounding), so the developing value is the current close itself.
            out = close.copy()
        else:
            out = _ema_step(close, np.repeat(prev, count), 2.0 / (p + 1))
            # Seeding bin (index p - 1): SMA of the p - 1 earlier closes and the current close,
            # summed in the same order as TA-Lib (a running sum from the first close).
            if len(first) >= p:
                seed_rows = slice(first[p - 1], last[p - 1] + 1)
                before = np.cumsum(bin_close[: p - 1])[-1] if p > 1 else 0.0
                out[seed_rows] = (before + close[seed_rows]) / p
        # Data starting after the open of its first bin (mid-week): that bin is partial.
        first_week_partial = bool(period_start(df.index[:1], timeframe)[0] != df.index[0])
        # Seed-weight bookkeeping: bin k's EMA (k >= p - 1) holds the seed with weight
        # (1 - alpha) ** (k - p + 1). Closed mode shows bin k - 1's EMA on bin k.
        shift = 1 if mode == "closed" else 0
        settled_bin = p - 1 + warm.settle_bars + shift
        settled_at = df.index[first[settled_bin]] if settled_bin < len(first) else None
    else:
        settled_at = None
    valid = np.flatnonzero(~np.isnan(out))
    name = f"ema_{p}_{timeframe}" + ("_developing" if mode == "developing" else "")
    res = pd.Series(out, index=df.index, name=name, copy=False)
    res.attrs.update(
        period=p,
        timeframe=str(timeframe),
        mode=mode,
        seed_bars=warm.seed_bars,
        settle_bars=warm.settle_bars,
        tolerance=tolerance,
        first_valid_at=df.index[valid[0]] if valid.size else None,
        settled_at=settled_at,
        first_week_partial=first_week_partial,
    )
    return like_input(res, user_df)


def weekly_ema(
    df: pd.DataFrame, period: int = 200, mode: Mode = "closed", *, tolerance: float = 0.01
) -> pd.Series:
    """The ``period``-week EMA (200 by default) on ``df``'s bars: ``htf_ema(df, "1w", ...)``.

    See :func:`htf_ema` and the module docstring for the two modes and the seeding facts.
    """
    return htf_ema(df, "1w", period, mode, tolerance=tolerance)

