"""A user's ``backtrader.Strategy`` as one of our strategies: :class:`BacktraderStrategy`.

:func:`backtrader_strategy` wraps a ``bt.Strategy`` subclass, unchanged, into a
:class:`~strategies.base.Strategy` subclass whose ``params`` are the backtrader class's own
(declared :class:`~strategies.base.Param` s, so ``--param``, sweeps and saved results treat them
like ours). It runs only on the backtrader engine (:mod:`backtests.engines.bt_native`), with our
data, broker model and reports; it has no vectorised :meth:`signals`.

This module does not import backtrader: a ``bt.Strategy`` can only come from a module that did.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import pandas as pd

from strategies.base import Param, Signals, Strategy

__all__ = ["BacktraderStrategy", "backtrader_strategy", "is_backtrader_strategy"]


def is_backtrader_strategy(obj: object) -> bool:
    """True when ``obj`` is a subclass of ``backtrader.Strategy`` (backtrader already imported)."""
    bt = sys.modules.get("backtrader")
    return bt is not None and isinstance(obj, type) and issubclass(obj, bt.Strategy)


class BacktraderStrategy(Strategy):
    """Base of the wrappers made by :func:`backtrader_strategy`; ``bt_class`` is the user's class.

    ``self.bt_params`` holds the values to pass to ``cerebro.addstrategy`` (declared parameters
    after validation).
    """

    bt_class: ClassVar[type]
    #: backtrader params whose default is not a bool/int/float/str: kept at their default.
    fixed_params: ClassVar[dict[str, Any]] = {}

    @property
    def bt_params(self) -> dict[str, Any]:
        """The backtrader parameter values of this instance (validated)."""
        return self.param_values

    def signals(self, df: pd.DataFrame) -> Signals:
        raise TypeError(
            f"{self.bt_class.__name__} is a backtrader strategy: it has no vectorised signals "
            f"and runs on the backtrader engine only (backtests.run does that for it)"
        )


def _param_for(name: str, default: Any, cls_name: str) -> Param | None:
    if isinstance(default, bool):
        return Param(default, f"backtrader parameter of {cls_name}", bool)
    if isinstance(default, int):
        return Param(default, f"backtrader parameter of {cls_name}", int)
    if isinstance(default, float):
        return Param(default, f"backtrader parameter of {cls_name}", float)
    if isinstance(default, str):
        return Param(default, f"backtrader parameter of {cls_name}", str)
    return None


def backtrader_strategy(bt_class: type) -> type[BacktraderStrategy]:
    """Wrap the ``backtrader.Strategy`` subclass ``bt_class`` as a Strategy class (unchanged).

    Each backtrader param with a bool, int, float or str default becomes a declared
    :class:`Param` of that type (so ``--param fast=10`` is checked and coerced); others (None,
    objects) keep their default and are listed in ``fixed_params``.

    Raises:
        TypeError: ``bt_class`` is not a ``backtrader.Strategy`` subclass.
    """
    if not is_backtrader_strategy(bt_class):
        raise TypeError(f"{bt_class!r} is not a subclass of backtrader.Strategy")
    params: dict[str, Param] = {}
    fixed: dict[str, Any] = {}
    for name, default in bt_class.params._getitems():
        spec = _param_for(name, default, bt_class.__name__)
        if spec is None:
            fixed[name] = default
        else:
            params[name] = spec
    doc = (bt_class.__doc__ or "").strip()
    return type(bt_class.__name__, (BacktraderStrategy,), {
        "__module__": bt_class.__module__,
        "__doc__": doc or f"backtrader strategy {bt_class.__name__}",
        "name": bt_class.__name__,
        "bt_class": bt_class,
        "params": params,
        "fixed_params": fixed,
    })
