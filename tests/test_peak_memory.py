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
from backtests.perbar import compact
from data.resample import epoch_ns, period_start, period_start_ns
from indicators.flips import flips
from indicators.memo import IndicatorMemo, sharing
from indicators.signals import proximity_pct, signal_frame
from strategies import Breakdown, OversoldBounce
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
def test_peak_bytes_per_bar_of_a_long_run(strategy):
    n = 200_000
    df = ohlc_frame(n, "1m", seed=42, volatility=0.002)
    run(df.iloc[:5_000], strategy)  # compiled and warm outside the measurement
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        res = run(df, strategy)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert len(res.trades) > 100
    # ~265 bytes per bar measured at 250k bars (~300-365 before the issue-17 changes)
    assert peak / n < 290, f"{peak / n:.0f} bytes per bar"


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
