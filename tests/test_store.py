"""The Parquet candle store: paths, round trips, atomic writes, merging, listing."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from data.frame import DataError, check_canonical
from data.store import ENV_VAR, DataStore, find_gaps


def candles(start: str, n: int, tf: str = "1d", base: float = 100.0) -> pd.DataFrame:
    idx = pd.date_range(start, periods=n, freq=pd.Timedelta(tf.replace("d", "D")), tz="UTC")
    o = base + np.arange(n, dtype=float)
    df = pd.DataFrame(
        {"open": o, "high": o + 2, "low": o - 1, "close": o + 1, "volume": 1.0 + np.arange(n)},
        index=pd.DatetimeIndex(idx, name="timestamp").as_unit("ns"),
    )
    df.attrs.update(timeframe=tf, source="synthetic test candles")
    return df


def test_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert DataStore().root == tmp_path / "env"
    assert DataStore(tmp_path / "arg").root == tmp_path / "arg"
    monkeypatch.delenv(ENV_VAR)
    root = DataStore().root
    assert root.name == "btc-backtest" and root != tmp_path / "env"


def test_path_layout_and_bad_names(tmp_path):
    st = DataStore(tmp_path)
    assert st.path("Binance", "BTC/USDT", "1d") == tmp_path / "binance" / "BTC-USDT" / "1d.parquet"
    with pytest.raises(DataError, match="unknown timeframe '1x'"):
        st.path("binance", "BTC/USDT", "1x")
    with pytest.raises(DataError, match=r"invalid exchange name '\.\./etc'"):
        st.path("../etc", "BTC/USDT", "1d")
    with pytest.raises(DataError, match=r"invalid symbol '\.\./x'"):
        st.path("binance", "../x", "1d")


def test_round_trip_keeps_values_index_and_metadata(tmp_path):
    st = DataStore(tmp_path)
    df = candles("2024-01-01", 5)
    st.write(df, "binance", "BTC/USDT", "1d", downloaded_at="2024-01-06T00:00:00+00:00")
    back = st.read("binance", "BTC/USDT", "1d")
    check_canonical(back)
    pd.testing.assert_frame_equal(back, df, check_freq=False)
    assert back.attrs["source"] == "synthetic test candles"
    assert back.attrs["exchange"] == "binance" and back.attrs["symbol"] == "BTC/USDT"
    assert back.attrs["timeframe"] == "1d"
    assert back.attrs["downloaded_at"] == "2024-01-06T00:00:00+00:00"
    # The provenance lives in the Parquet file itself.
    meta = pq.read_schema(st.path("binance", "BTC/USDT", "1d")).metadata
    assert b"synthetic test candles" in meta[b"btc_backtest"]


def test_read_missing_says_how_to_get_data(tmp_path):
    with pytest.raises(DataError, match="no kraken BTC/USD 1h candles in the store") as ei:
        DataStore(tmp_path).read("kraken", "BTC/USD", "1h")
    assert "btc-backtest data download --exchange kraken" in str(ei.value)


def test_write_refuses_wrong_timeframe_and_non_canonical(tmp_path):
    st = DataStore(tmp_path)
    with pytest.raises(DataError, match="cannot store 1d candles as 1h"):
        st.write(candles("2024-01-01", 3), "binance", "BTC/USDT", "1h")
    bad = candles("2024-01-01", 3).iloc[::-1]
    with pytest.raises(DataError, match="not strictly increasing"):
        st.write(bad, "binance", "BTC/USDT", "1d")


def test_crash_mid_write_leaves_old_file_intact_and_no_temp(tmp_path, monkeypatch):
    st = DataStore(tmp_path)
    old = candles("2024-01-01", 5)
    path = st.write(old, "binance", "BTC/USDT", "1d")
    before = path.read_bytes()

    def dying_writer(table, where, **kwargs):
        where.write(b"PAR1" + b"\0" * 100)  # part of a file, then the process "dies"
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(pq, "write_table", dying_writer)
    with pytest.raises(KeyboardInterrupt):
        st.write(candles("2024-01-01", 9), "binance", "BTC/USDT", "1d")
    assert path.read_bytes() == before
    # The series' lock file stays (it is reused); no temporary file does.
    assert sorted(os.listdir(path.parent)) == ["1d.parquet", "1d.parquet.lock"]
    monkeypatch.undo()
    pd.testing.assert_frame_equal(st.read("binance", "BTC/USDT", "1d"), old, check_freq=False)


def test_append_merges_without_duplicates(tmp_path):
    st = DataStore(tmp_path)
    full = candles("2024-01-01", 10)
    st.append(full.iloc[:6], "bitstamp", "BTC/USD", "1d")
    merged = st.append(full.iloc[4:], "bitstamp", "BTC/USD", "1d")  # overlaps 2 bars
    pd.testing.assert_frame_equal(merged, full, check_freq=False)
    back = st.read("bitstamp", "BTC/USD", "1d")
    pd.testing.assert_frame_equal(back, full, check_freq=False)
    assert back.index.is_unique


def test_append_conflicting_values_is_an_error(tmp_path):
    st = DataStore(tmp_path)
    full = candles("2024-01-01", 6)
    st.append(full.iloc[:4], "bitstamp", "BTC/USD", "1d")
    other = full.iloc[3:].copy()
    other.iloc[0, other.columns.get_loc("close")] = 999.0
    msg = r"conflicting close for the same bar: stored 104\.0, new 999\.0"
    with pytest.raises(DataError, match=msg) as ei:
        st.append(other, "bitstamp", "BTC/USD", "1d")
    assert "2024-01-04T00:00:00+00:00" in str(ei.value)
    assert len(st.read("bitstamp", "BTC/USD", "1d")) == 4  # unchanged


def test_append_refuses_to_open_a_hole_unless_allowed(tmp_path):
    st = DataStore(tmp_path)
    full = candles("2024-01-01", 10)
    st.append(full.iloc[:3], "coinbase", "BTC/USD", "1d")
    with pytest.raises(DataError, match="would leave 2 missing 1d bar"):
        st.append(full.iloc[5:], "coinbase", "BTC/USD", "1d")
    with pytest.raises(DataError, match="from 2024-01-04T00:00:00"):
        st.append(full.iloc[5:], "coinbase", "BTC/USD", "1d")
    merged = st.append(full.iloc[5:], "coinbase", "BTC/USD", "1d", allow_gap=True)
    assert len(merged) == 8
    assert find_gaps(merged.index, "1d") == [
        (pd.Timestamp("2024-01-04", tz="UTC"), pd.Timestamp("2024-01-05", tz="UTC"), 2)
    ]
    # Filling the hole later is fine.
    st.append(full.iloc[3:5], "coinbase", "BTC/USD", "1d")
    pd.testing.assert_frame_equal(st.read("coinbase", "BTC/USD", "1d"), full, check_freq=False)


def test_list_reports_span_rows_gaps_and_size(tmp_path):
    st = DataStore(tmp_path)
    assert st.list() == []
    d = candles("2024-01-01", 10)
    d = d.drop(d.index[[2, 5, 6, 7]])  # two holes: 1 bar and 3 bars
    st.write(d, "bitstamp", "BTC/USD", "1d")
    st.write(candles("2024-01-01", 48, tf="1h"), "binance", "BTC/USDT", "1h")
    # A stray temp file from a killed process is not listed.
    (tmp_path / "binance" / "BTC-USDT" / ".1h.parquet.abc.tmp").write_bytes(b"junk")
    entries = st.list()
    assert [(e.exchange, e.symbol, e.timeframe) for e in entries] == [
        ("binance", "BTC/USDT", "1h"),
        ("bitstamp", "BTC/USD", "1d"),
    ]
    e = entries[1]
    assert (e.start, e.end, e.rows) == (
        pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-01-10", tz="UTC"),
        6,
    )
    assert (e.gaps, e.largest_gap) == (2, 3)
    assert e.size == e.path.stat().st_size > 0
    assert entries[0].rows == 48 and entries[0].gaps == 0
    assert entries[0].source == "synthetic test candles"
