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
from typing import Any

import numpy as np
import pandas as pd

from data.frame import like_input, to_canonical
from indicators import memo
from indicators._engine import (
    BY_CLOSES,
    BY_FAILED_RETEST,
    BY_REJECTION,
    EV_R2S,
    EV_RETEST_R2S,
    EV_RETEST_S2R,
    EV_S2R,
)
from indicators.levels import SR_COLUMNS, LevelParams, run_engine, takes_level_params, zone_bands
from indicators.memo import memoised

__all__ = ["CONFIRMED_BY", "EVENT_KIND", "FlipResult", "ZoneBars", "flips", "flips_for_signals"]

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

#: The zone groups of :data:`BAR_COLUMNS` (centre, low, high), in the engine's code order.
ZONE_GROUPS = ("support", "resistance", "flipped_resistance", "flipped_support")
#: The bool columns of :data:`BAR_COLUMNS`, in the engine's flag order.
FLAG_COLUMNS = ("breakdown", "breakout", "retest_rejected", "retest_held")


@dataclass(frozen=True)
class ZoneBars:
    """The per-bar columns of one engine run as the engine writes them: for each zone group of
    :data:`ZONE_GROUPS` an int32 code per bar into ``table`` (a zone log row's centre, low and
    high; -1: no zone, the table's last row of NaN), and the bool flags. 21 bytes per bar
    instead of the frame's 100; :meth:`frame` decodes the frame, :meth:`column` one column."""

    index: pd.Index
    codes: np.ndarray  # (4, bars) int32
    table: np.ndarray  # (log rows + 1, 3) float64
    flags: np.ndarray  # (4, bars) bool

    @classmethod
    def of_frame(cls, bars: pd.DataFrame) -> ZoneBars:
        """The columns :data:`BAR_COLUMNS` of ``bars`` held as codes (each bar's own table
        row: exact, for a result a caller built with a DataFrame)."""
        n = len(bars)
        table = np.empty((4 * n + 1, 3))
        for g, name in enumerate(ZONE_GROUPS):
            for j, k in enumerate(("", "_low", "_high")):
                table[g * n:(g + 1) * n, j] = bars[name + k].to_numpy(dtype=np.float64)
        table[-1] = np.nan
        codes = (np.arange(4, dtype=np.int32) * n)[:, None] + np.arange(n, dtype=np.int32)
        flags = np.array([bars[c].to_numpy(dtype=bool) for c in FLAG_COLUMNS]).reshape(4, n)
        return cls(bars.index, codes, table, flags)

    @property
    def nbytes(self) -> int:
        """Bytes of the codes, table and flags."""
        return self.codes.nbytes + self.table.nbytes + self.flags.nbytes

    def group(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(int32 codes per bar, table)`` of the zone group ``name`` (:data:`ZONE_GROUPS`)."""
        return self.codes[ZONE_GROUPS.index(name)], self.table

    def column(self, name: str) -> np.ndarray:
        """The values of column ``name`` of :data:`BAR_COLUMNS` (a new array: float64 price
        units for a zone column, NaN where there is none; bool for a flag)."""
        if name in FLAG_COLUMNS:
            return self.flags[FLAG_COLUMNS.index(name)].copy()
        base, _, band = name.rpartition("_")
        if band not in ("low", "high") or base not in ZONE_GROUPS:
            base, band = name, "centre"
        codes, table = self.group(base)
        return table[:, ("centre", "low", "high").index(band)][codes]

    def frame(self) -> pd.DataFrame:
        """The per-bar frame (columns :data:`BAR_COLUMNS`), a new one of new arrays on each
        call (writing into it changes nothing else)."""
        cols: dict[str, Any] = {}
        for name in BAR_COLUMNS:
            if name in FLAG_COLUMNS:
                cols[name] = self.flags[FLAG_COLUMNS.index(name)].copy()
            elif name in ZONE_GROUPS:
                g = ZONE_GROUPS.index(name)
                for k, v in zip(("", "_low", "_high"), zone_bands(self.codes[g], self.table),
                                strict=True):
                    cols[name + k] = v
        return pd.DataFrame({c: cols[c] for c in BAR_COLUMNS}, index=self.index, copy=False)


@dataclass
class FlipResult:
    """``events``: one row per flip or retest (columns :data:`EVENT_COLUMNS`), in bar order;
    ``bars``: per-bar columns :data:`BAR_COLUMNS` on the input index. Iterable as
    ``events, bars = flips(df)``. ``zone_changes``: the same engine run's zone log
    ``(floats, ints, zone count, ATR per bar)`` (see :mod:`indicators._engine`), so
    :func:`indicators.keylevels.zone_log` can reuse the run instead of repeating it.

    ``bars`` is held as the engine wrote it (:class:`ZoneBars`: ~21 bytes per bar instead of
    100) until it is first read, then decoded into this result's own DataFrame (kept: later
    reads and writes see the same frame); a DataFrame given as ``bars`` is kept as it is.
    :attr:`zone_bars` is the held form (copies of the result share it, not the frame)."""

    events: pd.DataFrame
    bars: pd.DataFrame
    params: LevelParams
    zone_changes: tuple = ()

    def _get_bars(self) -> pd.DataFrame:
        held = self.__dict__["_bars"]
        if not isinstance(held, ZoneBars):
            return held
        frame = self.__dict__.get("_frame")
        if frame is None:  # decoded on the first read, then this result's own frame
            frame = self.__dict__["_frame"] = held.frame()
        return frame

    def _set_bars(self, bars: pd.DataFrame | ZoneBars) -> None:
        self.__dict__["_bars"] = bars
        self.__dict__.pop("_frame", None)

    @property
    def zone_bars(self) -> ZoneBars | pd.DataFrame:
        """The per-bar columns as held: :class:`ZoneBars` (what :func:`flips` returns), or the
        DataFrame a caller constructed this result with."""
        return self.__dict__["_bars"]

    @property
    def index(self) -> pd.Index:
        """The bars' index (the input's own)."""
        return self.zone_bars.index

    def _with(self, **changes: Any) -> FlipResult:
        # dataclasses.replace would read (decode) ``bars`` to pass it on: pass the held form
        return replace(self, **{"bars": self.zone_bars, **changes})

    def check(self, index: pd.Index, params: LevelParams) -> None:
        """ValueError unless this result was computed on bars ``index`` with the zone and flip
        values of ``params`` (a result handed to another computation to reuse)."""
        if any(getattr(self.params, k) != getattr(params, k)
               for k in LevelParams.names("zones", "flips")):
            raise ValueError("flip_result was computed with other zone/flip parameters")
        if not self.index.equals(index):
            raise ValueError("flip_result was computed on other bars than df")

    def __iter__(self):
        return iter((self.events, self.bars))

    @property
    def nbytes(self) -> int:
        """Bytes of the events, the per-bar columns as held and the zone log (the index not
        counted)."""
        held = self.zone_bars
        frames = int(self.events.memory_usage(index=False, deep=False).sum()) + (
            held.nbytes if isinstance(held, ZoneBars)
            else int(held.memory_usage(index=False, deep=False).sum()))
        return frames + sum(a.nbytes for a in self.zone_changes if isinstance(a, np.ndarray))

    def for_signals(self, keep_log: bool) -> FlipResult:
        """A copy holding only what a strategy's signals read: the per-bar columns, and the
        zone log when ``keep_log`` (level targets); the events frame is empty (same columns
        and dtypes). The engine's event buffers (~70 bytes per bar with their spare room, at
        ~0.5 events a bar on minute data) and a log nobody reads are let go before the signal
        frame is built (issue 17: the peak of a long run); a result shared through
        :mod:`indicators.memo` keeps them for the others."""
        held = self.zone_bars
        events = _events(np.empty((4, 0)), np.empty((5, 0), dtype=np.int64), self.index)
        return self._with(events=events, zone_changes=self.zone_changes if keep_log else (),
                          bars=held if isinstance(held, ZoneBars) else held.copy(deep=False))

    def shared_copy(self) -> FlipResult:
        """A copy sharing this result's memory (what :mod:`indicators.memo` hands out): shallow
        frames, which pandas' copy-on-write copies column by column only when one is written,
        so a receiver changing its frames changes nobody else's (the per-bar columns held as
        :class:`ZoneBars` are decoded into new arrays on each read). The zone log's arrays are
        the same arrays: only read by :func:`indicators.keylevels.zone_log` (read-only views
        would make numba compile its kernels again for read-only arguments)."""
        held = self.zone_bars
        return self._with(events=self.events.copy(deep=False),
                          bars=held if isinstance(held, ZoneBars) else held.copy(deep=False))


# A property over the dataclass field (as BacktestResult.indicators): __init__ and any assignment
# go through the setter; installed after @dataclass, which would take it for the field's default.
FlipResult.bars = property(  # type: ignore[assignment]
    FlipResult._get_bars, FlipResult._set_bars,
    doc="Per-bar columns :data:`BAR_COLUMNS` (decoded on the first read; see the class).")


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
    shared = _engine_run(df, _engine_params(params))
    return shared if shared.params == params else shared._with(params=params)


def flips_for_signals(df: pd.DataFrame, params: LevelParams, keep_log: bool) -> FlipResult:
    """``flips(df, params=params).for_signals(keep_log)`` (what a strategy's signals read: the
    per-bar columns, and the zone log with ``keep_log``; no events), the same values. Outside
    :mod:`indicators.memo` sharing nobody else reads this engine run, so the engine does not
    keep its events at all (their room was ~72 bytes per bar at the peak of a long run, issue
    17), nor the integer half of the zone log without ``keep_log``."""
    if memo.active() is not None:  # the run is shared: the others may read its events
        return flips(df, params=params).for_signals(keep_log)
    res = _engine_result(df, _engine_params(params), want_events=False, want_log=keep_log)
    res = res._with(zone_changes=res.zone_changes if keep_log else ())
    return res if res.params == params else res._with(params=params)


_ENGINE_PARAMS = LevelParams.names("zones", "flips")


def _engine_params(params: LevelParams) -> LevelParams:
    """``params`` holding only the zone and flip values (the rest does not change the engine's
    output; others default)."""
    return LevelParams(**{k: getattr(params, k) for k in _ENGINE_PARAMS})


@memoised
def _engine_run(df: pd.DataFrame, params: LevelParams) -> FlipResult:
    """:func:`flips` for ``params`` holding only the zone and flip values (others default)."""
    return _engine_result(df, params, want_events=True, want_log=True)


def _engine_result(df: pd.DataFrame, params: LevelParams, want_events: bool, want_log: bool
                   ) -> FlipResult:
    """:func:`_engine_run`; without ``want_events`` the events frame is empty, without
    ``want_log`` the zone log's integer rows are (the float rows stay: the bands)."""
    p = params
    user_df, df = df, to_canonical(df)
    out, atr, _piv = run_engine(df, p, True, want_log=want_log, want_events=want_events)
    index = like_input(pd.DataFrame(index=df.index), user_df).index
    bars = ZoneBars(index, out.codes, out.band_table(), out.flags)
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
