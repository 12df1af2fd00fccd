"""The look-ahead harness itself: it passes causal code and catches every kind of leak."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings

from data.frame import check_canonical, infer_timeframe, parse_timeframe
from data.resample import period_start
from tests.lookahead import (
    CausalityError,
    assert_causal,
    calendar_cut_points,
    default_cut_points,
    ohlc_frame,
    ohlc_paths,
)


@pytest.fixture
def hourly() -> pd.DataFrame:
    # Starts on a Wednesday 05:00: a partial first week, like much real data.
    return ohlc_frame(24 * 7 * 6, "1h", seed=11, start="2024-01-03", start_offset=5)


# -- causal code passes -----------------------------------------------------------------------


def test_causal_outputs_of_every_shape_pass(hourly):
    def frame(d):
        c = d["close"]
        return pd.DataFrame({"ema": talib.EMA(c, 10), "ret": c.pct_change(), "up": c > d["open"]})

    assert assert_causal(lambda d: talib.EMA(d["close"], 10), hourly) > 10
    assert assert_causal(frame, hourly, cut_points=40) > 30
    assert assert_causal(lambda d: talib.RSI(d["close"].to_numpy(), 14), hourly) > 10
    assert assert_causal(lambda d: d[["open", "close"]].to_numpy(), hourly) > 10
    assert assert_causal(lambda d: (d["close"].cummax(), d["low"].cummin()), hourly) > 10
    assert assert_causal(lambda d: {"hl": d["high"] - d["low"]}, hourly) > 10


def causal_events(d: pd.DataFrame) -> pd.DataFrame:
    """Close crossing above its 24-bar SMA, stamped on the crossing bar."""
    c = d["close"]
    m = c.rolling(24).mean()
    cross = (c > m) & (c.shift() <= m.shift())
    ev = pd.DataFrame({"confirmed_at": d.index[cross], "price": c[cross].to_numpy()})
    ev["kind"] = "cross_up"
    return ev


def test_causal_event_table_passes(hourly):
    assert len(causal_events(hourly)) > 10
    assert assert_causal(causal_events, hourly, event_time="confirmed_at", cut_points=40) > 30
    indexed = lambda d: causal_events(d).set_index("confirmed_at")  # noqa: E731
    assert assert_causal(indexed, hourly, event_time="index") > 10


# -- leaks are caught, with a precise message ------------------------------------------------


def test_centred_rolling_mean_is_caught(hourly):
    leaky = lambda d: d["close"].rolling(5, center=True).mean()  # noqa: E731
    with pytest.raises(CausalityError) as exc:
        assert_causal(leaky, hourly)
    msg = str(exc.value)
    # The newest bars of a cut are where the centred window reaches into the removed future.
    assert "look-ahead in series 'close'" in msg
    assert "on data cut after bar" in msg and "+00:00" in msg


def unshifted_weekly_close(d: pd.DataFrame) -> pd.Series:
    """The classic bug: every bar of a week sees that week's final close."""
    week = period_start(d.index, "1w")
    return d["close"].groupby(week).transform("last").rename("weekly_close")


def test_unshifted_weekly_close_is_caught(hourly):
    # A mid-week cut is enough; the error names the first bar of that week.
    wed = hourly.index.get_indexer([pd.Timestamp("2024-01-24 12:00", tz="UTC")])[0]
    with pytest.raises(CausalityError, match=r"series 'weekly_close'.*bar \d+ \(2024-01-22 00:00"):
        assert_causal(unshifted_weekly_close, hourly, cut_points=[wed])
    # ...and the default cut points (which include mid-week bars) find it without help.
    with pytest.raises(CausalityError):
        assert_causal(unshifted_weekly_close, hourly)


def test_properly_shifted_weekly_close_passes(hourly):
    def closed_weekly_close(d):
        week = period_start(d.index, "1w")
        last = d["close"].groupby(week).last()
        return pd.Series(last.shift().reindex(week).to_numpy(), index=d.index)

    assert assert_causal(closed_weekly_close, hourly, cut_points=60) > 40


def test_one_bar_leak_and_whole_sample_normalisation_are_caught(hourly):
    with pytest.raises(CausalityError):
        assert_causal(lambda d: d["close"].shift(-1), hourly)
    with pytest.raises(CausalityError):
        assert_causal(lambda d: d["close"] / d["close"].max(), hourly)


def test_leaky_dataframe_column_is_named(hourly):
    def frame(d):
        return pd.DataFrame({"ok": d["close"].diff(), "bad": d["close"].bfill().shift(-2)})

    with pytest.raises(CausalityError, match="column 'bad'"):
        assert_causal(frame, hourly)
    # Restricting to the clean column passes.
    assert assert_causal(frame, hourly, columns=["ok"]) > 0


def test_pivot_stamped_on_its_own_bar_is_caught(hourly):
    def pivot_lows(d):  # needs 3 bars after the low, but stamps the low's own bar
        lo = d["low"]
        future = lo[::-1].rolling(4, min_periods=1).min()[::-1].shift(-1)
        past = lo.rolling(4, min_periods=4).min().shift()
        is_piv = (lo < past) & (lo <= future)
        return pd.DataFrame({"at": d.index[is_piv], "price": lo[is_piv].to_numpy()})

    with pytest.raises(CausalityError, match="events confirmed by"):
        assert_causal(pivot_lows, hourly, event_time="at")


def test_event_field_changed_later_is_caught(hourly):
    def revised(d):  # the event's price is overwritten by the latest close: not immutable
        ev = causal_events(d)
        ev["price"] = d["close"].iloc[-1]
        return ev

    with pytest.raises(CausalityError, match=r"column 'price': event #0"):
        assert_causal(revised, hourly, event_time="confirmed_at")


def test_event_dated_after_last_bar_is_caught(hourly):
    def future_stamp(d):
        ev = causal_events(d)
        ev.loc[len(ev)] = [d.index[-1] + pd.Timedelta(hours=1), 1.0, "x"]
        return ev

    with pytest.raises(CausalityError, match="after the last bar"):
        assert_causal(future_stamp, hourly, event_time="confirmed_at")


def test_misaligned_output_is_reported(hourly):
    with pytest.raises(CausalityError, match="output has 1 rows for 1008 input bars"):
        assert_causal(lambda d: d["close"].tail(1), hourly)
    with pytest.raises(CausalityError, match="no column 'when'"):
        assert_causal(causal_events, hourly, event_time="when")


# -- cut points -------------------------------------------------------------------------------


def test_cut_points_by_timestamp_and_negative_position(hourly):
    seen = []

    def spy(d):
        seen.append(len(d))
        return d["close"]

    assert assert_causal(spy, hourly, cut_points=["2024-01-08 00:00", -2, 3]) == 3
    monday = hourly.index.get_loc(pd.Timestamp("2024-01-08", tz="UTC"))
    assert sorted(seen[1:]) == [4, monday + 1, len(hourly) - 1]
    with pytest.raises(ValueError, match="outside the frame"):
        assert_causal(spy, hourly, cut_points=[len(hourly)])


def test_calendar_cut_points_cover_sunday_night_monday_midnight_and_midweek(hourly):
    pts = hourly.index[calendar_cut_points(hourly.index, per_kind=3)]
    assert any(t.day_of_week == 6 and t.hour == 23 for t in pts)
    assert any(t.day_of_week == 0 and t.hour == 0 for t in pts)
    assert any(t.day_of_week in (2, 3) for t in pts)
    d = default_cut_points(hourly.index, n=24)
    assert len(d) >= 15 and 0 in d and d == sorted(set(d)) and max(d) < len(hourly) - 1


# -- the random path strategy -----------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(df=ohlc_paths(timeframe=("1m", "1h", "4h", "1d", "1w"), max_bars=300, gaps=True))
def test_ohlc_paths_are_valid_canonical_frames(df):
    check_canonical(df)
    assert df.index.tz is not None and str(df.index.tz) == "UTC"
    td = parse_timeframe(df.attrs["timeframe"])
    # Aligned to the timeframe (weekly bars open on Monday), spacing a whole number of bars.
    assert (period_start(df.index, td) == df.index).all()
    if len(df) > 2:
        assert (np.diff(df.index.asi8) % td.value == 0).all()
    o, h, lo, c, v = (df[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert (lo > 0).all() and (v >= 0).all()


def test_ohlc_frame_is_reproducible_and_can_start_mid_week():
    a = ohlc_frame(500, "1h", seed=4, start="2024-03-04", start_offset=50)
    b = ohlc_frame(500, "1h", seed=4, start="2024-03-04", start_offset=50)
    pd.testing.assert_frame_equal(a, b)
    assert a.index[0] == pd.Timestamp("2024-03-06 02:00", tz="UTC")
    assert infer_timeframe(a.index) == "1h"
