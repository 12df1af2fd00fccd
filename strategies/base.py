"""The public strategy API: :class:`Param`, :class:`Signals` and :class:`Strategy`.

A strategy is written once, vectorised and causal, and runs unchanged on both engines
(:mod:`backtests.engines.fast` and :mod:`backtests.engines.bt`)::

    import numpy as np, talib
    from strategies.base import Param, Signals, Strategy

    class RsiCross(Strategy):
        '''Long when RSI crosses back above `oversold`; 5% stop.'''
        name = "rsi_cross"
        params = {
            "period": Param(14, "RSI period in bars", int, min=2),
            "oversold": Param(30.0, "RSI level to cross back above", min=0, max=100),
        }

        def signals(self, df):
            rsi = talib.RSI(df["close"].to_numpy(), self.p.period)
            up = (rsi > self.p.oversold) & (np.roll(rsi, 1) <= self.p.oversold)
            up[0] = False
            entry = np.where(up, 1, 0).astype(np.int8)
            return Signals.from_entries(entry, stop=df["close"].to_numpy() * 0.95)

Everything in :class:`Signals` at bar ``t`` must be computable from bars ``0..t`` (it is decided at
bar ``t``'s close); the engines act on it at bar ``t+1``'s open. ``tests/lookahead.py`` checks it.
"""

from __future__ import annotations

import difflib
import functools
import math
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from data.frame import like_input, to_canonical
from data.perbar import CompactFrame


class ParamError(ValueError):
    """An unknown strategy parameter or a value that does not fit its declaration."""


class ParamConflict(ParamError):
    """Parameter values that are each valid but not together (e.g. ``deep >= oversold``).

    Raised by :meth:`Strategy.check`; a sweep skips such sets (and says so) instead of failing.
    """


def did_you_mean(name: str, candidates: Any, what: str = "names") -> str:
    """``"; did you mean 'rsi_period'?"`` with the closest of ``candidates`` (up to three, by
    difflib's ratio; ``-`` and ``_`` count as the same), or a pointer to where ``what`` is
    listed when none is close. Never the full list: a typo needs one or two suggestions."""
    cands = [str(c) for c in candidates]
    norm = {c.replace("-", "_").lower(): c for c in cands}
    key = str(name).replace("-", "_").lower()
    close = difflib.get_close_matches(key, list(norm), n=3, cutoff=0.6)
    if not close:  # a prefix ("rsi" for "rsi_period") is close enough to suggest
        close = [k for k in norm if k.startswith(key) or key.startswith(k)][:3]
    if close:
        return "; did you mean " + " or ".join(repr(norm[c]) for c in close) + "?"
    return f"; none of the {len(cands)} {what} is close"


_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}
# Int parameters are bar counts and periods: TA-Lib and the compiled engine take them as 32-bit
# ints, so anything larger is a typo (a 20-digit value would overflow mid-backtest).
_INT_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class Param:
    """A declared, documented strategy parameter.

    Attributes:
        default: value used when the caller gives none.
        help: one line for ``--help`` and reports (say the unit: %, bars, ATR multiples...).
        type: ``float``, ``int``, ``bool`` or ``str``; given values are coerced to it (strings
            from the command line included).
        choices: allowed values, if the parameter is a choice.
        min, max: inclusive bounds for numbers.
    """

    default: Any
    help: str
    type: type = float
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None

    def coerce(self, name: str, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise :class:`ParamError`."""
        t = self.type
        try:
            if t is bool:
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in _TRUE | _FALSE:
                        raise ValueError
                    out: Any = low in _TRUE
                elif isinstance(value, bool | np.bool_) or value in (0, 1):
                    out = bool(value)
                else:
                    raise ValueError
            elif t is int:
                if isinstance(value, bool):
                    raise ValueError
                f = float(value)
                # Whole and exactly representable: a 20-digit "int" is a typo, not a period.
                # (math.isfinite: np.isfinite on a Python float costs ~1 us, once per
                # parameter and sweep set.)
                if not math.isfinite(f) or f != int(f) or abs(f) > _INT_LIMIT:
                    raise ValueError
                out = int(f)
            elif t is float:
                if isinstance(value, bool):
                    raise ValueError
                out = float(value)
                if not math.isfinite(out):  # inf/nan would only fail later, mid-backtest
                    raise ValueError
            elif t is str:
                out = str(value)
            else:  # pragma: no cover - declarations are checked in __init_subclass__
                raise ParamError(f"parameter {name!r}: unsupported type {t!r}")
        except (TypeError, ValueError):
            kind = {"int": f"int (a whole number up to {_INT_LIMIT:,})",
                    "float": "float (a finite number)"}.get(t.__name__, t.__name__)
            raise ParamError(
                f"parameter {name!r} expects {kind}, got {value!r} ({self.help})"
            ) from None
        if self.choices is not None and out not in self.choices:
            raise ParamError(
                f"parameter {name!r} must be one of {', '.join(map(repr, self.choices))}, "
                f"got {value!r}"
            )
        if self.min is not None and out < self.min:
            raise ParamError(f"parameter {name!r} must be >= {self.min}, got {value!r}")
        if self.max is not None and out > self.max:
            raise ParamError(f"parameter {name!r} must be <= {self.max}, got {value!r}")
        return out


#: Where a trailing stop or a break-even move acts: the intrabar stop or the stop on the close.
STOP_KINDS: tuple[str, ...] = ("intrabar", "close")

# ExitRules fields that are prices or distances: (name, what the value is, upper bound or None).
_EXIT_FIELDS: tuple[tuple[str, str, float | None], ...] = (
    ("stop_pct", "a fraction of the entry fill (0.05 = 5 %)", 1.0),
    ("stop_atr", "a multiple of atr", None),
    ("close_stop", "a price", None),
    ("close_stop_pct", "a fraction of the entry fill (0.05 = 5 %)", 1.0),
    ("close_stop_atr", "a multiple of atr", None),
    ("trail_pct", "a fraction of the close (0.05 = 5 %)", 1.0),
    ("trail_atr", "a multiple of atr", None),
    ("breakeven_pct", "a fraction of the entry fill (0.02 = 2 %)", None),
    ("partial_target", "a price", None),
    ("partial_pct", "a fraction of the entry fill (0.05 = 5 %)", None),
    ("partial_size", "a fraction of the position", 1.0),
)


@dataclass
class ExitRules:
    """Exits managed by the engines for each position, beside :class:`Signals`' ``stop`` and
    ``target`` (which stay absolute prices with an intrabar trigger).

    Each number is either a scalar (the same for every entry) or an array of ``len(df)`` values
    read at the entry's signal bar, like ``Signals.stop``; NaN means "none". Distances relative
    to the entry are measured from the entry **fill** (open of the next bar, slippage included),
    so a strategy need not know its fill. ``atr`` multiples use ``atr`` (a causal per-bar
    volatility column the strategy supplies, quote currency): the value at the signal bar for
    levels fixed at entry, at each bar's close for trailing. When several levels of one stop are
    given (e.g. ``stop`` and ``stop_pct``) the one nearer the fill applies.

    Two stops per position (see the execution rules in :mod:`backtests.engines.fast`):

    * the **intrabar stop** (``Signals.stop``, ``stop_pct``, ``stop_atr``) fills at the stop price
      when a bar trades through it, or at the open when the bar gaps past it (reason "stop");
    * the **stop on the close** (``close_stop``, ``close_stop_pct``, ``close_stop_atr``) triggers
      when a bar **closes** at or beyond it and fills at the next open (reason "stop_close").

    Attributes:
        trail_pct, trail_atr: trailing stop at ``close * (1 - pct)`` / ``close - mult * atr``
            (long; mirrored for shorts), from the entry fill on, recomputed at every close.
        trail_line: a per-bar indicator column the stop follows (e.g. the last confirmed pivot
            low), read at each close; NaN bars leave the stop where it is.
        trail_on: "intrabar" or "close": which stop the trailing moves. Trailing only ever moves
            a stop in the position's favour (it ratchets).
        breakeven_pct: once a bar's high (long) / low (short) reaches the entry fill by this
            fraction, the stop named by ``breakeven_on`` moves, at that bar's close, to the
            entry fill plus both commissions (``fill * (1 + c) / (1 - c)`` for a long).
        partial_target, partial_pct: a first take-profit (a price, or a fraction from the entry
            fill) where ``partial_size`` of the position is closed like a target (reason
            "partial"); ignored unless strictly between the entry fill and the target.
        atr: the per-bar volatility column the ``*_atr`` multiples refer to.
    """

    stop_pct: float | np.ndarray = np.nan
    stop_atr: float | np.ndarray = np.nan
    close_stop: float | np.ndarray = np.nan
    close_stop_pct: float | np.ndarray = np.nan
    close_stop_atr: float | np.ndarray = np.nan
    trail_pct: float | np.ndarray = np.nan
    trail_atr: float | np.ndarray = np.nan
    trail_line: np.ndarray | None = None
    trail_on: str = "intrabar"
    breakeven_pct: float | np.ndarray = np.nan
    breakeven_on: str = "intrabar"
    partial_target: float | np.ndarray = np.nan
    partial_pct: float | np.ndarray = np.nan
    partial_size: float | np.ndarray = np.nan
    atr: np.ndarray | None = None

    def validate(self, n: int) -> ExitRules:
        """Check every field against a frame of ``n`` bars; return a copy whose numbers are
        float64 arrays of ``n`` values (or of 1 value for a scalar: the same for every bar;
        ``trail_line`` and ``atr`` stay None when not given).

        Raises:
            ValueError: naming the field, the first bad bar and what the value should be.
        """
        out: dict[str, Any] = {}
        for name, what, upper in _EXIT_FIELDS:
            arr = _per_bar(f"ExitRules.{name}", getattr(self, name), n, scalar_ok=True)
            bad = np.flatnonzero(np.isinf(arr) | (arr <= 0) | ((arr >= upper) if upper else False))
            if bad.size:
                bound = f"in (0, {upper:g})" if upper else "> 0"
                raise ValueError(f"ExitRules.{name} is {what}, {bound} or NaN; "
                                 f"{_where(arr, bad[0])} holds {arr[bad[0]]}")
            out[name] = arr
        for name in ("trail_line", "atr"):
            val = getattr(self, name)
            if val is None:
                out[name] = None
                continue
            arr = _per_bar(f"ExitRules.{name}", val, n, scalar_ok=False)
            # a flat bar's ATR is 0 (early BTC data has such bars); a price must be positive
            bad = np.flatnonzero(np.isinf(arr) | ((arr < 0) if name == "atr" else (arr <= 0)))
            if bad.size:
                what = "non-negative" if name == "atr" else "positive"
                raise ValueError(f"ExitRules.{name} must be {what} or NaN; bar {bad[0]} "
                                 f"holds {arr[bad[0]]}")
            out[name] = arr
        uses_atr = [f for f in ("stop_atr", "close_stop_atr", "trail_atr")
                    if not np.isnan(out[f]).all()]
        if uses_atr and self.atr is None:
            raise ValueError(f"ExitRules.{uses_atr[0]} is a multiple of ExitRules.atr, which is "
                             "missing: pass the ATR column (e.g. talib.ATR) as atr=")
        for name in ("trail_on", "breakeven_on"):
            if getattr(self, name) not in STOP_KINDS:
                raise ValueError(f"ExitRules.{name} must be one of {', '.join(STOP_KINDS)}, got "
                                 f"{getattr(self, name)!r}")
        missing = ~(np.isnan(out["partial_target"]) & np.isnan(out["partial_pct"])) \
            & np.isnan(out["partial_size"])
        bad = np.flatnonzero(missing)
        if bad.size:
            raise ValueError(f"ExitRules.partial_size is missing at {_where(missing, bad[0])}, "
                             "which has a partial target: give the fraction to close there, "
                             "e.g. 0.5")
        return ExitRules(trail_on=self.trail_on, breakeven_on=self.breakeven_on, **out)

    def from_bar(self, pos: int, n: int) -> ExitRules:
        """The rules of bars ``pos..n-1`` of an ``n``-bar frame: every per-bar array (one of
        ``n`` values) cut at ``pos``; scalars and 1-value arrays (the same for every bar) kept."""
        names = [f[0] for f in _EXIT_FIELDS] + ["trail_line", "atr"]
        cut = {k: _from_bar(getattr(self, k), pos, n) for k in names}
        return ExitRules(trail_on=self.trail_on, breakeven_on=self.breakeven_on, **cut)


def _from_bar(value: Any, pos: int, n: int) -> Any:
    """``value[pos:]`` when ``value`` is an array of ``n`` per-bar values, else ``value``."""
    if isinstance(value, np.ndarray) and value.ndim == 1 and len(value) == n:
        return value[pos:]
    return value


def _per_bar(label: str, value: Any, n: int, scalar_ok: bool) -> np.ndarray:
    """``value`` as a contiguous float64 array of ``n`` values (or 1 for a scalar; a 1-value
    array is one too, so validating twice changes nothing)."""
    arr = np.asarray(value, dtype=np.float64)
    if scalar_ok and arr.size == 1 and arr.ndim <= 1:
        return arr.reshape(1).copy()
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{label} has shape {arr.shape}, expected ({n},): one value per bar"
                         + (" (or a scalar)" if scalar_ok else ""))
    return np.ascontiguousarray(arr)


#: From this many bars on, a missing stop or target (:meth:`Signals.from_entries`) is one NaN
#: seen as ``n`` values (a read-only view, :func:`is_constant`) instead of a filled array:
#: filling and checking 1M NaN cost ~0.7 ms (~1.9 ms once other work evicted the caches) and
#: 8 MB. Below it a filled array is cheap and keeps the sweeps' contiguous fast path
#: (``backtests.tuning.evaluate.checked_signals``; the hourly file is ~75,000 bars).
CONSTANT_FROM = 1 << 17
_NAN = np.full(1, np.nan)
_NAN.flags.writeable = False


def _no_prices(n: int) -> np.ndarray:
    """``n`` NaN prices: ``np.full(n, np.nan)`` (cheaper: ~1.6 instead of ~2.5 us on 3,243
    bars, which counts in sweeps, two per parameter set), or from :data:`CONSTANT_FROM` bars on
    a read-only view of one NaN."""
    if n >= CONSTANT_FROM:
        return np.broadcast_to(_NAN, (n,))
    out = np.empty(n)
    out.fill(np.nan)
    return out


def is_constant(arr: np.ndarray) -> bool:
    """True when ``arr`` (1-D, more than one value) is one value seen at every position (a
    stride-0 view such as ``np.broadcast_to(x, n)``): checking and reading its first value is
    checking and reading all of them."""
    return arr.ndim == 1 and len(arr) > 1 and arr.strides[0] == 0


def _entry_codes(entry: np.ndarray, copy: bool = False) -> np.ndarray:
    """``entry`` as contiguous int8 (a new array with ``copy``), checked first: the cast would
    wrap e.g. 255 to -1 (a short).

    Raises:
        ValueError: a value other than -1, 0 or +1, naming the first bar holding one.
    """
    # (the ufuncs' reduce directly: ndarray.min/max add ~0.3 us of Python each, per sweep set)
    if len(entry) and entry.dtype != np.bool_ and (np.minimum.reduce(entry) < -1
                                                   or np.maximum.reduce(entry) > 1):
        bad = np.flatnonzero((entry < -1) | (entry > 1))[0]
        raise ValueError(f"Signals.entry must be -1, 0 or +1; bar {bad} holds {entry[bad]}")
    if copy:
        return np.array(entry, dtype=np.int8, order="C")
    return np.ascontiguousarray(entry, dtype=np.int8)


def _where(arr: np.ndarray, i: int) -> str:
    return "the scalar" if len(arr) == 1 else f"bar {i}"


@dataclass
class Signals:
    """What a strategy wants, bar by bar; every array has ``len(df)`` elements.

    Bar ``t``'s values are decided at bar ``t``'s close and executed from bar ``t+1``'s open.

    Attributes:
        entry: int8, ``+1`` open a long, ``-1`` open a short, ``0`` nothing.
        exit: bool, close the open position (either side) at the next bar's open.
        stop: float64 stop price (quote currency) for a position opened by this bar's entry;
            NaN for none.
        target: float64 take-profit price for that position; NaN for none.
        max_bars: time stop, exit at the open of bar ``entry_fill_bar + max_bars`` (0: none).
        tags: optional per-bar entry label (str or int), copied into the trade list.
        indicators: the per-bar columns the signals were built from (for reports and audits):
            a DataFrame (None for none). A :class:`data.perbar.CompactFrame` may be given
            instead (the built-in strategies do: no dense frame of a long run exists unless
            someone reads it); the first read of ``indicators`` then decodes the DataFrame,
            which these signals keep (later reads and writes see that frame), and
            :attr:`held_indicators` is the form as held.
        exits: stops relative to the entry fill, stops on the close, trailing stops,
            break-even and a partial take-profit (:class:`ExitRules`); None for none.
    """

    entry: np.ndarray
    exit: np.ndarray
    stop: np.ndarray
    target: np.ndarray
    max_bars: int = 0
    tags: np.ndarray | None = None
    indicators: pd.DataFrame | None = field(default=None, repr=False)
    exits: ExitRules | None = None

    @classmethod
    def from_entries(
        cls,
        entry: np.ndarray,
        exit: np.ndarray | None = None,
        stop: np.ndarray | None = None,
        target: np.ndarray | None = None,
        **kwargs: Any,
    ) -> Signals:
        """Build Signals from an entry array, filling missing arrays with "nothing".

        Returns:
            :class:`Signals` whose ``exit`` is all False and whose ``stop``/``target`` are NaN
            (no price) on every bar where none is given. From :data:`CONSTANT_FROM` bars
            (131,072) on, a missing ``stop``/``target`` is a read-only view of one NaN (no
            8 MB column to fill and check per 1M bars), so writing into it raises numpy's
            "assignment destination is read-only": to set prices bar by bar, pass your own
            array (``stop=np.full(len(entry), np.nan)``) and fill that.
        """
        entry = np.asarray(entry)
        n = len(entry)
        # "nothing" arrays only where one is missing (a 1M-bar NaN array costs ~1 ms)
        return cls(
            entry=_entry_codes(entry, copy=True),
            exit=np.zeros(n, dtype=bool) if exit is None else np.asarray(exit, dtype=bool),
            stop=_no_prices(n) if stop is None else np.asarray(stop, dtype=np.float64),
            target=_no_prices(n) if target is None else np.asarray(target, dtype=np.float64),
            **kwargs,
        )

    def from_bar(self, pos: int) -> Signals:
        """The signals of bars ``pos..`` (a trading window opening at bar ``pos``): every
        per-bar array cut there, the exit rules' per-bar arrays and the indicator rows
        included. Views, not copies; valid signals stay valid."""
        n = len(self.entry)
        return Signals(
            entry=self.entry[pos:], exit=self.exit[pos:], stop=self.stop[pos:],
            target=self.target[pos:], max_bars=self.max_bars,
            tags=None if self.tags is None else self.tags[pos:],
            indicators=_indicators_from(self.held_indicators, pos),
            exits=None if self.exits is None else self.exits.from_bar(pos, n),
        )

    def validate(self, n: int) -> Signals:
        """Check shapes, dtypes and values against a frame of ``n`` bars; return normalised copies.

        Raises:
            ValueError: naming the offending array and, for bad values, the first bad bar.
        """
        out = {}
        for name, dtype in (("entry", np.int8), ("exit", bool), ("stop", np.float64),
                            ("target", np.float64)):
            arr = np.asarray(getattr(self, name))
            if arr.ndim != 1 or len(arr) != n:
                raise ValueError(
                    f"Signals.{name} has shape {arr.shape}, expected ({n},): one value per bar"
                )
            if name == "entry":
                out[name] = _entry_codes(arr)
            elif dtype is np.float64 and arr.dtype == dtype and is_constant(arr):
                out[name] = arr  # one price for every bar (e.g. none): kept as it is
            else:
                out[name] = np.ascontiguousarray(arr, dtype=dtype)
        for name in ("stop", "target"):
            arr = out[name]
            if is_constant(arr):
                arr = arr[:1]  # its one value (a bad one is reported at bar 0)
            # fmin/fmax skip NaN (none): one pass each instead of a mask; locate only on error.
            # Called once per sweep parameter set, so every microsecond counts.
            hi = np.fmax.reduce(arr) if n else np.nan  # NaN: no price at all
            if not np.isnan(hi) and not (hi < np.inf and np.fmin.reduce(arr) > 0):
                bad = np.flatnonzero(np.isinf(arr) | (arr <= 0))[0]
                raise ValueError(f"Signals.{name} must be a positive price or NaN; bar {bad} "
                                 f"holds {arr[bad]}")
        if int(self.max_bars) < 0:
            raise ValueError(f"Signals.max_bars must be >= 0, got {self.max_bars}")
        if self.tags is not None and len(self.tags) != n:
            raise ValueError(f"Signals.tags has {len(self.tags)} values, expected {n}")
        if self.exits is not None and not isinstance(self.exits, ExitRules):
            raise TypeError(f"Signals.exits must be an ExitRules, got {type(self.exits).__name__}")
        exits = self.exits.validate(n) if self.exits is not None else None
        return Signals(max_bars=int(self.max_bars), tags=self.tags,
                       indicators=self.held_indicators, exits=exits, **out)

    # -- the indicator columns, as given (installed as a property below) ---------------------
    def _get_indicators(self) -> pd.DataFrame | None:
        held = self.__dict__["_indicators"]
        if not isinstance(held, CompactFrame):
            return held
        frame = self.__dict__.get("_frame")
        if frame is None:  # decoded on the first read, then these signals' own frame
            frame = self.__dict__["_frame"] = held.frame()
        return frame

    def _set_indicators(self, frame: pd.DataFrame | CompactFrame | None) -> None:
        self.__dict__["_indicators"] = frame
        self.__dict__.pop("_frame", None)

    @property
    def held_indicators(self) -> pd.DataFrame | CompactFrame | None:
        """The indicator columns as held, without decoding: what the engines hand on to the
        result. A DataFrame or None as given; a :class:`data.perbar.CompactFrame` until
        :attr:`indicators` is first read, then the frame read (a caller may have changed it)."""
        return self.__dict__.get("_frame", self.__dict__["_indicators"])


# A property over the dataclass field: __init__, dataclasses.replace and any assignment go
# through the setter; reading decodes a compact frame. Installed after @dataclass, which would
# otherwise take the property object for the field's default.
Signals.indicators = property(  # type: ignore[assignment]
    Signals._get_indicators, Signals._set_indicators,
    doc="Per-bar indicator columns (a DataFrame or None; see the class docstring).")


def _indicators_from(held: pd.DataFrame | CompactFrame | None, pos: int
                     ) -> pd.DataFrame | CompactFrame | None:
    """The indicator rows ``pos..`` as held: a compact frame stays compact (decoding it whole
    to cut it was ~2.5x a long run's peak memory)."""
    if held is None:
        return None
    return held.from_bar(pos) if isinstance(held, CompactFrame) else held.iloc[pos:]


def _on_canonical(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``method(self, df, ...)`` so that it receives ``to_canonical(df)``; a returned frame
    of per-bar columns is put back on the caller's own index. Free for a canonical frame."""
    if getattr(method, "_canonical_input", False):
        return method

    @functools.wraps(method)
    def wrapper(self: Strategy, df: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
        out = method(self, to_canonical(df, "price frame"), *args, **kwargs)
        return like_input(out, df) if isinstance(out, pd.DataFrame) else out

    wrapper._canonical_input = True  # type: ignore[attr-defined]
    return wrapper


class Strategy:
    """Base class of every strategy (built in or a user's own, see the module docstring).

    Subclasses declare ``name``, ``description`` and ``params`` and implement :meth:`signals`
    (and optionally :meth:`indicators`; both receive a canonical frame, see :mod:`data.frame`,
    whatever frame the caller passes). ``Strategy(**params)`` validates the values; they are
    then available as ``self.p.<name>``.
    """

    name: ClassVar[str] = "strategy"
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        if "description" not in cls.__dict__:
            doc = (cls.__doc__ or "").strip()
            cls.description = doc.splitlines()[0] if doc else ""
        for key, spec in cls.params.items():
            if not isinstance(spec, Param):
                raise TypeError(f"{cls.__name__}.params[{key!r}] must be a Param, got "
                                f"{type(spec).__name__}")
            if spec.type not in (float, int, bool, str):
                raise TypeError(f"{cls.__name__}.params[{key!r}]: type must be float, int, "
                                f"bool or str, got {spec.type!r}")
            spec.coerce(key, spec.default)  # a bad default is a bug in the class
        # Every subclass's signals()/indicators() see a canonical frame, whatever the caller
        # passed (naive or non-UTC index, Open/Close columns, a timestamp column...).
        for method in ("signals", "indicators"):
            if method in cls.__dict__:
                setattr(cls, method, _on_canonical(cls.__dict__[method]))
        many = cls.__dict__.get("signals_many")
        if many is not None:
            if not isinstance(many, classmethod):
                raise TypeError(f"{cls.__name__}.signals_many must be a classmethod "
                                "(it receives the class and a list of strategies)")
            cls.signals_many = classmethod(_on_canonical(many.__func__))

    def signals_on_canonical(self, df: pd.DataFrame) -> Signals:
        """:meth:`signals` for a frame the caller has already made canonical (a sweep checks its
        frame once, not once per parameter set): skips the per-call check, which costs more
        than a simple strategy's signals (measured ~130 us of ~230 us per call)."""
        method = type(self).signals
        return getattr(method, "__wrapped__", method)(self, df)

    @classmethod
    @_on_canonical
    def signals_many(cls, df: pd.DataFrame, strategies: Sequence[Strategy]) -> list[Signals]:
        """The signals of several parameter sets of this strategy on one frame: one
        :class:`Signals` per element of ``strategies`` (instances of this class, their parameters
        validated as ``cls(**params)`` does: read them as ``s.p.<name>``), in the same order.

        Sweeps hand their parameter sets to this hook in chunks. By default it calls each
        strategy's :meth:`signals`; a strategy whose sets can share work (one indicator per
        period, the thresholds compared on top, as vectorbt's columns do) overrides it as a
        classmethod. The override must return for each set exactly what :meth:`signals` returns
        for it (``tests/test_sweep_exact.py`` holds the built-in overrides to that); arrays may
        be shared between the returned :class:`Signals` (the sweep does not modify them). A
        subclass that overrides :meth:`signals` again does not inherit a parent's override
        (:meth:`signals_many_on_canonical` then falls back to the default). ``df`` is
        canonical, as for :meth:`signals`.
        """
        return [s.signals_on_canonical(df) for s in strategies]

    @classmethod
    def signals_many_on_canonical(cls, df: pd.DataFrame, strategies: Sequence[Strategy]
                                  ) -> list[Signals]:
        """:meth:`signals_many` for a frame the caller has already made canonical (as
        :meth:`signals_on_canonical`). An override defined above the class that last overrides
        :meth:`signals` in the method resolution order is not used (its signals would be the
        parent's): each set's :meth:`signals` is called instead."""
        mro = cls.__mro__
        many_owner = next(k for k in mro if "signals_many" in k.__dict__)
        sig_owner = next((k for k in mro if "signals" in k.__dict__), Strategy)
        if many_owner is Strategy or mro.index(many_owner) > mro.index(sig_owner):
            return [s.signals_on_canonical(df) for s in strategies]
        method = many_owner.__dict__["signals_many"].__func__
        return getattr(method, "__wrapped__", method)(cls, df, strategies)

    def __init__(self, **params: Any) -> None:
        if not params.keys() <= self.params.keys():
            unknown = sorted(set(params) - set(self.params))
            raise ParamError(
                f"unknown parameter {unknown[0]!r} for strategy {self.name!r}"
                + did_you_mean(unknown[0], self.params, "parameters")
                + " (fix: `btc-backtest strategies` lists each strategy's parameters)"
            )
        values = {k: spec.coerce(k, params.get(k, spec.default))
                  for k, spec in self.params.items()}
        self.p = types.SimpleNamespace(**values)
        self.check()

    def check(self) -> None:
        """Check constraints between parameters (``self.p``); raise :class:`ParamConflict`.

        Called by ``__init__`` after each value was validated on its own. Nothing by default.
        """

    @property
    def param_values(self) -> dict[str, Any]:
        """The validated parameter values as a plain dict."""
        return dict(vars(self.p))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.param_values.items())
        return f"{type(self).__name__}({args})"

    def indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        """Per-bar causal indicator columns (for reports); empty by default."""
        return pd.DataFrame(index=df.index)

    def signals(self, df: pd.DataFrame) -> Signals:
        """Entries, exits, stops and targets for every bar of ``df`` (decided at each close)."""
        raise NotImplementedError(f"{type(self).__name__} must implement signals(df)")
