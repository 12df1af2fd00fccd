"""Per-bar columns held compactly in memory, given back as the very same DataFrame.

A result keeps its strategy's per-bar indicator frame for the reports. On one-minute data that
frame was most of what a finished backtest holds (~170 bytes per bar against 48 for the candles),
and much of it repeats: the nearest support and resistance and the nearest flipped zones are a
zone's centre, low and high that stay the same for many bars, and some columns are constant (the
200-week EMA is NaN on less than 200 weeks of minutes). :func:`compact` keeps

* each zone group (``X``, ``X_low``, ``X_high``, all float64) as one int32 code per bar into a
  table of the distinct (centre, low, high) triples;
* a float64 column that changes on at most 1 bar in 16 as runs (start bar, value);
* every other column as it is (no copy);

and :meth:`CompactFrame.frame` rebuilds the frame: the same index, columns, order, dtypes,
``attrs`` and every value bit for bit (NaN and -0.0 included: values are compared as their bit
patterns), so what was compacted reads back unchanged. Nothing is computed again: the codes,
tables and runs hold the values themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

#: A float64 column is kept as runs when it has at most one run per this many bars.
RUN_FRACTION = 16
#: A float64 column is kept sparse (:meth:`CompactFrame.build`) when it is NaN on all but at
#: most one bar in this many (16 bytes a value instead of 8 a bar).
SPARSE_FRACTION = 4
#: A zone group is kept as codes when it has at most one distinct triple per this many bars.
ZONE_FRACTION = 2
_BANDS = ("_low", "_high")


@dataclass(frozen=True)
class ZoneGroup:
    """A zone column group given to :meth:`CompactFrame.build`: an int32 code per bar into
    ``table`` (rows of centre, low, high; a code of -1 picks the last row)."""

    codes: np.ndarray
    table: np.ndarray


@dataclass(frozen=True)
class CompactFrame:
    """A per-bar frame held compactly (see the module docstring); :meth:`frame` rebuilds it.
    Columns are referred to by position (names may repeat)."""

    index: pd.Index
    columns: pd.Index
    #: position -> the column's values as they were (numpy or pandas extension array)
    dense: dict[int, Any] = field(default_factory=dict)
    #: (centre, low, high) positions -> (int32 code per bar, float64 (k, 3) table of triples)
    zones: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict)
    #: position -> (int64 first bar of each run, float64 value of each run)
    runs: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    #: position -> (price position, level position): :func:`distance_pct` of those two
    #: columns, worked out on each read (nothing held)
    derived: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: position -> (int64 bars, float64 values) of a float64 column that is NaN on every
    #: other bar (:meth:`build` only: e.g. a planned reward:risk on the entry bars)
    sparse: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: position -> a dense column as a Series on ``index`` over its held values, made on the
    #: first :meth:`frame`: a frame built from it shares the buffer copy-on-write, so a reader
    #: writing into that frame gets its own copy of the column instead of changing what is
    #: held here (not copied by ``replace``)
    _shared: dict[int, pd.Series] = field(default_factory=dict, init=False, repr=False,
                                          compare=False)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def nbytes(self) -> int:
        """Bytes of the per-bar data held (numpy buffers; the index is not counted)."""
        total = sum(_nbytes(v) for v in self.dense.values())
        total += sum(c.nbytes for c, _t in self.zones.values())
        # (a table several groups share, as the S/R engine's, counted once)
        total += sum({id(t): t.nbytes for _c, t in self.zones.values()}.values())
        total += sum(b.nbytes + v.nbytes for b, v in self.sparse.values())
        return total + sum(s.nbytes + v.nbytes for s, v in self.runs.values())

    @classmethod
    def build(cls, index: pd.Index, columns: Sequence[tuple[Any, Any]],
              attrs: dict[str, Any] | None = None) -> CompactFrame:
        """A compact frame made column by column, never dense: ``columns`` is ``(label,
        values)`` in order, where ``values`` is a column's values (a numpy array, a pandas
        extension array, or a Series on ``index``: kept copy-on-write, a float64 column that
        rarely changes kept as runs, as :func:`compact` does), a :class:`ZoneGroup` (three
        columns ``label``, ``label_low``, ``label_high`` held as its codes and table) or a
        :class:`Distance` (worked out on each read).
        :meth:`frame` reads back a frame with these columns in this order."""
        labels: list[Any] = []
        out = cls(index, pd.Index([]), attrs=dict(attrs or {}))
        for label, values in columns:
            if isinstance(values, ZoneGroup):
                pos = len(labels)
                labels += [label, f"{label}_low", f"{label}_high"]
                out.zones[(pos, pos + 1, pos + 2)] = (values.codes, values.table)
                continue
            if isinstance(values, Distance):
                out.derived[len(labels)] = (labels.index(values.price),
                                            labels.index(values.level))
            else:
                out._put(len(labels), values)
            labels.append(label)
        return replace(out, columns=pd.Index(labels))

    def _put(self, pos: int, values: Any) -> None:
        arr = _values(values)
        floats = isinstance(arr, np.ndarray) and arr.dtype == np.float64 and len(arr) >= 2
        got = _runs(arr) if floats else None
        if got is not None:
            self.runs[pos] = got
            return
        got = _sparse(arr) if floats else None
        if got is not None:
            self.sparse[pos] = got
        else:
            self.dense[pos] = values

    def with_column(self, label: Any, values: Any) -> CompactFrame:
        """A copy with the column ``label`` added last (held as :meth:`build` holds it); the
        other columns are shared."""
        out = replace(self, columns=self.columns.append(pd.Index([label])),
                      dense=dict(self.dense), zones=dict(self.zones), runs=dict(self.runs),
                      attrs=dict(self.attrs), derived=dict(self.derived),
                      sparse=dict(self.sparse))
        out._put(len(self.columns), values)
        return out

    def from_bar(self, pos: int) -> CompactFrame:
        """The rows ``pos..`` (``0 <= pos <= len``), held as this frame holds them: views of
        the dense columns and zone codes, the runs and sparse values from ``pos`` on (a trading
        window that opens at bar ``pos``, without decoding the frame). Reads back as
        ``frame().iloc[pos:]``, bit for bit."""
        n = len(self.index)
        if not 0 <= pos <= n:
            raise IndexError(f"from_bar({pos}) of a frame of {n} rows")
        runs = {}
        for k, (starts, values) in self.runs.items():
            first = max(int(np.searchsorted(starts, pos, side="right")) - 1, 0)
            cut = starts[first:] - pos
            cut[0] = 0  # the run holding bar pos starts the window
            runs[k] = (cut, values[first:])
        sparse = {}
        for k, (bars, values) in self.sparse.items():
            first = int(np.searchsorted(bars, pos, side="left"))
            sparse[k] = (bars[first:] - pos, values[first:])
        return replace(self, index=self.index[pos:],
                       dense={k: v[pos:] for k, v in self.dense.items()},
                       zones={k: (codes[pos:], table) for k, (codes, table) in self.zones.items()},
                       runs=runs, sparse=sparse, attrs=dict(self.attrs),
                       derived=dict(self.derived))

    def column(self, label: Any) -> np.ndarray:
        """The values of the first column called ``label`` as a numpy array (a new array for
        a zone or runs column; a dense one as held: do not write into it). KeyError if none."""
        hits = np.flatnonzero(self.columns == label)
        if not len(hits):
            raise KeyError(label)
        return np.asarray(_values(self._at(int(hits[0]))))

    def _at(self, pos: int) -> Any:
        """The values of the column at ``pos`` (as held when dense, else decoded)."""
        if pos in self.dense:
            return self.dense[pos]
        if pos in self.runs:
            starts, values = self.runs[pos]
            return np.repeat(values, np.diff(np.append(starts, len(self.index))))
        if pos in self.sparse:
            bars, values = self.sparse[pos]
            out = np.full(len(self.index), np.nan)
            out[bars] = values
            return out
        if pos in self.derived:
            price, level = self.derived[pos]
            # a level decoded here (not held) is this call's own: worked in
            return distance_pct(np.asarray(_values(self._at(price)), dtype=np.float64),
                                np.asarray(_values(self._at(level)), dtype=np.float64),
                                overwrite=level not in self.dense)
        for where, (codes, table) in self.zones.items():
            if pos in where:
                return table[:, where.index(pos)][codes]
        raise KeyError(pos)  # pragma: no cover - every position is held somewhere

    def _readable(self, pos: int) -> Any:
        """The column at ``pos`` for a new frame: decoded (its own), a copy of a read-only
        dense column (a view of the candles, say: pandas would refuse a write into the frame
        once nothing else shares it), or a dense column through its copy-on-write Series (see
        ``_shared``)."""
        if pos not in self.dense:
            return self._at(pos)
        held = self.dense[pos]
        if isinstance(held, np.ndarray) and not held.flags.writeable:
            return held.copy()
        series = self._shared.get(pos)
        if series is None:
            series = self._shared[pos] = pd.Series(self.dense[pos], index=self.index, copy=False)
        return series

    def owning(self, shared: pd.DataFrame | None = None) -> CompactFrame:
        """This frame holding its dense columns as plain arrays, each its own or a view of
        ``shared``'s buffers (as :func:`compact` keeps them): what a result keeps."""
        keep = _roots(shared)
        return replace(self, dense={k: _own(_values(v), keep) for k, v in self.dense.items()})

    def frame(self, columns: Iterable[Any] | None = None) -> pd.DataFrame:
        """The frame :func:`compact` was given (a new DataFrame on each call: keep it while
        you use it; ~0.1 s for 1M bars of 26 columns with four zone groups).

        ``columns``: only the columns with these labels (those present, in the frame's order),
        decoded without rebuilding the others: what a reader of two or three columns needs."""
        if columns is None:
            keep = range(len(self.columns))
        else:
            wanted = set(columns)
            keep = [i for i, c in enumerate(self.columns) if c in wanted]
        out = pd.DataFrame({k: self._readable(k) for k in keep}, index=self.index, copy=False)
        # the original labels (repeats included), name and dtype
        out.columns = self.columns if columns is None else self.columns[list(keep)]
        out.attrs = dict(self.attrs)
        return out


def distance_pct(price: np.ndarray, level: np.ndarray, *, overwrite: bool = False
                 ) -> np.ndarray:
    """Signed distance of ``price`` from ``level`` in percent of the level, ``(price - level) /
    level x 100`` (float64 arrays; NaN where the level is NaN or not positive): a new array,
    worked out in place after the first operation (the same roundings as the formula, one
    per-bar array instead of three). ``overwrite``: ``level`` is the caller's own scratch
    array (its levels that are not positive are set to NaN in it)."""
    if overwrite:
        lv = level
        np.copyto(lv, np.nan, where=~(lv > 0))
    else:
        lv = np.where(level > 0, level, np.nan)
    out = price - lv
    out /= lv
    out *= 100.0
    return out


@dataclass(frozen=True)
class Distance:
    """A column given to :meth:`CompactFrame.build` as :func:`distance_pct` of the columns
    labelled ``price`` and ``level`` (given before it): worked out on each read, nothing held
    (the distances of the close from its zones are ~8 bytes per bar each)."""

    price: Any
    level: Any


def _values(v: Any) -> Any:
    """A Series' values as :func:`compact` holds a column's (numpy for a numpy dtype, else its
    extension array); anything else as it is."""
    if isinstance(v, pd.Series):
        return v.to_numpy() if isinstance(v.dtype, np.dtype) else v.array
    return v


def _nbytes(values: Any) -> int:
    return int(getattr(values, "nbytes", 0))


def _bits(values: np.ndarray) -> np.ndarray:
    return values.view(np.int64)


#: The hash table :func:`_factorize` starts with, per value factorised: pandas sizes it for
#: every value being distinct by default (~32 bytes per bar on 1M bars, the largest transient
#: of building a result, issue 17), where zone columns hold ~1 distinct value per 10 bars; the
#: table grows as needed (same codes).
_HASH_HINT = 16


def _factorize(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(bits, use_na_sentinel=False,
                                  size_hint=max(len(bits) // _HASH_HINT, 1024))
    return codes, np.asarray(uniques)


def _table_column(codes: np.ndarray, k: int, values: np.ndarray) -> np.ndarray | None:
    """The value of each of ``k`` codes, or None when a code has two different values."""
    col = np.empty(k)
    col[codes] = values  # one value per code; checked below to be its only one
    return col if np.array_equal(_bits(col)[codes], _bits(values)) else None


def _zone_group(c: np.ndarray, lo: np.ndarray, hi: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """``(codes, table)``: an int32 code per bar into a float64 table of the distinct
    (centre, low, high) triples (bit patterns), or None when there are more than
    ``len(c) / ZONE_FRACTION`` of them.

    Usually each centre has one band, and the centre alone is factorised (one pass; checked);
    when a centre comes with two bands (a round-number centre of two different zones, say) the
    triples are factorised. (Factorising every bar measured faster than factorising the first
    bar of each run and repeating the codes: a zone holds ~2 bars here.)"""
    limit = max(len(c) // ZONE_FRACTION, 1)
    codes, centres = _factorize(_bits(c))
    if len(centres) > limit:
        return None
    bands = [_table_column(codes, len(centres), v) for v in (lo, hi)]
    if bands[0] is not None and bands[1] is not None:
        return codes.astype(np.int32), np.column_stack((centres.view(np.float64), *bands))
    lo_codes, lo_values = _factorize(_bits(lo))
    hi_codes, hi_values = _factorize(_bits(hi))
    # pair codes below n * n: no int64 overflow
    codes, _ = _factorize(codes.astype(np.int64) * len(lo_values) + lo_codes)
    codes, triples = _factorize(codes.astype(np.int64) * len(hi_values) + hi_codes)
    k = len(triples)
    if k > limit:
        return None
    table = np.empty((k, 3))
    for j, col in enumerate((c, lo, hi)):
        table[codes, j] = col  # codes and triples correspond one to one: exact
    return codes.astype(np.int32), table


#: :func:`_runs` first counts the changes in this many windows of ``_PROBE`` bars spread over
#: the column and gives up early when they change far more often than runs would pay for.
_PROBES, _PROBE = 8, 512


def _runs(v: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(starts, values)`` of the runs of equal bit patterns in ``v`` when there are at most
    ``len(v) / RUN_FRACTION`` of them, else None."""
    b = _bits(v)
    n = len(b)
    if n > 4 * _PROBES * _PROBE:  # a cheap look first: a column changing on most bars is dense
        at = np.linspace(0, n - _PROBE - 1, _PROBES).astype(np.int64)
        w = b[at[:, None] + np.arange(_PROBE + 1)]
        if np.count_nonzero(w[:, 1:] != w[:, :-1]) > 4 * w.size // RUN_FRACTION:
            return None
    change = b[1:] != b[:-1]
    if np.count_nonzero(change) + 1 > max(n // RUN_FRACTION, 1):
        return None
    starts = np.concatenate(([0], np.flatnonzero(change) + 1)).astype(np.int64)
    return starts, v[starts]


_NAN_BITS = np.array(np.nan).view(np.int64)


def _sparse(v: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(bars, values)`` of ``v`` where it is not NaN (``np.nan``'s bit pattern: any other is
    kept as a value) when those are at most ``len(v) / SPARSE_FRACTION`` bars, else None."""
    held = _bits(v) != _NAN_BITS
    if np.count_nonzero(held) > max(len(v) // SPARSE_FRACTION, 1):
        return None
    bars = np.flatnonzero(held)
    return bars, v[bars]


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _own(values: Any, shared: set[int]) -> Any:
    """``values`` itself, or a copy when it is a view into a larger buffer that nothing else
    keeps (a column of a 2-D block would otherwise keep the whole block alive)."""
    if not isinstance(values, np.ndarray):
        return values
    root = _root(values)
    if root is values or id(root) in shared or root.nbytes <= values.nbytes:
        return values
    return values.copy()


def _roots(shared: pd.DataFrame | None) -> set[int]:
    """Ids of the buffers under ``shared``'s columns (none for None)."""
    if shared is None:
        return set()
    return {id(_root(a)) for a in (shared.iloc[:, i].to_numpy() for i in range(shared.shape[1]))
            if isinstance(a, np.ndarray)}


def compact(df: pd.DataFrame, shared: pd.DataFrame | None = None) -> CompactFrame:
    """Hold the per-bar frame ``df`` compactly (module docstring); ``df`` is not changed.

    Columns kept as they are stay views only of buffers ``shared`` (e.g. the candles a result
    keeps anyway: a ``close`` column equal to them costs nothing) or of their own; a view into
    a larger block is copied so that the block can be freed. Zone groups are found by name
    (``X``, ``X_low``, ``X_high``), so only among unique column names.
    """
    cols = df.columns
    # (no column to keep: ~0.2 ms of column look-ups saved)
    keep = _roots(shared) if len(cols) else set()
    arrays: list[Any] = []
    for i in range(len(cols)):
        col = df.iloc[:, i]
        arrays.append(col.to_numpy() if col.dtype in (np.float64, np.bool_) else col.array)
    floats = {c: i for i, c in enumerate(cols)
              if isinstance(arrays[i], np.ndarray) and arrays[i].dtype == np.float64}
    if not cols.is_unique or len(df) < 2:
        floats = {}
    zones: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}
    grouped: set[int] = set()
    for c, i in floats.items():
        where = (i, *(floats.get(f"{c}{s}", -1) for s in _BANDS)) if isinstance(c, str) else ()
        if len(where) != 3 or min(where) < 0:
            continue
        got = _zone_group(*(arrays[k] for k in where))
        if got is not None:
            zones[where] = got  # type: ignore[index]
            grouped.update(where)
    dense: dict[int, Any] = {}
    runs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, v in enumerate(arrays):
        if i in grouped:
            continue
        got = _runs(v) if i in floats.values() else None
        if got is not None:
            runs[i] = got
        else:
            dense[i] = _own(v, keep)
    return CompactFrame(df.index, cols, dense, zones, runs, dict(df.attrs))
