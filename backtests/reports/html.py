"""The run report: one self-contained, offline HTML page for one or several backtest results.

:func:`render_html` writes a single ``.html`` file holding everything it needs: the chart library
(:func:`backtests.reports.assets.chart_library`, inlined once), our CSS and script, and the data as
one JSON block (:mod:`backtests.reports.chart_data`: columns packed as base64 typed arrays, each
stored once). It opens from disk without network access.

What the page shows: a header with trust badges (:mod:`backtests.reports.badges`); the page cards
(:mod:`backtests.reports.cards`: comparison of several strategies, and any card another module
registers); per strategy, a TradingView-style chart (candles that refit the price axis to what is
visible, volume and RSI panes, 200-week EMA, per-bar support/resistance, the nearest S/R zones,
entries/exits/liquidations as small markers beside the bars, range buttons measured from the
data's end, log/linear), equity vs. buy-and-hold with drawdown, the trade inspector, metric tables
(All/Long/Short), exit reasons, entry tags, worst drawdowns, monthly returns, the trade list
(sortable, filterable, CSV export), the S/R zones and provenance; then the technical outlook.

Long data is drawn natively when zoomed in; zoomed out, the page aggregates candles to a coarser
timeframe (OHLC first/max/min/last, volume summed) so that at most ~2,000 are drawn at once, and
says so on the chart.

Reports only *read* results (see :mod:`backtests.reports.tables`). Every user-supplied string goes
through jinja2 autoescaping or into the JSON block, which
:func:`~backtests.reports.assets.safe_json` escapes so no value can close the ``<script>`` element.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backtests._files import write_text_atomic
from backtests.metrics import MONTHS
from backtests.reports import chart_data, tables
from backtests.reports.assets import render, safe_json
from backtests.reports.badges import badges
from backtests.reports.cards import RunContext, Section, page_cards, strategy_cards
from backtests.reports.format import fmt_time
from backtests.results import BacktestResult

LEVELS_DRAWN = 8  # S/R zones drawn on the price chart as price lines: the nearest to the last close
DISPLAY_BARS = 2000  # most candles drawn at once; more visible -> aggregated (in the page)


def slug(text: str, n: int) -> str:
    """A page-unique HTML id for the ``n``-th strategy: ``s1-oversold-bounce``."""
    return f"s{n}-" + (re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40] or "x")


def _names(results: Sequence[BacktestResult]) -> list[str]:
    names = [r.strategy for r in results]
    dup = {x for x in names if names.count(x) > 1}
    return [f"{x} #{i}" if x in dup else x for i, x in enumerate(names, start=1)]


def _chart_spec(blobs: chart_data.Blobs, r: BacktestResult, section: Section) -> dict[str, Any]:
    prices = r.prices
    last = float(prices["close"].iloc[-1]) if len(prices) else float("nan")
    lo, hi = float(prices["low"].min()), float(prices["high"].max())
    return {
        "id": section.chart_id,
        "name": section.name,
        "bars": chart_data.candles(blobs, prices),
        "lines": chart_data.indicator_lines(blobs, r),
        "equity": chart_data.equity_series(blobs, r),
        "trades": chart_data.trade_table(r),
        "events": chart_data.events(r),
        "levels": chart_data.levels(r.levels, last, LEVELS_DRAWN),
        "thresholds": [{"name": n, "value": v} for n, v in tables.thresholds(r.params)],
        "log": bool(lo > 0 and hi / lo > 5),  # BTC's 10x-100x moves read only on a log axis
        "maxBars": DISPLAY_BARS,
    }


def _section(r: BacktestResult, n: int, name: str) -> Section:
    sid = slug(r.strategy, n)
    return Section(result=r, id=sid, name=name, chart_id=f"{sid}-chart")


def _config_view(config: dict[str, Any]) -> dict[str, Any]:
    """The settings as shown: a funding-rate series (``{time: rate}``) as one line, not
    thousands of entries."""
    out = dict(config)
    fr = out.get("funding_rate")
    if isinstance(fr, dict) and fr:
        times = list(fr)
        out["funding_rate"] = (f"series of {len(fr):,} rates per 8 h, {times[0][:10]} -> "
                               f"{times[-1][:10]} (mean {sum(fr.values()) / len(fr):.6f})")
    return out


def _section_view(ctx: RunContext, s: Section) -> dict[str, Any]:
    r = s.result
    prices = r.prices
    return {
        "id": s.id, "name": s.name, "chart_id": s.chart_id, "engine": r.engine,
        "params": dict(r.params), "config": _config_view(r.config),
        # the squeeze has its own card; its numbers do not belong in the provenance table
        "data": {k: v for k, v in r.data.items() if k not in ("squeeze", "warmup")},
        "warmup": tables.warmup_lines(r.data["warmup"]) if isinstance(r.data.get("warmup"), dict)
        else [],
        "version": r.version, "created": r.created,
        "kpis": tables.kpis(r),
        "metric_rows": tables.metric_table(r),
        "exit_reasons": tables.group_stats(r.trades, "exit_reason"),
        "tags": tables.group_stats(r.trades, "tag"),
        "monthly": tables.monthly_table(r),
        "drawdowns": tables.drawdown_table(r),
        "levels": tables.levels_rows(r),
        "n_levels_all": len(r.levels) if r.levels is not None else 0,
        "n_trades": len(r.trades),
        "bar_tf": prices.attrs.get("timeframe") or r.data.get("timeframe") or "",
        "span": (fmt_time(prices.index[0]), fmt_time(prices.index[-1])) if len(prices)
        else ("", ""),
        "rows": len(prices),
        "thinned": chart_data.thinning_note(prices),
        "cards": strategy_cards(ctx, s),
    }


def render_html(results: Sequence[BacktestResult] | BacktestResult, path: str | Path, *,
                title: str | None = None) -> Path:
    """Write the self-contained report for ``results`` to ``path`` and return that path.

    Args:
        results: one result or several (several: a comparison card, then one section each).
        path: the ``.html`` file to write (parent directories are created).
        title: page title (default "BTC backtest report").

    Raises:
        ValueError: when ``results`` is empty.
    """
    results = [results] if isinstance(results, BacktestResult) else list(results)
    if not results:
        raise ValueError("render_html needs at least one BacktestResult")
    sections = [_section(r, n, name)
                for n, (r, name) in enumerate(zip(results, _names(results), strict=True), 1)]
    ctx = RunContext(results=results, sections=sections)
    blobs = chart_data.Blobs()
    charts = [_chart_spec(blobs, r, s) for r, s in zip(results, sections, strict=True)]
    views = [_section_view(ctx, s) for s in sections]
    # One outlook per distinct outlook: usually every strategy shares the data's.
    outlooks: list[dict[str, Any]] = []
    for s, v in zip(sections, views, strict=True):
        o = s.result.outlook or {}
        same = next((x for x in outlooks if x["raw"] == o), None)
        if same is None:
            same = {"raw": o, "view": tables.outlook_view(o), "for": [], "end": v["span"][1]}
            outlooks.append(same)
        same["for"].append(s.name)
    first = results[0]
    page = render(
        "run.html",
        title=title or "BTC backtest report",
        badges=badges(results),
        cards=page_cards(ctx),
        sections=views,
        outlooks=outlooks,
        payload=safe_json({"blobs": blobs.table, "charts": charts}),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=first.version,
        data=dict(first.data),
        months=list(MONTHS),
    )
    return write_text_atomic(path, page)  # a reader never sees half a report
