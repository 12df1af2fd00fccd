"""Validation: the malformed-input corpus (tests/data/malformed, one problem per file) and the
policies and report of :func:`data.validate.validate`."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data import DataError, ValidationReport, load, validate, validate_file
from data.validate import clean

MALFORMED = Path(__file__).parent / "data" / "malformed"

# file -> (load() options, 1-based line the message must cite or None, exact fragments).
# Every message must also name the file and carry a fix hint.
CORPUS: dict[str, tuple[dict, int | None, list[str]]] = {
    "empty.csv": ({}, None, ["file is empty", "fetch or export the file again"]),
    "header_only.csv": ({}, None, ["no data rows: the file has a header but no candles"]),
    "semicolon_delimiter.csv": (
        {},
        1,
        ["the file uses ';' as the delimiter, expected ','", "sep=';'"],
    ),
    "truncated_last_line.csv": (
        {},
        4,
        [
            "truncated last line: 3 of 6 fields and no line end",
            "'2024-01-01T02:00:00Z,42250.0,422'",
        ],
    ),
    "short_row.csv": ({}, 3, ["row has 4 fields, expected 6"]),
    "extra_field.csv": ({}, 3, ["row has 7 fields, expected 6", "unquoted ','"]),
    # on the first data row pandas drops the extra field with only a ParserWarning
    "extra_field_first_row.csv": ({}, 2, ["row has 7 fields, expected 6", "unquoted ','"]),
    "not_utf8.csv": ({}, 4, ["not UTF-8 text (byte b'\\xe9' cannot be decoded)"]),
    "unknown_header.csv": (
        {},
        1,
        ["cannot tell the format from the header 'symbol,bid,ask,spread'", "--format"],
    ),
    "headerless_six_columns.csv": (
        {},
        1,
        ["headerless CSV with 6 columns: only Binance klines (12 columns)"],
    ),
    "missing_volume_column.csv": (
        {},
        1,
        ["missing column 'volume' (columns are: timestamp, open, high, low, close)"],
    ),
    "renamed_close_column.csv": (
        {},
        1,
        ["missing column 'close': column 'Closing' looks like 'close'", "rename column 'Closing'"],
    ),
    "renamed_timestamp_column.csv": (
        {},
        1,
        ["missing column 'timestamp': column 'date' looks like 'timestamp'"],
    ),
    "unparsable_timestamp.csv": (
        {},
        4,
        ["timestamp 2024-13-45T02:00:00Z: unparsable timestamp '2024-13-45T02:00:00Z'", "ISO 8601"],
    ),
    "missing_timestamp.csv": ({}, 3, ["missing timestamp", "fill it in or delete the row"]),
    "binance_bad_open_time.csv": (
        {},
        3,
        ["unparsable timestamp '17040744OO000'", "an epoch number"],
    ),
    "mixed_offsets.csv": (
        {},
        4,
        [
            "mixed UTC offsets: row 2 has -04:00 but this row has -05:00 (often a daylight-saving",
            "(also row 5)",
            "time zone set to UTC",
        ],
    ),
    "naive_and_aware.csv": (
        {},
        4,
        ["timestamps mix time-zone-aware and naive values: row 2 has offset Z but this one has"],
    ),
    "nan_close.csv": (
        {},
        3,
        ["timestamp 2024-01-01T01:00:00+00:00: missing value (NaN) in 'close'", "never filled"],
    ),
    "kaggle_empty_minute.csv": (
        {},
        3,
        ["bar has no prices (open, high, low and close are all empty)", "Kaggle"],
    ),
    "yahoo_null_row.csv": ({}, 3, ["bar has no prices", "Yahoo 'null' rows"]),
    "inf_volume.csv": ({}, 4, ["infinite value in 'volume'"]),
    "non_numeric_high.csv": (
        {},
        4,
        ["non-numeric value 'n/a?' in column 'high'", "'.' as the decimal point"],
    ),
    "zero_low.csv": ({}, 3, ["non-positive price: low = 0", "prices must be > 0"]),
    "negative_open.csv": ({}, 3, ["non-positive price: open = -42100"]),
    "negative_volume.csv": ({}, 4, ["negative volume -1.5", "zero is fine"]),
    "high_below_close.csv": (
        {},
        3,
        ["high 42200 is below max(open, close) = 42250", "check the column order"],
    ),
    "low_above_open.csv": ({}, 4, ["low 42100 is above min(open, close) = 42010"]),
    "duplicate_identical.csv": (
        {},
        4,
        ["duplicate row: row 4 repeats row 3 exactly", "duplicates='drop-identical'"],
    ),
    "duplicate_conflicting.csv": (
        {},
        4,
        [
            "conflicting duplicate timestamp: rows 3 and 4 have the same time but different "
            "values (close 42250 vs 42260)",
            "cannot be resolved automatically",
        ],
    ),
    "unsorted.csv": (
        {},
        4,
        [
            "rows out of time order: this row comes after row 3 (2024-01-01T02:00:00+00:00) but "
            "is earlier",
            "sort=True (CLI --sort)",
        ],
    ),
    "cdd_not_newest_first.csv": ({}, 4, ["rows out of time order: this row comes after row 3"]),
    "mixed_timeframes.csv": (
        {},
        9,
        [
            "mixed timeframes: rows 9 to 12 are 1d apart but most bars are 1h apart",
            "resample",
        ],
    ),
    "irregular_spacing.csv": (
        {},
        4,
        ["irregular spacing: this bar opens 30m after the previous one, which is not a multiple "
         "of the 1h timeframe"],
    ),
    "gap.csv": (
        {"gaps": "error"},
        5,
        [
            "1 gap(s) in the 1h bars, 2 missing bar(s), the first just before this row: "
            "2024-01-01 03:00 -> 2024-01-01 04:00 (2 bars)",
            "gaps='warn'",
        ],
    ),
}


def test_corpus_is_complete():
    # generated/ is the second, generated corpus (tests/test_malformed_corpus.py).
    files = {p.name for p in MALFORMED.iterdir() if p.is_file()}
    assert files == set(CORPUS), "every corpus file needs a row in CORPUS (and vice versa)"
    assert len(files) >= 24


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_malformed_file_gives_its_specific_message(name):
    options, row, fragments = CORPUS[name]
    with warnings.catch_warnings(record=True) as seen, pytest.raises(DataError) as err:
        warnings.simplefilter("always")
        load(MALFORMED / name, **options)
    # Our message says it all: pandas' own parser warnings must not leak out beside it.
    assert not [w for w in seen if issubclass(w.category, pd.errors.ParserWarning)], \
        [str(w.message) for w in seen]
    msg = str(err.value)
    assert msg.startswith(name), msg
    if row is not None:
        assert msg.startswith(f"{name}, row {row}"), msg
        assert err.value.row == row
    assert "(fix: " in msg, msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    # One problem per file: nothing else is reported alongside it.
    assert "more problem(s)" not in msg, msg


def test_validate_file_lists_every_problem_without_raising(tmp_path):
    lines = (MALFORMED / "gap.csv").read_text().splitlines()
    lines[2] = lines[2].replace("42300.0", "42000.0")  # high below close on line 3
    lines.insert(4, lines[3])  # an exact repeat of line 4 as line 5
    path = tmp_path / "several.csv"
    path.write_text("\n".join(lines) + "\n")
    report = validate_file(path, gaps="error")
    assert not report.ok and report.format == "canonical" and report.rows == 6
    whats = [e.what for e in report.errors]
    assert whats[0] == "high 42000 is below max(open, close) = 42250"
    assert whats[1] == "duplicate row: row 5 repeats row 4 exactly"
    assert whats[2].startswith("1 gap(s) in the 1h bars, 2 missing bar(s)")
    assert [e.row for e in report.errors] == [3, 5, 6]
    text = report.summary()
    assert "source:    several.csv (canonical)" in text and "errors:    3" in text
    with pytest.raises(DataError, match="2 more problem"):
        load(path, gaps="error")
    # Structural problems still raise: there is no table to report on.
    with pytest.raises(DataError, match="truncated last line"):
        validate_file(MALFORMED / "truncated_last_line.csv")


# --- validate() on in-memory frames ----------------------------------------------------------


def frame(n: int = 6, freq: str = "1h", **cols) -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC")
    base = np.linspace(100.0, 110.0, n)
    data = {
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "open": base,
        "high": base + 2,
        "low": base - 2,
        "close": base + 1,
        "volume": np.full(n, 3.0),
    }
    data.update(cols)
    return pd.DataFrame(data)


def test_valid_frame_report():
    report = validate(frame(), source="x.csv")
    assert isinstance(report, ValidationReport)
    assert report.ok and report.errors == [] and report.warnings == []
    assert report.rows == 6 and report.timeframe == "1h"
    assert report.start == pd.Timestamp("2024-01-01T00:00Z")
    assert report.end == pd.Timestamp("2024-01-01T05:00Z")
    report.raise_for_errors()  # no-op


def test_rows_map_to_file_lines():
    raw = frame()
    raw.loc[2, "close"] = np.nan
    report = validate(raw, source="f.csv", rows=[10, 11, 12, 13, 14, 15])
    (err,) = report.errors
    assert err.row == 12 and err.source == "f.csv"
    assert err.timestamp == pd.Timestamp("2024-01-01T02:00Z")


def test_raise_for_errors_says_how_many_more():
    raw = frame(low=[98.0, -1.0, 99.0, 200.0, 99.0, 99.0])
    report = validate(raw, source="bad.csv")
    assert len(report.errors) == 2
    with pytest.raises(DataError) as err:
        report.raise_for_errors()
    assert str(err.value).startswith("bad.csv, row 3, timestamp 2024-01-01T01:00:00+00:00: "
                                     "non-positive price: low = -1")
    assert "1 more problem(s) found; run `btc-backtest data validate bad.csv`" in str(err.value)


def test_many_bad_rows_are_one_message_listing_rows():
    vol = np.full(20, 3.0)
    vol[[2, 5, 7, 9, 11, 13, 15]] = -1.0
    (err,) = validate(frame(20, volume=vol)).errors
    assert err.row == 4
    assert "negative volume -1 (also rows 7, 9, 11, 13, 15 and 1 more)" in err.what


def test_gap_policies():
    raw = frame(8).drop(index=[3, 4]).reset_index(drop=True)
    gap = (pd.Timestamp("2024-01-01T03:00Z"), pd.Timestamp("2024-01-01T04:00Z"), 2)
    warn = validate(raw, gaps="warn")
    assert warn.ok and warn.gaps == [gap] and len(warn.warnings) == 1
    assert "2024-01-01 03:00 -> 2024-01-01 04:00 (2 bars)" in str(warn.warnings[0])
    keep = validate(raw, gaps="keep")
    assert keep.ok and keep.gaps == [gap] and keep.warnings == []
    error = validate(raw, gaps="error")
    assert not error.ok and error.gaps == [gap]
    with pytest.raises(ValueError, match="gaps must be one of error, warn, keep"):
        validate(raw, gaps="fill")


def test_gaps_are_never_filled():
    raw = frame(8).drop(index=[3, 4]).reset_index(drop=True)
    df, report = clean(raw, gaps="keep")
    assert len(df) == 6 and report.missing_bars == 2


def test_duplicate_policy_drops_only_identical_rows_and_says_so():
    raw = frame(5).iloc[[0, 1, 2, 2, 3, 4]].reset_index(drop=True)
    df, report = clean(raw, duplicates="drop-identical", source="d.csv")
    assert report.ok and len(df) == 5
    (w,) = report.warnings
    assert "duplicate row: row 5 repeats row 4 exactly; 1 exact repeat(s) dropped" in str(w)
    assert validate(raw).errors[0].what == "duplicate row: row 5 repeats row 4 exactly"
    conflicting = raw.copy()
    conflicting.loc[3, "close"] += 0.5
    report = validate(conflicting, duplicates="drop-identical")
    assert any("conflicting duplicate timestamp" in e.what for e in report.errors)


def test_sort_true_sorts_with_a_warning():
    raw = frame(6).iloc[[0, 1, 3, 2, 4, 5]].reset_index(drop=True)
    assert any("rows out of time order" in e.what for e in validate(raw).errors)
    df, report = clean(raw, sort=True)
    assert report.ok and df.index.is_monotonic_increasing
    (w,) = report.warnings
    assert "sorted by time as requested (sort=True)" in str(w) and w.row == 5


def test_newest_first_is_named():
    raw = frame(6).iloc[::-1].reset_index(drop=True)
    (err,) = validate(raw).errors
    assert "order breaks 5 times; the file is newest-first" in err.what


def test_naive_timestamps_are_utc_with_a_warning_but_dates_are_not_warned():
    raw = frame()
    raw["timestamp"] = raw["timestamp"].str.replace("Z", "")
    df, report = clean(raw)
    assert df.index[0] == pd.Timestamp("2024-01-01T00:00Z")
    (w,) = report.warnings
    assert "timestamps have no time zone; they were taken as UTC" in str(w)
    daily = frame(6, "1D")
    daily["timestamp"] = daily["timestamp"].str[:10]
    df, report = clean(daily)
    assert report.ok and report.warnings == [] and report.timeframe == "1d"


def test_z_and_plus_zero_offsets_are_the_same_zone():
    raw = frame()
    raw.loc[2, "timestamp"] = "2024-01-01T02:00:00+00:00"
    df, report = clean(raw)
    assert report.ok and report.warnings == []
    assert df.index[2] == pd.Timestamp("2024-01-01T02:00Z")


def test_datetime_index_and_epoch_inputs():
    idx = pd.date_range("2024-01-01", periods=6, freq="4h", tz="UTC", name="timestamp")
    canon = frame(6, "4h").drop(columns="timestamp").set_index(idx)
    assert validate(canon).timeframe == "4h"
    epoch = frame(6, "4h")
    epoch["timestamp"] = idx.as_unit("ns").asi8 // 10**6  # milliseconds
    df, report = clean(epoch)
    assert report.ok and report.time_unit == "ms" and (df.index == idx).all()


def test_sparse_stretch_is_gaps_not_a_second_timeframe():
    # Early minute files: trades every 2 minutes for a while. 2m is not a bar size anyone
    # offers, so these are gaps (under the gap policy), not "mixed timeframes".
    minutes = np.r_[np.arange(0, 20), np.arange(21, 33, 2), np.arange(33, 60)]
    raw = frame(len(minutes))
    stamps = pd.Timestamp("2012-01-01", tz="UTC") + pd.to_timedelta(minutes, unit="min")
    raw["timestamp"] = stamps.strftime("%Y-%m-%dT%H:%M:%SZ")
    report = validate(raw)
    assert report.ok and report.timeframe == "1m"
    assert [g[2] for g in report.gaps] == [1] * 7
    # The same stretch at 5-minute spacing on the 5-minute grid is a second timeframe.
    minutes = np.r_[np.arange(0, 20), np.arange(25, 50, 5), np.arange(50, 80)]
    raw = frame(len(minutes))
    stamps = pd.Timestamp("2012-01-01", tz="UTC") + pd.to_timedelta(minutes, unit="min")
    raw["timestamp"] = stamps.strftime("%Y-%m-%dT%H:%M:%SZ")
    (err,) = validate(raw).errors
    assert "mixed timeframes: rows 22 to 27 are 5m apart but most bars are 1m apart" in err.what


def test_timeframe_given_must_match():
    report = validate(frame(), timeframe="1d")
    (err,) = report.errors
    assert "timeframe '1d' was given but the bars are mostly 1h apart" in err.what
    assert validate(frame(), timeframe="60m").timeframe == "1h"


def test_monthly_bars_and_monthly_gaps():
    months = pd.date_range("2020-01-01", periods=12, freq="MS", tz="UTC")
    raw = frame(12)
    raw["timestamp"] = months.strftime("%Y-%m-%d")
    report = validate(raw.drop(index=[4, 5]).reset_index(drop=True))
    assert report.timeframe == "1M"
    assert report.gaps == [(pd.Timestamp("2020-05-01", tz="UTC"),
                            pd.Timestamp("2020-06-01", tz="UTC"), 2)]


def test_single_bar_has_no_timeframe_unless_given():
    assert validate(frame(1)).timeframe is None
    assert validate(frame(1), timeframe="1d").timeframe == "1d"


def test_zero_volume_flat_bars_are_not_errors():
    raw = frame(4)
    raw.loc[2, ["open", "high", "low", "close", "volume"]] = [105.0, 105.0, 105.0, 105.0, 0.0]
    report = validate(raw)
    assert report.ok and report.zero_volume == 1


def test_summary_lists_span_gaps_warnings_and_errors():
    raw = frame(8).drop(index=[3, 4]).reset_index(drop=True)
    raw.loc[5, "high"] = 50.0
    text = validate(raw, source="s.csv").summary()
    assert "source:    s.csv" in text
    assert "span:      2024-01-01 00:00 -> 2024-01-01 07:00" in text
    assert "rows:      6" in text and "timeframe: 1h" in text
    assert "gaps:      1 (2 missing bars)" in text
    assert "  2024-01-01 03:00 -> 2024-01-01 04:00  (2 bars)" in text
    assert "warnings:  1" in text and "errors:    1" in text
    assert "high 50 is below max(open, close)" in text
    assert text.endswith("status:    INVALID")


def test_validate_does_not_modify_its_input():
    raw = frame()
    before = raw.copy()
    validate(raw, sort=True, duplicates="drop-identical")
    pd.testing.assert_frame_equal(raw, before)


@pytest.mark.shared_data
def test_real_daily_files_validate_clean(btc_daily, btc_daily_bitstamp):
    for df in (btc_daily, btc_daily_bitstamp):
        report = validate(df, gaps="error")
        assert report.ok and report.warnings == [] and report.timeframe == "1d"
    assert validate(btc_daily_bitstamp).zero_volume == 33  # SOURCES.md: 33 flat fill days


def test_off_grid_message_is_exact_near_the_ends_of_the_timestamp_range():
    """Weekly bars 2.5 days after Monday 00:00, in the first week pandas can represent: the
    remainder is worked out without forming ts - origin, which wrapped around int64 there and
    named a wrong offset (with a RuntimeWarning)."""
    idx = pd.date_range("1677-09-22 12:00", periods=6, freq="7D", tz="UTC")
    raw = pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": 100.0,
                        "high": 101.0, "low": 99.0, "close": 100.5, "volume": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report = validate(raw)
    assert report.timeframe == "1w"
    assert any("1w bars must open at Monday 00:00 UTC, but this bar opens 60h later" in e.what
               for e in report.errors), [e.what for e in report.errors]
