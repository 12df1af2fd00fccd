"""The main job: several strategies on one data set, with the shared technical analysis.

:func:`run_job` is what ``btc-backtest run`` does between loading the data and writing the
report: it computes the market analysis every report shows (support/resistance zones at the end
date, flip and retest events, the technical outlook) once, runs each strategy through
:func:`backtests.runner.run`, and attaches the analysis to each result, so that reports only read
results. It also times each stage (seconds), for the closing line of the CLI and for profiling.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from backtests.config import BacktestConfig
from backtests.results import BacktestResult
from backtests.squeeze.summary import squeeze_summary
from backtests.story import story
from backtests.tuning.audit import audit_all, load_verdict, save_verdict, verdict_key
from indicators.memo import IndicatorMemo, sharing
from strategies.base import Signals, Strategy
from strategies.native import BacktraderStrategy

AUDIT_CUTS = 3  # cut points of the quick look-ahead audit run with every job


@dataclass
class Timings:
    """Wall-clock seconds spent in each stage of a job."""

    startup: float = 0.0     # imports and numba kernels (compiled on a cold cache), before load
    load: float = 0.0
    analysis: float = 0.0
    simulation: float = 0.0
    audit: float = 0.0
    rendering: float = 0.0
    per_strategy: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Seconds over all stages."""
        return (self.startup + self.load + self.analysis + self.simulation + self.audit
                + self.rendering)

    def line(self) -> str:
        """One human line, e.g. ``start-up 1.02 s, load 0.21 s, analysis 0.40 s, ...``."""
        return (f"start-up {self.startup:.2f} s, load {self.load:.2f} s, analysis "
                f"{self.analysis:.2f} s, simulation {self.simulation:.2f} s, look-ahead audit "
                f"{self.audit:.2f} s, rendering "
                f"{self.rendering:.2f} s, total {self.total:.2f} s")


@dataclass(frozen=True)
class MarketAnalysis:
    """What every report of a data set shows besides the strategy: S/R zones at the end date
    (``levels``: one row per zone), flip and retest ``events`` over the whole span, and the
    technical ``outlook`` at the end date (``Outlook.to_dict()``; empty with a ``note`` key when
    the data is too short for it)."""

    levels: pd.DataFrame
    events: pd.DataFrame
    outlook: dict[str, Any]
    #: :func:`backtests.squeeze.summary.squeeze_summary` (``{"note": ...}`` when it cannot be
    #: computed), stored in each result's ``data["squeeze"]`` for the report's squeeze card
    squeeze: dict[str, Any] = field(default_factory=dict)


def analyse(df: pd.DataFrame) -> MarketAnalysis:
    """Compute the :class:`MarketAnalysis` of ``df`` (causal as of its last bar)."""
    from indicators.flips import flips
    from indicators.levels import support_resistance
    from indicators.outlook import outlook

    levels = support_resistance(df).table
    events = flips(df).events
    try:
        ol = outlook(df)
        view = {**ol.to_dict(), "text": ol.text()}
    except ValueError as exc:  # DataError included: too little data for an outlook
        view = {"note": f"no technical outlook: {exc}"}
    try:
        squeeze = squeeze_summary(df)
    except ValueError as exc:  # DataError included: no volume, too few bars
        squeeze = {"note": f"no squeeze analysis: {exc}"}
    return MarketAnalysis(levels=levels, events=events, outlook=view, squeeze=squeeze)


def auditable(df: pd.DataFrame, strategy: Any) -> str | None:
    """Why :func:`lookahead_check` cannot audit ``strategy`` on ``df``, or None when it can."""
    if isinstance(strategy, BacktraderStrategy) or not callable(getattr(strategy, "signals", None)):
        return "a native backtrader strategy (no vectorised signals): not audited"
    if len(df) < 3:
        return f"only {len(df)} bars: too short to audit"
    return None


def lookahead_check(df: pd.DataFrame, strategy: Any, config: BacktestConfig,
                    cuts: int = AUDIT_CUTS, *, reuse: bool = True,
                    full_signals: Signals | None = None) -> dict[str, Any]:
    """The quick look-ahead audit saved in each result's ``checks["lookahead"]``: the strategy
    re-run on ``df`` cut at ``cuts`` points (:func:`backtests.tuning.audit.audit`, signals,
    indicators and trades compared).

    With ``reuse``, a verdict saved by an earlier audit of the same strategy code, parameters,
    data, settings and cuts (:func:`backtests.tuning.audit.verdict_key`) is returned instead of
    re-running the strategy, with ``"reused": True``; a new verdict is saved for next time
    (without ``reuse`` too: it replaces the saved one).
    ``full_signals``: the strategy's signals on the whole of ``df`` when the caller has them
    (the job's backtest), else computed here; the cuts are always computed afresh.

    Returns ``{"passed", "cuts", "cut_times" (ISO, last bar kept), "checked" (series compared),
    "first_leak" (one line, or None), "audited_at" (ISO UTC time the audit ran), "reused"}``;
    ``{"skipped": reason}`` for a strategy without ``signals()`` (a native backtrader strategy)
    or data too short to cut.
    """
    return lookahead_checks(df, [strategy], config, cuts, reuse=reuse,
                            full_signals=[full_signals])[0]


def saved_verdicts(df: pd.DataFrame, strategies: Sequence[Any], config: BacktestConfig,
                   cuts: int = AUDIT_CUTS, *, reuse: bool = True
                   ) -> list[tuple[dict[str, Any] | None, str | None]]:
    """Per strategy ``(verdict, key)``: the ``{"skipped": ...}`` or saved (``"reused": True``)
    verdict :func:`lookahead_check` would return without auditing, else None and the key to
    save a new verdict under (None when it cannot be keyed). With ``reuse`` off nothing saved
    is returned, but the new verdict is still saved under its key (``--reaudit`` refreshes it).
    """
    out: list[tuple[dict[str, Any] | None, str | None]] = []
    for strategy in strategies:
        why = auditable(df, strategy)
        if why is not None:
            out.append(({"skipped": why}, None))
            continue
        # keyed even without reuse: --reaudit replaces the saved verdict, so the next run
        # reuses the fresh one instead of auditing again
        key = verdict_key(df, strategy, config, min(cuts, len(df) - 2))
        saved = load_verdict(key) if key and reuse else None
        out.append(({**saved, "reused": True} if saved is not None else None, key))
    return out


def lookahead_checks(df: pd.DataFrame, strategies: Sequence[Any], config: BacktestConfig,
                     cuts: int = AUDIT_CUTS, *, reuse: bool = True,
                     full_signals: Sequence[Signals | None] | None = None,
                     saved: list[tuple[dict[str, Any] | None, str | None]] | None = None,
                     ) -> list[dict[str, Any]]:
    """:func:`lookahead_check` of each strategy (same order); the strategies without a saved
    verdict are audited together (:func:`backtests.tuning.audit.audit_all`: each cut made
    once, what they share on it computed once). ``full_signals``: per strategy, as in
    :func:`lookahead_check`; ``saved``: :func:`saved_verdicts` already looked up."""
    saved = saved if saved is not None else saved_verdicts(df, strategies, config, cuts,
                                                           reuse=reuse)
    given = list(full_signals) if full_signals is not None else [None] * len(strategies)
    todo = [i for i, (verdict, _key) in enumerate(saved) if verdict is None]
    verdicts = [verdict for verdict, _key in saved]
    if todo:
        reports = audit_all(df, [strategies[i] for i in todo], min(cuts, len(df) - 2),
                            config, full_signals=[given[i] for i in todo])
        for i, rep in zip(todo, reports, strict=True):
            leak = rep.first_leak
            verdict = {"passed": rep.passed, "cuts": list(rep.cut_points),
                       "cut_times": [df.index[c - 1].isoformat() for c in rep.cut_points],
                       "checked": len(rep.checked),
                       "first_leak": leak.describe() if leak else None,
                       "audited_at": datetime.now(UTC).isoformat(timespec="seconds")}
            key = saved[i][1]
            if key:
                save_verdict(key, verdict)
            verdicts[i] = {**verdict, "reused": False}
    return verdicts  # type: ignore[return-value]  # every None was filled


def run_job(
    df: pd.DataFrame,
    strategies: Sequence[Strategy],
    config: BacktestConfig,
    *,
    origin: str | None = None,
    timings: Timings | None = None,
    on_step: Callable[[str], None] | None = None,
    start: object = None,
    check_lookahead: bool = True,
    reuse_audit: bool = True,
) -> list[BacktestResult]:
    """Backtest each strategy on ``df`` with ``config`` and attach the shared analysis.

    Args:
        df: canonical candles up to the end date; the bars before ``start`` are warm-up.
        start: first bar of the trading window (None: the first bar of ``df``); see
            :func:`backtests.runner.run`. The analysis uses the whole history; its flip and
            retest events are kept from ``start`` on (what the window's charts show).
        strategies: strategy instances, run in order.
        config: engine settings (the same for every strategy).
        origin: one line on where the data came from, stored in each result's fingerprint.
        timings: filled in place with the seconds per stage, if given.
        on_step: called with a short label before each step (progress display).
        check_lookahead: run :func:`lookahead_check` per strategy (saved in ``checks``).
        reuse_audit: let :func:`lookahead_check` reuse a saved verdict for identical inputs.

    Returns:
        One :class:`BacktestResult` per strategy, in the given order, each with the job's
        :mod:`backtests.story` (market now, biggest moves) in ``story``.
    """
    timings = timings if timings is not None else Timings()
    step = on_step or (lambda _label: None)
    from backtests.runner import run

    # One memo on the job's frame: the analysis and the strategies share what they compute
    # alike on it (the S/R engine run of the same zone parameters, RSI, ATR); dropped before
    # the audit, which shares per cut.
    memo = IndicatorMemo(df)
    step("analysis")
    t0 = time.perf_counter()
    with sharing(memo):
        analysis = analyse(df)
    timings.analysis += time.perf_counter() - t0

    t0 = time.perf_counter()
    saved = (saved_verdicts(df, strategies, config, reuse=reuse_audit) if check_lookahead
             else [])
    timings.audit += time.perf_counter() - t0
    # The strategies still to audit keep their full-run signals for the audit (computed once
    # for the backtest and the audit; ~1.5 s per strategy on 1M minute bars).
    keep = [check_lookahead and saved[i][0] is None for i in range(len(strategies))]
    kept: list[Signals | None] = [None] * len(strategies)
    results = []
    for i, strategy in enumerate(strategies):
        step(strategy.name)
        t0 = time.perf_counter()
        with sharing(memo):
            sig = strategy.signals(df) if keep[i] else None
            res = run(df, strategy, config, start=start, signals=sig)
        kept[i] = sig
        del sig
        elapsed = time.perf_counter() - t0
        timings.simulation += elapsed
        timings.per_strategy[strategy.name] = elapsed
        data = dict(res.data)
        if origin:
            data["origin"] = origin
        data["squeeze"] = analysis.squeeze
        events = analysis.events
        if start is not None and len(events):
            # Bar positions count from the window's first bar, like the result's prices.
            first = res.prices.index[0]
            shift = int(df.index.get_loc(first))
            events = events[events["time"] >= first].copy()
            events["bar"] -= shift
            events["break_bar"] -= shift
        results.append(res.replace(levels=analysis.levels, events=events,
                                   outlook=analysis.outlook, data=data))
    del memo
    if check_lookahead:
        step("look-ahead audit")
        t0 = time.perf_counter()
        verdicts = lookahead_checks(df, strategies, config, reuse=reuse_audit,
                                    full_signals=kept, saved=saved)
        del kept
        results = [r.replace(checks={**r.checks, "lookahead": v})
                   for r, v in zip(results, verdicts, strict=True)]
        timings.audit += time.perf_counter() - t0
    t0 = time.perf_counter()
    told = story(results, df, analysis.outlook, analysis.events)
    timings.analysis += time.perf_counter() - t0
    return [r.replace(story=told) for r in results]
