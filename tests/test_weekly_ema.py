"""indicators.htf: the 200-week EMA (and other higher-timeframe EMAs) on daily/intraday bars."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from data.frame import DataError
from data.resample import period_start, resample
from indicators import htf_ema, htf_ema_warmup, weekly_ema
from indicators.htf import _ema_step
from tests.lookahead import assert_causal, calendar_cut_points, ohlc_frame, ohlc_paths

# The intraday fixtures are real slices (tests/data/real): 22 weeks of hourly, 5 of 2-hour bars.
REAL = [("btc_daily_bitstamp", 200), ("btc_daily", 50), ("btc_hourly", 8), ("btc_2h", 2)]


def pandas_reference_closed(df: pd.DataFrame, period: int) -> pd.Series:
    """Independent reference: pandas resample + ewm seeded like TA-Lib, shifted, ffilled."""
    wk = df["close"].resample("W-MON", closed="left", label="left").last().dropna()
    assert (wk.index.day_of_week == 0).all()  # weekly bins labelled by their Monday open
    vals = wk.to_numpy()
    ema = np.full(len(vals), np.nan)
    if len(vals) >= period:
        seeded = pd.Series(vals[period - 1 :].copy())
        seeded.iloc[0] = vals[:period].mean()  # TA-Lib's seed: SMA of the first `period` closes
        ema[period - 1 :] = seeded.ewm(alpha=2 / (period + 1), adjust=False).mean().to_numpy()
    shifted = pd.Series(ema, index=wk.index + pd.Timedelta(weeks=1))  # usable from next Monday
    return shifted.reindex(df.index, method="ffill")


def talib_weekly(df: pd.DataFrame, period: int) -> pd.Series:
    """talib.EMA over data.resample's weekly closes, indexed by week open."""
    wk = resample(df, "1w")
    return pd.Series(talib.EMA(wk["close"].to_numpy(), period), index=wk.index)


# -- closed mode ------------------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize(("fixture", "period"), REAL)
def test_closed_equals_pandas_reference(request, fixture, period):
    df = request.getfixturevalue(fixture)
    ours = weekly_ema(df, period)
    ref = pandas_reference_closed(df, period)
    assert ours.index.equals(df.index) and ours.name == f"ema_{period}_1w"
    np.testing.assert_array_equal(np.isnan(ours.to_numpy()), np.isnan(ref.to_numpy()))
    assert ours.notna().sum() > len(df) / 3  # long enough to really have values
    # pandas' ewm and its pairwise-summed seed may differ from TA-Lib in the last bits only.
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), rtol=1e-9, atol=0)


@pytest.mark.shared_data
@pytest.mark.parametrize(("fixture", "period"), REAL)
def test_closed_is_talib_of_previous_week_exactly(request, fixture, period):
    df = request.getfixturevalue(fixture)
    ours = weekly_ema(df, period)
    ema_w = talib_weekly(df, period)
    week = period_start(df.index, "1w")
    prev_week = ema_w.shift(1).reindex(week).to_numpy()
    np.testing.assert_array_equal(ours.to_numpy(), prev_week)
    # Flat within a week, changes only on a week's first bar.
    changes = ours.ne(ours.shift()) & ours.notna() & ours.shift().notna()
    assert (ours.index[changes] == week[changes]).all()


# -- developing mode --------------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize(("fixture", "period"), REAL)
def test_developing_on_last_bar_of_week_equals_next_weeks_closed_value(request, fixture, period):
    df = request.getfixturevalue(fixture)
    closed = weekly_ema(df, period).to_numpy()
    dev = weekly_ema(df, period, mode="developing").to_numpy()
    week = period_start(df.index, "1w").asi8
    first = np.flatnonzero(np.r_[True, week[1:] != week[:-1]])
    last = np.r_[first[1:] - 1, len(df) - 1]
    # Exact identity, bit for bit, including the NaN of the weeks before the seed.
    np.testing.assert_array_equal(dev[last[:-1]], closed[first[1:]])
    # And the last bar of each week equals TA-Lib's EMA of that week's close.
    np.testing.assert_array_equal(dev[last], talib_weekly(df, period).to_numpy())


@pytest.mark.shared_data
def test_developing_moves_with_the_current_close(btc_hourly):
    period = 8
    closed = weekly_ema(btc_hourly, period)
    dev = weekly_ema(btc_hourly, period, mode="developing")
    c = btc_hourly["close"]
    ok = closed.notna()
    alpha = 2 / (period + 1)
    # value = prev + alpha * (close - prev) with prev the closed value: above it when the close
    # is above it, below when below, and it tracks the close bar by bar inside a week.
    np.testing.assert_allclose(dev[ok], closed[ok] + alpha * (c[ok] - closed[ok]), rtol=1e-12)
    assert (np.sign(dev[ok] - closed[ok]) == np.sign(c[ok] - closed[ok])).all()
    week = period_start(btc_hourly.index, "1w")
    in_week_moves = dev.groupby(week).nunique()
    assert (in_week_moves[in_week_moves.index >= closed.first_valid_index()] > 100).mean() > 0.9


@pytest.mark.parametrize("period", [2, 10, 200])
def test_ema_step_rounds_exactly_like_talib(period):
    # TA-Lib's C step may be compiled to a fused multiply-add (it is on x86-64 with FMA): the
    # developing value must round the same way or it drifts 1 ulp from the closed value.
    x = np.exp(np.random.default_rng(period).normal(0, 0.05, 5000).cumsum()) * 30_000
    e = talib.EMA(x, period)
    steps = _ema_step(x[period:], e[period - 1 : -1], 2.0 / (period + 1))
    np.testing.assert_array_equal(steps, e[period:])


def test_developing_seed_week_follows_talib_seeding():
    df = ohlc_frame(24 * 7 * 8, "1h", seed=7, start="2024-01-01")  # 8 whole weeks
    p = 5
    dev = weekly_ema(df, p, mode="developing")
    week = period_start(df.index, "1w")
    weeks = week.unique()
    wk_close = df["close"].groupby(week).last().to_numpy()
    assert dev[week < weeks[p - 1]].isna().all()
    seed_bars = week == weeks[p - 1]
    expected = (np.cumsum(wk_close[: p - 1])[-1] + df["close"][seed_bars]) / p
    np.testing.assert_array_equal(dev[seed_bars].to_numpy(), expected.to_numpy())
    assert dev[seed_bars].iloc[-1] == talib.EMA(wk_close, p)[p - 1]
    assert dev.attrs["first_valid_at"] == weeks[p - 1]
    assert weekly_ema(df, p).attrs["first_valid_at"] == weeks[p]


# -- seeding facts ----------------------------------------------------------------------------


def test_warmup_facts_for_the_200_week_ema():
    w = htf_ema_warmup(200)
    assert (w.timeframe, w.period, w.seed_bars) == ("1w", 200, 200)
    assert w.alpha == 2 / 201
    assert w.settle_bars == 461 and w.meaningful_bars == 661
    assert (1 - w.alpha) ** 461 < 0.01 <= (1 - w.alpha) ** 460
    assert htf_ema_warmup(200, tolerance=0.05).settle_bars == math.ceil(
        math.log(0.05) / math.log(1 - 2 / 201)
    )
    assert htf_ema_warmup(1).settle_bars == 0
    with pytest.raises(DataError, match="tolerance"):
        htf_ema_warmup(200, tolerance=1.5)


@pytest.mark.shared_data
def test_series_attrs_state_when_values_start_and_settle(btc_daily_bitstamp):
    df = btc_daily_bitstamp
    weeks = period_start(df.index, "1w").unique()
    s = weekly_ema(df)
    assert s.attrs["first_week_partial"] is True  # the file starts on Friday 2011-08-19
    assert s.attrs["first_valid_at"] == weeks[200] == s.first_valid_index()
    assert s.attrs["settled_at"] == weeks[200 + 461] == pd.Timestamp("2024-04-15", tz="UTC")
    assert (s.attrs["seed_bars"], s.attrs["settle_bars"], s.attrs["mode"]) == (200, 461, "closed")
    d = weekly_ema(df, mode="developing")
    assert d.attrs["first_valid_at"] == weeks[199] == d.first_valid_index()
    assert d.attrs["settled_at"] == weeks[199 + 461]
    # The Binance daily file (2017-) is too short to settle a 200-week EMA by mid-2026.
    assert weekly_ema(df.loc["2017-08-17":]).attrs["settled_at"] is None


@pytest.mark.shared_data
def test_known_facts_200_week_ema(btc_daily_bitstamp):
    ema200 = weekly_ema(btc_daily_bitstamp, 200)
    close = btc_daily_bitstamp["close"]
    june22, nov24 = pd.Timestamp("2022-06-18", tz="UTC"), pd.Timestamp("2024-11-06", tz="UTC")
    print(f"\n200w EMA 2022-06-18: {ema200[june22]:.0f} (close {close[june22]:.0f})")
    print(f"200w EMA 2024-11-06: {ema200[nov24]:.0f} (close {close[nov24]:.0f})")
    assert close[june22] < ema200[june22]  # the June 2022 capitulation below the 200w EMA
    assert close[nov24] > ema200[nov24]
    # Sane magnitudes: ~$20-30k in mid-2022, ~$35-45k in late 2024.
    assert 20_000 < ema200[june22] < 30_000
    assert 35_000 < ema200[nov24] < 45_000


# -- partial weeks, gaps, other inputs and timeframes -----------------------------------------


def test_partial_first_week_counts_as_a_weekly_close():
    df = ohlc_frame(24 * 7 * 4, "1h", seed=3, start="2024-01-03 10:00")  # starts Wednesday
    s = weekly_ema(df, 2, mode="closed")
    assert s.attrs["first_week_partial"] is True
    week = period_start(df.index, "1w")
    wk_close = df["close"].groupby(week).last()
    # First value (third week) = SMA of the partial first week's close and the second week's.
    third = week == week.unique()[2]
    assert (s[third] == (wk_close.iloc[0] + wk_close.iloc[1]) / 2).all()
    whole = ohlc_frame(24 * 7 * 4, "1h", seed=3, start="2024-01-01")
    assert weekly_ema(whole, 2).attrs["first_week_partial"] is False


def test_missing_week_is_skipped_not_invented():
    df = ohlc_frame(7 * 12, "1d", seed=9, start="2024-01-01")
    week = period_start(df.index, "1w")
    gappy = df[week != week.unique()[5]]  # a whole week of missing data
    gappy.attrs = dict(df.attrs)
    for mode in ("closed", "developing"):
        s = weekly_ema(gappy, 3, mode=mode)
        closes = gappy["close"].groupby(period_start(gappy.index, "1w")).last().to_numpy()
        exp = talib.EMA(closes, 3)
        first_after_gap = period_start(gappy.index, "1w").unique()[5]  # week 6 of the original
        idx = 4 if mode == "closed" else 5  # closed: last week with data; developing: this one
        if mode == "closed":
            assert s[first_after_gap] == exp[idx]
        else:
            last_bar = gappy.index[period_start(gappy.index, "1w") == first_after_gap][-1]
            assert s[last_bar] == exp[idx]


def test_weekly_input_closed_is_previous_ema_and_developing_is_the_ema():
    df = ohlc_frame(300, "1w", seed=2, start="2019-01-07")
    ref = talib.EMA(df["close"].to_numpy(), 20)
    np.testing.assert_array_equal(weekly_ema(df, 20, mode="developing").to_numpy(), ref)
    np.testing.assert_array_equal(weekly_ema(df, 20).to_numpy(), np.r_[np.nan, ref[:-1]])


def test_period_one_is_the_weekly_close_exactly():
    df = ohlc_frame(24 * 7 * 3, "1h", seed=8, start="2024-01-01")
    np.testing.assert_array_equal(weekly_ema(df, 1, mode="developing"), df["close"])
    last_close = df["close"].groupby(period_start(df.index, "1w")).last()
    closed = weekly_ema(df, 1)
    assert (closed["2024-01-08":"2024-01-14"] == last_close.iloc[0]).all()


@pytest.mark.shared_data
def test_daily_ema_on_hourly_bars(btc_hourly):
    s = htf_ema(btc_hourly, "1d", 20)
    daily = resample(btc_hourly, "1d")
    exp = pd.Series(talib.EMA(daily["close"].to_numpy(), 20), index=daily.index).shift(1)
    np.testing.assert_array_equal(s.to_numpy(), exp.reindex(btc_hourly.index.floor("D")))
    assert s.name == "ema_20_1d"


def test_empty_frame_gives_empty_series():
    df = ohlc_frame(5, "1d", seed=0).iloc[:0]
    out = weekly_ema(df, 3)
    assert len(out) == 0 and out.attrs["first_valid_at"] is None


# -- errors -----------------------------------------------------------------------------------


def test_monthly_input_raises_with_hint():
    idx = pd.date_range("2015-01-01", periods=60, freq="MS", tz="UTC", unit="ns", name="timestamp")
    df = ohlc_frame(60, "1d", seed=1).set_axis(idx)
    df.attrs = {"source": "btc_monthly.csv"}  # no timeframe: it is inferred as "1M"
    with pytest.raises(DataError, match="monthly bars") as exc:
        weekly_ema(df)
    assert "load daily or intraday data" in str(exc.value) and "btc_monthly.csv" in str(exc.value)


@pytest.mark.parametrize(
    ("tf", "htf", "match"),
    [("1d", "1h", "cannot compute a 1h EMA from 1d bars"),
     ("1h", "90m", "90m bins take bars that divide them evenly: 1m, 3m, 5m, 15m or 30m")],
)
def test_timeframe_that_does_not_divide_raises(tf, htf, match):
    with pytest.raises(DataError, match=match):
        htf_ema(ohlc_frame(100, tf), htf, 3)


def test_misaligned_bars_raise():
    df = ohlc_frame(60, "1d", seed=1)
    df.index = df.index + pd.Timedelta(hours=12)  # daily bars opening at noon straddle Monday
    with pytest.raises(DataError, match="straddle two 1w bins") as exc:
        weekly_ema(df, 3)
    assert exc.value.timestamp == df.index[0]


def test_bad_arguments_and_nan_close_raise():
    df = ohlc_frame(100, "1d", seed=1)
    with pytest.raises(DataError, match="unknown mode 'live'"):
        weekly_ema(df, 3, mode="live")
    with pytest.raises(DataError, match="positive integer"):
        weekly_ema(df, 0)
    df.iloc[50, df.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match="close is nan") as exc:
        weekly_ema(df, 3)
    assert exc.value.timestamp == df.index[50]
    with pytest.raises(DataError, match="not a DataFrame"):
        weekly_ema(df["close"], 3)


# -- causality --------------------------------------------------------------------------------


def _weekly_cuts(df: pd.DataFrame) -> list:
    """Default-style cuts plus many Sunday 23:00 / Sunday / Monday 00:00 / mid-week bars."""
    return [*calendar_cut_points(df.index, per_kind=12, seed=1), 0, 1, len(df) // 2, len(df) - 2]


@pytest.mark.shared_data
@pytest.mark.parametrize(("fixture", "period"), [("btc_daily_bitstamp", 200), ("btc_hourly", 8)])
@pytest.mark.parametrize("mode", ["closed", "developing"])
def test_truncation_on_real_data(request, fixture, period, mode):
    df = request.getfixturevalue(fixture)
    cuts = _weekly_cuts(df)
    ts = df.index[cuts]
    assert (ts.day_of_week == 6).any() and (ts.day_of_week == 0).any()
    if fixture == "btc_hourly":
        assert ((ts.day_of_week == 6) & (ts.hour == 23)).any()
        assert ((ts.day_of_week == 0) & (ts.hour == 0)).any()
    assert assert_causal(lambda d: weekly_ema(d, period, mode=mode), df, cut_points=cuts) >= 30


@settings(max_examples=30, deadline=None)
@given(
    df=ohlc_paths(timeframe=("1h", "4h", "1d"), min_bars=2, max_bars=900, gaps=True),
    period=st.integers(1, 6),
    mode=st.sampled_from(["closed", "developing"]),
)
def test_truncation_on_random_paths(df, period, mode):
    assert assert_causal(lambda d: weekly_ema(d, period, mode=mode), df, cut_points=12) >= 1


@settings(max_examples=30, deadline=None)
@given(
    df=ohlc_paths(timeframe=("1h", "4h", "1d", "1w"), min_bars=2, max_bars=900, gaps=True),
    period=st.integers(1, 8),
)
def test_modes_match_talib_on_random_paths(df, period):
    # closed: TA-Lib's EMA of the previous week with data; developing: on each week's last bar,
    # exactly TA-Lib's EMA of that week's close.
    week = period_start(df.index, "1w")
    wk_close = df["close"].groupby(week).last()
    ema_w = talib.EMA(wk_close.to_numpy(), period)
    gid = np.searchsorted(wk_close.index.asi8, week.asi8)
    closed = weekly_ema(df, period).to_numpy()
    np.testing.assert_array_equal(closed, np.r_[np.nan, ema_w][gid])
    dev = weekly_ema(df, period, mode="developing").to_numpy()
    last = np.r_[np.flatnonzero(gid[1:] != gid[:-1]), len(df) - 1]
    np.testing.assert_array_equal(dev[last], ema_w)
