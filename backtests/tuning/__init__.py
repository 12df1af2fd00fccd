"""Tuning, honestly: parameter sweeps (:mod:`~backtests.tuning.sweep`), walk-forward analysis
(:mod:`~backtests.tuning.walkforward`), overfitting statistics (:mod:`~backtests.tuning.overfit`)
and the look-ahead audit (:mod:`~backtests.tuning.audit`).
"""
