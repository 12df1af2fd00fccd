"""One entry point for a backtest: :func:`run` dispatches on ``config.engine``."""

from __future__ import annotations

import pandas as pd

from backtests.config import BacktestConfig
from strategies.base import Strategy


def run(df: pd.DataFrame, strategy: Strategy, config: BacktestConfig | None = None):
    """Backtest ``strategy`` on the canonical candle frame ``df``.

    ``config.engine`` picks the engine: "fast" (numba, :func:`backtests.engines.fast.run_fast`) or
    "backtrader" (:func:`backtests.engines.bt.run_backtrader`); both follow the same execution
    rules and return a :class:`backtests.results.BacktestResult`.
    """
    config = config or BacktestConfig()
    if config.engine == "fast":
        from backtests.engines.fast import run_fast

        return run_fast(df, strategy, config)
    from backtests.engines.bt import run_backtrader  # imports backtrader: only when asked

    return run_backtrader(df, strategy, config)
