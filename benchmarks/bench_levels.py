"""Benchmark: pivots, per-bar support/resistance (sr_levels) and flips (S/R + flips in one pass).

Data: the real Binance hourly candles (``../shared/data`` or ``$BTC_SHARED_DATA``; skipped when
absent) and seeded random-walk 1-minute paths of 1M and 10M bars
(:func:`tests.lookahead.ohlc_frame`, seed 42, 0.2% volatility per bar).

Run: ``PYTHONPATH=. python benchmarks/bench_levels.py [--skip-10m]``. Prints a Markdown table
(seconds, warm: numba functions are compiled on a small slice first; best of 3 below 10M bars,
one run at 10M) with the zone, flip and event counts. Goal: S/R + flips over 1M bars < 2 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data.frame import to_canonical  # noqa: E402
from indicators.flips import flips  # noqa: E402
from indicators.levels import sr_levels, support_resistance  # noqa: E402
from indicators.pivots import pivots  # noqa: E402
from tests.lookahead import ohlc_frame  # noqa: E402

SHARED = Path(os.environ.get("BTC_SHARED_DATA", REPO.parent / "shared" / "data"))


def best(fn, repeat: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def run(name: str, df: pd.DataFrame, repeat: int) -> str:
    t_piv, _ = best(lambda: pivots(df["high"], df["low"], 5, 5), repeat)
    t_sr, _ = best(lambda: sr_levels(df), repeat)
    t_fl, res = best(lambda: flips(df), repeat)
    t_snap, lv = best(lambda: support_resistance(df), repeat)
    ev = res.events
    n_flip = int((ev["kind"] != "retest").sum())
    return (f"| {name} | {len(df):,} | {t_piv:.3f} | {t_sr:.3f} | {t_fl:.3f} | {t_snap:.3f} | "
            f"{len(lv):,} | {n_flip:,} | {len(ev) - n_flip:,} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-10m", action="store_true", help="skip the 10M-bar path")
    args = ap.parse_args()
    flips(ohlc_frame(2000, "1m", seed=1))  # compile (or load the numba cache) outside timing
    rows = ["| data | bars | pivots s | sr_levels s | S/R + flips s | snapshot s | zones | "
            "flips | retests |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    path = SHARED / "btc_usd_1h_binance.csv.gz"
    if path.exists():
        raw = pd.read_csv(path, parse_dates=["timestamp"], index_col="timestamp")
        rows.append(run("Binance BTC/USDT 1h (real)", to_canonical(raw), 3))
    else:
        print(f"(real hourly data not found at {path}: skipped)")
    rows.append(run("random walk 1m, seed 42", ohlc_frame(1_000_000, "1m", seed=42,
                                                          volatility=0.002), 3))
    if not args.skip_10m:
        rows.append(run("random walk 1m, seed 42", ohlc_frame(10_000_000, "1m", seed=42,
                                                              volatility=0.002), 1))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
