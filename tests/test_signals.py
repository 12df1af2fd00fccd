"""Signals: RSI states, proximity, confluence, breakdown, signal_frame (columns, causality,
short/monthly data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from indicators.core import rsi
from indicators.flips import flips
from indicators.levels import sr_levels
from indicators.signals import (
    RSI_STATES,
    breakdown_signal,
    confluence,
    oversold,
    proximity_pct,
    signal_frame,
)
from tests.lookahead import assert_causal, ohlc_frame, ohlc_paths
from tests.test_levels_flips import DB_C, DB_H, DB_L, F, frame


def test_oversold_states_and_thresholds():
    r = np.array([np.nan, 10, 19.99, 20, 29.9, 30, 50, 70, 70.1, 95])
    got = oversold(r)
    assert got.tolist() == [None, "deeply_oversold", "deeply_oversold", "oversold", "oversold",
                            "neutral", "neutral", "neutral", "overbought", "overbought"]
    s = oversold(pd.Series(r), threshold=35, deep=25, overbought=80)
    assert list(s.cat.categories) == list(RSI_STATES)
    assert s.isna().tolist()[0] and s.iloc[4] == "oversold" and s.iloc[8] == "neutral"
    with pytest.raises(ValueError, match="deep < threshold"):
        oversold(r, threshold=20, deep=30)


def test_proximity_pct():
    assert proximity_pct(110.0, 100.0) == pytest.approx(10.0)
    assert proximity_pct(90.0, 100.0) == pytest.approx(-10.0)
    assert np.isnan(proximity_pct(90.0, np.nan))
    np.testing.assert_allclose(proximity_pct(np.array([50.0, 200.0]), 100.0), [-50.0, 100.0])
    s = proximity_pct(pd.Series([105.0, 95.0]), pd.Series([100.0, 0.0]))
    assert s.iloc[0] == pytest.approx(5.0) and np.isnan(s.iloc[1])


def test_confluence_band_distance():
    idx = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    df = pd.DataFrame(index=idx)
    sr = pd.DataFrame({"support_low": [95.0, 95.0, 95.0, np.nan],
                       "support_high": [100.0, 100.0, 100.0, np.nan]}, index=idx)
    w = pd.Series([98.0, 102.9, 104.0, 100.0], index=idx)  # inside, 2.9 above, 4 above, no zone
    got = confluence(df, sr, w, tolerance_pct=3.0)
    assert got.tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match="aligned"):
        confluence(df, sr.iloc[:3], w)


def test_breakdown_signal_on_double_bottom():
    df = frame(DB_H, DB_L, DB_C)
    sig = breakdown_signal(df, **F)
    assert sig.dtype == bool and np.flatnonzero(sig).tolist() == [14]


@pytest.mark.shared_data
def test_signal_frame_real_daily(btc_daily):
    sf = signal_frame(btc_daily)
    for col in ("rsi", "rsi_state", "wema200", "support", "support_low", "support_high",
                "resistance", "dist_support_pct", "dist_wema_pct", "confluence", "breakdown",
                "flipped_resistance", "retest_rejected", "atr"):
        assert col in sf.columns, col
    np.testing.assert_array_equal(sf["rsi"].to_numpy(), rsi(btc_daily["close"].to_numpy()))
    fl = flips(btc_daily).bars
    pd.testing.assert_series_equal(sf["breakdown"], fl["breakdown"])
    pd.testing.assert_frame_equal(sf[["support", "resistance"]], sr_levels(btc_daily)[
        ["support", "resistance"]])
    # support below (or at) the close, resistance above; distances signed accordingly
    ok = sf["support"].notna()
    assert (sf.loc[ok, "support"] <= sf.loc[ok, "close"]).all()
    assert (sf.loc[ok, "dist_support_pct"] >= 0).all()
    ok = sf["resistance"].notna()
    assert (sf.loc[ok, "dist_resistance_pct"] < 0).all()
    # the 200-week EMA needs 200 weeks: NaN (and no confluence) before, values after
    first = sf["wema200"].first_valid_index()
    # (the partial first week counts as one of the 200, see indicators.htf)
    assert first is not None and first - btc_daily.index[0] >= pd.Timedelta(weeks=199)
    assert not sf.loc[:first, "confluence"].iloc[:-1].any()
    assert sf["confluence"].any()
    st = sf["rsi_state"].astype(object)
    assert (st[sf["rsi"] < 20] == "deeply_oversold").all()
    assert (st[sf["rsi"] > 70] == "overbought").all()


@pytest.mark.shared_data
def test_signal_frame_causal_real_daily(btc_daily):
    cols = ["rsi", "rsi_state", "wema200", "support", "resistance", "dist_support_pct",
            "dist_wema_pct", "confluence", "breakdown", "flipped_resistance", "retest_rejected",
            "atr"]
    assert assert_causal(signal_frame, btc_daily, cut_points=30, columns=cols,
                         min_bars=2) >= 20


def test_short_and_monthly_data_give_nan_wema_not_an_error():
    short = ohlc_frame(120, "1d", seed=2)
    sf = signal_frame(short)
    assert sf["wema200"].isna().all() and not sf["confluence"].any()
    idx = pd.date_range("2015-01-01", periods=60, freq="MS", tz="UTC", unit="ns",
                        name="timestamp")
    monthly = ohlc_frame(60, "1d", seed=4).set_axis(idx)
    monthly.attrs["timeframe"] = "1M"
    sf = signal_frame(monthly)
    assert sf["wema200"].isna().all() and not sf["confluence"].any()
    assert sf["rsi"].notna().sum() == 60 - 14


@given(ohlc_paths(timeframe=("1d", "4h"), min_bars=2, max_bars=300))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_signal_frame_causal_random(df):
    assert_causal(lambda d: signal_frame(d, wema_period=3), df, cut_points=5)
