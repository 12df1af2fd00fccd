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
from typing import TYPE_CHECKING

from backtests.layout import check_layout

#: ``time.perf_counter()`` when this package was first imported: the CLI reports the start-up
#: cost (imports, loading or compiling the numba kernels) from here.
IMPORTED_AT: float = _time.perf_counter()

if TYPE_CHECKING:
    from backtests.config import BacktestConfig
    from backtests.results import BacktestResult
    from backtests.runner import run

__all__ = ["BacktestConfig", "BacktestResult", "run"]

# A user's data.py (or strategies/ package) beside a notebook would hide ours: say so now, in one
# line naming the file, rather than fail deep inside an import (see backtests.layout).
check_layout(("data", "indicators", "strategies"))

# Compiled numba kernels are cached where the user can write (before any kernel module loads);
# imported after the layout check, which explains a 'data' module that hides ours.
from data.cache import configure_numba  # noqa: E402
from data.lazy import lazy_names  # noqa: E402

configure_numba()

# Imported on first use (PEP 562): ``btc-backtest --help`` imports this package and must not pay
# for pandas, numba and the strategies (about 2 s of imports) to print a list of commands.
_LAZY = {"BacktestConfig": "backtests.config", "BacktestResult": "backtests.results",
         "run": "backtests.runner"}


lazy_names(__name__, _LAZY)
