"""One entry point for a backtest: :func:`run` dispatches on ``config.engine``."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from backtests.config import BacktestConfig
from data.frame import to_canonical
from strategies.base import Signals, Strategy
from strategies.native import BacktraderStrategy, backtrader_strategy, is_backtrader_strategy


def run(df: pd.DataFrame, strategy: Strategy | type, config: BacktestConfig | None = None, *,
        start: object = None, signals: Signals | None = None):
    """Backtest ``strategy`` on the candle frame ``df``, trading from ``start``.

    ``df`` is any frame :func:`data.frame.to_canonical` accepts (a naive or non-UTC index,
    ``Open``/``Close`` columns, a ``timestamp`` column...); the result's prices are canonical.

    ``start`` (a date; None: the first bar) opens the trading window: every bar of ``df`` before
    it is indicator warm-up (freqtrade's startup candles), positions open only inside the window,
    and ``result.data["warmup"]`` says per indicator how much history it had and needed
    (:mod:`backtests.warmup`). Cut ``df`` at the end date yourself: bars after it are never used
    by a causal indicator anyway.

    ``config.engine`` picks the engine: "fast" (numba, :func:`backtests.engines.fast.run_fast`) or
    "backtrader" (:func:`backtests.engines.bt.run_backtrader`); both follow the same execution
    rules and return a :class:`backtests.results.BacktestResult`. A user's ``backtrader.Strategy``
    (wrapped by :func:`strategies.native.backtrader_strategy`, as ``load_strategy`` does) always
    runs on backtrader (:func:`backtests.engines.bt_native.run_native`).

    ``signals``: ``strategy.signals(df)`` when the caller has computed them already (the main
    job hands the same signals to its look-ahead audit); ignored for a native backtrader
    strategy, which has none.
    """
    config = config or BacktestConfig()
    df = to_canonical(df, "price frame")  # once here; the engines' own call is then free
    if is_backtrader_strategy(strategy):  # a bt.Strategy class given as is: default params
        strategy = backtrader_strategy(strategy)()
    if isinstance(strategy, BacktraderStrategy):
        # A user's bt.Strategy has no vectorised signals: backtrader is its only engine.
        from backtests.engines.bt_native import run_native  # imports backtrader: when asked

        return run_native(df, strategy, replace(config, engine="backtrader"), start=start)
    if config.engine == "fast":
        from backtests.engines.fast import run_fast

        return run_fast(df, strategy, config, start=start, signals=signals)
    from backtests.engines.bt import run_backtrader  # imports backtrader: only when asked

    return run_backtrader(df, strategy, config, start=start, signals=signals)
