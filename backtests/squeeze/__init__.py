"""The squeeze: how much leverage survived BTC's actual path, and where leveraged positions sit.

* :func:`leverage_survival` (:mod:`backtests.squeeze.survival`): per entry bar and side, the
  maximum leverage that survived to a horizon, the next leverage step's liquidation bar, the
  adverse excursion, and the safe-leverage curve;
* :func:`liquidation_map` (:mod:`backtests.squeeze.liqmap`): a model of where the positions
  opened over a recent window are liquidated, weighted by entry-bar volume;
* :mod:`backtests.squeeze.plots`: the PNG charts (heatmap, curve, map beside the price).

The liquidation math itself is :mod:`indicators.liquidation` (pure arrays, importable by
indicators). Exchanges liquidate on the mark price; these analyses use candle highs/lows.
"""

from backtests.squeeze.liqmap import MAP_LEVERAGES, LiquidationMap, liquidation_map
from backtests.squeeze.survival import (
    CAVEAT,
    DEFAULT_HORIZON,
    LEVERAGES,
    SqueezeResult,
    leverage_survival,
)

__all__ = ["CAVEAT", "DEFAULT_HORIZON", "LEVERAGES", "MAP_LEVERAGES", "LiquidationMap",
           "SqueezeResult", "leverage_survival", "liquidation_map"]
