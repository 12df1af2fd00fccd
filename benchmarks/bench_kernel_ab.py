"""A/B timing of the fast engine's kernel: this tree against a baseline checkout (issue 15).

The exit rules of issue 15 added per-bar work to ``simulate_nb``; the issue asks that the fast
engine stays within 10 % of its earlier speed. This script times both trees on the same inputs
and reports new / baseline.

Inputs (the rules of ``benchmarks/bench_engines.py``): RSI(14) bounce, long only, 95 % of equity,
0.1 % commission, on the real Bitstamp daily candles and on 1,000,000 seeded random one-minute
bars; each with the 5 % stop under the signal close ("stop") and without any stop ("none").
Cases only this tree can run (issue 15's exit rules; the baseline has none) are timed too and
compared with the baseline's "stop" case, the work they replace: "trail" (a 5 % intrabar
trailing stop beside the stop) and "mixed" (stop on the close at 5 % of the fill, 4 % trailing on
the close, break-even after 2 %, a third closed at +3 %).

Operations: "kernel" is one ``simulate_nb`` call on prebuilt inputs; "core" is ``prepare`` plus
``simulate`` (signals, validation, kernel, trade table: bench_engines' "ours: fast, no result").

How: one worker process per tree (``PYTHONPATH`` = that tree, its own numba cache), driven over
pipes so the two alternate case by case (A B B A A B ...: the first of each pair alternates);
each sample is the mean over enough calls to last ~40 ms; the figure compared is the median over
``--rounds`` samples of the process CPU time (the machine is shared), wall time beside it. The
load average is printed before and after. ``--compile`` instead times the cold start: import plus
the first kernel calls with an empty ``NUMBA_CACHE_DIR``, alternating fresh processes.

Run: ``python benchmarks/bench_kernel_ab.py --baseline /path/to/baseline-checkout
[--rounds 9] [--bars 1000000] [--compile]`` (make a baseline checkout with
``git worktree add --detach ../wt-kbase 22dffb2``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
CASES = [(data, stop, op) for data in ("daily", "minutes") for stop in ("none", "stop")
         for op in ("kernel", "core")]
#: Cases using issue 15's exit rules (this tree only), compared with the baseline's "stop" case.
EXIT_CASES = [(data, kind, op) for data in ("daily", "minutes") for kind in ("trail", "mixed")
              for op in ("kernel", "core")]
SAMPLE_SECONDS = 0.04


# ---------------------------------------------------------------------------------------------
# Worker: runs in the tree under test (its PYTHONPATH), answers one JSON request per line.


def _worker(tree: str, bars: int) -> None:
    sys.path.insert(0, tree)
    # The tree's packages first, so bench_engines (loaded from beside this file, which puts this
    # file's repository on sys.path) reuses them instead of importing this tree's copies.
    import numpy as np
    import pandas as pd

    import data.frame  # the tree's package, before bench_engines imports it
    from backtests.config import BacktestConfig
    from backtests.engines import fast
    from strategies import base

    spec = importlib.util.spec_from_file_location("bench_engines_ab", HERE.parent
                                                  / "bench_engines.py")
    be = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = be  # dataclasses look their module up there
    spec.loader.exec_module(be)
    if Path(tree).resolve() != REPO:  # bench_engines put this file's repository first
        sys.path[:] = [p for p in sys.path if p != str(REPO)]

    class Bounce(base.Strategy):
        """bench_engines' RSI bounce with a choice of exits (``kind``)."""

        name = "bench_kernel_ab"
        params: ClassVar[dict] = {"period": base.Param(be.PERIOD, "RSI period, bars", int, min=2)}

        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind = kind

        def signals(self, df: pd.DataFrame) -> base.Signals:
            close = df["close"].to_numpy()
            _, entry, exit_ = be.rule_arrays(close)
            stop = None if self.kind == "none" else close * be.STOP
            sig = base.Signals.from_entries(entry.astype(np.int8), exit=exit_, stop=stop)
            if self.kind == "trail":
                sig.exits = base.ExitRules(trail_pct=0.05)
            elif self.kind == "mixed":
                sig.exits = base.ExitRules(close_stop_pct=0.05, trail_pct=0.04, trail_on="close",
                                           breakeven_pct=0.02, partial_pct=0.03,
                                           partial_size=1 / 3)
            return sig

    cfg = BacktestConfig(cash=be.CASH, commission=be.COMMISSION, size=be.SIZE,
                         sizing="percent", mode="long")
    frames = {"daily": be.bitstamp_daily(), "minutes": be.random_minutes(bars)}
    inputs: dict[tuple[str, str], object] = {}

    def call(data: str, kind: str, op: str):
        df = frames[data]
        if op == "kernel":
            key = (data, kind)
            if key not in inputs:
                sig = fast.prepare(df, Bounce(kind), cfg)
                inputs[key] = fast.kernel_inputs(fast.market_arrays(df, cfg), sig, cfg)
            return lambda: fast.simulate_nb(inputs[key])
        return lambda: fast.simulate(df, fast.prepare(df, Bounce(kind), cfg), cfg)

    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        data, kind, op = req["case"]
        if kind in ("trail", "mixed") and not hasattr(base, "ExitRules"):
            print(json.dumps({"skip": True}), flush=True)
            continue
        fn = call(data, kind, op)
        out = fn()  # warm: compiled/cached code loaded, inputs built
        ntrades = len(out[1]) if op == "kernel" else len(out[0])
        w0 = time.perf_counter()
        fn()
        reps = max(1, int(SAMPLE_SECONDS / max(time.perf_counter() - w0, 1e-7)))
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(reps):
            fn()
        cpu = (time.process_time() - c0) / reps
        wall = (time.perf_counter() - w0) / reps
        print(json.dumps({"cpu": cpu, "wall": wall, "reps": reps, "trades": ntrades}),
              flush=True)


class Worker:
    """A worker process for one tree, asked for one timed case at a time."""

    def __init__(self, tree: Path, bars: int) -> None:
        env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), "--worker", str(tree), "--bars", str(bars)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(tree))

    def run(self, case: tuple[str, str, str]) -> dict:
        self.proc.stdin.write(json.dumps({"case": case}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker for case {case} died (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
        self.proc.wait()


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[:3].__str__()


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:9.1f} us"


def timing(baseline: Path, new: Path, rounds: int, bars: int, keep) -> None:
    print(f"# kernel A/B: baseline {baseline} vs new {new}; {bars:,} minute bars; {rounds} rounds")
    cases = [c for c in CASES if keep(c)]
    exit_cases = [c for c in EXIT_CASES if keep(c)]
    print(f"load average before: {loadavg()}", flush=True)
    a, b = Worker(baseline, bars), Worker(new, bars)
    samples: dict[tuple, dict[str, list]] = {}
    try:
        for r in range(rounds):
            for i, case in enumerate(cases + exit_cases):
                pair = [("A", a), ("B", b)]
                if (r + i) % 2:
                    pair.reverse()
                for tag, w in pair:
                    if tag == "A" and case in exit_cases:
                        continue
                    res = w.run(case)
                    if res.get("skip"):
                        continue
                    samples.setdefault(case, {}).setdefault(tag, []).append(res)
            print(f"round {r + 1}/{rounds} done, load {loadavg()}", flush=True)
    finally:
        a.close()
        b.close()
    print(f"load average after: {loadavg()}\n")
    print("| data | exits | op | baseline CPU | new CPU | new/base CPU | base wall | new wall "
          "| new/base wall | trades base/new |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for case, by in samples.items():
        data, kind, op = case
        base_case = case if case in CASES else (data, "stop", op)
        base = samples[base_case]["A"]
        new_ = by["B"]

        def med(rows, key):
            return statistics.median(x[key] for x in rows)

        bc, nc, bw, nw = med(base, "cpu"), med(new_, "cpu"), med(base, "wall"), med(new_, "wall")
        label = kind if case in CASES else f"{kind} (vs base stop)"
        print(f"| {data} | {label} | {op} | {_fmt(bc)} | {_fmt(nc)} | {nc / bc:.3f} | {_fmt(bw)} "
              f"| {_fmt(nw)} | {nw / bw:.3f} | {base[0]['trades']}/{new_[0]['trades']} |")


_COLD = """
import time
t0 = time.perf_counter()
import numpy as np
import pandas as pd
from backtests.engines import fast
from backtests.config import BacktestConfig
from strategies import base
t1 = time.perf_counter()
n = 500
rng = np.random.default_rng(1)
c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
df = pd.DataFrame({"open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "volume": 1.0},
                  index=pd.date_range("2020", periods=n, freq="1D", tz="UTC", name="timestamp"))
cfg = BacktestConfig()
entry = (rng.random(n) < 0.05).astype(np.int8)
m = fast.market_arrays(df, cfg)
for stop in (None, c * 0.95):
    sig = base.Signals.from_entries(entry, stop=stop).validate(n)
    fast.simulate_nb(fast.kernel_inputs(m, sig, cfg))
t2 = time.perf_counter()
if hasattr(base, "ExitRules"):
    rules = base.ExitRules(trail_pct=0.05, close_stop_pct=0.04)
    sig = base.Signals.from_entries(entry, stop=c * 0.95, exits=rules).validate(n)
    fast.simulate_nb(fast.kernel_inputs(m, sig, cfg))
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def cold(baseline: Path, new: Path, rounds: int) -> None:
    """Import time and first-call (compile) time of ``simulate_nb`` with an empty numba cache:
    signals without exit rules (both trees), then with rules (this tree's second kernel)."""
    print(f"# cold start (empty NUMBA_CACHE_DIR): {rounds} alternating rounds; "
          f"load {loadavg()}")
    got: dict[str, list[tuple[float, ...]]] = {"baseline": [], "new": []}
    for r in range(rounds):
        order = [("baseline", baseline), ("new", new)]
        if r % 2:
            order.reverse()
        for tag, tree in order:
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, PYTHONPATH=str(tree), NUMBA_CACHE_DIR=cache)
                out = subprocess.run([sys.executable, "-c", _COLD], env=env, cwd=str(tree),
                                     capture_output=True, text=True, check=True).stdout
            got[tag].append(tuple(float(v) for v in out.split()))
    for tag, rows in got.items():
        imp, plain, rules = (statistics.median(x[i] for x in rows) for i in range(3))
        print(f"{tag:8s}: import {imp:.2f} s; first kernel call, no exit rules (compile) "
              f"{plain:.2f} s; then with exit rules {rules:.2f} s (medians of {rounds})")
    print(f"load after: {loadavg()}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="root of the baseline checkout")
    ap.add_argument("--new", type=Path, default=REPO, help="root of the tree under test")
    ap.add_argument("--rounds", type=int, default=9, help="samples per case (median taken)")
    ap.add_argument("--bars", type=int, default=1_000_000, help="random 1-minute bars")
    ap.add_argument("--data", choices=["daily", "minutes"], help="one data set only")
    ap.add_argument("--op", choices=["kernel", "core"], help="one operation only")
    ap.add_argument("--no-exit-rules", action="store_true",
                    help="leave out the cases using issue 15's exit rules")
    ap.add_argument("--compile", action="store_true", help="time the cold start instead")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.bars)
        return
    if args.baseline is None:
        ap.error("--baseline is required (the root of a checkout to compare with)")
    baseline, new = args.baseline.resolve(), args.new.resolve()
    if args.compile:
        cold(baseline, new, args.rounds)
    else:
        def keep(case: tuple[str, str, str]) -> bool:
            data, kind, op = case
            return (args.data in (None, data) and args.op in (None, op)
                    and not (args.no_exit_rules and kind in ("trail", "mixed")))

        timing(baseline, new, args.rounds, args.bars, keep)


if __name__ == "__main__":
    main()
