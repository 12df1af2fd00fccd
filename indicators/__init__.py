"""Technical indicators on canonical candles; every output is causal (see tests/lookahead.py).

Public API::

    from indicators import rsi, ema, sma, atr          # TA-Lib, exact (indicators.core)
    from indicators import weekly_ema, htf_ema         # 200-week EMA on any bars (indicators.htf)
    from indicators import support_resistance, outlook # levels, flips, signals, outlook

Each submodule's public names (its ``__all__``) are re-exported here.
"""

from __future__ import annotations

import importlib

from indicators.core import atr, ema, rsi, sma
from indicators.htf import HtfEmaWarmup, htf_ema, htf_ema_warmup, weekly_ema

__all__ = [
    "HtfEmaWarmup",
    "atr",
    "ema",
    "htf_ema",
    "htf_ema_warmup",
    "rsi",
    "sma",
    "weekly_ema",
]

# The pivot/level/flip/signal/outlook modules (written separately) are re-exported here: their
# ``__all__``, or else their own public functions and classes. Importing them eagerly matters
# for ``outlook``: a function named like its module must be bound on the package before anything
# imports the submodule, or ``from indicators import outlook`` would return the module. A module
# that does not exist yet is skipped; any other import error is a bug and propagates.
for _mod_name in ("pivots", "levels", "flips", "keylevels", "signals", "outlook"):
    try:
        _mod = importlib.import_module(f"indicators.{_mod_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"indicators.{_mod_name}":
            raise
        continue
    # Without an __all__, the module's own public functions and classes are its API.
    _public = getattr(_mod, "__all__", None) or [
        _n
        for _n, _v in vars(_mod).items()
        if not _n.startswith("_") and getattr(_v, "__module__", None) == _mod.__name__
    ]
    for _name in _public:
        globals()[_name] = getattr(_mod, _name)
        if _name not in __all__:
            __all__.append(_name)
del _mod_name
