"""Trading strategies: the public :class:`~strategies.base.Strategy` API and the built-in ones."""

from strategies.base import Param, ParamError, Signals, Strategy

__all__ = ["Param", "ParamError", "Signals", "Strategy"]
