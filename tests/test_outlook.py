"""Technical outlook: internally consistent on real data at several dates, causal, JSON-safe."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from data.frame import DataError
from indicators import outlook
from indicators.core import rsi
from indicators.outlook import Outlook
from tests.lookahead import ohlc_frame

DATES = ["2019-06-26", "2021-07-20", "2022-06-18", "2024-11-06", "2026-02-06"]


def _check_consistent(o: Outlook, df: pd.DataFrame) -> None:
    d = df.loc[: o.as_of]
    assert o.last == d["close"].iloc[-1]
    assert o.change_1bar_pct == pytest.approx((d["close"].iloc[-1] / d["close"].iloc[-2] - 1) * 100)
    if o.resistance is not None:
        assert o.resistance.centre > o.last and o.resistance.distance_pct > 0
        assert o.resistance.low <= o.resistance.centre <= o.resistance.high
    for z in (o.support, o.critical_support, o.next_below):
        if z is not None:
            assert z.centre <= o.last and z.distance_pct <= 0
    if o.next_below is not None:
        assert o.next_below.centre < o.critical_support.centre
    if o.next_above is not None:
        assert o.next_above.centre > o.resistance.centre
    assert o.rsi == pytest.approx(rsi(d["close"].to_numpy())[-1])
    expect = ("deeply_oversold" if o.rsi < 20 else "oversold" if o.rsi < 30
              else "overbought" if o.rsi > 70 else "neutral")
    assert o.rsi_state == expect
    if o.trend == "bullish":
        assert o.last > o.ema50 and o.last > o.ema200 and o.ema50_slope == "up"
    if o.trend == "bearish":
        assert o.last < o.ema50 and o.last < o.ema200 and o.ema50_slope == "down"
    json.dumps(o.to_dict())  # JSON-safe
    assert o.text().startswith(f"Technical outlook as of {o.as_of:%Y-%m-%d}")


@pytest.mark.shared_data
@pytest.mark.parametrize("at", DATES)
def test_outlook_consistent_on_real_daily(btc_daily, at):
    o = outlook(btc_daily, at=at)
    assert o.as_of == pd.Timestamp(at, tz="UTC")
    _check_consistent(o, btc_daily)


@pytest.mark.shared_data
def test_outlook_2026_02_06_after_the_drop(btc_daily):
    o = outlook(btc_daily, at="2026-02-06")
    d = btc_daily.loc[:"2026-02-06"]
    low = d["low"].iloc[-1]
    assert low == 60000.0
    # the data itself: the last earlier day with a low at or under 60,000
    last_time = d.index[:-1][d["low"].iloc[:-1] <= low][-1]
    assert o.lowest_since == last_time and o.lowest_since_by == "low"
    assert f"lowest since {last_time:%B %Y}".lower() in o.text().lower()
    assert o.extreme_text() == "lowest since October 2024"
    # the data shows the ~73k support zone (lows of March 2024 / April 2025) broken on Feb 5
    # and failing its retest on Feb 6: a support flipped to resistance
    r = o.resistance
    assert r.flipped and r.flip == "support_to_resistance"
    assert r.note == "previous support flipped to resistance"
    assert "previous support flipped to resistance" in o.text()
    assert r.low < 72_500 < r.high
    assert o.wema200 is not None and o.dist_wema_pct > 0


@pytest.mark.shared_data
def test_outlook_extremes(btc_daily):
    o = outlook(btc_daily, at="2024-11-06")
    # a new all-time high in this data set on the election-day candle
    assert o.highest_on_record and o.resistance is None
    assert "none above" in o.text()
    assert o.lowest_since is None and not o.lowest_on_record


@pytest.mark.shared_data
def test_outlook_is_causal(btc_daily):
    for at in ("2022-06-18", "2024-11-06", "2026-02-06"):
        a = outlook(btc_daily, at=at).to_dict()
        b = outlook(btc_daily.loc[:at]).to_dict()
        assert a == b
    # and by position, at many cut points
    rng = np.random.default_rng(5)
    for t in rng.integers(300, len(btc_daily), 12):
        assert outlook(btc_daily, at=int(t)).to_dict() == outlook(
            btc_daily.iloc[: t + 1]).to_dict()


def test_outlook_on_short_random_data_and_errors():
    df = ohlc_frame(90, "1d", seed=11)
    o = outlook(df)
    assert o.wema200 is None and o.ema200 is None  # not enough history: absent, no error
    _check_consistent(o, df)
    with pytest.raises(DataError, match="before the first bar"):
        outlook(df, at="2000-01-01")
    with pytest.raises(DataError, match="at least 2 bars"):
        outlook(df, at=0)
