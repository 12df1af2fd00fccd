"""Benchmarks: load + validate, next to a bare ``pd.read_csv`` of the same file.

Two ways to run it:

* ``python -m pytest benchmarks/bench_data.py --benchmark-only`` (pytest-benchmark; each group
  puts ``data.load`` next to ``pd.read_csv`` of the same file, the "(x.xx)" factors in the table
  are the ratios);
* ``PYTHONPATH=. python benchmarks/bench_data.py`` prints a Markdown table with the ratios (the
  figures in benchmarks/README.md come from it).

Data: the largest real file, ``btc_usd_2h_bitstamp.csv.gz`` (61,464 rows, gzip; from
``../shared/data`` or ``$BTC_SHARED_DATA``, skipped when absent), and a seeded synthetic
1,000,000-row canonical CSV (1-minute random walk, prices to the cent, some zero-volume bars)
written to a temporary directory.
"""

from __future__ import annotations

import os
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data import load, validate
from data.frame import to_canonical

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BTC_SHARED_DATA", REPO.parent / "shared" / "data"))
LARGEST_REAL = SHARED / "btc_usd_2h_bitstamp.csv.gz"
N_SYNTH = 1_000_000


def write_synthetic_csv(path: Path, n: int = N_SYNTH, seed: int = 0) -> Path:
    """Write a seeded random-walk canonical CSV of ``n`` valid 1-minute bars to ``path``."""
    rng = np.random.default_rng(seed)
    close = np.round(30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 5e-4, n))), 2)
    open_ = np.r_[close[0], close[:-1]]
    high = np.round(np.maximum(open_, close) + np.abs(rng.normal(0.0, 5.0, n)), 2)
    low = np.round(np.minimum(open_, close) - np.abs(rng.normal(0.0, 5.0, n)), 2)
    volume = np.round(rng.exponential(2.0, n), 8)
    volume[rng.random(n) < 0.01] = 0.0  # exchange halts: legitimate zero-volume bars
    idx = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC")
    pd.DataFrame(
        {
            "timestamp": idx.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_csv(tmp_path_factory.mktemp("bench_data") / "synthetic_1m.csv")


@pytest.fixture(scope="module")
def real_file() -> Path:
    if not LARGEST_REAL.exists():
        pytest.skip(f"real BTC data not found at {LARGEST_REAL} (set BTC_SHARED_DATA)")
    return LARGEST_REAL


@pytest.mark.benchmark(group="real 2h Bitstamp, 61,464 rows, gzip")
def test_real_load_validate(benchmark, real_file):
    df = benchmark(load, real_file)
    assert len(df) == 61_464 and df.attrs["validation"].ok


@pytest.mark.benchmark(group="real 2h Bitstamp, 61,464 rows, gzip")
def test_real_bare_read_csv(benchmark, real_file):
    assert len(benchmark(pd.read_csv, real_file)) == 61_464


@pytest.mark.benchmark(group="synthetic 1M rows, canonical CSV")
def test_synthetic_load_validate(benchmark, synthetic_csv):
    df = benchmark.pedantic(load, args=(synthetic_csv,), rounds=3, iterations=1)
    assert len(df) == N_SYNTH and df.attrs["validation"].ok


@pytest.mark.benchmark(group="synthetic 1M rows, canonical CSV")
def test_synthetic_bare_read_csv(benchmark, synthetic_csv):
    df = benchmark.pedantic(pd.read_csv, args=(synthetic_csv,), rounds=3, iterations=1)
    assert len(df) == N_SYNTH


@pytest.mark.benchmark(group="synthetic 1M rows, validate() only")
def test_synthetic_validate_only(benchmark, synthetic_csv):
    raw = pd.read_csv(synthetic_csv)
    report = benchmark.pedantic(validate, args=(raw,), rounds=3, iterations=1)
    assert report.ok and report.rows == N_SYNTH


def _best(fn, repeat: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    """Print a Markdown table: load+validate vs bare read_csv, best of N runs."""
    print("| data | rows | step | time | ratio to bare read_csv |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        if LARGEST_REAL.exists():
            cases.append(("real 2h Bitstamp (gzip)", LARGEST_REAL, 61_464, 7))
        else:
            print(f"(real file skipped: {LARGEST_REAL} not found)", file=sys.stderr)
        cases.append(
            ("synthetic 1m CSV", write_synthetic_csv(Path(tmp) / "s.csv"), N_SYNTH, 3)
        )
        for label, path, rows, repeat in cases:
            bare = _best(lambda p=path: pd.read_csv(p), repeat)
            full = _best(lambda p=path: load(p), repeat)
            raw = pd.read_csv(path)
            only = _best(lambda r=raw: validate(r), repeat)
            print(f"| {label} | {rows:,} | `pd.read_csv(path)` | {_fmt(bare)} | 1.00x |")
            print(f"| {label} | {rows:,} | `load(path)` | {_fmt(full)} | {full / bare:.2f}x |")
            print(f"| {label} | {rows:,} | `validate(raw)` only | {_fmt(only)} | "
                  f"{only / bare:.2f}x |")
            # The boundary check every public function runs: on a frame that is already
            # canonical it must cost next to nothing and not grow with the rows.
            df = load(path)
            per_call = min(timeit.repeat(lambda d=df: to_canonical(d), number=200,
                                         repeat=5)) / 200
            print(f"| {label} | {rows:,} | `to_canonical(frame)` on a canonical frame | "
                  f"{per_call * 1e6:.0f} us | {per_call / bare:.4f}x |")


if __name__ == "__main__":
    main()
