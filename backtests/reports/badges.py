"""Trust badges in a report's header: can the numbers below be believed?

* **Look-ahead audit** per strategy: the quick truncation audit that ``btc-backtest run`` runs
  (:func:`backtests.tuning.audit.audit` at a few cuts), saved in the result's ``checks``;
  "not audited" when a result carries none (e.g. from an older version or the Python API).
* **Engine agreement** when the same strategy, parameters and data were run by both engines:
  the trade lists compared (count, entry/exit times, P/L to a cent per trade).
* **Data warnings**: missing bars in the saved candles, and a warm-up too short for an
  indicator (the run's ``data["warmup"]`` record of :mod:`backtests.warmup`; for older results:
  the first trade sooner after the data's start than the 200-week EMA needs).
* **Data hash**: the first 12 hex digits of the candles' SHA-256 (full value in the tooltip).

Each badge is ``{"label", "status", "detail"}``; status ``ok``/``warn``/``bad``/``info`` picks the
colour. Badges only read saved results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from backtests.reports.chart_data import bar_seconds, epoch_seconds
from backtests.reports.format import fmt_time
from backtests.results import BacktestResult

WEMA_WARMUP_DAYS = 200 * 7  # the 200-week EMA's own period


def _badge(label: str, status: str, detail: str) -> dict[str, str]:
    return {"label": label, "status": status, "detail": detail}


def audit_badge(result: BacktestResult) -> dict[str, str]:
    """The saved look-ahead audit of one result as a badge."""
    a = (getattr(result, "checks", None) or {}).get("lookahead")
    if not a:
        return _badge(f"{result.strategy}: not audited", "info",
                      "no look-ahead audit saved with this result (btc-backtest run adds one)")
    if a.get("skipped"):
        return _badge(f"{result.strategy}: not audited", "info", str(a["skipped"]))
    cuts = a.get("cuts") or []
    where = ", ".join(fmt_time(c) for c in a.get("cut_times", [])) or f"{len(cuts)} cuts"
    when = (f" (verdict of the audit at {a.get('audited_at')}, reused: same strategy code, "
            f"parameters, data and settings)" if a.get("reused") else "")
    if a.get("passed"):
        return _badge(f"{result.strategy}: no look-ahead", "ok",
                      f"signals, indicators and trades unchanged when the data is cut at "
                      f"{where}{when}")
    return _badge(f"{result.strategy}: LOOK-AHEAD", "bad",
                  (a.get("first_leak") or "values change when the future is removed") + when)


def _same_run(a: BacktestResult, b: BacktestResult) -> bool:
    cfg = {k: v for k, v in a.config.items() if k != "engine"}
    cfg_b = {k: v for k, v in b.config.items() if k != "engine"}
    return (a.strategy == b.strategy and a.params == b.params and cfg == cfg_b
            and a.data.get("sha256") == b.data.get("sha256") and a.engine != b.engine)


def agreement_badges(results: Sequence[BacktestResult]) -> list[dict[str, str]]:
    """One badge per strategy run by both engines on the same data and settings."""
    out = []
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            if not _same_run(a, b):
                continue
            ta, tb = a.trades, b.trades
            same = len(ta) == len(tb) and bool(
                (epoch_seconds(ta["entry_time"]) == epoch_seconds(tb["entry_time"])).all()
                and (epoch_seconds(ta["exit_time"]) == epoch_seconds(tb["exit_time"])).all()
                and np.allclose(ta["pnl"], tb["pnl"], atol=0.01))
            detail = (f"{a.engine} vs {b.engine}: {len(ta)} vs {len(tb)} trades"
                      + (", same times and P/L to the cent" if same else ", they differ"))
            out.append(_badge(f"{a.strategy}: engines {'agree' if same else 'DISAGREE'}",
                              "ok" if same else "bad", detail))
    return out


def data_badges(result: BacktestResult) -> list[dict[str, str]]:
    """Warnings about the candles of ``result``: gaps and a short warm-up."""
    prices = result.prices
    out = []
    if len(prices) > 2:
        sec = epoch_seconds(prices.index)
        step = bar_seconds(prices)
        gaps = np.diff(sec) > step * 1.5
        if gaps.any():
            missing = int(((np.diff(sec)[gaps] // step) - 1).sum())
            first = fmt_time(prices.index[1:][gaps][0])
            out.append(_badge(f"{int(gaps.sum())} gap(s) in the data", "warn",
                              f"{missing} bar(s) missing in total; first gap before {first}"))
    trades = result.trades
    record = result.data.get("warmup")
    if record is not None:  # the run recorded its warm-up (history before the window)
        for w in record.get("warnings", []):
            out.append(_badge("short warm-up", "warn", w))
        return out
    if len(prices) and len(trades):
        warm = (trades["entry_time"].min() - prices.index[0]) / pd.Timedelta(days=1)
        if warm < WEMA_WARMUP_DAYS:
            out.append(_badge("short warm-up", "warn",
                              f"the first trade comes {warm:,.0f} days after the data starts; "
                              f"the 200-week EMA needs {WEMA_WARMUP_DAYS:,} days to settle"))
    return out


def badges(results: Sequence[BacktestResult]) -> list[dict[str, Any]]:
    """Every badge of a run report, in reading order: audits, agreement, data, hash."""
    out = [audit_badge(r) for r in results]
    for r in results:
        when = r.wiped_out
        if when is not None:
            out.append(_badge(f"{r.strategy}: account wiped out {fmt_time(when)}", "bad",
                              "equity fell below a millionth of the starting cash and stayed "
                              "there: no trade opens after this bar, so the rest of the data "
                              "tests nothing"))
    out += agreement_badges(results)
    seen: set[str] = set()
    for r in results:
        key = str(r.data.get("sha256"))
        if key in seen:
            continue
        seen.add(key)
        warnings = data_badges(r)
        out += warnings or [_badge("data: no gaps", "ok", "every bar present, warm-up long "
                                   "enough for the 200-week EMA")]
        out.append(_badge(f"data {key[:12]}", "info", f"SHA-256 of the candles: {key}"))
    return out
