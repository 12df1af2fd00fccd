"""Ours against vectorbt in the same process, interleaved (A B A B ...), median of ``--repeat``.

The claims of benchmarks/README.md that compare us with a peer come from here, each with the load
average before and after, so that a figure measured on a busy machine says so:

1. **1M bars, one backtest** (the RSI-bounce rules of ``bench_engines.py``, same trades in every
   engine, asserted): our full result (trades, equity, every metric), the same with its data
   fingerprint read (``result.data``: the SHA-256 of the candles is taken on that first read,
   not in the run), our signals + simulation + trade table, vectorbt ``Portfolio.from_signals``
   + its trade records, and a bare numba loop (the same rules, nothing but the fills) as the
   floor.
2. **240-set grid on daily data** (``bench_sweep.py``'s RSI rules on the Binance daily candles):
   our ``run_sweep`` (serial, one process, so both use one core) against vectorbt's
   column-vectorised ``from_signals``; trade counts asserted equal. Ours twice: the strategy
   with its batch hook (``RsiRule.signals_many``: one RSI per period for a chunk of sets, as
   the vectorbt code writes it) and the same rules without it (``RsiRulePerSet``: each set's
   ``signals`` in turn); both tables asserted identical.
3. **Start-up**: ``btc-backtest --help`` and ``python -c "import indicators"`` as fresh processes.

Run: ``PYTHONPATH=. python benchmarks/bench_peers.py [--repeat 5] [--bars 1000000]``.
Times are wall seconds (``time.perf_counter``), or with ``--cpu`` the process's CPU seconds
(``time.process_time``: on a machine busy with other jobs it is not inflated by waiting for a
core, so the ratios hold better; the start-up part stays wall time); the numba kernels are
compiled (or loaded from the cache) by a warm-up call before any timing.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numba import njit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_engines as be  # noqa: E402
import bench_sweep as bs  # noqa: E402

from backtests.config import BacktestConfig  # noqa: E402
from backtests.tuning.executors import SerialExecutor  # noqa: E402
from backtests.tuning.space import grid  # noqa: E402
from backtests.tuning.sweep import run_sweep  # noqa: E402
from data import load  # noqa: E402


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@njit(cache=True)
def _bare_loop(o, h, low, c, entry, exit_, stop, commission):  # pragma: no cover - compiled
    """The RSI-bounce rules with nothing else: all-in long, fills at the next open, intrabar
    stop (gap: the open), exit at the next open; returns the number of trades and the cash."""
    cash = 1.0
    q = 0.0
    sp = np.nan
    n_trades = 0
    for k in range(1, len(o)):
        if q > 0.0 and exit_[k - 1]:
            cash = q * o[k] * (1.0 - commission)
            q = 0.0
        if q == 0.0 and entry[k - 1] and o[k] > stop[k - 1]:
            q = cash / (o[k] * (1.0 + commission))
            sp = stop[k - 1]
            n_trades += 1
        if q > 0.0 and low[k] <= sp:
            cash = q * min(o[k], sp) * (1.0 - commission)
            q = 0.0
    return n_trades, cash


def bare_numba(df) -> int:
    close = df["close"].to_numpy()
    _, entry, exit_ = be.rule_arrays(close)
    n, _ = _bare_loop(df["open"].to_numpy(), df["high"].to_numpy(), df["low"].to_numpy(),
                      close, entry, exit_, close * be.STOP, be.COMMISSION)
    return int(n)


#: The clock of :func:`interleaved`: wall time unless ``--cpu`` chose the process's CPU time.
CLOCK: dict[str, Callable[[], float]] = {"now": time.perf_counter}


def interleaved(cases: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds (:data:`CLOCK`) per case, the cases run in turn ``repeat`` times
    (A B A B ...)."""
    for fn in cases.values():  # warm-up: compile, first-call imports
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeat):
        for label, fn in cases.items():
            gc.collect()
            t0 = CLOCK["now"]()
            fn()
            times[label].append(CLOCK["now"]() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def table(title: str, med: dict[str, float], base: str, before: str, after: str) -> str:
    clock = "CPU" if CLOCK["now"] is time.process_time else "wall"
    lines = [f"### {title}", "", f"load average before {before}, after {after}", "",
             f"| case | median ({clock}) | ratio to {base} |", "|---|---:|---:|"]
    for k, v in med.items():
        lines.append(f"| {k} | {v * 1000:.1f} ms | {v / med[base]:.2f}x |")
    return "\n".join(lines)


def one_backtest(bars: int, repeat: int) -> str:
    df = be.random_minutes(bars)
    ref = be.run_ours_fast(df)
    for other in (be.run_ours_fast_core(df), be.run_vectorbt(df)):
        assert be.compare(ref, other) == "same", be.compare(ref, other)
    assert bare_numba(df) == len(ref)
    before = loadavg()
    med = interleaved({
        "ours: full result": lambda: be.run_ours_fast(df),
        "ours: full result + data fingerprint": lambda: be.run_ours_fast_fingerprinted(df),
        "ours: signals + simulation + trades": lambda: be.run_ours_fast_core(df),
        "vectorbt: from_signals + trade records": lambda: be.run_vectorbt(df),
        "bare numba loop (same rules)": lambda: bare_numba(df),
    }, repeat)
    title = f"One backtest, {bars:,} one-minute bars, {len(ref):,} trades in every engine"
    return table(title, med, "vectorbt: from_signals + trade records", before, loadavg())


def grid_sweep(repeat: int) -> str:
    df = load(REPO / "data" / "bundled" / "btc_usd_1d_binance.csv.gz")
    cfg = BacktestConfig(cash=bs.CASH, commission=bs.COMMISSION, mode="long")
    space = grid({"period": bs.PERIODS, "oversold": bs.OVERSOLD, "overbought": bs.OVERBOUGHT})
    ex = SerialExecutor()
    ours = run_sweep(df, bs.RsiRule, space, cfg, executor=ex, top=0)
    per_set = run_sweep(df, bs.RsiRulePerSet, space, cfg, executor=ex, top=0)
    assert ours.table.equals(per_set.table) and ours.overfit == per_set.overfit
    counts = _vbt_grid(df)
    mine = ours.table.set_index(["period", "oversold", "overbought"])["n_trades"]
    for key, n in counts.items():
        assert int(mine.loc[key]) == int(n), (key, mine.loc[key], n)
    before = loadavg()
    med = interleaved({
        "ours: run_sweep, 240 sets, serial (with the batch hook)": lambda: run_sweep(
            df, bs.RsiRule, space, cfg, executor=ex, top=0),
        "vectorbt: 240 columns, from_signals": lambda: _vbt_grid(df),
        "ours: the same, a strategy without the batch hook": lambda: run_sweep(
            df, bs.RsiRulePerSet, space, cfg, executor=ex, top=0),
    }, repeat)
    title = f"240-set grid, Binance daily ({len(df):,} bars), trade counts equal on all sets"
    return table(title, med, "vectorbt: 240 columns, from_signals", before, loadavg())


def _vbt_grid(df):
    """vectorbt's grid as in bench_sweep.vectorbt_sweep (one timed call, no best-of)."""
    import pandas as pd
    import talib
    import vectorbt as vbt

    close = df["close"].to_numpy()
    cols, ent, ext = [], [], []
    for p in bs.PERIODS:
        rsi = talib.RSI(close, p)
        prev = np.r_[np.nan, rsi[:-1]]
        for o in bs.OVERSOLD:
            cross = (rsi > o) & (prev <= o)
            for b in bs.OVERBOUGHT:
                cols.append((p, o, b))
                ent.append(cross)
                ext.append((rsi > b) & ~cross)
    idx = pd.MultiIndex.from_tuples(cols, names=["period", "oversold", "overbought"])
    e = pd.DataFrame(np.column_stack(ent), index=df.index, columns=idx).shift(1, fill_value=False)
    x = pd.DataFrame(np.column_stack(ext), index=df.index, columns=idx).shift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(df["close"], e, x, price=df["open"], fees=bs.COMMISSION,
                                    init_cash=bs.CASH, freq="1D")
    return pf.trades.count()


def startup(repeat: int) -> str:
    exe = Path(sys.executable).with_name("btc-backtest")
    cmds = {
        "btc-backtest --help": [str(exe), "--help"],
        "python -c 'import indicators'": [sys.executable, "-c", "import indicators"],
        "python -c 'from indicators import rsi'": [sys.executable, "-c",
                                                   "from indicators import rsi"],
        "python -c 'pass' (the interpreter alone)": [sys.executable, "-c", "pass"],
    }
    before = loadavg()
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(repeat):
        for label, cmd in cmds.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[label].append(time.perf_counter() - t0)
    lines = ["### Start-up (fresh processes)", "",
             f"load average before {before}, after {loadavg()}", "",
             "| command | median wall |", "|---|---:|"]
    for k, v in times.items():
        lines.append(f"| `{k}` | {statistics.median(v):.3f} s |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--only", choices=["backtest", "grid", "startup"])
    ap.add_argument("--cpu", action="store_true",
                    help="time the process's CPU seconds instead of wall seconds")
    args = ap.parse_args()
    if args.cpu:
        CLOCK["now"] = time.process_time
    parts = {"backtest": lambda: one_backtest(args.bars, args.repeat),
             "grid": lambda: grid_sweep(args.repeat), "startup": lambda: startup(args.repeat)}
    for name, fn in parts.items():
        if args.only in (None, name):
            print(fn(), "\n", flush=True)


if __name__ == "__main__":
    main()
