"""A backtrader strategy using our indicators inside next(): long above the 200-week EMA when a
close breaks out above a resistance zone, out when a close loses the nearest support."""

import backtrader as bt

from indicators.bt import SupportResistance, WeeklyEMA


class LevelBreakout(bt.Strategy):
    """Breakout above resistance while above the 200-week EMA; exit below support."""

    params = (("period", 200),)

    def __init__(self):
        self.wema = WeeklyEMA(self.data, period=self.p.period)
        self.sr = SupportResistance(self.data)

    def next(self):
        close = self.data.close[0]
        above_ema = close > self.wema.ema[0]  # False while the EMA is NaN (warm-up)
        if not self.position:
            if above_ema and close > self.sr.resistance_high[-1]:
                self.buy()
        elif close < self.sr.support_low[-1]:
            self.close()
