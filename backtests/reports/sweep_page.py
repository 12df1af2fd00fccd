"""The sweep page: a saved :class:`~backtests.tuning.sweep.SweepResult` in the run report's style.

One self-contained HTML file (same stylesheet, script and chart library as the run report): the
overfitting verdict (deflated Sharpe ratio, PBO) as badges, the metric over two parameters as a
heat-map table, the top parameter sets, the equity of the best few against buy and hold, and the
distribution of the CSCV logits. Everything is read from the saved sweep: nothing is recomputed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtests._files import write_text_atomic
from backtests.reports.assets import render, safe_json
from backtests.reports.chart_data import Blobs, epoch_seconds
from backtests.reports.format import fmt, fmt_time, fmt_value, metric_kind
from backtests.tuning.sweep import SweepResult

TABLE_COLUMNS = ("sharpe", "sortino", "total_return_pct", "cagr_pct", "max_drawdown_pct",
                 "win_rate_pct", "profit_factor", "n_trades", "exposure_pct")
# Metrics where lower is better (heat-map colours reversed).
LOWER_IS_BETTER = ("max_drawdown_duration_days",)


def heat_colour(v: float, lo: float, hi: float, reverse: bool = False) -> str:
    """A red (worst) → yellow → green (best) background for ``v`` within ``[lo, hi]``."""
    if not np.isfinite(v) or hi <= lo:
        return ""
    f = (v - lo) / (hi - lo)
    f = 1 - f if reverse else f
    if f < 0.5:
        r, g = 239, int(83 + (220 - 83) * f * 2)
    else:
        r, g = int(239 - (239 - 38) * (f - 0.5) * 2), 200
    return f"background: rgba({r},{g},90,0.35)"


def heatmap(table: pd.DataFrame, metric: str, x: str, y: str) -> dict[str, Any]:
    """Best ``metric`` for each (``y``, ``x``) pair (best over the other parameters), as rows
    of formatted, coloured cells."""
    piv = table.pivot_table(index=y, columns=x, values=metric, aggfunc="max")
    vals = piv.to_numpy(dtype=float)
    finite = vals[np.isfinite(vals)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    kind = metric_kind(metric)
    return {
        "x": x, "y": y,
        "columns": [fmt_value(c) for c in piv.columns],
        "rows": [{"label": fmt_value(i),
                  "cells": [{"text": fmt(v, kind),
                             "style": heat_colour(v, lo, hi, metric in LOWER_IS_BETTER)}
                            for v in row]}
                 for i, row in zip(piv.index, vals, strict=True)],
    }


def logit_bins(logits: list[float], n: int = 16) -> list[dict[str, Any]]:
    """A histogram of the CSCV logits: ``n`` bins with their share of the splits (for bars)."""
    a = np.asarray(logits, dtype=float)
    a = a[np.isfinite(a)]
    if not a.size:
        return []
    counts, edges = np.histogram(a, bins=n)
    peak = max(int(counts.max()), 1)
    return [{"range": f"{edges[i]:+.2f} … {edges[i + 1]:+.2f}", "count": int(c),
             "width": round(100 * c / peak, 1), "overfit": bool(edges[i + 1] <= 0)}
            for i, c in enumerate(counts)]


def line_spec(blobs: Blobs, series: list[tuple[str, pd.Series, str]], log: bool,
              marks: list[Any] | None = None) -> dict[str, Any]:
    """A line chart for the page's script: one entry per (name, series, colour)."""
    out = []
    for name, s, colour in series:
        sec = epoch_seconds(s.index)
        t0 = int(sec[0]) if len(sec) else 0
        out.append({"name": name, "colour": colour, "t0": t0,
                    "t": blobs.add((sec - t0) / 60.0, "i4"),
                    "v": blobs.add(s.astype(float).to_numpy(), "i4", 100)})
    return {"series": out, "log": log,
            "marks": [int(x) for x in epoch_seconds(marks)] if marks is not None else []}


COLOURS = ["#2962ff", "#e91e63", "#00897b", "#ff6d00", "#6a1b9a", "#795548", "#0097a7"]


def overfit_badges(o: dict[str, Any]) -> list[dict[str, str]]:
    """The verdict on the best set as header badges (DSR ≥ 0.95 and PBO < 0.2 pass)."""
    out = []
    if o.get("note"):
        out.append({"label": str(o["note"]), "status": "info", "detail": str(o["note"])})
    if o.get("dsr") is not None:
        ok = o["dsr"] >= 0.95
        out.append({"label": f"deflated Sharpe {o['dsr']:.3f}", "status": "ok" if ok else "warn",
                    "detail": f"probability that the best set's true Sharpe beats the best of "
                              f"{o.get('n_trials')} skill-less trials (PSR without deflation "
                              f"{o.get('psr', float('nan')):.3f}); below 0.95: not "
                              f"distinguishable from luck"})
    if o.get("pbo") is not None:
        ok = o["pbo"] < 0.2
        out.append({"label": f"PBO {o['pbo']:.2f}", "status": "ok" if ok else "warn",
                    "detail": f"probability of backtest overfitting (CSCV, {o.get('pbo_splits')}"
                              f" blocks; out-of-sample loss probability "
                              f"{o.get('pbo_prob_loss', float('nan')):.2f})"})
    return out


def write_sweep_report(result: SweepResult, path: str | Path, x: str | None = None,
                       y: str | None = None, top: int = 20) -> Path:
    """Write the sweep page for ``result`` to ``path`` and return the path.

    The heat-map shows ``result.metric`` over parameters ``x`` and ``y`` (default: the first two
    parameters with more than one value), taking the best value over any other parameters.

    Raises:
        ValueError: ``x`` or ``y`` is not a swept parameter.
    """
    t = result.table
    for name, val in (("x", x), ("y", y)):
        if val is not None and val not in result.param_names:
            raise ValueError(f"--{name} {val!r} is not a swept parameter; choose from "
                             f"{', '.join(result.param_names)}")
    varying = [p for p in result.param_names if t[p].nunique() > 1]
    x = x or (varying[0] if varying else None)
    y = y or next((p for p in varying if p != x), None)
    cols = [c for c in TABLE_COLUMNS if c in t.columns]
    rows = [{"params": [fmt_value(r[p], p) for p in result.param_names],
             "cells": [{"text": fmt(r[c], metric_kind(c)),
                        "cls": "pos" if c == result.metric else ""} for c in cols]}
            for r in t.head(top).to_dict("records")]
    blobs = Blobs()
    charts: dict[str, Any] = {}
    if result.best_equity is not None and not result.best_equity.empty:
        by_trial = t.set_index("trial")
        series = []
        for n, col in enumerate(result.best_equity.columns):
            p = by_trial.loc[int(col), result.param_names]
            label = ", ".join(f"{k}={fmt_value(v, k)}" for k, v in p.items())
            series.append((label, result.best_equity[col], COLOURS[n % len(COLOURS)]))
        if result.benchmark is not None:
            series.append(("buy and hold", result.benchmark, "#9598a1"))
        charts["sweep-equity"] = line_spec(blobs, series, log=True)
    d = result.data
    page = render(
        "sweep.html", title=f"Parameter sweep: {result.strategy}", r=result,
        badges=overfit_badges(result.overfit),
        heat=heatmap(t, result.metric, x, y) if x and y and x != y else None,
        params=result.param_names, cols=cols, rows=rows,
        n_equity=0 if result.best_equity is None else result.best_equity.shape[1],
        logits=logit_bins(result.overfit.get("pbo_logits") or []),
        span=(fmt_time(d.get("start")), fmt_time(d.get("end"))), version=result.version,
        generated=fmt_time(result.created), metric_label=result.metric,
        payload=safe_json({"blobs": blobs.table, "charts": [], "lines": charts}),
    )
    return write_text_atomic(path, page)
