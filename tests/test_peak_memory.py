"""What a long backtest holds at its peak (issue 17): the strategies let the S/R engine's
events (and a zone log they do not read) go before their signal frame is built, weekly bins
are worked out as int64 nanoseconds in place, and the peak of a whole run stays bounded."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from backtests import run
from data.perbar import CompactFrame, compact, distance_pct
from data.resample import bin_groups, bin_starts, epoch_ns, period_start, period_start_ns
from indicators.flips import (
    BAR_COLUMNS,
    ZONE_GROUPS,
    FlipResult,
    ZoneBars,
    flips,
    flips_for_signals,
)
from indicators.keylevels import weekly_ema_or_nan, weekly_swing_levels, zone_log
from indicators.levels import LevelParams, run_engine
from indicators.memo import IndicatorMemo, sharing
from indicators.pivots import pivot_arrays
from indicators.signals import confluence_values, proximity_pct, signal_columns, signal_frame
from strategies import Breakdown, OversoldBounce
from strategies.base import Signals
from tests.lookahead import ohlc_frame


@pytest.mark.parametrize("timeframe", ["1w", "2w", "1d", "4h", "15m"])
@pytest.mark.parametrize("unit", ["ns", "us", "s"])
def test_period_start_ns_is_period_start(timeframe, unit):
    idx = pd.date_range("1969-12-20", periods=3_000, freq="37min", tz="UTC", unit=unit)
    before = idx.asi8.copy()
    want = period_start(idx, timeframe)
    got = period_start_ns(idx, timeframe)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want.as_unit("ns").asi8)
    np.testing.assert_array_equal(epoch_ns(idx), idx.as_unit("ns").asi8)
    np.testing.assert_array_equal(idx.asi8, before)  # worked out in place, but not in the index


def test_flip_result_for_signals_keeps_bars_and_log_only():
    df = ohlc_frame(3_000, "1h", seed=1)
    full = flips(df)
    slim = full.for_signals(keep_log=False)
    assert len(full.events) > 10 and len(slim.events) == 0
    assert list(slim.events.columns) == list(full.events.columns)
    assert (slim.events.dtypes == full.events.dtypes).all()
    pd.testing.assert_frame_equal(slim.bars, full.bars)
    assert slim.zone_changes == () and len(full.zone_changes) == 4
    kept = full.for_signals(keep_log=True)
    assert all(a is b for a, b in zip(kept.zone_changes, full.zone_changes, strict=True))
    with sharing(IndicatorMemo(df)):  # the memo keeps its result's events for the others
        flips(df).for_signals(keep_log=False)
        assert len(flips(df).events) == len(full.events)


@pytest.mark.parametrize("strategy", [Breakdown(target="r_multiple"), Breakdown(),
                                      OversoldBounce()])
@pytest.mark.parametrize("start_bar", [0, 40_000])
def test_peak_bytes_per_bar_of_a_long_run(strategy, start_bar):
    # (a trading window from start_bar: its indicator rows are cut compactly, not decoded
    # whole to be cut, which peaked at ~230-236 bytes per bar on 1M bars)
    n = 200_000
    df = ohlc_frame(n, "1m", seed=42, volatility=0.002)
    start = df.index[start_bar]
    # every kernel of its path compiled outside the measurement
    run(df.iloc[:20_000], strategy, start=df.index[start_bar // 10])
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        res = run(df, strategy, start=start)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert len(res.trades) > 100
    # 88-99 bytes per bar measured at 200k bars (~265 at 250k before the S/R engine wrote
    # zone codes, ~300-365 before the issue-17 changes); the margin is for other numpy/pandas
    # versions, not for a dense per-bar frame (its S/R bands alone are 96)
    assert peak / n < 125, f"{peak / n:.0f} bytes per bar"


def test_compact_zone_codes_with_a_small_hash_table_are_the_default_ones():
    # more distinct zones than the starting hash table holds: it grows, the codes stay
    rng = np.random.default_rng(3)
    n = 40_000
    centre = np.repeat(rng.random(n // 4) * 100.0, 4)
    centre[::7] = np.nan
    frame = pd.DataFrame({"support": centre, "support_low": centre - 1.0,
                          "support_high": centre + 1.0})
    packed = compact(frame)
    codes, _table = packed.zones[(0, 1, 2)]
    want, _ = pd.factorize(centre.view(np.int64), use_na_sentinel=False)
    np.testing.assert_array_equal(codes, want)
    pd.testing.assert_frame_equal(packed.frame(), frame, check_exact=True)


def test_signal_frame_columns_are_its_own_inside_a_memo():
    # the frame takes its fresh per-bar arrays without copying them; what the memo shares
    # (RSI, ATR, the weekly EMA, the flips) must still not be written through by a caller
    df = ohlc_frame(12_000, "1h", seed=6)
    with sharing(IndicatorMemo(df)):
        first = signal_frame(df)
        want = first.copy(deep=True)
        for col in ("rsi", "atr", "wema200", "dist_support_pct", "support", "confluence"):
            first.loc[first.index[5_000:], col] = first[col].iloc[0]
        again = signal_frame(df)
    pd.testing.assert_frame_equal(again, want, check_exact=True)


def test_proximity_pct_in_place_equals_the_formula():
    rng = np.random.default_rng(8)
    price = rng.random(1_000) * 100.0
    level = rng.random(1_000) * 100.0 - 5.0  # some levels <= 0: NaN there
    level[::50] = np.nan
    lv = np.where(level > 0, level, np.nan)
    want = (price - lv) / lv * 100.0
    np.testing.assert_array_equal(proximity_pct(price, level), want)
    assert proximity_pct(110.0, 100.0) == (110.0 - 100.0) / 100.0 * 100.0


def _bits_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.columns.equals(b.columns) and list(a.dtypes) == list(b.dtypes)
    for c in a.columns:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if x.dtype == np.float64:  # NaN payloads and the sign of zero too
            assert np.array_equal(x.view(np.int64), y.view(np.int64)), c


def _dense_bars(df: pd.DataFrame, params: LevelParams) -> pd.DataFrame:
    """The per-bar flip columns as the engine wrote them before the codes: each zone's centre,
    low and high replayed from the zone log up to each bar (an independent decoding)."""
    out, _atr, _piv = run_engine(df, params, True, want_log=True)
    lf, li = out.log_f, out.log_i
    cols = {}
    for g, name in enumerate(ZONE_GROUPS):
        codes = out.codes[g]
        assert codes.dtype == np.int32 and codes.min() >= -1 and codes.max() < len(lf)
        rows = np.flatnonzero(codes >= 0)
        # a code is the zone's latest log row written on or before its bar
        assert (li[codes[rows], 0] <= rows).all()
        for j, k in enumerate(("", "_low", "_high")):
            v = np.full(len(df), np.nan)
            v[rows] = lf[codes[rows], j]
            cols[name + k] = v
    return pd.DataFrame(cols, index=df.index)


@pytest.mark.parametrize("kw", [{}, {"confirm_closes": 0}, {"left": 3, "right": 3,
                                                             "buffer_pct": 0.5}])
def test_zone_codes_decode_to_the_zone_log_bands(kw):
    df = ohlc_frame(6_000, "15m", seed=4, volatility=0.004)
    params = LevelParams(**kw)
    res = flips(df, params=params)
    bars = res.bars
    assert res.bars is bars  # decoded once, then the result's own frame
    want = _dense_bars(df, params)
    for c in want.columns:
        np.testing.assert_array_equal(bars[c].to_numpy().view(np.int64),
                                      want[c].to_numpy().view(np.int64), err_msg=c)
    assert list(bars.columns) == list(BAR_COLUMNS)
    # a result built with a DataFrame of bars holds them exactly too
    again = ZoneBars.of_frame(bars).frame()
    _bits_equal(again, bars)
    # copies share the held codes, not a decoded frame (writes stay in their own)
    copy = res.shared_copy()
    copy.bars.loc[copy.bars.index[10:], "support"] = -1.0
    _bits_equal(res.bars, flips(df, params=params).bars)


@pytest.mark.parametrize("keep_log", [False, True])
def test_flips_for_signals_outside_a_memo_keeps_no_events_and_equals_for_signals(keep_log):
    df = ohlc_frame(8_000, "1h", seed=5)
    params = LevelParams(major_score=3.0)
    want = flips(df, params=params).for_signals(keep_log)
    got = flips_for_signals(df, params, keep_log)
    assert got.params == want.params
    _bits_equal(got.bars, want.bars)
    assert got.events.empty and list(got.events.dtypes) == list(want.events.dtypes)
    assert len(got.zone_changes) == len(want.zone_changes)
    for a, b in zip(got.zone_changes, want.zone_changes, strict=True):
        np.testing.assert_array_equal(a, b)
    with sharing(IndicatorMemo(df)):  # shared: the run with its events, for the others
        flips_for_signals(df, params, keep_log)
        assert len(flips(df, params=params).events) > 10


@pytest.mark.parametrize("kw", [{}, {"rsi_period": 7, "confluence_pct": 1.0}])
def test_signal_columns_read_back_as_the_signal_frame(btc_hourly, kw):
    params = LevelParams(confluence_pct=kw.get("confluence_pct", 3.0))
    rsi = (kw.get("rsi_period", 14), 30.0, 20.0, 70.0)
    for df in (btc_hourly, ohlc_frame(30_000, "1m", seed=8, volatility=0.002)):
        held = signal_columns(df, params, None, rsi)
        assert len(held.zones) == 4  # the engine's codes, never the dense bands
        _bits_equal(held.frame(), signal_frame(df, **kw))
        assert np.array_equal(held.column("support_low"), signal_frame(df, **kw)["support_low"],
                              equal_nan=True)
    # a flip result a caller built with a DataFrame of bars gives the same columns
    res = flips(btc_hourly)
    mine = FlipResult(events=res.events, bars=res.bars.copy(), params=res.params)
    _bits_equal(signal_columns(btc_hourly, LevelParams(), mine).frame(),
                signal_frame(btc_hourly))


def test_signals_hold_a_compact_frame_and_read_it_as_a_dataframe():
    df = ohlc_frame(5_000, "1h", seed=2)
    sig = Breakdown().signals(df)
    held = sig.held_indicators
    assert isinstance(held, CompactFrame)
    assert sig.validate(len(df)).held_indicators is held
    dense = sig.indicators
    assert isinstance(dense, pd.DataFrame) and "planned_rr" in dense.columns
    _bits_equal(dense, Breakdown().signals(df).indicators)
    # once read, the frame is the signals' own: a change to it is what the engines take
    assert sig.indicators is dense and sig.held_indicators is dense
    _bits_equal(sig.from_bar(100).indicators, dense.iloc[100:])
    changed = Breakdown().signals(df)
    changed.indicators["mine"] = 1.0
    assert "mine" in run(df, Breakdown(), signals=changed).indicators
    # a result takes it as it is, and reads back the same frame
    res = run(df, Breakdown())
    _bits_equal(res.indicators, dense)
    # a DataFrame given by a user stays a DataFrame
    mine = Signals.from_entries(np.zeros(len(df), np.int8), indicators=dense)
    assert mine.indicators is dense and mine.held_indicators is dense
    _bits_equal(run(df, Breakdown(), signals=mine).indicators, dense)


def test_in_place_distances_and_confluence_equal_the_formulas():
    rng = np.random.default_rng(9)
    price = rng.random(2_000) * 100.0
    level = rng.random(2_000) * 100.0 - 5.0
    level[::40] = np.nan
    want = distance_pct(price, level)
    scratch = level.copy()
    got = distance_pct(price, scratch, overwrite=True)
    assert np.array_equal(got.view(np.int64), want.view(np.int64))
    assert np.array_equal(level > 0, scratch > 0)  # only the others became NaN
    lo, hi, w = level, level + rng.random(2_000) * 5.0, rng.random(2_000) * 100.0
    want = confluence_values(lo, hi, w, 3.0)
    args = lo.copy(), hi.copy()
    np.testing.assert_array_equal(confluence_values(*args, w, 3.0, overwrite=True), want)
    np.testing.assert_array_equal(confluence_values(lo, hi, w, 3.0), want)  # untouched


@pytest.mark.parametrize("unit", ["ns", "us", "s"])
def test_weekly_swing_levels_from_int64_bins_are_the_groupby_ones(unit):
    df = ohlc_frame(40_000, "15m", seed=11, volatility=0.004)
    df = df.set_axis(df.index.as_unit(unit))
    got = weekly_swing_levels(df, 2)
    # the weekly DatetimeIndex route the bins replaced
    wk = pd.DataFrame({"high": df["high"].to_numpy(), "low": df["low"].to_numpy()},
                      index=period_start(df.index, "1w")).groupby(level=0).agg(
        {"high": "max", "low": "min"})
    piv = pivot_arrays(wk["high"].to_numpy(), wk["low"].to_numpy(), 2, 2)
    week_end = (wk.index + pd.Timedelta(weeks=1)).as_unit("ns").asi8
    bar_close = (df.index + pd.Timedelta(minutes=15)).as_unit("ns").asi8
    for arr, kind in ((piv.pivot_high, "high"), (piv.pivot_low, "low")):
        j = np.flatnonzero(~np.isnan(arr))
        known = np.searchsorted(bar_close, week_end[j], side="left")
        mine = got[got["kind"] == kind]
        np.testing.assert_array_equal(mine["price"].to_numpy(), arr[j][known < len(df)])
        np.testing.assert_array_equal(mine["known_bar"].to_numpy(), known[known < len(df)])
    assert len(got) > 10


def test_zone_log_takes_the_weekly_ema_given_and_holds_int32_rows():
    df = ohlc_frame(6_000, "4h", seed=12)
    alone = zone_log(df)
    assert alone.li.dtype == np.int32 and len(alone.li) > 100
    given = weekly_ema_or_nan(df, 200).to_numpy().copy()
    reused = zone_log(df, wema=given)
    np.testing.assert_array_equal(reused.wema, alone.wema)
    np.testing.assert_array_equal(reused.li, alone.li)
    with pytest.raises(ValueError, match="one value per bar"):
        zone_log(df, wema=given[:-1])


@pytest.mark.parametrize("timeframe", ["1w", "2w", "1d", "4h"])
@pytest.mark.parametrize("unit", ["ns", "s"])
def test_bin_starts_are_the_first_bars_of_the_bin_groups(timeframe, unit):
    idx = pd.date_range("1969-12-20", periods=5_000, freq="37min", tz="UTC", unit=unit)
    idx = idx[np.random.default_rng(2).random(len(idx)) < 0.3]  # gaps: some bins hold no bar
    keys = period_start_ns(idx, timeframe)
    _group, want, _last = bin_groups(keys)
    first, start = bin_starts(idx, timeframe)
    np.testing.assert_array_equal(first, want)
    np.testing.assert_array_equal(start, keys[want])
    assert bin_starts(idx[:0], timeframe)[0].size == 0


def test_a_mostly_nan_column_is_held_sparse_and_read_back_exactly():
    idx = pd.date_range("2024-01-01", periods=4_000, freq="1min", tz="UTC")
    rr = np.full(len(idx), np.nan)
    rr[::7] = np.arange(len(rr[::7])) * 0.5  # changes too often for runs
    rr[3] = -np.nan  # another NaN bit pattern is a value of its own
    rr[5] = -0.0
    dense = np.random.default_rng(1).random(len(idx))
    held = CompactFrame.build(idx, [("x", dense)]).with_column("planned_rr", rr)
    assert list(held.sparse) == [1] and list(held.dense) == [0]
    assert held.nbytes < dense.nbytes + rr.nbytes / 2
    got = held.column("planned_rr")
    assert np.array_equal(got.view(np.int64), rr.view(np.int64))
    _bits_equal(held.frame(), pd.DataFrame({"x": dense, "planned_rr": rr}, index=idx))
    busy = rr.copy()
    busy[::2] = 1.0  # NaN on fewer than 3 bars in 4: dense
    assert 1 in CompactFrame.build(idx, [("x", dense), ("r", busy)]).dense
