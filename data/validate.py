"""Validation of parsed candle data: every problem gets a specific, located, fixable message.

:func:`validate` takes a *raw* frame (as parsed from a file, before canonicalisation: timestamps
may still be strings or epoch numbers, price cells may still be text) and returns a
:class:`ValidationReport`. :func:`clean` does the same checks and also returns the canonical
frame when there are no errors; :func:`data.loaders.load` uses it.

Every check is vectorised (numpy / pandas): there is no Python loop over rows, so a million rows
validate in a fraction of a second (see ``benchmarks/bench_data.py``).

Policies (nothing is ever dropped, filled or reordered silently):

* gaps: ``"error"`` (a gap is an error), ``"warn"`` (listed as a warning) or ``"keep"`` (only
  recorded in :attr:`ValidationReport.gaps`). Gaps are never filled.
* duplicates: ``"error"`` (default) or ``"drop-identical"`` (exact repeats are dropped and a
  warning says so). Duplicates with different values are always an error.
* sort: ``False`` (default; unsorted rows are an error) or ``True`` (rows are sorted by time and a
  warning says where the order broke).
* time zones: naive timestamps are taken as UTC (a warning says so, except for date-only values);
  a single non-UTC offset is converted to UTC with a warning; mixed offsets are an error.
* dates: bars must open between :data:`MIN_DATE` and :data:`MAX_DATE` (1990 to 2100): anything
  else is a wrong time scale (Excel serial days or day numbers read as epoch seconds, a unit
  mix-up) far more often than real data. ``allow_dates=True`` (CLI ``--allow-dates``) widens this
  to what a timestamp can hold (1678 to 2261); values beyond that are always an error, never
  wrapped around.
* one bar: its timeframe cannot be inferred, so a one-bar file needs ``timeframe``.
* grid: bars open on their timeframe's grid (daily bars at 00:00 UTC, hourly ones on the hour,
  weekly ones on Monday 00:00 UTC); a daily file opening at 12:00 is in another time zone, and
  would be refused later by resampling and the weekly EMA.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data.frame import (
    INDEX_NAME,
    MONTHLY,
    OHLCV,
    PRICE_COLUMNS,
    DataError,
    format_timeframe,
    infer_timeframe,
    parse_timeframe,
)

GapPolicy = Literal["error", "warn", "keep"]
DuplicatePolicy = Literal["error", "drop-identical"]
GAP_POLICIES: tuple[str, ...] = ("error", "warn", "keep")
DUPLICATE_POLICIES: tuple[str, ...] = ("error", "drop-identical")

_NAT = np.iinfo(np.int64).min
MIN_DATE = pd.Timestamp("1990-01-01", tz="UTC")
"""Earliest bar open accepted without ``allow_dates`` (BTC trades from 2010; other candle data
we meet starts no earlier than 1990)."""
MAX_DATE = pd.Timestamp("2100-01-01", tz="UTC")
"""Bars must open before this without ``allow_dates``."""
# What int64 nanoseconds can hold (pandas' Timestamp.min/max, rounded inwards to whole days).
_NS_MIN = pd.Timestamp("1677-09-22", tz="UTC")
_NS_MAX = pd.Timestamp("2262-04-10", tz="UTC")
_YEAR_S = 365.2425 * 86400
# Bar sizes exchanges and charting tools offer; a run at one of these is a second timeframe.
_STANDARD_NS = frozenset(
    pd.Timedelta(t).value
    for t in ("1min", "3min", "5min", "15min", "30min", "1h", "2h", "4h", "6h", "8h", "12h",
              "1D", "3D", "7D")
)
_WEEK_NS = pd.Timedelta(days=7).value
_MONDAY_NS = pd.Timestamp("1970-01-05", tz="UTC").value  # weekly bars open on Mondays
# Consecutive bar spacings that must agree before a different spacing counts as a second
# timeframe rather than a gap or a stray bar.
_MIXED_RUN = 3
_SHOW = 5  # how many further rows/gaps a message lists before "and N more"

# Names people give to our columns; used to say "column 'Closing' looks like 'close'".
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "timestamp": ("date", "time", "datetime", "open_time", "opentime", "unix", "ts", "period"),
    "open": ("o", "opening", "open_price", "first"),
    "high": ("h", "hi", "max", "high_price", "highest"),
    "low": ("l", "lo", "min", "low_price", "lowest"),
    "close": ("c", "closing", "close_price", "last", "price"),
    "volume": ("v", "vol", "volume_btc", "base_volume", "amount", "qty", "quantity"),
}


@dataclass
class ValidationReport:
    """What validation found in one data set.

    Attributes:
        source: file name (or other origin) of the data.
        errors: problems that make the data unusable, each a :class:`DataError` naming the
            source, the 1-based line in the file, the timestamp and a fix.
        warnings: problems that were handled in a stated way (offset converted, rows sorted on
            request, gaps under the ``"warn"`` policy, ...), also as :class:`DataError` objects;
            ``str(w)`` is the message.
        gaps: missing periods as ``(first_missing_open, last_missing_open, n_missing_bars)``.
        timeframe: the bar timeframe (``"1h"``, ``"1d"``, ``"1M"``), given or inferred; ``None``
            when it cannot be known (fewer than two bars).
        rows: number of data rows read (before any requested dropping).
        start, end: open time of the first and last bar (UTC), when known.
        zero_volume: number of bars with zero volume (legitimate: exchange halts, no trades).
        time_unit: how timestamps were written: ``"iso"``, ``"s"``, ``"ms"``, ``"us"``, ``"ns"``
            or ``"datetime"`` (already parsed), or a mix like ``"ms+us"``.
        format: the file format (set by :func:`data.loaders.load`), if known.
    """

    source: str | None = None
    errors: list[DataError] = field(default_factory=list)
    warnings: list[DataError] = field(default_factory=list)
    gaps: list[tuple[pd.Timestamp, pd.Timestamp, int]] = field(default_factory=list)
    timeframe: str | None = None
    rows: int = 0
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    zero_volume: int = 0
    time_unit: str | None = None
    format: str | None = None

    @property
    def ok(self) -> bool:
        """``True`` when there are no errors (warnings are allowed)."""
        return not self.errors

    @property
    def missing_bars(self) -> int:
        """Total number of bars missing in all gaps."""
        return sum(g[2] for g in self.gaps)

    def raise_for_errors(self) -> None:
        """Raise the first error as a :class:`DataError`, saying how many more problems exist.

        Does nothing when :attr:`ok`.
        """
        if not self.errors:
            return
        first = self.errors[0]
        more = len(self.errors) - 1
        hint = first.hint
        if more:
            where = f"btc-backtest data validate {self.source}" if self.source else "summary()"
            extra = f"{more} more problem(s) found; run `{where}` to list them all"
            hint = f"{hint}; {extra}" if hint else extra
        raise DataError(
            first.what, source=first.source, row=first.row, timestamp=first.timestamp, hint=hint
        )

    def summary(self) -> str:
        """Human-readable text: span, rows, timeframe, gaps, warnings and errors."""
        fmt = f" ({self.format})" if self.format else ""
        lines = [f"source:    {self.source or '(in memory)'}{fmt}"]
        if self.start is not None and self.end is not None:
            tf = self.timeframe
            lines.append(f"span:      {_fmt_ts(self.start, tf)} -> {_fmt_ts(self.end, tf)}")
        lines.append(f"rows:      {self.rows:,}")
        lines.append(f"timeframe: {self.timeframe or 'unknown'}")
        if self.zero_volume:
            lines.append(f"zero-volume bars: {self.zero_volume:,} (legitimate: halts, no trades)")
        if self.gaps:
            lines.append(f"gaps:      {len(self.gaps):,} ({self.missing_bars:,} missing bars)")
            for first, last, n in self.gaps[:50]:
                tf = self.timeframe
                lines.append(f"  {_fmt_ts(first, tf)} -> {_fmt_ts(last, tf)}  ({_bars(n)})")
            if len(self.gaps) > 50:
                lines.append(f"  ... and {len(self.gaps) - 50:,} more")
        else:
            lines.append("gaps:      none")
        lines.append(f"warnings:  {len(self.warnings)}")
        lines.extend(f"  - {w}" for w in self.warnings)
        lines.append(f"errors:    {len(self.errors)}")
        lines.extend(f"  - {e}" for e in self.errors)
        lines.append("status:    " + ("OK" if self.ok else "INVALID"))
        return "\n".join(lines)


def _fmt_ts(ts: pd.Timestamp, timeframe: str | None = None) -> str:
    """``2024-01-31`` for daily and coarser bars, ``2024-01-31 13:00`` for intraday ones."""
    daily = timeframe is not None and timeframe[-1] in "dwM"
    if daily or (timeframe is None and ts == ts.normalize()):
        return ts.strftime("%Y-%m-%d")
    return ts.strftime("%Y-%m-%d %H:%M" + (":%S" if ts.second else ""))


def _bars(n: int) -> str:
    return f"{n:,} bar" + ("" if n == 1 else "s")


def validate(
    raw: pd.DataFrame,
    *,
    source: str | None = None,
    gaps: GapPolicy = "warn",
    rows: np.ndarray | list[int] | None = None,
    timeframe: str | None = None,
    duplicates: DuplicatePolicy = "error",
    sort: bool = False,
    header_row: int | None = 1,
    allow_dates: bool = False,
) -> ValidationReport:
    """Check parsed candle data and report every problem found.

    Args:
        raw: the parsed data: a ``timestamp`` column (ISO strings, epoch numbers in s/ms/µs, or
            datetimes) or a DatetimeIndex, and columns ``open, high, low, close, volume`` (numbers
            or text). Column names are matched case-insensitively.
        source: file name used in messages (default ``raw.attrs["source"]``).
        gaps: gap policy, ``"error"``, ``"warn"`` or ``"keep"``.
        rows: 1-based line number in the file of each row of ``raw`` (header counted). Default:
            position + 2, i.e. the line numbers of a CSV with a one-line header.
        timeframe: expected timeframe (``"1h"``); inferred from the most common spacing if
            ``None``.
        duplicates: ``"error"`` or ``"drop-identical"``.
        sort: sort rows by time instead of reporting unsorted rows as an error.
        header_row: line of the header, cited for column problems (``None``: no header).
        allow_dates: accept bars outside :data:`MIN_DATE` .. :data:`MAX_DATE` (as far as a
            timestamp can hold).

    Returns:
        The :class:`ValidationReport` (call ``raise_for_errors()`` to turn errors into an
        exception).
    """
    return clean(
        raw,
        source=source,
        gaps=gaps,
        rows=rows,
        timeframe=timeframe,
        duplicates=duplicates,
        sort=sort,
        header_row=header_row,
        allow_dates=allow_dates,
    )[1]


class _Ctx:
    """Per-call state: where rows came from, and the report being filled."""

    def __init__(self, report: ValidationReport, rows: np.ndarray, raw_ts: pd.Series | None):
        self.report = report
        self.rows = rows
        self.raw_ts = raw_ts
        self.ts = np.full(len(rows), _NAT, dtype=np.int64)
        # Cells already reported as non-numeric, per column (not reported again as NaN).
        self.non_numeric: dict[str, np.ndarray] = {}
        # Epoch inputs: the raw numbers (float) and the unit told by magnitude, for messages
        # that name the likely time-scale mistake.
        self.epoch: np.ndarray | None = None
        self.epoch_unit: str | None = None

    def stamp(self, pos: int) -> object:
        """The timestamp of row ``pos`` for a message: parsed if possible, else the raw text."""
        if self.ts[pos] != _NAT:
            return pd.Timestamp(int(self.ts[pos]), unit="ns", tz="UTC")
        if self.raw_ts is not None:
            val = self.raw_ts.iloc[pos]
            return None if _isna(val) else str(val)
        return None

    def _make(self, what: str, pos: int | None, hint: str | None) -> DataError:
        row = int(self.rows[pos]) if pos is not None else None
        stamp = self.stamp(pos) if pos is not None else None
        return DataError(what, source=self.report.source, row=row, timestamp=stamp, hint=hint)

    def error(self, what: str, pos: int | None = None, hint: str | None = None) -> None:
        self.report.errors.append(self._make(what, pos, hint))

    def warn(self, what: str, pos: int | None = None, hint: str | None = None) -> None:
        self.report.warnings.append(self._make(what, pos, hint))

    def also(self, positions: np.ndarray) -> str:
        """``" (also rows 7, 9 and 3 more)"`` for the occurrences after the first."""
        rest = positions[1:]
        if len(rest) == 0:
            return ""
        shown = ", ".join(str(int(r)) for r in self.rows[rest[:_SHOW]])
        more = f" and {len(rest) - _SHOW:,} more" if len(rest) > _SHOW else ""
        return f" (also row{'s' if len(rest) > 1 else ''} {shown}{more})"


def _isna(val: object) -> bool:
    try:
        return bool(pd.isna(val))
    except (TypeError, ValueError):
        return False


def clean(
    raw: pd.DataFrame,
    *,
    source: str | None = None,
    gaps: GapPolicy = "warn",
    rows: np.ndarray | list[int] | None = None,
    timeframe: str | None = None,
    duplicates: DuplicatePolicy = "error",
    sort: bool = False,
    header_row: int | None = 1,
    allow_dates: bool = False,
) -> tuple[pd.DataFrame | None, ValidationReport]:
    """Validate like :func:`validate` and build the canonical frame.

    Returns:
        ``(frame, report)``: ``frame`` is the canonical frame (see :mod:`data.frame`) when
        ``report.ok``, else ``None``. ``frame.attrs`` holds ``source``, ``timeframe`` and
        ``validation`` (the report).
    """
    if gaps not in GAP_POLICIES:
        raise ValueError(f"gaps must be one of {', '.join(GAP_POLICIES)}, got {gaps!r}")
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(
            f"duplicates must be one of {', '.join(DUPLICATE_POLICIES)}, got {duplicates!r}"
        )
    source = source if source is not None else raw.attrs.get("source")
    report = ValidationReport(source=source, rows=len(raw))
    n = len(raw)
    rows_arr = np.arange(2, n + 2) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows_arr) != n:
        raise ValueError(f"rows has {len(rows_arr)} entries for {n} data rows")

    cols = _find_columns(raw, report, header_row)
    if cols is None:
        return None, report
    ts_col = cols.pop(INDEX_NAME)
    ctx = _Ctx(report, rows_arr, ts_col if ts_col.dtype.kind not in "Mm" else None)

    if n == 0:
        ctx.error(
            "no data rows: the file has a header but no candles",
            hint="the download or export probably failed; fetch the file again",
        )
        return None, report

    _parse_timestamps(ts_col, ctx)
    _check_dates(ctx, allow_dates)
    values = {c: _numeric(s, c, ctx) for c, s in cols.items()}
    volume_missing = bool(raw.attrs.get("volume_missing"))
    if volume_missing:
        values["volume"] = np.full(n, np.nan)
    _check_values(values, ctx, volume_missing)

    keep = _check_order(values, ctx, duplicates, sort)
    _check_spacing(keep, ctx, timeframe, gaps)

    if not report.ok:
        return None, report
    index = pd.DatetimeIndex(
        pd.to_datetime(ctx.ts[keep], unit="ns", utc=True), name=INDEX_NAME
    ).as_unit("ns")
    frame = pd.DataFrame(
        {c: np.ascontiguousarray(values[c][keep], dtype=np.float64) for c in OHLCV}, index=index
    )
    frame.attrs.update(source=source, timeframe=report.timeframe, validation=report)
    return frame, report


# --- columns ---------------------------------------------------------------------------------


def _find_columns(
    raw: pd.DataFrame, report: ValidationReport, header_row: int | None
) -> dict[str, pd.Series] | None:
    """Map our column names to the raw columns; report missing/renamed ones."""
    names = {str(c).strip().lower(): c for c in raw.columns}
    found: dict[str, pd.Series] = {}
    lowered = [str(c).strip().lower() for c in raw.columns]
    twice = [c for c in (INDEX_NAME, *OHLCV) if lowered.count(c) > 1]
    if twice:
        where = [i + 1 for i, c in enumerate(lowered) if c == twice[0]]
        report.errors.append(DataError(
            f"{len(where)} columns are read as {twice[0]!r} (columns "
            f"{', '.join(map(str, where))} of the header)",
            source=report.source, row=header_row,
            hint="keep one of them: delete or rename the others in the header"))
        return None
    if INDEX_NAME in names:
        found[INDEX_NAME] = raw[names[INDEX_NAME]]
    elif isinstance(raw.index, pd.DatetimeIndex):
        found[INDEX_NAME] = pd.Series(raw.index, index=raw.index)
    needed = list(OHLCV)
    if raw.attrs.get("volume_missing"):
        needed.remove("volume")
    for c in needed:
        if c in names:
            found[c] = raw[names[c]]
    missing = [c for c in (INDEX_NAME, *needed) if c not in found]
    if not missing:
        return found
    unused = [str(c) for c in raw.columns if str(c).strip().lower() not in found]
    for c in missing:
        guess = _closest(c, unused)
        if guess is not None:
            unused.remove(guess)
            what = f"missing column {c!r}: column {guess!r} looks like {c!r}"
            hint = f"rename column {guess!r} to {c!r} in the header"
        else:
            what = f"missing column {c!r} (columns are: {', '.join(map(str, raw.columns))})"
            hint = (
                f"the header must contain {', '.join((INDEX_NAME, *OHLCV))}; if this is another "
                "format, force it with fmt=... (CLI --format)"
            )
        report.errors.append(DataError(what, source=report.source, row=header_row, hint=hint))
    return None


def _closest(name: str, candidates: list[str]) -> str | None:
    norm = {re.sub(r"[^a-z0-9_]", "", c.strip().lower()): c for c in candidates}
    for alias in (name, *_SYNONYMS.get(name, ())):
        if alias in norm:
            return norm[alias]
    match = difflib.get_close_matches(name, list(norm), n=1, cutoff=0.6)
    if match:
        return norm[match[0]]
    # "Closing", "close_usd": a candidate that starts with the name (or vice versa).
    for key, orig in norm.items():
        if len(key) >= 3 and (key.startswith(name) or name.startswith(key)):
            return orig
    return None


# --- timestamps ------------------------------------------------------------------------------

_NUMERIC_RE = re.compile(r"^\s*[+-]?\d+(\.\d*)?([eE][+-]?\d+)?\s*$")
_OFFSET_RE = r"(Z|[+-]\d{2}:?\d{2})$"
_TZ_HINT = "write timestamps in UTC (ISO 8601 with 'Z'), or export with the time zone set to UTC"
_EPOCH_UNITS = (("s", 1e11, 10**9), ("ms", 1e14, 10**6), ("us", 1e17, 10**3), ("ns", np.inf, 1))


def _parse_timestamps(col: pd.Series, ctx: _Ctx) -> None:
    """Fill ``ctx.ts`` (int64 ns UTC, NaT where invalid) and report timestamp problems."""
    kind = col.dtype.kind
    if kind == "m":
        ctx.error(
            f"the timestamp column holds durations ({col.dtype}), not dates",
            None,
            hint="store each bar's open time as a UTC datetime or an epoch number",
        )
        return
    if kind == "M":
        _from_datetimes(pd.DatetimeIndex(col), ctx, note="datetime")
        return
    if kind in "iuf":
        _from_epoch(col.to_numpy(), ctx)
        return
    fast = _utc_iso_fast(col)
    if fast is not None:
        _report_missing_ts(ctx, fast == _NAT)
        ctx.ts[:] = fast
        ctx.report.time_unit = "iso"
        return
    text = col.astype("str").str.strip()
    text = text.where(col.notna())
    first = text.dropna()
    first = first.iloc[0] if len(first) else None
    if first is not None and _NUMERIC_RE.match(first):
        # Via float: a 25-digit integer must become a (huge) number, not an overflow.
        nums = pd.to_numeric(text, errors="coerce").astype(np.float64)
        _report_unparsable(nums.isna().to_numpy() & text.notna().to_numpy(), ctx, epoch=True)
        _from_epoch(nums.to_numpy(dtype=np.float64), ctx)
        return
    _from_iso(text, ctx)


def _utc_iso_fast(col: pd.Series) -> np.ndarray | None:
    """int64 ns for the common case (every timestamp ISO 8601 ending in 'Z'), else ``None``.

    Arrow's string->timestamp cast is about 20x faster than ``pd.to_datetime`` on a million
    rows. Anything unusual (another offset, naive values, a bad cell) returns ``None`` and goes
    through the general path, which explains the problem.
    """
    try:
        arr = pa.array(col.array) if col.dtype.kind != "O" else pa.array(col, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return None  # e.g. Python ints too big for int64: the general path explains them
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    if not pc.all(pc.ends_with(arr, "Z")).as_py():  # None when all values are null
        return None
    try:
        cast = pc.cast(arr, pa.timestamp("ns", "UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return np.asarray(cast.to_numpy(zero_copy_only=False)).view(np.int64)


def _report_missing_ts(ctx: _Ctx, missing: np.ndarray) -> None:
    pos = np.flatnonzero(missing)
    if len(pos):
        ctx.error(
            f"missing timestamp{ctx.also(pos)}",
            pos[0],
            hint="every row needs the bar's open time; fill it in or delete the row",
        )


def _report_unparsable(bad: np.ndarray, ctx: _Ctx, epoch: bool) -> None:
    pos = np.flatnonzero(bad)
    if not len(pos):
        return
    val = ctx.raw_ts.iloc[pos[0]] if ctx.raw_ts is not None else "?"
    expected = "an epoch number" if epoch else "ISO 8601 like 2024-01-31T00:00:00Z"
    ctx.error(
        f"unparsable timestamp {str(val)!r}{ctx.also(pos)}",
        pos[0],
        hint=f"timestamps must be {expected}; correct or delete the row",
    )


def _from_epoch(values: np.ndarray, ctx: _Ctx) -> None:
    """Epoch numbers whose unit is told by magnitude: s < 1e11 <= ms < 1e14 <= µs < 1e17 <= ns.

    Binance switched its spot kline files from milliseconds to microseconds in 2025 and
    CryptoDataDownload files mix s and ms, so the unit is decided per row. A value that no
    timestamp can hold in its unit (year >= 2262, e.g. seconds >= 9.2e9) is an error, never
    wrapped around into another century.
    """
    v = values
    is_int = v.dtype.kind in "iu"
    f = v.astype(np.float64)
    valid = np.isfinite(f)
    if not is_int:
        _report_missing_ts(ctx, np.isnan(f) & ~_already_reported(ctx, f))
    which = np.searchsorted([u[1] for u in _EPOCH_UNITS[:-1]], np.abs(f), side="right")
    per_second = np.array([1e9 / u[2] for u in _EPOCH_UNITS])  # units per second
    with np.errstate(invalid="ignore"):
        secs = f / per_second[np.minimum(which, len(_EPOCH_UNITS) - 1)]
    fits = valid & (secs > _NS_MIN.value / 1e9) & (secs < _NS_MAX.value / 1e9)
    used = []
    for k, (name, _upper, mult) in enumerate(_EPOCH_UNITS):
        sel = valid & (which == k)
        if not sel.any():
            continue
        used.append(name)
        ok = sel & fits
        if is_int:
            # Within the representable range the product cannot overflow int64.
            ctx.ts[ok] = v[ok].astype(np.int64) * mult
        else:
            # Round in the input unit first: float seconds like 1325317920.0 are exact.
            ctx.ts[ok] = np.round(f[ok] * mult).astype(np.int64)
    ctx.report.time_unit = "+".join(used) if used else None
    ctx.epoch = f
    ctx.epoch_unit = used[0] if len(used) == 1 else None
    beyond = np.flatnonzero(valid & ~fits)
    if len(beyond):
        i = beyond[0]
        unit = _EPOCH_UNITS[min(int(which[i]), len(_EPOCH_UNITS) - 1)][0]
        year = 1970 + secs[i] / _YEAR_S
        ctx.error(
            f"epoch timestamp {_raw_text(ctx, i, v[i])} is out of range: read as "
            f"{_UNIT_NAMES[unit]} (told by its size) it is in the year {int(year)}; a timestamp "
            f"can only hold {_NS_MIN.year} to {_NS_MAX.year}{ctx.also(beyond)}",
            i,
            hint=_scale_cause(f[beyond], unit) + "correct the timestamps or delete the rows",
        )
    if len(used) > 1:
        ctx.warn(
            f"timestamps mix epoch units ({', '.join(used)}); each was converted by its magnitude",
            hint="check that the file was not assembled from differently formatted downloads",
        )


_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def _raw_text(ctx: _Ctx, pos: int, x: object) -> str:
    """The timestamp as written in the file when known, else the number."""
    if ctx.raw_ts is not None and not _isna(ctx.raw_ts.iloc[pos]):
        return str(ctx.raw_ts.iloc[pos]).strip()
    return _raw_number(x)


def _raw_number(x: object) -> str:
    if isinstance(x, (float, np.floating)) and float(x).is_integer() and abs(x) < 1e30:
        return f"{int(x)}"
    return str(x)


def _scale_cause(raw: np.ndarray, unit: str | None) -> str:
    """``"these numbers look like ...; "`` naming the time scales that would put these epoch
    numbers (their median) into 1990-2100 (Excel serial days, days since 1970, another epoch
    unit), or ``""`` when none would."""
    vals = raw[np.isfinite(raw)]
    if not len(vals):
        return ""
    x = float(np.median(vals))
    lo, hi = MIN_DATE.value / 1e9, MAX_DATE.value / 1e9
    causes = []
    if lo <= (x - 25569) * 86400 < hi:
        causes.append("Excel serial dates (days since 1899-12-30)")
    if lo <= x * 86400 < hi:
        causes.append("days since 1970-01-01")
    for name, _upper, mult in _EPOCH_UNITS:
        if name != unit and lo <= x * mult / 1e9 < hi:
            read_as = _UNIT_NAMES.get(unit or "", unit)
            causes.append(f"epoch {_UNIT_NAMES[name]} (read as {read_as})")
    if not causes:
        return ""
    return (f"these numbers look like {' or '.join(causes)}, not epoch "
            f"{_UNIT_NAMES.get(unit or '', 'time')}; ")


def _check_dates(ctx: _Ctx, allow_dates: bool) -> None:
    """Refuse bars outside MIN_DATE..MAX_DATE (unless allowed) and, even when allowed, epoch
    seconds that put every bar into the first days of 1970 (a time scale mistake)."""
    ts = ctx.ts
    has = ts != _NAT
    if not has.any():
        return
    if allow_dates:
        # 1e6 s is 11.6 days: Excel serials (~45,000) and day numbers (~20,000) fall here.
        if ctx.epoch_unit == "s" and np.nanmax(np.abs(ctx.epoch[has])) < 1e6:
            pos = np.flatnonzero(has)
            ctx.error(
                "epoch seconds below 1,000,000 put every bar in the first days of 1970: this "
                "is not a time scale candle data uses",
                pos[0],
                hint=_scale_cause(ctx.epoch[has], "s") + "convert the timestamps to ISO 8601 "
                "or epoch seconds",
            )
        return
    bad = np.flatnonzero(has & ((ts < MIN_DATE.value) | (ts >= MAX_DATE.value)))
    if not len(bad):
        return
    cause = _scale_cause(ctx.epoch[bad], ctx.epoch_unit) if ctx.epoch is not None else ""
    ctx.error(
        f"bar opens outside the accepted dates {MIN_DATE:%Y-%m-%d} to {MAX_DATE:%Y-%m-%d}"
        f"{ctx.also(bad)}",
        bad[0],
        hint=cause + "correct the timestamps; if these dates are really meant, pass "
        "allow_dates=True (CLI --allow-dates)",
    )


def _already_reported(ctx: _Ctx, v: np.ndarray) -> np.ndarray:
    """Rows whose raw timestamp text was present but unparsable (reported separately)."""
    if ctx.raw_ts is None or ctx.raw_ts.dtype.kind in "iuf":
        return np.zeros(len(v), bool)
    return ctx.raw_ts.notna().to_numpy()


def _from_datetimes(idx: pd.DatetimeIndex, ctx: _Ctx, note: str, dates_only: bool = False) -> None:
    if idx.unit != "ns":
        # pandas keeps s/ms/us resolution for dates nanoseconds cannot hold (year 2300):
        # report them here rather than let the conversion below overflow.
        probe = idx if idx.tz is not None else idx.tz_localize("UTC")
        beyond = np.flatnonzero(np.asarray((probe < _NS_MIN) | (probe > _NS_MAX)))
        if len(beyond):
            raw = ctx.raw_ts.iloc[beyond[0]] if ctx.raw_ts is not None else idx[beyond[0]]
            ctx.error(
                f"timestamp {str(raw)!r} is beyond the dates a timestamp can hold "
                f"({_NS_MIN.year} to {_NS_MAX.year}){ctx.also(beyond)}",
                beyond[0],
                hint="correct the date or delete the row",
            )
            keep = np.ones(len(idx), bool)
            keep[beyond] = False
            idx = idx.where(keep)
    missing = np.asarray(idx.isna())
    if idx.tz is None:
        if not dates_only and not missing.all():
            ctx.warn(
                "timestamps have no time zone; they were taken as UTC",
                int(np.argmin(missing)),
                hint=_TZ_HINT if note != "datetime" else "use a tz-aware UTC index",
            )
        idx = idx.tz_localize("UTC")
    elif str(idx.tz) != "UTC":
        first = int(np.argmin(missing))
        ctx.warn(
            f"timestamps carry UTC offset {str(idx.tz).removeprefix('UTC')}; converted to UTC",
            None if missing.all() else first,
            hint=_TZ_HINT,
        )
        idx = idx.tz_convert("UTC")
    ns = idx.as_unit("ns").asi8.copy()
    ns[missing] = _NAT
    ctx.ts[:] = ns
    ctx.report.time_unit = note


def _from_iso(text: pd.Series, ctx: _Ctx) -> None:
    present = text.notna().to_numpy()
    _report_missing_ts(ctx, ~present)
    dates_only = bool((text.dropna().str.len() <= 10).all())
    try:
        parsed = pd.to_datetime(text, format="ISO8601")
    except (ValueError, OverflowError) as exc:
        parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        bad = parsed.isna().to_numpy() & present
        if bad.any():
            _report_unparsable(bad, ctx, epoch=False)
        elif "mixed" in str(exc).lower():
            _mixed_offsets(text, ctx)
        # The utc=True parse is exact for every parsable row (and right when one offset is
        # merely written two ways, Z and +00:00); keep it so the other checks can still run.
        _from_datetimes(pd.DatetimeIndex(parsed), ctx, note="iso")
        return
    _from_datetimes(pd.DatetimeIndex(parsed), ctx, note="iso", dates_only=dates_only)


def _offset_minutes(off: str | float) -> float | None:
    if not isinstance(off, str):
        return None
    if off == "Z":
        return 0.0
    sign = -1.0 if off[0] == "-" else 1.0
    digits = off[1:].replace(":", "")
    return sign * (int(digits[:2]) * 60 + int(digits[2:]))


def _mixed_offsets(text: pd.Series, ctx: _Ctx) -> None:
    """Report mixed UTC offsets, or naive timestamps mixed with aware ones."""
    # Only the time part carries an offset: "2024-01-31" ends in "-31" but has none.
    has_time = text.str.contains(r"[T ]\d", regex=True, na=False)
    offs = text.str.extract(_OFFSET_RE, expand=False).where(has_time)
    minutes = offs.map(_offset_minutes)
    present = text.notna().to_numpy()
    mins = minutes.to_numpy(dtype=np.float64)
    vals = mins[present]
    if np.all(vals == vals[0]):
        return  # one offset written two ways (Z and +00:00): not mixed
    first = int(np.argmax(present))
    naive = np.isnan(mins) & present
    if naive.any() and (~np.isnan(mins) & present).any():
        pos = np.flatnonzero(naive)
        aware = int(np.flatnonzero(~np.isnan(mins) & present)[0])
        ctx.error(
            f"timestamps mix time-zone-aware and naive values: row {ctx.rows[aware]} has offset "
            f"{offs.iloc[aware]} but this one has none{ctx.also(pos)}",
            pos[0],
            hint=_TZ_HINT,
        )
        return
    differ = np.flatnonzero(present & (mins != mins[first]))
    ctx.error(
        f"mixed UTC offsets: row {ctx.rows[first]} has {offs.iloc[first]} but this row has "
        f"{offs.iloc[differ[0]]} (often a daylight-saving change){ctx.also(differ)}",
        differ[0],
        hint=_TZ_HINT,
    )


# --- values ----------------------------------------------------------------------------------


def _numeric(col: pd.Series, name: str, ctx: _Ctx) -> np.ndarray:
    """Column as float64; text cells that are not numbers are reported."""
    if col.dtype.kind in "iufb":
        return col.to_numpy(dtype=np.float64)
    text = col.astype("str").str.strip().where(col.notna())
    nums = pd.to_numeric(text, errors="coerce")
    bad_mask = nums.isna().to_numpy() & text.notna().to_numpy() & (text != "").to_numpy()
    ctx.non_numeric[name] = bad_mask
    bad = np.flatnonzero(bad_mask)
    if len(bad):
        ctx.error(
            f"non-numeric value {text.iloc[bad[0]]!r} in column {name!r}{ctx.also(bad)}",
            bad[0],
            hint="prices and volume must be plain numbers with '.' as the decimal point and no "
            "thousands separator",
        )
    return nums.to_numpy(dtype=np.float64)


def _check_values(values: dict[str, np.ndarray], ctx: _Ctx, volume_missing: bool) -> None:
    # A row with no prices at all is one problem (an empty period), not four NaN cells.
    empty_bar = np.logical_and.reduce([np.isnan(values[c]) for c in PRICE_COLUMNS])
    for c in PRICE_COLUMNS:
        if c in ctx.non_numeric:
            empty_bar &= ~ctx.non_numeric[c]
    empty = np.flatnonzero(empty_bar)
    if len(empty):
        ctx.error(
            f"bar has no prices (open, high, low and close are all empty){ctx.also(empty)}",
            empty[0],
            hint="some exports (Kaggle's Bitstamp minutes, Yahoo 'null' rows) write periods "
            "without trades this way; delete these rows: the missing periods are then reported "
            "as gaps, never filled",
        )
    for c in OHLCV:
        if c == "volume" and volume_missing:
            continue
        v = values[c]
        reported = ctx.non_numeric.get(c)
        nan_mask = np.isnan(v) & ~empty_bar
        if reported is not None:
            nan_mask &= ~reported
        nan = np.flatnonzero(nan_mask)
        if len(nan):
            ctx.error(
                f"missing value (NaN) in {c!r}{ctx.also(nan)}",
                nan[0],
                hint="a candle needs all of open, high, low, close and volume; fill the value "
                "from another source or delete the row (it is never filled automatically)",
            )
        inf = np.flatnonzero(np.isinf(v))
        if len(inf):
            ctx.error(
                f"infinite value in {c!r}{ctx.also(inf)}",
                inf[0],
                hint="correct the value; it is probably a division by zero upstream",
            )
    for c in PRICE_COLUMNS:
        v = values[c]
        bad = np.flatnonzero(v <= 0)
        if len(bad):
            ctx.error(
                f"non-positive price: {c} = {v[bad[0]]:g}{ctx.also(bad)}",
                bad[0],
                hint="prices must be > 0; correct the row or delete it",
            )
    vol = values["volume"]
    neg = np.flatnonzero(vol < 0)
    if len(neg):
        ctx.error(
            f"negative volume {vol[neg[0]]:g}{ctx.also(neg)}",
            neg[0],
            hint="volume must be >= 0 (zero is fine for halted/no-trade bars); correct the row",
        )
    ctx.report.zero_volume = int(np.count_nonzero(vol == 0))
    o, h, lo, c = (values[k] for k in PRICE_COLUMNS)
    # Consistency is only judged on bars whose prices passed the checks above, so that one bad
    # cell gives one message.
    sane = np.logical_and.reduce([np.isfinite(x) & (x > 0) for x in (o, h, lo, c)])
    top = np.maximum(o, c)
    bad = np.flatnonzero(sane & (h < top))
    if len(bad):
        i = bad[0]
        ctx.error(
            f"high {h[i]:g} is below max(open, close) = {top[i]:g}{ctx.also(bad)}",
            i,
            hint="the prices of this bar are inconsistent; check the column order "
            "(open, high, low, close) and correct the row",
        )
    bottom = np.minimum(o, c)
    bad = np.flatnonzero(sane & (lo > bottom))
    if len(bad):
        i = bad[0]
        ctx.error(
            f"low {lo[i]:g} is above min(open, close) = {bottom[i]:g}{ctx.also(bad)}",
            i,
            hint="the prices of this bar are inconsistent; check the column order "
            "(open, high, low, close) and correct the row",
        )


# --- order and duplicates --------------------------------------------------------------------


def _check_order(
    values: dict[str, np.ndarray], ctx: _Ctx, duplicates: str, sort: bool
) -> np.ndarray:
    """Report unsorted rows and duplicates; return the positions to keep, in time order."""
    ts = ctx.ts
    valid = np.flatnonzero(ts != _NAT)
    tv = ts[valid]
    back = np.flatnonzero(tv[1:] < tv[:-1])
    if len(back):
        prev, here = valid[back[0]], valid[back[0] + 1]
        descending = len(tv) > 2 and bool(np.all(tv[1:] < tv[:-1]))
        what = (
            f"rows out of time order: this row comes after row {ctx.rows[prev]} "
            f"({ctx.stamp(prev).isoformat()}) but is earlier"
            + (f"; order breaks {len(back):,} times" if len(back) > 1 else "")
        )
        if descending:
            what += "; the file is newest-first"
        if sort:
            ctx.warn(what + "; sorted by time as requested (sort=True)", here)
        else:
            ctx.error(
                what,
                here,
                hint="sort the file by timestamp, or pass sort=True (CLI --sort) to sort on load",
            )
    order = valid if not len(back) else valid[np.argsort(tv, kind="stable")]
    st = ts[order]
    dup = np.flatnonzero(st[1:] == st[:-1]) + 1  # positions in `order` repeating the previous
    drop = np.zeros(len(order), bool)
    if len(dup):
        # Compare each repeat with the first row of its timestamp (NaN equal to NaN).
        new_group = np.r_[True, st[1:] != st[:-1]]
        group_first = np.maximum.accumulate(np.where(new_group, np.arange(len(st)), 0))
        a, b = order[group_first[dup]], order[dup]
        same = np.ones(len(dup), bool)
        for c in OHLCV:
            x, y = values[c][a], values[c][b]
            same &= (x == y) | (np.isnan(x) & np.isnan(y))
        ident, confl = dup[same], dup[~same]
        if len(confl):
            i = confl[0]
            first, here = order[group_first[i]], order[i]
            diff = next(
                (c for c in OHLCV if not values[c][first] == values[c][here]), "volume"
            )
            ctx.error(
                f"conflicting duplicate timestamp: rows {ctx.rows[first]} and {ctx.rows[here]} "
                f"have the same time but different values ({diff} {values[diff][first]:g} vs "
                f"{values[diff][here]:g}){ctx.also(order[confl])}",
                here,
                hint="keep the correct row by hand; duplicates with different values cannot be "
                "resolved automatically",
            )
        if len(ident):
            i = ident[0]
            first, here = order[group_first[i]], order[i]
            what = (
                f"duplicate row: row {ctx.rows[here]} repeats row {ctx.rows[first]} exactly"
                f"{ctx.also(order[ident])}"
            )
            if duplicates == "drop-identical":
                drop[ident] = True
                ctx.warn(what + f"; {len(ident):,} exact repeat(s) dropped as requested", here)
            else:
                ctx.error(
                    what,
                    here,
                    hint="delete the repeated rows, or pass duplicates='drop-identical' "
                    "(CLI --duplicates drop-identical) to drop exact repeats",
                )
    return order[~drop]


# --- spacing: timeframe, mixed timeframes, gaps ----------------------------------------------


def _check_spacing(keep: np.ndarray, ctx: _Ctx, timeframe: str | None, gaps: str) -> None:
    report = ctx.report
    ts = ctx.ts[keep]  # in time order; conflicting duplicates may remain (already reported)
    first = np.r_[True, ts[1:] != ts[:-1]] if len(ts) else np.zeros(0, bool)
    ts_u, pos_u = ts[first], keep[first]
    if len(ts_u):
        report.start = pd.Timestamp(int(ts_u[0]), unit="ns", tz="UTC")
        report.end = pd.Timestamp(int(ts_u[-1]), unit="ns", tz="UTC")
    if len(ts_u) < 2:
        report.timeframe = _normalise_tf(timeframe) if timeframe else None
        if timeframe is None and len(ts_u) == 1 and report.ok:
            # Nothing downstream can use bars of unknown length (import files them by
            # timeframe, run resamples): the same refusal everywhere, with the fix.
            ctx.error(
                "only one bar: its timeframe cannot be inferred from the spacing",
                int(pos_u[0]),
                hint="pass the timeframe, e.g. timeframe='1d' (CLI --timeframe 1d), or add bars",
            )
        return
    index = pd.DatetimeIndex(pd.to_datetime(ts_u, unit="ns", utc=True))
    inferred = infer_timeframe(index)
    if timeframe is not None and _normalise_tf(timeframe) != inferred:
        ctx.error(
            f"timeframe {timeframe!r} was given but the bars are mostly {inferred} apart",
            None,
            hint=f"pass timeframe={inferred!r} (CLI --timeframe {inferred}) or load the right file",
        )
        report.timeframe = _normalise_tf(timeframe)
        return
    report.timeframe = inferred
    if inferred == MONTHLY:
        _monthly_gaps(index, pos_u, ctx, gaps)
        return
    step = parse_timeframe(inferred).value
    d = np.diff(ts_u)
    normal = d == step
    # Runs of equal spacing: a long run at another spacing is a second timeframe.
    starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
    lengths = np.diff(np.r_[starts, len(d)])
    run_of = np.repeat(np.arange(len(starts)), lengths)
    run_d = d[starts]
    long_other = (lengths >= _MIXED_RUN) & (run_d != step)
    # A run of *wider* spacing is a second timeframe only if it is a standard bar size and its
    # bars sit on that size's grid (daily bars at 00:00); otherwise it is sparse data (early
    # minute files where trades came every few minutes), i.e. ordinary gaps.
    wider = long_other & (run_d > step)
    for r in np.flatnonzero(wider):
        seg = ts_u[starts[r] : starts[r] + lengths[r] + 1]
        origin = _MONDAY_NS if run_d[r] % _WEEK_NS == 0 else 0
        if run_d[r] not in _STANDARD_NS or np.any((seg - origin) % run_d[r]):
            long_other[r] = False
    mixed = long_other[run_of]
    if long_other.any():
        runs = np.flatnonzero(long_other)
        r = runs[0]
        a, b = starts[r], starts[r] + lengths[r]  # bars a..b (positions in ts_u)
        spacing = format_timeframe(pd.Timedelta(int(d[a]), unit="ns"))
        ctx.error(
            f"mixed timeframes: rows {ctx.rows[pos_u[a]]} to {ctx.rows[pos_u[b]]} are {spacing} "
            f"apart but most bars are {inferred} apart"
            + (f"; {len(runs) - 1} more such stretch(es)" if len(runs) > 1 else ""),
            pos_u[a],
            hint="split the file by timeframe, or resample it to one timeframe "
            "(btc-backtest data resample) before loading",
        )
    off_grid = ~normal & ~mixed & ((d % step != 0) | (d < step))
    odd = np.flatnonzero(off_grid)
    if len(odd):
        i = odd[0]
        gap = format_timeframe(pd.Timedelta(int(d[i]), unit="ns"))
        ctx.error(
            f"irregular spacing: this bar opens {gap} after the previous one, which is not a "
            f"multiple of the {inferred} timeframe{ctx.also(pos_u[odd + 1])}",
            pos_u[i + 1],
            hint=f"bars must open on the {inferred} grid; check this timestamp (time zone? "
            "a stray bar?) and correct or delete the row",
        )
    elif not long_other.any():
        _check_grid(ts_u, pos_u, step, inferred, ctx)  # one message per problem: not twice
    is_gap = ~normal & ~mixed & ~off_grid
    g = np.flatnonzero(is_gap)
    firsts = pd.DatetimeIndex(pd.to_datetime(ts_u[g] + step, unit="ns", utc=True))
    lasts = pd.DatetimeIndex(pd.to_datetime(ts_u[g + 1] - step, unit="ns", utc=True))
    report.gaps = list(zip(firsts, lasts, (d[g] // step - 1).tolist(), strict=True))
    _report_gaps(ctx, pos_u[g + 1], gaps, inferred)


def _check_grid(
    ts_u: np.ndarray, pos_u: np.ndarray, step: int, tf: str, ctx: _Ctx
) -> None:
    """Bars of a timeframe that divides a day open on its grid (00:00 UTC for 1d, the hour for
    1h); weekly bars open on Monday 00:00 UTC. A 1d file opening at 12:00 was exported in
    another time zone: resampling and the weekly EMA would refuse it later, so it is refused
    here, where the fix is clear."""
    day = 86_400 * 10**9
    if step == _WEEK_NS:
        origin, where = _MONDAY_NS, "Monday 00:00 UTC"
    elif day % step == 0:
        origin, where = 0, "00:00 UTC" if step == day else f"multiples of {tf} from 00:00 UTC"
    else:
        return  # 3d, 2w ...: exchanges anchor these differently
    # (ts - origin) mod step without forming ts - origin, which wraps around int64 for
    # timestamps near its ends (the remainder would then be wrong, not merely large)
    late = (ts_u % step - origin % step) % step
    off = np.flatnonzero(late)
    if not len(off):
        return
    i = off[0]
    shift = pd.Timedelta(int(late[i]), unit="ns")
    if step == _WEEK_NS:
        hint = ("weeks here start on Monday 00:00 UTC (ISO weeks, as on Binance); build them "
                "from daily bars with 'btc-backtest data resample FILE --to 1w'")
    else:
        hint = ("the file is probably in another time zone: export it in UTC, or shift the "
                "timestamps to the bar open in UTC")
    ctx.error(
        f"{tf} bars must open at {where}, but this bar opens {format_timeframe(shift)} later"
        f"{ctx.also(pos_u[off])}",
        int(pos_u[i]),
        hint=hint,
    )


def _monthly_gaps(index: pd.DatetimeIndex, pos_u: np.ndarray, ctx: _Ctx, gaps: str) -> None:
    months = index.year.to_numpy() * 12 + index.month.to_numpy() - 1
    dm = np.diff(months)
    g = np.flatnonzero(dm > 1)
    ctx.report.gaps = [
        (index[i] + pd.DateOffset(months=1), index[i + 1] - pd.DateOffset(months=1), int(dm[i] - 1))
        for i in g
    ]
    _report_gaps(ctx, pos_u[g + 1], gaps, MONTHLY)


def _report_gaps(ctx: _Ctx, after: np.ndarray, policy: str, tf: str) -> None:
    gaps_ = ctx.report.gaps
    if not gaps_ or policy == "keep":
        return
    listed = "; ".join(
        f"{_fmt_ts(a, tf)} -> {_fmt_ts(b, tf)} ({_bars(n)})" for a, b, n in gaps_[:_SHOW]
    )
    more = f"; and {len(gaps_) - _SHOW:,} more" if len(gaps_) > _SHOW else ""
    what = (
        f"{len(gaps_):,} gap(s) in the {tf} bars, {ctx.report.missing_bars:,} missing bar(s), "
        f"the first just before this row: {listed}{more}"
    )
    # Cite the row right after the first gap (the first bar present again).
    row = int(ctx.rows[after[0]])
    stamp = ctx.stamp(int(after[0]))
    if policy == "error":
        ctx.report.errors.append(
            DataError(
                what,
                source=ctx.report.source,
                row=row,
                timestamp=stamp,
                hint="gaps are never filled; download the missing period, or accept the gaps "
                "with gaps='warn' or 'keep' (CLI --gaps warn)",
            )
        )
    else:
        ctx.report.warnings.append(
            DataError(
                what,
                source=ctx.report.source,
                row=row,
                timestamp=stamp,
                hint="gaps are kept as gaps (never filled); download the missing period to "
                "close them",
            )
        )


def _normalise_tf(tf: str) -> str:
    if str(tf).strip() == MONTHLY:
        return MONTHLY
    return format_timeframe(parse_timeframe(tf))
