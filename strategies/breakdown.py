"""Breakdown (and breakout) of support/resistance flips: :class:`Breakdown`."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from data.perbar import CompactFrame
from indicators.flips import FlipResult, flips_for_signals
from indicators.keylevels import zone_log
from indicators.levels import LevelParams
from indicators.signals import signal_columns, signal_frame
from strategies.base import ExitRules, Param, Signals, Strategy
from strategies.plan import PLAN_PARAMS, level_param, plan_sides


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
      in short/both mode it opens (or reverses into) a short. Stop: ``stop_atr`` x ATR above the
      flipped zone's high (``stop_at="zone_far"``: the whole zone must be reclaimed) or above its
      low, the broken edge (``"zone_near"``: the break failed as soon as price is back in).
    * **breakout** (``trade_breakouts``): the mirror image, a resistance->support flip: long entry
      (an exit for shorts in short-only mode), stop below the flipped zone.
    * target and entry filter: :mod:`strategies.plan` (default: the next major level at least
      max(1 ATR, 1 R) away, taken only when the planned reward:risk net of fees is >= 1.5). The
      tag says why: the setup, the target's kind and its evidence.
    * filters: ``confluence_only`` keeps flips of a zone within ``confluence_pct`` % of the
      200-week EMA; ``volume_confirm`` wants the signal bar's volume above ``volume_mult`` x the
      mean volume of the ``volume_period`` bars before it.
    * ``trail_atr`` > 0 adds an ATR trailing stop: ``trail_atr`` x ATR from each close, moving
      only in the trade's favour (:class:`~strategies.base.ExitRules`, exit reason "trail").
    """

    name = "breakdown"
    params: ClassVar[dict[str, Param]] = {
        "pivot_bars": Param(LevelParams.spec("left")["default"], "bars each side that confirm a "
                            "pivot (left = right)", int, min=1),
        "buffer_atr": level_param("buffer_atr"),
        "confirm_closes": level_param("confirm_closes", max=20),
        "retest_bars": level_param("retest_bars"),
        "confluence_only": Param(False, "only flips of a zone near the 200-week EMA", bool),
        "confluence_pct": level_param("confluence_pct"),
        "volume_confirm": Param(False, "require volume above its recent average", bool),
        "volume_period": Param(20, "bars in the volume average", int, min=1),
        "volume_mult": Param(1.0, "volume must exceed this multiple of its average", min=0),
        "use_stop": Param(True, "place the protective stop", bool),
        "stop_at": Param("zone_far", "stop beyond the flipped zone's far side or its broken edge",
                         str, choices=("zone_far", "zone_near")),
        "stop_atr": Param(1.0, "stop beyond the flipped zone by this many ATRs", min=0),
        "trail_atr": Param(0.0, "trailing stop this many ATRs from each close, moving only in "
                           "the trade's favour (0: none)", min=0),
        **PLAN_PARAMS,
        "trade_breakouts": Param(True, "also go long on confirmed resistance->support flips",
                                 bool),
        "atr_period": level_param("atr_period"),
    }

    def level_params(self) -> LevelParams:
        """The level parameters this strategy's zones, flips and ranks use."""
        p = self.p
        return LevelParams(left=p.pivot_bars, right=p.pivot_bars, buffer_atr=p.buffer_atr,
                           confirm_closes=p.confirm_closes, retest_bars=p.retest_bars,
                           atr_period=p.atr_period, confluence_pct=p.confluence_pct,
                           major_score=p.major_score)

    def _frame(self, df: pd.DataFrame) -> pd.DataFrame:
        return signal_frame(df, params=self.level_params())

    def _columns(self, df: pd.DataFrame, flip_result: FlipResult) -> CompactFrame:
        # held compactly, never dense (issue 17); reads back as _frame's values
        return signal_columns(df, self.level_params(), flip_result)

    def indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        """The :func:`~indicators.signals.signal_frame` columns this strategy reads."""
        return self._frame(df)

    def signals(self, df: pd.DataFrame) -> Signals:
        """Entries on confirmed flips; stops beyond the flipped zone; targets per ``target``."""
        p = self.p
        levels = self.level_params()
        # one engine run for the frame and the target zones; its events are not read here
        res = flips_for_signals(df, levels, p.target in ("level", "flipped"))
        f = self._columns(df, res)
        close = f.column("close")
        atr = f.column("atr")
        down = f.column("breakdown").copy()  # the frame's own: not written into
        up = f.column("breakout") & p.trade_breakouts

        if p.confluence_only:
            wema = f.column("wema200")  # decoded only here (it is held as runs when constant)
            down &= _band_gap_pct(f.column("flipped_resistance_low"),
                                  f.column("flipped_resistance_high"), wema) \
                <= p.confluence_pct
            up &= _band_gap_pct(f.column("flipped_support_low"),
                                f.column("flipped_support_high"), wema) <= p.confluence_pct
        if p.volume_confirm:
            vol = df["volume"]
            avg = vol.rolling(p.volume_period, min_periods=p.volume_period).mean().shift(1)
            loud = (vol > p.volume_mult * avg).to_numpy()
            down &= loud
            up &= loud

        # Stops beyond the flipped zone (NaN zone or ATR: no trade, the level is unknown).
        # Worked out on the candidate bars only, as are the plans and everything after them:
        # a few % of bars are candidates, and per-bar temporaries of stops, targets and
        # reward:risk cost ~100 bytes per bar at the peak and their first-touch page faults
        # grow faster than the bars on long frames (issue 17).
        far = p.stop_at == "zone_far"
        n = len(close)
        short_bars = np.flatnonzero(down)
        stop_short = f.column("flipped_resistance_high" if far else "flipped_resistance_low"
                                )[short_bars] + p.stop_atr * atr[short_bars]
        keep = np.isfinite(stop_short) & (stop_short > close[short_bars])
        down[short_bars[~keep]] = False
        short_bars, stop_short = short_bars[keep], stop_short[keep]
        up &= ~down
        long_bars = np.flatnonzero(up)
        stop_long = f.column("flipped_support_low" if far else "flipped_support_high"
                               )[long_bars] - p.stop_atr * atr[long_bars]
        keep = np.isfinite(stop_long) & (stop_long < close[long_bars])
        long_bars, stop_long = long_bars[keep], stop_long[keep]

        zones = (zone_log(df, params=levels, flip_result=res,
                          wema=f.column(f"wema{levels.wema_period}"))
                 if p.target in ("level", "flipped") else None)
        del res  # nothing below reads it (the frame holds the columns it uses)
        short, long_ = plan_sides(df, [(short_bars, -1, stop_short), (long_bars, 1, stop_long)],
                                  atr, p, levels, zones)
        del zones  # the zone log (~35 bytes per bar on minute data) is not read below

        entry = np.zeros(n, dtype=np.int8)
        stop = np.full(n, np.nan)
        target = np.full(n, np.nan)
        rr = np.full(n, np.nan)
        tags = np.full(n, None, dtype=object)
        label = "_confluence" if p.confluence_only else ""
        for pl, code, stops, setup in ((short, -1, stop_short, "breakdown"),
                                       (long_, 1, stop_long, "breakout")):
            b = pl.taken
            entry[b] = code
            stop[b] = stops[pl.take]
            target[b] = pl.target[pl.take]
            rr[b] = pl.rr[pl.take]
            for k, why in zip(b.tolist(), pl.why[pl.take].tolist(), strict=True):
                tags[k] = f"{setup}{label} -> {why}"
        if not p.use_stop:
            stop[:] = np.nan
        f = f.with_column("planned_rr", rr)
        del rr  # held by the frame as runs when mostly NaN (one 8-byte array fewer)
        exits = ExitRules(trail_atr=p.trail_atr, atr=atr) if p.trail_atr > 0 else None
        return Signals(entry=entry, exit=np.zeros(n, dtype=bool), stop=stop,
                       target=target, tags=tags, indicators=f, exits=exits)
