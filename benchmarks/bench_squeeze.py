"""Benchmark: leverage survival for every entry bar x 1..100x, both sides (the squeeze).

Targets (issue 16): the whole Binance daily history in < 1 s, the 44k-bar Binance hourly file in
< 5 s. Two horizons: 30 days, and "until the end of the data" (the longest possible: every entry
is followed to the last bar; the sparse-table kernel does not care about the horizon's length).

Run ``PYTHONPATH=. python benchmarks/bench_squeeze.py`` (prints a Markdown table with the median
of 7 runs after one warm-up call, and the load average before and after) or
``python -m pytest benchmarks/bench_squeeze.py --benchmark-only``.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pandas as pd
import pytest

from backtests.squeeze import leverage_survival
from data.frame import to_canonical

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BTC_SHARED_DATA", REPO.parent / "shared" / "data"))
FILES = {"1d": "btc_usd_1d_binance.csv", "1h": "btc_usd_1h_binance.csv.gz"}
LIMITS = {"1d": 1.0, "1h": 5.0}


def load(tf: str) -> pd.DataFrame | None:
    path = SHARED / FILES[tf]
    if not path.exists():
        return None
    df = to_canonical(pd.read_csv(path, parse_dates=["timestamp"], index_col="timestamp"))
    df.attrs.update(timeframe=tf, source=path.name)
    return df


def whole_history(df: pd.DataFrame, horizon: str | None) -> object:
    """Every entry bar of ``df``, both sides, 1..100x; ``horizon=None``: until the last bar."""
    if horizon is None:
        return leverage_survival(df, until=df.index[-1].isoformat(), side="both")
    return leverage_survival(df, horizon=horizon, side="both")


@pytest.mark.parametrize("tf", ["1d", "1h"])
@pytest.mark.parametrize("horizon", ["30D", None])
def test_bench_squeeze(benchmark, tf, horizon):
    df = load(tf)
    if df is None:
        pytest.skip(f"{FILES[tf]} not found in {SHARED}")
    whole_history(df, horizon)  # compile / warm
    res = benchmark(whole_history, df, horizon)
    assert len(res.table) == 2 * (len(df) - 1)


def main() -> None:
    print(f"load average before: {open('/proc/loadavg').read().split()[:3]}")
    print("| data | bars | horizon | entries x sides x leverages | median of 7 | limit |")
    print("|---|---:|---|---:|---:|---:|")
    for tf in ("1d", "1h"):
        df = load(tf)
        if df is None:
            print(f"| {FILES[tf]} missing | | | | | |")
            continue
        for horizon in ("30D", None):
            whole_history(df, horizon)
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                whole_history(df, horizon)
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            print(f"| Binance {tf} | {len(df):,} | {horizon or 'to the last bar'} | "
                  f"{len(df) - 1:,} x 2 x 100 | {med:.3f} s | {LIMITS[tf]:g} s |")
    print(f"load average after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
