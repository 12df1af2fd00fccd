"""The tables of a run report as rows of formatted cells: summaries of a saved result only.

Every function reads a :class:`~backtests.results.BacktestResult` (or part of one) and returns
plain rows for the templates; numbers are written with :mod:`backtests.reports.format`, and each
cell keeps its raw value (``sort``) so the page can sort columns by number, not by text.
Nothing is recomputed: the metrics are the saved ones; Long/Short columns, exit-reason stats and
monthly returns are summaries of the saved trade list and equity curve
(:mod:`backtests.metrics`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from backtests import metrics as metrics_mod
from backtests.metrics import MONTHS
from backtests.reports.format import fmt, fmt_time, is_missing, sign_class
from backtests.results import BacktestResult

# (metrics key, label, format kind, long/short meaningful). Long/Short values come from
# backtests.metrics.side_stats (the same definitions as the saved metrics).
METRIC_ROWS: list[tuple[str, str, str, bool]] = [
    ("net_pnl", "Net profit", "money", True),
    ("total_return_pct", "Total return", "pct", False),
    ("buy_hold_return_pct", "Buy & hold return", "pct", False),
    ("cagr_pct", "CAGR", "pct", False),
    ("final_equity", "Final equity", "money", False),
    ("max_drawdown_pct", "Max drawdown", "pct", False),
    ("max_drawdown_duration_days", "Longest drawdown", "days", False),
    ("volatility_pct", "Volatility (ann.)", "pct_abs", False),
    ("sharpe", "Sharpe ratio", "ratio", False),
    ("sortino", "Sortino ratio", "ratio", False),
    ("calmar", "Calmar ratio", "ratio", False),
    ("var_95_pct", "VaR 95% (per bar)", "pct", False),
    ("cvar_95_pct", "CVaR 95% (per bar)", "pct", False),
    ("best_day_pct", "Best day", "pct", False),
    ("worst_day_pct", "Worst day", "pct", False),
    ("exposure_pct", "Exposure (time in market)", "pct_abs", False),
    ("n_trades", "Total trades", "int", True),
    ("n_long", "Long trades", "int", False),
    ("n_short", "Short trades", "int", False),
    ("win_rate_pct", "Win rate", "pct_abs", True),
    ("profit_factor", "Profit factor", "ratio", True),
    ("expectancy", "Expectancy (per trade)", "money", True),
    ("gross_profit", "Gross profit", "money", True),
    ("gross_loss", "Gross loss", "money", True),
    ("avg_win", "Average win", "money", True),
    ("avg_loss", "Average loss", "money", True),
    ("payoff_ratio", "Payoff ratio (avg win / avg loss)", "ratio", True),
    ("avg_trade_pct", "Average trade", "pct", True),
    ("best_trade_pct", "Best trade", "pct", True),
    ("worst_trade_pct", "Worst trade", "pct", True),
    ("avg_bars_held", "Average bars in trade", "num", True),
    ("n_liquidations", "Liquidations", "int", True),
    ("fees_paid", "Fees paid", "money", True),
    ("funding_paid", "Funding paid", "money", True),
    ("years", "Years tested", "num", False),
    ("periods_per_year", "Bars per year", "num", False),
    ("expectancy_r", "Expectancy (R per trade)", "num", False),
    ("sqn", "SQN (Van Tharp, on R)", "num", False),
    ("n_r_trades", "Trades with a planned risk (R)", "int", False),
]
# Rows whose sign is good/bad news (coloured green/red); fees, volatility etc. are not.
SIGNED = {"net_pnl", "total_return_pct", "buy_hold_return_pct", "cagr_pct", "max_drawdown_pct",
          "expectancy", "gross_profit", "gross_loss", "avg_win", "avg_loss", "avg_trade_pct",
          "best_trade_pct", "worst_trade_pct", "best_day_pct", "worst_day_pct"}
_TRADE_ONLY = {"net_pnl", "gross_profit", "gross_loss"}  # not saved metrics: from the trade list

COMPARISON_ROWS = ["total_return_pct", "cagr_pct", "max_drawdown_pct", "sharpe", "sortino",
                   "calmar", "win_rate_pct", "profit_factor", "n_trades", "n_liquidations",
                   "exposure_pct", "final_equity", "buy_hold_return_pct"]

KPI_ROWS = [("total_return_pct", "Total return", "pct"),
            ("max_drawdown_pct", "Max drawdown", "pct"),
            ("sharpe", "Sharpe", "ratio"),
            ("win_rate_pct", "Win rate", "pct_abs"),
            ("profit_factor", "Profit factor", "ratio"),
            ("n_trades", "Trades", "int"),
            ("buy_hold_return_pct", "Buy & hold", "pct")]


def cell(value: Any, kind: str, signed: bool = False) -> dict[str, Any]:
    """One table cell: the formatted ``text``, the raw ``sort`` key and a sign CSS class."""
    sort = None if is_missing(value) else value
    if isinstance(sort, pd.Timestamp):
        sort = sort.timestamp()
    elif isinstance(sort, np.generic):
        sort = sort.item()
    return {"text": fmt(value, kind), "sort": sort, "cls": sign_class(value) if signed else ""}


def metric_table(result: BacktestResult) -> list[dict[str, Any]]:
    """Rows of the All/Long/Short table: the saved metrics (All) and
    :func:`backtests.metrics.side_stats` of the trade list (Long/Short, net and gross profit).
    Metrics this table does not know yet are still listed, labelled from their key."""
    m = dict(result.metrics)
    sides = metrics_mod.side_stats(result.trades)
    rows = []
    for key, label, kind, split in METRIC_ROWS:
        if key in _TRADE_ONLY:
            value = sides.at[key, "all"] if key in sides.index else None
        elif key in m:
            value = m[key]
        else:
            continue
        has = split and key in sides.index
        vals = [value, sides.at[key, "long"] if has else None,
                sides.at[key, "short"] if has else None]
        if key == "gross_loss":  # shown as a loss (side_stats reports it positive)
            vals = [None if is_missing(v) else -abs(float(v)) for v in vals]
        signed = key in SIGNED
        rows.append({"key": key, "label": label, "split": split,
                     "cells": [cell(v, kind, signed) for v in vals]})
    known = {k for k, *_ in METRIC_ROWS}
    for key, value in m.items():
        if key not in known:
            kind = "pct" if key.endswith("_pct") else "num"
            label = key.removesuffix("_pct").replace("_", " ").capitalize()
            rows.append({"key": key, "label": label, "split": False,
                         "cells": [cell(value, kind), cell(None, kind), cell(None, kind)]})
    return rows


def kpis(result: BacktestResult) -> list[dict[str, Any]]:
    """The headline numbers of a strategy (label + cell)."""
    return [{"label": label, **cell(result.metrics.get(k), kind, signed=kind == "pct")}
            for k, label, kind in KPI_ROWS if k in result.metrics]


def group_stats(trades: pd.DataFrame, column: str) -> list[dict[str, Any]]:
    """Rows of the exit-reason / entry-tag table, most trades first
    (:func:`backtests.metrics.exit_reason_stats` / ``tag_stats``)."""
    if len(trades) == 0 or column not in trades or trades[column].isna().all():
        return []
    fn = metrics_mod.exit_reason_stats if column == "exit_reason" else metrics_mod.tag_stats
    table = fn(trades).sort_values("trades", ascending=False, kind="stable")
    return [
        {"value": "—" if is_missing(k) else str(k),
         "cells": [cell(r["trades"], "int"), cell(r["share_pct"], "pct_abs"),
                   cell(r["win_rate_pct"], "pct_abs"), cell(r["pnl_total"], "money", True),
                   cell(r["pnl_avg"], "money", True), cell(r["return_avg_pct"], "pct", True)]}
        for k, r in table.iterrows()
    ]


def monthly_table(result: BacktestResult) -> list[dict[str, Any]]:
    """Monthly returns (:func:`backtests.metrics.monthly_returns`) with heat-map cell styles."""
    eq = result.equity
    if len(eq) < 2:
        return []
    cash = result.config.get("cash")
    table = metrics_mod.monthly_returns(eq, cash=float(cash) if cash else None)
    months = table[list(MONTHS)]
    peak = float(np.nanmax(np.abs(months.to_numpy()))) if months.notna().any().any() else 0.0
    rows = []
    for year, r in table.iterrows():
        cells = []
        for m in MONTHS:
            v = r[m]
            if is_missing(v):
                cells.append(None)
                continue
            alpha = (min(1.0, abs(v) / peak) * 0.75 if peak > 0 else 0.0) + 0.06
            rgb = "38,166,154" if v >= 0 else "239,83,80"
            cells.append({"text": f"{v:+.1f}".replace("-", "−"),
                          "style": f"background: rgba({rgb},{alpha:.2f})"})
        rows.append({"year": int(year), "cells": cells, "total": cell(r["Year"], "pct", True)})
    return rows


def drawdown_table(result: BacktestResult, top: int = 5) -> list[dict[str, Any]]:
    """The deepest drawdowns, deepest first (:func:`backtests.metrics.drawdown_periods`)."""
    if len(result.equity) < 2:
        return []
    dd = metrics_mod.drawdown_periods(result.equity, top=top)
    return [{"peak": fmt_time(d["peak"]), "valley": fmt_time(d["valley"]),
             "recovery": fmt_time(d["recovery"]) if d.get("recovered") else "not recovered",
             "depth": cell(d["depth_pct"], "pct", True),
             "duration": cell(d["duration_days"], "days")}
            for d in dd.sort_values("depth_pct").to_dict("records")]


def nearest_levels(levels: pd.DataFrame | None, last_close: float, k: int) -> pd.DataFrame:
    """The ``k`` zones nearest to ``last_close`` (by ``distance_pct`` if present), by price."""
    if levels is None or len(levels) == 0 or not {"low", "high"} <= set(levels.columns):
        return pd.DataFrame()
    if "distance_pct" in levels:
        dist = levels["distance_pct"].abs()
    else:
        centre = levels["centre"] if "centre" in levels else (levels["low"] + levels["high"]) / 2
        dist = (centre / last_close - 1).abs()
    return levels.loc[dist.sort_values(kind="stable").index[:k]].sort_values("low")


LEVELS_LISTED = 12  # rows of the zones table


def levels_rows(result: BacktestResult, k: int = LEVELS_LISTED) -> list[dict[str, Any]]:
    """The S/R zones table: the ``k`` zones nearest to the last close, highest price first (a
    price ladder), with the distance from the last close signed."""
    prices = result.prices
    last = float(prices["close"].iloc[-1]) if len(prices) else float("nan")
    near = nearest_levels(result.levels, last, k)
    if near.empty:
        return []
    rows = []
    # a ladder by centre, the column the reader scans (zones overlap, so "low" can disagree)
    by = "centre" if "centre" in near else "low"
    for _, z in near.sort_values(by, ascending=False, kind="stable").iterrows():
        centre = z["centre"] if "centre" in z else (z["low"] + z["high"]) / 2
        dist = z["distance_pct"] if "distance_pct" in z else (centre / last - 1) * 100
        flip = z.get("flip")
        rows.append({
            "role": str(z.get("role", "")),
            "centre": cell(centre, "price"),
            "zone": f"{fmt(z['low'], 'price')} – {fmt(z['high'], 'price')}",
            "distance": cell(dist, "pct", True),
            "touches": cell(z.get("touches"), "int"),
            "last_touch": fmt_time(z.get("last_touch")),
            "flip": "" if is_missing(flip) or not flip else str(flip).replace("_", " "),
            "above": bool(centre > last),
        })
    return rows


def thresholds(params: dict[str, Any]) -> list[tuple[str, float]]:
    """RSI thresholds declared in the parameters (names with oversold/overbought), else 30/70."""
    found = []
    for k, v in params.items():
        name = str(k).lower()
        if (("oversold" in name or "overbought" in name) and isinstance(v, int | float)
                and not isinstance(v, bool) and 0 < float(v) < 100):
            found.append((str(k), float(v)))
    return found or [("oversold", 30.0), ("overbought", 70.0)]


_OUTLOOK_LEVELS = (("resistance", "Immediate resistance"), ("support", "Immediate support"),
                   ("critical_support", "Critical support"), ("next_above", "Next resistance"),
                   ("next_below", "Next support"))


def outlook_view(outlook: dict[str, Any]) -> dict[str, Any]:
    """The outlook as sentences and a small table of its levels (never a dump of its keys).

    Returns ``{"headline", "sentences", "levels", "note"}``: the text's first line, the other
    lines as sentences, one row per level (label, price, zone, distance, touches, note).
    """
    outlook = outlook or {}
    lines = [ln.strip() for ln in str(outlook.get("text") or "").splitlines() if ln.strip()]
    headline = lines[0] if lines else ""
    sentences = [ln if ln.endswith(".") else ln + "." for ln in lines[1:]]
    rows = []
    for key, label in _OUTLOOK_LEVELS:
        z = outlook.get(key)
        if not isinstance(z, dict) or z.get("centre") is None:
            continue
        if key == "critical_support" and z == outlook.get("support"):
            continue
        rows.append({"label": label, "price": fmt(z.get("centre"), "price"),
                     "zone": f"{fmt(z.get('low'), 'price')} – {fmt(z.get('high'), 'price')}",
                     "distance": cell(z.get("distance_pct"), "pct", True),
                     "touches": fmt(z.get("touches"), "int"),
                     "note": z.get("note") or ""})
    return {"headline": headline, "sentences": sentences, "levels": rows,
            "note": outlook.get("note") or ""}


def warmup_lines(record: dict[str, Any]) -> list[str]:
    """The run's warm-up record (``result.data["warmup"]``, :mod:`backtests.warmup`) as lines a
    reader can scan: where the trading window starts, how much history came before it, and per
    indicator what it needs to settle and whether it had it."""
    start = fmt_time(record.get("window_start"))
    hist = int(record.get("history_bars") or 0)
    checks = record.get("checks") or []
    if hist == 0:
        # No --start: the window is the whole data; its first bars are the indicators' warm-up.
        lines = [f"trading from the first bar ({start}); the indicators warm up on the "
                 "first bars of the data, so early signals use unsettled values"]
        lines += [f"{c['indicator']}: settles after {int(c['needs']):,} {c['unit']} ({c['why']})"
                  for c in checks]
        return lines
    lines = [f"trading from {start}; {hist:,} bars of history before it, from "
             f"{fmt_time(record.get('history_from'))}"]
    lines += [f"{c['indicator']}: had {int(c['had']):,} of {int(c['needs']):,} {c['unit']} "
              f"{'(too short)' if c.get('short') else '(enough)'}; {c['why']}" for c in checks]
    return lines
