"""Trading strategies: the public :class:`~strategies.base.Strategy` API and the built-in ones.

Built in: :class:`~strategies.breakdown.Breakdown` (``"breakdown"``) and
:class:`~strategies.bounce.OversoldBounce` (``"oversold_bounce"``). A user's own subclass in their
own file loads with :func:`~strategies.loader.load_strategy` (``"path/to/file.py:ClassName"``).
"""

from strategies.base import ExitRules, Param, ParamConflict, ParamError, Signals, Strategy
from strategies.bounce import OversoldBounce
from strategies.breakdown import Breakdown
from strategies.loader import StrategyLoadError, builtin_strategies, load_strategy

__all__ = [
    "Breakdown",
    "ExitRules",
    "OversoldBounce",
    "Param",
    "ParamConflict",
    "ParamError",
    "Signals",
    "Strategy",
    "StrategyLoadError",
    "builtin_strategies",
    "load_strategy",
]
