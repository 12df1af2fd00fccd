"""Role reversal (flips) of support/resistance zones, and retests of flipped zones.

Zones come from :mod:`indicators.levels` (same parameters). The rule, on closes only (wicks never
break a level), with ``buffer = buffer_atr x ATR`` (or ``buffer_pct`` % of the close):

* **break**: a zone the previous close was not below (``zone low <= previous close``: the support
  held, even with that close inside the band) is broken when a close is below
  ``zone low - buffer``; a zone the previous close was not above is broken upwards when a close
  is above ``zone high + buffer``. Zones with fewer than ``min_touches`` touches are ignored.
* **acceptance** (within ``max(retest_bars, confirm_closes)`` bars after the breaking bar):
  - ``confirm_closes`` more closes beyond the buffer  -> flip confirmed (``confirmed_by="closes"``);
  - or a failed retest: a bar reaches back into the zone (high >= zone low after a support break)
    and closes back outside it (close < zone low)  -> flip confirmed (``"failed_retest"``);
  - a close back inside/over the zone (close >= zone low) cancels the break (a reclaim);
  - closes beyond the zone but inside the buffer neither count nor cancel;
  - no acceptance within the window: the break expires.
  ``confirm_closes=0`` confirms on the breaking close itself.
* a broken support becomes a **support_to_resistance** flip, a broken resistance a
  **resistance_to_support** flip. The event is stamped on the **confirming** bar (``bar``), with
  the breaking bar in ``break_bar``/``break_close``; nothing is written back in time.
* **retest**: on a later bar, price reaches a flipped zone from the flipped side and is rejected:
  for a support->resistance zone ``high >= zone low`` and ``close < zone low`` with the previous
  close also below the zone low (``retest_rejected``); mirrored for resistance->support
  (``low <= zone high``, ``close > zone high``, ``retest_held``). Every such bar is an event.

A flipped zone keeps its flip until it is broken the other way (which is then the opposite flip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.frame import like_input, to_canonical
from indicators._engine import (
    BY_CLOSES,
    BY_FAILED_RETEST,
    BY_REJECTION,
    EV_R2S,
    EV_RETEST_R2S,
    EV_RETEST_S2R,
    EV_S2R,
)
from indicators.levels import SR_COLUMNS, LevelParams, run_engine, takes_level_params

__all__ = ["FlipResult", "flips"]

EVENT_COLUMNS = (
    "time", "bar", "kind", "flip_kind", "level", "level_low", "level_high", "break_bar",
    "break_time", "break_close", "confirmed_by", "zone_id",
)
BAR_COLUMNS = (
    *SR_COLUMNS, "breakdown", "breakout", "flipped_resistance", "flipped_resistance_low",
    "flipped_resistance_high", "flipped_support", "flipped_support_low", "flipped_support_high",
    "retest_rejected", "retest_held",
)
_KIND = {EV_S2R: "support_to_resistance", EV_R2S: "resistance_to_support",
         EV_RETEST_S2R: "retest", EV_RETEST_R2S: "retest"}
_FLIP_KIND = {EV_S2R: "support_to_resistance", EV_R2S: "resistance_to_support",
              EV_RETEST_S2R: "support_to_resistance", EV_RETEST_R2S: "resistance_to_support"}
_BY = {BY_CLOSES: "closes", BY_FAILED_RETEST: "failed_retest", BY_REJECTION: "rejection"}


@dataclass
class FlipResult:
    """``events``: one row per flip or retest (columns :data:`EVENT_COLUMNS`), in bar order;
    ``bars``: per-bar columns :data:`BAR_COLUMNS` on the input index. Iterable as
    ``events, bars = flips(df)``. ``zone_changes``: the same engine run's zone log
    ``(floats, ints, zone count, ATR per bar)`` (see :mod:`indicators._engine`), so
    :func:`indicators.keylevels.zone_log` can reuse the run instead of repeating it."""

    events: pd.DataFrame
    bars: pd.DataFrame
    params: LevelParams
    zone_changes: tuple = ()

    def check(self, index: pd.Index, params: LevelParams) -> None:
        """ValueError unless this result was computed on bars ``index`` with the zone and flip
        values of ``params`` (a result handed to another computation to reuse)."""
        if any(getattr(self.params, k) != getattr(params, k)
               for k in LevelParams.names("zones", "flips")):
            raise ValueError("flip_result was computed with other zone/flip parameters")
        if not self.bars.index.equals(index):
            raise ValueError("flip_result was computed on other bars than df")

    def __iter__(self):
        return iter((self.events, self.bars))


@takes_level_params("zones", "flips")
def flips(df: pd.DataFrame, *, params: LevelParams) -> FlipResult:
    """Flip and retest events plus per-bar flip columns (see the module docstring for the rule).

    Returns:
        :class:`FlipResult` with ``events`` (``time``/``bar`` of the confirming bar, ``kind``
        = ``support_to_resistance`` / ``resistance_to_support`` / ``retest``, ``flip_kind`` (the
        flip a retest refers to), ``level``/``level_low``/``level_high`` (zone centre and band at
        the event, price units), ``break_bar``/``break_time``/``break_close`` (the close that broke
        the zone), ``confirmed_by`` (``closes``, ``failed_retest`` or ``rejection`` for retests),
        ``zone_id``) and ``bars`` (the :func:`indicators.levels.sr_levels` columns plus
        ``breakdown``/``breakout`` (bool: this bar's close confirms a support->resistance /
        resistance->support flip), ``flipped_resistance`` (centre of the nearest
        support->resistance zone above the close, NaN if none) with its ``_low``/``_high`` band,
        ``flipped_support`` likewise below, ``retest_rejected``/``retest_held`` (bool)).
    """
    p = params
    user_df, df = df, to_canonical(df)
    out, atr, _piv = run_engine(df, p, True, want_log=True)
    sup, res, fres, fsup, flags, evf, evi = out[:7]
    idx = df.index
    bars = pd.DataFrame(np.hstack([sup, res]), index=idx, columns=list(SR_COLUMNS))
    bars["breakdown"] = flags[:, 0]
    bars["breakout"] = flags[:, 1]
    for name, arr in (("flipped_resistance", fres), ("flipped_support", fsup)):
        bars[name] = arr[:, 0]
        bars[f"{name}_low"] = arr[:, 1]
        bars[f"{name}_high"] = arr[:, 2]
    bars["retest_rejected"] = flags[:, 2]
    bars["retest_held"] = flags[:, 3]
    bars = like_input(bars[list(BAR_COLUMNS)], user_df)
    return FlipResult(events=_events(evf, evi, idx), bars=bars, params=p,
                      zone_changes=(out[8], out[9], len(out[7][0]), atr))


def _events(evf: np.ndarray, evi: np.ndarray, idx: pd.Index) -> pd.DataFrame:
    bar = evi[:, 0]
    brk = evi[:, 3]
    kinds = evi[:, 1]
    # lookup tables indexed by code: vectorised, millions of events stay cheap
    kind_names = np.array([None, *(_KIND[k] for k in range(1, 5))], dtype=object)
    flip_names = np.array([None, *(_FLIP_KIND[k] for k in range(1, 5))], dtype=object)
    by_names = np.array([_BY[k] for k in range(3)], dtype=object)
    ev = pd.DataFrame({
        "time": idx[bar] if len(bar) else idx[:0],
        "bar": bar,
        "kind": pd.Series(kind_names[kinds], dtype=object),
        "flip_kind": pd.Series(flip_names[kinds], dtype=object),
        "level": evf[:, 0],
        "level_low": evf[:, 1],
        "level_high": evf[:, 2],
        "break_bar": brk,
        "break_time": idx[np.maximum(brk, 0)] if len(brk) else idx[:0],
        "break_close": evf[:, 3],
        "confirmed_by": pd.Series(by_names[evi[:, 4]], dtype=object),
        "zone_id": evi[:, 2],
    })
    return ev[list(EVENT_COLUMNS)]
