"""Nothing lost when a process dies mid-write, or when two write at once.

* SIGKILL during a store import (``DataStore.append``, what ``data import`` and ``data download``
  do) at random moments: the stored series is always exactly the old one or the new one.
* SIGKILL during ``run --out DIR`` over an earlier run in DIR at random moments: DIR always holds
  one whole run (its run record verifies, and the results are all of one run); the next write
  removes the killed run's temporaries.
* Two ``data import`` processes into one store at once, of disjoint halves: every row stored.

The kill tests fork a warmed-up process per trial (imports done, numba compiled) and kill the
child at a random moment within the measured duration of one write, so each trial costs about
one write, not a whole interpreter start-up.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from backtests._files import RUN_RECORD, read_run_record, verify_run_folder
from backtests.cli import main
from backtests.reports.write import load_results
from data.store import DataStore

REPO = Path(__file__).resolve().parents[1]
KILLS = 20


def _fork(work) -> int:
    """Run ``work()`` in a forked child that exits 0 when done (never returns in the child)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    return pid


def _kill_at(pid: int, delay: float) -> bool:
    """SIGKILL ``pid`` after ``delay`` s (unless it finished); return whether it finished."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return False


def _timed(work) -> float:
    pid = _fork(work)
    t0 = time.monotonic()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return time.monotonic() - t0


@pytest.fixture
def hourly() -> pd.DataFrame:
    idx = pd.date_range("2020-01-01", periods=60_000, freq="1h", tz="UTC", unit="ns",
                        name="timestamp")
    rng = random.Random(7)
    close = [30000.0 + rng.uniform(-500, 500) for _ in range(len(idx))]
    df = pd.DataFrame({"open": close, "high": [c + 50 for c in close],
                       "low": [c - 50 for c in close], "close": close,
                       "volume": [1.0] * len(idx)}, index=idx)
    df.attrs["timeframe"] = "1h"
    return df


def test_sigkill_during_import_leaves_old_or_new(tmp_path, hourly):
    old, new = hourly.iloc[:30_000], hourly
    rng = random.Random(12)
    outcomes = {"old": 0, "new": 0}
    store = DataStore(tmp_path)
    store.append(old, "kill", "BTC/USD", "1h")

    def work() -> None:
        DataStore(tmp_path).append(new, "kill", "BTC/USD", "1h")

    duration = None
    for _ in range(KILLS):
        store.write(old, "kill", "BTC/USD", "1h")  # reset to the old series
        if duration is None:
            duration = _timed(work)
            store.write(old, "kill", "BTC/USD", "1h")
        pid = _fork(work)
        _kill_at(pid, rng.uniform(0, duration * 1.1))
        got = store.read("kill", "BTC/USD", "1h")
        if len(got) == len(old):
            pd.testing.assert_frame_equal(got, old, check_freq=False)
            outcomes["old"] += 1
        else:
            pd.testing.assert_frame_equal(got, new, check_freq=False)
            outcomes["new"] += 1
    assert sum(outcomes.values()) == KILLS
    # The next write removes temporaries of killed writers; files are not private (0600).
    store.append(new, "kill", "BTC/USD", "1h")
    folder = store.path("kill", "BTC/USD", "1h").parent
    assert sorted(p.name for p in folder.iterdir()) == ["1h.parquet", "1h.parquet.lock"]
    mode = store.path("kill", "BTC/USD", "1h").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def _runs(out: Path) -> tuple[str, list[str]]:
    """(run id, sorted result folders) of a whole run in ``out``; fails on a mixed folder."""
    record = verify_run_folder(out)
    assert record is not None
    folders = sorted(p.name for p in out.iterdir() if (p / "results.json").is_file())
    assert folders == sorted(n for n in record["entries"] if n[0].isdigit())
    return record["run_id"], folders


def test_sigkill_during_run_out_leaves_one_whole_run(tmp_path, btc_daily, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "btc.csv"
    btc_daily.iloc[-400:].rename_axis("timestamp").to_csv(data)
    out = tmp_path / "out"
    common = ["run", "--data", str(data), "--no-png", "--out", str(out)]
    first = CliRunner().invoke(main, [*common, "-s", "oversold_bounce,breakdown"])
    assert first.exit_code == 0, first.output
    old_id, old_folders = _runs(out)
    second = ["-s", "oversold_bounce", "-p", "oversold=35", "--leverage", "2"]

    def work() -> None:
        res = CliRunner().invoke(main, [*common, *second])
        assert res.exit_code == 0

    duration = _timed(work)  # the child wrote a whole new run: start every trial from the old
    rng = random.Random(3)
    seen = {"old": 0, "new": 0}
    for _ in range(KILLS):
        if read_run_record(out)["run_id"] != old_id:
            reset = CliRunner().invoke(main, [*common, "-s", "oversold_bounce,breakdown"])
            assert reset.exit_code == 0, reset.output
            old_id, old_folders = _runs(out)
        pid = _fork(work)
        _kill_at(pid, rng.uniform(0, duration * 1.1))
        run_id, folders = _runs(out)
        if run_id == old_id:
            assert folders == old_folders
            seen["old"] += 1
        else:
            assert folders == ["1-oversold_bounce"]  # never the old breakdown folder beside it
            seen["new"] += 1
        # What `btc-backtest report DIR` reads: every checksum right, every result one run's.
        loaded = load_results(out)
        new_run = run_id != old_id
        assert [r.strategy for r in loaded] == (
            ["oversold_bounce"] if new_run else ["oversold_bounce", "breakdown"])
        assert loaded[0].params["oversold"] == (35.0 if new_run else 30.0)
        assert {r.config["leverage"] for r in loaded} == {2.0 if new_run else 1.0}
    assert sum(seen.values()) == KILLS and seen["old"] > 0
    # A completed run removes what killed ones left beside the folder.
    final = CliRunner().invoke(main, [*common, *second])
    assert final.exit_code == 0, final.output
    leftovers = [p.name for p in tmp_path.iterdir() if ".btc-" in p.name]
    assert leftovers == []
    assert (out / RUN_RECORD).is_file()


def test_two_concurrent_imports_keep_every_row(tmp_path, hourly):
    halves = [hourly.iloc[:30_000], hourly.iloc[30_000:]]
    files = []
    for i, half in enumerate(halves):
        path = tmp_path / f"half{i}.csv"
        frame = half.rename_axis("timestamp").reset_index()
        frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        frame.to_csv(path, index=False)
        files.append(path)
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = "from backtests.cli import main; main(prog_name='btc-backtest')"
    cmd = [sys.executable, "-c", cli, "data", "import", "--data-dir", str(store),
           "--exchange", "conc", "--symbol", "BTC/USD"]
    procs = [subprocess.Popen([*cmd, str(f)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for f in files]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    stored = DataStore(store).read("conc", "BTC/USD", "1h")
    assert len(stored) == len(hourly)
    pd.testing.assert_frame_equal(stored, hourly, check_freq=False)
    # Each says how many rows it added: together exactly all of them.
    added = [int(o[0].split(": ")[1].split(" new")[0]) for o in outs]
    assert sum(added) == len(hourly)
