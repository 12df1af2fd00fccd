"""Default-data resolution: explicit file, local store, download, then the bundled real data."""

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

import data.bundled
import data.default
from data.bundled import dataset, datasets, load_bundled
from data.default import describe_default, resolve_default_data
from data.frame import DataError, check_canonical
from data.store import DataStore
from tests.conftest import real_path

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


@pytest.mark.shared_data
@pytest.mark.parametrize(("key", "rows", "start", "end"), [
    ("binance", 3243, "2017-08-17", "2026-07-03"), ("bitstamp", 5121, "2011-08-19", "2025-08-25")])
def test_bundled_series_are_the_real_daily_files(key, rows, start, end):
    df = load_bundled(key)
    check_canonical(df)
    assert len(df) == rows and df.attrs["timeframe"] == "1d" and df.attrs["bundled"] == key
    assert (df.index[0], df.index[-1]) == (pd.Timestamp(start, tz="UTC"),
                                           pd.Timestamp(end, tz="UTC"))
    plain = pd.read_csv(real_path(f"1d_{key}"), parse_dates=["timestamp"], index_col="timestamp")
    np.testing.assert_array_equal(df.to_numpy(), plain[list(df.columns)].to_numpy())
    # The original CSVs' SHA-256 as published in ../shared/data/SOURCES.md.
    published = {"binance": "ca87f825bf491dfce5876c55bae8a2fb1bf8a1b8d1678e899dcc36437eb66df7",
                 "bitstamp": "4a7cb05ebc5403e6784518005b65a9ff4d5cbd1ea8e433c7f247d35a5a5a62c1"}
    assert dataset(key).source_sha256 == published[key]
    rec = dataset(key).record
    assert rec["rows"] == rows
    assert {"binance": "Binance's terms of use", "bitstamp": "MIT"}[key] in rec["licence"]
    assert rec["origin"]["repository"].startswith("https://github.com/")


def test_bundled_binance_holds_the_february_2026_crash():
    df = load_bundled()  # the default: Binance, the series that reaches 2026
    day = df.loc[pd.Timestamp("2026-02-05", tz="UTC")]
    assert (day["open"], day["low"], day["close"]) == (73165.84, 62345.00, 62909.86)
    assert list(datasets()) == ["binance", "bitstamp"]


def test_a_modified_bundled_file_is_refused(tmp_path, monkeypatch):
    for name in ("btc_usd_1d_binance.csv.gz", "btc_usd_1d_bitstamp.csv.gz"):
        (tmp_path / name).write_bytes((data.bundled.BUNDLE_DIR / name).read_bytes())
    monkeypatch.setattr(data.bundled, "BUNDLE_DIR", tmp_path)
    assert len(load_bundled("binance")) == 3243  # an intact copy loads
    raw = bytearray((tmp_path / "btc_usd_1d_binance.csv.gz").read_bytes())
    raw[-20] ^= 0xFF
    (tmp_path / "btc_usd_1d_binance.csv.gz").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"SHA-256 of the shipped file is [0-9a-f]{64}, expected"):
        load_bundled("binance")
    (tmp_path / "btc_usd_1d_bitstamp.csv.gz").unlink()
    with pytest.raises(DataError, match="bundled data file missing"):
        load_bundled("bitstamp")
    with pytest.raises(DataError, match=r"no bundled dataset .kraken.*binance, bitstamp"):
        load_bundled("kraken")


def test_dataset_option_selects_a_bundled_series(tmp_path):
    store = DataStore(tmp_path)
    store.write(candles("2020-01-01", 50), "bitstamp", "BTC/USD", "1d")
    msgs: list[str] = []
    got, origin = resolve_default_data(store=store, echo=msgs.append, bundled="bitstamp")
    assert origin.kind == "bundled" and len(got) == 5121
    assert msgs == [f"data: {dataset('bitstamp').label()} [--dataset]"]
    with pytest.raises(DataError, match="both a data file and a bundled dataset"):
        resolve_default_data(tmp_path / "x.csv", store=store, bundled="binance")


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


def test_empty_store_downloads_daily_btcusd(tmp_path, monkeypatch):
    monkeypatch.setattr(data.default, "host_resolves", lambda _host: True)  # the fake server's
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


def test_offline_falls_back_to_the_bundled_binance_data(tmp_path, monkeypatch):
    monkeypatch.setattr(data.default, "host_resolves", lambda _host: True)  # fails at the request
    store = DataStore(tmp_path)
    msgs: list[str] = []
    with responses.RequestsMock() as rs:
        rs.add(responses.GET, BITSTAMP,
               body=requests.exceptions.ConnectionError("Failed to resolve 'www.bitstamp.net'"))
        t = time.perf_counter()
        got, origin = resolve_default_data(store=store, echo=msgs.append, progress=False)
        assert time.perf_counter() - t < 10
    assert origin.kind == "bundled" and len(got) == 3243
    assert got.index[-1] == pd.Timestamp("2026-07-03", tz="UTC")
    assert any("could not reach bitstamp" in m for m in msgs)
    assert msgs[-1].startswith("data: bundled real data: Binance spot BTC/USDT daily")
    assert msgs[-1].endswith("(download failed)")
    assert store.list() == []


def test_no_download_allowed_uses_the_bundled_data(tmp_path):
    msgs: list[str] = []
    got, origin = resolve_default_data(store=DataStore(tmp_path), allow_download=False,
                                       echo=msgs.append)
    assert origin.kind == "bundled" and len(got) == 3243
    assert msgs == [f"data: {dataset().label()} (offline: no download tried)"]
    info = describe_default(DataStore(tmp_path))
    assert "none stored yet" in info and "2017-08-17 -> 2026-07-03" in info


def test_an_unresolvable_exchange_host_skips_the_download_and_ccxt(tmp_path, monkeypatch):
    import data.download

    def never(*_a, **_k):
        raise AssertionError("download() must not run when the host does not resolve")

    monkeypatch.setattr(data.download, "download", never)
    monkeypatch.setattr(data.default, "DOWNLOAD_HOST", "no-such-host.invalid")
    msgs: list[str] = []
    got, origin = resolve_default_data(store=DataStore(tmp_path), echo=msgs.append)
    assert origin.kind == "bundled" and len(got) == 3243
    assert any("could not reach bitstamp (no-such-host.invalid)" in m and "fix:" in m
               for m in msgs)
    assert msgs[-1].endswith("(download failed)")
