"""Backtests: the runner, the two engines, results, tuning, reports and the command line.

The public face is small::

    from backtests import run, BacktestConfig, BacktestResult

Rooms (sub-packages), in the order data flows through them:

- :mod:`backtests.engines` — the numba engine (``fast``) and the backtrader engine (``bt``),
  which follow one set of execution rules and agree trade for trade;
- :mod:`backtests.runner`, :mod:`backtests.config`, :mod:`backtests.results`,
  :mod:`backtests.metrics` — one backtest in, one :class:`BacktestResult` out;
- :mod:`backtests.tuning` — parameter spaces, sweeps, walk-forward, overfitting statistics and the
  look-ahead audit;
- :mod:`backtests.reports` — the self-contained HTML page and the PNG charts, rendered from saved
  results (reports never recompute);
- :mod:`backtests.cli` — the ``btc-backtest`` command line, one module per command group.
"""

import time as _time

#: ``time.perf_counter()`` when this package was first imported: the CLI reports the start-up
#: cost (imports, loading or compiling the numba kernels) from here.
IMPORTED_AT: float = _time.perf_counter()

from backtests.config import BacktestConfig  # noqa: E402
from backtests.results import BacktestResult  # noqa: E402
from backtests.runner import run  # noqa: E402

__all__ = ["BacktestConfig", "BacktestResult", "run"]
