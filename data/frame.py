"""The canonical in-memory candle frame, the data error type and timeframe helpers.

Everything downstream (indicators, strategies, engines, reports) may rely on this and nothing
else: a :class:`pandas.DataFrame` with

* a tz-aware UTC :class:`~pandas.DatetimeIndex` named ``timestamp`` holding the bar **open** time,
  strictly increasing, on one regular timeframe (gaps are allowed, but are reported by validation);
* float64 columns ``open, high, low, close, volume`` (prices in quote currency, volume in BTC).

Extra information travels in ``DataFrame.attrs`` (``source``, ``timeframe``, ``incomplete_last``),
never in extra columns.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from data.errors import DataError  # defined without pandas, for light imports; re-exported

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
INDEX_NAME = "timestamp"
_F8 = np.dtype(np.float64)


# Longer bars than ten years are a typo (and 20-digit counts would overflow the arithmetic).
_TF_MAX = pd.Timedelta(days=3660)
_TF_RE = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d|w|M)\s*$")
_TF_UNITS = {
    "s": pd.Timedelta(seconds=1),
    "m": pd.Timedelta(minutes=1),
    "min": pd.Timedelta(minutes=1),
    "h": pd.Timedelta(hours=1),
    "d": pd.Timedelta(days=1),
    "w": pd.Timedelta(weeks=1),
}


def parse_timeframe(timeframe: str | pd.Timedelta) -> pd.Timedelta:
    """Parse an exchange-style timeframe (``"1m"``, ``"15m"``, ``"1h"``, ``"4h"``, ``"1d"``,
    ``"1w"``) into a :class:`pandas.Timedelta`.

    Monthly bars (``"1M"``) have no fixed length and are rejected here; see
    :func:`infer_timeframe` for how monthly data is recognised.

    Raises:
        DataError: for an unknown or non-positive timeframe.
    """
    if isinstance(timeframe, pd.Timedelta):
        if timeframe <= pd.Timedelta(0):
            raise DataError(f"timeframe must be positive, got {timeframe}")
        return timeframe
    m = _TF_RE.match(str(timeframe))
    if not m or m.group(2) == "M":
        raise DataError(
            f"unknown timeframe {timeframe!r}",
            hint="use a number and a unit: 1m, 5m, 15m, 1h, 2h, 4h, 1d or 1w",
        )
    n = int(m.group(1))
    if n <= 0:
        raise DataError(f"timeframe must be positive, got {timeframe!r}")
    try:
        td = n * _TF_UNITS[m.group(2)]
    except (OverflowError, ValueError):  # 20 digits: beyond what a Timedelta holds
        td = None
    if td is None or td > _TF_MAX:
        raise DataError(f"timeframe {timeframe!r} is longer than {_TF_MAX.days} days",
                        hint="use a number and a unit: 1m, 5m, 15m, 1h, 2h, 4h, 1d or 1w")
    return td


def format_timeframe(td: pd.Timedelta) -> str:
    """Render a timedelta as the shortest exchange-style timeframe string (``"4h"``, ``"1w"``)."""
    secs = int(td.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


MONTHLY = "1M"


def infer_timeframe(index: pd.DatetimeIndex) -> str:
    """Return the timeframe string of a bar index: the most common spacing between bars.

    Calendar-month spacing (28-31 days, every bar on the 1st) is reported as ``"1M"``.

    Raises:
        DataError: when there are fewer than two bars.
    """
    if len(index) < 2:
        raise DataError("cannot infer a timeframe from fewer than two bars")
    diffs = np.diff(index.as_unit("ns").asi8)
    values, counts = np.unique(diffs, return_counts=True)
    mode = pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")
    if pd.Timedelta(days=28) <= mode <= pd.Timedelta(days=31) and bool((index.day == 1).all()):
        return MONTHLY
    return format_timeframe(mode)


def timeframe_of(df: pd.DataFrame) -> str:
    """The bar timeframe of a canonical frame: ``df.attrs["timeframe"]`` when a loader or
    :func:`data.resample.resample` set it, else the most common spacing of the index
    (:func:`infer_timeframe`, so a missing bar does not change the answer). The one rule used
    everywhere (engines, metrics, walk-forward, signals, reports).

    Raises:
        DataError: no ``timeframe`` attribute and fewer than two bars.
    """
    tf = df.attrs.get("timeframe")
    return str(tf) if tf else infer_timeframe(df.index)


def timeframe_length(timeframe: str) -> pd.Timedelta:
    """Nominal length of one bar: :func:`parse_timeframe`, with a calendar month (``"1M"``)
    counted as 30 days (for comparisons such as "longer than a week", never for arithmetic)."""
    return pd.Timedelta(days=30) if timeframe == MONTHLY else parse_timeframe(timeframe)


def check_canonical(df: pd.DataFrame, name: str = "frame") -> None:
    """Cheap structural check that ``df`` is in canonical form.

    Checks the index (UTC, named ``timestamp``, strictly increasing) and the five float64 columns.
    It does not check prices (that is :func:`data.validate.validate`'s job).

    Raises:
        DataError: naming what is wrong and how to obtain a canonical frame.
    """
    hint = "load data through data.load() or data.to_canonical()"
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{name} is a {type(df).__name__}, not a DataFrame", hint=hint)
    idx = df.index
    if not isinstance(idx, pd.DatetimeIndex):
        raise DataError(f"{name} index is {type(idx).__name__}, not a DatetimeIndex", hint=hint)
    if idx.tz is None or str(idx.tz) != "UTC":
        raise DataError(f"{name} index time zone is {idx.tz}, not UTC", hint=hint)
    if idx.unit != "ns":
        raise DataError(f"{name} index resolution is {idx.unit}, not ns", hint=hint)
    missing = [c for c in OHLCV if c not in df.columns]
    if missing:
        raise DataError(f"{name} lacks column(s) {', '.join(missing)}", hint=hint)
    for c in OHLCV:
        if df[c].dtype != np.float64:
            raise DataError(f"{name} column {c!r} is {df[c].dtype}, not float64", hint=hint)
    if not (idx.is_monotonic_increasing and idx.is_unique):
        raise DataError(f"{name} index is not strictly increasing", hint=hint)


#: Column names (lower-cased, spaces/dashes as underscores) taken as our OHLCV columns when the
#: canonical name itself is absent: yfinance/backtesting.py (``Open``, ``Volume``), exchange
#: exports (``vol``, ``volume_btc``) and one-letter frames. ``Adj Close`` is never taken for the
#: close (it is a dividend-adjusted equity price; BTC has no such thing): it is ignored.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "open": ("o", "open_price", "opening"),
    "high": ("h", "high_price", "hi"),
    "low": ("l", "low_price", "lo"),
    "close": ("c", "close_price", "closing", "last"),
    "volume": ("v", "vol", "volume_btc", "base_volume", "volume_base"),
}
#: Columns that may hold the bar open time when the index is not a DatetimeIndex, in order.
TIME_COLUMNS: tuple[str, ...] = ("timestamp", "date", "datetime", "time", "open_time")
_CANONICAL_HINT = "load data through data.load() or pass a frame with open/high/low/close columns"


def is_canonical(df: object) -> bool:
    """True when ``df`` is already a canonical frame (see the module docstring): a handful of
    attribute checks, O(1) once pandas has cached the index's monotonicity."""
    if not isinstance(df, pd.DataFrame):
        return False
    idx = df.index
    if not (isinstance(idx, pd.DatetimeIndex) and idx.name == INDEX_NAME and idx.unit == "ns"
            and idx.tz is not None and str(idx.tz) == "UTC"):
        return False
    cols = df.columns
    if tuple(cols[:5]) == OHLCV:  # the usual layout: one dtypes lookup (~20 us)
        if not all(dt == _F8 for dt in df.dtypes.to_numpy()[:5]):
            return False
    elif any(c not in cols or df[c].dtype != _F8 for c in OHLCV):
        return False
    return bool(idx.is_monotonic_increasing and idx.is_unique)


def to_canonical(df: pd.DataFrame, name: str = "frame") -> pd.DataFrame:
    """Return ``df`` as a canonical frame: UTC ns index named ``timestamp``, float64 OHLCV.

    The one normalisation at the boundary of every public function. A canonical frame is
    returned **as is** (same object, extra columns kept: no copy, no cost). Anything else is
    converted once:

    * time: a :class:`~pandas.DatetimeIndex` of any resolution (s/ms/us/ns), or, when the index
      is not one, the first of the columns ``timestamp``, ``date``, ``datetime``, ``time``,
      ``open_time`` (any case; datetimes, ISO text, or epoch numbers whose unit s/ms/us/ns is
      told by magnitude). A tz-aware time is converted to UTC; a **naive time is taken as UTC**.
    * columns: names in any case and spacing (``Open``, ``CLOSE``), with the usual aliases
      (``Volume``/``vol``/``v``, ``o``/``h``/``l``/``c``); ``Adj Close`` is ignored. A missing
      volume becomes NaN (nothing here needs it; volume-based notes then say "n/a").
    * values: integers, nullable and numeric-text columns become float64. Other columns are
      dropped (they are not OHLCV; keep them in your own frame).

    Returns:
        The canonical frame (``attrs`` copied). Rows keep their order and count, so positions in
        the result are positions in ``df``.

    Raises:
        DataError: naming the column or row: not a DataFrame, no usable time, no ``close`` (or
        open/high/low) column, a non-numeric price, a missing or unparsable time, a time that
        goes backwards or repeats (fix: ``df.sort_index()`` / drop the duplicates).
    """
    if is_canonical(df):
        return df
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{name} is a {type(df).__name__}, not a DataFrame",
                        hint="pass a pandas DataFrame of candles")
    cols = _ohlcv_columns(df, name)
    idx = _time_index(df, name)
    res = pd.DataFrame(
        {c: _numeric_column(df, cols[c], c, idx, name) if c in cols
         else np.full(len(df), np.nan) for c in OHLCV},
        index=idx,
    )
    _check_order(idx, name)
    res.attrs.update(getattr(df, "attrs", {}))
    return res


def _norm(label: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(label).strip().lower())


def _ohlcv_columns(df: pd.DataFrame, name: str) -> dict[str, object]:
    """Our column name -> the user's column label, for the columns present."""
    by_norm: dict[str, object] = {}
    for label in df.columns:
        by_norm.setdefault(_norm(label), label)
    out: dict[str, object] = {}
    for c in OHLCV:
        for alias in (c, *COLUMN_ALIASES[c]):
            if alias in by_norm:
                out[c] = by_norm[alias]
                break
    missing = [c for c in PRICE_COLUMNS if c not in out]
    if missing:
        adj = [str(lbl) for n, lbl in by_norm.items() if n in ("adj_close", "adjclose")]
        extra = f" ({adj[0]!r} is not used as the close)" if adj and "close" in missing else ""
        shown = ", ".join(map(repr, list(df.columns)[:12])) or "none"
        raise DataError(
            f"{name} has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}{extra}; "
            f"its columns are {shown}",
            hint="name the price columns open, high, low, close (any case; Open/High/Low/Close "
                 "work too)",
        )
    return out


def _time_index(df: pd.DataFrame, name: str) -> pd.DatetimeIndex:
    """The bar open times as a UTC ns DatetimeIndex named ``timestamp``."""
    idx = df.index
    if isinstance(idx, pd.DatetimeIndex):
        source, values = "index", idx
    else:
        by_norm = {_norm(c): c for c in df.columns}
        col = next((by_norm[t] for t in TIME_COLUMNS if t in by_norm), None)
        if col is None:
            raise DataError(
                f"{name} has no time: the index is a {type(idx).__name__} and there is no "
                f"{'/'.join(TIME_COLUMNS)} column",
                hint="index the frame by the bar open time (df.set_index('timestamp')) or add a "
                     "timestamp column",
            )
        source, values = f"column {col!r}", _parse_times(df[col], col, name)
    if values.tz is None:
        values = values.tz_localize("UTC")  # naive times are taken as UTC (documented)
    elif str(values.tz) != "UTC":
        values = values.tz_convert("UTC")
    values = values.as_unit("ns")
    missing = np.flatnonzero(np.asarray(values.isna()))
    if missing.size:
        raise DataError(f"{name} {source} has a missing time at row {int(missing[0])}",
                        hint="drop the row or fill in its time")
    return values.rename(INDEX_NAME)


def _parse_times(col: pd.Series, label: object, name: str) -> pd.DatetimeIndex:
    if col.dtype.kind == "M":
        return pd.DatetimeIndex(col)
    if col.dtype.kind in "iuf":
        v = col.to_numpy(dtype=np.float64)
        mag = float(np.nanmax(np.abs(v))) if np.isfinite(v).any() else 0.0
        # Epoch numbers: the unit is told by magnitude (as data.validate does per row).
        unit = "s" if mag < 1e11 else "ms" if mag < 1e14 else "us" if mag < 1e17 else "ns"
        return pd.DatetimeIndex(pd.to_datetime(col, unit=unit, utc=True))
    try:
        return pd.DatetimeIndex(pd.to_datetime(col, utc=True, format="ISO8601"))
    except (ValueError, TypeError):
        parsed = pd.to_datetime(col, utc=True, format="ISO8601", errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy() & col.notna().to_numpy())
        row = int(bad[0]) if bad.size else 0
        raise DataError(
            f"{name} column {label!r} holds {col.iloc[row]!r} at row {row}, not a time",
            hint="use ISO 8601 times like 2024-01-31 or 2024-01-31T00:00:00Z",
        ) from None


def _numeric_column(df: pd.DataFrame, label: object, ours: str, idx: pd.DatetimeIndex,
                    name: str) -> np.ndarray:
    col = df[label]
    if isinstance(col, pd.DataFrame):
        raise DataError(f"{name} has more than one column named {label!r}",
                        hint="keep one of them")
    kind = col.dtype.kind
    if kind in "fiu":
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    # Bools are not prices; numeric text ("71234.5") and Python numbers in object columns are.
    num = pd.Series(np.nan, index=col.index) if kind == "b" else pd.to_numeric(
        col, errors="coerce")
    bad = np.flatnonzero(num.isna().to_numpy() & col.notna().to_numpy())
    if bad.size:
        row = int(bad[0]) if bad.size else 0
        raise DataError(
            f"{name} column {label!r} ({ours}) is not numeric: row {row} holds "
            f"{col.iloc[row]!r}",
            timestamp=idx[row],
            hint=f"convert it first, e.g. pd.to_numeric(df[{label!r}])",
        )
    return num.to_numpy(dtype=np.float64, na_value=np.nan)


def _check_order(idx: pd.DatetimeIndex, name: str) -> None:
    if idx.is_monotonic_increasing and idx.is_unique:
        return
    t = idx.asi8
    step = np.diff(t)
    back = np.flatnonzero(step < 0)
    if back.size:
        i = int(back[0]) + 1
        raise DataError(
            f"{name} is not sorted by time: row {i} ({idx[i]}) comes after row {i - 1} "
            f"({idx[i - 1]})",
            timestamp=idx[i],
            hint="sort it first: df.sort_index()",
        )
    i = int(np.flatnonzero(step == 0)[0]) + 1
    raise DataError(
        f"{name} has a duplicated time at rows {i - 1} and {i}",
        timestamp=idx[i],
        hint="drop the repeats first: df[~df.index.duplicated()]",
    )


def like_input(out: pd.Series | pd.DataFrame, df: pd.DataFrame) -> pd.Series | pd.DataFrame:
    """Put a per-bar result computed on ``to_canonical(df)`` back on ``df``'s own index, so that
    ``df["x"] = indicator(df)`` aligns whatever index ``df`` had (naive, another zone, a
    RangeIndex with a time column). No copy when ``df`` was canonical."""
    if out.index is df.index or len(out) != len(df):
        return out
    out = out.copy(deep=False)
    out.index = df.index
    return out
