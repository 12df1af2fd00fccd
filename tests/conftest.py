"""Shared fixtures: the real BTC candles in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from data.frame import to_canonical

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BTC_SHARED_DATA", REPO.parent / "shared" / "data"))

REAL_FILES = {
    "1d_binance": ("btc_usd_1d_binance.csv", "1d"),
    "1d_bitstamp": ("btc_usd_1d_bitstamp.csv", "1d"),
    "1h_binance": ("btc_usd_1h_binance.csv.gz", "1h"),
    "2h_bitstamp": ("btc_usd_2h_bitstamp.csv.gz", "2h"),
}


def shared_path(name: str) -> Path:
    """Path of a real data file, skipping the test when ../shared/data is not there."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real BTC data not found at {path} (set BTC_SHARED_DATA)")
    return path


def _read_plain(key: str) -> pd.DataFrame:
    # Deliberately not our loader: fixtures must not depend on the code under test.
    name, tf = REAL_FILES[key]
    raw = pd.read_csv(shared_path(name), parse_dates=["timestamp"], index_col="timestamp")
    df = to_canonical(raw)
    df.attrs.update(timeframe=tf, source=name)
    return df


_cache: dict[str, pd.DataFrame] = {}


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
    """Binance BTC/USDT hourly candles 2021-06-01 → 2026-06-20 (44,283 rows, 7 missing hours)."""
    return real("1h_binance")


@pytest.fixture
def btc_2h() -> pd.DataFrame:
    """Bitstamp BTC/USD 2-hour candles 2011-08-18 → 2025-08-26 (61,464 rows)."""
    return real("2h_bitstamp")
