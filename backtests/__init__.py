"""Backtest runner, engines, results, reports and the ``btc-backtest`` command line."""

import time as _time

#: ``time.perf_counter()`` when this package was first imported: the CLI reports the start-up
#: cost (imports, loading or compiling the numba kernels) from here.
IMPORTED_AT: float = _time.perf_counter()
