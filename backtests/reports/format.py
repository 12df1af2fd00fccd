"""How every number, date and duration is written for people: one module for the HTML pages and
the terminal (``btc-backtest run``'s summary, sweep tables).

Standard library only (no pandas/numpy import), so the CLI can format without loading the report
stack; pandas and numpy values work because they are ``float``/``datetime``/``timedelta``
subclasses or implement ``__float__``/``__index__``.

Kinds (:func:`fmt`):

========  ======================  ====================================================
kind      example                 meaning
========  ======================  ====================================================
money     ``−$1,234.50``          an amount in quote currency, cents
price     ``$62,583.26``          a BTC price: cents below $100k, whole dollars above
pct       ``+12.34%``             a change or return: always signed
pct_abs   ``12.34%``              a share or rate (win rate, exposure): no sign
ratio     ``1.23``                Sharpe, profit factor...
int       ``1,234``               a count
days      ``12 days`` / ``6 h``   a duration given in days
btc       ``0.123456``            a size in BTC
date      ``2026-02-05``          a timestamp: date only at midnight, else ``HH:MM``
num       ``0.1235`` / ``12,345`` anything else: 4 significant digits, grouped above 10k
========  ======================  ====================================================

Missing values (None, NaN, NaT) are written ``—``; infinities ``∞``/``−∞``. The minus sign is the
typographic ``−`` (U+2212) so columns of numbers line up in proportional fonts.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from numbers import Integral, Real
from typing import Any

MISSING = "—"
MINUS = "−"
KINDS = ("money", "price", "pct", "pct_abs", "ratio", "int", "days", "btc", "date", "num")


def is_missing(x: Any) -> bool:
    """True for None, NaN and NaT (pandas/numpy included)."""
    if x is None:
        return True
    try:
        return bool(x != x)  # NaN and NaT are the only values unequal to themselves
    except (TypeError, ValueError):
        return False


def _number(x: Any) -> float | None:
    if _is_bool(x):
        return None
    if isinstance(x, Real):
        return float(x)
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def fmt(x: Any, kind: str = "num") -> str:
    """``x`` written as ``kind`` (see the module docstring); a non-number is returned as text."""
    if is_missing(x):
        return MISSING
    if kind == "date":
        return fmt_time(x)
    v = _number(x)
    if v is None:
        return str(x)
    if math.isinf(v):
        return "∞" if v > 0 else f"{MINUS}∞"
    a = abs(v)
    sign = MINUS if v < 0 else ""
    if kind == "money":
        return f"{sign}${a:,.2f}"
    if kind == "price":
        return f"{sign}${a:,.2f}" if a < 1e5 else f"{sign}${a:,.0f}"
    if kind == "pct":
        if round(a, 2) == 0:
            return "0.00%"
        return f"{'+' if v > 0 else MINUS}{a:,.2f}%"
    if kind == "pct_abs":
        return f"{sign}{a:,.2f}%"
    if kind == "ratio":
        return f"{sign}{a:,.2f}"
    if kind == "int":
        return f"{sign}{a:,.0f}"
    if kind == "days":
        return f"{a:,.0f} days" if a >= 2 else f"{a * 24:,.0f} h"
    if kind == "btc":
        return f"{sign}{a:,.6f}"
    return f"{sign}{a:,.4g}" if a < 1e4 else f"{sign}{a:,.0f}"


def fmt_time(ts: Any) -> str:
    """A timestamp (datetime, pandas Timestamp or ISO text) in UTC: ``2026-02-05`` at midnight,
    else ``2026-02-05 13:00``. Text that is not a date is returned unchanged."""
    if is_missing(ts):
        return MISSING
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts)
        except ValueError:
            return ts
    if isinstance(ts, datetime):
        if ts.tzinfo is not None:
            ts = ts.astimezone(UTC).replace(tzinfo=None)
        return ts.strftime("%Y-%m-%d") if (ts.hour, ts.minute) == (0, 0) else ts.strftime(
            "%Y-%m-%d %H:%M")
    if isinstance(ts, date):
        return ts.isoformat()
    return str(ts)


def fmt_duration(td: Any) -> str:
    """A duration (timedelta or pandas Timedelta): ``12d 4h``, ``3d``, ``5h 30m``."""
    if is_missing(td) or not isinstance(td, timedelta):
        return MISSING if is_missing(td) else str(td)
    days, hours = td.days, td.seconds // 3600
    if days and hours:
        return f"{days}d {hours}h"
    return f"{days}d" if days else f"{hours}h {td.seconds // 60 % 60}m"


def fmt_value(x: Any, key: str = "") -> str:
    """A free-form value (parameters, settings, provenance) written for people: yes/no, grouped
    integers, prices for price-like keys, % for ``*_pct`` keys, dates for timestamps."""
    if _is_bool(x):
        return "yes" if x else "no"
    if is_missing(x):
        return MISSING
    if isinstance(x, datetime | date) or (isinstance(x, str) and _looks_like_time(x)):
        return fmt_time(x)
    if isinstance(x, Integral):
        return f"{int(x):,}" if abs(int(x)) >= 10_000 else str(int(x))
    if isinstance(x, Real):
        if key.endswith("_pct"):
            return fmt(x, "pct_abs")
        v = float(x)
        return f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.6g}"
    if isinstance(x, dict):
        return ", ".join(f"{k} {fmt_value(v, str(k))}" for k, v in x.items())
    if isinstance(x, list | tuple):
        return ", ".join(fmt_value(v) for v in x)
    return str(x)


def sign_class(x: Any) -> str:
    """CSS class of a signed value: ``pos``, ``neg`` or ``""`` (zero, missing, not a number)."""
    v = None if is_missing(x) else _number(x)
    if v is None:
        return ""
    return "pos" if v > 0 else "neg" if v < 0 else ""


_RATES = ("win_rate", "exposure", "volatility", "share")


def metric_kind(key: str) -> str:
    """The :func:`fmt` kind of a metric from its key: ``*_pct`` are % (signed for changes and
    returns, unsigned for rates such as win rate), counts (``n_*``, ``*trades``) are integers,
    money amounts are money, anything else (Sharpe, PBO...) a ratio."""
    k = key.lower()
    if k.endswith("_pct") or k.endswith(" %"):
        return "pct_abs" if any(r in k for r in _RATES) else "pct"
    if k.startswith("n_") or k.endswith("trades") or k == "trial":
        return "int"
    if "factor" in k or "ratio" in k:
        return "ratio"
    if any(w in k for w in ("equity", "pnl", "profit", "loss", "fees", "funding", "expectancy")):
        return "money"
    return "ratio"


def label(key: str) -> str:
    """A snake_case key as a label: ``max_drawdown_pct`` → ``Max drawdown`` (values say %)."""
    words = key.replace("_pct", "").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _is_bool(x: Any) -> bool:
    return isinstance(x, bool) or getattr(getattr(x, "dtype", None), "kind", "") == "b"


def _looks_like_time(text: str) -> bool:
    return len(text) >= 10 and text[4] == "-" and text[7] == "-" and text[:4].isdigit()



def terminal(x: Any, spec: str = ".3f") -> str:
    """``x`` for a plain-text terminal table (ASCII): ``format(x, spec)`` for a number
    (``"d"`` specs round), ``n/a`` for a missing value and ``inf``/``-inf``, padded to the
    width in ``spec`` (``"10.2f"``) so that columns stay aligned; booleans and text as text."""
    if _is_bool(x):
        return str(bool(x))
    v = None if x is None else _number(x)
    if x is not None and v is None:
        return str(x)
    if v is not None and math.isfinite(v):
        return format(round(v), spec) if spec.endswith("d") else format(v, spec)
    text = "n/a" if v is None or math.isnan(v) else ("inf" if v > 0 else "-inf")
    width = re.match(r"[<>^]?[+\- ]?(\d*)", spec).group(1)  # "12,.2f" -> 12, "+,.2f" -> none
    return f"{text:>{width}}" if width else text
