"""Look-ahead audit: does anything a strategy computed for bar t change when bars after t are
removed?

:func:`audit` runs the strategy on the full data and on the data truncated at many cut points
(``df.iloc[:cut]``), and compares, bar for bar over ``0..cut-1``:

* every array of :class:`~strategies.base.Signals` (``entry``, ``exit``, ``stop``, ``target``,
  ``tags``) and ``max_bars``; every per-bar array of its ``exits``
  (:class:`~strategies.base.ExitRules`: ``exits.trail_line``, ``exits.atr``, ...) and every
  scalar one (a ``stop_pct`` computed from the whole sample would change with the cut);
* every indicator column (``Signals.indicators``, else ``strategy.indicators(df)``);
* the trades closed by the last bar of the truncated data (run through the fast engine): a causal
  strategy must produce exactly the same trades up to there (the truncated run may only add an
  ``end`` exit for a position still open at the cut).

Comparisons are exact (NaN equals NaN; ``rtol`` can relax floats). Every difference is reported
with the first bar where it appears, for each cut; :attr:`AuditReport.first_leak` is the earliest.
A causal strategy has no finding at all.

:func:`verdict_key`, :func:`load_verdict` and :func:`save_verdict` let a caller (the main job,
:func:`backtests.job.lookahead_check`) reuse a verdict computed before for the same strategy code,
parameters, data, settings and cuts, from the user cache folder (:mod:`data.cache`): the audit
re-runs the strategy several times, and an identical input gives an identical verdict.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from backtests.config import BacktestConfig
from backtests.engines.fast import simulate
from backtests.persist import plain
from backtests.results import data_fingerprint
from data.cache import cache_root
from data.frame import to_canonical
from indicators.memo import IndicatorMemo, sharing
from strategies.base import Signals

SIGNAL_FIELDS: tuple[str, ...] = ("entry", "exit", "stop", "target", "tags")
TRADE_KEYS: tuple[str, ...] = ("entry_bar", "exit_bar", "side", "size", "entry_price",
                               "exit_price", "exit_reason", "pnl")


@dataclass(frozen=True)
class Finding:
    """One value that changed when the future was removed.

    ``bar`` is the first bar position (0-based, in the full data) whose value differs between the
    full run and the run on ``df.iloc[:cut]``; ``full`` and ``truncated`` are the two values there.
    """

    kind: str          # "signal" | "indicator" | "trade"
    field: str         # "entry", "stop", an indicator column, or "trades"
    cut: int           # number of bars kept
    bar: int
    timestamp: pd.Timestamp
    full: Any
    truncated: Any
    n_changed: int     # bars (or trades) that differ for this cut

    def describe(self) -> str:
        """One line for people."""
        return (f"{self.kind} {self.field!r} at bar {self.bar} ({self.timestamp.isoformat()}) "
                f"changes when data ends at bar {self.cut - 1}: full run {self.full!r}, "
                f"truncated run {self.truncated!r} ({self.n_changed} value(s) differ)")


@dataclass
class AuditReport:
    """The outcome of :func:`audit`: ``passed`` is True when nothing changed at any cut."""

    strategy: str
    params: dict[str, Any]
    n_bars: int
    cut_points: list[int]
    checked: list[str]                  # fields and columns compared
    findings: list[Finding] = field(default_factory=list)
    trades_checked: bool = False

    @property
    def passed(self) -> bool:
        return not self.findings

    @property
    def first_leak(self) -> Finding | None:
        """The finding with the earliest bar (ties: earliest cut)."""
        if not self.findings:
            return None
        return min(self.findings, key=lambda f: (f.bar, f.cut))

    def by_field(self) -> dict[str, Finding]:
        """The earliest finding of each field."""
        out: dict[str, Finding] = {}
        for f in sorted(self.findings, key=lambda f: (f.bar, f.cut)):
            out.setdefault(f"{f.kind}:{f.field}", f)
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per finding."""
        cols = ["kind", "field", "cut", "bar", "timestamp", "full", "truncated", "n_changed"]
        return pd.DataFrame([{c: getattr(f, c) for c in cols} for f in self.findings],
                            columns=cols)

    def summary(self) -> str:
        """A short text report."""
        head = (f"look-ahead audit of {self.strategy} {self.params}: {self.n_bars} bars, "
                f"{len(self.cut_points)} cut points, {len(self.checked)} series"
                f"{' + trades' if self.trades_checked else ''} compared")
        if self.passed:
            return head + "\nPASS: no value changes when the future is removed"
        lines = [head, f"FAIL: {len(self.findings)} finding(s); earliest per series:"]
        lines += ["  " + f.describe() for f in self.by_field().values()]
        return "\n".join(lines)


def default_cuts(n_bars: int, n_cuts: int = 25, warmup: int | None = None) -> list[int]:
    """``n_cuts`` cut points spread evenly from ``warmup`` bars to the last bar (exclusive of the
    full length), deduplicated and sorted. ``warmup`` defaults to 10 % of the bars (at least 2)."""
    if n_bars < 3:
        raise ValueError(f"an audit needs at least 3 bars, got {n_bars}")
    lo = max(2, int(n_bars * 0.1) if warmup is None else int(warmup))
    hi = n_bars - 1
    if lo > hi:
        lo = hi
    cuts = np.unique(np.linspace(lo, hi, max(1, n_cuts)).round().astype(int))
    return [int(c) for c in cuts if 2 <= c < n_bars]


def _exit_rules(sig: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(per-bar arrays, scalars)`` of ``sig.exits`` keyed ``exits.<field>`` (empty without)."""
    rules = getattr(sig, "exits", None)
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    if rules is None:
        return arrays, scalars
    n = len(sig.entry)
    for f in fields(rules):
        v = getattr(rules, f.name)
        if v is None:
            continue
        arr = np.asarray(v)
        if arr.ndim == 1 and len(arr) == n and n > 1:
            arrays[f"exits.{f.name}"] = arr
        else:
            scalars[f"exits.{f.name}"] = v
    return arrays, scalars


def _same_scalar(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (a 1-value array counts as its value)."""
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return a == b
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _diff_mask(a: Any, b: Any, rtol: float) -> np.ndarray:
    """True where ``a`` and ``b`` (arrays, or categoricals) differ, NaN/None equal to NaN/None.

    Fast paths keep a 1M-bar comparison in milliseconds: bool and integer arrays compare
    directly; two categoricals with the same categories compare their codes (-1 = missing);
    only object arrays (tags) go through pandas' missing-value test."""
    if isinstance(a, pd.Categorical) and isinstance(b, pd.Categorical) \
            and a.categories.equals(b.categories) and a.ordered == b.ordered:
        return a.codes != b.codes
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype.kind in "biu" and b.dtype.kind in "biu":
        return a != b
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        a = a.astype(float)
        b = b.astype(float)
        both_nan = np.isnan(a) & np.isnan(b)
        if rtol > 0:
            close = np.isclose(a, b, rtol=rtol, atol=0.0)
        else:
            close = a == b
        return ~(close | both_nan)
    a = a.astype(object, copy=False)
    b = b.astype(object, copy=False)
    same = (a == b) | (pd.isna(a) & pd.isna(b))
    return ~np.asarray(same, dtype=bool)


def _column(frame: pd.DataFrame, col: Any) -> Any:
    """A column's values: a categorical as itself (compared by codes; ``to_numpy`` would build
    an object array of 1M strings), anything else as an array."""
    values = frame[col].array
    return values if isinstance(values, pd.Categorical) else frame[col].to_numpy()


def _indicators(strategy: Any, df: pd.DataFrame, sig: Any) -> pd.DataFrame:
    ind = getattr(sig, "indicators", None)
    if ind is None and hasattr(strategy, "indicators"):
        ind = strategy.indicators(df)
    if ind is None:
        return pd.DataFrame(index=df.index)
    return ind


def _trades(df: pd.DataFrame, strategy: Any, sig: Any, config: Any) -> pd.DataFrame:
    # The fast engine on the signals already computed for ``df`` (what run_fast would compute
    # again): the trade table only, no metrics.
    if not isinstance(sig, Signals):
        raise TypeError(f"{type(strategy).__name__}.signals() returned {type(sig).__name__}, "
                        "not Signals")
    return simulate(df, sig, config)[0]


def audit(
    df: pd.DataFrame,
    strategy: Any,
    cut_points: int | Sequence[int] | None = None,
    config: Any = None,
    check_trades: bool = True,
    rtol: float = 0.0,
    full_signals: Signals | None = None,
) -> AuditReport:
    """Re-run ``strategy`` on ``df`` truncated at each cut point and report every change.

    Args:
        df: candles (any frame :func:`data.frame.to_canonical` accepts).
        strategy: a strategy instance (``signals(df) -> Signals``).
        cut_points: number of cuts (default 25, spread evenly after a 10 % warm-up) or explicit
            cut points (bars kept, ``2 <= cut < len(df)``).
        config: engine configuration for the trade comparison (default ``BacktestConfig()``).
        check_trades: also compare trades through the fast engine.
        rtol: relative tolerance for float comparisons (0: exact).
        full_signals: ``strategy.signals(df)`` when the caller has them already (the main job
            audits the very signals it backtested); every cut is always computed afresh from
            the truncated data.

    Returns:
        :class:`AuditReport`; ``report.passed`` is True for a causal strategy.
    """
    return audit_all(df, [strategy], cut_points, config, check_trades, rtol,
                     None if full_signals is None else [full_signals])[0]


def audit_all(
    df: pd.DataFrame,
    strategies: Sequence[Any],
    cut_points: int | Sequence[int] | None = None,
    config: Any = None,
    check_trades: bool = True,
    rtol: float = 0.0,
    full_signals: Sequence[Signals | None] | None = None,
) -> list[AuditReport]:
    """:func:`audit` of several strategies on the same data and cuts: one report each, in
    order (``full_signals``: one entry per strategy, None where it is to be computed).

    Each cut's truncated frame is made once and the strategies run on it one after the other
    inside :func:`indicators.memo.sharing`: a computation they have in common on that frame
    (the S/R engine run, the RSI, the ATR) runs once per cut, from the truncated data.
    """
    df = to_canonical(df, "price frame")
    n = len(df)
    if cut_points is None or isinstance(cut_points, int):
        cuts = default_cuts(n, 25 if cut_points is None else cut_points)
    else:
        cuts = sorted({int(c) for c in cut_points})
        bad = [c for c in cuts if not 2 <= c < n]
        if bad:
            raise ValueError(f"cut points must be in [2, {n - 1}] (bars kept), got {bad}")
    if check_trades and config is None:
        config = BacktestConfig()
    given = list(full_signals) if full_signals is not None else [None] * len(strategies)
    if len(given) != len(strategies):
        raise ValueError(f"full_signals has {len(given)} entries for {len(strategies)} "
                         "strategies")
    refs = [_Reference.of(df, s, sig, cuts, config, check_trades)
            for s, sig in zip(strategies, given, strict=True)]
    for cut in cuts:
        part = df.iloc[:cut]
        with sharing(IndicatorMemo(part)):
            for ref in refs:
                ref.compare(part, cut, rtol, config)
    return [ref.report for ref in refs]


@dataclass
class _Reference:
    """One strategy's full run and the report its cuts are compared into."""

    strategy: Any
    df: pd.DataFrame
    sig: Any
    ind: pd.DataFrame
    trades: pd.DataFrame | None
    names: list[str]
    exits: dict[str, np.ndarray]
    scalars: dict[str, Any]
    report: AuditReport

    @classmethod
    def of(cls, df: pd.DataFrame, strategy: Any, sig: Signals | None, cuts: list[int],
           config: Any, check_trades: bool) -> _Reference:
        full_sig = strategy.signals(df) if sig is None else sig
        full_ind = _indicators(strategy, df, full_sig)
        names = [f for f in SIGNAL_FIELDS if getattr(full_sig, f, None) is not None]
        exits, scalars = _exit_rules(full_sig)
        checked = ([f"signal:{f}" for f in [*names, *exits, *scalars]]
                   + [f"indicator:{c}" for c in full_ind.columns])
        report = AuditReport(
            strategy=getattr(strategy, "name", type(strategy).__name__),
            params=dict(vars(strategy.p)) if hasattr(strategy, "p") else {},
            n_bars=len(df), cut_points=cuts, checked=checked, trades_checked=check_trades,
        )
        trades = _trades(df, strategy, full_sig, config) if check_trades else None
        return cls(strategy, df, full_sig, full_ind, trades, names, exits, scalars, report)

    def _add(self, kind: str, name: str, cut: int, mask: np.ndarray, full: Any,
             trunc: Any) -> None:
        if mask.any():
            b = int(np.argmax(mask))
            self.report.findings.append(Finding(kind, name, cut, b, self.df.index[b],
                                                plain(full[b]), plain(trunc[b]),
                                                int(mask.sum())))

    def compare(self, part: pd.DataFrame, cut: int, rtol: float, config: Any) -> None:
        """Run the strategy on ``part`` (the first ``cut`` bars) and record every change."""
        strategy, full_sig, report, idx = self.strategy, self.sig, self.report, self.df.index
        sig = strategy.signals(part)
        part_exits, part_scalars = _exit_rules(sig)
        full_arrays = {f: np.asarray(getattr(full_sig, f)) for f in self.names} | self.exits
        part_arrays = {f: getattr(sig, f, None) for f in self.names} | part_exits
        for f, a in full_arrays.items():
            a = a[:cut]
            b = part_arrays.get(f)
            b = np.full(cut, np.nan) if b is None else np.asarray(b)
            self._add("signal", f, cut, _diff_mask(a, b, rtol), a, b)
        for f, v in self.scalars.items():
            w = part_scalars.get(f)
            if not _same_scalar(v, w):
                report.findings.append(Finding("signal", f, cut, 0, idx[0], plain(v), plain(w), 1))
        if getattr(full_sig, "max_bars", 0) != getattr(sig, "max_bars", 0):
            report.findings.append(Finding("signal", "max_bars", cut, 0, idx[0], full_sig.max_bars,
                                           sig.max_bars, 1))
        ind = _indicators(strategy, part, sig)
        for col in self.ind.columns:
            a = _column(self.ind, col)[:cut]
            if col not in ind.columns:
                report.findings.append(Finding("indicator", str(col), cut, 0, idx[0], plain(a[0]),
                                               "<missing>", cut))
                continue
            b = _column(ind, col)
            self._add("indicator", str(col), cut, _diff_mask(a, b, rtol), a, b)
        if self.trades is not None:
            _compare_trades(report, self.trades, _trades(part, strategy, sig, config), cut, idx)


def _compare_trades(report: AuditReport, full: pd.DataFrame, trunc: pd.DataFrame, cut: int,
                    idx: pd.DatetimeIndex) -> None:
    # Trades finished by the last kept bar must be identical; the truncated run may only add an
    # "end" exit on the last bar for a position that was still open.
    a = full[full["exit_bar"] <= cut - 1][list(TRADE_KEYS)].reset_index(drop=True)
    keep = ~((trunc["exit_reason"] == "end") & (trunc["exit_bar"] == cut - 1))
    b = trunc[keep][list(TRADE_KEYS)].reset_index(drop=True)
    m = min(len(a), len(b))
    # The first row (of the common ones) where any key differs, NaN equal to NaN: one vectorised
    # comparison per key instead of a loop over rows (was ~1 s of the main job's audit).
    differs = np.zeros(m, dtype=bool)
    for k in TRADE_KEYS:
        differs |= _diff_mask(a[k].to_numpy()[:m], b[k].to_numpy()[:m], 0.0)
    first = int(np.argmax(differs)) if differs.any() else None
    if first is None and len(a) == len(b):
        return
    if first is None:
        first = m
    ra = a.iloc[first] if first < len(a) else None
    rb = b.iloc[first] if first < len(b) else None
    bar = min(int(r["entry_bar"]) for r in (ra, rb) if r is not None)
    n_diff = max(len(a), len(b)) - first

    def show(r: pd.Series | None) -> Any:
        return None if r is None else {k: plain(r[k]) for k in TRADE_KEYS}

    report.findings.append(Finding("trade", "trades", cut, bar, idx[bar], show(ra), show(rb),
                                   n_diff))


# --- reusing a verdict ------------------------------------------------------------------------

#: Bump when what the audit compares changes: older verdicts are then not reused.
VERDICT_VERSION = 1
#: Top-level packages of btc-backtest: their loaded source files are part of a verdict's key
#: wherever they are installed.
OUR_PACKAGES = ("backtests", "data", "indicators", "strategies")
#: Libraries whose version can change what a strategy computes.
KEY_LIBRARIES = ("numpy", "pandas", "numba", "talib", "scipy")


def _json_default(obj: Any) -> Any:
    """JSON for what strategy attributes and settings hold; TypeError for anything else (the
    verdict is then not cached: no key is better than a key that misses a difference)."""
    if isinstance(obj, SimpleNamespace):
        return vars(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray | pd.Series | pd.DataFrame | pd.Index):
        arr = np.asarray(obj)
        if arr.dtype == object:
            raise TypeError("object array")
        index = getattr(obj, "index", None)
        h = hashlib.sha256(np.ascontiguousarray(arr).tobytes())
        if index is not None:
            h.update(_json_key(list(map(str, index))).encode())
        return {"array": str(arr.dtype), "shape": arr.shape, "sha256": h.hexdigest()}
    raise TypeError(f"cannot key a {type(obj).__name__}")


def _json_key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_json_default, allow_nan=True)


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs |= {os.path.realpath(d) for d in dirs}  # module paths may name either form
    return tuple(os.path.join(d, "") for d in dirs)


def code_files(strategy: Any) -> list[str] | None:
    """Source files whose code can change what ``strategy`` computes: every loaded module of
    btc-backtest, and every loaded module that is neither in the standard library nor installed
    in site-packages (the user's strategy and its helpers), sorted. None when the strategy's
    class has no source file (defined interactively): its verdict is then not cached."""
    own = sys.modules.get(type(strategy).__module__)
    own_file = getattr(own, "__file__", None)
    if not own_file or not os.path.isfile(own_file):
        return None
    libs = _library_dirs()
    files = {own_file}
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if not path or not path.endswith(".py"):
            continue
        if name.split(".")[0] in OUR_PACKAGES or not os.path.abspath(path).startswith(libs):
            files.add(path)
    return sorted({os.path.realpath(f) for f in files})


def verdict_key(df: pd.DataFrame, strategy: Any, config: Any, cuts: int | Sequence[int]
                ) -> str | None:
    """SHA-256 naming the verdict of ``audit(df, strategy, cuts, config)``: of the audit's
    version, the strategy's class, attributes (its parameters) and code (:func:`code_files`,
    by content), the versions of the numerical libraries and Python, the candles (the data
    fingerprint's hash), the settings and the cuts. None when one of them cannot be keyed
    exactly (then the audit runs)."""
    files = code_files(strategy)
    if files is None:
        return None
    h = hashlib.sha256()
    try:
        h.update(_json_key({
            "version": VERDICT_VERSION,
            "strategy": f"{type(strategy).__module__}.{type(strategy).__qualname__}",
            "attributes": vars(strategy),
            "config": config.to_dict() if hasattr(config, "to_dict") else config,
            "cuts": cuts if isinstance(cuts, int) else [int(c) for c in cuts],
            "data": data_fingerprint(df)["sha256"],
            "python": sys.version,
            "libraries": {m: getattr(sys.modules.get(m), "__version__", None)
                          for m in KEY_LIBRARIES},
        }).encode())
        for path in files:
            h.update(path.encode())
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    except (TypeError, ValueError, OSError):
        return None
    return h.hexdigest()


def _verdict_path(key: str) -> Path:
    return cache_root() / "audit" / f"{key}.json"


def load_verdict(key: str) -> dict[str, Any] | None:
    """The verdict saved under ``key`` by :func:`save_verdict`, else None (also when the file
    is unreadable or damaged: the audit then simply runs again)."""
    try:
        saved = json.loads(_verdict_path(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("key") != key:
        return None
    verdict = saved.get("verdict")
    return verdict if isinstance(verdict, dict) else None


def save_verdict(key: str, verdict: dict[str, Any]) -> Path | None:
    """Save ``verdict`` (JSON-able) under ``key``, atomically; the file, or None when the cache
    cannot be written (the verdict is then only not reused)."""
    path = _verdict_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".verdict-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"key": key, "verdict": verdict}, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except (OSError, TypeError, ValueError):
        return None
    return path
