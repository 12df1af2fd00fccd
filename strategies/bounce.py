"""Oversold bounce off support or the 200-week EMA: :class:`OversoldBounce`."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from data.perbar import CompactFrame
from indicators.flips import FlipResult, flips_for_signals
from indicators.keylevels import zone_log
from indicators.levels import LevelParams
from indicators.signals import signal_columns, signal_frame
from strategies.base import ExitRules, Param, ParamConflict, Signals, Strategy
from strategies.plan import PLAN_PARAMS, level_param, plan


def rolling_any(x: np.ndarray, window: int) -> np.ndarray:
    """True where ``x`` was True on this bar or any of the ``window - 1`` bars before (causal)."""
    x = np.asarray(x, dtype=bool)
    out = x.copy()
    if window <= ROLLING_SHIFTS:  # one bool pass per bar of the window: no int/float temporaries
        for k in range(1, min(window, len(x))):
            out[k:] |= x[:-k]
        return out
    count = np.cumsum(x, dtype=np.int64)
    out[window:] = count[window:] > count[:-window]
    out[:window] = count[:window] > 0
    return out


#: Windows up to this many bars are OR-ed shift by shift in :func:`rolling_any`; longer ones
#: use a running count (one 8-byte temporary per bar instead of ``window`` passes).
ROLLING_SHIFTS = 16


def window_rows(bars: np.ndarray, window: int) -> np.ndarray:
    """Bar positions of each of ``bars``' windows (``window`` bars ending at it; a window
    reaching before bar 0 repeats bar 0, which is in it)."""
    return np.maximum(bars[:, None] - np.arange(window), 0)


def window_any(x: np.ndarray, bars: np.ndarray, window: int) -> np.ndarray:
    """:func:`rolling_any` of ``x`` on ``bars`` only (one value per bar of ``bars``)."""
    return x[window_rows(bars, window)].any(axis=1)


def window_min(x: np.ndarray, bars: np.ndarray, window: int) -> np.ndarray:
    """The lowest of ``x`` over the ``window`` bars ending at each of ``bars`` (NaN skipped,
    as pandas' rolling minimum with ``min_periods=1`` does; NaN when all are NaN)."""
    return np.fmin.reduce(x[window_rows(bars, window)], axis=1)


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

    Long entry at the next open. Stop (``stop_at``): below the lowest low of the setup window,
    or below the support zone's low when that is lower (``"setup_low"``), or below the low of the
    support zone under the trigger close (``"zone"``: the level the bounce is from), minus
    ``stop_atr`` x ATR; ``stop_on="close"`` makes it a stop on the close (a close below it exits
    at the next open; wicks through it are tolerated). Target and entry filter:
    :mod:`strategies.plan` (default: the next major level above at least max(1 ATR, 1 R) away,
    taken only when the planned reward:risk net of fees is >= 1.5). The tag names the RSI state,
    the level the setup was at (the 200-week EMA, a support zone or both) and the target's kind.
    Optional time stop (``max_bars``) and exit when the RSI turns overbought
    (``exit_overbought``).
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
        "stop_at": Param("setup_low", "stop below the setup window's low (or the zone if lower) "
                         "or below the support zone", str, choices=("setup_low", "zone")),
        "stop_atr": Param(0.5, "stop below the setup low / support zone by this many ATRs",
                          min=0),
        "stop_on": Param("intrabar", "the stop fills when a bar trades through it (intrabar) or "
                         "at the next open after a close below it (close)", str,
                         choices=("intrabar", "close")),
        **PLAN_PARAMS,
        "max_bars": Param(0, "time stop: exit after this many bars (0: none)", int, min=0),
        "exit_overbought": Param(False, "exit when the RSI rises above `overbought`", bool),
        "pivot_bars": Param(LevelParams.spec("left")["default"], "bars each side that confirm a "
                            "pivot (left = right)", int, min=1),
        "atr_period": level_param("atr_period"),
    }

    def check(self) -> None:
        """The RSI thresholds must be ordered: deep < oversold < overbought."""
        p = self.p
        if not p.deep < p.oversold < p.overbought:
            raise ParamConflict(f"need deep < oversold < overbought, got deep={p.deep}, "
                                f"oversold={p.oversold}, overbought={p.overbought}")

    def level_params(self) -> LevelParams:
        """The level parameters this strategy's zones and ranks use."""
        p = self.p
        return LevelParams(left=p.pivot_bars, right=p.pivot_bars, atr_period=p.atr_period,
                           major_score=p.major_score)

    def _frame(self, df: pd.DataFrame) -> pd.DataFrame:
        p = self.p
        return signal_frame(df, rsi_period=p.rsi_period, rsi_oversold=p.oversold,
                            rsi_deep=p.deep, rsi_overbought=p.overbought,
                            params=self.level_params())

    def _columns(self, df: pd.DataFrame, flip_result: FlipResult) -> CompactFrame:
        # held compactly, never dense (issue 17); reads back as _frame's values
        p = self.p
        return signal_columns(df, self.level_params(), flip_result,
                              (p.rsi_period, p.oversold, p.deep, p.overbought))

    def indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        """The :func:`~indicators.signals.signal_frame` columns this strategy reads."""
        return self._frame(df)

    def signals(self, df: pd.DataFrame) -> Signals:
        """Long entries on the bounce trigger; stop below the zone; target the next resistance."""
        p = self.p
        levels = self.level_params()
        # one engine run for the frame and the target zones; its events are not read here
        res = flips_for_signals(df, levels, p.target in ("level", "flipped"))
        f = self._columns(df, res)
        n = len(f)
        close = f.column("close")
        opn = df["open"].to_numpy()
        low = df["low"].to_numpy()
        rsi = f.column("rsi")
        atr = f.column("atr")

        with np.errstate(invalid="ignore"):
            weak = rsi < (p.deep if p.require_deep else p.oversold)
            near_sup = np.abs(f.column("dist_support_pct")) <= p.near_pct
            near_wema = np.abs(f.column("dist_wema_pct")) <= p.near_pct
            near = {"support": near_sup, "wema": near_wema,
                    "either": near_sup | near_wema}[p.near]
            setup = rolling_any(weak & near, p.setup_bars)
            # against the bar before (none before bar 0: False there, as a NaN compares)
            cross = np.zeros(n, dtype=bool)
            cross[1:] = (rsi[:-1] <= p.oversold) & (rsi[1:] > p.oversold)
            bullish = np.zeros(n, dtype=bool)
            bullish[1:] = (close[1:] > opn[1:]) & (close[1:] > close[:-1])
        trig = {"cross": cross, "bullish_close": bullish, "either": cross | bullish}[p.trigger]
        go = setup & trig

        # Stop, plan and tags are worked out on the trigger bars only (a few % of bars; per-bar
        # temporaries of them cost ~100 bytes per bar at the peak of a 1M-bar run, issue 17).
        # Stop: under the setup window's low (or the support zone if that is lower), or under
        # the support zone the trigger close sits on.
        bars = np.flatnonzero(go)
        sup_low = f.column("support_low")[bars]
        if p.stop_at == "zone":
            base = sup_low
        else:
            win_low = window_min(low, bars, p.setup_bars)
            near_sup_win = window_any(near_sup, bars, p.setup_bars)
            base = np.where(near_sup_win & (sup_low < win_low), sup_low, win_low)
        stop = base - p.stop_atr * atr[bars]
        keep = np.isfinite(stop) & (stop > 0) & (stop < close[bars])
        bars, stop = bars[keep], stop[keep]

        zones = (zone_log(df, params=levels, flip_result=res,
                          wema=f.column(f"wema{levels.wema_period}"))
                 if p.target in ("level", "flipped") and len(bars) else None)
        del res  # nothing below reads it (the frame holds the columns it uses)
        pl = plan(df, bars, 1, stop, atr, p, levels, zones)
        del zones  # the zone log (~35 bytes per bar on minute data) is not read below
        taken = pl.taken

        entry = np.zeros(n, dtype=np.int8)
        entry[taken] = 1
        exit_ = (rsi > p.overbought) if p.exit_overbought else np.zeros(n, dtype=bool)
        stops = np.full(n, np.nan)
        if p.use_stop:
            stops[taken] = stop[pl.take]
        exits = None
        if p.stop_on == "close":  # wicks below the stop are tolerated, closes are not
            stops, exits = np.full(n, np.nan), ExitRules(close_stop=stops)
        target = np.full(n, np.nan)
        target[taken] = pl.target[pl.take]
        deep_now = window_any(rsi < p.deep, taken, p.setup_bars)
        at_wema = window_any(weak & near_wema, taken, p.setup_bars)
        at_sup = window_any(weak & near_sup, taken, p.setup_bars)
        tags = np.full(n, None, dtype=object)
        for j, (b, why) in enumerate(zip(taken.tolist(), pl.why[pl.take].tolist(),
                                         strict=True)):
            where = " and ".join(w for w, ok in (("200w EMA", at_wema[j]), ("support", at_sup[j]))
                                 if ok)
            tags[b] = f"{'deeply_oversold' if deep_now[j] else 'oversold'} at {where} -> {why}"
        rr = np.full(n, np.nan)
        rr[taken] = pl.rr[pl.take]
        f = f.with_column("planned_rr", rr)
        del rr  # held by the frame as runs when mostly NaN (one 8-byte array fewer)
        stop = stops
        return Signals(entry=entry, exit=exit_, stop=stop, target=target,
                       max_bars=p.max_bars, tags=tags, indicators=f, exits=exits)
