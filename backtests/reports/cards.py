"""Cards: the blocks a run report is made of, and the one way to add a new one.

A card is a titled box of HTML. The page shows, in order: the header (title, trust badges), the
**page cards** (:data:`PAGE_CARDS`, in list order), one section per strategy (its built-in charts
and tables, then the **strategy cards**, :data:`STRATEGY_CARDS`), and the outlook.

To add a card:

1. write a builder: a function taking the :class:`RunContext` (page cards) or the context and
   one :class:`Section` (strategy cards) and returning a :class:`Card`, or ``None`` when it has
   nothing to show. It must only *read* the saved results (``ctx.results``, ``section.result``):
   reports never recompute. Its body is usually a template of ``templates/cards/``::

       def market_now(ctx: RunContext) -> Card | None:
           body = render("cards/market_now.html", outlook=ctx.results[0].outlook)
           return Card("market-now", "Market now", body)

2. register it: ``PAGE_CARDS.insert(0, market_now)`` (a card that must come first) or
   ``PAGE_CARDS.append(...)`` / ``STRATEGY_CARDS.append(...)`` in this module.

Inside a card, format numbers with the template filters (``x|fmt("price")``, ``|fmt("pct")``,
``|fmt_time``: :mod:`backtests.reports.format`), use ``<table class="data">`` for tables (styled,
never wider than the card: wrap wide ones in ``<div class="scroll-x">``), and to make something
zoom the price chart give it ``data-zoom-from`` / ``data-zoom-to`` (ISO dates or epoch seconds)
and optionally ``data-chart`` (a section's ``chart_id``; default: the first price chart): a click
zooms that chart to the range and scrolls to it. Scripts may call ``btcReport.zoom(chartId, from,
to)`` and ``btcReport.onReady(fn)``; ``LightweightCharts`` is available for a card's own chart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from markupsafe import Markup

from backtests.metrics import r_distribution
from backtests.reports.assets import render, safe_json
from backtests.reports.format import fmt
from backtests.reports.tables import COMPARISON_ROWS, METRIC_ROWS, SIGNED, cell
from backtests.results import BacktestResult


@dataclass(frozen=True)
class Card:
    """A titled box: ``id`` (HTML id and nav anchor), ``title``, ``body`` (HTML), an optional
    ``note`` under the title, ``nav`` (listed in the top navigation)."""

    id: str
    title: str
    body: Markup | str
    note: str = ""
    nav: bool = True

    def html(self) -> Markup:
        """The card's full HTML (``<section class="card">`` with its title)."""
        return Markup(render("card.html", card=self))


@dataclass
class Section:
    """One strategy's part of the page: its ``result``, HTML ``id``, display ``name`` (unique on
    the page) and the id of its price chart (``chart_id``)."""

    result: BacktestResult
    id: str
    name: str
    chart_id: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunContext:
    """What page cards see: every result (in page order) and its section."""

    results: list[BacktestResult]
    sections: list[Section]


PageCard = Callable[[RunContext], "Card | None"]
StrategyCard = Callable[[RunContext, Section], "Card | None"]


def comparison_card(ctx: RunContext) -> Card | None:
    """Several strategies: their key metrics side by side and all equity curves on one chart."""
    if len(ctx.results) < 2:
        return None
    rows = [
        {"label": label, "cells": [cell(r.metrics.get(key), kind, key in SIGNED)
                                   for r in ctx.results]}
        for key, label, kind, _ in METRIC_ROWS if key in COMPARISON_ROWS
    ]
    body = render("cards/comparison.html", sections=ctx.sections, rows=rows)
    best = max(ctx.results, key=lambda r: r.metrics.get("total_return_pct") or float("-inf"))
    note = (f"Best total return: {best.strategy} "
            f"({fmt(best.metrics.get('total_return_pct'), 'pct')}).")
    return Card("comparison", "Strategy comparison", Markup(body), note=note)


def squeeze_card(ctx: RunContext) -> Card | None:
    """The squeeze: leverage-survival heatmap (entry date x leverage, coloured by days to
    liquidation), safe-leverage curve and liquidation map, drawn from the first result's
    ``data["squeeze"]`` (:func:`backtests.squeeze.summary.squeeze_summary`, computed by the job).
    """
    sq = ctx.results[0].data.get("squeeze") if ctx.results else None
    if not sq or "summary" not in sq:
        return None
    sides = [s for s in ("long", "short") if s in sq["days_to_liquidation"]]
    span = math.log(100.0)

    def curve_x(lev: float) -> float:
        return round(40 + 370 * math.log(lev) / span, 1)

    def curve_points(side: str) -> list[tuple[float, float]]:
        return [(lev, share) for lev, share in zip(sq["curve"]["leverage"], sq["curve"][side],
                                                   strict=True) if share is not None]

    m = sq["map"]
    height, n = 240, len(m["low"])
    top = max([w or 0.0 for w in m["long"] + m["short"]] + [1e-12])
    lo, hi = (m["low"][0], m["high"][-1]) if n else (0.0, 1.0)
    bars = [{"y": round(height * (1 - (i + 1) / n), 2), "h": round(height / n, 2),
             "low": m["low"][i], "high": m["high"][i], "label": i % 10 == 0,
             "long": round(200 * (m["long"][i] or 0.0) / top, 1),
             "short": round(200 * (m["short"][i] or 0.0) / top, 1)} for i in range(n)]
    price_y = round(height * (1 - (m["price"] - lo) / (hi - lo)), 1) if n else height / 2
    done = [d for side in sides for row in sq["days_to_liquidation"][side] for d in row
            if d is not None]
    horizon = sq["horizon"]
    horizon_days = (float(horizon[:-1]) if horizon.endswith("D") and horizon[:-1].isdigit()
                    else max(done, default=1.0))
    payload = safe_json({"sides": sides, "leverages": sq["heatmap_leverages"],
                         "days": sq["days_to_liquidation"], "maxlev": sq["max_leverage"],
                         "times": sq["entry_time"], "horizon_days": horizon_days})
    body = render("cards/squeeze.html", sq=sq, sides=sides, curve_x=curve_x,
                  curve_points=curve_points, map_bars=bars, map_h=height, price_y=price_y,
                  payload=payload)
    return Card("squeeze", "The squeeze: how much leverage survived", Markup(body),
                note="A model on candle highs/lows; exchanges liquidate on the mark price.")


def market_now_card(ctx: RunContext) -> Card | None:
    """The market at the last bar (the job's ``story["market_now"]``, :mod:`backtests.story`):
    price against the nearest support and resistance, 200-week EMA, RSI, trend, recent flips."""
    now = (ctx.results[0].story or {}).get("market_now") if ctx.results else None
    if not now or "price" not in now:
        return None
    body = render("cards/market_now.html", now=now)
    return Card("market-now", f"Market now · {fmt(now['as_of'], 'date')}", Markup(body),
                note="The technical outlook at the last bar of the data.")


#: Days shown either side of a move when its row is clicked.
MOVE_ZOOM_DAYS = 30


def biggest_moves_card(ctx: RunContext) -> Card | None:
    """The biggest daily moves (``story["biggest_moves"]``) with what each strategy held; a
    click on a row zooms the price chart to the move."""
    moves = (ctx.results[0].story or {}).get("biggest_moves") if ctx.results else None
    if not moves:
        return None
    pad = pd.Timedelta(days=MOVE_ZOOM_DAYS)
    rows = [{**m, "zoom_from": (pd.Timestamp(m["date"]) - pad).isoformat(),
             "zoom_to": (pd.Timestamp(m["date"]) + pad).isoformat()} for m in moves]
    body = render("cards/biggest_moves.html", moves=rows)
    return Card("biggest-moves", "The biggest moves", Markup(body),
                note="Largest daily close-to-close moves against the volatility of their time "
                     "(σ: standard deviations of the 90 daily changes before). Click a row to "
                     "zoom the price chart to it.")


def r_multiples_card(ctx: RunContext, section: Section) -> Card | None:
    """How the strategy's trades spread in R multiples (P/L over the planned risk at the initial
    stop), with expectancy in R and SQN from the saved metrics; None without planned risks."""
    res = section.result
    if not res.metrics.get("n_r_trades"):
        return None
    dist = r_distribution(res.trades)  # a histogram of the saved trades, nothing re-run
    top = float(dist["share_pct"].max()) or 1.0
    rows = [{"label": label, "trades": int(r.trades), "share": float(r.share_pct),
             "width": round(160 * float(r.share_pct) / top), "loss": label.startswith(("<", "-"))}
            for label, r in dist.iterrows()]
    body = render("cards/r_multiples.html", rows=rows, n=int(res.metrics["n_r_trades"]),
                  expectancy=res.metrics.get("expectancy_r"), sqn=res.metrics.get("sqn"))
    return Card(f"{section.id}-r", f"{section.name}: trades in R multiples", Markup(body),
                nav=False)


#: Page cards, top of the page, in this order: the market now first.
PAGE_CARDS: list[PageCard] = [market_now_card, biggest_moves_card, comparison_card,
                               squeeze_card]
#: Extra cards inside each strategy's section, after its built-in charts and tables.
STRATEGY_CARDS: list[StrategyCard] = [r_multiples_card]


def page_cards(ctx: RunContext) -> list[Card]:
    """The page cards that have something to show, in :data:`PAGE_CARDS` order."""
    return [c for build in PAGE_CARDS if (c := build(ctx)) is not None]


def strategy_cards(ctx: RunContext, section: Section) -> list[Card]:
    """The extra cards of one strategy section, in :data:`STRATEGY_CARDS` order."""
    return [c for build in STRATEGY_CARDS if (c := build(ctx, section)) is not None]
