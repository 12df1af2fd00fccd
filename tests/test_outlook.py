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
    assert o.text().startswith(f"Technical outlook after the {o.as_of:%Y-%m-%d}")
    for z in o.inside:
        assert z.low <= o.last <= z.high and z.side == "inside"
    if o.resistance is not None:
        assert o.resistance.low > o.last and o.resistance.side == "above"
    if o.support is not None:
        assert o.support.high < o.last and o.support.side == "below"


@pytest.mark.shared_data
@pytest.mark.parametrize("at", DATES)
def test_outlook_consistent_on_real_daily(btc_daily, at):
    o = outlook(btc_daily, at=at)
    # the last daily bar that had closed at 00:00 of that date: the previous day's
    assert o.as_of == pd.Timestamp(at, tz="UTC") - pd.Timedelta(days=1)
    assert o.known_at == pd.Timestamp(at, tz="UTC")
    _check_consistent(o, btc_daily)


@pytest.mark.shared_data
def test_outlook_2026_02_06_after_the_drop(btc_daily):
    o = outlook(btc_daily, at="2026-02-07")  # after the 2026-02-06 daily close
    d = btc_daily.loc[:"2026-02-06"]
    low = d["low"].iloc[-1]
    assert low == 60000.0
    # the data itself: the last earlier day with a low at or under 60,000
    last_time = d.index[:-1][d["low"].iloc[:-1] <= low][-1]
    assert o.lowest_since == last_time and o.lowest_since_by == "low"
    assert o.wick_lowest_since == last_time and o.close_lowest_since is None
    assert f"lowest since {last_time:%B %Y}".lower() in o.text().lower()
    assert o.extreme_text() == "The wick to 60,000 was the lowest since October 2024"
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
    o = outlook(btc_daily, at="2024-11-07")  # after the 2024-11-06 daily close
    # a new all-time high in this data set on the election-day candle
    assert o.highest_on_record and o.resistance is None
    assert "none above" in o.text()
    assert o.lowest_since is None and not o.lowest_on_record


@pytest.mark.shared_data
def test_outlook_is_causal(btc_daily):
    for at in ("2022-06-18", "2024-11-06", "2026-02-06"):
        a = outlook(btc_daily, at=at).to_dict()
        b = outlook(btc_daily.loc[:pd.Timestamp(at, tz="UTC") - pd.Timedelta(days=1)]).to_dict()
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
    with pytest.raises(DataError, match="before the first bar closed"):
        outlook(df, at="2000-01-01")
    with pytest.raises(DataError, match="before the first bar closed"):
        outlook(df, at=df.index[0])  # the first bar opens then: it has not closed yet
    with pytest.raises(DataError, match="at least 2 bars"):
        outlook(df, at=0)


# ---------- issue 13, section 4: an outlook that cannot be misread (real Binance daily) ----------


@pytest.mark.shared_data
@pytest.mark.parametrize("day", ["2026-02-04", "2026-02-05", "2026-02-06"])
def test_outlook_says_when_it_is_known(btc_daily, day):
    bar = pd.Timestamp(day, tz="UTC")
    o = outlook(btc_daily, at=bar + pd.Timedelta(days=1))
    assert o.as_of == bar and o.known_at == bar + pd.Timedelta(days=1)
    assert o.last == btc_daily.loc[bar, "close"]
    nxt = bar + pd.Timedelta(days=1)
    assert o.label == f"after the {day} daily close ({nxt:%Y-%m-%d} 00:00 UTC)"
    assert o.text().splitlines()[0] == f"Technical outlook {o.label} (1d bars)"
    # a time inside the next day still only knows that close
    assert outlook(btc_daily, at=f"{nxt:%Y-%m-%d} 23:59").as_of == bar


@pytest.mark.shared_data
def test_at_means_the_last_bar_closed_by_then_on_hourly_data(btc_hourly):
    o = outlook(btc_hourly, at="2021-09-07")  # not the 00:00 hour's close: it ends at 01:00
    assert o.as_of == pd.Timestamp("2021-09-06 23:00", tz="UTC")
    assert o.known_at == pd.Timestamp("2021-09-07 00:00", tz="UTC")
    assert o.last == btc_hourly.loc["2021-09-06 23:00", "close"].item()
    assert o.label == "after the 2021-09-06 23:00 hourly close (2021-09-07 00:00 UTC)"
    assert outlook(btc_hourly, at="2021-09-07 00:59").as_of == o.as_of


@pytest.mark.shared_data
def test_distances_read_one_way(btc_daily):
    o = outlook(btc_daily, at="2026-02-05")  # after the 2026-02-04 close, 73,166
    text = o.text()
    assert "Price 7.5 % above the 200-week EMA (68,037, rising)" in text
    assert o.dist_wema_pct == pytest.approx(7.54, abs=0.01)
    r, s = o.resistance, o.support
    assert f"{r.distance_pct:.1f} % above price" in text and r.distance_pct > 0
    assert f"{abs(s.distance_pct):.1f} % below price" in text and s.distance_pct < 0
    # no signed distance anywhere in the level lines
    for line in text.splitlines():
        if "zone" in line:
            assert "+" not in line and "-%" not in line and "% from" not in line
    o = outlook(btc_daily, at="2026-02-06")  # after the 02-05 crash: price under the EMA
    assert "% below the 200-week EMA" in o.text() and o.dist_wema_pct < 0


@pytest.mark.shared_data
def test_overlapping_zones_are_resolved(btc_daily):
    o = outlook(btc_daily, at="2026-02-07")  # close 70,580
    # the 69,434-71,334 zone holds the close: price is inside it, it is neither support nor
    # resistance; the 70,721-75,556 resistance reaches into it and says so
    assert [(round(z.low), round(z.high)) for z in o.inside] == [(69434, 71334)]
    assert "Price is inside the zone 69,434-71,334" in o.text()
    assert o.resistance.low > o.last and o.resistance.overlaps_inside
    assert o.support.high < o.last
    assert "reaches into the zone price is in" in o.text()
    for z in (o.resistance, o.support, o.critical_support, o.next_below, o.next_above):
        assert not (z.low <= o.last <= z.high)


@pytest.mark.shared_data
def test_lowest_since_says_close_or_wick_and_shows_the_wick(btc_daily):
    o = outlook(btc_daily, at="2026-02-06")  # the 02-05 bar: close 62,910, low 62,345
    d = btc_daily.loc[:"2026-02-05"]
    c, lo = d["close"], d["low"]
    last_close_below = c.index[:-1][c.iloc[:-1] <= c.iloc[-1]][-1]
    last_low_below = lo.index[:-1][lo.iloc[:-1] <= lo.iloc[-1]][-1]
    assert o.close_lowest_since == last_close_below
    assert o.wick_lowest_since == last_low_below
    assert o.extreme_lines()[0] == (
        f"Lowest close since {last_close_below:%B %Y}; the wick to 62,345 was the lowest since "
        f"{last_low_below:%B %Y}")


@pytest.mark.shared_data
def test_bar_character_when_it_matters(btc_daily):
    o = outlook(btc_daily, at="2026-02-06")  # the 02-05 bar: -14 % on 106k BTC
    d = btc_daily.loc[:"2026-02-05"]
    rng = d["high"] - d["low"]
    assert o.character.range_ratio == pytest.approx(rng.iloc[-1] / rng.iloc[-21:-1].mean())
    vol = d["volume"]
    assert o.character.volume_ratio == pytest.approx(vol.iloc[-1] / vol.iloc[-21:-1].mean())
    assert o.character.volume_ratio > 5
    assert o.character.flags == ["wide_range", "heavy_volume", "capitulation_like"]
    line = next(x for x in o.text().splitlines() if x.startswith("Bar: "))
    assert "capitulation-like" in line and "rule: " in line and "bottom 25 %" in line
    # 02-06: a wide bar on heavy volume that closed near its high: no capitulation
    o = outlook(btc_daily, at="2026-02-07")
    assert o.character.flags == ["wide_range", "heavy_volume"]
    assert o.character.close_in_range_pct == pytest.approx(
        (70580.26 - 60000.0) / (71751.33 - 60000.0) * 100)
    # 02-04: an ordinary bar: nothing said
    o = outlook(btc_daily, at="2026-02-05")
    assert o.character.flags == [] and "Bar: " not in o.text()


@pytest.mark.shared_data
def test_wema_convergence_is_stated_with_its_size(btc_daily, btc_daily_bitstamp):
    o = outlook(btc_daily, at="2026-02-05")
    conv = o.wema_convergence
    weeks = btc_daily.loc[:"2026-02-04"].index
    monday = (weeks - pd.to_timedelta(weeks.day_of_week, unit="D")).normalize()
    closed = monday[monday < monday[-1]].nunique()
    assert conv.weekly_closes == closed
    assert conv.seed_weight_pct == pytest.approx(100 * (1 - 2 / 201) ** (closed - 200))
    assert not conv.converged and 5 < conv.seed_weight_pct < 15
    assert (f"still weighs {conv.seed_weight_pct:.1f} % of the value" in o.text()
            and "data starts 2017-08-17" in o.text())
    # Bitstamp from 2011: by 2025 the seed weighs well under 1 %: nothing to say
    o = outlook(btc_daily_bitstamp, at="2025-08-01")
    assert o.wema_convergence.converged and "not converged" not in o.text()
    # too short for any value: says how many weeks it has
    o = outlook(btc_daily.loc[:"2019-01-01"])
    assert o.wema200 is None and "it needs 200" in o.text()


@pytest.mark.shared_data
def test_json_carries_the_same_fields(btc_daily):
    o = outlook(btc_daily, at="2026-02-06")
    d = o.to_dict()
    assert d["known_at"] == "2026-02-06T00:00:00+00:00" and d["label"] == o.label
    assert d["character"]["flags"] == o.character.flags
    assert d["wema_convergence"]["seed_weight_pct"] == o.wema_convergence.seed_weight_pct
    assert [z["low"] for z in d["inside"]] == [z.low for z in o.inside]
    assert d["resistance"]["side"] == "above" and d["support"]["side"] == "below"
    assert d["text"] == o.text().splitlines()
    json.dumps(d, allow_nan=False)
