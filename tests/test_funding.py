"""Funding rates: ccxt download replayed from recorded binance/bybit responses, CSV import, the
8-hour schedule the engines charge, and the CLI (no network)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import responses
from click.testing import CliRunner
from responses.registries import OrderedRegistry

from backtests.cli import main
from data.download import DownloadError
from data.frame import DataError
from data.funding import download_funding, funding_schedule, read_funding_csv
from data.store import DataStore
from tests.test_download import replay

RECORDED = Path(__file__).parent / "data" / "recorded"


def load(name: str) -> dict:
    return json.loads((RECORDED / f"{name}.json").read_text())


def expected(rec: dict) -> pd.Series:
    ev = np.array(rec["events"])
    idx = pd.DatetimeIndex(pd.to_datetime(ev[:, 0].astype(np.int64), unit="ms", utc=True))
    return pd.Series(ev[:, 1], index=idx.as_unit("ns"), name="funding_rate")


def run_recorded(rec: dict, i: int, store: DataStore, **kwargs):
    with responses.RequestsMock(registry=OrderedRegistry,
                                assert_all_requests_are_fired=True) as rs:
        replay(rs, rec["runs"][i])
        return download_funding(rec["exchange"], store=store, progress=False,
                                now=pd.Timestamp(rec["now_ms"], unit="ms", tz="UTC"), **kwargs)


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    calls: list[float] = []
    monkeypatch.setattr(time, "sleep", calls.append)
    return calls


@pytest.mark.parametrize("name", ["binance_funding", "bybit_funding"])
def test_download_stores_every_event_once(name, tmp_path, sleeps):
    rec = load(name)
    store = DataStore(tmp_path)
    res = run_recorded(rec, 0, store, **rec["runs"][0]["kwargs"])
    got = store.read_funding(rec["exchange"], "BTC/USDT:USDT")
    pd.testing.assert_series_equal(got, expected(rec), check_names=False, check_freq=False)
    assert res.added == len(got) == 10 and res.requests == 3
    assert "ccxt" in got.attrs["source"] and "10 new rate(s)" in res.summary()


def test_502_then_resume_fetches_exactly_the_missing_events(tmp_path, sleeps):
    rec = load("binance_funding_502_then_resume")
    store = DataStore(tmp_path)
    with pytest.raises(DownloadError, match=r"gave up at rates from .* saved so far: 3 rate"):
        run_recorded(rec, 0, store, **rec["runs"][0]["kwargs"])
    assert len(store.read_funding("binance", "BTC/USDT:USDT")) == 3
    res = run_recorded(rec, 1, store, **rec["runs"][1]["kwargs"])
    pd.testing.assert_series_equal(store.read_funding("binance", "BTC/USDT:USDT"),
                                   expected(rec), check_names=False, check_freq=False)
    assert res.added == 6
    # the resumed run started right after the last stored event
    first_url = rec["runs"][1]["interactions"][0]["url"]
    assert f"startTime={int(expected(rec).index[2].value // 10**6) + 1}" in first_url


def test_read_funding_csv_formats_and_errors(tmp_path):
    iso = tmp_path / "iso.csv"
    iso.write_text("timestamp,funding_rate\n2024-01-01T00:00:00Z,0.0001\n"
                   "2024-01-01T08:00:00Z,-0.00005\n")
    ms = tmp_path / "binance.csv"
    ms.write_text("symbol,fundingTime,fundingRate\nBTCUSDT,1704067200000,0.0001\n"
                  "BTCUSDT,1704096000000,-0.00005\n")
    a, b = read_funding_csv(iso), read_funding_csv(ms)
    pd.testing.assert_series_equal(a, b)
    assert list(a) == [0.0001, -0.00005] and a.index[1] == pd.Timestamp("2024-01-01 08:00",
                                                                         tz="UTC")
    pct = tmp_path / "pct.csv"
    pct.write_text("timestamp,funding_rate\n2024-01-01,1.5\n")
    with pytest.raises(DataError, match="is not a rate"):
        read_funding_csv(pct)
    other = tmp_path / "candles.csv"
    other.write_text("timestamp,open,close\n2024-01-01,1,2\n")
    with pytest.raises(DataError, match="not a funding-rate CSV"):
        read_funding_csv(other)
    dup = tmp_path / "dup.csv"
    dup.write_text("timestamp,funding_rate\n2024-01-01,0.0001\n2024-01-01,0.0002\n")
    with pytest.raises(DataError, match="two funding rates"):
        read_funding_csv(dup)


def test_schedule_grid_late_events_and_fallback():
    bars = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    rates = pd.Series([0.001, 0.002, 0.004],
                      index=pd.DatetimeIndex(["2024-01-02 00:00", "2024-01-02 04:00",
                                              "2024-01-02 08:00"], tz="UTC"))
    s = funding_schedule(rates, bars, pd.Timedelta(days=1), fallback=0.0001)
    assert s.index[0] == bars[0]
    s = s.reindex(pd.date_range(bars[0], bars[-1] + pd.Timedelta(days=1), freq="8h"),
                  method="ffill")  # how the config reads it
    # before the series: the fallback; 04:00 is charged at 08:00 with 08:00's own rate
    assert s["2024-01-01"].tolist() == [0.0001] * 3
    assert s["2024-01-02 00:00"] == 0.001 and s["2024-01-02 08:00"] == 0.006
    # after the last event: the fallback again
    assert s["2024-01-02 16:00"] == 0.0001 and s.iloc[-1] == 0.0001


def test_cli_download_funding_and_import(tmp_path, sleeps, monkeypatch):
    import data.funding

    rec = load("bybit_funding")
    real_download = data.funding.download_funding
    calls = []

    def recorded(exchange, symbol, **kw):  # the CLI's call, replayed at the recorded "now"
        calls.append((exchange, symbol, kw["since"]))
        with responses.RequestsMock(registry=OrderedRegistry) as rs:
            replay(rs, rec["runs"][0])
            return real_download(exchange, symbol, since=kw["since"], store=kw["store"],
                                 progress=False, page_size=4,
                                 now=pd.Timestamp(rec["now_ms"], unit="ms", tz="UTC"))

    monkeypatch.setattr(data.funding, "download_funding", recorded)
    runner = CliRunner()
    out = runner.invoke(main, ["data", "download", "--funding", "--exchange", "bybit",
                               "--since", "2024-01-01", "--no-progress", "--data-dir",
                               str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert calls == [("bybit", None, "2024-01-01")]
    assert "bybit BTC/USDT:USDT funding: 10 new rate(s), 10 stored" in out.output
    csv = tmp_path / "f.csv"
    csv.write_text("timestamp,funding_rate\n2024-02-01T00:00:00Z,0.0001\n"
                   "2024-02-01T08:00:00Z,0.0002\n")
    out = runner.invoke(main, ["data", "import", str(csv), "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "funding, 2 rates" in out.output
    got = DataStore(tmp_path).read_funding("imported", "BTC/USDT:USDT")
    assert got.tolist() == [0.0001, 0.0002]
    # candle listing is not confused by the funding file
    info = runner.invoke(main, ["data", "info", "--data-dir", str(tmp_path)])
    assert info.exit_code == 0, info.output


# --- both engines charge a real-shaped series -------------------------------------------------


def _real_shaped(start: str, end: str, seed: int = 3) -> pd.Series:
    """8-hourly rates like a BTC perpetual's: mostly +0.01 %, drifting, negative stretches."""
    idx = pd.date_range(start, end, freq="8h", tz="UTC")
    rng = np.random.default_rng(seed)
    drift = np.cumsum(rng.normal(0, 2e-5, len(idx)))
    rates = np.round(np.clip(0.0001 + drift - drift.mean(), -0.0008, 0.0015), 8)
    return pd.Series(rates, index=idx.as_unit("ns"), name="funding_rate")


def test_engines_agree_on_a_real_shaped_funding_series(btc_daily):
    from backtests.config import BacktestConfig
    from backtests.engines import fast as engine_fast
    from strategies.breakdown import Breakdown
    from tests.test_parity import assert_same

    df = btc_daily.loc["2023-01-01":]
    rates = _real_shaped("2023-06-01", "2026-08-01")
    assert (rates < 0).any() and (rates > 0).any()
    sched = funding_schedule(rates, df.index, pd.Timedelta(days=1), fallback=0.0002)
    cfg = BacktestConfig(mode="both", leverage=3, size=0.5, funding_rate=sched)
    sig = engine_fast.prepare(df, Breakdown(), cfg)
    trades = assert_same(df, sig, cfg)  # fast vs backtrader, trade for trade
    assert (trades["funding"] > 0).sum() >= 3 and (trades["funding"] < 0).sum() >= 3
    # independent: each bar's rate = the 3 events inside it (the constant before the series)
    opens = df.index
    per_bar = np.array([rates[(rates.index >= t) & (rates.index < t + pd.Timedelta(days=1))]
                        .sum() if t >= rates.index[0] else 3 * 0.0002 for t in opens])
    close = df["close"].to_numpy()
    for t in trades.itertuples():
        held = np.arange(t.entry_bar, t.exit_bar)  # held at these closes
        want = t.side * t.size * (close[held] * per_bar[held]).sum()
        assert t.funding == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_run_uses_the_stored_series_and_shows_funding(tmp_path):
    store = DataStore(tmp_path)
    rates = _real_shaped("2024-12-01", "2026-08-01")
    rates.attrs["source"] = "test"
    store.write_funding(rates, "imported", "BTC/USDT:USDT", source="test")
    out = CliRunner().invoke(main, ["run", "--dataset", "binance", "--start", "2025-01-01",
                                    "--leverage", "3", "--no-png", "--data-dir", str(tmp_path),
                                    "-o", str(tmp_path / "rep")])
    assert out.exit_code == 0, out.output
    assert "funding: imported BTC/USDT:USDT funding" in out.stderr
    assert "funding: net paid by each strategy" in out.stdout
    assert "trades liquidated at 3x; closest:" in out.stdout
    head = out.stdout.splitlines()[0]
    assert head.split()[-1] == "funding"
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "series of " in page and "rates per 8 h" in page  # one line, not a dump
