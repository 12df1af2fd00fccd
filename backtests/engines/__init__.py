"""The two engines: :mod:`backtests.engines.fast` (numba, the default) and
:mod:`backtests.engines.bt` (backtrader, the event-driven reference). Both follow the execution
rules written in :mod:`backtests.engines.fast` and agree trade for trade (tests/test_parity.py).
"""
