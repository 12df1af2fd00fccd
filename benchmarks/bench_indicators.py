"""Benchmarks: RSI, EMA and the weekly EMA, next to raw TA-Lib on the same arrays.

Two ways to run it:

* ``python -m pytest benchmarks/bench_indicators.py --benchmark-only`` (pytest-benchmark; each
  group puts our wrapper next to raw TA-Lib, the "(x.xx)" factors in the table are the ratios);
* ``PYTHONPATH=. python benchmarks/bench_indicators.py`` prints a Markdown table with the ratios
  (the figures in benchmarks/README.md come from it).

Data: the real Binance hourly closes (``../shared/data``, or ``$BTC_SHARED_DATA``; skipped when
absent) and a seeded 10M-bar synthetic random walk (1-minute bars, about 19 years).
"""

from __future__ import annotations

import os
import sys
import timeit
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from data.frame import to_canonical
from indicators import ema, rsi, weekly_ema

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BTC_SHARED_DATA", REPO.parent / "shared" / "data"))
HOURLY_FILE = SHARED / "btc_usd_1h_binance.csv.gz"
N_SYNTH = 10_000_000


def load_hourly() -> pd.DataFrame | None:
    if not HOURLY_FILE.exists():
        return None
    raw = pd.read_csv(HOURLY_FILE, parse_dates=["timestamp"], index_col="timestamp")
    df = to_canonical(raw)
    df.attrs.update(timeframe="1h", source=HOURLY_FILE.name)
    return df


def synthetic_minutes(n: int = N_SYNTH, seed: int = 0) -> pd.DataFrame:
    """A seeded random-walk canonical frame of ``n`` 1-minute bars starting on a Monday."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 5e-4, n)))
    open_ = np.r_[close[0], close[:-1]]
    idx = pd.date_range("2007-01-01", periods=n, freq="1min", tz="UTC", unit="ns",
                        name="timestamp")
    df = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
            "volume": np.ones(n),
        },
        index=idx,
    )
    df.attrs.update(timeframe="1m", source=f"synthetic random walk (seed {seed})")
    return df


# -- pytest-benchmark -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hourly() -> pd.DataFrame:
    df = load_hourly()
    if df is None:
        pytest.skip(f"real hourly data not found at {HOURLY_FILE}")
    return df


@pytest.fixture(scope="module")
def synth() -> pd.DataFrame:
    return synthetic_minutes()


def _run(benchmark, func, big: bool):
    if big:  # 10M bars: a few rounds are plenty and keep the run short
        return benchmark.pedantic(func, rounds=7, iterations=1, warmup_rounds=1)
    return benchmark(func)


@pytest.mark.parametrize("data", ["hourly", "synth"])
@pytest.mark.parametrize(
    "impl",
    ["talib.RSI(array)", "rsi(array)", "talib.RSI(Series)", "rsi(Series)"],
)
def test_rsi(benchmark, request, data, impl):
    df = request.getfixturevalue(data)
    benchmark.group = f"rsi-14 {data} ({len(df):,} bars)"
    s = df["close"]
    a = s.to_numpy()
    func = {
        "talib.RSI(array)": lambda: talib.RSI(a, 14),
        "rsi(array)": lambda: rsi(a, 14),
        "talib.RSI(Series)": lambda: talib.RSI(s, 14),
        "rsi(Series)": lambda: rsi(s, 14),
    }[impl]
    out = _run(benchmark, func, data == "synth")
    assert len(out) == len(df)


@pytest.mark.parametrize("data", ["hourly", "synth"])
@pytest.mark.parametrize(
    "impl",
    ["talib.EMA(array)", "ema(array)", "talib.EMA(Series)", "ema(Series)"],
)
def test_ema(benchmark, request, data, impl):
    df = request.getfixturevalue(data)
    benchmark.group = f"ema-200 {data} ({len(df):,} bars)"
    s = df["close"]
    a = s.to_numpy()
    func = {
        "talib.EMA(array)": lambda: talib.EMA(a, 200),
        "ema(array)": lambda: ema(a, 200),
        "talib.EMA(Series)": lambda: talib.EMA(s, 200),
        "ema(Series)": lambda: ema(s, 200),
    }[impl]
    out = _run(benchmark, func, data == "synth")
    assert len(out) == len(df)


@pytest.mark.parametrize("data", ["hourly", "synth"])
@pytest.mark.parametrize("impl", ["talib.EMA(close array)", "closed", "developing"])
def test_weekly_ema(benchmark, request, data, impl):
    df = request.getfixturevalue(data)
    benchmark.group = f"weekly-ema-200 {data} ({len(df):,} bars)"
    a = df["close"].to_numpy()
    if impl.startswith("talib"):
        # Scale reference: raw TA-Lib EMA over the same input closes (not the same computation).
        func = lambda: talib.EMA(a, 200)  # noqa: E731
    else:
        func = lambda: weekly_ema(df, 200, mode=impl)  # noqa: E731
    out = _run(benchmark, func, data == "synth")
    assert len(out) == len(df)


# -- stand-alone Markdown table ---------------------------------------------------------------


def _best(func, repeat: int) -> float:
    number = 1
    # Enough calls per measurement for ~20 ms, so tiny inputs are timed reliably.
    t = min(timeit.repeat(func, number=1, repeat=3))
    if t < 0.02:
        number = max(1, int(0.02 / max(t, 1e-7)))
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number


def _rows(label: str, df: pd.DataFrame) -> list[str]:
    s = df["close"]
    a = s.to_numpy()
    rep = 7 if len(df) > 1_000_000 else 15
    cases = [
        ("talib.RSI(array, 14)", lambda: talib.RSI(a, 14), None),
        ("rsi(array, 14)", lambda: rsi(a, 14), "talib.RSI(array, 14)"),
        ("talib.RSI(Series, 14)", lambda: talib.RSI(s, 14), None),
        ("rsi(Series, 14)", lambda: rsi(s, 14), "talib.RSI(Series, 14)"),
        ("talib.EMA(array, 200)", lambda: talib.EMA(a, 200), None),
        ("ema(array, 200)", lambda: ema(a, 200), "talib.EMA(array, 200)"),
        ("talib.EMA(Series, 200)", lambda: talib.EMA(s, 200), None),
        ("ema(Series, 200)", lambda: ema(s, 200), "talib.EMA(Series, 200)"),
        ("weekly_ema(df, 200, 'closed')", lambda: weekly_ema(df, 200), "talib.EMA(array, 200)"),
        (
            "weekly_ema(df, 200, 'developing')",
            lambda: weekly_ema(df, 200, mode="developing"),
            "talib.EMA(array, 200)",
        ),
    ]
    weekly_ema(df.iloc[:5000], 200, mode="developing")  # compile the numba kernel first
    times: dict[str, float] = {}
    rows = []
    for name, func, ref in cases:
        t = times[name] = _best(func, rep)
        ratio = f"{t / times[ref]:.2f}x" if ref else "1.00x (reference)"
        shown = f"{t * 1e3:.2f} ms" if t >= 1e-3 else f"{t * 1e6:.0f} µs"
        rows.append(f"| {label} | {len(df):,} | `{name}` | {shown} | {ratio} |")
        print(rows[-1], file=sys.stderr)
    return rows


def table() -> str:
    """Time every case and return a Markdown table (progress goes to stderr)."""
    rows = ["| data | bars | computation | time | ratio to raw TA-Lib |", "|---|---|---|---|---|"]
    h = load_hourly()
    if h is not None:
        rows += _rows("Binance 1h (real)", h)
    rows += _rows("synthetic 1m", synthetic_minutes())
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
