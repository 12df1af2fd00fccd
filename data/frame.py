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

OHLCV: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
INDEX_NAME = "timestamp"


class DataError(ValueError):
    """Bad input data, with enough context to find and fix it.

    Attributes:
        what: one-line description of the problem.
        source: file name (or other origin) of the data, if known.
        row: 1-based line number in the source file (header counted), if known.
        timestamp: the offending bar's timestamp, if known.
        hint: how to fix it.
    """

    def __init__(
        self,
        what: str,
        *,
        source: str | None = None,
        row: int | None = None,
        timestamp: object = None,
        hint: str | None = None,
    ) -> None:
        self.what = what
        self.source = source
        self.row = row
        self.timestamp = timestamp
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.timestamp is not None:
            ts = self.timestamp
            if isinstance(ts, pd.Timestamp):
                ts = ts.isoformat()
            where.append(f"timestamp {ts}")
        msg = (", ".join(where) + ": " if where else "") + self.what
        if self.hint:
            msg += f" (fix: {self.hint})"
        return msg


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
    return n * _TF_UNITS[m.group(2)]


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


def to_canonical(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` as a canonical frame: UTC index named ``timestamp``, float64 OHLCV only.

    A naive index is taken to be UTC; an aware one is converted. Column names are matched
    case-insensitively. This is a shape conversion only: use :func:`data.validate.validate` to
    check the values.
    """
    out = df.rename(columns={c: str(c).strip().lower() for c in df.columns})
    if not isinstance(out.index, pd.DatetimeIndex) and INDEX_NAME in out.columns:
        out = out.set_index(INDEX_NAME)
    idx = pd.DatetimeIndex(out.index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    # pandas 3 defaults to microseconds; one unit everywhere keeps asi8 arithmetic honest.
    idx = idx.as_unit("ns")
    missing = [c for c in OHLCV if c not in out.columns]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}",
            hint="provide open, high, low, close and volume columns",
        )
    res = pd.DataFrame(
        {c: out[c].to_numpy(dtype=np.float64) for c in OHLCV},
        index=idx.rename(INDEX_NAME),
    )
    res.attrs.update(getattr(df, "attrs", {}))
    return res
