"""Resampling: exchange-aligned bins, exact agreement with a plain pandas reference, incomplete
last periods marked, gaps never filled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.frame import (
    DataError,
    check_canonical,
    infer_timeframe,
    parse_timeframe,
    timeframe_length,
    timeframe_of,
    to_canonical,
)
from data.resample import drop_incomplete, period_start, resample
from tests.conftest import real

AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def _reference(df: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The straightforward pandas way: calendar bins, empty bins dropped."""
    if rule == "1w":
        out = df.resample("W-MON", closed="left", label="left").agg(AGG)
    else:
        out = df.resample(rule).agg(AGG)
    return out.dropna(subset=["open"])


def _frame(start: str, n: int, freq: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    freq = freq.replace("d", "D")  # pandas wants "D"; exchanges say "1d"
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp")
    df = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": rng.random(n)},
        index=idx,
    )
    return to_canonical(df)


@pytest.mark.shared_data
def test_hourly_to_daily_to_weekly_matches_pandas_reference_exactly() -> None:
    hourly = real("1h_binance")
    daily = resample(hourly, "1d")
    weekly = resample(daily, "1w")
    ref_d = _reference(hourly, "1D")
    ref_w = _reference(ref_d, "1w")
    for ours, ref in ((daily, ref_d), (weekly, ref_w)):
        assert ours.index.equals(ref.index.as_unit("ns"))
        for col in AGG:
            np.testing.assert_array_equal(ours[col].to_numpy(), ref[col].to_numpy())
    # Weekly bins open on Mondays, as on Binance and TradingView.
    assert (weekly.index.day_of_week == 0).all()
    assert (weekly.index.hour == 0).all()
    check_canonical(weekly)


@pytest.mark.shared_data
def test_hourly_aggregates_to_the_published_daily_file() -> None:
    # SOURCES.md: the hourly file aggregated to days equals the daily file on every complete day.
    hourly = real("1h_binance")
    daily = resample(hourly, "1d")
    counts = pd.Series(1, index=hourly.index).resample("1D").sum()
    complete = counts[counts == 24].index
    ref = real("1d_binance")
    common = complete.intersection(ref.index)
    assert len(common) == 153 - 2  # June-October 2021 less the two days with missing hours
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(daily.loc[common, col], ref.loc[common, col])
    np.testing.assert_allclose(daily.loc[common, "volume"], ref.loc[common, "volume"], rtol=1e-9)


@pytest.mark.shared_data
def test_bitstamp_two_hour_to_daily_reproduces_the_daily_file() -> None:
    two_h = real("2h_bitstamp")
    daily = resample(two_h, "1d")
    ref = real("1d_bitstamp")
    common = daily.index.intersection(ref.index)
    assert len(common) == 31  # every day of January 2015
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(daily.loc[common, col], ref.loc[common, col])
    # The daily file's volume was rounded to 8 decimals.
    np.testing.assert_allclose(daily.loc[common, "volume"], ref.loc[common, "volume"], atol=6e-9)


def test_last_period_is_marked_incomplete_and_can_be_dropped() -> None:
    # Monday 2024-01-01 to Wednesday 2024-01-10 23:00: the second week is still forming.
    hourly = _frame("2024-01-01", 24 * 10, "1h")
    weekly = resample(hourly, "1w")
    assert list(weekly.index) == [
        pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-01-08", tz="UTC"),
    ]
    assert weekly.attrs["incomplete_last"] is True
    assert weekly.attrs["timeframe"] == "1w"
    assert weekly["close"].iloc[-1] == hourly["close"].iloc[-1]
    dropped = drop_incomplete(weekly)
    assert len(dropped) == 1 and dropped.attrs["incomplete_last"] is False
    assert len(resample(hourly, "1w", incomplete="drop")) == 1


def test_partial_first_period_is_marked() -> None:
    # Friday 2024-01-05 start: the first weekly bar covers only Friday to Sunday.
    daily = _frame("2024-01-05", 10, "1d")
    weekly = resample(daily, "1w")
    assert weekly.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert weekly.attrs["incomplete_first"] is True
    assert resample(_frame("2024-01-01", 14, "1d"), "1w").attrs["incomplete_first"] is False


def test_complete_last_period_is_not_marked() -> None:
    hourly = _frame("2024-01-01", 24 * 14, "1h")  # exactly two full weeks
    weekly = resample(hourly, "1w")
    assert len(weekly) == 2
    assert weekly.attrs["incomplete_last"] is False


def test_gaps_stay_gaps_and_partial_bins_use_only_real_bars() -> None:
    hourly = _frame("2024-01-01", 24 * 4, "1h")
    # Remove all of day 2 and the first 3 hours of day 3.
    holed = hourly.drop(hourly.index[24:51])
    holed.attrs["timeframe"] = "1h"
    daily = resample(holed, "1d")
    assert list(daily.index.day) == [1, 3, 4]  # no candle invented for Jan 2
    jan3 = holed.loc["2024-01-03"]
    assert daily.loc["2024-01-03", "open"] == jan3["open"].iloc[0]
    assert daily.loc["2024-01-03", "volume"] == pytest.approx(jan3["volume"].sum(), rel=1e-12)


def test_four_hour_bins_align_to_midnight_utc() -> None:
    hourly = _frame("2024-03-05 01:00", 30, "1h")
    four = resample(hourly, "4h")
    assert four.index[0] == pd.Timestamp("2024-03-05 00:00", tz="UTC")
    assert (four.index.hour % 4 == 0).all()
    assert four["open"].iloc[0] == hourly["open"].iloc[0]  # first bin holds 01:00-03:00 only


def test_period_start_maps_every_bar_to_its_week() -> None:
    idx = pd.DatetimeIndex(
        ["2024-01-07 23:00", "2024-01-08 00:00", "2024-01-14 23:59"], tz="UTC"
    ).as_unit("ns")
    starts = period_start(idx, "1w")
    assert list(starts) == [
        pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-01-08", tz="UTC"),
        pd.Timestamp("2024-01-08", tz="UTC"),
    ]


@pytest.mark.parametrize(
    ("src", "dst", "message"),
    [
        ("1h", "90m", "cannot resample 1h bars to 90m"),
        ("1d", "4h", "cannot resample 1d bars to 4h"),
        ("1h", "1x", "unknown timeframe '1x'"),
    ],
)
def test_impossible_resampling_is_a_clear_error(src: str, dst: str, message: str) -> None:
    df = _frame("2024-01-01", 48, src)
    with pytest.raises(DataError, match=message):
        resample(df, dst)


@pytest.mark.parametrize(("src", "shift", "dst"), [("1d", "12h", "1w"), ("4h", "2h", "1d")])
def test_bars_off_their_boundary_are_not_split_between_bins(src: str, shift: str,
                                                             dst: str) -> None:
    # A daily bar opening at 12:00 covers the Sunday/Monday boundary; a 4h bar opening at
    # 22:00 covers midnight. Assigning either to one bin would be a silently wrong candle.
    df = _frame("2024-01-01", 48, src)
    df.index = df.index + pd.Timedelta(shift)
    with pytest.raises(DataError, match=f"straddle two {dst} bins") as exc:
        resample(df, dst)
    assert str(df.index[0].year) in str(exc.value)   # names the first offending bar
    resample(_frame("2024-01-01", 48, src), dst)     # aligned bars are fine


def test_monthly_data_cannot_be_resampled() -> None:
    idx = pd.date_range("2020-01-01", periods=12, freq="MS", tz="UTC")
    df = _frame("2020-01-01", 12, "1d")
    df.index = idx.as_unit("ns").rename("timestamp")
    assert infer_timeframe(df.index) == "1M"
    with pytest.raises(DataError, match="cannot resample monthly bars"):
        resample(df, "1w")


def test_timeframe_parsing() -> None:
    assert parse_timeframe("15m") == pd.Timedelta(minutes=15)
    assert parse_timeframe("4h") == pd.Timedelta(hours=4)
    assert parse_timeframe("1w") == pd.Timedelta(days=7)
    with pytest.raises(DataError, match="timeframe must be positive"):
        parse_timeframe("0h")


def test_check_canonical_names_the_problem() -> None:
    df = _frame("2024-01-01", 5, "1h")
    check_canonical(df)
    with pytest.raises(DataError, match="not UTC"):
        check_canonical(df.tz_convert("Europe/Paris"))
    with pytest.raises(DataError, match="not strictly increasing"):
        check_canonical(df.iloc[::-1])
    with pytest.raises(DataError, match="lacks column"):
        check_canonical(df.drop(columns="volume"))


def test_timeframe_of_prefers_the_attribute_and_survives_gaps() -> None:
    idx = pd.date_range("2024-01-01", periods=60, freq="h", tz="UTC").delete([3, 17])
    df = pd.DataFrame({"close": np.ones(len(idx))}, index=idx)
    assert timeframe_of(df) == "1h"  # the most common spacing, not the first one
    df.attrs["timeframe"] = "4h"
    assert timeframe_of(df) == "4h"
    assert timeframe_length("1M") == pd.Timedelta(days=30)
    with pytest.raises(DataError, match="fewer than two bars"):
        timeframe_of(pd.DataFrame({"close": [1.0]}, index=idx[:1]))
