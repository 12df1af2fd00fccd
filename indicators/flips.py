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

from dataclasses import dataclass, replace

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
from indicators.memo import memoised

__all__ = ["CONFIRMED_BY", "EVENT_KIND", "FlipResult", "flips"]

EVENT_COLUMNS = (
    "time", "bar", "kind", "flip_kind", "level", "level_low", "level_high", "break_bar",
    "break_time", "break_close", "confirmed_by", "zone_id",
)
BAR_COLUMNS = (
    *SR_COLUMNS, "breakdown", "breakout", "flipped_resistance", "flipped_resistance_low",
    "flipped_resistance_high", "flipped_support", "flipped_support_low", "flipped_support_high",
    "retest_rejected", "retest_held",
)
#: The categories of the ``kind`` and ``flip_kind`` event columns (one dtype for both, so they
#: compare and combine with each other).
EVENT_KIND = pd.CategoricalDtype(["support_to_resistance", "resistance_to_support", "retest"])
_BY = {BY_CLOSES: "closes", BY_FAILED_RETEST: "failed_retest", BY_REJECTION: "rejection"}
#: The categories of ``confirmed_by`` (in the engine's code order: the codes are the engine's).
CONFIRMED_BY = pd.CategoricalDtype([_BY[k] for k in range(len(_BY))])
_NAMES = list(EVENT_KIND.categories)
_KIND = {EV_S2R: "support_to_resistance", EV_R2S: "resistance_to_support",
         EV_RETEST_S2R: "retest", EV_RETEST_R2S: "retest"}
_FLIP_KIND = {EV_S2R: "support_to_resistance", EV_R2S: "resistance_to_support",
              EV_RETEST_S2R: "support_to_resistance", EV_RETEST_R2S: "resistance_to_support"}
# engine event code -> category code (index 0: no event kind has code 0)
_KIND_CODE = np.array([-1, *(_NAMES.index(_KIND[k]) for k in range(1, 5))], dtype=np.int8)
_FLIP_KIND_CODE = np.array([-1, *(_NAMES.index(_FLIP_KIND[k]) for k in range(1, 5))],
                           dtype=np.int8)

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

    @property
    def nbytes(self) -> int:
        """Bytes of the frames and zone log held (the index not counted)."""
        frames = sum(int(f.memory_usage(index=False, deep=False).sum())
                     for f in (self.events, self.bars))
        return frames + sum(a.nbytes for a in self.zone_changes if isinstance(a, np.ndarray))

    def for_signals(self, keep_log: bool) -> FlipResult:
        """A copy holding only what a strategy's signals read: the per-bar columns, and the
        zone log when ``keep_log`` (level targets); the events frame is empty (same columns
        and dtypes). The engine's event buffers (~70 bytes per bar with their spare room, at
        ~0.5 events a bar on minute data) and a log nobody reads are let go before the signal
        frame is built (issue 17: the peak of a long run); a result shared through
        :mod:`indicators.memo` keeps them for the others."""
        idx = self.bars.index
        events = _events(np.empty((4, 0)), np.empty((5, 0), dtype=np.int64), idx)
        return replace(self, events=events, zone_changes=self.zone_changes if keep_log else (),
                       bars=self.bars.copy(deep=False))

    def shared_copy(self) -> FlipResult:
        """A copy sharing this result's memory (what :mod:`indicators.memo` hands out): shallow
        frames, which pandas' copy-on-write copies column by column only when one is written,
        so a receiver changing its frames changes nobody else's. The zone log's arrays are
        the same arrays: only read by :func:`indicators.keylevels.zone_log` (read-only views
        would make numba compile its kernels again for read-only arguments)."""
        return replace(self, events=self.events.copy(deep=False),
                       bars=self.bars.copy(deep=False))


@takes_level_params("zones", "flips")
def flips(df: pd.DataFrame, *, params: LevelParams) -> FlipResult:
    """Flip and retest events plus per-bar flip columns (see the module docstring for the rule).

    Returns:
        :class:`FlipResult` with ``events`` (``time``/``bar`` of the confirming bar, ``kind``
        = ``support_to_resistance`` / ``resistance_to_support`` / ``retest``, ``flip_kind`` (the
        flip a retest refers to), ``level``/``level_low``/``level_high`` (zone centre and band at
        the event, price units), ``break_bar``/``break_time``/``break_close`` (the close that broke
        the zone), ``confirmed_by`` (``closes``, ``failed_retest`` or ``rejection`` for retests),
        ``zone_id``; ``kind``/``flip_kind`` are categoricals of :data:`EVENT_KIND` and
        ``confirmed_by`` of :data:`CONFIRMED_BY`: they compare with the names as strings,
        ``ev["kind"] == "retest"``, and ``.astype(str)`` gives plain strings) and ``bars``
        (the :func:`indicators.levels.sr_levels` columns plus
        ``breakdown``/``breakout`` (bool: this bar's close confirms a support->resistance /
        resistance->support flip), ``flipped_resistance`` (centre of the nearest
        support->resistance zone above the close, NaN if none) with its ``_low``/``_high`` band,
        ``flipped_support`` likewise below, ``retest_rejected``/``retest_held`` (bool)).
    """
    # Keyed by the zone and flip values only (the rest does not change the engine's output):
    # inside indicators.memo.sharing on this frame (the main job, each cut of its look-ahead
    # audit, a sweep), strategies with the same zones share one engine run.
    shared = _engine_run(df, LevelParams(**{k: getattr(params, k) for k in _ENGINE_PARAMS}))
    return shared if shared.params == params else replace(shared, params=params)


_ENGINE_PARAMS = LevelParams.names("zones", "flips")


@memoised
def _engine_run(df: pd.DataFrame, params: LevelParams) -> FlipResult:
    """:func:`flips` for ``params`` holding only the zone and flip values (others default)."""
    p = params
    user_df, df = df, to_canonical(df)
    out, atr, _piv = run_engine(df, p, True, want_log=True)
    # The engine writes each column contiguously (one row of ``out.bars``/``out.flags`` per
    # column), so the frame takes them as they are: copy=False keeps one block per column, no
    # stacking (copying ~1 GB of columns at 10M bars cost more than the rows' own page faults).
    cols = dict(zip(SR_COLUMNS, out.bars[:6], strict=True))
    cols["breakdown"] = out.flags[0]
    cols["breakout"] = out.flags[1]
    for r, name in ((6, "flipped_resistance"), (9, "flipped_support")):
        cols[name] = out.bars[r]
        cols[f"{name}_low"] = out.bars[r + 1]
        cols[f"{name}_high"] = out.bars[r + 2]
    cols["retest_rejected"] = out.flags[2]
    cols["retest_held"] = out.flags[3]
    bars = like_input(pd.DataFrame(cols, index=df.index, copy=False), user_df)
    return FlipResult(events=_events(out.evf, out.evi, df.index), bars=bars, params=p,
                      zone_changes=(out.log_f, out.log_i, len(out.zones[0]), atr))


def _events(evf: np.ndarray, evi: np.ndarray, idx: pd.Index) -> pd.DataFrame:
    # One engine row per column (contiguous), taken without copies; the names as categoricals
    # built from the engine's codes (no Python string per row: 5M events at 10M minute bars).
    bar, kinds, brk = evi[0], evi[1], evi[3]
    ev = pd.DataFrame({
        "time": idx[bar] if len(bar) else idx[:0],
        "bar": bar,
        "kind": pd.Categorical.from_codes(_KIND_CODE[kinds], dtype=EVENT_KIND),
        "flip_kind": pd.Categorical.from_codes(_FLIP_KIND_CODE[kinds], dtype=EVENT_KIND),
        "level": evf[0],
        "level_low": evf[1],
        "level_high": evf[2],
        "break_bar": brk,
        "break_time": idx[np.maximum(brk, 0)] if len(brk) else idx[:0],
        "break_close": evf[3],
        "confirmed_by": pd.Categorical.from_codes(evi[4].astype(np.int8), dtype=CONFIRMED_BY),
        "zone_id": evi[2],
    }, copy=False)
    return ev
