"""Look-ahead (truncation) test harness shared by every indicator, signal and strategy test.

A computation is *causal* when its value at bar t only uses data available at the close of bar t.
The test: for many cut points t, compute on ``df.iloc[:t + 1]`` and check that every value up to
bar t equals (exactly, NaN == NaN) the value computed on the whole frame. A function that peeks
ahead (centred windows, an unshifted weekly close, a pivot stamped on its own bar, normalising by
the whole sample's maximum, ...) changes its past values when the future is cut off, and fails.

Usage::

    from tests.lookahead import assert_causal, ohlc_paths

    assert_causal(lambda d: rsi(d["close"], 14), df)                    # Series / array
    assert_causal(my_frame_func, df, columns=["support", "flip_down"])  # per-bar DataFrame
    assert_causal(flip_events, df, event_time="confirmed_at")           # event table

    @given(ohlc_paths(timeframe="1d", min_bars=30, max_bars=300))
    def test_rsi_is_causal(df):
        assert_causal(lambda d: rsi(d["close"]), df, cut_points=8)

Supported outputs of ``func``: a 1-D/2-D ndarray with one row per bar, a Series or DataFrame
aligned to the input index, a tuple/list/dict of those, or an **event table**: a DataFrame with
one row per event and a confirmation-time column (``event_time``; ``"index"`` for a
DatetimeIndex). For event tables, the events confirmed at or before bar t (time <= the bar's open
timestamp, the convention that an event is stamped with the bar on whose close it becomes known)
must be identical, field by field, in both runs, and the truncated run must not report an event
stamped after its last bar. Event rows must therefore be immutable once confirmed; state that
keeps changing (a level's touch count) belongs in per-bar columns instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from data.frame import INDEX_NAME, parse_timeframe
from data.resample import period_start

__all__ = [
    "CausalityError",
    "assert_causal",
    "calendar_cut_points",
    "default_cut_points",
    "ohlc_frame",
    "ohlc_paths",
]


class CausalityError(AssertionError):
    """A value changed when later bars were removed: the computation looks ahead."""


# --------------------------------------------------------------------------------------------
# Cut points
# --------------------------------------------------------------------------------------------


def calendar_cut_points(index: pd.DatetimeIndex, per_kind: int = 4, seed: int = 0) -> list[int]:
    """Positions where weekly look-ahead bugs show: week ends, week starts and mid-week bars.

    Picks up to ``per_kind`` bars of each kind (spread over the data, with a seeded random
    choice): the last bar of a week (Sunday 23:00 on hourly bars, Sunday on daily bars), the first
    bar of a week (Monday 00:00), and a bar in the middle of a week (Wednesday/Thursday).
    """
    n = len(index)
    if n == 0:
        return []
    rng = np.random.default_rng(seed)
    week = period_start(index, "1w").asi8
    starts = np.flatnonzero(np.r_[True, week[1:] != week[:-1]])
    ends = np.r_[starts[1:] - 1, n - 1]
    mid = np.flatnonzero(np.isin(index.day_of_week, (2, 3)))
    out: list[int] = []
    for pool in (ends, starts, mid):
        if len(pool):
            k = min(per_kind, len(pool))
            out.extend(int(i) for i in rng.choice(pool, size=k, replace=False))
    return out


def default_cut_points(index: pd.DatetimeIndex, n: int = 24, seed: int = 0) -> list[int]:
    """A spread of cut positions: the first bars, the last bars, calendar bars, random bars.

    The very first bars catch off-by-one warm-up bugs, the last bars catch whole-sample
    normalisations, calendar bars catch weekly/daily bin leaks (see :func:`calendar_cut_points`).
    """
    size = len(index)
    if size == 0:
        return []
    rng = np.random.default_rng(seed)
    pts = {0, 1, 2, size // 2, size - 3, size - 2}
    pts.update(calendar_cut_points(index, per_kind=max(1, n // 6), seed=seed))
    pts.update(int(i) for i in rng.integers(0, size, size=max(0, n - len(pts))))
    return sorted(p for p in pts if 0 <= p < size - 1 or (size == 1 and p == 0))


def _resolve_cuts(df: pd.DataFrame, cut_points: Any) -> list[int]:
    n = len(df)
    if cut_points is None:
        return default_cut_points(df.index)
    if isinstance(cut_points, int | np.integer):
        return default_cut_points(df.index, n=int(cut_points))
    out = []
    for c in cut_points:
        if isinstance(c, int | np.integer):
            pos = int(c) if c >= 0 else n + int(c)
        else:
            ts = pd.Timestamp(c)
            if ts.tzinfo is None:
                ts = ts.tz_localize("UTC")
            pos = df.index.get_loc(ts)
            if not isinstance(pos, int | np.integer):
                raise ValueError(f"cut point {c} is not exactly one bar of the frame")
        if not 0 <= pos < n:
            raise ValueError(f"cut point {c} outside the frame (0..{n - 1})")
        out.append(int(pos))
    return sorted(set(out))


# --------------------------------------------------------------------------------------------
# Exact comparison with NaN == NaN
# --------------------------------------------------------------------------------------------


def _equal_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise exact equality where missing equals missing (NaN, NaT, None, pd.NA)."""
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return (a == b) | (np.isnan(a) & np.isnan(b))
    if a.dtype.kind in "mM" and b.dtype.kind in "mM":
        return (a == b) | (np.isnat(a) & np.isnat(b))
    if a.dtype.kind in "biu" and b.dtype.kind in "biu":
        return a == b
    na_a = pd.isna(a)
    na_b = pd.isna(b)
    eq = np.zeros(a.shape, dtype=bool)
    both = ~na_a & ~na_b
    if both.any():
        eq[both] = np.array(
            [bool(x == y) for x, y in zip(a[both].tolist(), b[both].tolist(), strict=True)]
        )
    return eq | (na_a & na_b)


def _values(obj: Any) -> np.ndarray:
    if isinstance(obj, pd.Series | pd.Index):
        if pd.api.types.is_datetime64_any_dtype(obj.dtype):
            # tz-aware values would come out as Timestamp objects; compare as ns integers
            # (NaT is one fixed integer, so NaT == NaT).
            return pd.DatetimeIndex(obj).as_unit("ns").asi8
        return obj.to_numpy()
    return np.asarray(obj)


def _fail(label: str, cut: int, bar: int, ts: Any, full: Any, part: Any, extra: str = "") -> None:
    where = f"bar {bar}" + (f" ({ts})" if ts is not None else "")
    raise CausalityError(
        f"look-ahead in {label}: at {where} the value computed on all data is {full!r} but on "
        f"data cut after bar {cut} it is {part!r}{extra}"
    )


def _compare_aligned(
    label: str, full: Any, part: Any, cut: int, index: pd.DatetimeIndex, n_total: int
) -> None:
    """Compare a per-bar output of the full run (first cut+1 rows) with the truncated run."""
    n_part = cut + 1
    full_len = len(full)
    if full_len != n_total:
        raise CausalityError(
            f"{label}: output has {full_len} rows for {n_total} input bars; per-bar outputs must "
            "be aligned to the input (pass event_time=... for an event table)"
        )
    if len(part) != n_part:
        raise CausalityError(
            f"{label}: on data cut after bar {cut} the output has {len(part)} rows, expected "
            f"{n_part}"
        )
    if isinstance(full, pd.Series | pd.DataFrame) and isinstance(part, pd.Series | pd.DataFrame):
        if not full.index[:n_part].equals(part.index):
            raise CausalityError(f"{label}: the truncated output's index differs from the input's")
    a = _values(full)[:n_part]
    b = _values(part)
    if a.shape[1:] != b.shape[1:]:
        raise CausalityError(f"{label}: output shape {b.shape} vs {a.shape} on the full data")
    eq = _equal_mask(a, b)
    if eq.ndim > 1:
        eq = eq.reshape(len(eq), -1).all(axis=1)
    if not eq.all():
        bar = int(np.flatnonzero(~eq)[0])
        ts = index[bar] if bar < len(index) else None
        _fail(label, cut, bar, ts, a[bar].tolist(), b[bar].tolist())


def _event_times(table: pd.DataFrame, event_time: str) -> pd.DatetimeIndex:
    if event_time == "index":
        times = table.index
    else:
        if event_time not in table.columns:
            raise CausalityError(
                f"event table has no column {event_time!r} (columns: {list(table.columns)})"
            )
        times = table[event_time]
    times = pd.DatetimeIndex(times)
    return times.tz_localize("UTC") if times.tz is None else times


def _compare_events(
    label: str,
    full: pd.DataFrame,
    part: pd.DataFrame,
    cut: int,
    cut_ts: pd.Timestamp,
    event_time: str,
    columns: Sequence[str] | None,
) -> None:
    t_full = _event_times(full, event_time)
    t_part = _event_times(part, event_time)
    late = np.flatnonzero(t_part > cut_ts)
    if late.size:
        raise CausalityError(
            f"{label}: data cut after bar {cut} ({cut_ts}) yields an event stamped "
            f"{t_part[late[0]]}, after the last bar: it is dated before it could be known"
        )
    keep = np.asarray(t_full <= cut_ts)
    f_rows = full.loc[keep]
    f_times = t_full[keep]

    def rows(table: pd.DataFrame, times: pd.DatetimeIndex) -> list[tuple[str, ...]]:
        body = table.astype(str).to_numpy().tolist()
        return [(str(t), *r) for t, r in zip(times, body, strict=True)]

    if len(f_rows) != len(part):
        a, b = rows(f_rows, f_times), rows(part, t_part)
        only_full = [r for r in a if r not in b][:3]
        only_part = [r for r in b if r not in a][:3]
        raise CausalityError(
            f"look-ahead in {label}: {len(f_rows)} events confirmed by {cut_ts} on all data but "
            f"{len(part)} on data cut after bar {cut}; only on all data: {only_full}; only on "
            f"cut data: {only_part}"
        )
    if list(part.columns) != list(full.columns):
        raise CausalityError(
            f"{label}: event columns differ: {list(part.columns)} vs {list(full.columns)}"
        )
    checks: list[tuple[str, np.ndarray, np.ndarray]] = [
        (f"event time ({event_time})", f_times.asi8, t_part.asi8)
    ]
    cols = list(columns) if columns is not None else list(full.columns)
    checks += [(f"column {c!r}", _values(f_rows[c]), _values(part[c])) for c in cols]
    for what, a, b in checks:
        eq = _equal_mask(a, b)
        if not eq.all():
            row = int(np.flatnonzero(~eq)[0])
            raise CausalityError(
                f"look-ahead in {label}, {what}: event #{row} (confirmed {f_times[row]}) is "
                f"{a[row]!r} on all data but {b[row]!r} on data cut after bar {cut} ({cut_ts})"
            )


def _split(out: Any, columns: Sequence[str] | None) -> list[tuple[str, Any]]:
    """Break an output into labelled per-bar pieces."""
    if isinstance(out, pd.DataFrame):
        cols = list(columns) if columns is not None else list(out.columns)
        missing = [c for c in cols if c not in out.columns]
        if missing:
            raise CausalityError(f"output lacks column(s) {missing}")
        return [(f"column {c!r}", out[c]) for c in cols]
    if isinstance(out, pd.Series):
        return [(f"series {out.name!r}" if out.name is not None else "series", out)]
    if isinstance(out, Mapping):
        return [(f"output[{k!r}]", v) for k, v in out.items()]
    if isinstance(out, tuple | list):
        return [(f"output[{i}]", v) for i, v in enumerate(out)]
    arr = np.asarray(out)
    if arr.ndim == 2 and columns is None:
        return [(f"array column {j}", arr[:, j]) for j in range(arr.shape[1])]
    return [("array", arr)]


def assert_causal(
    func: Callable[[pd.DataFrame], Any],
    df: pd.DataFrame,
    cut_points: int | Iterable[int | str | pd.Timestamp] | None = None,
    columns: Sequence[str] | None = None,
    *,
    event_time: str | None = None,
    min_bars: int = 1,
) -> int:
    """Assert that ``func`` never looks ahead on ``df``.

    For each cut position t, ``func(df.iloc[:t + 1])`` must reproduce, exactly, the values of
    ``func(df)`` on bars 0..t (NaN equals NaN; any other difference, even in the last bit, fails).

    Args:
        func: computation under test; called with canonical frames (``attrs`` preserved).
        df: the input frame.
        cut_points: positions (ints, negative counts from the end) or timestamps of the last bar
            kept; an int asks for that many default points; None for :func:`default_cut_points`.
        columns: DataFrame columns to compare (default: all).
        event_time: for event tables, the column holding the confirmation time (``"index"``: the
            table's index). Events with time <= the cut bar's timestamp are compared.
        min_bars: skip cuts that would leave fewer bars than this (for functions that refuse
            tiny inputs).

    Returns:
        The number of cut points checked (so a caller can assert it is not zero).

    Raises:
        CausalityError: (an AssertionError) naming the output column, bar, timestamp and both
        values of the first difference found.
    """
    full = func(df)
    cuts = [c for c in _resolve_cuts(df, cut_points) if c + 1 >= min_bars]
    n = len(df)
    for cut in cuts:
        part = func(df.iloc[: cut + 1])
        if event_time is not None:
            if not (isinstance(full, pd.DataFrame) and isinstance(part, pd.DataFrame)):
                raise CausalityError("event_time given but the output is not a DataFrame")
            _compare_events("event table", full, part, cut, df.index[cut], event_time, columns)
            continue
        pieces_full = _split(full, columns)
        pieces_part = dict(_split(part, columns))
        for label, f in pieces_full:
            if label not in pieces_part:
                raise CausalityError(f"{label} missing from the output on data cut after {cut}")
            _compare_aligned(label, f, pieces_part[label], cut, df.index, n)
    return len(cuts)


# --------------------------------------------------------------------------------------------
# Random OHLCV paths
# --------------------------------------------------------------------------------------------


def ohlc_frame(
    n: int,
    timeframe: str = "1h",
    *,
    seed: int = 0,
    start: str | pd.Timestamp = "2021-01-01",
    start_offset: int = 0,
    price: float = 30_000.0,
    volatility: float = 0.01,
    flat_fraction: float = 0.0,
    gap_fraction: float = 0.0,
) -> pd.DataFrame:
    """A seeded random-walk canonical OHLCV frame (valid highs/lows, UTC ns index, attrs set).

    Args:
        n: number of bars (before gaps are removed).
        timeframe: bar length, e.g. ``"1h"``, ``"4h"``, ``"1d"``, ``"1w"``, ``"1m"``.
        seed: numpy random seed.
        start: first bar's open (aligned down to ``timeframe``; weekly bars to Monday).
        start_offset: shift the start by this many bars (e.g. to start mid-week).
        price: first open.
        volatility: standard deviation of the log return per bar.
        flat_fraction: share of bars with no trade (O=H=L=C=previous close, volume 0), as in the
            real early-Bitcoin data.
        gap_fraction: share of bars removed (missing candles), never the first or last.
    """
    td = parse_timeframe(timeframe)
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
    t0 = period_start(pd.DatetimeIndex([t0]).as_unit("ns"), td)[0] + start_offset * td
    idx = pd.date_range(t0, periods=n, freq=td, unit="ns", name=INDEX_NAME)
    ret = rng.normal(0.0, volatility, n)
    flat = rng.random(n) < flat_fraction
    ret[flat] = 0.0
    close = price * np.exp(np.cumsum(ret))
    open_ = np.r_[price, close[:-1]]
    wick_hi = np.abs(rng.normal(0.0, volatility / 2, n))
    wick_lo = np.abs(rng.normal(0.0, volatility / 2, n))
    wick_hi[flat] = 0.0
    wick_lo[flat] = 0.0
    high = np.maximum(open_, close) * np.exp(wick_hi)
    low = np.minimum(open_, close) * np.exp(-wick_lo)
    volume = rng.gamma(2.0, 50.0, n)
    volume[flat] = 0.0
    df = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=idx
    )
    # Rounding can put close a hair above high (exp(0) paths); keep OHLC strictly valid.
    df["high"] = df[["open", "high", "close"]].max(axis=1)
    df["low"] = df[["open", "low", "close"]].min(axis=1)
    if gap_fraction > 0 and n > 2:
        drop = rng.random(n) < gap_fraction
        drop[0] = drop[-1] = False
        df = df.loc[~drop]
    df.attrs.update(timeframe=timeframe, source=f"random walk (seed {seed})",
                    incomplete_last=False)
    return df


def ohlc_paths(
    timeframe: str | Sequence[str] = ("1h", "4h", "1d"),
    min_bars: int = 2,
    max_bars: int = 500,
    *,
    gaps: bool = False,
    flat: bool = True,
) -> Any:
    """Hypothesis strategy of random valid canonical OHLCV frames (see :func:`ohlc_frame`).

    Draws the timeframe (from ``timeframe`` if a list), the number of bars, a start anywhere in
    a week (so weeks start partial), the volatility (0.1% .. 10% per bar), the share of flat
    no-trade bars and (with ``gaps=True``) missing bars. Paths are generated from a drawn seed:
    fast even for thousands of bars; hypothesis shrinks the size and parameters.
    """
    from hypothesis import strategies as st

    tfs = [timeframe] if isinstance(timeframe, str) else list(timeframe)

    @st.composite
    def _paths(draw: Any) -> pd.DataFrame:
        tf = draw(st.sampled_from(tfs))
        n = draw(st.integers(min_value=min_bars, max_value=max_bars))
        bars_per_week = max(1, int(pd.Timedelta(weeks=1) / parse_timeframe(tf)))
        return ohlc_frame(
            n,
            tf,
            seed=draw(st.integers(min_value=0, max_value=2**32 - 1)),
            start=pd.Timestamp("2020-01-06", tz="UTC")
            + pd.Timedelta(weeks=draw(st.integers(min_value=0, max_value=300))),
            start_offset=draw(st.integers(min_value=0, max_value=bars_per_week - 1)),
            price=draw(st.floats(min_value=1.0, max_value=200_000.0)),
            volatility=draw(st.floats(min_value=0.001, max_value=0.1)),
            flat_fraction=draw(st.sampled_from([0.0, 0.0, 0.05, 0.3])) if flat else 0.0,
            gap_fraction=draw(st.sampled_from([0.0, 0.02, 0.1])) if gaps else 0.0,
        )

    return _paths()
