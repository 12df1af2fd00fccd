"""Breakdown (and breakout) of support/resistance flips: :class:`Breakdown`."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from indicators.signals import signal_frame
from strategies.base import Param, Signals, Strategy


def _band_gap_pct(lo: np.ndarray, hi: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Distance from ``ref`` to the band ``[lo, hi]`` in % of ``ref`` (0 inside; NaN if missing)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.maximum(np.maximum(lo - ref, ref - hi), 0.0)
        return np.where(ref > 0, gap / ref * 100.0, np.nan)


class Breakdown(Strategy):
    """Trade confirmed S/R flips: short the close below a broken support, long the breakout.

    Signal bar ``t`` (all known at its close, from :func:`indicators.signals.signal_frame`):

    * **breakdown**: the close confirms a support->resistance flip (close below the zone low minus
      ``buffer_atr`` x ATR, accepted by ``confirm_closes`` more closes or a failed retest). It
      emits a short entry (``-1``): in long-only mode the engines treat it as the exit of a long;
      in short/both mode it opens (or reverses into) a short. Stop: the flipped zone's high plus
      ``stop_atr`` x ATR. Target: the next support below (``target="support"``, falling back to
      the R multiple when there is none) or ``target_r`` x the risk from the close
      (``"r_multiple"``) or none.
    * **breakout** (``trade_breakouts``): the mirror image, a resistance->support flip: long entry
      (an exit for shorts in short-only mode), stop below the flipped zone's low, target the next
      resistance above or an R multiple.
    * filters: ``confluence_only`` keeps flips of a zone within ``confluence_pct`` % of the
      200-week EMA; ``volume_confirm`` wants the signal bar's volume above ``volume_mult`` x the
      mean volume of the ``volume_period`` bars before it.
    """

    name = "breakdown"
    params: ClassVar[dict[str, Param]] = {
        "pivot_bars": Param(5, "bars each side that confirm a pivot (left = right)", int, min=1),
        "buffer_atr": Param(0.3, "close beyond the zone by this many ATRs to break it", min=0),
        "confirm_closes": Param(2, "further closes beyond the zone that confirm the flip", int,
                                min=0, max=20),
        "retest_bars": Param(10, "bars a failed retest may take to confirm the flip", int, min=1),
        "confluence_only": Param(False, "only flips of a zone near the 200-week EMA", bool),
        "confluence_pct": Param(3.0, "max distance of the zone from the 200-week EMA, %", min=0),
        "volume_confirm": Param(False, "require volume above its recent average", bool),
        "volume_period": Param(20, "bars in the volume average", int, min=1),
        "volume_mult": Param(1.0, "volume must exceed this multiple of its average", min=0),
        "use_stop": Param(True, "place the protective stop", bool),
        "stop_atr": Param(1.0, "stop beyond the flipped zone by this many ATRs", min=0),
        "target": Param("support", "take profit at the next level, an R multiple, or none", str,
                        choices=("support", "r_multiple", "none")),
        "target_r": Param(2.0, "target distance as a multiple of the risk (entry to stop)",
                          min=0.1),
        "trade_breakouts": Param(True, "also go long on confirmed resistance->support flips",
                                 bool),
        "atr_period": Param(14, "ATR period, bars", int, min=1),
    }

    def _frame(self, df: pd.DataFrame) -> pd.DataFrame:
        p = self.p
        return signal_frame(
            df, left=p.pivot_bars, right=p.pivot_bars, buffer_atr=p.buffer_atr,
            confirm_closes=p.confirm_closes, retest_bars=p.retest_bars, atr_period=p.atr_period,
            confluence_pct=p.confluence_pct,
        )

    def indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        """The :func:`~indicators.signals.signal_frame` columns this strategy reads."""
        return self._frame(df)

    def signals(self, df: pd.DataFrame) -> Signals:
        """Entries on confirmed flips; stops beyond the flipped zone; targets per ``target``."""
        p = self.p
        f = self._frame(df)
        close = f["close"].to_numpy()
        atr = f["atr"].to_numpy()
        wema = f["wema200"].to_numpy()
        down = f["breakdown"].to_numpy(dtype=bool).copy()  # pandas 3: views are read-only
        up = f["breakout"].to_numpy(dtype=bool) & p.trade_breakouts

        if p.confluence_only:
            down &= _band_gap_pct(f["flipped_resistance_low"].to_numpy(),
                                  f["flipped_resistance_high"].to_numpy(), wema) \
                <= p.confluence_pct
            up &= _band_gap_pct(f["flipped_support_low"].to_numpy(),
                                f["flipped_support_high"].to_numpy(), wema) <= p.confluence_pct
        if p.volume_confirm:
            vol = df["volume"]
            avg = vol.rolling(p.volume_period, min_periods=p.volume_period).mean().shift(1)
            loud = (vol > p.volume_mult * avg).to_numpy()
            down &= loud
            up &= loud

        # stops beyond the flipped zone (NaN zone or ATR: no trade, the level is unknown)
        stop_short = f["flipped_resistance_high"].to_numpy() + p.stop_atr * atr
        stop_long = f["flipped_support_low"].to_numpy() - p.stop_atr * atr
        down &= np.isfinite(stop_short) & (stop_short > close)
        up &= np.isfinite(stop_long) & (stop_long < close) & ~down

        r_short = close - p.target_r * (stop_short - close)
        r_long = close + p.target_r * (close - stop_long)
        if p.target == "support":
            nxt_sup = f["support"].to_numpy()
            nxt_res = f["resistance"].to_numpy()
            t_short = np.where(nxt_sup < close, nxt_sup, r_short)
            t_long = np.where(nxt_res > close, nxt_res, r_long)
        elif p.target == "r_multiple":
            t_short, t_long = r_short, r_long
        else:
            t_short = t_long = np.full(len(close), np.nan)
        t_short = np.where(t_short > 0, t_short, np.nan)

        entry = np.zeros(len(close), dtype=np.int8)
        entry[down] = -1
        entry[up] = 1
        stop = np.where(down, stop_short, np.where(up, stop_long, np.nan))
        if not p.use_stop:
            stop[:] = np.nan
        target = np.where(down, t_short, np.where(up, t_long, np.nan))
        label = "_confluence" if p.confluence_only else ""
        tags = np.where(down, "breakdown" + label,
                        np.where(up, "breakout" + label, None)).astype(object)
        return Signals(entry=entry, exit=np.zeros(len(close), dtype=bool), stop=stop,
                       target=target, tags=tags, indicators=f)
