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
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from data.frame import like_input, to_canonical


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
                if not np.isfinite(f) or f != int(f):
                    raise ValueError
                out = int(f)
            elif t is float:
                if isinstance(value, bool):
                    raise ValueError
                out = float(value)
                if np.isnan(out):
                    raise ValueError
            elif t is str:
                out = str(value)
            else:  # pragma: no cover - declarations are checked in __init_subclass__
                raise ParamError(f"parameter {name!r}: unsupported type {t!r}")
        except (TypeError, ValueError):
            raise ParamError(
                f"parameter {name!r} expects {t.__name__}, got {value!r} ({self.help})"
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
        indicators: the per-bar columns the signals were built from (for reports and audits).
    """

    entry: np.ndarray
    exit: np.ndarray
    stop: np.ndarray
    target: np.ndarray
    max_bars: int = 0
    tags: np.ndarray | None = None
    indicators: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def from_entries(
        cls,
        entry: np.ndarray,
        exit: np.ndarray | None = None,
        stop: np.ndarray | None = None,
        target: np.ndarray | None = None,
        **kwargs: Any,
    ) -> Signals:
        """Build Signals from an entry array, filling missing arrays with "nothing"."""
        entry = np.asarray(entry)
        n = len(entry)
        nan = np.full(n, np.nan)
        return cls(
            entry=entry.astype(np.int8),
            exit=np.zeros(n, dtype=bool) if exit is None else np.asarray(exit, dtype=bool),
            stop=nan.copy() if stop is None else np.asarray(stop, dtype=np.float64),
            target=nan.copy() if target is None else np.asarray(target, dtype=np.float64),
            **kwargs,
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
            out[name] = np.ascontiguousarray(arr, dtype=dtype)
        bad = np.flatnonzero(~np.isin(out["entry"], (-1, 0, 1)))
        if bad.size:
            raise ValueError(f"Signals.entry must be -1, 0 or +1; bar {bad[0]} holds "
                             f"{out['entry'][bad[0]]}")
        for name in ("stop", "target"):
            arr = out[name]
            bad = np.flatnonzero(np.isinf(arr) | (arr <= 0))
            if bad.size:
                raise ValueError(f"Signals.{name} must be a positive price or NaN; bar {bad[0]} "
                                 f"holds {arr[bad[0]]}")
        if int(self.max_bars) < 0:
            raise ValueError(f"Signals.max_bars must be >= 0, got {self.max_bars}")
        if self.tags is not None and len(self.tags) != n:
            raise ValueError(f"Signals.tags has {len(self.tags)} values, expected {n}")
        return Signals(max_bars=int(self.max_bars), tags=self.tags,
                       indicators=self.indicators, **out)


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

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
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
