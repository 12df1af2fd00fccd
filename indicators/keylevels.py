"""Levels that matter: consolidated support/resistance zones ranked by significance, causal.

The zones of :mod:`indicators.levels` are many (about a hundred on eight years of daily bars),
and most are minor: a trader's targets sit at the few that matter. This module takes the zone set
known at a bar (the engine's snapshot as of that bar's close, see :mod:`indicators._engine`) and

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

Everything at bar ``t`` uses bars ``0..t`` only: the zone snapshot is the engine state at the
close of ``t``, ATR and relative volume are trailing, the EMA uses completed weeks only and a
weekly pivot counts from the first bar that closes at or after the end of its confirming week
(tested by truncation in ``tests/test_keylevels.py``).

How the defaults were chosen (not on any single event): ``major_score = 7`` is the score reached
by about the top quarter of the consolidated zones alive on a day, over the full history of both
shipped daily files (Binance 2017-2026: 31 %, Bitstamp 2011-2025: 25 % of the zone-days), so a
zone needs more than touches alone to be major; ``max_width_atr = 1.5`` and ``merge_atr = 0.1``
keep consolidated zones narrow enough to aim at (wider caps merged whole price decades on those
files); the rest are the conventional values from the field notes (200-week EMA within 3 %,
round numbers, swing pivots of 4 weeks each side on weekly bars).
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pandas as pd

from data import jit
from data.frame import DataError, timeframe_length, timeframe_of, to_canonical
from data.resample import period_start
from indicators.htf import weekly_ema
from indicators.levels import (
    FLIP_NAMES,
    SNAPSHOT_ROWS_LIMIT,
    LevelParams,
    cut_frame,
    run_engine,
    takes_level_params,
)
from indicators.pivots import pivot_arrays

__all__ = ["KEY_LEVEL_COLUMNS", "SCORE_RULES", "key_levels", "level_history", "next_level",
           "weekly_ema_or_nan", "weekly_swing_levels"]

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
    keys = period_start(df.index, "1w")
    wk = pd.DataFrame({"high": df["high"].to_numpy(), "low": df["low"].to_numpy()},
                      index=keys).groupby(level=0, sort=True).agg({"high": "max", "low": "min"})
    piv = pivot_arrays(wk["high"].to_numpy(np.float64), wk["low"].to_numpy(np.float64), bars,
                       bars)
    week_end = (wk.index + pd.Timedelta(weeks=1)).as_unit("ns").asi8
    bar_close = (df.index + bar).as_unit("ns").asi8
    rows = []
    for arr, kind in ((piv.pivot_high, "high"), (piv.pivot_low, "low")):
        j = np.flatnonzero(~np.isnan(arr))  # weekly position where the pivot is confirmed
        known = np.searchsorted(bar_close, week_end[j], side="left")
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
        ``flip_bar``. Rows of bar ``t`` depend on ``df[: t + 1]`` only.

    Raises:
        DataError: the zone sets at ``bars`` would exceed
            :data:`indicators.levels.SNAPSHOT_ROWS_LIMIT` rows (long intraday data with many
            bars asked for), naming the bar where they did, instead of exhausting the memory.
    """
    df = to_canonical(df)
    mask = _as_mask(bars, len(df))
    out, atr, _piv = run_engine(df, params, False, snap=mask, snap_limit=SNAPSHOT_ROWS_LIMIT)
    if out[10] >= 0:
        over = int(out[10])
        raise DataError(
            f"too many zones to keep the level history at {int(mask.sum()):,} bars: more than "
            f"{SNAPSHOT_ROWS_LIMIT:,} zone rows by bar {over:,} of {len(df):,}",
            source=df.attrs.get("source"), timestamp=df.index[over],
            hint="ask for the levels at fewer bars, use coarser bars (one-minute data "
                 "resampled to 1h: --timeframe 1h), or, in the breakdown strategy, targets that "
                 "need no level history (target='r_multiple', on the command line "
                 "-p target=r_multiple)")
    sf, si = out[8], out[9]
    if len(si) == 0:
        z = pd.DataFrame({c: pd.Series([], dtype=float) for c in KEY_LEVEL_COLUMNS})
        return z.astype({"bar": np.int64, "major": bool, "flip": object})
    z = _consolidate(sf, si, atr, df["close"].to_numpy(dtype=np.float64), params)
    wema = weekly_ema_or_nan(df, params.wema_period).to_numpy(dtype=np.float64)
    _score(z, wema, weekly_swing_levels(df, params.weekly_bars), params)
    z["time"] = df.index[z["bar"].to_numpy()]
    z["flip"] = pd.Series(np.array([FLIP_NAMES[int(f)] for f in z["flip"]], dtype=object),
                          index=z.index, dtype=object)
    z = z.sort_values(["bar", "centre"], kind="stable").reset_index(drop=True)
    return z[list(KEY_LEVEL_COLUMNS)]


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
    if at not in ("edge", "centre"):
        raise ValueError(f"at must be 'edge' or 'centre', got {at!r}")
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
    cols = ("centre", "low", "high", "score", "confluence", "htf", "round_number", "flip")
    out = pd.DataFrame({"level": level})
    for c in cols:
        if chosen is None:
            out[c] = np.nan
        else:
            v = chosen[c].to_numpy()
            out[c] = np.where(pick >= 0, v, None if v.dtype == object else (
                False if v.dtype == bool else np.nan))
    return out
