"""Backtest runner, engines, results, reports and the ``btc-backtest`` command line."""
