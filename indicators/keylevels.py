"""Levels that matter: consolidated support/resistance zones ranked by significance, causal.

The zones of :mod:`indicators.levels` are many (about a hundred on eight years of daily bars),
and most are minor: a trader's targets sit at the few that matter. This module takes the zone set
known at a bar (the engine's zone set as of that bar's close, replayed from its zone log: see
:mod:`indicators._engine` and :func:`zone_log`) and

1. **consolidates** it: zones whose bands overlap or lie within ``merge_atr`` x ATR of each other
   become one zone (band = union, touches = sum, centre = touch-weighted mean), never wider than
   ``max_width_atr`` x ATR (a chain of neighbours is cut there);
2. **scores** each consolidated zone with points a trader would count (:data:`SCORE_RULES`):

   ============================  ======  ===============================================
   evidence                      points  rule
   ============================  ======  ===============================================
   touches                       1 .. 4  one per member pivot, at most 4
   age                           1       touches span at least ``age_bars`` bars
   volume at the touches         1       mean relative volume of the touch bars (volume
                                         over its ``volume_bars``-bar mean) >= ``heavy_volume``
   200-week EMA confluence       2       the closed-week EMA (``wema_period`` weeks) within
                                         ``confluence_pct`` % of the band
   round number                  1       a multiple of the price's power of ten inside the
                                         band (10,000s at 70,000; 1,000s at 7,000)
   higher timeframe              2       a weekly swing pivot (``weekly_bars`` weeks each
                                         side, confirmed by this bar) inside the band
   ============================  ======  ===============================================

3. marks zones scoring at least ``major_score`` as **major**: the level set a target is chosen
   from. The full set stays available next to it.

Two ways to read it: :func:`level_history` materialises the ranked zones at the bars asked for
(rows = bars x live zones: gigabytes on a million minute bars asked at every candidate bar, so it
is refused beyond :data:`indicators.levels.SNAPSHOT_ROWS_LIMIT` rows), and
:func:`level_targets` answers the strategies' question (the nearest qualifying zone beyond a
price) from the same :class:`ZoneLog`, ranking each query bar's zones in turn and keeping none,
with the same answer bit for bit as :func:`next_level` on the history (tested).

Everything at bar ``t`` uses bars ``0..t`` only: the zone set is the engine state at the
close of ``t`` (log rows up to ``t``), ATR and relative volume are trailing, the EMA uses
completed weeks only and a weekly pivot counts from the first bar that closes at or after the
end of its confirming week (tested by truncation in ``tests/test_keylevels.py``).

How the defaults were chosen (not on any single event): ``major_score = 7`` is the score reached
by about the top quarter of the consolidated zones alive on a day, over the full history of both
shipped daily files (Binance 2017-2026: 31 %, Bitstamp 2011-2025: 25 % of the zone-days), so a
zone needs more than touches alone to be major; ``max_width_atr = 1.5`` and ``merge_atr = 0.1``
keep consolidated zones narrow enough to aim at (wider caps merged whole price decades on those
files); the rest are the conventional values from the field notes (200-week EMA within 3 %,
round numbers, swing pivots of 4 weeks each side on weekly bars).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import pandas as pd

from data import jit
from data.frame import DataError, timeframe_length, timeframe_of, to_canonical
from data.resample import bin_starts, epoch_ns
from indicators.flips import FlipResult
from indicators.htf import weekly_ema
from indicators.levels import (
    FLIP_NAMES,
    SNAPSHOT_ROWS_LIMIT,
    LevelParams,
    cut_frame,
    run_engine,
    takes_level_params,
)
from indicators.memo import memoised
from indicators.pivots import pivot_arrays

__all__ = ["KEY_LEVEL_COLUMNS", "SCORE_RULES", "ZoneLog", "key_levels", "level_history",
           "level_targets", "next_level", "weekly_ema_or_nan", "weekly_swing_levels", "zone_log"]

#: Points per kind of evidence (see the module docstring).
SCORE_RULES: dict[str, float] = {"touch": 1.0, "max_touch_points": 4.0, "age": 1.0,
                                 "volume": 1.0, "wema": 2.0, "round": 1.0, "htf": 2.0}

#: Columns of :func:`level_history` / :func:`key_levels` (one row per consolidated zone).
KEY_LEVEL_COLUMNS = (
    "bar", "time", "centre", "low", "high", "touches", "zones", "first_touch_bar",
    "last_touch_bar", "volume", "rel_volume", "wema", "confluence", "round_number", "htf",
    "score", "major", "flip", "flip_bar",
)


def _bar_length(df: pd.DataFrame) -> pd.Timedelta | None:
    """The frame's nominal bar length (:func:`data.frame.timeframe_of`; None if it cannot be
    told: fewer than two bars and no ``timeframe`` attribute)."""
    if len(df) < 2 and not df.attrs.get("timeframe"):
        return None
    return timeframe_length(timeframe_of(df))


@memoised  # the strategies' frames and zone logs of one job or audit cut: computed once
def weekly_ema_or_nan(df: pd.DataFrame, period: int = 200) -> pd.Series:
    """Closed-mode weekly EMA on ``df``'s bars, or all-NaN for bars longer than a week (monthly
    data cannot give a weekly EMA) and for frames too short to seed it (NaN, not an error)."""
    name = f"wema{period}"
    bar = _bar_length(df)
    if len(df) == 0 or bar is None or bar > pd.Timedelta(weeks=1):
        return pd.Series(np.nan, index=df.index, name=name)
    return weekly_ema(df, period=period, mode="closed").rename(name)


def weekly_swing_levels(df: pd.DataFrame, bars: int = 2) -> pd.DataFrame:
    """Swing highs and lows of the weekly bars (Monday-open weeks), stamped where they are known.

    A weekly pivot with ``bars`` weeks each side (:func:`indicators.pivots.pivot_arrays` on the
    weekly highs/lows) is known once its ``bars``-th following week has ended: it is stamped on the
    first input bar whose close time is at or after that week's end. Pivots not yet known at the
    last bar are left out; bars of a week or longer give no rows.

    Returns:
        A DataFrame with ``price`` (quote currency), ``kind`` (``"high"``/``"low"``) and
        ``known_bar`` (position in ``df`` of the bar from which the level exists), by ``known_bar``.
    """
    empty = pd.DataFrame({"price": pd.Series([], dtype=float), "kind": pd.Series([], dtype=object),
                          "known_bar": pd.Series([], dtype=np.int64)})
    bar = _bar_length(df)
    if len(df) == 0 or bar is None or bar >= pd.Timedelta(weeks=1):
        return empty
    # Weekly highs and lows from the weeks' first bars: the same values as a groupby on a
    # weekly DatetimeIndex (max/min skipping NaN), without it or any other per-bar temporary
    # (~48 bytes per bar at the peak of a 1M-bar run with level targets, issue 17).
    first, week_end = bin_starts(df.index, "1w")
    week_end += pd.Timedelta(weeks=1).value
    high = np.fmax.reduceat(df["high"].to_numpy(np.float64), first)
    low = np.fmin.reduceat(df["low"].to_numpy(np.float64), first)
    piv = pivot_arrays(high, low, bars, bars)
    opens = epoch_ns(df.index)
    rows = []
    for arr, kind in ((piv.pivot_high, "high"), (piv.pivot_low, "low")):
        j = np.flatnonzero(~np.isnan(arr))  # weekly position where the pivot is confirmed
        # the first bar whose close (open + bar) is at or after the week's end
        known = np.searchsorted(opens, week_end[j] - bar.value, side="left")
        ok = known < len(df)
        rows.append(pd.DataFrame({"price": arr[j][ok], "kind": kind,
                                  "known_bar": known[ok].astype(np.int64)}))
    out = pd.concat([empty, *rows], ignore_index=True)
    return out.sort_values("known_bar", kind="stable").reset_index(drop=True)


@nb.njit(cache=True)
def _groups(bar, low, high, gap, maxw):  # pragma: no cover - compiled
    """Consolidation groups of snapshot rows sorted by (bar, low): a row joins the current group
    when it is on the same bar, starts within ``gap`` of the group's top and keeps the group no
    wider than ``maxw`` (both per row's bar)."""
    n = bar.shape[0]
    g = np.empty(n, np.int64)
    cur = -1
    glo = 0.0
    ghi = 0.0
    for i in range(n):
        if (cur >= 0 and bar[i] == bar[i - 1] and low[i] <= ghi + gap[i]
                and max(ghi, high[i]) - glo <= maxw[i]):
            ghi = max(ghi, high[i])
        else:
            cur += 1
            glo = low[i]
            ghi = high[i]
        g[i] = cur
    return g


def _round_inside(low: np.ndarray, high: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """True where a round number (a multiple of the centre's power of ten) is in the band."""
    with np.errstate(invalid="ignore", divide="ignore"):
        step = 10.0 ** np.floor(np.log10(np.where(centre > 0, centre, np.nan)))
        return np.floor(high / step) * step >= low


def _consolidate(sf: np.ndarray, si: np.ndarray, atr: np.ndarray, close: np.ndarray,
                 p: LevelParams) -> pd.DataFrame:
    """Merge each bar's snapshot zones (engine rows) into consolidated zones."""
    bar, low, high = si[:, 0], sf[:, 1], sf[:, 2]
    order = np.lexsort((low, bar))  # by bar, then band low
    bar, low, high = bar[order], low[order], high[order]
    centre, touches = sf[order, 0], si[order, 2]
    # the bar's ATR as a fraction of its close, applied at each zone's own price: volatility in
    # percent, so zones far below (years-old, cheaper) are not merged by today's dollar ATR
    a = atr[bar] / close[bar] * centre
    grp = jit.call(_groups, bar, low, high, p.merge_atr * a, p.max_width_atr * a, work=len(bar))
    start = np.flatnonzero(np.r_[True, grp[1:] != grp[:-1]])  # rows are grouped contiguously

    def total(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(x, start)

    flip_bar = si[order, 7]
    # the consolidated zone's flip is that of its most recently flipped member
    latest = np.lexsort((flip_bar, grp))[np.r_[start[1:], len(grp)] - 1]
    n_touch = total(touches)
    return pd.DataFrame({
        "bar": bar[start], "low": np.minimum.reduceat(low, start),
        "high": np.maximum.reduceat(high, start), "touches": n_touch,
        "zones": np.diff(np.r_[start, len(grp)]),
        "first_touch_bar": np.minimum.reduceat(si[order, 3], start),
        "last_touch_bar": np.maximum.reduceat(si[order, 4], start),
        "volume": total(sf[order, 3]), "flip": si[order, 6][latest], "flip_bar": flip_bar[latest],
        "centre": total(centre * touches) / n_touch, "rel_volume": total(sf[order, 4]) / n_touch,
    })


def _score(z: pd.DataFrame, wema: np.ndarray, weekly: pd.DataFrame, p: LevelParams) -> None:
    """Add the evidence columns, ``score`` and ``major`` to consolidated zones ``z`` (in place)."""
    b = z["bar"].to_numpy()
    lo, hi = z["low"].to_numpy(), z["high"].to_numpy()
    w = wema[b]
    z["wema"] = w
    with np.errstate(invalid="ignore"):
        gap = np.maximum(np.maximum(lo - w, w - hi), 0.0)
        z["confluence"] = (gap <= p.confluence_pct / 100.0 * w) & (w > 0)
    z["round_number"] = _round_inside(lo, hi, z["centre"].to_numpy())
    htf = np.zeros(len(z), dtype=bool)
    for price, known in zip(weekly["price"].to_numpy(), weekly["known_bar"].to_numpy(),
                            strict=True):
        htf |= (b >= known) & (lo <= price) & (price <= hi)
    z["htf"] = htf
    r = SCORE_RULES
    score = np.minimum(z["touches"].to_numpy() * r["touch"], r["max_touch_points"])
    score = score + r["age"] * ((z["last_touch_bar"] - z["first_touch_bar"]).to_numpy()
                                >= p.age_bars)
    score = score + r["volume"] * (z["rel_volume"].to_numpy() >= p.heavy_volume)
    score = score + r["wema"] * z["confluence"].to_numpy() + r["round"] * z[
        "round_number"].to_numpy() + r["htf"] * htf
    z["score"] = score.astype(np.float64)
    z["major"] = z["score"] >= p.major_score


def _as_mask(bars: object, n: int) -> np.ndarray:
    if isinstance(bars, np.ndarray) and bars.dtype == bool:
        if len(bars) != n:
            raise ValueError(f"bars mask has {len(bars)} values, expected {n}")
        return bars
    pos = np.asarray(bars, dtype=np.int64).reshape(-1)
    if pos.size and (pos.min() < 0 or pos.max() >= n):
        raise ValueError(f"bar positions must be in [0, {n}), got {pos.min()}..{pos.max()}")
    mask = np.zeros(n, dtype=bool)
    mask[pos] = True
    return mask


@dataclass(frozen=True)
class ZoneLog:
    """The zone set of a frame at every bar, stored once as a log of changes (:func:`zone_log`).

    ``lf``/``li``: the engine's zone log (:mod:`indicators._engine`), one row per zone changed on
    a bar, in bar order: floats ``centre, low, high, volume, sum of relative volumes`` and ints
    ``bar, zone, alive, touches, first_touch_bar, last_touch_bar, kind, flip, flip_bar``;
    replaying the rows up to bar ``t`` gives the zones known at the close of ``t``. ``atr``,
    ``close`` and ``wema`` (closed-week EMA, NaN where unknown) per bar, in quote currency;
    ``weekly_price``/``weekly_known`` the weekly swing pivots and the bar from which each is
    known (ascending); ``n_zones`` the number of zone ids; ``params`` the level parameters.
    """

    lf: np.ndarray
    li: np.ndarray
    atr: np.ndarray
    close: np.ndarray
    wema: np.ndarray
    weekly_price: np.ndarray
    weekly_known: np.ndarray
    n_zones: int
    params: LevelParams


@takes_level_params("zones", "flips", "rank")
def zone_log(df: pd.DataFrame, *, flip_result: FlipResult | None = None,
             wema: np.ndarray | None = None, params: LevelParams) -> ZoneLog:
    """The zones of ``df`` at every bar as one :class:`ZoneLog` (memory grows with the pivots and
    flips, not with bars x zones): what :func:`level_history` and :func:`level_targets` read.
    Everything the log says about bar ``t`` depends on ``df[: t + 1]`` only.

    ``flip_result``: :func:`indicators.flips.flips` of the same ``df`` and zone/flip parameters,
    whose engine run already made the log (the strategies pass it: one S/R engine run instead of
    two); ValueError when it was computed on other bars or parameters. ``wema``: the
    ``weekly_ema_or_nan(df, params.wema_period)`` values (float64, price units) when the caller
    has them already (the strategies' signal columns do: not worked out twice); ValueError
    unless one per bar.
    """
    df = to_canonical(df)
    if flip_result is not None and flip_result.zone_changes:
        flip_result.check(df.index, params)
        lf, li, n_zones, atr = flip_result.zone_changes
    else:
        out, atr, _piv = run_engine(df, params, False, want_log=True)
        lf, li, n_zones = out.log_f, out.log_i, len(out.zones[0])
    if wema is None:
        wema = weekly_ema_or_nan(df, params.wema_period).to_numpy(dtype=np.float64)
    elif np.shape(wema) != (len(df),):
        raise ValueError(f"wema has shape {np.shape(wema)}, expected ({len(df)},): one value "
                         "per bar of df")
    # writeable like the one made here (numba compiles its kernels again for read-only arrays)
    wema = np.require(wema, np.float64, ["C", "W"])
    wk = weekly_swing_levels(df, params.weekly_bars)
    return ZoneLog(lf=lf, li=li, atr=np.ascontiguousarray(atr, dtype=np.float64),
                   close=df["close"].to_numpy(dtype=np.float64), wema=wema,
                   weekly_price=wk["price"].to_numpy(dtype=np.float64),
                   weekly_known=wk["known_bar"].to_numpy(dtype=np.int64),
                   n_zones=int(n_zones), params=params)


@nb.njit(cache=True)
def _before(lf, r1, z1, r2, z2):  # pragma: no cover - compiled
    """Row ``r1`` (zone ``z1``) sorts before row ``r2`` (zone ``z2``): by band low, then centre
    (the engine's order), then zone id."""
    if lf[r1, 1] != lf[r2, 1]:
        return lf[r1, 1] < lf[r2, 1]
    if lf[r1, 0] != lf[r2, 0]:
        return lf[r1, 0] < lf[r2, 0]
    return z1 < z2


@nb.njit(cache=True)
def _slot(lf, act, nact, cur, r, z):  # pragma: no cover - compiled
    """First slot of ``act[:nact]`` whose zone does not sort before row ``r`` of zone ``z``."""
    lo = 0
    hi = nact
    while lo < hi:
        mid = (lo + hi) >> 1
        y = act[mid]
        if _before(lf, cur[y], y, r, z):
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True)
def _replay(lf, li, r, t, act, nact, cur, min_touches):  # pragma: no cover - compiled
    """Apply the log rows from ``r`` with bar <= ``t`` to the live set ``act[:nact]`` (zone ids
    by :func:`_before`; ``cur[z]``: z's row, -1 when not in the set). Returns (next row, nact)."""
    nrow = li.shape[0]
    while r < nrow and li[r, 0] <= t:
        z = li[r, 1]
        if cur[z] >= 0:  # drop the zone's previous state
            for j in range(_slot(lf, act, nact, cur, cur[z], z), nact - 1):
                act[j] = act[j + 1]
            nact -= 1
            cur[z] = -1
        if li[r, 2] == 1 and li[r, 3] >= min_touches:
            lo = _slot(lf, act, nact, cur, r, z)
            for j in range(nact, lo, -1):
                act[j] = act[j - 1]
            act[lo] = z
            nact += 1
            cur[z] = r
        r += 1
    return r, nact


@nb.njit(cache=True)
def _live_counts(lf, li, bars, n_zones, min_touches):  # pragma: no cover - compiled
    """Zones (with at least ``min_touches``) live at each of the ascending ``bars``."""
    act = np.empty(n_zones, np.int64)
    cur = np.full(n_zones, -1, np.int64)
    nact = 0
    r = 0
    out = np.zeros(bars.shape[0], np.int64)
    for k in range(bars.shape[0]):
        r, nact = _replay(lf, li, r, bars[k], act, nact, cur, min_touches)
        out[k] = nact
    return out


@nb.njit(cache=True)
def _live_rows(lf, li, bars, total, n_zones, min_touches):  # pragma: no cover - compiled
    """The live zones at each of the ascending ``bars`` as rows (``total`` in all), by bar then
    band low: floats centre, low, high, volume, relative-volume sum; ints bar, zone, touches,
    first, last, kind, flip, flip bar."""
    act = np.empty(n_zones, np.int64)
    cur = np.full(n_zones, -1, np.int64)
    nact = 0
    r = 0
    sf = np.empty((total, 5))
    si = np.empty((total, 8), np.int64)
    ns = 0
    for k in range(bars.shape[0]):
        r, nact = _replay(lf, li, r, bars[k], act, nact, cur, min_touches)
        for j in range(nact):
            z = act[j]
            q = cur[z]
            for c in range(5):
                sf[ns, c] = lf[q, c]
            si[ns, 0] = bars[k]
            si[ns, 1] = z
            for c in range(2, 8):
                si[ns, c] = li[q, c + 1]
            ns += 1
    return sf, si


@nb.njit(cache=True)
def _pairwise(a, s, n):  # pragma: no cover - compiled
    """numpy's pairwise float sum of ``a[s:s + n]`` (as ``np.add.reduce`` adds a contiguous
    array), so the consolidated figures equal :func:`_consolidate`'s bit for bit."""
    if n < 8:
        res = -0.0
        for i in range(s, s + n):
            res += a[i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = a[s], a[s + 1], a[s + 2], a[s + 3]
        r4, r5, r6, r7 = a[s + 4], a[s + 5], a[s + 6], a[s + 7]
        i = 8
        m = n - n % 8
        while i < m:
            r0 += a[s + i]
            r1 += a[s + i + 1]
            r2 += a[s + i + 2]
            r3 += a[s + i + 3]
            r4 += a[s + i + 4]
            r5 += a[s + i + 5]
            r6 += a[s + i + 6]
            r7 += a[s + i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[s + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise(a, s, n2) + _pairwise(a, s + n2, n - n2)


@nb.njit(cache=True)
def _segment_sum(a, s, n):  # pragma: no cover - compiled
    """``np.add.reduceat``'s sum of one segment: its first value plus the pairwise sum of the
    rest (short segments summed here: most zones are a group of their own)."""
    if n <= 8:  # the rest has fewer than 8 values: a plain sum from -0.0, as _pairwise
        res = -0.0
        for i in range(s + 1, s + n):
            res += a[i]
        return a[s] + res
    return a[s] + _pairwise(a, s + 1, n - 1)


@nb.njit(cache=True)
def _group_score(touches, first, last, rv, lo, hi, ce, w, known, nk, rank, rules,
                 min_score):  # pragma: no cover - compiled
    """:func:`_score` of one consolidated zone: (score, confluence, htf, round_number, ok) with
    ``ok`` = score >= ``min_score``. With non-negative rules, a zone whose score cannot reach
    ``min_score`` even with the round-number point is rejected before that (a logarithm and a
    power) is computed: then only ``ok`` is meaningful."""
    sc = min(touches * rules[0], rules[1])
    sc = sc + rules[2] * (last - first >= rank[2])
    sc = sc + rules[3] * (rv >= rank[3])
    conf = False
    if w > 0:  # NaN (no closed-week EMA yet): no confluence
        gap = max(max(lo - w, w - hi), 0.0)
        conf = gap <= rank[4] / 100.0 * w
    a = 0
    b = nk
    while a < b:
        mid = (a + b) >> 1
        if known[mid] < lo:
            a = mid + 1
        else:
            b = mid
    htf = a < nk and known[a] <= hi
    if rules[7] > 0 and ((sc + rules[4] * conf) + rules[5]) + rules[6] * htf < min_score:
        return sc, conf, htf, False, False
    rnd = False
    if ce > 0:
        step = 10.0 ** np.floor(np.log10(ce))
        rnd = np.floor(hi / step) * step >= lo
    sc = sc + rules[4] * conf + rules[5] * rnd + rules[6] * htf
    return sc, conf, htf, rnd, sc >= min_score


@nb.njit(cache=True, nogil=True)  # the two sides of a breakdown plan run in threads
def _targets(lf, li, n_zones, min_touches, atr, close, wema, wk_price, wk_known, qbar, qprice,
             qside, qdist, min_score, at_centre, flip_code, rank, rules):  # pragma: no cover
    """For each query (``qbar`` ascending) the nearest consolidated, scored zone beyond the
    price, exactly as :func:`next_level` finds it in :func:`level_history`'s rows, without
    materialising them: the live set is replayed from the log and consolidated on each distinct
    query bar (as :func:`_groups`/:func:`_consolidate`), and zones are scored (as
    :func:`_score`) only as the search reaches them. ``rank``: merge_atr, max_width_atr,
    age_bars, heavy_volume, confluence_pct; ``rules``: the :data:`SCORE_RULES` values and 1.0
    when all are >= 0. Returns per query: found, (level, centre, low, high, score), (confluence,
    htf, round_number), flip code."""
    nq = qbar.shape[0]
    found = np.zeros(nq, np.bool_)
    out_f = np.full((nq, 5), np.nan)
    out_b = np.zeros((nq, 3), np.bool_)
    out_flip = np.zeros(nq, np.int64)
    act = np.empty(n_zones, np.int64)
    cur = np.full(n_zones, -1, np.int64)
    nact = 0
    r = 0
    known = np.empty(wk_price.shape[0])  # weekly pivot prices known by the bar, ascending
    nk = 0
    wi = 0
    xc = np.empty(n_zones)  # centre x touches of the live zones, in order
    xr = np.empty(n_zones)  # their relative-volume sums
    g_start = np.empty(n_zones, np.int64)
    g_lo = np.empty(n_zones)
    g_hi = np.empty(n_zones)
    g_ce = np.empty(n_zones)
    g_touch = np.empty(n_zones, np.int64)
    g_first = np.empty(n_zones, np.int64)
    g_last = np.empty(n_zones, np.int64)
    g_flip = np.empty(n_zones, np.int64)
    g_ok = np.zeros(n_zones, np.int64)  # 0 not scored yet on this bar, 1 passes, -1 fails
    ng = 0
    last_t = -1
    for i in range(nq):
        t = qbar[i]
        if t != last_t:
            last_t = t
            r, nact = _replay(lf, li, r, t, act, nact, cur, min_touches)
            while wi < wk_price.shape[0] and wk_known[wi] <= t:
                x = wk_price[wi]
                j = nk
                while j > 0 and known[j - 1] > x:
                    known[j] = known[j - 1]
                    j -= 1
                known[j] = x
                nk += 1
                wi += 1
            # consolidate the live zones (sorted by band low): the groups of _groups
            scale = atr[t] / close[t]
            ng = 0
            ghi = 0.0
            glo = 0.0
            fbar = -2
            for j in range(nact):
                q = cur[act[j]]
                lo = lf[q, 1]
                hi = lf[q, 2]
                a = scale * lf[q, 0]
                xc[j] = lf[q, 0] * li[q, 3]
                xr[j] = lf[q, 4]
                if j > 0 and lo <= ghi + rank[0] * a and max(ghi, hi) - glo <= rank[1] * a:
                    ghi = max(ghi, hi)
                    g = ng - 1
                    g_lo[g] = min(g_lo[g], lo)
                    g_hi[g] = max(g_hi[g], hi)
                    g_touch[g] += li[q, 3]
                    g_first[g] = min(g_first[g], li[q, 4])
                    g_last[g] = max(g_last[g], li[q, 5])
                    if li[q, 8] >= fbar:  # the most recently flipped member (ties: the last)
                        fbar = li[q, 8]
                        g_flip[g] = li[q, 7]
                else:
                    glo = lo
                    ghi = hi
                    g = ng
                    ng += 1
                    g_start[g] = j
                    g_lo[g] = lo
                    g_hi[g] = hi
                    g_touch[g] = li[q, 3]
                    g_first[g] = li[q, 4]
                    g_last[g] = li[q, 5]
                    fbar = li[q, 8]
                    g_flip[g] = li[q, 7]
            for g in range(ng):
                g_ok[g] = 0
                g_ce[g] = np.nan  # computed when a query needs it
        p = qprice[i]
        d = qdist[i]
        if ng == 0 or not (np.isfinite(p) and np.isfinite(d)):
            continue
        # the nearest qualifying zone: the highest centre below (ties: the later zone in
        # centre order, i.e. the later group) or the lowest above (ties: the earlier group);
        # score only the zones that would improve on the best so far
        best = -1
        short = qside[i] < 0
        for k in range(ng):
            g = ng - 1 - k if short else k
            # cheap exact rejections first: the wrong side of the price (the centre lies in the
            # band, up to rounding: hence the margin), the flip kind, a score out of reach
            if short:
                if g_lo[g] - abs(g_lo[g]) * 1e-9 >= p:
                    continue
            elif g_hi[g] + abs(g_hi[g]) * 1e-9 <= p:
                continue
            if flip_code != 0 and g_flip[g] != flip_code:
                continue
            if g_ok[g] == 0 and rules[7] > 0 and (((((min(g_touch[g] * rules[0], rules[1])
                    + rules[2] * (g_last[g] - g_first[g] >= rank[2])) + rules[3]) + rules[4])
                    + rules[5]) + rules[6]) < min_score:
                g_ok[g] = -1  # cannot score enough even with every other point
            if g_ok[g] == -1:
                continue
            e = g_start[g + 1] if g + 1 < ng else nact
            if g_ce[g] != g_ce[g]:
                g_ce[g] = _segment_sum(xc, g_start[g], e - g_start[g]) / g_touch[g]
            ce = g_ce[g]
            if short:
                edge = ce if at_centre else g_hi[g]
                if not (ce < p and edge <= p - d) or (best >= 0 and ce <= g_ce[best]):
                    continue
            else:
                edge = ce if at_centre else g_lo[g]
                if not (ce > p and edge >= p + d) or (best >= 0 and ce >= g_ce[best]):
                    continue
            if g_ok[g] == 0:
                rv = _segment_sum(xr, g_start[g], e - g_start[g]) / g_touch[g]
                ok = _group_score(g_touch[g], g_first[g], g_last[g], rv, g_lo[g], g_hi[g], ce,
                                  wema[t], known, nk, rank, rules, min_score)[4]
                g_ok[g] = 1 if ok else -1
            if g_ok[g] == 1:
                best = g
        if best >= 0:
            e = g_start[best + 1] if best + 1 < ng else nact
            rv = _segment_sum(xr, g_start[best], e - g_start[best]) / g_touch[best]
            sc, conf, htf, rnd, _ok = _group_score(
                g_touch[best], g_first[best], g_last[best], rv, g_lo[best], g_hi[best],
                g_ce[best], wema[t], known, nk, rank, rules, -np.inf)
            found[i] = True
            ce = g_ce[best]
            out_f[i, 0] = ce if at_centre else (g_hi[best] if short else g_lo[best])
            out_f[i, 1] = ce
            out_f[i, 2] = g_lo[best]
            out_f[i, 3] = g_hi[best]
            out_f[i, 4] = sc
            out_b[i, 0] = conf
            out_b[i, 1] = htf
            out_b[i, 2] = rnd
            out_flip[i] = g_flip[best]
    return found, out_f, out_b, out_flip


@takes_level_params("zones", "flips", "rank")
def level_history(df: pd.DataFrame, bars: object, *, params: LevelParams) -> pd.DataFrame:
    """Consolidated, scored zones as known at the close of each bar in ``bars``.

    Args:
        df: candles (any frame :func:`data.frame.to_canonical` accepts).
        bars: positions in ``df`` or a bool mask (one value per bar).

    Returns:
        One row per consolidated zone and bar (columns :data:`KEY_LEVEL_COLUMNS`), sorted by
        ``bar`` then ``centre``: ``centre``/``low``/``high`` in quote currency, ``touches``
        (member pivots), ``zones`` (engine zones merged), first/last touch positions,
        ``volume`` (sum at the touch bars), ``rel_volume`` (mean relative volume at the touches),
        ``wema`` (the closed-week EMA at the bar), the bool evidence columns ``confluence``,
        ``round_number`` and ``htf``, ``score`` (points, :data:`SCORE_RULES`), ``major``
        (``score >= major_score``), ``flip`` (the latest flip of a member zone, or None) and
        ``flip_bar``. Rows of bar ``t`` depend on ``df[: t + 1]`` only. (To pick targets at
        many bars, :func:`level_targets` answers from the zone log without these rows.)

    Raises:
        DataError: the zone sets at ``bars`` would exceed
            :data:`indicators.levels.SNAPSHOT_ROWS_LIMIT` rows (long intraday data with many
            bars asked for), naming the first bar that does not fit, before any row is made.
    """
    df = to_canonical(df)
    mask = _as_mask(bars, len(df))
    log = zone_log(df, params=params)
    qb = np.flatnonzero(mask).astype(np.int64)
    mt = params.min_touches
    counts = jit.call(_live_counts, log.lf, log.li, qb, log.n_zones, mt, work=len(df))
    total = np.cumsum(counts)
    if len(total) and total[-1] > SNAPSHOT_ROWS_LIMIT:
        over = int(qb[np.searchsorted(total, SNAPSHOT_ROWS_LIMIT, side="right")])
        raise DataError(
            f"too many zones to keep the level history at {len(qb):,} bars: more than "
            f"{SNAPSHOT_ROWS_LIMIT:,} zone rows by bar {over:,} of {len(df):,}",
            source=df.attrs.get("source"), timestamp=df.index[over],
            hint="ask for the levels at fewer bars, use coarser bars (one-minute data "
                 "resampled to 1h: --timeframe 1h), or pick targets with level_targets "
                 "(the strategies do: it needs no level history)")
    sf, si = jit.call(_live_rows, log.lf, log.li, qb, int(total[-1]) if len(total) else 0,
                      log.n_zones, mt, work=len(df))
    if len(si) == 0:
        z = pd.DataFrame({c: pd.Series([], dtype=float) for c in KEY_LEVEL_COLUMNS})
        return z.astype({"bar": np.int64, "major": bool, "flip": object})
    z = _consolidate(sf, si, log.atr, log.close, params)
    _score(z, log.wema, pd.DataFrame({"price": log.weekly_price, "known_bar": log.weekly_known}),
           params)
    z["time"] = df.index[z["bar"].to_numpy()]
    z["flip"] = pd.Series(np.array([FLIP_NAMES[int(f)] for f in z["flip"]], dtype=object),
                          index=z.index, dtype=object)
    z = z.sort_values(["bar", "centre"], kind="stable").reset_index(drop=True)
    return z[list(KEY_LEVEL_COLUMNS)]


_FLIP_CODES = {name: code for code, name in FLIP_NAMES.items() if name is not None}
_PICK_COLUMNS = ("centre", "low", "high", "score", "confluence", "htf", "round_number", "flip")


def _check_pick(at: str, flip: str | None) -> None:
    if at not in ("edge", "centre"):
        raise ValueError(f"at must be 'edge' or 'centre', got {at!r}")
    if flip is not None and flip not in _FLIP_CODES:
        raise ValueError(f"flip must be None or one of {', '.join(_FLIP_CODES)}, got {flip!r}")


def level_targets(zones: ZoneLog, bar: np.ndarray, price: np.ndarray, side: np.ndarray,
                  min_distance: np.ndarray, min_score: float, at: str = "edge",
                  flip: str | None = None) -> pd.DataFrame:
    """:func:`next_level` answered from a :class:`ZoneLog`, without the level history.

    The same queries, rules and result as ``next_level(level_history(df, bar), bar, ...)``
    (tested equal), but the consolidated, scored zone set is built on each distinct query bar in
    turn and dropped: memory grows with the zones, not with bars x zones (1M one-minute bars:
    the breakdown's ~67M history rows are never made).

    Returns:
        One row per query (in the given order): ``level`` (the zone price, NaN when none
        qualifies), ``centre``, ``low``, ``high``, ``score``, ``confluence``, ``htf``,
        ``round_number`` and ``flip`` of the chosen zone.
    """
    _check_pick(at, flip)
    bar = np.asarray(bar, dtype=np.int64).reshape(-1)
    n = len(zones.close)
    if bar.size and (bar.min() < 0 or bar.max() >= n):
        raise ValueError(f"bar positions must be in [0, {n}), got {bar.min()}..{bar.max()}")
    order = np.argsort(bar, kind="stable")
    p = zones.params
    rank = np.array([p.merge_atr, p.max_width_atr, p.age_bars, p.heavy_volume, p.confluence_pct],
                    dtype=np.float64)
    r = SCORE_RULES
    rules = np.array([r["touch"], r["max_touch_points"], r["age"], r["volume"], r["wema"],
                      r["round"], r["htf"], 0.0], dtype=np.float64)
    rules[7] = float((rules[:7] >= 0).all())  # the early rejection needs points >= 0
    found, f, b, fl = jit.call(
        _targets, zones.lf, zones.li, zones.n_zones, p.min_touches, zones.atr, zones.close,
        zones.wema, zones.weekly_price, zones.weekly_known, bar[order],
        np.asarray(price, dtype=np.float64).reshape(-1)[order],
        np.asarray(side, dtype=np.int64).reshape(-1)[order],
        np.asarray(min_distance, dtype=np.float64).reshape(-1)[order], float(min_score),
        at == "centre", _FLIP_CODES.get(flip, 0), rank, rules, work=n)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    found, f, b, fl = found[back], f[back], b[back], fl[back]
    flips = np.array([FLIP_NAMES[int(c)] for c in fl], dtype=object)
    return pd.DataFrame({"level": f[:, 0], "centre": f[:, 1], "low": f[:, 2], "high": f[:, 3],
                         "score": f[:, 4], "confluence": b[:, 0], "htf": b[:, 1],
                         "round_number": b[:, 2],
                         "flip": np.where(found, flips, None).astype(object)})


@takes_level_params("zones", "flips", "rank")
def key_levels(df: pd.DataFrame, *, at: object = None, major_only: bool = False,
               params: LevelParams) -> pd.DataFrame:
    """The consolidated, ranked zones known at bar ``at`` (default: the last bar).

    ``at`` is a timestamp, date string or integer position; the frame is cut there first.
    Returns the :func:`level_history` rows of that bar plus ``role`` (``support`` when the
    centre is at or below the close, else ``resistance``) and ``distance_pct`` (centre vs close,
    % of the close); only the major ones with ``major_only``. Sorted by centre.
    """
    d = cut_frame(to_canonical(df), at)
    if d.empty:
        raise DataError("cannot compute levels on an empty frame")
    z = level_history(d, [len(d) - 1], params=params)
    close = float(d["close"].iloc[-1])
    z["role"] = np.where(z["centre"] <= close, "support", "resistance")
    z["distance_pct"] = (z["centre"] - close) / close * 100.0
    if major_only:
        z = z[z["major"]].reset_index(drop=True)
    return z


def next_level(history: pd.DataFrame, bar: np.ndarray, price: np.ndarray, side: np.ndarray,
               min_distance: np.ndarray, min_score: float, at: str = "edge",
               flip: str | None = None) -> pd.DataFrame:
    """For each query, the nearest zone beyond ``price`` by at least ``min_distance``.

    Query ``i`` looks at the zones of ``history`` (from :func:`level_history`) on bar
    ``bar[i]`` scoring at least ``min_score``: below the price for ``side[i] = -1`` (a short's
    target), above for ``+1``. The zone's price is its near edge (``at="edge"``: the band's high
    below the price, its low above it: where the level starts to act) or its ``"centre"``; it must
    be at least ``min_distance[i]`` (quote currency) from ``price[i]``. ``flip`` keeps only zones
    whose latest flip is that one (``"support_to_resistance"`` or ``"resistance_to_support"``).

    Returns:
        A DataFrame with one row per query: ``level`` (the zone price, NaN when none qualifies),
        ``centre``, ``low``, ``high``, ``score``, ``confluence``, ``htf``, ``round_number`` and
        ``flip`` of the chosen zone.
    """
    _check_pick(at, flip)
    bar = np.asarray(bar, dtype=np.int64)
    price = np.asarray(price, dtype=np.float64)
    side = np.asarray(side, dtype=np.int64)
    dist = np.asarray(min_distance, dtype=np.float64)
    nq = len(bar)
    pick = np.full(nq, -1, dtype=np.int64)
    level = np.full(nq, np.nan)
    keep = history["score"] >= min_score
    if flip is not None:
        keep &= history["flip"] == flip
    h = history[keep]
    hb = h["bar"].to_numpy()
    lo, hi, ce = (h[c].to_numpy() for c in ("low", "high", "centre"))
    rows = np.arange(len(h))
    start = np.searchsorted(hb, bar, side="left")
    stop = np.searchsorted(hb, bar, side="right")
    for i in range(nq):
        s, e = start[i], stop[i]
        if s == e or not (np.isfinite(price[i]) and np.isfinite(dist[i])):
            continue
        if side[i] < 0:
            edge = hi[s:e] if at == "edge" else ce[s:e]
            ok = np.flatnonzero((ce[s:e] < price[i]) & (edge <= price[i] - dist[i]))
            j = ok[-1] if ok.size else -1  # zones are sorted by centre: the last is nearest
        else:
            edge = lo[s:e] if at == "edge" else ce[s:e]
            ok = np.flatnonzero((ce[s:e] > price[i]) & (edge >= price[i] + dist[i]))
            j = ok[0] if ok.size else -1
        if j >= 0:
            pick[i] = rows[s + j]
            level[i] = edge[j]
    chosen = h.iloc[np.maximum(pick, 0)].reset_index(drop=True) if len(h) else None
    out = pd.DataFrame({"level": level})
    for c in _PICK_COLUMNS:
        if chosen is None:
            out[c] = np.nan
        else:
            v = chosen[c].to_numpy()
            out[c] = np.where(pick >= 0, v, None if v.dtype == object else (
                False if v.dtype == bool else np.nan))
    return out
