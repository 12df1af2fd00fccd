"""The ccxt downloader, against exchange responses replayed at the HTTP layer (no network).

The recordings in tests/data/recorded/ are in each exchange's wire format with synthetic values
(see make_recordings.py there). Each replay is strict: requests must come in the recorded order
with the recorded query parameters, and every recorded response must be used. Anything else
(a ``load_markets`` call, an extra page) hits no registered URL and fails.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd
import pytest
import requests
import responses
from responses import matchers
from responses.registries import OrderedRegistry

from data.download import (
    DownloadError,
    ExchangeUnreachableError,
    download,
    known_market,
)
from data.frame import DataError, check_canonical
from data.store import DataStore

RECORDED = Path(__file__).parent / "data" / "recorded"
DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def load(name: str) -> dict:
    return json.loads((RECORDED / f"{name}.json").read_text())


def expected_frame(rec: dict) -> pd.DataFrame:
    rows = np.array(rec["complete_candles"], dtype=np.float64)
    idx = pd.DatetimeIndex(pd.to_datetime(rows[:, 0].astype(np.int64), unit="ms", utc=True))
    return pd.DataFrame(
        rows[:, 1:], index=idx.as_unit("ns").rename("timestamp"),
        columns=["open", "high", "low", "close", "volume"],
    )


def replay(rs: responses.RequestsMock, run: dict) -> None:
    for it in run["interactions"]:
        parts = urlsplit(it["url"])
        url = f"{parts.scheme}://{parts.netloc}{parts.path}"
        match = [matchers.query_param_matcher(dict(parse_qsl(parts.query)))]
        if "error" in it:
            exc_type = getattr(requests.exceptions, it["error"]["type"])
            rs.add(responses.GET, url, body=exc_type(it["error"]["message"]), match=match)
        else:
            rs.add(responses.GET, url, body=it["body"], status=it["status"],
                   content_type=it["content_type"], match=match)


def run_recorded(rec: dict, i: int, store: DataStore, **kwargs):
    run = rec["runs"][i]
    with responses.RequestsMock(registry=OrderedRegistry, assert_all_requests_are_fired=True) as rs:
        replay(rs, run)
        return download(rec["exchange"], rec["symbol"], rec["timeframe"], store=store,
                        progress=False, now=pd.Timestamp(rec["now_ms"], unit="ms", tz="UTC"),
                        **kwargs)


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Record sleeps (ccxt's rate limiter and our backoff) instead of waiting."""
    calls: list[float] = []
    monkeypatch.setattr(time, "sleep", calls.append)
    return calls


@pytest.mark.parametrize("exchange", ["binance", "bitstamp", "coinbase", "kraken"])
def test_full_multi_page_download(exchange, tmp_path, sleeps):
    rec = load(f"{exchange}_full")
    assert len(rec["runs"][0]["interactions"]) == 3  # three pages of at most 4 candles
    store = DataStore(tmp_path)
    res = run_recorded(rec, 0, store, since="2024-01-01", page_size=4)
    got = store.read(exchange, rec["symbol"], "1d")
    check_canonical(got)
    pd.testing.assert_frame_equal(got, expected_frame(rec), check_freq=False)
    assert res.added == res.rows == 10 and res.gaps == []
    assert (res.start, res.end) == (T0, T0 + 9 * DAY)
    # The still-forming candle (day 10, "now" is 10 h into it) was served but not stored.
    assert res.dropped_forming == T0 + 10 * DAY
    assert got.attrs["source"].startswith(f"{exchange} {rec['symbol']} 1d via ccxt")
    assert res.retries == 0


def test_default_page_size_is_the_exchange_maximum():
    rec = load("binance_502_then_resume")
    resume_url = rec["runs"][1]["interactions"][0]["url"]
    assert "limit=1000" in resume_url


def test_502_mid_download_then_resume_gives_exactly_the_right_candles(tmp_path, sleeps):
    rec = load("binance_502_then_resume")
    store = DataStore(tmp_path)
    with pytest.raises(DownloadError) as ei:
        run_recorded(rec, 0, store, since="2024-01-01", page_size=4, retries=2)
    msg = str(ei.value)
    assert "gave up at candles from 2024-01-09T00:00:00+00:00 after 3 attempt(s)" in msg
    assert "ExchangeNotAvailable" in msg
    assert "saved so far: 8 candle(s) 2024-01-01 -> 2024-01-08" in msg
    assert "run the same command again later: it resumes" in msg
    assert [s for s in sleeps if s >= 1] == [1.0, 2.0]  # exponential backoff, bounded
    # Pages 1 and 2 were saved before the failure.
    assert len(store.read("binance", "BTC/USDT", "1d")) == 8

    res = run_recorded(rec, 1, store)  # same command again, without --since: resumes
    got = store.read("binance", "BTC/USDT", "1d")
    pd.testing.assert_frame_equal(got, expected_frame(rec), check_freq=False)
    assert got.index.is_unique and len(got) == 12
    assert res.added == 4 and res.gaps == []
    assert (got.index[1:] - got.index[:-1] == DAY).all()


def test_timeouts_mid_download_then_resume(tmp_path, sleeps):
    rec = load("bitstamp_timeout_then_resume")
    store = DataStore(tmp_path)
    with pytest.raises(DownloadError, match=r"after 2 attempt\(s\) \(RequestTimeout"):
        run_recorded(rec, 0, store, since="2024-01-01", page_size=3, retries=1)
    assert len(store.read("bitstamp", "BTC/USD", "1d")) == 3
    res = run_recorded(rec, 1, store, page_size=3)
    pd.testing.assert_frame_equal(
        store.read("bitstamp", "BTC/USD", "1d"), expected_frame(rec), check_freq=False
    )
    assert res.added == 6 and res.rows == 9


def test_429_backs_off_then_succeeds(tmp_path, sleeps):
    rec = load("binance_429")
    assert rec["runs"][0]["interactions"][1]["status"] == 429
    store = DataStore(tmp_path)
    res = run_recorded(rec, 0, store, since="2024-01-01", page_size=4, backoff=0.5)
    assert res.retries == 1 and res.requests == 3
    # A 429 waits longer than a plain network error: 4 x the base delay.
    assert 2.0 in sleeps
    pd.testing.assert_frame_equal(
        store.read("binance", "BTC/USDT", "1d"), expected_frame(rec), check_freq=False
    )


def test_exchange_hole_is_reported_not_filled(tmp_path, sleeps):
    rec = load("binance_hole")
    store = DataStore(tmp_path)
    res = run_recorded(rec, 0, store, since="2024-01-01", page_size=4)
    assert res.gaps == [(T0 + 5 * DAY, T0 + 6 * DAY, 2)]
    assert "hole at the exchange: 2 bar(s) missing" in res.summary()
    got = store.read("binance", "BTC/USDT", "1d")
    pd.testing.assert_frame_equal(got, expected_frame(rec), check_freq=False)
    assert len(got) == 8
    (entry,) = store.list()
    assert (entry.gaps, entry.largest_gap) == (1, 2)


def test_offline_says_so_and_how_to_import(tmp_path, sleeps):
    rec = load("coinbase_offline")
    store = DataStore(tmp_path)
    with pytest.raises(ExchangeUnreachableError) as ei:
        run_recorded(rec, 0, store, since="2024-01-01")
    msg = str(ei.value)
    assert "could not reach coinbase" in msg
    assert "no internet connection, DNS failure or connection refused" in msg
    assert "btc-backtest data import FILE" in msg
    assert "https://data.binance.vision" in msg
    assert [s for s in sleeps if s >= 1] == []  # no retries when nothing answers at all
    assert store.list() == []


def test_nothing_new_makes_one_request_and_changes_nothing(tmp_path, sleeps):
    rec = load("binance_full")
    store = DataStore(tmp_path)
    run_recorded(rec, 0, store, since="2024-01-01", page_size=4)
    before = store.path("binance", "BTC/USDT", "1d").read_bytes()
    # Resuming right away: the only candle after the last stored one is still forming.
    forming_page = [it for it in rec["runs"][0]["interactions"]][-1]
    url = forming_page["url"].replace("startTime=1704758400000", "startTime=1704931200000")
    body = json.dumps(json.loads(forming_page["body"])[-1:])
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rs:
        parts = urlsplit(url)
        rs.add(responses.GET, f"{parts.scheme}://{parts.netloc}{parts.path}", body=body,
               match=[matchers.query_param_matcher(dict(parse_qsl(parts.query)))])
        res = download("binance", "BTC/USDT", "1d", store=store, progress=False, page_size=4,
                       now=pd.Timestamp(rec["now_ms"], unit="ms", tz="UTC"))
    assert res.added == 0 and res.requests == 1 and res.dropped_forming == T0 + 10 * DAY
    assert store.path("binance", "BTC/USDT", "1d").read_bytes() == before


def test_bad_input_errors(tmp_path):
    store = DataStore(tmp_path)
    with pytest.raises(DataError, match="unknown exchange 'nosuchex'"):
        download("nosuchex", store=store, progress=False)
    with pytest.raises(DataError, match="coinbase does not offer 4h candles"):
        download("coinbase", timeframe="4h", store=store, progress=False)
    # ccxt maps bitstamp "1w" to 3-day bars; we refuse rather than store wrong candles.
    with pytest.raises(DataError, match="bitstamp does not offer 1w candles"):
        download("bitstamp", timeframe="1w", store=store, progress=False)
    with pytest.raises(DataError, match="unknown timeframe 'daily'"):
        download("binance", timeframe="daily", store=store, progress=False)
    with pytest.raises(DataError, match="cannot parse --since 'yesterdayish'"):
        download("binance", since="yesterdayish", store=store, progress=False)


def test_since_after_stored_data_would_open_a_hole(tmp_path, sleeps):
    rec = load("binance_full")
    store = DataStore(tmp_path)
    run_recorded(rec, 0, store, since="2024-01-01", page_size=4)
    with pytest.raises(DataError, match="--since 2024-03-01 is after the last stored candle"):
        download("binance", "BTC/USDT", since="2024-03-01", store=store, progress=False)


def test_known_markets_avoid_load_markets():
    assert known_market("binance", "BTC/USDT")["id"] == "BTCUSDT"
    assert known_market("bitstamp", "btc/usd")["id"] == "btcusd"
    assert known_market("coinbase", "BTC/USD")["id"] == "BTC-USD"
    assert known_market("kraken", "BTC/USD")["id"] == "XXBTZUSD"
    assert known_market("kraken", "BTC/USDT")["id"] == "XBTUSDT"
    # Anything else goes through ccxt's own load_markets (which validates the symbol).
    assert known_market("binance", "ETH/USDT") is None
    assert known_market("binance", "BTC/USDT:USDT") is None
    assert known_market("okx", "BTC/USDT") is None


def test_notes_when_since_is_before_what_the_exchange_or_store_has(tmp_path, sleeps):
    rec = load("kraken_full")
    store = DataStore(tmp_path)
    run = rec["runs"][0]
    # Ask from 2023-12-30: kraken's first candle is 2024-01-01 (2 days later): noted.
    with responses.RequestsMock(registry=OrderedRegistry) as rs:
        replay(rs, run)
        first = rs.registered()[0]
        first.match = (matchers.query_param_matcher(
            {"pair": "XXBTZUSD", "interval": "1440", "since": str(1703894400 - 86400)}),)
        res = download("kraken", "BTC/USD", "1d", since="2023-12-30", store=store,
                       progress=False, page_size=4,
                       now=pd.Timestamp(rec["now_ms"], unit="ms", tz="UTC"))
    assert res.added == 10
    assert "kraken has no 1d candles from 2023-12-30T00:00:00+00:00 to 2024-01-01" in (
        res.summary()
    )
    # With data stored, an earlier --since is not silently ignored either.
    with responses.RequestsMock() as rs:
        rs.add(responses.GET, "https://api.kraken.com/0/public/OHLC",
               body=json.dumps({"error": [], "result": {"XXBTZUSD": [], "last": 0}}))
        res = download("kraken", "BTC/USD", "1d", since="2023-06-01", store=store,
                       progress=False, now=pd.Timestamp(rec["now_ms"], unit="ms", tz="UTC"))
    assert res.added == 0
    assert "--since 2023-06-01T00:00:00+00:00 is before the stored candles" in res.summary()
