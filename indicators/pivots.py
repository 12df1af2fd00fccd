"""Causal swing points (pivot highs and lows), stamped on the bar where they become known.

A pivot high at bar ``i`` needs ``right`` later bars to be recognised, so it is only *known* at
the close of bar ``i + right``. :func:`pivots` writes the pivot's price on that confirming bar and
the pivot's own bar in a separate column; nothing is ever written into the past (unlike
``scipy.signal.argrelextrema`` or backtrader's ``Fractal``, which place the value on bar ``i``).

Definition (``left``/``right`` in bars):

* pivot high at ``i``: ``high[i] > high[j]`` for the ``left`` bars before ``i`` and
  ``high[i] >= high[j]`` for the ``right`` bars after ``i``;
* pivot low at ``i``: ``low[i] < low[j]`` for the ``left`` bars before and ``low[i] <= low[j]``
  for the ``right`` bars after.

Ties: in a run of equal highs (a flat top) only the **first** bar of the run is the pivot (the
later equal bars fail the strict left-hand test), so one plateau gives one pivot, confirmed
``right`` bars after its first bar. A bar needs a full left window (``i >= left``); any NaN in the
window means no pivot.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np
import pandas as pd

from data import jit

__all__ = ["PivotArrays", "pivot_arrays", "pivot_bars", "pivots"]


class PivotArrays(NamedTuple):
    """Pivots for plain-array input, every array aligned to the input bars.

    ``pivot_high``/``pivot_low``: price of the pivot confirmed on this bar, NaN elsewhere.
    ``pivot_high_bar``/``pivot_low_bar``: 0-based index of that pivot's own bar
    (``this bar - right``), -1 where there is none.
    """

    pivot_high: np.ndarray
    pivot_low: np.ndarray
    pivot_high_bar: np.ndarray
    pivot_low_bar: np.ndarray


@nb.njit(cache=True)
def _pivot_kernel(high, low, left, right):  # pragma: no cover - compiled
    # The pivots' own bars, ascending (at most one per bar each; np.empty: only the slots
    # written are touched).
    n = high.shape[0]
    hb = np.empty(n, np.int64)
    lb = np.empty(n, np.int64)
    nh = 0
    nl = 0
    for c in range(left + right, n):
        i = c - right
        h = high[i]
        lo = low[i]
        is_h = h == h  # NaN never makes a pivot
        is_l = lo == lo
        for j in range(i - left, i):
            if not (h > high[j]):
                is_h = False
            if not (lo < low[j]):
                is_l = False
        for j in range(i + 1, c + 1):
            if not (h >= high[j]):
                is_h = False
            if not (lo <= low[j]):
                is_l = False
        if is_h:
            hb[nh] = i
            nh += 1
        if is_l:
            lb[nl] = i
            nl += 1
    return hb[:nh], lb[:nl]


def _check_params(left: int, right: int) -> None:
    if int(left) != left or left < 1:
        raise ValueError(f"pivots: left must be an integer >= 1, got {left!r}")
    if int(right) != right or right < 0:
        raise ValueError(f"pivots: right must be an integer >= 0, got {right!r}")


def pivot_arrays(high: np.ndarray, low: np.ndarray, left: int = 5, right: int = 5) -> PivotArrays:
    """Array core of :func:`pivots` (float64 arrays in, :class:`PivotArrays` out)."""
    _check_params(left, right)
    h = np.ascontiguousarray(high, dtype=np.float64)
    lo = np.ascontiguousarray(low, dtype=np.float64)
    if h.ndim != 1 or lo.shape != h.shape:
        raise ValueError(
            f"pivots: high and low must be 1-D and the same length, got {h.shape} and {lo.shape}"
        )
    hb, lb = pivot_bars(h, lo, left, right)
    n = len(h)
    ph = np.full(n, np.nan)
    pl = np.full(n, np.nan)
    phb = np.full(n, -1, np.int64)
    plb = np.full(n, -1, np.int64)
    ph[hb + int(right)] = h[hb]
    phb[hb + int(right)] = hb
    pl[lb + int(right)] = lo[lb]
    plb[lb + int(right)] = lb
    return PivotArrays(ph, pl, phb, plb)


def pivot_bars(high: np.ndarray, low: np.ndarray, left: int = 5,
               right: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The pivots of :func:`pivot_arrays` as two ascending int64 arrays of the pivots' own bars
    (highs, lows); each is confirmed ``right`` bars later. ``high``/``low``: contiguous float64
    arrays of the same length. Compact: on minute bars ~6 % of bars each, instead of four
    full-length arrays."""
    _check_params(left, right)
    h = np.ascontiguousarray(high, dtype=np.float64)
    lo = np.ascontiguousarray(low, dtype=np.float64)
    return jit.call(_pivot_kernel, h, lo, int(left), int(right), work=len(h))


def pivots(
    high: pd.Series | np.ndarray, low: pd.Series | np.ndarray, left: int = 5, right: int = 5
) -> pd.DataFrame | PivotArrays:
    """Confirmed pivot highs/lows, placed on the bar where they are confirmed (``i + right``).

    Args:
        high, low: bar highs and lows (Series sharing an index, or 1-D arrays).
        left: bars before the pivot that must be strictly lower (higher for a low).
        right: bars after the pivot that must not exceed it; also the confirmation delay.

    Returns:
        For Series input a DataFrame on the same index with columns ``pivot_high`` and
        ``pivot_low`` (price, NaN when no pivot is confirmed on that bar), ``pivot_high_bar`` and
        ``pivot_low_bar`` (int64 position of the pivot's own bar, -1 when none) and, for a
        DatetimeIndex, ``pivot_high_time``/``pivot_low_time`` (the pivot bar's timestamp, NaT when
        none). For array input a :class:`PivotArrays` named tuple of the first four.

    The value on bar t depends only on bars ``<= t`` (checked by truncation tests).
    """
    res = pivot_arrays(np.asarray(high, dtype=np.float64), np.asarray(low, dtype=np.float64),
                       left, right)
    if not isinstance(high, pd.Series):
        return res
    if isinstance(low, pd.Series) and not low.index.equals(high.index):
        raise ValueError("pivots: high and low Series must share the same index")
    idx = high.index
    out = pd.DataFrame(
        {
            "pivot_high": res.pivot_high,
            "pivot_low": res.pivot_low,
            "pivot_high_bar": res.pivot_high_bar,
            "pivot_low_bar": res.pivot_low_bar,
        },
        index=idx,
    )
    if isinstance(idx, pd.DatetimeIndex):
        for side in ("high", "low"):
            bars = res.pivot_high_bar if side == "high" else res.pivot_low_bar
            times = pd.Series(pd.NaT, index=idx, dtype=idx.dtype)
            has = bars >= 0
            times.iloc[np.flatnonzero(has)] = idx[bars[has]]
            out[f"pivot_{side}_time"] = times
    return out
