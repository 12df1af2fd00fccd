"""Technical indicators on canonical candles; every output is causal (see tests/lookahead.py).

Public API::

    from indicators import rsi, ema, sma, atr          # TA-Lib, exact (indicators.core)
    from indicators import weekly_ema, htf_ema         # 200-week EMA on any bars (indicators.htf)
    from indicators import support_resistance, outlook # levels, flips, signals, outlook

The TA-Lib functions are imported with the package (TA-Lib itself, which imports pandas, on their
first call: see :mod:`indicators.core`). Every other name is imported from its module on first
use (PEP 562): those modules compile or load numba kernels, which costs more than the rest of
``import indicators`` (measured: ``import indicators`` 1.1 s with them, 0.3 s without, quiet
2-core machine), and ``from indicators import rsi`` should not pay for them.

Compiled kernels are cached where the user can write (:func:`data.cache.configure_numba`,
set up here, before any kernel module is imported).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data.cache import configure_numba
from data.lazy import lazy_names
from indicators.core import atr, ema, rsi, sma

configure_numba()

if TYPE_CHECKING:  # what the lazy names are, for readers and tools
    from indicators.flips import FlipResult, flips
    from indicators.htf import HtfEmaWarmup, htf_ema, htf_ema_warmup, weekly_ema
    from indicators.keylevels import (
        KEY_LEVEL_COLUMNS,
        SCORE_RULES,
        ZoneLog,
        key_levels,
        level_history,
        level_targets,
        next_level,
        weekly_ema_or_nan,
        weekly_swing_levels,
        zone_log,
    )
    from indicators.levels import (
        LevelParams,
        Levels,
        sr_levels,
        support_resistance,
        takes_level_params,
    )
    from indicators.outlook import Outlook, OutlookLevel, outlook
    from indicators.pivots import PivotArrays, pivots
    from indicators.signals import (
        RSI_STATES,
        breakdown_signal,
        confluence,
        oversold,
        proximity_pct,
        signal_frame,
    )

#: Lazily imported public names -> the module that defines them.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("HtfEmaWarmup", "htf_ema", "htf_ema_warmup", "weekly_ema"), "htf"),
    **dict.fromkeys(("PivotArrays", "pivots"), "pivots"),
    **dict.fromkeys(("LevelParams", "Levels", "sr_levels", "support_resistance",
                     "takes_level_params"), "levels"),
    **dict.fromkeys(("FlipResult", "flips"), "flips"),
    **dict.fromkeys(("KEY_LEVEL_COLUMNS", "SCORE_RULES", "ZoneLog", "key_levels",
                     "level_history", "level_targets", "next_level", "weekly_ema_or_nan",
                     "weekly_swing_levels", "zone_log"), "keylevels"),
    **dict.fromkeys(("RSI_STATES", "breakdown_signal", "confluence", "oversold",
                     "proximity_pct", "signal_frame"), "signals"),
    **dict.fromkeys(("Outlook", "OutlookLevel", "outlook"), "outlook"),
}

__all__ = [
    "KEY_LEVEL_COLUMNS",
    "RSI_STATES",
    "SCORE_RULES",
    "FlipResult",
    "HtfEmaWarmup",
    "LevelParams",
    "Levels",
    "Outlook",
    "OutlookLevel",
    "PivotArrays",
    "ZoneLog",
    "atr",
    "breakdown_signal",
    "confluence",
    "ema",
    "flips",
    "htf_ema",
    "htf_ema_warmup",
    "key_levels",
    "level_history",
    "level_targets",
    "next_level",
    "outlook",
    "oversold",
    "pivots",
    "proximity_pct",
    "rsi",
    "signal_frame",
    "sma",
    "sr_levels",
    "support_resistance",
    "takes_level_params",
    "weekly_ema",
    "weekly_ema_or_nan",
    "weekly_swing_levels",
    "zone_log",
]


lazy_names(__name__, {name: f"indicators.{module}" for name, module in _LAZY.items()},
           functions_named_like_modules=("pivots", "flips", "outlook"))
