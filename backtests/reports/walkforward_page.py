"""The walk-forward page: a saved :class:`~backtests.tuning.walkforward.WalkForwardResult` in the
run report's style.

The stitched out-of-sample equity against buy and hold (test windows marked), one row per window
(train and test spans, the chosen parameters, in-sample and out-of-sample metrics, DSR, PBO) and
the in-sample vs out-of-sample comparison. Everything is read from the saved result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from backtests._files import write_text_atomic
from backtests.reports.assets import render, safe_json
from backtests.reports.chart_data import Blobs
from backtests.reports.format import fmt, fmt_value, metric_kind, sign_class
from backtests.reports.sweep_page import line_spec
from backtests.results import package_version
from backtests.tuning.walkforward import WalkForwardResult, format_span


def _cell(v: Any, key: str) -> dict[str, str]:
    kind = metric_kind(key)
    return {"text": fmt(v, kind), "cls": sign_class(v) if kind == "pct" else ""}


def write_walkforward_report(result: WalkForwardResult, path: str | Path,
                             data: dict | None = None) -> Path:
    """Write the walk-forward page for ``result`` to ``path`` and return the path.

    ``data``: the data fingerprint to show (default: ``result.settings["data"]`` if any).
    """
    w, m = result.windows, result.metric
    rows = []
    for i in range(len(w)):
        r = w.iloc[i]
        rows.append({
            "n": int(r["window"]),
            "train": format_span(r["train_start"], r["train_end"]),
            "test": format_span(r["test_start"], r["test_end"]),
            "test_from": str(r["test_start"]), "test_to": str(r["test_end"]),
            # column-wise: iloc upcasts an int parameter to float in a mixed row
            "params": [fmt_value(w[p].iat[i], p) for p in result.param_names],
            "cells": [_cell(r.get(f"is_{m}", np.nan), m), _cell(r.get(f"oos_{m}", np.nan), m),
                      _cell(r["is_total_return_pct"], "total_return_pct"),
                      _cell(r["oos_total_return_pct"], "total_return_pct"),
                      _cell(r["oos_n_trades"], "n_trades"),
                      _cell(r.get("dsr", np.nan), "dsr"), _cell(r.get("pbo", np.nan), "pbo")],
        })
    comparison = [{"metric": k, "cells": [_cell(v, k) for v in vals]}
                  for k, vals in zip(result.comparison.index, result.comparison.to_numpy(),
                                     strict=True)]
    s = result.settings
    eq = result.oos_equity
    oos_ret = 100.0 * (eq.iloc[-1] / eq.iloc[0] - 1.0) if len(eq) else float("nan")
    bh = result.benchmark
    bh_ret = 100.0 * (bh.iloc[-1] / bh.iloc[0] - 1.0) if bh is not None and len(bh) else None
    badges = [{"label": f"out of sample {fmt(oos_ret, 'pct')}",
               "status": "ok" if bh_ret is None or oos_ret >= bh_ret else "warn",
               "detail": "stitched out-of-sample return"
                         + (f" vs buy and hold {fmt(bh_ret, 'pct')}" if bh_ret is not None
                            else "")}]
    for key, label, good in (("mean_dsr", "mean DSR", lambda v: v >= 0.95),
                             ("mean_pbo", "mean PBO", lambda v: v < 0.2)):
        v = s.get(key)
        if v is not None and np.isfinite(v):
            badges.append({"label": f"{label} {v:.2f}", "status": "ok" if good(v) else "warn",
                           "detail": f"{label} of the selections over the windows"})
    blobs = Blobs()
    series = [("walk-forward, out of sample", eq, "#2962ff")]
    if bh is not None:
        series.append(("buy and hold", bh, "#9598a1"))
    chart = line_spec(blobs, series, log=True, marks=list(w["test_start"].iloc[1:]))
    page = render(
        "walkforward.html", title=f"Walk-forward: {result.strategy}", r=result, s=s,
        data=data if data is not None else s.get("data"), badges=badges, rows=rows,
        metric_label=m, comparison=comparison, oos_ret=fmt(oos_ret, "pct"),
        bh_ret=None if bh_ret is None else fmt(bh_ret, "pct"),
        version=package_version(), generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        payload=safe_json({"blobs": blobs.table, "charts": [], "lines": {"wf-equity": chart}}),
    )
    return write_text_atomic(path, page)
