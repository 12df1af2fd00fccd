"""Oversold bounce off support or the 200-week EMA: :class:`OversoldBounce`."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from indicators.signals import signal_frame
from strategies.base import Param, ParamConflict, Signals, Strategy


def _rolling_any(x: np.ndarray, window: int) -> np.ndarray:
    """True where ``x`` was True on this bar or any of the ``window - 1`` bars before (causal)."""
    return pd.Series(x).rolling(window, min_periods=1).max().to_numpy().astype(bool)


class OversoldBounce(Strategy):
    """Long the bounce of an oversold RSI near support or the 200-week EMA.

    Setup on bar ``i``: RSI below ``oversold`` (or below ``deep`` with ``require_deep``) while the
    close is within ``near_pct`` % of the nearest support zone's centre (``near="support"``), of
    the 200-week EMA (``"wema"``) or of either (``"either"``). Trigger on bar ``t`` when a setup
    happened within the last ``setup_bars`` bars (``t`` included) and:

    * ``trigger="cross"``: the RSI crosses back above ``oversold`` (``rsi[t-1] <= oversold <
      rsi[t]``);
    * ``trigger="bullish_close"``: a bullish close (``close > open`` and ``close >`` the previous
      close);
    * ``trigger="either"``: either of them.

    Long entry at the next open. Stop: below the lowest low of the setup window, or below the
    support zone's low when that is lower, minus ``stop_atr`` x ATR. Target: the nearest
    resistance above the close (the lower edge of the nearer of the resistance zone and the
    nearest flipped support->resistance zone) or, when none, ``target_r`` x the risk; skipped when
    the reward/risk at the close is below ``min_rr``. Optional time stop (``max_bars``) and exit
    when the RSI turns overbought (``exit_overbought``).
    """

    name = "oversold_bounce"
    params: ClassVar[dict[str, Param]] = {
        "rsi_period": Param(14, "RSI period, bars", int, min=2),
        "oversold": Param(30.0, "RSI oversold threshold", min=1, max=99),
        "deep": Param(20.0, "RSI deeply oversold threshold", min=0, max=99),
        "overbought": Param(70.0, "RSI overbought threshold", min=1, max=100),
        "require_deep": Param(False, "only setups with the RSI deeply oversold", bool),
        "near": Param("either", "level the price must be near", str,
                      choices=("support", "wema", "either")),
        "near_pct": Param(3.0, "max distance of the close from the level, %", min=0),
        "setup_bars": Param(5, "bars a setup stays valid for the trigger", int, min=1),
        "trigger": Param("cross", "entry trigger", str,
                         choices=("cross", "bullish_close", "either")),
        "use_stop": Param(True, "place the protective stop", bool),
        "stop_atr": Param(0.5, "stop below the setup low / support zone by this many ATRs",
                          min=0),
        "target": Param("resistance", "take profit at the nearest resistance, an R multiple, or "
                        "none", str, choices=("resistance", "r_multiple", "none")),
        "target_r": Param(2.0, "target as a multiple of the risk (fallback for 'resistance')",
                          min=0.1),
        "min_rr": Param(0.0, "skip setups whose reward/risk at the close is below this", min=0),
        "max_bars": Param(0, "time stop: exit after this many bars (0: none)", int, min=0),
        "exit_overbought": Param(False, "exit when the RSI rises above `overbought`", bool),
        "pivot_bars": Param(5, "bars each side that confirm a pivot (left = right)", int, min=1),
        "atr_period": Param(14, "ATR period, bars", int, min=1),
    }

    def check(self) -> None:
        """The RSI thresholds must be ordered: deep < oversold < overbought."""
        p = self.p
        if not p.deep < p.oversold < p.overbought:
            raise ParamConflict(f"need deep < oversold < overbought, got deep={p.deep}, "
                                f"oversold={p.oversold}, overbought={p.overbought}")

    def _frame(self, df: pd.DataFrame) -> pd.DataFrame:
        p = self.p
        return signal_frame(
            df, rsi_period=p.rsi_period, rsi_oversold=p.oversold, rsi_deep=p.deep,
            rsi_overbought=p.overbought, left=p.pivot_bars, right=p.pivot_bars,
            atr_period=p.atr_period,
        )

    def indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        """The :func:`~indicators.signals.signal_frame` columns this strategy reads."""
        return self._frame(df)

    def signals(self, df: pd.DataFrame) -> Signals:
        """Long entries on the bounce trigger; stop below the zone; target the next resistance."""
        p = self.p
        f = self._frame(df)
        n = len(f)
        close = f["close"].to_numpy()
        opn = df["open"].to_numpy()
        low = df["low"].to_numpy()
        rsi = f["rsi"].to_numpy()
        atr = f["atr"].to_numpy()
        prev_rsi = np.concatenate([[np.nan], rsi[:-1]])
        prev_close = np.concatenate([[np.nan], close[:-1]])

        with np.errstate(invalid="ignore"):
            weak = rsi < (p.deep if p.require_deep else p.oversold)
            near_sup = np.abs(f["dist_support_pct"].to_numpy()) <= p.near_pct
            near_wema = np.abs(f["dist_wema_pct"].to_numpy()) <= p.near_pct
            near = {"support": near_sup, "wema": near_wema,
                    "either": near_sup | near_wema}[p.near]
            setup = _rolling_any(weak & near, p.setup_bars)
            cross = (prev_rsi <= p.oversold) & (rsi > p.oversold)
            bullish = (close > opn) & (close > prev_close)
        trig = {"cross": cross, "bullish_close": bullish, "either": cross | bullish}[p.trigger]
        go = setup & trig

        # stop: under the setup window's low, or under the support zone if that is lower
        win_low = pd.Series(low).rolling(p.setup_bars, min_periods=1).min().to_numpy()
        sup_low = f["support_low"].to_numpy()
        near_sup_win = _rolling_any(near_sup, p.setup_bars)
        base = np.where(near_sup_win & (sup_low < win_low), sup_low, win_low)
        stop = base - p.stop_atr * atr
        go &= np.isfinite(stop) & (stop > 0) & (stop < close)
        risk = close - stop

        res = f["resistance_low"].to_numpy()
        fres = f["flipped_resistance_low"].to_numpy()
        with np.errstate(invalid="ignore"):
            cands = np.where(res > close, res, np.inf)
            cands = np.minimum(cands, np.where(fres > close, fres, np.inf))
        r_target = close + p.target_r * risk
        if p.target == "resistance":
            target = np.where(np.isfinite(cands), cands, r_target)
        elif p.target == "r_multiple":
            target = r_target
        else:
            target = np.full(n, np.nan)
        if p.min_rr > 0:
            with np.errstate(invalid="ignore"):
                reward = np.where(np.isnan(target), np.inf, target - close)
                go &= reward >= p.min_rr * risk

        entry = np.where(go, 1, 0).astype(np.int8)
        exit_ = (rsi > p.overbought) if p.exit_overbought else np.zeros(n, dtype=bool)
        stop = np.where(go & p.use_stop, stop, np.nan)
        target = np.where(go, target, np.nan)
        deep_now = _rolling_any(rsi < p.deep, p.setup_bars)
        tags = np.where(go, np.where(deep_now, "deeply_oversold", "oversold"), None)
        return Signals(entry=entry, exit=exit_, stop=stop, target=target,
                       max_bars=p.max_bars, tags=tags.astype(object), indicators=f)
