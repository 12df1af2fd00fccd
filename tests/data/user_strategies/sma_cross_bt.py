"""A classic backtrader SMA crossover, as a backtrader user writes it (no project imports)."""

import backtrader as bt


class SmaCross(bt.Strategy):
    """Long when the fast SMA crosses above the slow SMA; flat when it crosses back below."""

    params = (("fast", 10), ("slow", 30))

    def __init__(self):
        sma_fast = bt.ind.SMA(period=self.p.fast)
        sma_slow = bt.ind.SMA(period=self.p.slow)
        self.crossover = bt.ind.CrossOver(sma_fast, sma_slow)

    def next(self):
        if not self.position:
            if self.crossover > 0:
                self.buy()
        elif self.crossover < 0:
            self.close()
