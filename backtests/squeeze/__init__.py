"""The squeeze: how much leverage survived BTC's actual path, and where leveraged positions sit.

* :func:`leverage_survival` (:mod:`backtests.squeeze.survival`): per entry bar and side, the
  maximum leverage that survived to a horizon, the next leverage step's liquidation bar, the
  adverse excursion, and the safe-leverage curve;

The liquidation math itself is :mod:`indicators.liquidation` (pure arrays, importable by
indicators). Exchanges liquidate on the mark price; these analyses use candle highs/lows.
"""

from backtests.squeeze.survival import (
    CAVEAT,
    DEFAULT_HORIZON,
    LEVERAGES,
    SqueezeResult,
    leverage_survival,
)

__all__ = ["CAVEAT", "DEFAULT_HORIZON", "LEVERAGES", "SqueezeResult", "leverage_survival"]
