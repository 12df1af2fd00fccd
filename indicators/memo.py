"""Indicator results shared between the parameter sets of one sweep.

A sweep runs one strategy with many parameter sets on the same candles, and most sets compute
indicators another set computed already (a 240-set grid over RSI period x two thresholds needs
15 distinct RSIs, not 240). Inside ``with sharing(memo):`` a function decorated with
:func:`memoised` runs once per distinct call; later calls get a copy of the first result. A
call is shared only when each argument is one of:

* a column of the memo's frame itself: its values as an ndarray (the same memory, not a copy,
  a slice or a derived array) or as a Series on the frame's own index. pandas 3 frames are
  copy-on-write and hand out read-only arrays, and the memo keeps the frame alive, so the
  memory of a column cannot change or be reused while the memo exists;
* the frame itself;
* a hashable value (period, level, frozen dataclass), keyed with its type (``14`` and
  ``14.0`` are different calls: one of them is an error).

A result is shared when it is an array, a Series or frame, an immutable scalar, a tuple of
these, or an object with a ``shared_copy()`` method (and an ``nbytes`` size) that hands out a
copy (e.g. :class:`indicators.flips.FlipResult`: shallow copy-on-write frames, so the
strategies of one job or of one look-ahead audit cut run the S/R engine once).

Any other argument (an array the strategy derived, a list) makes the call run as usual,
unshared; outside ``sharing`` nothing is shared at all. Decorated functions must be pure: the
result depends on the arguments only (TA-Lib's RSI, EMA, SMA and ATR are). Callers get copies,
so a strategy that writes into its result cannot change another set's.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Hashable
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

#: Results kept per memo at most (bytes of arrays): beyond it calls run unshared.
MAX_BYTES = 512 * 2**20


def _address(arr: np.ndarray) -> tuple:
    """Where an array's values are: first byte, shape, strides and dtype."""
    return arr.__array_interface__["data"][0], arr.shape, arr.strides, arr.dtype.str


def _nbytes(value: Any) -> int:
    if _shares_itself(value):
        return int(value.nbytes)
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, tuple):
        return sum(_nbytes(v) for v in value)
    if _is_pandas(value):
        return int(value.memory_usage(index=False, deep=False).sum()) if value.ndim == 2 \
            else int(value.nbytes)
    return 0


def _shares_itself(value: Any) -> bool:
    """True for a result that makes its own safe copies (``shared_copy()``)."""
    return callable(getattr(value, "shared_copy", None)) and hasattr(value, "nbytes")


def _copy(value: Any) -> Any:
    """A copy of a result that :func:`_storable` accepts."""
    if _shares_itself(value):
        return value.shared_copy()
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    return value.copy() if isinstance(value, np.ndarray) or _is_pandas(value) else value


def _is_pandas(value: Any) -> bool:
    pd = sys.modules.get("pandas")  # never imported here: a pandas result means it is loaded
    return pd is not None and isinstance(value, pd.Series | pd.DataFrame)


def _storable(value: Any) -> bool:
    """Arrays, Series, frames, immutable scalars and tuples of them: what can be handed out as
    a copy. Other objects might be changed by one caller under another's feet."""
    if isinstance(value, tuple):
        return all(_storable(v) for v in value)
    return (isinstance(value, np.ndarray | int | float | bool | str | type(None))
            or _is_pandas(value) or _shares_itself(value))


class IndicatorMemo:
    """The shared results of one frame's indicator calls (see the module docstring).

    ``hits`` and ``misses`` count the calls answered from the memo and the calls computed (and
    stored); calls that could not be shared are not counted.
    """

    def __init__(self, frame: Any, max_bytes: int = MAX_BYTES) -> None:
        self.frame = frame
        self.max_bytes = max_bytes
        self._arrays = [frame[c].to_numpy() for c in frame.columns]  # held: memory stays put
        self._columns = {_address(a): c for c, a in zip(frame.columns, self._arrays,
                                                        strict=True)}
        index = getattr(frame.index, "asi8", None)
        self._index = None if index is None else _address(index)
        self._results: dict[tuple, Any] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def _token(self, value: Any) -> Hashable | None:
        """A key part naming ``value``, or None when a call with it cannot be shared."""
        if value is self.frame:
            return ("frame",)
        if isinstance(value, np.ndarray):
            col = self._columns.get(_address(value))
            return None if col is None else ("column", col)
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(value, pd.Series):
            index = getattr(value.index, "asi8", None)
            if index is None or self._index is None or _address(index) != self._index:
                return None
            values = value.to_numpy()
            col = self._columns.get(_address(values)) if isinstance(values, np.ndarray) else None
            return None if col is None else ("series", col, value.name)
        try:
            hash(value)
        except TypeError:
            return None
        return ("value", type(value), value)

    def call(self, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
        """``fn(*args, **kwargs)``: a copy of the stored result when the same call ran
        before in this memo, else computed (and stored when the call can be shared)."""
        parts: list[Hashable] = [fn]
        for value in args:
            tok = self._token(value)
            if tok is None:
                return fn(*args, **kwargs)
            parts.append(tok)
        for name in sorted(kwargs):
            tok = self._token(kwargs[name])
            if tok is None:
                return fn(*args, **kwargs)
            parts.append((name, tok))
        key = tuple(parts)
        if key in self._results:
            self.hits += 1
            return _copy(self._results[key])
        out = fn(*args, **kwargs)
        size = _nbytes(out)
        if self.bytes + size <= self.max_bytes and _storable(out):
            self._results[key] = _copy(out)  # the caller may write into ``out``
            self.bytes += size
            self.misses += 1
        return out


_ACTIVE: ContextVar[IndicatorMemo | None] = ContextVar("indicator_memo", default=None)


class sharing:  # lower case: used like a function, ``with sharing(memo):``
    """Within the block, :func:`memoised` functions share results through ``memo`` (None:
    nothing is shared). Per thread and task (a context variable)."""

    def __init__(self, memo: IndicatorMemo | None) -> None:
        self.memo = memo

    def __enter__(self) -> IndicatorMemo | None:
        self._token = _ACTIVE.set(self.memo)
        return self.memo

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.reset(self._token)


def active() -> IndicatorMemo | None:
    """The memo the current :class:`sharing` block shares results through (None outside one):
    a caller that would compute more than it needs only for others to reuse asks this."""
    return _ACTIVE.get()


def memoised(fn: F) -> F:
    """Decorate a pure indicator function: inside :class:`sharing`, a call with the memo's
    frame columns and hashable parameters is computed once (see the module docstring);
    elsewhere the function runs as before (one context-variable read per call)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        memo = _ACTIVE.get()
        if memo is None:
            return fn(*args, **kwargs)
        return memo.call(fn, args, kwargs)

    return wrapper  # type: ignore[return-value]
