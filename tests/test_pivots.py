"""Pivots: hand-checked answers, ties, no repainting (truncation) on real and random data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from indicators.pivots import PivotArrays, pivot_arrays, pivot_bars, pivots
from tests.lookahead import assert_causal, ohlc_paths

H = np.array([1, 2, 3, 5, 3, 2, 1, 2, 3, 3, 2, 1.0])
L = H - 0.5


def test_known_pivots_are_stamped_on_the_confirming_bar():
    res = pivots(H, L, left=2, right=2)
    assert isinstance(res, PivotArrays)
    # the peak 5 at bar 3 is known at bar 5 (3 + right), nowhere else
    assert np.flatnonzero(~np.isnan(res.pivot_high)).tolist() == [5, 10]
    assert res.pivot_high[5] == 5.0 and res.pivot_high_bar[5] == 3
    # flat top 3, 3 at bars 8 and 9: only the first bar of the plateau is the pivot
    assert res.pivot_high[10] == 3.0 and res.pivot_high_bar[10] == 8
    # the trough 0.5 at bar 6 is confirmed at bar 8
    assert np.flatnonzero(~np.isnan(res.pivot_low)).tolist() == [8]
    assert res.pivot_low[8] == 0.5 and res.pivot_low_bar[8] == 6
    assert (res.pivot_high_bar[np.isnan(res.pivot_high)] == -1).all()


def test_plateau_of_equal_lows_gives_one_pivot_on_its_first_bar():
    low = np.array([5, 4, 3, 3, 3, 4, 5, 6.0])
    res = pivots(low + 1, low, left=2, right=2)
    assert np.flatnonzero(~np.isnan(res.pivot_low)).tolist() == [4]
    assert res.pivot_low_bar[4] == 2


def test_right_zero_and_full_left_window():
    h = np.array([3, 1, 2, 4, 1.0])
    res = pivots(h, h, left=2, right=0)
    # bar 1 would be higher than nothing on its left: a full left window is required
    assert np.flatnonzero(~np.isnan(res.pivot_high)).tolist() == [3]


def test_series_input_gives_frame_with_times():
    idx = pd.date_range("2024-01-01", periods=len(H), freq="D", tz="UTC", unit="ns")
    out = pivots(pd.Series(H, idx), pd.Series(L, idx), 2, 2)
    assert list(out.columns) == ["pivot_high", "pivot_low", "pivot_high_bar", "pivot_low_bar",
                                 "pivot_high_time", "pivot_low_time"]
    assert out["pivot_high_time"].iloc[5] == idx[3]
    assert out["pivot_low_time"].iloc[8] == idx[6]
    assert out["pivot_high_time"].isna().sum() == len(H) - 2


def test_nan_makes_no_pivot_and_bad_params_raise():
    h = np.array([1, 2, np.nan, 2, 1, 0.0])
    assert np.isnan(pivots(h, h, 1, 1).pivot_high).all()
    with pytest.raises(ValueError, match="left"):
        pivots(H, L, left=0)
    with pytest.raises(ValueError, match="right"):
        pivots(H, L, right=-1)
    with pytest.raises(ValueError, match="same length"):
        pivots(H, L[:-1])


def _brute(high, low, left, right):
    n = len(high)
    ph = np.full(n, np.nan)
    for c in range(n):
        i = c - right
        if i - left < 0:
            continue
        if all(high[i] > high[j] for j in range(i - left, i)) and all(
            high[i] >= high[j] for j in range(i + 1, c + 1)
        ):
            ph[c] = high[i]
    return ph


def test_matches_brute_force_definition():
    rng = np.random.default_rng(1)
    h = np.round(rng.normal(100, 2, 400), 0)  # rounded: many ties
    for left, right in ((1, 1), (3, 2), (5, 5)):
        got = pivots(h, h - 1, left, right).pivot_high
        np.testing.assert_array_equal(got, _brute(h, h - 1, left, right))


@pytest.mark.shared_data
def test_pivots_causal_on_real_daily(btc_daily):
    n = assert_causal(lambda d: pivots(d["high"], d["low"], 5, 5), btc_daily, cut_points=40)
    assert n >= 30


@given(ohlc_paths(min_bars=2, max_bars=300))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_pivots_causal_random(df):
    assert_causal(lambda d: pivots(d["high"], d["low"], 3, 2), df, cut_points=6)


def _pivot_bars_by_definition(high, low, left, right):
    """The module docstring's definition, bar by bar (a NaN anywhere in the window: no pivot)."""
    hb, lb = [], []
    for i in range(left, len(high) - right):
        before, after = slice(i - left, i), slice(i + 1, i + right + 1)
        if (np.all(high[i] > high[before]) and np.all(high[i] >= high[after])):
            hb.append(i)
        if (np.all(low[i] < low[before]) and np.all(low[i] <= low[after])):
            lb.append(i)
    return np.array(hb, dtype=np.int64), np.array(lb, dtype=np.int64)


@pytest.mark.parametrize(("left", "right"), [(1, 0), (2, 2), (5, 5), (3, 7)])
def test_pivot_bars_and_arrays_follow_the_definition(left, right):
    rng = np.random.default_rng(left * 10 + right)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 3000)))
    high = close * (1 + np.abs(rng.normal(0, 0.003, 3000)))
    low = close * (1 - np.abs(rng.normal(0, 0.003, 3000)))
    high[rng.random(3000) < 0.01] = np.nan
    high[500:520] = high[499]  # a plateau
    hb, lb = pivot_bars(high, low, left, right)
    want_h, want_l = _pivot_bars_by_definition(high, low, left, right)
    assert hb.dtype == lb.dtype == np.int64 and len(hb) > 50 and len(lb) > 50
    np.testing.assert_array_equal(hb, want_h)
    np.testing.assert_array_equal(lb, want_l)
    # the per-bar form: each pivot on its confirming bar (``right`` later) at its own price
    arr = pivot_arrays(high, low, left, right)
    np.testing.assert_array_equal(np.flatnonzero(arr.pivot_high_bar >= 0), hb + right)
    np.testing.assert_array_equal(arr.pivot_high_bar[hb + right], hb)
    np.testing.assert_array_equal(arr.pivot_low_bar[lb + right], lb)
    np.testing.assert_array_equal(arr.pivot_high[hb + right], high[hb])
    np.testing.assert_array_equal(arr.pivot_low[lb + right], low[lb])
    assert np.isnan(arr.pivot_high).sum() == 3000 - len(hb)
    assert (arr.pivot_low_bar >= 0).sum() == len(lb)
