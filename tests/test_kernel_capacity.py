"""The fast kernel's trade buffer holds one row per possible trade (one per non-zero entry, two
with exit rules: a partial fill adds a row), not one per bar (issue 17: the peak memory of a
long run). The busiest cases fill it to the last row: a reversal on every bar, and a partial
fill plus a close for every trade."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtests.config import BacktestConfig
from backtests.engines import fast as engine_fast
from strategies.base import ExitRules, Signals
from tests.lookahead import ohlc_frame


def test_a_reversal_on_every_bar_records_every_trade():
    df = ohlc_frame(400, "1h", seed=2)
    n = len(df)
    entry = np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int8)
    trades, _ = engine_fast.simulate(df, Signals.from_entries(entry),
                                     BacktestConfig(mode="both", commission=0.0))
    # each bar's signal reverses the position opened by the one before: n - 1 trades (the
    # last signal has no bar to fill on), the last closed at the end
    assert len(trades) == n - 1
    assert (trades["exit_reason"].iloc[:-1] == "reverse").all()
    np.testing.assert_array_equal(trades["entry_bar"], np.arange(1, n))


def test_partial_fill_and_close_for_every_trade_fit():
    n = 200
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    df = pd.DataFrame({"open": 100.0, "high": 102.0, "low": 99.9, "close": 100.0,
                       "volume": 1.0}, index=idx)
    entry = np.ones(n, np.int8)  # a long on every bar: each fills, takes its partial and its
    target = np.full(n, 101.5)   # target on its own first bar, and the next opens at the next
    rules = ExitRules(partial_pct=0.005, partial_size=0.5)
    trades, _ = engine_fast.simulate(df, Signals.from_entries(entry, target=target, exits=rules),
                                     BacktestConfig(mode="long", commission=0.0))
    assert len(trades) == 2 * (n - 1)  # every row of the buffer but its spare one
    assert (trades["exit_reason"].iloc[::2] == "partial").all()
    assert (trades["exit_reason"].iloc[1::2] == "target").all()
