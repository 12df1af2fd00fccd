"""Parameter sweeps: :func:`run_sweep` backtests every parameter set of a space (on an executor of
:mod:`backtests.tuning.executors`, each set evaluated by :mod:`backtests.tuning.evaluate`), ranks
them by a metric with a stable sort (ties keep parameter order) and judges the winner (deflated
Sharpe ratio, probability of backtest overfitting); :class:`SweepResult` holds and saves it.

Parameter spaces are built by :mod:`backtests.tuning.space`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtests.config import BacktestConfig
from backtests.persist import load_frames, plain, read_manifest, save_folder
from backtests.results import data_fingerprint, package_version
from backtests.runner import run
from backtests.tuning.evaluate import (
    SWEEP_METRICS,
    BacktestPayload,
    evaluate_backtest,
    simulate_window,
)
from backtests.tuning.executors import Executor, ProgressFn, evaluate_all, make_executor
from backtests.tuning.overfit import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from backtests.tuning.space import Params, as_param_sets, check_params
from data.frame import to_canonical

# --- sweep results ---------------------------------------------------------------------------


#: The manifest file of a saved sweep.
SWEEP_JSON = "sweep.json"


@dataclass
class SweepResult:
    """A sweep: one row per parameter set (``trial`` = its position in the space), sorted by
    ``metric`` (best first), plus what is needed to judge it honestly and to report it without
    recomputing: per-bar returns of every trial (for PBO, when kept), the equity of the best few,
    and the overfitting statistics of the selection."""

    strategy: str
    metric: str
    param_names: list[str]
    table: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)
    returns: pd.DataFrame | None = None        # per-bar returns, columns = trial ids (str)
    best_equity: pd.DataFrame | None = None    # equity of the best few, columns = trial ids (str)
    benchmark: pd.Series | None = None         # buy-and-hold equity over the same bars
    overfit: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # conflicting sets, not run
    executor: str = ""
    workers: int = 0
    elapsed_s: float = 0.0
    created: str = ""
    version: str = ""

    @property
    def best(self) -> Params:
        """Parameters of the best row (by ``metric``)."""
        # Column by column: ``table.iloc[0]`` would upcast int parameters to float.
        return {k: plain(self.table[k].iloc[0]) for k in self.param_names}

    def save(self, directory: str | Path) -> Path:
        """Write ``sweep.json`` and Parquet frames into ``directory``
        (:func:`backtests.persist.save_folder`: atomic; other files left alone)."""
        meta = {k: getattr(self, k) for k in (
            "strategy", "metric", "param_names", "config", "data", "space", "overfit",
            "skipped", "executor", "workers", "elapsed_s", "created", "version")}
        return save_folder(directory, SWEEP_JSON, meta, {
            "table": self.table, "returns": self.returns, "best_equity": self.best_equity,
            "benchmark": self.benchmark})

    @classmethod
    def load(cls, directory: str | Path) -> SweepResult:
        """Read a directory written by :meth:`save`.

        Raises:
            DataError: no saved sweep there, or a file missing or altered.
        """
        meta = read_manifest(directory, SWEEP_JSON, "sweep")
        frames = load_frames(directory, meta, required=("table",))
        meta.pop("files")
        return cls(**frames, **meta)


def results_table(param_sets: Sequence[Params], metrics: Sequence[dict], metric: str,
                  ascending: bool = False, trials: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per set: ``trial`` (``trials[i]``, default the position ``i``), the parameters,
    then scalar metrics; stably sorted by ``metric`` (NaN last)."""
    rows = []
    ids = range(len(param_sets)) if trials is None else trials
    for i, p, m in zip(ids, param_sets, metrics, strict=True):
        row = {"trial": i, **p}
        row.update({k: v for k, v in m.items() if np.isscalar(v) and not k.startswith("_")})
        rows.append(row)
    table = pd.DataFrame(rows)
    if metric not in table.columns:
        raise ValueError(f"unknown metric {metric!r}; available: "
                         f"{sorted(c for c in table.columns if c != 'trial')}")
    return table.sort_values(metric, ascending=ascending, kind="mergesort",
                             na_position="last").reset_index(drop=True)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _pbo_splits(n_rows: int, wanted: int = 16) -> int:
    s = wanted
    while s > 2 and n_rows < 4 * s:
        s -= 2
    return s


def selection_statistics(table: pd.DataFrame, returns: pd.DataFrame | None,
                         pbo_splits: int = 16) -> dict[str, Any]:
    """Deflated Sharpe ratio of the best row (``table`` sorted best first) given all trials, and
    the PBO of the selection when per-bar returns of every trial are available."""
    out: dict[str, Any] = {}
    if "n_trades" in table and not (table["n_trades"] > 0).any():
        # Every set flat: Sharpe ratios are undefined and all CSCV ranks tie, so any DSR or PBO
        # would be noise dressed up as a statistic.
        out["note"] = "no parameter set traded: nothing to judge"
        return out
    srs = table["sr_bar"].to_numpy(dtype=float)
    finite = srs[np.isfinite(srs)]
    best = table.iloc[0]
    n_trials = len(finite)
    if n_trials and np.isfinite(best["sr_bar"]) and best["n_obs"] >= 2:
        var = float(finite.var(ddof=1)) if n_trials > 1 else 0.0
        args = (float(best["sr_bar"]), int(best["n_obs"]))
        moments = (float(best["skew"]), float(best["kurtosis"]))
        out["dsr"] = deflated_sharpe_ratio(*args, n_trials, var, *moments)
        out["psr"] = probabilistic_sharpe_ratio(*args, *moments)
        out["sr0_bar"] = expected_max_sharpe(n_trials, var)
        out["n_trials"] = n_trials
        out["sr_variance"] = var
    if returns is not None and returns.shape[1] >= 2 and len(returns) >= 8:
        res = probability_of_backtest_overfitting(returns.to_numpy(),
                                                  n_splits=_pbo_splits(len(returns), pbo_splits))
        out["pbo"] = res.pbo
        out["pbo_prob_loss"] = res.prob_loss
        out["pbo_slope"] = res.degradation_slope
        out["pbo_splits"] = res.n_splits
        out["pbo_logits"] = res.logits.tolist()
        out["pbo_is"] = res.is_performance.tolist()
        out["pbo_oos"] = res.oos_performance.tolist()
    return out


#: Keep every trial's per-bar returns (for PBO) below this many values (T x N); 40 M = 320 MB.
KEEP_RETURNS_LIMIT = 40_000_000


def run_sweep(
    df: pd.DataFrame,
    strategy_cls: type,
    space: Sequence[Params] | dict[str, Sequence[Any]],
    config: Any = None,
    metric: str = "sharpe",
    executor: str | Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    top: int = 5,
    keep_returns: bool | None = None,
    progress: ProgressFn | None = None,
    start: int = 0,
    end: int | None = None,
    pbo_splits: int = 16,
) -> SweepResult:
    """Backtest ``strategy_cls`` with every parameter set of ``space`` on the fast engine.

    Args:
        df: candles (any frame :func:`data.frame.to_canonical` accepts).
        strategy_cls: a :class:`~strategies.base.Strategy` subclass.
        space: a list of parameter dicts (:func:`grid`, :func:`random_space`) or grid axes.
        config: ``BacktestConfig`` (default one if None).
        metric: column to sort by, best (highest) first: one of :data:`SWEEP_METRICS`.
        executor, workers, scheduler: where to run (:func:`make_executor`): local processes by
            default (all cores), ``"serial"``, or a Dask scheduler address.
        chunk_size: parameter sets per task (default: about 8 tasks per worker).
        top: how many of the best are re-run through ``backtests.run`` to store their equity.
        keep_returns: keep every trial's per-bar returns (needed for PBO); default: when the
            matrix has fewer than :data:`KEEP_RETURNS_LIMIT` values.
        start, end: trade only bars ``start .. end - 1`` (earlier bars warm indicators up).

    Returns:
        :class:`SweepResult` (table sorted by ``metric``; DSR and PBO in ``overfit``).
    """
    if metric not in SWEEP_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(SWEEP_METRICS)}")
    df = to_canonical(df, "price frame")
    config = config or BacktestConfig()
    param_sets = as_param_sets(space)
    if not param_sets:
        raise ValueError("the parameter space is empty")
    skipped = check_params(strategy_cls, param_sets)
    n_space = len(param_sets)
    # Trial ids stay positions in the space the caller gave, conflicting sets left out.
    skip = {s["trial"] for s in skipped}
    trials = [i for i in range(n_space) if i not in skip]
    param_sets = [param_sets[i] for i in trials]
    end = len(df) if end is None else end
    lo = max(start - 1, 0)
    if keep_returns is None:
        keep_returns = (end - lo) * len(param_sets) <= KEEP_RETURNS_LIMIT
    payload = BacktestPayload(df=df, strategy_cls=strategy_cls, config=config, start=start,
                              end=end, keep_returns=keep_returns)
    ex = make_executor(executor, workers, scheduler)
    t0 = time.perf_counter()
    metrics = evaluate_all(evaluate_backtest, payload, param_sets, executor=ex,
                           chunk_size=chunk_size, progress=progress)
    elapsed = time.perf_counter() - t0
    table = results_table(param_sets, metrics, metric, trials=trials)
    returns = None
    if keep_returns:
        returns = pd.DataFrame({str(i): m["_returns"] for i, m in zip(trials, metrics,
                                                                       strict=True)},
                               index=df.index[lo + 1:end])
    # Re-run the best few through the engine proper: reports show them without recomputing.
    window = df.iloc[:end]
    equity = {}
    bench = None
    for _, row in table.head(top).iterrows():
        p = {k: plain(row[k]) for k in param_sets[0]}
        if start > 0:
            eq, _, _ = simulate_window(payload, p)
            equity[str(int(row["trial"]))] = eq[lo:]
        else:
            res = run(window, strategy_cls(**p), config)
            equity[str(int(row["trial"]))] = res.equity.to_numpy()
            bench = res.benchmark
    best_equity = pd.DataFrame(equity, index=window.index[lo:]) if equity else None
    return SweepResult(
        strategy=getattr(strategy_cls, "name", strategy_cls.__name__),
        metric=metric,
        param_names=list(param_sets[0]),
        table=table,
        config=config.to_dict(),
        data=data_fingerprint(df),
        space={"n": len(param_sets), "n_space": n_space, "start": start, "end": end},
        skipped=skipped,
        returns=returns,
        best_equity=best_equity,
        benchmark=bench,
        overfit=selection_statistics(table, returns, pbo_splits),
        executor=ex.name,
        workers=ex.workers,
        elapsed_s=elapsed,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        version=package_version(),
    )


# --- HTML report -------------------------------------------------------------------------------

#: Stylesheet of the sweep report, shared by the walk-forward report.
REPORT_STYLE = """\
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px} h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:13px} td,th{padding:4px 8px;border-bottom:1px solid #ddd;
text-align:right} th{background:#f4f4f4} td.l,th.l{text-align:left}
.box{display:inline-block;margin:4px 16px 4px 0;padding:8px 12px;background:#f7f7f7;
border-radius:6px}
.warn{color:#a40000} .ok{color:#006400} .note{color:#555;font-size:13px;max-width:900px}
"""


_REPORT_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Sweep: {{ r.strategy }} by {{ r.metric }}</title>
<style>{{ style }}</style></head><body>
<h1>Parameter sweep: {{ r.strategy }}</h1>
<p class="note">{{ r.space.n }} parameter sets{% if r.skipped %} ({{ r.skipped|length }} more
skipped, not counted as trials: the strategy rejects them, e.g. {{ r.skipped[0].params }}:
{{ r.skipped[0].reason }}){% endif %}, sorted by <b>{{ r.metric }}</b>; data
{{ r.data.source or "?" }} {{ r.data.timeframe or "" }} {{ r.data.start }} &rarr; {{ r.data.end }}
({{ r.data.rows }} bars, sha256 {{ (r.data.sha256 or "")[:12] }}); executor {{ r.executor }}
({{ r.workers }} workers), {{ "%.2f"|format(r.elapsed_s) }} s; version {{ r.version }},
{{ r.created }}.</p>
<h2>Is the best one real?</h2>
{% if o.note is defined %}<div class="box">{{ o.note }}</div>{% endif %}
{% if o.dsr is defined %}
<div class="box">Deflated Sharpe ratio: <b class="{{ 'ok' if o.dsr >= 0.95 else 'warn' }}">
{{ "%.3f"|format(o.dsr) }}</b> (PSR without deflation {{ "%.3f"|format(o.psr) }};
{{ o.n_trials }} trials)</div>{% endif %}
{% if o.pbo is defined %}
<div class="box">Probability of backtest overfitting:
<b class="{{ 'ok' if o.pbo < 0.2 else 'warn' }}">
{{ "%.2f"|format(o.pbo) }}</b> (CSCV, {{ o.pbo_splits }} blocks; OOS loss probability
{{ "%.2f"|format(o.pbo_prob_loss) }})</div>{% endif %}
<p class="note">The deflated Sharpe ratio is the probability that the best parameter set's true
Sharpe beats the best of this many skill-less trials (Bailey &amp; López de Prado 2014); values
below 0.95 mean the winner is not distinguishable from luck. PBO is the share of
in-sample/out-of-sample splits in which the in-sample winner ranked at or below the median out of
sample (Bailey, Borwein, López de Prado &amp; Zhu 2015).</p>
{% if heatmap %}<h2>{{ r.metric }} over {{ x }} &times; {{ y }}</h2>{{ heatmap }}{% endif %}
<h2>Top {{ top|length }}</h2>
<table><tr><th>#</th>{% for c in cols %}
<th class="{{ 'l' if c in r.param_names else '' }}">{{ c }}</th>{% endfor %}</tr>
{% for row in top %}<tr><td>{{ loop.index }}</td>{% for c in cols %}
<td class="{{ 'l' if c in r.param_names else '' }}">{{ row[c] }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if equity %}<h2>Equity of the best {{ n_equity }}</h2>{{ equity }}{% endif %}
{% if logits %}<h2>CSCV logits of the in-sample winner's out-of-sample rank</h2>
{{ logits }}{% endif %}
</body></html>
"""

_TABLE_COLUMNS = ("sharpe", "sortino", "total_return_pct", "cagr_pct", "max_drawdown_pct",
                  "win_rate_pct", "profit_factor", "n_trades", "exposure_pct")


def _fmt_cell(v: Any) -> str:
    v = plain(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def plotly_fragments() -> Callable[[Any], Any]:
    """A function turning plotly figures into HTML fragments (``markupsafe.Markup``) for one
    page: the first fragment inlines plotly.js (the page works offline), later ones reuse it."""
    import plotly.io as pio
    from markupsafe import Markup

    include = {"first": True}

    def html(fig: Any) -> Markup:
        out = pio.to_html(fig, include_plotlyjs=include["first"], full_html=False,
                          config={"displaylogo": False})
        include["first"] = False
        return Markup(out)

    return html


def write_report(result: SweepResult, path: str | Path, x: str | None = None,
                 y: str | None = None, top: int = 20) -> Path:
    """Write a self-contained HTML report (plotly inlined, every text escaped).

    The heatmap shows ``result.metric`` over parameters ``x`` and ``y`` (default: the first two
    parameters with more than one value), taking the best value over any other parameters.
    Everything comes from the saved sweep: nothing is recomputed.
    """
    import plotly.graph_objects as go
    from jinja2 import Environment
    from markupsafe import Markup

    t = result.table
    varying = [p for p in result.param_names if t[p].nunique() > 1]
    for name, val in (("x", x), ("y", y)):
        if val is not None and val not in result.param_names:
            raise ValueError(f"--{name} {val!r} is not a swept parameter; choose from "
                             f"{', '.join(result.param_names)}")
    x = x or (varying[0] if varying else None)
    y = y or next((p for p in varying if p != x), None)
    html = plotly_fragments()

    heatmap = None
    if x and y and x != y:
        piv = t.pivot_table(index=y, columns=x, values=result.metric, aggfunc="max")
        fig = go.Figure(go.Heatmap(z=piv.to_numpy(), x=[str(c) for c in piv.columns],
                                   y=[str(i) for i in piv.index], colorscale="RdYlGn",
                                   colorbar={"title": result.metric}))
        fig.update_layout(xaxis_title=x, yaxis_title=y, height=480, margin={"t": 20})
        heatmap = html(fig)
    equity = None
    if result.best_equity is not None and not result.best_equity.empty:
        fig = go.Figure()
        by_trial = t.set_index("trial")
        for col in result.best_equity.columns:
            p = by_trial.loc[int(col), result.param_names]
            label = ", ".join(f"{k}={_fmt_cell(v)}" for k, v in p.items())
            fig.add_trace(go.Scatter(x=result.best_equity.index, y=result.best_equity[col],
                                     name=label, mode="lines"))
        if result.benchmark is not None:
            fig.add_trace(go.Scatter(x=result.benchmark.index, y=result.benchmark,
                                     name="buy and hold", mode="lines",
                                     line={"dash": "dot", "color": "#888"}))
        fig.update_layout(yaxis_title="equity", yaxis_type="log", height=440,
                          margin={"t": 20}, legend={"orientation": "h"})
        equity = html(fig)
    logits = None
    if result.overfit.get("pbo_logits"):
        fig = go.Figure(go.Histogram(x=result.overfit["pbo_logits"], nbinsx=40))
        fig.add_vline(x=0, line_dash="dash")
        fig.update_layout(xaxis_title="logit of OOS relative rank (<= 0: overfit)", height=300,
                          margin={"t": 20})
        logits = html(fig)
    cols = [*result.param_names, *[c for c in _TABLE_COLUMNS if c in t.columns]]
    # to_dict keeps each column's dtype (iterrows would show int parameters as 14.000).
    rows = [{c: _fmt_cell(v) for c, v in r.items()} for r in t.head(top)[cols].to_dict("records")]
    env = Environment(autoescape=True)
    page = env.from_string(_REPORT_TEMPLATE).render(
        r=result, o=result.overfit, style=Markup(REPORT_STYLE), heatmap=heatmap, x=x, y=y,
        top=rows, cols=cols, equity=equity, logits=logits,
        n_equity=0 if result.best_equity is None else result.best_equity.shape[1],
    )
    from backtests._files import write_text_atomic

    return write_text_atomic(path, page)
