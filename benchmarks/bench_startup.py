"""Start-up and the main job, in fresh processes: what a user waits for (issue 17).

Run ``PYTHONPATH=. python benchmarks/bench_startup.py [--repeat N] [--cold N] [--tree DIR ...]``.
Each case runs as its own process, interleaved with the other cases (and the other trees, given
with ``--tree``: e.g. a worktree of an older commit, to compare before/after in the same run),
``--repeat`` times (default 5); the table gives the median wall time and the median CPU time
(user + system of the process, less sensitive to a busy machine), with the load average before
and after. The main job is ``btc-backtest run --out TMP`` on the default data: "warm" reuses the
numba cache and a saved look-ahead verdict, "warm, audit run" passes ``--reaudit`` when the tree
has it, "cold" (``--cold`` runs, default 1) starts with an empty numba cache
(``NUMBA_CACHE_DIR``) and an empty btc-backtest cache (``BTC_BACKTEST_CACHE``): a new user's
first run. A cold run interprets its small kernel calls and leaves a detached process compiling
them for the next run (``data.jit``); the bench waits for it before the next case, so it does
not slow the other measurements, and reports how long it ran ("background compile").
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _wait_background(stderr: str) -> float | None:
    """Wait for the background compile a cold run announced on stderr ("... (pid N, ...");
    seconds waited after the run ended, None when there was none."""
    if "in the background" not in stderr or "(pid " not in stderr:
        return None
    pid = int(stderr.split("(pid ", 1)[1].split(",", 1)[0])
    t0 = time.perf_counter()
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return time.perf_counter() - t0
        time.sleep(0.1)


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, the 'timing:' line or ''). Run from the temporary folder:
    ``python -c`` puts the working directory first on sys.path, ahead of PYTHONPATH's tree.
    A background compile the run started is waited for (not timed, see the module docstring);
    the seconds waited are appended to the timing line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                         cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 2) or (out.returncode == 2 and "--help" not in cmd):
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    timing = next((ln for ln in out.stderr.splitlines() if ln.startswith("timing:")), "")
    waited = _wait_background(out.stderr)
    if waited is not None:
        timing += f"; background compile still ran {waited:.1f} s after the run"
    return wall, cpu, timing


def _cases(tree: Path, tmp: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    py = sys.executable
    cli = [py, "-c", "import sys; from backtests.cli import main; sys.argv[0] = 'btc-backtest'; "
                     "main()"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("NUMBA_CACHE_DIR", None)  # each tree's own default
    out = str(tmp / "out")
    has_reaudit = "--reaudit" in (tree / "backtests" / "cli" / "run.py").read_text()
    cases = {
        "python -c pass": ([py, "-c", "pass"], env),
        "import indicators": ([py, "-c", "import indicators"], env),
        "from indicators import rsi; rsi(array)": (
            [py, "-c", "import numpy as np\nfrom indicators import rsi\n"
                       "rsi(np.linspace(1.0, 2.0, 100))"], env),
        "btc-backtest --help": ([*cli, "--help"], env),
        "run, warm": ([*cli, "run", "--out", out, "--force"], env),
    }
    if has_reaudit:
        cases["run, warm, audit run"] = ([*cli, "run", "--out", out, "--force", "--reaudit"], env)
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cold", type=int, default=1)
    ap.add_argument("--tree", action="append", default=None,
                    help="source tree(s) to measure (default: this one)")
    args = ap.parse_args()
    trees = [Path(t).resolve() for t in (args.tree or [HERE])]
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        load0 = _loadavg()
        results: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
        cases = {t: _cases(t, tmp) for t in trees}
        for t in trees:  # warm-up: compile the kernels and save the verdicts once
            cmd, env = cases[t]["run, warm"]
            _timed(cmd, env)
        for _ in range(args.repeat):
            for name in cases[trees[0]]:
                for t in trees:
                    if name in cases[t]:
                        results.setdefault((str(t), name), []).append(_timed(*cases[t][name]))
        for i in range(args.cold):
            for t in trees:
                cmd, env = cases[t]["run, warm"]
                fresh = tmp / f"cold-{i}-{trees.index(t)}"
                cold_env = {**env, "NUMBA_CACHE_DIR": str(fresh / "numba"),
                            "BTC_BACKTEST_CACHE": str(fresh / "cache")}
                results.setdefault((str(t), "run, cold (empty caches)"), []).append(
                    _timed(cmd, cold_env))
        load1 = _loadavg()
        print(f"load average before {load0}, after {load1}; median of {args.repeat} "
              f"(cold: {args.cold})\n")
        print("| tree | case | wall | CPU | timing line (last run) |")
        print("|---|---|---:|---:|---|")
        for (tree, name), runs in results.items():
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            print(f"| {Path(tree).name} | {name} | {wall:.2f} s | {cpu:.2f} s | "
                  f"{runs[-1][2].removeprefix('timing: ')} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
