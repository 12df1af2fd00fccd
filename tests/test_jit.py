"""A first run with an empty numba cache (issue 17): small kernel calls run interpreted, with
results identical to the compiled kernels; nothing is compiled on import or in the cold run;
a background process caches what ran interpreted; cache writes from two processes stay
consistent."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from numba.core import caching

from data import jit

REPO = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path, mode: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), jit.ENV_VAR: mode,
           "BTC_BACKTEST_CACHE": str(tmp_path / "cache"), **extra}
    return env


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    code = "import sys; from backtests.cli import main; sys.argv[0] = 'btc-backtest'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600, check=False)


def test_interpreted_kernels_give_the_main_jobs_results_exactly(tmp_path):
    """The main job (both strategies on the bundled daily data: levels, flips, key levels,
    liquidation survival, the fast engine, metrics, the look-ahead audit) with every kernel
    interpreted writes the same files as with every kernel compiled."""
    from tests.conftest import real_path

    outs = {}
    for mode in ("compile", "interpret"):
        outs[mode] = tmp_path / f"out-{mode}"
        res = _cli(["run", "--data", str(real_path("1d_binance")), "--out", str(outs[mode])],
                   _env(tmp_path / mode, mode), tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
    files = sorted(p.relative_to(outs["compile"]) for p in outs["compile"].rglob("*.parquet"))
    assert len(files) >= 10
    for rel in files:
        assert (outs["compile"] / rel).read_bytes() == (outs["interpret"] / rel).read_bytes(), rel

    def results(folder: Path) -> dict:
        out = json.loads(folder.read_text())
        out.pop("created")
        out["checks"]["lookahead"].pop("audited_at")
        return out

    saved = sorted(p.relative_to(outs["compile"]) for p in outs["compile"].rglob("results.json"))
    assert len(saved) == 2
    for rel in saved:
        assert results(outs["compile"] / rel) == results(outs["interpret"] / rel), rel


_COLD_SCRIPT = textwrap.dedent("""
    import json, sys
    from numba.core import event
    compiled = []
    class Listener(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__qualname__)
        def on_end(self, ev):
            pass
    event.register("numba:compile", Listener())
    import pandas as pd
    from data import jit
    from indicators.levels import sr_levels
    import backtests.engines.fast  # noqa: F401 - its import must compile nothing either
    on_import = list(compiled)
    df = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)
    out = sr_levels(df)
    print(json.dumps({"on_import": on_import, "compiled": compiled,
                      "interpreted": jit.interpreted,
                      "checksum": float(out.fillna(0).to_numpy().sum())}))
""")


def _wait_for_exit(pid: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"background compile (pid {pid}) still running after {timeout} s")


def test_a_cold_run_compiles_nothing_and_the_next_process_loads_machine_code(tmp_path):
    """Empty numba cache, default policy: the imports and the S/R call compile nothing (the
    engine runs interpreted); a detached process then caches it, and the next process runs the
    compiled engine without compiling or interpreting anything, with the same result."""
    from tests.conftest import real

    csv = tmp_path / "daily.csv"
    real("1d_binance").to_csv(csv)
    script = tmp_path / "cold.py"
    script.write_text(_COLD_SCRIPT)
    env = _env(tmp_path, "auto", NUMBA_CACHE_DIR=str(tmp_path / "numba"))

    def run() -> tuple[dict, str]:
        res = subprocess.run([sys.executable, str(script), str(csv)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=600, check=False)
        assert res.returncode == 0, res.stderr[-2000:]
        return json.loads(res.stdout.strip().splitlines()[-1]), res.stderr

    first, err = run()
    assert first["on_import"] == [] and first["compiled"] == []
    assert first["interpreted"]["indicators._engine.level_engine"] == 1
    assert first["interpreted"]["indicators.pivots._pivot_kernel"] == 1
    assert "compiling them in the background" in err
    pid = int(err.split("(pid ")[1].split(",")[0])
    _wait_for_exit(pid, timeout=300)
    assert list((tmp_path / "numba").rglob("_engine.level_engine-*.nbc"))

    second, err = run()
    assert second["compiled"] == [] and second["interpreted"] == {}
    assert "background" not in err
    assert second["checksum"] == first["checksum"]


_KERNEL_MODULE = textwrap.dedent("""
    import numba

    @numba.njit(cache=True)
    def total(a):
        s = 0.0
        for x in a:
            s += x
        return s
""")


@pytest.fixture
def cached_kernel(tmp_path, monkeypatch):
    """A ``cache=True`` kernel in a module of its own, caching into an empty folder."""
    import numba

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba"))
    (tmp_path / "jit_probe_kernel.py").write_text(_KERNEL_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("jit_probe_kernel", None)
    import jit_probe_kernel

    monkeypatch.setenv(jit.ENV_VAR, "auto")
    jit.reset()
    yield jit_probe_kernel.total
    jit.reset()  # nothing left to compile at this test process's exit
    sys.modules.pop("jit_probe_kernel", None)


def test_small_calls_are_interpreted_until_the_budget_then_compiled(cached_kernel):
    a = np.arange(1000, dtype=np.float64)
    assert jit.call(cached_kernel, a, work=len(a)) == a.sum()
    assert cached_kernel.signatures == []  # interpreted, nothing compiled
    assert jit.interpreted == {"jit_probe_kernel.total": 1}
    for _ in range(jit.WORK_BUDGET // len(a)):
        jit.call(cached_kernel, a, work=len(a))
    assert cached_kernel.signatures  # the budget ran out: compiled
    n = jit.interpreted["jit_probe_kernel.total"]
    assert n == jit.WORK_BUDGET // len(a)
    jit.call(cached_kernel, a, work=len(a))
    assert jit.interpreted["jit_probe_kernel.total"] == n


def test_a_large_call_or_the_compile_policy_compiles_at_once(cached_kernel, monkeypatch):
    big = np.ones(jit.MAX_WORK + 1)
    assert jit.call(cached_kernel, big, work=len(big)) == len(big)
    assert cached_kernel.signatures and jit.interpreted == {}


def test_the_compile_policy_never_interprets(cached_kernel, monkeypatch):
    monkeypatch.setenv(jit.ENV_VAR, "compile")
    assert jit.call(cached_kernel, np.ones(3), work=3) == 3.0
    assert cached_kernel.signatures and jit.interpreted == {}


def test_a_kernel_in_the_cache_is_not_interpreted(cached_kernel):
    a = np.ones(10)
    cached_kernel.compile(jit.signature(cached_kernel, (a,)))  # as the background does
    cached_kernel.overloads.clear()  # a new process: only the disk cache has it
    assert jit.compiled_ready(cached_kernel, (a,))
    assert jit.call(cached_kernel, a, work=10) == 10.0 and jit.interpreted == {}


def test_an_unknown_policy_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(jit.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="BTC_BACKTEST_JIT='fast': use one of auto, compile"):
        jit.mode()


def _save_many(folder: str, worker: int, rounds: int) -> None:
    jit.lock_cache_writes()
    cache_file = caching.IndexDataCacheFile(folder, "probe", ("stamp", 1))
    for r in range(rounds):
        cache_file.save((worker, r), (worker, r, b"x" * 2000))


def test_cache_writes_from_two_processes_keep_every_entry_with_its_own_data(tmp_path):
    """numba's save reads the index, picks a free data file and rewrites the index: two
    processes saving at once lose entries or point one at the other's data. With the lock every
    entry saved by either process is in the index and loads its own data."""
    assert caching.IndexDataCacheFile.save.__module__ == "data.jit"  # lock_cache_writes()
    ctx = multiprocessing.get_context("spawn")
    rounds = 40
    procs = [ctx.Process(target=_save_many, args=(str(tmp_path), w, rounds)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cache_file = caching.IndexDataCacheFile(str(tmp_path), "probe", ("stamp", 1))
    for w in (0, 1):
        for r in range(rounds):
            assert cache_file.load((w, r)) == (w, r, b"x" * 2000)
