"""``btc-backtest data ...`` through click's CliRunner (no network: HTTP is replayed or refused)."""

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
from click.testing import CliRunner
from responses import matchers
from responses.registries import OrderedRegistry

from backtests.cli import main
from data.store import DataStore

RECORDED = Path(__file__).parent / "data" / "recorded"


def candles(start: str, n: int, tf: str = "1d") -> pd.DataFrame:
    idx = pd.date_range(start, periods=n, freq=pd.Timedelta(tf.replace("d", "D")), tz="UTC")
    o = 100 + np.arange(n, dtype=float)
    df = pd.DataFrame(
        {"open": o, "high": o + 2, "low": o - 1, "close": o + 1, "volume": 0.5 + np.arange(n)},
        index=pd.DatetimeIndex(idx, name="timestamp").as_unit("ns"),
    )
    df.attrs.update(timeframe=tf, source="synthetic")
    return df


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    out = df.copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path)
    return path


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run ``btc-backtest`` with the store in a temporary directory (via the env var)."""
    monkeypatch.setenv("BTC_BACKTEST_DATA", str(tmp_path / "store"))
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["data", *args], catch_exceptions=False)

    return run


@pytest.fixture
def store(tmp_path) -> DataStore:
    return DataStore(tmp_path / "store")


def test_info_on_empty_store_tells_what_the_default_data_would_be(cli, tmp_path):
    r = cli("info")
    assert r.exit_code == 0
    assert f"store {tmp_path / 'store'}: empty" in r.output
    assert "default data: none stored yet; the first run downloads daily BTC/USD from bitstamp" in (
        r.output
    )
    assert "offline, uses the bundled real data: Binance spot BTC/USDT daily" in r.output
    # The bundled series are listed with span, rows and terms.
    assert "  binance   binance BTC/USDT 1d, 2017-08-17 -> 2026-07-03, 3,243 rows" in r.output
    assert "  bitstamp  bitstamp BTC/USD 1d, 2011-08-19 -> 2025-08-25, 5,121 rows" in r.output
    assert "Binance's terms of use" in r.output and "Repository licence MIT" in r.output


def test_import_then_info(cli, tmp_path, store):
    d = candles("2024-01-01", 10)
    d = d.drop(d.index[[3, 4]])
    f = write_csv(d, tmp_path / "btc.csv")
    r = cli("import", str(f), "--exchange", "bitstamp", "--symbol", "BTC/USD")
    assert r.exit_code == 0, r.output
    assert "imported btc.csv (canonical, 8 candles 2024-01-01 -> 2024-01-10) as bitstamp " \
        "BTC/USD 1d: 8 new, 8 stored" in r.output
    pd.testing.assert_frame_equal(store.read("bitstamp", "BTC/USD", "1d"), d, check_freq=False)
    # Importing the same file again adds nothing.
    r = cli("import", str(f), "--exchange", "bitstamp", "--symbol", "BTC/USD")
    assert "0 new, 8 stored" in r.output
    r = cli("info")
    assert r.exit_code == 0
    line = next(ln for ln in r.output.splitlines() if ln.strip().startswith("bitstamp"))
    assert line.split()[:6] == ["bitstamp", "BTC/USD", "1d", "2024-01-01", "2024-01-10", "8"]
    assert "1 (largest 2 bars)" in line
    assert "default data: bitstamp BTC/USD 1d, 2024-01-01 -> 2024-01-10, 8 candles" in r.output


def test_import_defaults_for_a_binance_kline_file(cli, tmp_path, store):
    d = candles("2024-01-01", 4)
    ms = d.index.as_unit("ms").asi8
    lines = [
        f"{t},{r.open},{r.high},{r.low},{r.close},{r.volume},{t + 86_399_999},1.0,3,0.1,0.1,0"
        for t, r in zip(ms, d.itertuples(), strict=True)
    ]
    f = tmp_path / "BTCUSDT-1d-2024-01.csv"
    f.write_text("\n".join(lines) + "\n")
    r = cli("import", str(f))
    assert r.exit_code == 0, r.output
    assert "(binance, 4 candles" in r.output and "as binance BTC/USDT 1d" in r.output
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "1d"), d, check_freq=False)


def test_import_conflict_and_hole_are_refused(cli, tmp_path, store):
    store.write(candles("2024-01-01", 5), "imported", "BTC/USD", "1d")
    other = candles("2024-01-01", 8).iloc[3:]
    other.iloc[0, 3] = 1.0  # low and close differ from the stored bar of 2024-01-04
    other.iloc[0, 2] = 0.5
    f = write_csv(other, tmp_path / "other.csv")
    r = cli("import", str(f))
    assert r.exit_code == 2
    assert "conflicting low for the same bar: stored 102.0, new 0.5 (1 conflicting bar(s))" in (
        r.output
    )
    late = write_csv(candles("2024-02-01", 3), tmp_path / "late.csv")
    r = cli("import", str(late))
    assert r.exit_code == 2 and "appending would leave 26 missing 1d bar(s)" in r.output
    r = cli("import", str(late), "--allow-gap")
    assert r.exit_code == 0 and "3 new, 8 stored" in r.output


def test_import_bad_input(cli, tmp_path):
    r = cli("import", str(tmp_path / "missing.csv"))
    assert r.exit_code == 2
    assert f"error: {tmp_path / 'missing.csv'}: file not found" in r.output
    r = cli("import", str(tmp_path / "missing.csv"), "--timeframe", "3x")
    assert r.exit_code == 2 and "invalid value for '--timeframe': unknown timeframe '3x'" in (
        r.output
    )
    f = tmp_path / "junk.csv"
    f.write_text("hello,world\n1,2\n")
    r = cli("import", str(f))
    assert r.exit_code == 2 and r.output.startswith("error: junk.csv")


def test_validate_ok_warn_and_errors(cli, tmp_path):
    d = candles("2024-01-01", 10).drop(pd.Timestamp("2024-01-05", tz="UTC"))
    f = write_csv(d, tmp_path / "gappy.csv")
    r = cli("validate", str(f))
    assert r.exit_code == 0
    assert "gaps:      1 (1 missing bars)" in r.output and "status:    OK" in r.output
    r = cli("validate", str(f), "--gaps", "error")
    assert r.exit_code == 2 and "status:    INVALID" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01T00:00:00Z,1,2,0.5,1.5,3\n"
        "2024-01-02T00:00:00Z,1,0.5,0.5,1.5,3\n"
        "2024-01-03T00:00:00Z,1,2,0.5,,3\n"
    )
    r = cli("validate", str(bad))
    assert r.exit_code == 2
    # Every problem is listed, not only the first.
    assert "errors:    2" in r.output
    assert "row 3, timestamp 2024-01-02T00:00:00+00:00: high 0.5 is below" in r.output
    assert "row 4" in r.output
    r = cli("validate", str(tmp_path / "nope.csv"))
    assert r.exit_code == 2 and "nope.csv: file not found" in r.output
    r = cli("validate", str(f), "--gaps", "sometimes")
    assert r.exit_code == 2 and "invalid value for '--gaps'" in r.output


def test_resample_file_and_stored_series(cli, tmp_path, store):
    d = candles("2024-01-01", 17)  # Monday 2024-01-01 .. Wednesday 2024-01-17
    f = write_csv(d, tmp_path / "d.csv")
    out = tmp_path / "w.csv"
    r = cli("resample", str(f), "--to", "1w", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "resampled 17 1d bars to 2 1w bars; wrote" in r.output  # forming 3rd week dropped
    w = pd.read_csv(out)
    assert list(w["timestamp"]) == ["2024-01-01T00:00:00Z", "2024-01-08T00:00:00Z"]
    assert list(w["open"]) == [100.0, 107.0] and list(w["close"]) == [107.0, 114.0]
    assert list(w["high"]) == [108.0, 115.0] and list(w["low"]) == [99.0, 106.0]
    assert w["volume"].tolist() == [d["volume"].iloc[:7].sum(), d["volume"].iloc[7:14].sum()]

    store.write(d, "binance", "BTC/USDT", "1d")
    r = cli("resample", "binance:BTC/USDT:1d", "--to", "1w", "--keep-incomplete")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "timestamp,open,high,low,close,volume" and len(lines) == 4
    assert "(last bar still forming)" in r.stderr

    pq_out = tmp_path / "w.parquet"
    r = cli("resample", "binance:BTC/USDT:1d", "--to", "1w", "-o", str(pq_out))
    assert r.exit_code == 0 and len(pd.read_parquet(pq_out)) == 2


def test_resample_bad_input(cli, tmp_path):
    r = cli("resample", "nothing-here", "--to", "1w")
    assert r.exit_code == 2
    assert "'nothing-here' is neither a file nor a stored series" in r.output
    r = cli("resample", "kraken:BTC/USD:1d", "--to", "1w")
    assert r.exit_code == 2 and "no kraken BTC/USD 1d candles in the store" in r.output
    f = write_csv(candles("2024-01-01", 5), tmp_path / "d.csv")
    r = cli("resample", str(f), "--to", "5h")
    assert r.exit_code == 2 and "cannot resample 1d bars to 5h" in r.output
    r = cli("resample", str(f), "--to", "fortnight")
    assert r.exit_code == 2 and "invalid value for '--to'" in r.output
    r = cli("resample", str(f))
    assert r.exit_code == 2 and "missing option '--to'" in r.output


def test_download_replayed(cli, store, monkeypatch):
    import data.download as dl

    rec = json.loads((RECORDED / "binance_full.json").read_text())
    orig = dl.download
    # The recording was made with pages of 4 candles at a fixed "now"; neither is a CLI option.
    monkeypatch.setattr(dl, "download", lambda *a, **k: orig(
        *a, page_size=4, now=pd.Timestamp(rec["now_ms"], unit="ms", tz="UTC"), **k))
    with responses.RequestsMock(registry=OrderedRegistry) as rs:
        for it in rec["runs"][0]["interactions"]:
            p = urlsplit(it["url"])
            rs.add(responses.GET, f"{p.scheme}://{p.netloc}{p.path}", body=it["body"],
                   status=it["status"], content_type=it["content_type"],
                   match=[matchers.query_param_matcher(dict(parse_qsl(p.query)))])
        r = cli("download", "--since", "2024-01-01", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "binance BTC/USDT 1d: 10 new candle(s), 10 stored (2024-01-01 -> 2024-01-10)" in (
        r.output
    )
    assert "skipped the still-forming candle 2024-01-11T00:00:00+00:00" in r.output
    assert len(store.read("binance", "BTC/USDT", "1d")) == 10


def test_download_bad_input_and_offline(cli):
    r = cli("download", "--exchange", "nosuchex")
    assert r.exit_code == 2 and "error: unknown exchange 'nosuchex'" in r.output
    r = cli("download", "--timeframe", "1x")
    assert r.exit_code == 2 and "unknown timeframe '1x'" in r.output
    r = cli("download", "--exchange", "coinbase", "--timeframe", "4h")
    assert r.exit_code == 2 and "coinbase does not offer 4h candles" in r.output
    with responses.RequestsMock() as rs:
        rs.add(responses.GET, "https://api.kraken.com/0/public/OHLC",
               body=requests.exceptions.ConnectionError("Failed to resolve 'api.kraken.com'"))
        r = cli("download", "--exchange", "kraken", "--no-progress")
    assert r.exit_code == 2
    assert r.output.startswith("error: could not reach kraken")
    assert "btc-backtest data import FILE" in r.output
    assert len(r.output.strip().splitlines()) == 1  # one line, no traceback


def test_data_dir_option_overrides_env(cli, tmp_path):
    other = tmp_path / "elsewhere"
    DataStore(other).write(candles("2024-01-01", 3), "kraken", "BTC/USD", "1d")
    r = cli("info", "--data-dir", str(other))
    assert r.exit_code == 0 and f"store {other}:" in r.output and "kraken" in r.output
    r = cli("--data-dir", str(other), "info")
    assert r.exit_code == 0 and f"store {other}:" in r.output
