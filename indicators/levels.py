"""Support and resistance zones built by clustering confirmed pivots.

Two forms of the same computation (they agree exactly, see :mod:`indicators._engine`):

* :func:`support_resistance` (a snapshot as of one bar) returns a :class:`Levels` table of zones
  with their centre, band, touches, first/last touch, origin, strength, role and flip history;
* :func:`sr_levels` (per bar, causal) gives on every bar the nearest zone below the close
  (support) and above it (resistance) using only pivots confirmed by that bar.

How zones are built (prices in quote currency, ATR = TA-Lib ``ATR(atr_period)``; before the ATR
exists, i.e. the first ``atr_period`` bars, the running mean of ``high - low`` stands in so the
first pivots are usable and nothing looks ahead):

* pivots: :func:`indicators.pivots.pivots` with ``left``/``right``; a pivot enters on the bar that
  confirms it (``pivot bar + right``);
* clustering: a pivot joins the zone with the nearest centre when the distance is at most
  ``tolerance_atr x ATR`` (or ``tolerance_pct`` % of the pivot price if given), measured on the
  confirming bar; otherwise it starts a new zone. Zones whose centres come within the tolerance
  merge. centre = mean of the member pivot prices;
* band: ``[lowest member - pad, highest member + pad]`` with ``pad = band_atr x ATR`` (or
  ``band_pct`` % of the pivot price) at the latest member's confirmation;
* touches: the number of member pivots; ``first_touch``/``last_touch``: the earliest/latest
  member pivot's own bar;
* role at bar ``t``: ``support`` when ``centre <= close[t]``, else ``resistance``;
* strength (snapshot only): ``touches x 0.5 ** (bars since last touch / half_life)``, i.e. each
  touch counts once and a level loses half its weight every ``half_life`` bars without a new
  touch (default 365 bars: a year of daily bars);
* round numbers (snapshot only, optional): ``round_levels=5000`` adds every multiple of 5,000
  between the lowest low and the highest high seen so far, with ``origin="round"``, a band of
  ``+- pad`` at the current ATR and ``touches`` = confirmed pivots inside that band. They never
  feed the clustering or the flips.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

import numpy as np
import pandas as pd

from data import jit
from data.frame import DataError, like_input, to_canonical
from indicators._engine import (
    KIND_HIGH,
    KIND_LOW,
    atr_warm_fill,
    level_engine,
    relative_volume_kernel,
)
from indicators.core import atr as ta_atr
from indicators.pivots import pivot_bars

__all__ = ["LevelParams", "Levels", "sr_levels", "support_resistance", "takes_level_params"]

SR_COLUMNS = (
    "support", "support_low", "support_high", "resistance", "resistance_low", "resistance_high"
)

#: Most zone rows :func:`indicators.keylevels.level_history` materialises (one row per live zone
#: per requested bar, 13 numbers each: ~1.2 GB at the limit before consolidation). The real
#: 61k-bar Bitstamp 2-hour file needs about 1.3M rows for every breakdown candidate bar; 1M seeded
#: one-minute bars ~67M. Strategy targets never materialise them (they query the zone log:
#: :func:`indicators.keylevels.level_targets`), so only an explicit level_history that large is
#: refused.
SNAPSHOT_ROWS_LIMIT = 12_000_000


def _param(default: object, help: str, group: str, minimum: float, kind: type = float,
           optional: bool = False) -> object:
    """One declared level parameter: its default, help line, group and bounds (metadata)."""
    return field(default=default, metadata={"help": help, "group": group, "min": minimum,
                                            "kind": kind, "optional": optional})


@dataclass(frozen=True)
class LevelParams:
    """Every parameter of levels, flips and level significance, declared once.

    The public functions (:func:`sr_levels`, :func:`support_resistance`,
    :func:`indicators.flips.flips`, :func:`indicators.keylevels.key_levels`, ...) take the ones
    they use as named keyword arguments (TA-Lib style) or all at once as
    ``params=LevelParams(...)``; their signatures and the "Level parameters" section of their
    docstrings are generated from this class (:func:`takes_level_params`). Groups: ``zones``
    (pivots, clustering, bands), ``flips`` (breaks and their acceptance), ``rank``
    (consolidation and significance).
    Prices in quote currency, ATR = TA-Lib ``ATR(atr_period)``, lengths in bars.
    """

    left: int = _param(5, "bars left of a pivot that must be lower/higher", "zones", 1, int)
    right: int = _param(5, "bars right of a pivot that confirm it (its delay)", "zones", 0, int)
    tolerance_atr: float = _param(0.5, "a pivot joins a zone within this many ATRs of its "
                                  "centre", "zones", 0)
    tolerance_pct: float | None = _param(None, "the same tolerance in % of the pivot price "
                                         "(overrides tolerance_atr)", "zones", 0, optional=True)
    band_atr: float = _param(0.25, "zone band: member pivots +- this many ATRs", "zones", 0)
    band_pct: float | None = _param(None, "the band pad in % of the pivot price (overrides "
                                    "band_atr)", "zones", 0, optional=True)
    atr_period: int = _param(14, "ATR period, bars", "zones", 1, int)
    min_touches: int = _param(1, "zones with fewer member pivots are ignored", "zones", 1, int)
    buffer_atr: float = _param(0.3, "a close must clear the zone by this many ATRs to break it",
                               "flips", 0)
    buffer_pct: float | None = _param(None, "the break buffer in % of the close (overrides "
                                      "buffer_atr)", "flips", 0, optional=True)
    confirm_closes: int = _param(2, "further closes beyond the buffer that confirm a flip",
                                 "flips", 0, int)
    retest_bars: int = _param(10, "bars a failed retest may take to confirm a flip", "flips", 1,
                              int)
    merge_atr: float = _param(0.1, "consolidate zones whose bands overlap or lie within this "
                              "many ATRs", "rank", 0)
    max_width_atr: float = _param(1.5, "a consolidated zone is never wider than this many ATRs",
                                  "rank", 0)
    age_bars: int = _param(180, "touches spanning at least this many bars score a point for age",
                           "rank", 1, int)
    volume_bars: int = _param(50, "bars in the volume average touches are compared with",
                              "rank", 1, int)
    heavy_volume: float = _param(1.5, "touches averaging this multiple of the volume average "
                                 "score a point", "rank", 0)
    wema_period: int = _param(200, "period (weeks) of the weekly EMA a zone can meet", "rank", 1,
                              int)
    confluence_pct: float = _param(3.0, "the weekly EMA within this % of the band is confluence "
                                   "(2 points)", "rank", 0)
    weekly_bars: int = _param(4, "weeks each side of a weekly swing pivot (a higher-timeframe "
                              "level inside the band scores 2 points)", "rank", 1, int)
    major_score: float = _param(7.0, "significance score from which a zone is major", "rank", 0)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            m = f.metadata
            if v is None and m["optional"]:
                continue
            if m["kind"] is int:
                ok = not isinstance(v, bool) and isinstance(v, int | np.integer)
                what = "an integer"
            else:
                ok = (not isinstance(v, bool) and isinstance(v, int | float | np.number)
                      and math.isfinite(v))
                what = "a finite number"
            if not ok or v < m["min"]:
                none = "None or " if m["optional"] else ""
                raise ValueError(f"{f.name} must be {none}{what} >= {m['min']:g}, got {v!r}")

    @classmethod
    def names(cls, *groups: str) -> tuple[str, ...]:
        """The parameter names of ``groups`` (all when none given), in declaration order."""
        return tuple(f.name for f in fields(cls) if not groups or f.metadata["group"] in groups)

    @classmethod
    def spec(cls, name: str) -> Mapping[str, object]:
        """``default``, ``help``, ``min``, ``kind`` and ``optional`` of one parameter."""
        for f in fields(cls):
            if f.name == name:
                return {"default": f.default, **f.metadata}
        raise KeyError(f"no level parameter {name!r}; valid: {', '.join(cls.names())}")


def takes_level_params(*groups: str) -> Callable:
    """Give a function ``fn(df, ..., params: LevelParams)`` the named keyword parameters of
    ``groups`` (declared once in :class:`LevelParams`), a matching signature and docstring.

    The wrapper accepts ``params=LevelParams(...)`` and/or the individual names (they override
    ``params``); a level parameter of another group raises ``TypeError`` naming the function.
    """
    names = LevelParams.names(*groups)

    def deco(fn: Callable) -> Callable:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: object, params: LevelParams | None = None, **kw: object) -> object:
            given = {k: kw.pop(k) for k in names if k in kw}
            alien = sorted(set(kw) & set(LevelParams.names()))
            if alien:
                raise TypeError(f"{fn.__name__}() does not use level parameter(s) "
                                f"{', '.join(alien)}; it takes {', '.join(names)}")
            base = params if params is not None else LevelParams()
            if not isinstance(base, LevelParams):
                raise TypeError(f"params must be a LevelParams, got {type(base).__name__}")
            return fn(*args, params=replace(base, **given) if given else base, **kw)

        own = [p for p in sig.parameters.values() if p.name != "params"]
        extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY,
                                   default=LevelParams.spec(n)["default"],
                                   annotation=LevelParams.__annotations__[n]) for n in names]
        pos = [p for p in own if p.kind != inspect.Parameter.VAR_KEYWORD]
        var = [p for p in own if p.kind == inspect.Parameter.VAR_KEYWORD]
        pparam = inspect.Parameter("params", inspect.Parameter.KEYWORD_ONLY, default=None,
                                   annotation="LevelParams | None")
        wrapper.__signature__ = sig.replace(parameters=[*pos, *extra, pparam, *var])
        lines = [f"    {n} (default {LevelParams.spec(n)['default']!r}): "
                 f"{LevelParams.spec(n)['help']}" for n in names]
        wrapper.__doc__ = ((fn.__doc__ or "").rstrip() + "\n\n    Level parameters (named, or "
                           "all at once as ``params=LevelParams(...)``):\n\n"
                           + "\n".join(lines) + "\n")
        return wrapper

    return deco


def _prices(df: pd.DataFrame, name: str = "df") -> tuple[np.ndarray, ...]:
    # ``df`` is canonical: every public caller of run_engine passes to_canonical(df).
    h, lo, c = (df[k].to_numpy(dtype=np.float64) for k in ("high", "low", "close"))
    bad = ~(np.isfinite(h) & np.isfinite(lo) & np.isfinite(c))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{name} has a missing or infinite high/low/close on bar {i}",
            source=df.attrs.get("source"),
            timestamp=df.index[i],
            hint="drop or repair the bar (data.validate) before computing levels",
        )
    v = df["volume"].to_numpy(dtype=np.float64)
    # a copy only when there is something to replace (a full-length copy per run otherwise)
    return h, lo, c, (np.nan_to_num(v) if not np.isfinite(v).all() else np.ascontiguousarray(v))


def causal_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """TA-Lib ATR with the warm-up bars filled by the running mean of ``high - low`` (causal)."""
    ta = np.ascontiguousarray(ta_atr(high, low, close, period), dtype=np.float64)
    return jit.call(atr_warm_fill, ta, np.ascontiguousarray(high, dtype=np.float64),
                    np.ascontiguousarray(low, dtype=np.float64), work=len(ta))


def relative_volume(volume: np.ndarray, bars: int) -> np.ndarray:
    """Each bar's volume over the mean volume of the ``bars`` bars ending at it (causal; the
    mean of the bars so far while fewer exist; 0 where that mean is 0: no volume data)."""
    if int(bars) != bars or bars < 1:
        raise ValueError(f"relative_volume: bars must be an integer >= 1, got {bars!r}")
    v = np.ascontiguousarray(volume, dtype=np.float64)
    return jit.call(relative_volume_kernel, v, int(bars), work=len(v))


def _or_nan(x: float | None) -> float:
    return np.nan if x is None else float(x)


class EngineOutput(NamedTuple):
    """What :func:`run_engine` returns from :func:`indicators._engine.level_engine`: ``codes``
    (4 x bars, int32: the zone log row of the nearest support, resistance, flipped resistance
    and flipped support on each bar, -1 for none; empty without ``want_bars``), ``flags``
    (4 x bars, bool: breakdown, breakout, retest_rejected, retest_held), ``evf``/``evi`` (one
    column per event: level, low, high, break close / bar, kind, zone, break bar, confirmed
    by), ``zones`` (the final zone arrays), ``log_f``/``log_i`` (the zone log, one row per
    change; written for the codes too)."""

    codes: np.ndarray
    flags: np.ndarray
    evf: np.ndarray
    evi: np.ndarray
    zones: tuple
    log_f: np.ndarray
    log_i: np.ndarray

    def band_table(self) -> np.ndarray:
        """The ``(rows + 1, 3)`` float64 table of :func:`zone_bands`: each zone log row's
        centre, low and high (price units), then a row of NaN (the one code -1 picks)."""
        table = np.empty((len(self.log_f) + 1, 3))
        table[:-1] = self.log_f[:, :3]
        table[-1] = np.nan
        return table


def zone_bands(codes: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centre, low and high (float64, price units; NaN where ``codes`` is -1: no zone) of
    the zone log rows ``codes`` (one row of :attr:`EngineOutput.codes`) in ``table``
    (:meth:`EngineOutput.band_table`): the per-bar band columns, three new arrays."""
    return table[:, 0][codes], table[:, 1][codes], table[:, 2][codes]


def run_engine(df: pd.DataFrame, p: LevelParams, want_bars: bool,
               want_log: bool = False, want_events: bool = True
               ) -> tuple[EngineOutput, np.ndarray, object]:
    """Compute pivots, tolerances and run the numba engine over all of ``df``.

    ``want_bars``: the per-bar outputs; ``want_log``: the zone log (one row per zone change, see
    :mod:`indicators._engine`; its float rows are always written with ``want_bars``, its
    integer rows only with ``want_log``); ``want_events``: the flip and retest events (else
    none are kept: no room is reserved for them). Returns ``(EngineOutput, atr, (pivot-high
    bars, pivot-low bars))`` (:func:`indicators.pivots.pivot_bars`).
    """
    h, lo, c, v = _prices(df)
    piv = pivot_bars(h, lo, p.left, p.right)
    atr = causal_atr(h, lo, c, p.atr_period)
    window = max(p.retest_bars, p.confirm_closes)
    # Tolerance, pad and break buffer are worked out in the engine from the ATR and these
    # factors (NaN: the percentage is not given), only where used: three full-length arrays
    # fewer (~0.3 s of first-touch page faults at 10M bars); the same products bit for bit.
    args = (h, lo, c, v, relative_volume(v, p.volume_bars), piv[0], piv[1], int(p.right),
            np.ascontiguousarray(atr),
            _or_nan(p.tolerance_pct), float(p.tolerance_atr), _or_nan(p.band_pct),
            float(p.band_atr), _or_nan(p.buffer_pct), float(p.buffer_atr), p.min_touches,
            p.confirm_closes, window, want_bars, want_log)
    # Buffer capacities: one event per bar (about one per two bars on minute data) and two log
    # rows per pivot (~1.8 on minute data); memory past the rows written is never touched. The
    # engine counts what did not fit; a run that outgrew them is repeated with exact room.
    ecap, lcap = (len(c) + 64 if want_events else 0), 2 * (len(piv[0]) + len(piv[1])) + 64
    out = jit.call(level_engine, *args, ecap, lcap, work=len(c))
    nev, nl = out[4], out[8]
    if (want_events and nev > ecap) or ((want_log or want_bars) and nl > lcap):
        out = jit.call(level_engine, *args, max(nev, 1) if want_events else 0, max(nl, 1),
                       work=len(c))
    codes, flags, evf, evi, _, zones, lf, li, _ = out
    nev = nev if want_events else 0
    return EngineOutput(codes, flags, evf[:, :nev], evi[:, :nev], zones, lf[:nl], li[:nl]), atr, piv


@takes_level_params("zones")
def sr_levels(df: pd.DataFrame, *, params: LevelParams) -> pd.DataFrame:
    """Per-bar nearest support and resistance zones, causal.

    Returns:
        A DataFrame on ``df``'s own index with ``support``/``support_low``/``support_high``
        (centre and band of the nearest zone with ``centre <= close``) and ``resistance``/
        ``resistance_low``/``resistance_high`` (nearest zone with ``centre > close``), in price
        units; NaN where no such zone exists yet. Only pivots confirmed by each bar are used,
        so the row for bar t equals ``support_resistance(df, at=t).nearest_support(close[t])``
        (tested).
    """
    d = to_canonical(df)
    eng = run_engine(d, params, True)[0]
    table = eng.band_table()
    cols = (*zone_bands(eng.codes[0], table), *zone_bands(eng.codes[1], table))
    # the decoded columns are new arrays: taken as they are (copy=False)
    out = pd.DataFrame(dict(zip(SR_COLUMNS, cols, strict=True)), index=d.index, copy=False)
    return like_input(out, df)


FLIP_NAMES = {-1: "support_to_resistance", 1: "resistance_to_support", 0: None}
ORIGIN_NAMES = {KIND_HIGH: "pivot_high", KIND_LOW: "pivot_low", KIND_HIGH | KIND_LOW: "both"}


@dataclass
class Levels:
    """Support/resistance zones as of one bar.

    ``table`` has one row per zone, sorted by ``centre`` ascending, with columns ``zone_id``,
    ``centre``, ``low``, ``high`` (band), ``touches``, ``first_touch``/``last_touch`` (pivot bar
    timestamps), ``first_touch_bar``/``last_touch_bar`` (positions), ``origin`` (``pivot_high``,
    ``pivot_low``, ``both`` or ``round``), ``volume`` (sum of volume on the touch bars),
    ``strength``, ``role`` (``support``/``resistance`` relative to ``close``), ``flip``
    (``support_to_resistance``, ``resistance_to_support`` or None: the zone's latest confirmed
    role reversal), ``flip_time`` and ``distance_pct`` (``(centre - close) / close x 100``).
    """

    table: pd.DataFrame
    as_of: pd.Timestamp | None
    close: float
    params: LevelParams = field(default_factory=LevelParams)

    def __len__(self) -> int:
        return len(self.table)

    def _price(self, price: float | None) -> float:
        return self.close if price is None else float(price)

    def below(self, price: float | None = None, n: int = 3) -> pd.DataFrame:
        """The ``n`` zones with ``centre <= price`` nearest first (default price: the close)."""
        t = self.table
        return t[t["centre"] <= self._price(price)].iloc[::-1].head(n)

    def above(self, price: float | None = None, n: int = 3) -> pd.DataFrame:
        """The ``n`` zones with ``centre > price``, nearest first (default price: the close)."""
        t = self.table
        return t[t["centre"] > self._price(price)].head(n)

    def nearest_support(self, price: float | None = None) -> pd.Series | None:
        """The zone with the highest centre at or below ``price`` (None if there is none)."""
        b = self.below(price, 1)
        return None if b.empty else b.iloc[0]

    def nearest_resistance(self, price: float | None = None) -> pd.Series | None:
        """The zone with the lowest centre above ``price`` (None if there is none)."""
        a = self.above(price, 1)
        return None if a.empty else a.iloc[0]


def cut_frame(df: pd.DataFrame, at: object) -> pd.DataFrame:
    """``df`` up to and including bar ``at`` (timestamp, date string or integer position)."""
    if at is None:
        return df
    if isinstance(at, int | np.integer) and not isinstance(at, bool):
        n = len(df)
        pos = int(at) + n if at < 0 else int(at)
        if not 0 <= pos < n:
            raise DataError(f"at={at} is outside the {n} bars of the frame")
        return df.iloc[: pos + 1]
    ts = pd.Timestamp(at)
    if ts.tzinfo is None and isinstance(df.index, pd.DatetimeIndex) and df.index.tz is not None:
        ts = ts.tz_localize(df.index.tz)
    out = df.loc[:ts]
    if out.empty:
        first = df.index[0] if len(df) else None
        raise DataError(f"at={at} is before the first bar ({first})",
                        hint="pick a date inside the data span")
    return out


@takes_level_params("zones", "flips")
def support_resistance(
    df: pd.DataFrame,
    *,
    round_levels: float | None = None,
    at: object = None,
    half_life: float = 365.0,
    params: LevelParams,
) -> Levels:
    """Support/resistance zones known at bar ``at`` (default: the last bar).

    ``at`` may be a timestamp, a date string or an integer position; the frame is truncated to it
    first, so nothing after ``at`` is used. The flip parameters set the rule behind the ``flip``
    column, as in :func:`indicators.flips.flips`. Returns a :class:`Levels` (zones with at least
    ``min_touches`` touches, plus round-number levels if ``round_levels`` is a step in price
    units, e.g. 5000).
    """
    if not (isinstance(half_life, int | float) and half_life > 0):
        raise ValueError(f"half_life must be a number > 0 (bars), got {half_life!r}")
    if round_levels is not None and not (
        isinstance(round_levels, int | float) and math.isfinite(round_levels) and round_levels > 0
    ):
        raise ValueError(f"round_levels must be None or a price step > 0, got {round_levels!r}")
    p = params
    d = cut_frame(to_canonical(df), at)
    if d.empty:
        raise DataError("cannot compute levels on an empty frame")
    out, atr, piv = run_engine(d, p, False)
    (zsum, zcnt, zmin, zmax, zpad, zfirst, zlast, zkind, zvol, zalive, zflip, zflipbar,
     _fb, _fc, _pend, _rv) = out.zones
    n = len(d)
    close = float(d["close"].iloc[-1])
    keep = zalive & (zcnt >= p.min_touches)
    ids = np.flatnonzero(keep)
    idx = d.index
    centre = zsum[ids] / zcnt[ids]
    t = pd.DataFrame({
        "zone_id": ids.astype(np.int64),
        "centre": centre,
        "low": zmin[ids] - zpad[ids],
        "high": zmax[ids] + zpad[ids],
        "touches": zcnt[ids],
        "first_touch": idx[zfirst[ids]],
        "last_touch": idx[zlast[ids]],
        "first_touch_bar": zfirst[ids],
        "last_touch_bar": zlast[ids],
        "origin": [ORIGIN_NAMES[int(k)] for k in zkind[ids]],
        "volume": zvol[ids],
        "strength": zcnt[ids] * 0.5 ** ((n - 1 - zlast[ids]) / half_life),
        "flip": pd.Series([FLIP_NAMES[int(f)] for f in zflip[ids]], dtype=object),
        "flip_time": pd.Series(
            [idx[int(b)] if b >= 0 else pd.NaT for b in zflipbar[ids]], dtype=idx.dtype
        ) if isinstance(idx, pd.DatetimeIndex) else zflipbar[ids],
    })
    if round_levels is not None:
        t = pd.concat([t, _round_rows(d, piv, atr, p, float(round_levels), half_life)],
                      ignore_index=True)
    t["role"] = np.where(t["centre"] <= close, "support", "resistance")
    t["distance_pct"] = (t["centre"] - close) / close * 100.0
    t = t.sort_values(["centre", "zone_id"], kind="stable").reset_index(drop=True)
    return Levels(table=t, as_of=idx[-1], close=close, params=p)


def _round_rows(d: pd.DataFrame, piv, atr: np.ndarray, p: LevelParams, step: float,
                half_life: float) -> pd.DataFrame:
    lo_all, hi_all = float(d["low"].min()), float(d["high"].max())
    k0, k1 = math.ceil(lo_all / step), math.floor(hi_all / step)
    prices = np.arange(k0, k1 + 1, dtype=np.float64) * step
    prices = prices[prices > 0]
    close = float(d["close"].iloc[-1])
    pad = close * p.band_pct / 100.0 if p.band_pct is not None else float(atr[-1]) * p.band_atr
    hb, lb = piv
    pb = np.concatenate([hb, lb])
    pv = np.concatenate([d["high"].to_numpy(dtype=np.float64)[hb],
                         d["low"].to_numpy(dtype=np.float64)[lb]])
    n = len(d)
    rows = []
    for x in prices:
        inside = np.abs(pv - x) <= pad
        touches = int(inside.sum())
        last = int(pb[inside].max()) if touches else -1
        rows.append({
            "zone_id": -1, "centre": x, "low": x - pad, "high": x + pad, "touches": touches,
            "first_touch": d.index[int(pb[inside].min())] if touches else pd.NaT,
            "last_touch": d.index[last] if touches else pd.NaT,
            "first_touch_bar": int(pb[inside].min()) if touches else -1,
            "last_touch_bar": last, "origin": "round", "volume": 0.0,
            "strength": touches * 0.5 ** ((n - 1 - last) / half_life) if touches else 0.0,
            "flip": None, "flip_time": pd.NaT,
        })
    cols = ["zone_id", "centre", "low", "high", "touches", "first_touch", "last_touch",
            "first_touch_bar", "last_touch_bar", "origin", "volume", "strength", "flip",
            "flip_time"]
    return pd.DataFrame(rows, columns=cols)
