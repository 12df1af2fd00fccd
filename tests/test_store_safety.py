"""The store never hides a damaged file and writes ordinary files; inputs are read once (stdin,
pipes, FIFOs)."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import data.loaders as loaders
from backtests.cli import main
from data.frame import DataError
from data.loaders import load
from data.store import DataStore

FORMATS = Path(__file__).parent / "data" / "formats"
CANONICAL = FORMATS / "canonical.csv"


def _daily(n: int = 40) -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC", unit="ns",
                        name="timestamp")
    df = pd.DataFrame({"open": 100.0, "high": 110.0, "low": 90.0, "close": 105.0,
                       "volume": 1.0}, index=idx)
    df.attrs["timeframe"] = "1d"
    return df


@pytest.fixture
def damaged(tmp_path) -> tuple[DataStore, Path]:
    store = DataStore(tmp_path / "store")
    path = store.write(_daily(), "bitstamp", "BTC/USD", "1d")
    path.write_bytes(path.read_bytes()[:200])  # truncated, as by a full disk
    return store, path


def test_data_info_names_a_damaged_file_and_the_repair(damaged):
    store, path = damaged
    (entry,) = store.list()
    assert entry.error and entry.path == path and entry.rows == 0
    r = CliRunner().invoke(main, ["data", "info", "--data-dir", str(store.root)])
    assert r.exit_code == 2
    assert f"DAMAGED: {path}" in r.output
    assert f"rm '{path}'" in r.output and "data download --exchange bitstamp" in r.output
    assert ": empty" not in r.output  # the damaged series is not hidden as "no data"


def test_run_names_the_damaged_file_instead_of_falling_back(damaged):
    store, path = damaged
    r = CliRunner().invoke(main, ["run", "--data-dir", str(store.root), "--offline",
                                  "--out", str(store.root.parent / "out")])
    assert r.exit_code == 2, r.output
    assert str(path) in r.output and "damaged store file" in r.output
    with pytest.raises(DataError, match="damaged store file"):
        store.read("bitstamp", "BTC/USD", "1d")


def test_validate_names_a_damaged_parquet_file(damaged):
    _store, path = damaged
    r = CliRunner().invoke(main, ["data", "validate", str(path)])
    assert r.exit_code == 2 and f"{path.name}: cannot read Parquet" in r.output


def test_store_files_follow_the_umask_and_stale_temporaries_go(tmp_path):
    old = os.umask(0o022)
    try:
        store = DataStore(tmp_path)
        path = store.write(_daily(), "x", "BTC/USD", "1d")
        assert path.stat().st_mode & 0o777 == 0o644
        stale = path.parent / f".{path.name}.killed123.tmp"
        stale.write_bytes(b"PAR1 half a file")
        store.append(_daily(41), "x", "BTC/USD", "1d")
        assert not stale.exists()
        assert len(store.read("x", "BTC/USD", "1d")) == 41
    finally:
        os.umask(old)


def test_unwritable_store_is_one_line_naming_the_option(tmp_path):
    r = CliRunner().invoke(main, ["data", "import", str(CANONICAL), "--data-dir",
                                  "/proc/btc-backtest-test"])
    assert r.exit_code == 2
    assert "cannot write to the candle store folder" in r.output and "--data-dir" in r.output


def test_standard_input_is_read_once(monkeypatch):
    class Stdin:
        buffer = io.BytesIO(CANONICAL.read_bytes())

    monkeypatch.setattr("sys.stdin", Stdin)
    df = load("-")
    assert len(df) > 2 and df.attrs["source"] == "<stdin>"


def test_a_fifo_is_read_like_a_file(tmp_path):
    fifo = tmp_path / "candles.fifo"
    os.mkfifo(fifo)

    def writer() -> None:
        time.sleep(0.2)
        with open(fifo, "wb") as fh:
            fh.write(CANONICAL.read_bytes())

    t = threading.Thread(target=writer)
    t.start()
    df = load(fifo)
    t.join()
    pd.testing.assert_frame_equal(df, load(CANONICAL), check_freq=False)


def test_a_fifo_nobody_writes_is_an_error_not_a_hang(tmp_path, monkeypatch):
    fifo = tmp_path / "silent.fifo"
    os.mkfifo(fifo)
    monkeypatch.setattr(loaders, "PIPE_WAIT_S", 0.3)
    t0 = time.monotonic()
    with pytest.raises(DataError, match="nothing was written to the pipe within"):
        load(fifo)
    assert time.monotonic() - t0 < 5


def test_utf16_and_utf32_files_are_decoded(tmp_path):
    text = CANONICAL.read_text()
    want = load(CANONICAL)
    for enc, bom in (("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
                     ("utf-32-le", b"\xff\xfe\x00\x00"), ("utf-16-le", b"")):
        path = tmp_path / f"{enc}{len(bom)}.csv"
        path.write_bytes(bom + text.encode(enc))
        pd.testing.assert_frame_equal(load(path), want, check_freq=False)


def test_the_same_acceptance_in_validate_import_and_run(tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5,3\n")
    runner = CliRunner()
    for args in (["data", "validate", str(one)],
                 ["data", "import", str(one), "--data-dir", str(tmp_path / "s")],
                 ["run", "--data", str(one), "--out", str(tmp_path / "o")]):
        r = runner.invoke(main, args)
        assert r.exit_code == 2 and "only one bar" in r.output, (args, r.output)
    # With the timeframe given, validate and import accept it alike.
    for args in (["data", "validate", str(one), "--timeframe", "1d"],
                 ["data", "import", str(one), "--timeframe", "1d", "--data-dir",
                  str(tmp_path / "s")]):
        assert runner.invoke(main, args).exit_code == 0, args
