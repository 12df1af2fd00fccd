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
    from data import jit
    from backtests.cli import main
    on_import = list(compiled)
    report, args = sys.argv[1], sys.argv[2:]
    sys.argv = ["btc-backtest", *args]
    try:
        main(standalone_mode=False)
    finally:
        with open(report, "w") as f:
            json.dump({"on_import": on_import, "compiled": compiled,
                       "interpreted": jit.interpreted}, f)
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


def _results(path: Path) -> dict:
    """A saved results.json without what differs between two runs (when it was written)."""
    out = json.loads(path.read_text())
    out.pop("created")
    for key in ("audited_at", "reused", "reused_from"):
        out["checks"]["lookahead"].pop(key, None)
    return out


def test_a_cold_main_job_compiles_nothing_and_the_next_run_loads_identical_machine_code(
        tmp_path):
    """The main job (both strategies on the bundled daily data: levels, flips, key levels,
    liquidation survival, the fast engine, metrics, the look-ahead audit) with an empty numba
    cache and the default policy: importing and running compile nothing (the kernels run
    interpreted); a detached process then caches them, and the next run compiles and interprets
    nothing and writes the same files."""
    from tests.conftest import real_path

    script = tmp_path / "cold.py"
    script.write_text(_COLD_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), jit.ENV_VAR: "auto",
           "BTC_BACKTEST_CACHE": str(tmp_path / "cache"),
           "NUMBA_CACHE_DIR": str(tmp_path / "numba")}

    def run(name: str) -> tuple[dict, str]:
        args = ["run", "--data", str(real_path("1d_binance")), "--out", str(tmp_path / name),
                "--reaudit"]
        res = subprocess.run([sys.executable, str(script), str(tmp_path / f"{name}.json"),
                              *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=600, check=False)
        assert res.returncode == 0, res.stderr[-2000:]
        return json.loads((tmp_path / f"{name}.json").read_text()), res.stderr

    first, err = run("cold")
    assert first["on_import"] == [] and first["compiled"] == []
    assert {"indicators._engine.level_engine", "indicators.pivots._pivot_kernel",
            "indicators.liquidation._survival_nb", "backtests.engines.fast.simulate_nb",
            "backtests.metrics.metrics_pass"} <= set(first["interpreted"])
    assert "compiling them in the background" in err
    _wait_for_exit(int(err.split("(pid ")[1].split(",")[0]), timeout=600)
    assert list((tmp_path / "numba").rglob("_engine.level_engine-*.nbc"))

    second, err = run("warm")
    assert second["compiled"] == [] and second["interpreted"] == {}
    assert "background" not in err
    cold, warm = tmp_path / "cold", tmp_path / "warm"
    files = sorted(p.relative_to(cold) for p in cold.rglob("*.parquet"))
    assert len(files) >= 10
    for rel in files:
        assert (cold / rel).read_bytes() == (warm / rel).read_bytes(), rel
    saved = sorted(p.relative_to(cold) for p in cold.rglob("results.json"))
    assert len(saved) == 2
    for rel in saved:
        assert _results(cold / rel) == _results(warm / rel), rel


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


def test_the_interpret_policy_never_compiles_nor_queues_a_background_compile(cached_kernel,
                                                                             monkeypatch):
    monkeypatch.setenv(jit.ENV_VAR, "interpret")
    big = np.ones(jit.MAX_WORK + 1)
    assert jit.call(cached_kernel, big, work=len(big)) == len(big)
    assert cached_kernel.signatures == [] and jit.interpreted == {}


def test_a_kernel_in_the_cache_is_not_interpreted(cached_kernel):
    a = np.ones(10)
    cached_kernel.compile(jit.signature(cached_kernel, (a,)))  # as the background does
    cached_kernel.overloads.clear()  # a new process: only the disk cache has it
    assert jit.compiled_ready(cached_kernel, (a,))
    assert jit.call(cached_kernel, a, work=10) == 10.0 and jit.interpreted == {}


def test_a_kernel_compiled_in_this_process_is_called_without_typing_its_arguments(
        cached_kernel, monkeypatch):
    a = np.ones(10)
    assert jit.call(cached_kernel, a, work=10) == 10.0 and jit.interpreted  # cold: interpreted
    cached_kernel.compile(jit.signature(cached_kernel, (a,)))

    def typed_again(*_: object) -> None:
        raise AssertionError("argument types worked out again for a compiled kernel")

    monkeypatch.setattr(jit, "signature", typed_again)
    before = dict(jit.interpreted)
    assert jit.call(cached_kernel, a, work=10) == 10.0
    assert jit.call(cached_kernel, np.ones(3, dtype=np.float32), work=3) == 3.0  # compiles
    assert jit.interpreted == before and len(cached_kernel.signatures) == 2


def test_the_background_compile_caches_each_job_and_skips_one_that_no_longer_fits(
        cached_kernel, tmp_path, monkeypatch):
    from numba import types

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))  # where its lock goes
    good = jit.signature(cached_kernel, (np.ones(3),))
    jobs = [("jit_probe_kernel", "total", (types.unicode_type, types.int64)), # wrong arity now
            ("jit_probe_kernel", "total", good), ("jit_probe_kernel", "gone", good)]
    assert jit.compile_jobs(jobs) == 1
    assert [tuple(s) for s in cached_kernel.signatures] == [good]
    assert list((tmp_path / "numba").rglob("jit_probe_kernel.total-*.nbc"))
    cached_kernel.overloads.clear()
    assert jit.compile_jobs(jobs[1:2]) == 0  # loaded from the cache, not compiled again


def test_an_unknown_policy_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(jit.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="BTC_BACKTEST_JIT='fast': use one of auto, compile"):
        jit.mode()


_TYPED_MODULE = textwrap.dedent("""
    import numba
    from data import jit

    @jit.typed(numba.int64(numba.int64, numba.int64))
    def add(a, b):
        return a + b

    @numba.njit(cache=True)
    def caller(x):
        return add(x, 0) + add(x, 1) + add(0, x)  # constants are typed Literal[int]
""")


def test_a_typed_helper_compiles_once_when_its_caller_compiles_not_on_import(tmp_path,
                                                                            monkeypatch):
    import numba

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba"))
    (tmp_path / "jit_probe_typed.py").write_text(_TYPED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("jit_probe_typed", None)
    import jit_probe_typed as mod

    assert mod.add.signatures == []  # nothing compiled on import
    assert mod.caller(5) == 5 + 6 + 5
    assert [tuple(map(str, s)) for s in mod.add.signatures] == [("int64", "int64")]
    sys.modules.pop("jit_probe_typed", None)


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


def test_prefetch_is_a_hint_that_changes_nothing():
    # jit.prefetch in a compiled loop, ahead of the array's end and before its start, on a
    # float and an int array: the loop's result is unchanged; interpreted, it does nothing.
    import numba

    @numba.njit
    def total(a, b, ahead):
        s = 0.0
        for i in range(len(a)):
            jit.prefetch(a, i + ahead)
            jit.prefetch(b, i - ahead)
            s += a[i] * b[i]
        return s

    a = np.linspace(0.0, 1.0, 5_000)
    b = np.arange(5_000, dtype=np.int64)
    want = float(np.sum(a * b))
    for ahead in (0, jit.PREFETCH_AHEAD, 10**9):
        assert total(a, b, ahead) == pytest.approx(want, rel=1e-12)
        assert total.py_func(a, b, ahead) == total(a, b, ahead)
    assert jit.prefetch(a, 3) is None
