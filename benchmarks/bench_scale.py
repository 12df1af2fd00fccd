"""Benchmark: cost per bar as the bar count grows (S/R + flips, a full breakdown backtest) and the
memory a backtest holds per bar on top of the candles.

Data: seeded random-walk 1-minute paths (:func:`tests.lookahead.ohlc_frame`, seed 42, 0.2 %
volatility per bar); every size is a prefix of the largest path, so the sizes differ in length
only. Columns:

* ``S/R + flips``: :func:`indicators.flips.flips` (pivots, ATR, zones, flips, retests, per-bar
  columns), wall and CPU seconds, CPU nanoseconds per bar;
* ``backtest``: ``backtests.run(df, Breakdown(target="r_multiple"))`` (signals from the flips,
  simulation, trades, equity, metrics); the default ``target="level"`` also ranks the zone set
  at every candidate bar (:func:`indicators.keylevels.level_targets`, from the zone log): see
  ``--level-targets``;
* ``peak bytes/bar``: peak memory allocated during the backtest (``tracemalloc``: numpy and
  pandas buffers included) divided by the bars, the candles themselves excluded (they exist
  before); ``kept bytes/bar``: what the finished result still holds (equity, buy and hold, the
  trades, the indicator frame as the result keeps it: :mod:`data.perbar`).

Run: ``PYTHONPATH=. python benchmarks/bench_scale.py [--max-bars 2000000] [--no-memory]
[--flips-only] [--level-targets] [--keep-freed-memory]``. ``--keep-freed-memory`` sets the
allocator as ``btc-backtest`` does (:func:`data.memory.keep_freed_memory`: freed blocks are
reused warm instead of returned to the system; on this VM most of a 10M-bar run's system time
was first-touch page faults of fresh blocks).
Sizes are 250k, 1M, 2M, 5M and 10M bars up to ``--max-bars`` (default 2M: about a minute on a
quiet 2-core machine; 10M bars need ~4 GB of memory). Prints a Markdown table and the load
average before and after (the machine may be shared: CPU time is the steadier figure).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backtests import run  # noqa: E402
from data.memory import keep_freed_memory  # noqa: E402
from indicators.flips import flips  # noqa: E402
from strategies.breakdown import Breakdown  # noqa: E402
from tests.lookahead import ohlc_frame  # noqa: E402

SIZES = (250_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000)


def load() -> str:
    """The 1-minute load average (``/proc/loadavg``; "?" where there is none)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def timed(fn) -> tuple[float, float, object]:
    """``(wall s, CPU s, result)`` of one call."""
    gc.collect()
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def peak_bytes(fn) -> tuple[int, int]:
    """``(peak, kept)``: bytes allocated (tracemalloc) at the peak while ``fn`` runs and still
    held by its return value after it, above what was allocated before."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    out = fn()
    gc.collect()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del out
    return peak - base, kept - base


def row(df: pd.DataFrame, memory: bool, backtest: bool = True) -> str:
    n = len(df)
    w1, c1, res = timed(lambda: flips(df))
    if not backtest:
        return (f"| {n:,} | {w1:.2f} | {c1:.2f} | {c1 / n * 1e9:,.0f} | {len(res.events):,} | "
                f"- | - | - | - | - | - | {load()} |")
    strat = Breakdown(target="r_multiple")
    w2, c2, r = timed(lambda: run(df, strat))
    trades = len(r.trades)
    del r  # not held while the memory is measured
    peak, kept = peak_bytes(lambda: run(df, strat)) if memory else (None, None)
    per_bar = f"{peak / n:,.0f} | {kept / n:,.0f}" if memory else "- | -"
    return (f"| {n:,} | {w1:.2f} | {c1:.2f} | {c1 / n * 1e9:,.0f} | {len(res.events):,} | "
            f"{w2:.2f} | {c2:.2f} | {c2 / n * 1e9:,.0f} | {trades:,} | {per_bar} | "
            f"{load()} |")


def level_target_rows(df: pd.DataFrame, sizes: tuple[int, ...]) -> list[str]:
    out = ["", "Default breakdown (targets at ranked levels):", "",
           "| bars | wall s | CPU s | CPU ns/bar | peak bytes/bar | load |",
           "|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        d = df.iloc[:n]
        w, c, _ = timed(lambda d=d: run(d, Breakdown()))
        mem = peak_bytes(lambda d=d: run(d, Breakdown()))[0]
        out.append(f"| {n:,} | {w:.2f} | {c:.2f} | {c / n * 1e9:,.0f} | {mem / n:,.0f} | "
                   f"{load()} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-bars", type=int, default=2_000_000,
                    help="largest path (default 2,000,000; sizes: 250k, 1M, 2M, 5M, 10M)")
    ap.add_argument("--no-memory", action="store_true",
                    help="skip the tracemalloc pass (it runs each backtest a second time)")
    ap.add_argument("--flips-only", action="store_true",
                    help="time S/R + flips alone (no backtest column; quick to repeat at 10M)")
    ap.add_argument("--level-targets", action="store_true",
                    help="also time the default breakdown (level targets) on 100k-1M bars")
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="keep freed memory for reuse, as btc-backtest does (data.memory)")
    args = ap.parse_args()
    if args.keep_freed_memory:
        print(f"keep freed memory: {'applied' if keep_freed_memory() else 'not available'}")
    sizes = [n for n in SIZES if n <= args.max_bars] or [args.max_bars]
    print(f"load before: {load()}")
    df = ohlc_frame(max(sizes), "1m", seed=42, volatility=0.002)
    warm = df.iloc[:5000]
    flips(warm)
    run(warm, Breakdown(target="r_multiple"))  # compile / load the numba cache outside timing
    rows = ["| bars | S/R + flips wall s | CPU s | CPU ns/bar | events | backtest wall s | "
            "CPU s | CPU ns/bar | trades | peak bytes/bar | kept bytes/bar | load |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        rows.append(row(df.iloc[:n], not (args.no_memory or args.flips_only),
                        not args.flips_only))
        print(rows[-1], flush=True)
    if args.level_targets:
        run(warm, Breakdown())
        rows += level_target_rows(df, tuple(n for n in (100_000, 250_000, 1_000_000)
                                            if n <= len(df)))
    print("\n".join(rows))
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
