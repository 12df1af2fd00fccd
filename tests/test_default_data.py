"""Default-data resolution: explicit file, local store, download, then the shipped real sample."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
import pytest
import requests
import responses

from data.default import (
    SAMPLE_NOTICE,
    describe_default,
    load_sample,
    resolve_default_data,
    sample_path,
)
from data.frame import DataError, check_canonical
from data.store import DataStore
from tests.conftest import shared_path

_spec = importlib.util.spec_from_file_location(
    "make_recordings", Path(__file__).parent / "data" / "recorded" / "make_recordings.py"
)
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)

BITSTAMP = re.compile(r"https://www\.bitstamp\.net/api/v2/ohlc/btcusd/")


def candles(start: str, n: int, tf: str = "1d") -> pd.DataFrame:
    idx = pd.date_range(start, periods=n, freq=pd.Timedelta(tf.replace("d", "D")), tz="UTC")
    o = 100 + np.arange(n, dtype=float)
    df = pd.DataFrame(
        {"open": o, "high": o + 2, "low": o - 1, "close": o + 1, "volume": np.ones(n)},
        index=pd.DatetimeIndex(idx, name="timestamp").as_unit("ns"),
    )
    df.attrs.update(timeframe=tf, source="synthetic")
    return df


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda _s: None)


def test_sample_is_the_real_monthly_btcusd_file_relabelled_to_open_time():
    df = load_sample()
    check_canonical(df)
    assert len(df) == 156 and df.attrs["timeframe"] == "1M"
    assert df.index[0] == pd.Timestamp("2012-01-01", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2024-12-01", tz="UTC")
    # The file labels January 2012 as 2012-01-31; its first row is open 4.58, close 5.55.
    raw_first = sample_path().read_text().splitlines()[1]
    assert raw_first.startswith("2012-01-31,4.58,")
    assert (df.iloc[0]["open"], df.iloc[0]["close"]) == (4.58, 5.55)


@pytest.mark.shared_data
def test_sample_months_match_bitstamp_daily_data():
    # Independent check that each sample bar is the calendar month it is labelled with: the
    # monthly highs equal the highs of the real Bitstamp daily candles of that month.
    daily = pd.read_csv(shared_path("btc_usd_1d_bitstamp.csv"), parse_dates=["timestamp"],
                        index_col="timestamp")
    monthly_high = daily["high"].resample("MS").max()
    s = load_sample()
    common = s.index.intersection(monthly_high.index)
    assert len(common) >= 150
    equal = np.isclose(s.loc[common, "high"], monthly_high.loc[common], rtol=1e-9)
    assert equal.mean() > 0.9
    # Shifted by one month (the month-end label taken as an open time) it would not match.
    shifted = monthly_high.shift(-1).reindex(common)
    assert np.isclose(s.loc[common, "high"], shifted, rtol=1e-9).mean() < 0.2


def test_explicit_file_wins(tmp_path):
    pytest.importorskip("data.loaders", reason="data.loaders not merged yet")
    path = tmp_path / "mine.csv"
    df = candles("2024-01-01", 5)
    out = df.copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path)
    store = DataStore(tmp_path / "store")
    store.write(candles("2020-01-01", 50), "bitstamp", "BTC/USD", "1d")
    msgs: list[str] = []
    got, origin = resolve_default_data(path, store=store, echo=msgs.append)
    assert origin.kind == "file" and len(got) == 5
    assert msgs and "mine.csv" in msgs[0] and "[--data]" in msgs[0]
    with pytest.raises(DataError):
        resolve_default_data(tmp_path / "absent.csv", store=store, echo=msgs.append)


def test_store_longest_daily_btc_series(tmp_path):
    store = DataStore(tmp_path)
    store.write(candles("2024-01-01", 10), "binance", "BTC/USDT", "1d")
    store.write(candles("2023-01-01", 30), "bitstamp", "BTC/USD", "1d")
    store.write(candles("2024-01-01", 500, tf="1h"), "binance", "BTC/USDT", "1h")  # not daily
    store.write(candles("2020-01-01", 90), "binance", "ETH/USDT", "1d")  # not BTC
    msgs: list[str] = []
    got, origin = resolve_default_data(store=store, echo=msgs.append)
    assert origin.kind == "store" and len(got) == 30
    assert got.attrs["exchange"] == "bitstamp"
    assert msgs == [f"data: {origin.description}"]
    assert "bitstamp BTC/USD 1d, 2023-01-01 -> 2023-01-30, 30 candles" in msgs[0]
    assert describe_default(store) == f"default data: {origin.description}"


def test_empty_store_downloads_daily_btcusd(tmp_path):
    store = DataStore(tmp_path)
    series = fake.series(10)

    def server(req):
        q = dict(parse_qsl(urlsplit(req.url).query))
        return 200, {}, json.dumps(fake.bitstamp(series, q))

    msgs: list[str] = []
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rs:
        rs.add_callback(responses.GET, BITSTAMP, callback=server, content_type="application/json")
        got, origin = resolve_default_data(store=store, echo=msgs.append, progress=False)
    assert origin.kind == "download"
    assert "downloading daily BTC/USD from bitstamp" in msgs[0]
    # The server's candles are all in the past here, so all 11 are complete.
    assert len(got) == 11 and got.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert store.list()[0].exchange == "bitstamp"


def test_offline_falls_back_to_the_sample_with_a_notice(tmp_path):
    store = DataStore(tmp_path)
    msgs: list[str] = []
    with responses.RequestsMock() as rs:
        rs.add(responses.GET, BITSTAMP,
               body=requests.exceptions.ConnectionError("Failed to resolve 'www.bitstamp.net'"))
        t = time.perf_counter()
        got, origin = resolve_default_data(store=store, echo=msgs.append, progress=False)
        assert time.perf_counter() - t < 10
    assert origin.kind == "sample" and origin.notice == SAMPLE_NOTICE
    assert len(got) == 156
    assert any("could not reach bitstamp" in m for m in msgs)
    assert msgs[-1] == SAMPLE_NOTICE
    assert "MONTHLY" in SAMPLE_NOTICE and "btc-backtest data download" in SAMPLE_NOTICE
    assert store.list() == []


def test_no_download_allowed_uses_the_sample(tmp_path):
    msgs: list[str] = []
    got, origin = resolve_default_data(store=DataStore(tmp_path), allow_download=False,
                                       echo=msgs.append)
    assert origin.kind == "sample" and len(got) == 156 and msgs == [SAMPLE_NOTICE]
    assert "none stored yet" in describe_default(DataStore(tmp_path))
