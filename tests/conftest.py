"""Shared fixtures: real BTC candles that every clone has.

The daily series are the package's bundled files (``data/bundled``); the intraday ones are slices
of the ``../shared/data`` files under ``tests/data/real`` (see the README there). Nothing here
depends on ``../shared``, so no test skips for missing data.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from data.frame import to_canonical

# Tests exercise the compiled kernels (subprocesses inherit this); data.jit's first-run path
# that interprets them is tested on its own (tests/test_jit.py).
os.environ["BTC_BACKTEST_JIT"] = "compile"

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "data" / "bundled"
TEST_REAL = REPO / "tests" / "data" / "real"

REAL_FILES = {
    "1d_binance": (BUNDLED / "btc_usd_1d_binance.csv.gz", "1d"),
    "1d_bitstamp": (BUNDLED / "btc_usd_1d_bitstamp.csv.gz", "1d"),
    "1h_binance": (TEST_REAL / "btc_usd_1h_binance_2021-06_2021-10.csv.gz", "1h"),
    "1h_binance_halt": (TEST_REAL / "btc_usd_1h_binance_2023-03-20_2023-03-26.csv.gz", "1h"),
    "2h_bitstamp": (TEST_REAL / "btc_usd_2h_bitstamp_2015-01.csv.gz", "2h"),
}


def real_path(key: str) -> Path:
    """Path of a real data file (a key of :data:`REAL_FILES`)."""
    return REAL_FILES[key][0]


def _read_plain(key: str) -> pd.DataFrame:
    # Deliberately not our loader: fixtures must not depend on the code under test.
    path, tf = REAL_FILES[key]
    raw = pd.read_csv(path, parse_dates=["timestamp"], index_col="timestamp")
    df = to_canonical(raw)
    df.attrs.update(timeframe=tf, source=path.name)
    return df


_cache: dict[str, pd.DataFrame] = {}


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Saved look-ahead verdicts go to a folder of this session, not the user's cache (numba's
    folder was chosen when the kernel modules were imported, and stays: compiling every kernel
    again per session would cost minutes)."""
    import data.cache

    data.cache.configure_numba()
    mp = pytest.MonkeyPatch()
    mp.setenv(data.cache.ENV_VAR, str(tmp_path_factory.mktemp("btc-backtest-cache")))
    yield
    mp.undo()


def real(key: str) -> pd.DataFrame:
    """A fresh copy of a real data set in canonical form (cached per session)."""
    if key not in _cache:
        _cache[key] = _read_plain(key)
    df = _cache[key].copy()
    df.attrs = dict(_cache[key].attrs)
    return df


@pytest.fixture
def btc_daily() -> pd.DataFrame:
    """Binance BTC/USDT daily candles 2017-08-17 → 2026-07-03 (3,243 rows)."""
    return real("1d_binance")


@pytest.fixture
def btc_daily_bitstamp() -> pd.DataFrame:
    """Bitstamp BTC/USD daily candles 2011-08-19 → 2025-08-25 (5,121 rows)."""
    return real("1d_bitstamp")


@pytest.fixture
def btc_hourly() -> pd.DataFrame:
    """Binance BTC/USDT hourly candles 2021-06-01 → 2021-10-31 (3,666 rows, 6 missing hours)."""
    return real("1h_binance")


@pytest.fixture
def btc_2h() -> pd.DataFrame:
    """Bitstamp BTC/USD 2-hour candles 2015-01 (372 rows, 53 suspension fill bars)."""
    return real("2h_bitstamp")


@pytest.fixture
def engine_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bar counts of the S/R engine runs made by :func:`indicators.flips.flips` from now
    on in the test (a list filled as they happen)."""
    module = importlib.import_module("indicators.flips")  # indicators.flips is the function
    runs: list[int] = []
    engine = module.run_engine

    def counted(df: pd.DataFrame, *args: object, **kwargs: object) -> tuple:
        runs.append(len(df))
        return engine(df, *args, **kwargs)

    monkeypatch.setattr(module, "run_engine", counted)
    return runs
