"""Resampling canonical candles to a coarser timeframe.

Bins follow exchange conventions: intraday and daily bins are aligned to the Unix epoch (00:00
UTC), weekly bins (and multiples of a week) open on **Monday 00:00 UTC** as on Binance and
TradingView. Each output bar is labelled with its open time.

The last output bar is usually still forming when the input ends mid-period (a weekly bar built
from Monday to Wednesday). Such a bar is *marked*, never silently passed off as final:
``result.attrs["incomplete_last"]`` is ``True`` and :func:`drop_incomplete` removes it. This is
the place where most look-ahead bugs are born: an indicator that uses an incomplete weekly close
on Monday is using Friday's price.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from data.frame import MONTHLY, DataError, check_canonical, parse_timeframe, timeframe_of

# 1970-01-05 was a Monday: weekly bins are counted from there so that they open on Mondays.
_MONDAY_ORIGIN_NS = pd.Timestamp("1970-01-05", tz="UTC").value
_WEEK = pd.Timedelta(weeks=1)


def bin_origin_ns(timeframe: str | pd.Timedelta) -> int:
    """Epoch nanoseconds that ``timeframe`` bins are counted from: Monday 1970-01-05 for weeks
    and multiples of a week, else the Unix epoch (0)."""
    return _MONDAY_ORIGIN_NS if parse_timeframe(timeframe) % _WEEK == pd.Timedelta(0) else 0


def bin_starts(index: pd.DatetimeIndex, timeframe: str | pd.Timedelta
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(first, start)`` of each ``timeframe`` bin holding bars of the strictly increasing
    ``index``, in time order: the position of its first bar and its open (int64 epoch
    nanoseconds). The same as ``first`` of :func:`bin_groups` of :func:`period_start_ns`
    and those keys there, found by a binary search per bin edge instead of a key per bar."""
    t = epoch_ns(index)
    if not len(t):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    step = parse_timeframe(timeframe).value
    origin = bin_origin_ns(timeframe)
    lo, hi = ((int(x) - origin) // step * step + origin for x in (t[0], t[-1]))
    edges = np.arange(lo, hi + step, step, dtype=np.int64)
    first = np.searchsorted(t, edges, side="left")
    # a bin with no bar: its edge's search lands on the next bin's first bar (or past the end)
    held = first < len(t)
    held[held] = t[first[held]] < edges[held] + step
    return first[held], edges[held]


def bin_groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group sorted bin keys (:func:`period_start` of strictly increasing bars).

    Returns ``(group, first, last)``: the bin number of every bar (0, 1, 2, ... in time order)
    and the positions of each bin's first and last bar.
    """
    # Equal keys are contiguous because the bars are strictly increasing.
    new_bin = np.empty(len(keys), dtype=bool)
    new_bin[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=new_bin[1:])
    first = np.flatnonzero(new_bin)
    last = np.r_[first[1:] - 1, len(keys) - 1]
    group = np.cumsum(new_bin)
    group -= 1  # in place: one array per bar, not two
    return group, first, last


def check_aligned(df: pd.DataFrame, src_tf: str, timeframe: str) -> None:
    """Raise :class:`DataError` unless every bar of ``df`` (``src_tf`` bars) sits inside one
    ``timeframe`` bin: a daily bar opening at 12:00 would straddle the Monday boundary, and its
    close would belong to two weeks."""
    offset = epoch_ns(df.index) - bin_origin_ns(timeframe)
    offset %= parse_timeframe(src_tf).value  # in place: one temporary per bar, not two
    if offset.any():
        pos = int(np.flatnonzero(offset)[0])
        raise DataError(
            f"bar does not start on a {src_tf} boundary, so it would straddle two {timeframe} bins",
            source=df.attrs.get("source"),
            timestamp=df.index[pos],
            hint=f"use bars aligned to 00:00 UTC (weekly bars opening on Monday) for {src_tf}",
        )


#: Bar sizes exchanges and charting tools offer: what a hint may suggest.
STANDARD_TIMEFRAMES: tuple[str, ...] = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h",
                                        "8h", "12h", "1d", "3d", "1w")

#: The standard bar sizes that fit whole into weeks (or are whole weeks): what a job computing
#: the 200-week EMA accepts, so what its hints may suggest.
WEEK_TIMEFRAMES: tuple[str, ...] = tuple(
    t for t in STANDARD_TIMEFRAMES
    if pd.Timedelta(weeks=1) % parse_timeframe(t) == pd.Timedelta(0)
    or parse_timeframe(t) % pd.Timedelta(weeks=1) == pd.Timedelta(0))


def _listing(items: list[str]) -> str:
    return ", ".join(items[:-1]) + f" or {items[-1]}" if len(items) > 1 else "".join(items)


def coarser_bins(df: pd.DataFrame, timeframe: str, what: str, *, user_sets: str = "target",
                 suggest: Sequence[str] = STANDARD_TIMEFRAMES
                 ) -> tuple[str, pd.Timedelta, pd.Timedelta]:
    """Check that ``df``'s bars fit whole into ``timeframe`` bins: ``timeframe`` is a whole
    multiple of the bars' timeframe (monthly bars fit nothing) and every bar starts on its own
    boundary (:func:`check_aligned`, skipped for an empty frame).

    ``what`` names the job in the error, e.g. ``"resample {src} bars to {dst}"`` (``{src}`` and
    ``{dst}`` are filled in). ``user_sets`` says which side the fix lists valid values for:
    ``"target"`` (the timeframes these bars can be binned into) or ``"source"`` (the bars that
    fit ``timeframe`` bins); ``suggest`` the timeframes the caller's job accepts (a command that
    needs the weekly EMA must not be told to try 3d). Returns ``(source timeframe, source
    length, target length)``.

    Raises:
        DataError: ``"cannot <what>"`` with a hint.
    """
    src_tf = timeframe_of(df)
    if src_tf == MONTHLY:
        raise DataError(f"cannot {what.format(src='monthly', dst=timeframe)}: a month does not "
                        "split into whole shorter bars", source=df.attrs.get("source"),
                        hint="monthly bars are the coarsest supported; load daily or intraday "
                             "data")
    src = parse_timeframe(src_tf)
    dst = parse_timeframe(timeframe)
    if dst < src or dst % src != pd.Timedelta(0):
        std = {t: parse_timeframe(t) for t in suggest}
        if user_sets == "source":
            ok = [t for t, td in std.items() if td <= dst and dst % td == pd.Timedelta(0)]
            hint = f"{timeframe} bins take bars that divide them evenly: {_listing(ok)}"
        else:
            ok = [t for t, td in std.items() if td >= src and td % src == pd.Timedelta(0)]
            hint = (f"{src_tf} bars go into whole multiples of {src_tf}: {_listing(ok)}"
                    if ok else f"choose a timeframe that is a whole multiple of {src_tf}")
        raise DataError(f"cannot {what.format(src=src_tf, dst=timeframe)}",
                        source=df.attrs.get("source"), hint=hint)
    if len(df):
        check_aligned(df, src_tf, timeframe)
    return src_tf, src, dst


def epoch_ns(index: pd.DatetimeIndex) -> np.ndarray:
    """The int64 epoch nanoseconds of ``index`` (its own buffer when its unit is already "ns":
    ``as_unit("ns")`` copies even then, 80 MB at 10M bars)."""
    return index.asi8 if index.unit == "ns" else index.as_unit("ns").asi8


def period_start_ns(index: pd.DatetimeIndex, timeframe: str | pd.Timedelta) -> np.ndarray:
    """:func:`period_start` as int64 epoch nanoseconds: one new array, worked out in place (no
    DatetimeIndex and no temporaries: ~8 bytes per bar where the index route made ~50 at the
    peak of a 1M-bar strategy run, issue 17)."""
    td = parse_timeframe(timeframe)
    step = td.value
    origin = bin_origin_ns(td)
    starts = epoch_ns(index) - origin
    starts //= step
    starts *= step
    starts += origin
    return starts


def period_start(index: pd.DatetimeIndex, timeframe: str | pd.Timedelta) -> pd.DatetimeIndex:
    """Return, for each timestamp in ``index``, the open time of the ``timeframe`` bin holding it.

    Weekly (and multi-week) bins open on Monday 00:00 UTC; others are aligned to the epoch.
    """
    return pd.DatetimeIndex(pd.to_datetime(period_start_ns(index, timeframe), unit="ns",
                                           utc=True), name=index.name)


def resample(
    df: pd.DataFrame,
    timeframe: str,
    *,
    incomplete: Literal["mark", "drop"] = "mark",
    suggest: Sequence[str] = STANDARD_TIMEFRAMES,
) -> pd.DataFrame:
    """Aggregate canonical candles into ``timeframe`` bars.

    open = first open, high = max, low = min, close = last close, volume = sum. Bins that contain
    no input bar are absent from the output (a gap stays a gap: no candle is invented).

    Args:
        df: canonical frame (see :mod:`data.frame`).
        timeframe: target timeframe, e.g. ``"4h"``, ``"1d"``, ``"1w"``; a whole multiple of the
            input timeframe.
        incomplete: ``"mark"`` keeps a still-forming last bar and sets
            ``attrs["incomplete_last"] = True``; ``"drop"`` removes it.
        suggest: the timeframes an error's fix may name (those the caller's job accepts).

    Returns:
        A canonical frame with ``attrs["timeframe"]`` set to ``timeframe``,
        ``attrs["incomplete_last"]`` (bool) and ``attrs["incomplete_first"]`` (bool: the input
        starts after the first bin opened, so that bar covers only part of its period; it is a
        real, final bar, but shorter: a 200-week EMA seeded on it says so).

    Raises:
        DataError: when the target is not a whole multiple of the input timeframe, or a bar
            does not start on its own timeframe's boundary (it would straddle two bins).
    """
    check_canonical(df)
    _src_tf, src, dst = coarser_bins(df, timeframe, "resample {src} bars to {dst}",
                                     suggest=suggest)
    if df.empty:
        out = df.copy()
        out.attrs.update(timeframe=timeframe, incomplete_last=False)
        return out

    keys = period_start(df.index, dst).asi8
    _, first, last = bin_groups(keys)
    o = df["open"].to_numpy()
    h = df["high"].to_numpy()
    lo = df["low"].to_numpy()
    c = df["close"].to_numpy()
    v = df["volume"].to_numpy()
    out = pd.DataFrame(
        {
            "open": o[first],
            "high": np.maximum.reduceat(h, first),
            "low": np.minimum.reduceat(lo, first),
            "close": c[last],
            "volume": np.add.reduceat(v, first),
        },
        index=pd.DatetimeIndex(pd.to_datetime(keys[first], unit="ns", utc=True), name="timestamp"),
    )
    # The last bin is complete only if the input reaches the end of it; the first only if the
    # input starts at its open (daily data starting on a Friday makes a 3-day first "week").
    input_end = df.index[-1] + src
    incomplete_last = bool(out.index[-1] + dst > input_end)
    incomplete_first = bool(out.index[0] < df.index[0])
    if incomplete_last and incomplete == "drop":
        out = out.iloc[:-1]
        incomplete_last = False
    out.attrs.update({k: v for k, v in df.attrs.items() if k not in ("timeframe",)})
    out.attrs["timeframe"] = timeframe
    out.attrs["incomplete_last"] = incomplete_last
    out.attrs["incomplete_first"] = incomplete_first
    return out


def drop_incomplete(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` without its last bar when :func:`resample` marked that bar as still forming."""
    if df.attrs.get("incomplete_last"):
        out = df.iloc[:-1].copy()
        out.attrs["incomplete_last"] = False
        return out
    return df
