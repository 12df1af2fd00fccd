"""Choosing the candles for a job: a file, the local store or the bundled real data, then an
optional resample and a date slice (:func:`select_candles`).

This is library logic: every problem is a :class:`~data.frame.DataError` (the command line turns
it into one line and exit code 2).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from data.default import resolve_default_data
from data.frame import DataError, parse_timeframe, timeframe_of
from data.resample import STANDARD_TIMEFRAMES, resample
from data.store import DataStore

#: The date and time forms accepted from users: ISO 8601 only, so that no date is ambiguous
#: (``05/02/2026`` is 5 February in Europe and May 2 in the US).
TIME_FORMATS = "YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or YYYY-MM-DD HH:MM, optionally with Z or +HH:MM"
_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}"                              # date
    r"([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"            # time
    r"(Z|[+-]\d{2}:?\d{2})?"                           # offset
)


def parse_time(value: str | pd.Timestamp | None, what: str = "date") -> pd.Timestamp | None:
    """``value`` as a UTC timestamp (a naive one is taken as UTC); None stays None.

    Text must be ISO 8601 (:data:`TIME_FORMATS`): ``05/02/2026``, ``2/5/26`` or ``Feb 5`` are
    rejected rather than guessed.

    Raises:
        DataError: ``value`` is not a date in an accepted form (``what`` names it).
    """
    if value is None:
        return None
    if isinstance(value, str) and not _ISO_TIME.fullmatch(value.strip()):
        slashed = re.fullmatch(r"\s*(\d{1,2})[/.](\d{1,2})[/.](\d{2,4})\s*", value)
        why = "is ambiguous (day/month or month/day?)" if slashed else "is not a date"
        raise DataError(f"{what} {value!r} {why}", hint=f"write it as {TIME_FORMATS}; naive is UTC")
    try:
        ts = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError):
        raise DataError(f"{what} {value!r} is not a date",
                        hint="use YYYY-MM-DD or an ISO timestamp") from None
    if ts is pd.NaT:
        raise DataError(f"{what} {value!r} is not a date", hint="use YYYY-MM-DD")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def slice_dates(df: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None
                ) -> pd.DataFrame:
    """Bars whose open time is in ``[start, end]`` (either bound may be None); attrs kept.

    Raises:
        DataError: no bar in the range (the data's span is in the hint).
    """
    if start is None and end is None:
        return df
    span = f"{df.index[0]:%Y-%m-%d} to {df.index[-1]:%Y-%m-%d}" if len(df) else "nothing"
    mask = pd.Series(True, index=df.index)
    if start is not None:
        mask &= df.index >= start
    if end is not None:
        mask &= df.index <= end
    out = df[mask.to_numpy()]
    out.attrs = dict(df.attrs)
    if len(out) == 0:
        first = f"{start:%Y-%m-%d}" if start is not None else "the start"
        last = f"{end:%Y-%m-%d}" if end is not None else "the end"
        raise DataError(f"no candles between {first} and {last}", hint=f"the data spans {span}")
    return out


def select_candles(
    data_file: str | Path | None = None,
    data_dir: str | Path | None = None,
    timeframe: str | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    *,
    offline: bool = False,
    dataset: str | None = None,
    echo: Callable[[str], None] | None = None,
    min_bars: int = 2,
    keep_history: bool = False,
    allow_dates: bool = False,
    suggest: Sequence[str] = STANDARD_TIMEFRAMES,
) -> tuple[pd.DataFrame, str]:
    """The candles for a job and a one-line description of their origin.

    Order: ``data_file`` if given, else the bundled series ``dataset`` if given, else the default
    data (store in ``data_dir``, download unless ``offline``, the bundled Binance daily; see
    :func:`data.default.resolve_default_data`, which announces each step through ``echo``);
    then resampled to ``timeframe`` (an incomplete last bar is dropped) and sliced to bars
    opening in ``[start, end]`` (UTC; naive means UTC). With ``keep_history`` the bars before
    ``start`` are kept (only ``end`` cuts): they are the indicators' warm-up and ``start`` opens
    the trading window (pass it on to :func:`backtests.run`); ``min_bars`` then counts the bars
    from ``start``. ``allow_dates``
    accepts a file's bars outside 1990-2100 (see :func:`data.loaders.load`). ``suggest``: the
    timeframes the job accepts, named in an impossible resample's fix
    (:data:`data.resample.WEEK_TIMEFRAMES` for jobs with the weekly EMA).

    Raises:
        DataError: a bad date or timeframe (checked before loading), a missing or invalid file,
            an impossible resample, an empty range, fewer than ``min_bars`` bars.
    """
    t0 = parse_time(start, "start")
    t1 = parse_time(end, "end")
    if t0 is not None and t1 is not None and t0 > t1:
        raise DataError(f"start {start} is after end {end}", hint="swap them")
    if timeframe is not None:
        parse_timeframe(timeframe)  # a clear error before any loading
    if data_file is not None and not Path(data_file).exists():
        raise DataError(f"data file {data_file} not found",
                        hint="check the path, or omit --data to use the default data")

    store = DataStore(data_dir) if data_dir else None
    df, origin = resolve_default_data(data_file, store=store, allow_download=not offline,
                                      echo=echo, bundled=dataset, allow_dates=allow_dates)
    desc = origin.description
    if timeframe is not None:
        src = timeframe_of(df)
        if src != timeframe:
            df = resample(df, timeframe, incomplete="drop", suggest=suggest)
            desc += f", resampled {src} -> {timeframe}"
    if keep_history and t0 is not None:
        df = slice_dates(df, None, t1)
        window = slice_dates(df, t0, None)
        desc += (f", trading {window.index[0]:%Y-%m-%d} to {df.index[-1]:%Y-%m-%d} after "
                 f"{len(df) - len(window):,} warm-up bars from {df.index[0]:%Y-%m-%d}")
        if len(window) < min_bars:
            raise DataError(f"only {len(window)} candle(s) from the start: at least {min_bars} "
                            "are needed", hint="choose an earlier --start")
        return df, desc
    if t0 is not None or t1 is not None:
        df = slice_dates(df, t0, t1)
        desc += f", {df.index[0]:%Y-%m-%d} to {df.index[-1]:%Y-%m-%d}"
    if len(df) < min_bars:
        raise DataError(f"only {len(df)} candle(s) selected: at least {min_bars} are needed",
                        hint="widen --start/--end")
    return df, desc
