"""Loaders: every supported format (fixtures in tests/data/formats), detection, compression,
explicit override, the real files in ../shared/data and a CSV/Parquet round-trip property."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data import DataError, check_canonical, detect_format, load, parse_timeframe
from data.loaders import FORMATS
from data.validate import ValidationReport
from tests.conftest import real_path

FORMATS_DIR = Path(__file__).parent / "data" / "formats"

# The six bars every fixture encodes (typed by hand; bar 4 is a zero-volume flat bar).
BARS = [
    (42000.0, 42150.5, 41900.0, 42100.0, 12.5),
    (42100.0, 42300.0, 42050.0, 42250.0, 8.25),
    (42250.0, 42260.0, 42000.0, 42010.0, 10.0),
    (42010.0, 42010.0, 42010.0, 42010.0, 0.0),
    (42010.0, 42500.0, 42005.0, 42480.0, 15.75),
    (42480.0, 42490.0, 42300.0, 42350.0, 6.5),
]


def expected(freq: str = "1h") -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=len(BARS), freq=freq, tz="UTC", unit="ns")
    return pd.DataFrame(BARS, columns=["open", "high", "low", "close", "volume"],
                        index=idx.rename("timestamp"))


def assert_same(df: pd.DataFrame, ref: pd.DataFrame) -> None:
    check_canonical(df)
    pd.testing.assert_frame_equal(df, ref, check_exact=True, check_freq=False)


# (fixture file, detected format, timeframe, extra attrs that must be set)
CASES = [
    ("canonical.csv", "canonical", "1h", {"time_unit": "iso"}),
    ("binance_ms.csv", "binance", "1h", {"time_unit": "ms"}),
    ("binance_us.csv", "binance", "1h", {"time_unit": "us"}),
    ("bitstamp.csv", "bitstamp", "1h", {"time_unit": "s"}),
    (
        "bitstamp_kaggle.csv",
        "bitstamp",
        "1h",
        {"ignored_columns": ["Volume_(Currency)", "Weighted_Price"]},
    ),
    ("yahoo.csv", "yahoo", "1d", {"volume_unit": "BTC", "ignored_columns": ["Adj Close"]}),
    ("yahoo_yfinance.csv", "yahoo", "1d", {"volume_unit": "BTC"}),
    ("cryptodatadownload.csv", "cryptodatadownload", "1h", {"reversed": True}),
    ("tradingview.csv", "tradingview", "1h", {"ignored_columns": ["RSI", "Basis"]}),
    ("tradingview_iso.csv", "tradingview", "1h", {"ignored_columns": []}),
]


@pytest.mark.parametrize(("name", "fmt", "tf", "attrs"), CASES, ids=[c[0] for c in CASES])
def test_each_format_loads_to_the_same_canonical_bars(name, fmt, tf, attrs):
    path = FORMATS_DIR / name
    assert detect_format(path) == fmt
    df = load(path)
    # Yahoo fixtures are daily bars with USD volume = BTC volume * close; converted back.
    assert_same(df, expected("1D" if tf == "1d" else "1h"))
    assert df.attrs["format"] == fmt
    assert df.attrs["source"] == name
    assert df.attrs["timeframe"] == tf
    assert isinstance(df.attrs["validation"], ValidationReport)
    assert df.attrs["validation"].ok
    assert df.attrs["validation"].zero_volume == 1  # the flat halt bar is not an error
    for key, value in attrs.items():
        assert df.attrs[key] == value


def test_yahoo_volume_is_converted_from_usd_and_says_so():
    df = load(FORMATS_DIR / "yahoo.csv")
    raw = pd.read_csv(FORMATS_DIR / "yahoo.csv")
    usd_to_btc = (raw["Volume"] / raw["Close"]).to_numpy()
    np.testing.assert_array_equal(df["volume"].to_numpy(), usd_to_btc)
    assert "USD" in df.attrs["volume_note"]


def test_tradingview_offset_is_converted_with_a_warning():
    df = load(FORMATS_DIR / "tradingview_iso.csv")
    assert df.index[0] == pd.Timestamp("2024-01-01T00:00:00Z")
    (warning,) = df.attrs["validation"].warnings
    assert "UTC offset +01:00; converted to UTC" in str(warning)
    assert "row 2" in str(warning)


def test_tradingview_without_volume_gives_nan_volume_and_a_warning():
    df = load(FORMATS_DIR / "tradingview_novolume.csv")
    check_canonical(df)
    ref = expected()
    pd.testing.assert_frame_equal(
        df.drop(columns="volume"), ref.drop(columns="volume"), check_freq=False
    )
    assert df["volume"].isna().all()
    assert df.attrs["volume_missing"] is True
    assert any("no volume column" in str(w) for w in df.attrs["validation"].warnings)


def test_canonical_parquet_is_detected_and_loaded(tmp_path):
    path = tmp_path / "bars.parquet"
    expected().to_parquet(path)
    assert detect_format(path) == "parquet"
    df = load(path)
    assert_same(df, expected())
    assert df.attrs["format"] == "parquet"


def test_parquet_with_timestamp_column_and_microsecond_unit(tmp_path):
    path = tmp_path / "bars.parquet"
    ref = expected()
    flat = ref.reset_index()
    flat["timestamp"] = flat["timestamp"].dt.as_unit("us")
    flat.to_parquet(path, index=False)
    assert_same(load(path), ref)


@pytest.mark.parametrize("name", ["canonical.csv", "binance_us.csv", "cryptodatadownload.csv"])
def test_gzip_and_zip_are_read_transparently(tmp_path, name):
    src = FORMATS_DIR / name
    gz = tmp_path / (name + ".gz")
    with src.open("rb") as fin, gzip.open(gz, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    zp = tmp_path / (name + ".zip")
    with zipfile.ZipFile(zp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(src, arcname=name)
    # Detection looks at the content, not the name: a gzip without .gz is fine too.
    renamed = tmp_path / "download.bin"
    shutil.copy(gz, renamed)
    plain = load(src)
    for path in (gz, zp, renamed):
        assert detect_format(path) == plain.attrs["format"]
        df = load(path)
        assert_same(df, expected())
        assert df.attrs["source"] == path.name


def test_zip_with_two_members_is_refused(tmp_path):
    zp = tmp_path / "two.zip"
    with zipfile.ZipFile(zp, "w") as zf:
        zf.write(FORMATS_DIR / "canonical.csv", arcname="a.csv")
        zf.write(FORMATS_DIR / "bitstamp.csv", arcname="b.csv")
    with pytest.raises(DataError, match=r"two.zip: zip archive must hold exactly one file, "
                       r"found 2 \(a.csv, b.csv\)"):
        load(zp)


def test_truncated_gzip_is_reported(tmp_path):
    raw = gzip.compress((FORMATS_DIR / "canonical.csv").read_bytes() * 50)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"cut\.csv\.gz: corrupt or truncated compressed file"):
        load(path)


def test_missing_file():
    with pytest.raises(DataError, match="file not found"):
        load(FORMATS_DIR / "no_such_file.csv")


def test_explicit_format_overrides_detection(tmp_path):
    # A headerless Binance file under a misleading name still loads when forced...
    path = tmp_path / "prices.txt"
    shutil.copy(FORMATS_DIR / "binance_ms.csv", path)
    assert_same(load(path, fmt="binance"), expected())
    # ...and a wrong override is not silently accepted: the columns do not match.
    with pytest.raises(DataError) as err:
        load(FORMATS_DIR / "tradingview.csv", fmt="canonical")
    assert "missing column 'timestamp': column 'time' looks like 'timestamp'" in str(err.value)
    with pytest.raises(DataError, match=r"unknown format 'excel'.*supported formats: canonical"):
        load(FORMATS_DIR / "canonical.csv", fmt="excel")


def test_detect_format_error_names_file_formats_and_override(tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_text("symbol,bid,ask\nBTCUSD,1,2\n")
    with pytest.raises(DataError) as err:
        detect_format(path)
    msg = str(err.value)
    assert msg.startswith("quotes.csv, row 1: cannot tell the format")
    for fmt in FORMATS:
        assert fmt in msg
    assert "fmt=" in msg and "--format" in msg


def test_binance_with_header_and_mixed_units(tmp_path):
    # Futures files carry a header; a file assembled across Binance's 2025 switch mixes ms/µs.
    lines = (FORMATS_DIR / "binance_ms.csv").read_text().splitlines()
    us = (FORMATS_DIR / "binance_us.csv").read_text().splitlines()
    header = "open_time,open,high,low,close,volume,close_time,quote_volume,count," \
             "taker_buy_volume,taker_buy_quote_volume,ignore"
    path = tmp_path / "BTCUSDT-1h.csv"
    path.write_text("\n".join([header, *lines[:3], *us[3:]]) + "\n")
    assert detect_format(path) == "binance"
    df = load(path)
    assert_same(df, expected())
    assert df.attrs["time_unit"] == "ms+us"
    assert any("mix epoch units (ms, us)" in str(w) for w in df.attrs["validation"].warnings)


def test_cryptodatadownload_seconds_without_banner(tmp_path):
    lines = (FORMATS_DIR / "cryptodatadownload.csv").read_text().splitlines()
    rows = [ln.replace("000,2024", ",2024", 1) for ln in lines[2:]]  # ms -> s
    path = tmp_path / "Bitstamp_BTCUSD_1h.csv"
    path.write_text("\n".join([lines[1], *rows]) + "\n")
    df = load(path)
    assert df.attrs["format"] == "cryptodatadownload" and df.attrs["time_unit"] == "s"
    assert_same(df, expected())


def test_line_numbers_survive_reversal_and_blank_lines(tmp_path):
    lines = (FORMATS_DIR / "cryptodatadownload.csv").read_text().splitlines()
    # Line 5 of the file (the 03:00 bar, newest-first) gets a high below its open/close.
    lines[4] = lines[4].replace(",42010.0,42010.0,42010.0,", ",42010.0,42000.0,42010.0,")
    path = tmp_path / "cdd.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"cdd.csv, row 5, timestamp 2024-01-01T03:00:00\+00:00: "
                       r"high 42000 is below max\(open, close\) = 42010"):
        load(path)
    text = (FORMATS_DIR / "canonical.csv").read_text().splitlines()
    path = tmp_path / "blank.csv"
    path.write_text("\n".join([*text[:3], "", *text[3:], ""]) + "\n")
    df = load(path)
    assert_same(df, expected())
    (warning,) = df.attrs["validation"].warnings
    assert "blank.csv, row 4: 2 blank line(s) ignored (lines 4, 9)" in str(warning)


def test_load_options_pass_through():
    malformed = Path(__file__).parent / "data" / "malformed"
    df = load(malformed / "unsorted.csv", sort=True)
    assert df.index.is_monotonic_increasing and len(df) == 4
    df = load(malformed / "duplicate_identical.csv", duplicates="drop-identical")
    assert len(df) == 3
    df = load(malformed / "gap.csv", gaps="keep")
    assert df.attrs["validation"].gaps == [
        (pd.Timestamp("2024-01-01T03:00Z"), pd.Timestamp("2024-01-01T04:00Z"), 2)
    ]
    assert df.attrs["validation"].warnings == []
    assert load(FORMATS_DIR / "canonical.csv", timeframe="1h").attrs["timeframe"] == "1h"


# --- the real files in ../shared/data --------------------------------------------------------

REAL = [
    ("1d_binance", 3243, "1d", "2017-08-17", "2026-07-03"),
    ("1d_bitstamp", 5121, "1d", "2011-08-19", "2025-08-25"),
    ("1h_binance", 3666, "1h", "2021-06-01 00:00", "2021-10-31 23:00"),
    ("2h_bitstamp", 372, "2h", "2015-01-01 00:00", "2015-01-31 22:00"),
]


@pytest.mark.shared_data
@pytest.mark.parametrize(("key", "rows", "tf", "start", "end"), REAL, ids=[r[0] for r in REAL])
def test_real_files_load_and_validate(key, rows, tf, start, end):
    path = real_path(key)
    df = load(path)
    check_canonical(df)
    report = df.attrs["validation"]
    assert report.ok
    assert len(df) == report.rows == rows
    assert df.attrs["timeframe"] == report.timeframe == tf
    assert df.attrs["format"] == "canonical"
    assert df.index[0] == pd.Timestamp(start, tz="UTC") == report.start
    assert df.index[-1] == pd.Timestamp(end, tz="UTC") == report.end
    # Same values as a plain pandas read (the loader changes nothing).
    ref = pd.read_csv(path)
    np.testing.assert_array_equal(df["close"].to_numpy(), ref["close"].to_numpy())
    np.testing.assert_array_equal(df["volume"].to_numpy(), ref["volume"].to_numpy())


@pytest.mark.shared_data
def test_real_hourly_files_have_exactly_the_missing_hours():
    # SOURCES.md: 2021-08-13 02:00-05:00, 2021-09-29 07:00-08:00 and 2023-03-24 13:00 are missing.
    df = load(real_path("1h_binance"))
    report = df.attrs["validation"]
    ts = pd.Timestamp
    assert report.gaps == [
        (ts("2021-08-13 02:00Z"), ts("2021-08-13 05:00Z"), 4),
        (ts("2021-09-29 07:00Z"), ts("2021-09-29 08:00Z"), 2),
    ]
    assert report.missing_bars == 6 and report.zero_volume == 0
    with pytest.raises(DataError, match=r"2 gap\(s\) in the 1h bars, 6 missing bar\(s\)"):
        load(real_path("1h_binance"), gaps="error")
    halt = load(real_path("1h_binance_halt")).attrs["validation"]
    assert halt.gaps == [(ts("2023-03-24 13:00Z"), ts("2023-03-24 13:00Z"), 1)]
    assert halt.zero_volume == 1  # the 2023-03-24 12:00 halt bar: legitimate


@pytest.mark.shared_data
def test_real_bitstamp_2h_file_has_no_gaps_and_its_fill_bars_are_fine():
    df = load(real_path("2h_bitstamp"), gaps="error")
    report = df.attrs["validation"]
    assert report.gaps == [] and report.warnings == []
    # SOURCES.md: 53 zero-volume fill bars from 2015-01-05 10:00 to 2015-01-09 18:00.
    assert report.zero_volume == 53
    flat = df.index[df["volume"] == 0]
    assert flat[0] == pd.Timestamp("2015-01-05 10:00Z")
    assert flat[-1] == pd.Timestamp("2015-01-09 18:00Z")


# --- property: valid frames round-trip through CSV and Parquet unchanged ----------------------

_price = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)
_volume = st.one_of(st.just(0.0), st.floats(min_value=0, max_value=1e5, allow_nan=False))


@st.composite
def valid_frames(draw):
    n = draw(st.integers(min_value=2, max_value=40))
    tf = draw(st.sampled_from(["1m", "15m", "1h", "4h", "1d", "1w"]))
    start = draw(st.integers(min_value=1_300_000_000, max_value=1_900_000_000))
    step = parse_timeframe(tf).value
    # Bars on their grid: weekly bars open on Mondays (1970-01-05 was one), others from 00:00.
    origin = pd.Timestamp("1970-01-05", tz="UTC").value if tf == "1w" else 0
    first = (start * 10**9 - origin) // step * step + origin
    idx = pd.DatetimeIndex(
        pd.to_datetime(first + np.arange(n) * step, unit="ns", utc=True),
        name="timestamp",
    ).as_unit("ns")
    rows = []
    for _ in range(n):
        o, c, a, b = (draw(_price) for _ in range(4))
        rows.append((o, max(o, c, a), min(o, c, b), c, draw(_volume)))
    df = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"], index=idx)
    return df, tf


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(valid_frames())
def test_valid_frames_round_trip_through_csv_and_parquet(tmp_path, case):
    df, tf = case
    csv = tmp_path / "rt.csv"
    out = df.reset_index()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(csv, index=False)
    pq = tmp_path / "rt.parquet"
    df.to_parquet(pq)
    for path in (csv, pq):
        back = load(path, gaps="error")
        assert_same(back, df)
        assert back.attrs["timeframe"] == tf
