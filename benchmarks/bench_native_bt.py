"""A user's backtrader strategy in our sweeps: what running it on backtrader costs per set.

The same SMA crossover (long when SMA(fast) crosses above SMA(slow), flat when it crosses back)
written twice: unchanged as a ``bt.Strategy`` (tests/data/user_strategies/sma_cross_bt.py) and as
our vectorised ``Strategy``. Both go through :func:`backtests.tuning.sweep.run_sweep` (serial,
one process) on the real Binance daily candles, interleaved A B A B, median of ``--repeat`` runs,
with the load average recorded. The trade counts of every set are asserted equal, so the two
sweeps do the same work.

Run: ``PYTHONPATH=. python benchmarks/bench_native_bt.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import talib

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backtests import BacktestConfig  # noqa: E402
from backtests.tuning.sweep import run_sweep  # noqa: E402
from data import load  # noqa: E402
from strategies import Param, Signals, Strategy, load_strategy  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "btc_usd_1d_binance.csv"
BT_FILE = REPO / "tests" / "data" / "user_strategies" / "sma_cross_bt.py"


class SmaCrossVec(Strategy):
    """The vectorised twin of SmaCross (same crossings, same fills)."""

    name = "sma_cross_vec"
    params: ClassVar[dict[str, Param]] = {"fast": Param(10, "fast SMA, bars", int, min=2),
              "slow": Param(30, "slow SMA, bars", int, min=2)}

    def signals(self, df: pd.DataFrame) -> Signals:
        c = df["close"].to_numpy()
        diff = talib.SMA(c, self.p.fast) - talib.SMA(c, self.p.slow)
        prev = np.r_[np.nan, diff[:-1]]
        with np.errstate(invalid="ignore"):
            up = (prev <= 0) & (diff > 0)
            down = (prev >= 0) & (diff < 0)
        return Signals.from_entries(up.astype(np.int8), exit=down)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    df = load(DATA)
    space = {"fast": [5, 10], "slow": [30, 60]}
    cfg = BacktestConfig(cash=1_000_000.0, sizing="fixed", size=1.0, commission=0.001)
    native = load_strategy(f"{BT_FILE}:SmaCross")
    times: dict[str, list[float]] = {"backtrader strategy": [], "vectorised strategy": []}
    counts = {}
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    for _ in range(args.repeat):  # interleaved A B A B
        for label, cls in (("backtrader strategy", native), ("vectorised strategy", SmaCrossVec)):
            t0 = time.perf_counter()
            sw = run_sweep(df, cls, space, cfg, executor="serial", top=0)
            times[label].append(time.perf_counter() - t0)
            counts[label] = sw.table.sort_values(["fast", "slow"])["n_trades"].tolist()
    assert counts["backtrader strategy"] == counts["vectorised strategy"], counts
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    n_sets = 4
    med = {k: statistics.median(v) for k, v in times.items()}
    same = counts["vectorised strategy"]
    print(f"{len(df):,} daily bars, {n_sets} sets, same trade counts {same}")
    print(f"load average before {' '.join(load_before)}, after {' '.join(load_after)}")
    print("| sweep | median s | per set | ratio |")
    print("|---|---|---|---|")
    base = med["vectorised strategy"]
    for k, v in med.items():
        print(f"| {k} | {v:.3f} | {1000 * v / n_sets:.1f} ms | {v / base:.0f}x |")


if __name__ == "__main__":
    main()
