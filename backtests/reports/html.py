"""One self-contained, offline HTML report for one or several backtest results.

:func:`render_html` writes a single ``.html`` file holding everything it needs: the plotly.js bundle
that the installed ``plotly`` package ships (inlined once per page), the CSS, and the chart data as
one JSON block. It opens from disk without network access.

What the page shows, per strategy: interactive candles (zoom/pan/hover, log/linear toggle) with the
200-week EMA, the per-bar support/resistance lines, the S/R zones at the end date (bands), flip and
retest markers, entries/exits/liquidations with entry→exit lines coloured by P/L, an RSI pane with
the strategy's thresholds; equity vs. buy-and-hold with the underwater (drawdown) chart; a
TradingView-like metrics table (All/Long/Short); exit-reason and entry-tag statistics; monthly
returns; the complete trade list; parameters, engine properties and data provenance. Several
results on one page are compared first (metrics side by side, all equity curves on one chart).
The technical outlook at the end date closes the page.

Reports only *read* results: the metrics shown are the saved ``metrics``; the Long/Short columns,
exit-reason table and monthly returns are summaries of the saved trade list and equity curve.

Display downsampling: when a result has more than ``max_candles`` bars (long intraday data), the
candles, indicator lines and equity curves are aggregated for display to the smallest coarser
timeframe that fits (OHLC: first/max/min/last; lines: last value of each bin; drawdown: minimum of
each bin, so the deepest point survives). The page says so. Trade markers keep their exact times
and prices, and the trade list is always complete.

Security: every user-supplied string (strategy names, parameter values, tags, data notes) goes
through jinja2 autoescaping; chart data is embedded as JSON with ``<``, ``>``, ``&`` and the JS
line separators escaped, so no value can close the ``<script>`` element.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from backtests import metrics as metrics_mod
from backtests._files import write_text_atomic
from backtests.metrics import MONTHS
from data.frame import parse_timeframe, timeframe_length, timeframe_of
from data.resample import period_start

if TYPE_CHECKING:  # pragma: no cover
    from backtests.results import BacktestResult

TEMPLATES = Path(__file__).with_name("templates")
MAX_CANDLES = 6000  # bars drawn per price chart before display downsampling kicks in

# Colours (TradingView-like light theme).
UP, DOWN = "#26a69a", "#ef5350"
BLUE, GREY, ORANGE, PURPLE = "#2962ff", "#9e9e9e", "#ff9800", "#7e57c2"
SERIES_COLOURS = ["#2962ff", "#e91e63", "#00897b", "#ff6d00", "#6a1b9a", "#795548", "#0097a7"]

_DISPLAY_LADDER = (
    "2m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "12h",
    "1d",
    "2d",
    "3d",
    "1w",
    "2w",
    "4w",
)

# (metrics key, label, format, long/short meaningful). Long/Short values come from
# backtests.metrics.side_stats (the same definitions as the saved metrics).
METRIC_ROWS: list[tuple[str, str, str, bool]] = [
    ("net_pnl", "Net profit", "money", True),
    ("total_return_pct", "Total return", "pct", False),
    ("buy_hold_return_pct", "Buy & hold return", "pct", False),
    ("cagr_pct", "CAGR", "pct", False),
    ("final_equity", "Final equity", "money", False),
    ("max_drawdown_pct", "Max drawdown", "pct", False),
    ("max_drawdown_duration_days", "Longest drawdown", "days", False),
    ("volatility_pct", "Volatility (ann.)", "pct", False),
    ("sharpe", "Sharpe ratio", "ratio", False),
    ("sortino", "Sortino ratio", "ratio", False),
    ("calmar", "Calmar ratio", "ratio", False),
    ("var_95_pct", "VaR 95% (per bar)", "pct", False),
    ("cvar_95_pct", "CVaR 95% (per bar)", "pct", False),
    ("best_day_pct", "Best day", "pct", False),
    ("worst_day_pct", "Worst day", "pct", False),
    ("exposure_pct", "Exposure (time in market)", "pct", False),
    ("n_trades", "Total trades", "int", True),
    ("n_long", "Long trades", "int", False),
    ("n_short", "Short trades", "int", False),
    ("win_rate_pct", "Win rate", "pct", True),
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
]
# Rows whose sign is good/bad news (coloured green/red); fees, volatility etc. are not.
SIGNED = {
    "net_pnl",
    "total_return_pct",
    "buy_hold_return_pct",
    "cagr_pct",
    "max_drawdown_pct",
    "expectancy",
    "gross_profit",
    "gross_loss",
    "avg_win",
    "avg_loss",
    "avg_trade_pct",
    "best_trade_pct",
    "worst_trade_pct",
    "best_day_pct",
    "worst_day_pct",
    "final_pnl",
}
# Rows that are not saved metrics: All column from the trade list summary too.
_TRADE_ONLY = {"net_pnl", "gross_profit", "gross_loss"}

COMPARISON_ROWS = [
    "total_return_pct",
    "cagr_pct",
    "max_drawdown_pct",
    "sharpe",
    "sortino",
    "calmar",
    "win_rate_pct",
    "profit_factor",
    "n_trades",
    "n_liquidations",
    "exposure_pct",
    "final_equity",
    "buy_hold_return_pct",
]

KPI_ROWS = [
    ("total_return_pct", "Total return", "pct"),
    ("max_drawdown_pct", "Max drawdown", "pct"),
    ("sharpe", "Sharpe", "ratio"),
    ("win_rate_pct", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "ratio"),
    ("n_trades", "Trades", "int"),
    ("buy_hold_return_pct", "Buy & hold", "pct"),
]


# --------------------------------------------------------------------------- formatting
def _is_missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, kind: str = "num") -> str:
    """Human formatting of one value: money ($1,234.56), pct (12.34%), ratio, int, days, num."""
    if _is_missing(x):
        return "—"
    if kind in {"money", "pct", "ratio", "int", "days", "num", "price", "btc"}:
        try:
            v = float(x)
        except (TypeError, ValueError):
            return str(x)
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        sign = "−" if v < 0 else ""
        a = abs(v)
        if kind == "money":
            return f"{sign}${a:,.2f}"
        if kind == "price":
            return f"{sign}${a:,.2f}" if a < 1e5 else f"{sign}${a:,.0f}"
        if kind == "pct":
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
    return str(x)


def fmt_value(x: Any) -> str:
    """Formatting for free-form values (parameters, config, provenance, outlook fields)."""
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}" if abs(int(x)) >= 10_000 else str(int(x))
    if isinstance(x, float | np.floating):
        if _is_missing(x):
            return "—"
        v = float(x)
        return f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.6g}"
    if isinstance(x, pd.Timestamp | datetime):
        return pd.Timestamp(x).isoformat()
    if isinstance(x, pd.Series | pd.DataFrame):
        return f"<{type(x).__name__} of {len(x)} rows>"
    if isinstance(x, dict | list | tuple):
        return json.dumps(x, default=str)
    if x is None:
        return "—"
    return str(x)


def fmt_time(ts: Any) -> str:
    if _is_missing(ts):
        return "—"
    t = pd.Timestamp(ts)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC")
    return t.strftime("%Y-%m-%d") if (t.hour, t.minute) == (0, 0) else t.strftime("%Y-%m-%d %H:%M")


def fmt_duration(td: Any) -> str:
    if _is_missing(td):
        return "—"
    td = pd.Timedelta(td)
    days, hours = td.days, td.seconds // 3600
    if days and hours:
        return f"{days}d {hours}h"
    return f"{days}d" if days else f"{hours}h {td.seconds // 60 % 60}m"


def sign_class(x: Any) -> str:
    if _is_missing(x):
        return ""
    return "pos" if float(x) > 0 else "neg" if float(x) < 0 else ""


def slug(text: str, n: int) -> str:
    return f"s{n}-" + (re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40] or "x")


def safe_json(obj: Any) -> Markup:
    """JSON for embedding in an HTML ``<script>``: plotly-aware encoding, then ``<``/``>``/``&``
    and U+2028/U+2029 escaped, so no string can end the script element or break the JS parser.
    """
    text = obj if isinstance(obj, str) else pio.json.to_json_plotly(obj)
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return Markup(text)


def _esc(text: Any) -> str:
    """Escape text going into plotly hover/annotation strings (plotly renders a subset of HTML)."""
    return html.escape(str(text), quote=False)


# --------------------------------------------------------------------------- data for display
def _naive(index: pd.Index | pd.Series | list) -> np.ndarray:
    """Timestamps as compact naive-UTC strings (plotly.js does not parse offsets; axes are UTC).

    Date-only when every time is midnight (daily bars): that keeps the page small.
    """
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    if len(idx) == 0:
        return np.array([], dtype=object)
    daily = bool((idx.asi8 % 86_400_000_000_000 == 0).all()) if not idx.hasnans else False
    return np.asarray(idx.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M"), dtype=object)


def _r(values: Any, decimals: int = 2) -> np.ndarray:
    """Values rounded for display (prices/equity to cents): JSON stays small, charts unchanged."""
    return np.round(np.asarray(values, dtype=float), decimals)


def _bar_timeframe(prices: pd.DataFrame) -> pd.Timedelta:
    if len(prices) < 2 and not prices.attrs.get("timeframe"):
        return pd.Timedelta(days=1)  # nothing to go by; one bar draws the same either way
    return timeframe_length(timeframe_of(prices))


def display_timeframe(prices: pd.DataFrame, max_candles: int = MAX_CANDLES) -> str | None:
    """The coarser timeframe used to draw ``prices`` (None: drawn as is, no downsampling)."""
    if len(prices) <= max_candles:
        return None
    bar = _bar_timeframe(prices)
    span = prices.index[-1] - prices.index[0]
    for tf in _DISPLAY_LADDER:
        td = parse_timeframe(tf)
        if td > bar and span / td + 1 <= max_candles:
            return tf
    return _DISPLAY_LADDER[-1]


def _bins(index: pd.DatetimeIndex, tf: str | None) -> pd.DatetimeIndex | None:
    return None if tf is None else period_start(index, tf)


def _down_ohlc(prices: pd.DataFrame, tf: str | None) -> pd.DataFrame:
    if tf is None:
        return prices
    agg = {"open": "first", "high": "max", "low": "min", "close": "last"}
    if "volume" in prices:
        agg["volume"] = "sum"
    return prices.groupby(_bins(prices.index, tf)).agg(agg)


def _down(series: pd.Series | pd.DataFrame, tf: str | None, how: str = "last") -> Any:
    if tf is None:
        return series
    return series.groupby(_bins(series.index, tf)).agg(how)


# --------------------------------------------------------------------------- summaries
def metric_table(result: BacktestResult) -> list[dict[str, Any]]:
    """Rows of the All/Long/Short table. All: the saved metrics (a trade-list summary for net and
    gross profit, which are not metrics); Long/Short: :func:`backtests.metrics.side_stats`."""
    m = dict(result.metrics)
    sides = metrics_mod.side_stats(result.trades)
    rows = []
    known = set()
    for key, label, kind, split in METRIC_ROWS:
        known.add(key)
        if key in _TRADE_ONLY:
            value = sides.at[key, "all"] if key in sides.index else None
        elif key in m:
            value = m[key]
        else:
            continue
        if key == "gross_loss" and not _is_missing(value):
            value = -abs(float(value))  # shown as a loss (side_stats reports it positive)
        has = split and key in sides.index
        long_v = sides.at[key, "long"] if has else None
        short_v = sides.at[key, "short"] if has else None
        if key == "gross_loss" and has:
            long_v, short_v = -abs(float(long_v)), -abs(float(short_v))
        rows.append(
            {
                "key": key,
                "label": label,
                "kind": kind,
                "all": value,
                "long": long_v,
                "short": short_v,
                "split": split,
                "signed": key in SIGNED,
            }
        )
    for key, value in m.items():  # metrics this report does not know yet are still shown
        if key not in known:
            kind = "pct" if key.endswith("_pct") else "num"
            rows.append(
                {
                    "key": key,
                    "label": key.replace("_", " ").capitalize(),
                    "kind": kind,
                    "all": value,
                    "long": None,
                    "short": None,
                    "split": False,
                    "signed": False,
                }
            )
    return rows


def group_stats(trades: pd.DataFrame, column: str) -> list[dict[str, Any]]:
    """Rows of the exit-reason / entry-tag table (:func:`backtests.metrics.exit_reason_stats`)."""
    if len(trades) == 0 or column not in trades or trades[column].isna().all():
        return []
    fn = metrics_mod.exit_reason_stats if column == "exit_reason" else metrics_mod.tag_stats
    table = fn(trades)
    return [
        {
            "value": "—" if _is_missing(k) else str(k),
            "count": int(r["trades"]),
            "share": r["share_pct"],
            "win_rate": r["win_rate_pct"],
            "pnl": r["pnl_total"],
            "avg_pnl": r["pnl_avg"],
            "avg_return": r["return_avg_pct"],
        }
        for k, r in table.iterrows()
    ]


def monthly_table(result: BacktestResult) -> dict[str, Any]:
    """Monthly returns (:func:`backtests.metrics.monthly_returns`) with heat-map cell styles."""
    eq = result.equity
    if len(eq) < 2:
        return {"rows": []}
    cash = result.config.get("cash")
    table = metrics_mod.monthly_returns(eq, cash=float(cash) if cash else None)
    months = table[list(MONTHS)]
    peak = float(np.nanmax(np.abs(months.to_numpy()))) if months.notna().any().any() else 0.0
    rows = []
    for year, r in table.iterrows():
        cells = []
        for m in MONTHS:
            v = r[m]
            if _is_missing(v):
                cells.append(None)
                continue
            alpha = (min(1.0, abs(v) / peak) * 0.75 if peak > 0 else 0.0) + 0.06
            rgb = "38,166,154" if v >= 0 else "239,83,80"
            cells.append({"value": float(v), "style": f"background: rgba({rgb},{alpha:.2f})"})
        rows.append({"year": int(year), "cells": cells, "total": r["Year"]})
    return {"rows": rows}


def drawdown_table(result: BacktestResult, top: int = 5) -> list[dict[str, Any]]:
    """The deepest drawdowns (:func:`backtests.metrics.drawdown_periods`)."""
    if len(result.equity) < 2:
        return []
    return metrics_mod.drawdown_periods(result.equity, top=top).to_dict("records")


def flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dict → [("a.b", value)], lists of scalars kept whole."""
    out: list[tuple[str, Any]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.extend(flatten(v, key))
            else:
                out.append((key, v))
    else:
        out.append((prefix, d))
    return out


_TEXT_KEYS = ("text", "summary", "description", "narrative")


def outlook_view(outlook: dict[str, Any]) -> dict[str, Any]:
    """The outlook's text paragraphs and its other fields as (label, formatted value) pairs."""
    outlook = outlook or {}
    text = next((outlook[k] for k in _TEXT_KEYS if isinstance(outlook.get(k), str)), "")
    fields = [
        (k.replace("_", " "), fmt_value(v)) for k, v in flatten(outlook) if k not in _TEXT_KEYS
    ]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]
    return {"paragraphs": paragraphs, "fields": fields}


def _thresholds(params: dict[str, Any]) -> list[tuple[str, float]]:
    """RSI thresholds declared in the parameters (names with oversold/overbought), else 30/70."""
    found = []
    for k, v in params.items():
        name = str(k).lower()
        if (
            ("oversold" in name or "overbought" in name)
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and 0 < float(v) < 100
        ):
            found.append((str(k), float(v)))
    return found or [("oversold", 30.0), ("overbought", 70.0)]


# --------------------------------------------------------------------------- figures
_BASE_LAYOUT = dict(
    template="plotly_white",
    margin=dict(l=60, r=20, t=40, b=30),
    hovermode="x unified",
    legend=dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0, font=dict(size=11)),
    font=dict(family="-apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif", size=12),
    hoverlabel=dict(font_size=11),
)
PLOT_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "scrollZoom": True,
    "modeBarButtonsToRemove": ["lasso2d", "select2d"],
}


def _trade_traces(fig: go.Figure, trades: pd.DataFrame) -> None:
    if len(trades) == 0:
        return
    t = trades.reset_index(drop=True)
    et, xt = _naive(t["entry_time"]), _naive(t["exit_time"])
    side = np.where(t["side"] > 0, "Long", "Short")
    for win, colour, name in ((True, UP, "Winning trade"), (False, DOWN, "Losing trade")):
        sel = np.flatnonzero((t["pnl"] > 0).to_numpy() == win)
        if not len(sel):
            continue
        xs: list[Any] = []
        ys: list[Any] = []
        for i in sel:
            xs += [et[i], xt[i], None]
            ys += [t["entry_price"].iat[i], t["exit_price"].iat[i], None]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=name,
                hoverinfo="skip",
                line=dict(color=colour, width=2, dash="dot"),
            ),
            row=1,
            col=1,
        )
    tags = t["tag"] if "tag" in t else pd.Series([""] * len(t))
    entry_text = [
        f"#{i + 1} {side[i]} {t['size'].iat[i]:.6f} BTC @ {fmt(t['entry_price'].iat[i], 'price')}"
        + (f" · {_esc(tags.iat[i])}" if not _is_missing(tags.iat[i]) and tags.iat[i] != "" else "")
        for i in range(len(t))
    ]
    for is_long, symbol, colour, name in (
        (True, "triangle-up", BLUE, "Long entry"),
        (False, "triangle-down", "#d81b60", "Short entry"),
    ):
        sel = np.flatnonzero((t["side"] > 0).to_numpy() == is_long)
        if len(sel):
            fig.add_trace(
                go.Scatter(
                    x=et[sel],
                    y=t["entry_price"].to_numpy()[sel],
                    mode="markers",
                    name=name,
                    marker=dict(
                        symbol=symbol, size=11, color=colour, line=dict(width=1, color="white")
                    ),
                    text=[entry_text[i] for i in sel],
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=1,
                col=1,
            )
    liq = (t["exit_reason"] == "liquidation").to_numpy()
    exit_text = [
        f"#{i + 1} exit ({_esc(t['exit_reason'].iat[i])}) @ {fmt(t['exit_price'].iat[i], 'price')}"
        f" · P/L {fmt(t['pnl'].iat[i], 'money')} ({fmt(t['return_pct'].iat[i], 'pct')})"
        for i in range(len(t))
    ]
    for mask, symbol, colour, size, name in (
        (~liq, "x", "#37474f", 9, "Exit"),
        (liq, "star", "#b71c1c", 15, "Liquidation"),
    ):
        sel = np.flatnonzero(mask)
        if len(sel):
            fig.add_trace(
                go.Scatter(
                    x=xt[sel],
                    y=t["exit_price"].to_numpy()[sel],
                    mode="markers",
                    name=name,
                    marker=dict(symbol=symbol, size=size, color=colour, line=dict(width=1)),
                    text=[exit_text[i] for i in sel],
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=1,
                col=1,
            )


EVENTS_SHOWN = 60  # an event kind with more markers starts hidden (legend click shows it)
_EVENT_PRICE = ("price", "level", "close", "break_close")
_EVENT_HOVER = ("level", "level_low", "level_high", "flip_kind", "direction", "confirmed_by")


def event_price_column(events: pd.DataFrame | None) -> str | None:
    """The column giving an event's price on the chart (price, else the level, else a close)."""
    if events is None or len(events) == 0 or not {"time", "kind"} <= set(events.columns):
        return None
    return next((c for c in _EVENT_PRICE if c in events.columns), None)


def event_style(kind: str) -> tuple[str, str, int]:
    """Marker (plotly symbol, colour, size) of an event kind: flips as diamonds coloured by the
    new role (green: became support, red: became resistance), retests as orange rings."""
    k = kind.lower()
    if "retest" in k:
        return "circle-open", ORANGE, 9
    if k.endswith("to_support"):
        return "diamond", UP, 10
    if k.endswith("to_resistance"):
        return "diamond", DOWN, 10
    if "flip" in k:
        return "diamond", PURPLE, 10
    return "star-diamond", "#5d4037", 10


def _event_traces(fig: go.Figure, events: pd.DataFrame) -> None:
    col = event_price_column(events)
    if col is None:
        return
    hover = [c for c in _EVENT_HOVER if c in events.columns and c != col]
    for kind, g in events.groupby(events["kind"].astype(str), sort=False):
        symbol, colour, size = event_style(kind)
        text = [
            f"{_esc(kind)} @ {fmt(r[col], 'price')}"
            + "".join(f"<br>{_esc(c)}: {_esc(fmt_value(r[c]))}" for c in hover)
            for _, r in g.iterrows()
        ]
        fig.add_trace(
            go.Scatter(
                x=_naive(g["time"]),
                y=_r(g[col]),
                mode="markers",
                name=f"{kind.replace('_', ' ').capitalize()} ({len(g)})",
                # hundreds of markers hide the candles: start hidden, one legend click shows them
                visible="legendonly" if len(g) > EVENTS_SHOWN else True,
                marker=dict(
                    symbol=symbol, size=size, color=colour, line=dict(width=1.5, color=colour)
                ),
                text=text,
                hovertemplate="%{text}<extra></extra>",
            ),
            row=1,
            col=1,
        )


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks spanning [lo, hi] for a log price axis (plotly's own crowd below 10^k)."""
    if not (lo > 0 and hi > lo):
        return []
    ticks = [
        m * 10.0**e
        for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        for m in (1, 2, 5)
    ]
    ticks = [t for t in ticks if lo * 0.9 <= t <= hi * 1.1]
    return ticks if len(ticks) <= 12 else [t for t in ticks if str(int(t))[0] == "1"]


def _log_axis(lo: float, hi: float) -> dict[str, Any]:
    """y-axis settings for a log dollar axis with readable 1-2-5 ticks."""
    ticks = _log_ticks(lo, hi)
    return dict(type="log", tickvals=ticks, ticktext=[f"${t:,.0f}" for t in ticks])


_FIRST_TOUCH = ("first_touch", "first", "start", "since")


LEVELS_DRAWN = 10  # S/R zones drawn on the price chart: the nearest to the last close
LEVELS_LISTED = 25  # rows of the zones table


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


def _level_shapes(fig: go.Figure, levels: pd.DataFrame, x: np.ndarray) -> None:
    """The S/R zones at the end date as bands from their first touch (when known) or over the
    last fifth of the chart, labelled with role, centre and touches. Added in one layout update
    (plotly's add_shape per zone is quadratic)."""
    if levels is None or len(levels) == 0:
        return
    x1 = x[-1]
    default_x0 = x[int(len(x) * 0.8)]
    first_col = next((c for c in _FIRST_TOUCH if c in levels.columns), None)
    shapes, notes = [], []
    for _, lv in levels.iterrows():
        x0 = default_x0
        if first_col is not None and not _is_missing(lv[first_col]):
            try:
                x0 = max(_naive([lv[first_col]])[0], x[0])
            except (TypeError, ValueError):
                pass
        role = str(lv.get("role", ""))
        colour = UP if "support" in role.lower() else DOWN if "resist" in role.lower() else GREY
        centre = lv.get("centre", (lv["low"] + lv["high"]) / 2)
        touches = lv.get("touches")
        label = f"{_esc(role)} {fmt(centre, 'price')}" + (
            f" · {int(touches)} touches" if not _is_missing(touches) else ""
        )
        shapes.append(
            dict(
                type="rect",
                xref="x",
                yref="y",
                x0=x0,
                x1=x1,
                y0=float(lv["low"]),
                y1=float(lv["high"]),
                fillcolor=colour,
                opacity=0.13,
                line_width=0,
                layer="below",
            )
        )
        notes.append(
            dict(
                x=x1,
                y=float(centre),
                xref="x",
                yref="y",
                text=label,
                showarrow=False,
                xanchor="right",
                yanchor="bottom",
                font=dict(size=10, color=colour),
            )
        )
    fig.update_layout(
        shapes=[*fig.layout.shapes, *shapes], annotations=[*fig.layout.annotations, *notes]
    )


def price_figure(result: BacktestResult, max_candles: int = MAX_CANDLES) -> go.Figure:
    """Candles + 200w EMA + S/R + events + trades (row 1) and RSI with thresholds (row 2)."""
    prices = result.prices
    tf = display_timeframe(prices, max_candles)
    bars = _down_ohlc(prices, tf)
    x = _naive(bars.index)
    ind = result.indicators if result.indicators is not None else pd.DataFrame(index=prices.index)
    ind_d = _down(ind.select_dtypes("number"), tf) if len(ind.columns) else ind
    has_rsi = "rsi" in ind_d
    fig = make_subplots(
        rows=2 if has_rsi else 1,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.03,
        row_heights=[0.74, 0.26] if has_rsi else [1.0],
    )
    fig.add_trace(
        go.Candlestick(
            x=x,
            open=_r(bars["open"]),
            high=_r(bars["high"]),
            low=_r(bars["low"]),
            close=_r(bars["close"]),
            name="BTC" + (f" ({tf} display)" if tf else ""),
            increasing_line_color=UP,
            decreasing_line_color=DOWN,
            increasing_fillcolor=UP,
            decreasing_fillcolor=DOWN,
            line_width=1,
        ),
        row=1,
        col=1,
    )
    ix = _naive(ind_d.index) if len(ind_d.columns) else x
    lines = [
        ("wema200", "200-week EMA", ORANGE, "solid", 2.2),
        ("support", "Support", UP, "dot", 1.2),
        ("resistance", "Resistance", DOWN, "dot", 1.2),
    ]
    for col, name, colour, dash, width in lines:
        if col in ind_d and ind_d[col].notna().any():
            fig.add_trace(
                go.Scatter(
                    x=ix,
                    y=_r(ind_d[col]),
                    mode="lines",
                    name=name,
                    connectgaps=False,
                    line=dict(
                        color=colour,
                        width=width,
                        dash=dash,
                        shape="hv" if dash == "dot" else "linear",
                    ),
                    hovertemplate="%{y:$,.0f}",
                ),
                row=1,
                col=1,
            )
    last = float(prices["close"].iloc[-1]) if len(prices) else float("nan")
    _level_shapes(fig, nearest_levels(result.levels, last, LEVELS_DRAWN), x)
    _event_traces(fig, result.events)
    _trade_traces(fig, result.trades)
    if has_rsi:
        fig.add_trace(
            go.Scatter(
                x=ix,
                y=_r(ind_d["rsi"]),
                mode="lines",
                name="RSI",
                line=dict(color=PURPLE, width=1.3),
                hovertemplate="%{y:.1f}",
            ),
            row=2,
            col=1,
        )
        th = sorted(v for _, v in _thresholds(result.params))
        if len(th) >= 2:
            fig.add_hrect(
                y0=th[0], y1=th[-1], fillcolor=PURPLE, opacity=0.06, line_width=0, row=2, col=1
            )
        for name, v in _thresholds(result.params):
            fig.add_hline(
                y=v,
                line=dict(color=GREY, width=1, dash="dash"),
                row=2,
                col=1,
                annotation_text=f"{_esc(name)} {v:g}",
                annotation_font_size=9,
                annotation_position="top left",
            )
        fig.update_yaxes(title_text="RSI", range=[0, 100], row=2, col=1)
    lo, hi = float(prices["low"].min()), float(prices["high"].max())
    log = lo > 0 and hi / lo > 5  # BTC's 10x-100x moves are only readable on a log axis
    fig.update_yaxes(
        title_text="Price (USD)",
        tickprefix="$",
        tickformat=",.0f",
        type="log" if log else "linear",
        row=1,
        col=1,
    )
    if log:
        fig.update_yaxes(**_log_axis(lo, hi), row=1, col=1)
    fig.update_xaxes(showspikes=True, spikemode="across", spikethickness=1, spikecolor=GREY)
    fig.update_xaxes(rangeslider_visible=False, row=1, col=1)
    fig.update_xaxes(
        rangeselector=dict(
            buttons=[
                dict(count=1, label="1M", step="month", stepmode="backward"),
                dict(count=6, label="6M", step="month", stepmode="backward"),
                dict(count=1, label="1Y", step="year", stepmode="backward"),
                dict(count=1, label="YTD", step="year", stepmode="todate"),
                dict(step="all", label="All"),
            ],
            font=dict(size=10),
            y=1.0,
            yanchor="bottom",
            x=1,
            xanchor="right",
        ),
        row=1,
        col=1,
    )
    fig.update_layout(
        **_BASE_LAYOUT,
        height=680 if has_rsi else 540,
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0,
                y=-0.07,
                xanchor="left",
                yanchor="top",
                showactive=True,
                active=0 if log else 1,
                font=dict(size=10),
                pad=dict(r=4, t=0),
                buttons=[
                    dict(label="Log", method="relayout", args=[{"yaxis.type": "log"}]),
                    dict(label="Linear", method="relayout", args=[{"yaxis.type": "linear"}]),
                ],
            )
        ],
    )
    fig.update_layout(legend=dict(y=1.06), margin=dict(t=70, b=60))
    return fig


def equity_figure(result: BacktestResult, max_candles: int = MAX_CANDLES) -> go.Figure:
    """Equity vs. buy-and-hold (row 1) and the underwater drawdown in % (row 2)."""
    tf = display_timeframe(result.prices, max_candles)
    eq = result.equity.astype(float)
    dd = (eq / eq.cummax() - 1.0) * 100.0
    eq_d, dd_d = _down(eq, tf), _down(dd, tf, "min")
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.7, 0.3]
    )
    if result.benchmark is not None and len(result.benchmark):
        bm = _down(result.benchmark.astype(float), tf)
        fig.add_trace(
            go.Scatter(
                x=_naive(bm.index),
                y=_r(bm),
                name="Buy & hold",
                mode="lines",
                line=dict(color=GREY, width=1.4),
                hovertemplate="%{y:$,.0f}",
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=_naive(eq_d.index),
            y=_r(eq_d),
            name="Strategy equity",
            mode="lines",
            line=dict(color=BLUE, width=2),
            hovertemplate="%{y:$,.0f}",
        ),
        row=1,
        col=1,
    )
    if len(dd) and dd.min() < 0:
        trough = dd.idxmin()
        peak = eq[:trough].idxmax()
        fig.add_trace(
            go.Scatter(
                x=_naive([peak, trough]),
                y=[eq[peak], eq[trough]],
                mode="markers",
                name="Max drawdown",
                marker=dict(color=DOWN, size=9, symbol=["circle-open", "circle"]),
                text=[
                    f"peak {fmt(eq[peak], 'money')}",
                    f"trough {fmt(eq[trough], 'money')} ({fmt(dd[trough], 'pct')})",
                ],
                hovertemplate="%{text}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=_naive(dd_d.index),
            y=_r(dd_d, 3),
            name="Drawdown",
            mode="lines",
            fill="tozeroy",
            line=dict(color=DOWN, width=1),
            fillcolor="rgba(239,83,80,0.25)",
            hovertemplate="%{y:.2f}%",
        ),
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text="Equity (USD)", tickprefix="$", tickformat=",.0f", row=1, col=1)
    both = pd.concat([eq, result.benchmark.astype(float)]) if result.benchmark is not None else eq
    lo, hi = float(both.min()), float(both.max())
    if lo > 0 and hi / lo > 5:  # buy & hold of BTC dwarfs most strategies on a linear axis
        fig.update_yaxes(**_log_axis(lo, hi), row=1, col=1)
    fig.update_yaxes(title_text="Drawdown", ticksuffix="%", row=2, col=1)
    fig.update_xaxes(showspikes=True, spikemode="across", spikethickness=1, spikecolor=GREY)
    fig.update_layout(**_BASE_LAYOUT, height=480)
    return fig


def comparison_figure(
    results: Sequence[BacktestResult], names: Sequence[str], max_candles: int = MAX_CANDLES
) -> go.Figure:
    """All equity curves on one chart, with the buy-and-hold of each distinct data set."""
    fig = go.Figure()
    seen: set[str] = set()
    for i, (r, name) in enumerate(zip(results, names, strict=True)):
        tf = display_timeframe(r.prices, max_candles)
        key = str(r.data.get("sha256", i))
        if key not in seen and r.benchmark is not None and len(r.benchmark):
            seen.add(key)
            bm = _down(r.benchmark.astype(float), tf)
            label = (
                "Buy & hold" if len(results) == 1 or len(seen) == 1 else f"Buy & hold ({key[:8]})"
            )
            fig.add_trace(
                go.Scatter(
                    x=_naive(bm.index),
                    y=_r(bm),
                    name=label,
                    mode="lines",
                    line=dict(color=GREY, width=1.4, dash="dot" if seen else None),
                    hovertemplate="%{y:$,.0f}",
                )
            )
        eq = _down(r.equity.astype(float), tf)
        fig.add_trace(
            go.Scatter(
                x=_naive(eq.index),
                y=_r(eq),
                name=_esc(name),
                mode="lines",
                line=dict(color=SERIES_COLOURS[i % len(SERIES_COLOURS)], width=2),
                hovertemplate="%{y:$,.0f}",
            )
        )
    lo = min((float(t.y.min()) for t in fig.data if len(t.y)), default=0.0)
    hi = max((float(t.y.max()) for t in fig.data if len(t.y)), default=0.0)
    fig.update_yaxes(title_text="Equity (USD)", tickprefix="$", tickformat=",.0f")
    if lo > 0 and hi / lo > 5:
        fig.update_yaxes(**_log_axis(lo, hi))
    fig.update_layout(**_BASE_LAYOUT, height=440)
    return fig


# --------------------------------------------------------------------------- page
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        fmt=fmt, fmt_value=fmt_value, fmt_time=fmt_time, fmt_duration=fmt_duration, sign=sign_class
    )
    return env


def _trade_rows(trades: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for i, t in enumerate(trades.itertuples(index=False), start=1):
        get = t._asdict().get
        fees = (get("entry_fee") or 0.0) + (get("exit_fee") or 0.0)
        rows.append(
            {
                "n": i,
                "side": "Long" if get("side") > 0 else "Short",
                "entry_time": get("entry_time"),
                "exit_time": get("exit_time"),
                "duration": pd.Timestamp(get("exit_time")) - pd.Timestamp(get("entry_time")),
                "bars": (get("exit_bar") - get("entry_bar"))
                if get("exit_bar") is not None
                else None,
                "size": get("size"),
                "entry_price": get("entry_price"),
                "exit_price": get("exit_price"),
                "fees": fees,
                "funding": get("funding"),
                "pnl": get("pnl"),
                "return_pct": get("return_pct"),
                "exit_reason": get("exit_reason"),
                "leverage": get("leverage"),
                "liquidation_price": get("liquidation_price"),
                "mae_pct": get("mae_pct"),
                "mfe_pct": get("mfe_pct"),
                "tag": "" if _is_missing(get("tag")) else get("tag"),
            }
        )
    return rows


_LEVEL_COLUMNS = ("centre", "low", "high", "role", "touches", "strength", "distance_pct",
                  "first_touch", "last_touch", "flip")  # fmt: skip


def _levels_rows(result: BacktestResult) -> list[dict[str, Any]]:
    """The zones table: the LEVELS_LISTED zones nearest to the last close, key columns only."""
    prices = result.prices
    last = float(prices["close"].iloc[-1]) if len(prices) else float("nan")
    near = nearest_levels(result.levels, last, LEVELS_LISTED)
    if near.empty:
        return []
    cols = [c for c in _LEVEL_COLUMNS if c in near.columns] or list(near.columns)
    return near[cols].iloc[::-1].to_dict("records")  # highest first, like a price ladder


def _section(result: BacktestResult, n: int, max_candles: int) -> tuple[dict, dict[str, Any]]:
    sid = slug(result.strategy, n)
    tf = display_timeframe(result.prices, max_candles)
    figs = {
        f"{sid}-price": price_figure(result, max_candles),
        f"{sid}-equity": equity_figure(result, max_candles),
    }
    data = dict(result.data)
    prices = result.prices
    section = {
        "id": sid,
        "name": result.strategy,
        "engine": result.engine,
        "version": result.version,
        "created": result.created,
        "data": data,
        "params": dict(result.params),
        "config": dict(result.config),
        "metrics": dict(result.metrics),
        "kpis": [
            (label, result.metrics.get(k), kind)
            for k, label, kind in KPI_ROWS
            if k in result.metrics
        ],
        "metric_rows": metric_table(result),
        "exit_reasons": group_stats(result.trades, "exit_reason"),
        "tags": group_stats(result.trades, "tag"),
        "monthly": monthly_table(result),
        "drawdowns": drawdown_table(result),
        "trades": _trade_rows(result.trades),
        "n_trades": len(result.trades),
        "n_levels": min(LEVELS_DRAWN, 0 if result.levels is None else len(result.levels)),
        "n_events": 0 if result.events is None else len(result.events),
        "price_fig": f"{sid}-price",
        "equity_fig": f"{sid}-equity",
        "display_tf": tf,
        "bar_tf": prices.attrs.get("timeframe") or data.get("timeframe") or "",
        "span": (fmt_time(prices.index[0]), fmt_time(prices.index[-1]))
        if len(prices)
        else ("", ""),
        "rows": len(prices),
        "levels": _levels_rows(result),
        "n_levels_all": 0 if result.levels is None else len(result.levels),
    }
    return section, figs


def render_html(
    results: Sequence[BacktestResult] | BacktestResult,
    path: str | Path,
    *,
    title: str | None = None,
    max_candles: int = MAX_CANDLES,
) -> Path:
    """Write the self-contained report for ``results`` to ``path`` and return that path.

    Args:
        results: one result or several (several → a comparison page, then one section each).
        path: the ``.html`` file to write (parent directories are created).
        title: page title (default "BTC backtest report").
        max_candles: bars per price chart before display downsampling (see module docstring).
    """
    if not isinstance(results, Sequence):
        results = [results]
    results = list(results)
    if not results:
        raise ValueError("render_html needs at least one BacktestResult")
    sections, figures = [], {}
    for n, r in enumerate(results, start=1):
        section, figs = _section(r, n, max_candles)
        sections.append(section)
        figures.update(figs)
    comparison = None
    if len(results) > 1:
        names = [r.strategy for r in results]
        dup = {x for x in names if names.count(x) > 1}
        names = [f"{x} #{i}" if x in dup else x for i, x in enumerate(names, start=1)]
        figures["comparison-equity"] = comparison_figure(results, names, max_candles)
        comparison = {
            "names": names,
            "ids": [s["id"] for s in sections],
            "rows": [
                (label, kind, key in SIGNED, [r.metrics.get(key) for r in results])
                for key, label, kind, _ in METRIC_ROWS
                if key in COMPARISON_ROWS
            ],
        }
    # One outlook per distinct (data, outlook): usually all strategies share it.
    outlooks: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    for s, r in zip(sections, results, strict=True):
        key = json.dumps(r.outlook, sort_keys=True, default=str)
        if key not in seen:
            seen[key] = {"view": outlook_view(r.outlook), "for": [], "end": s["span"][1]}
            outlooks.append(seen[key])
        seen[key]["for"].append(s["name"])
    payload = {fid: f.to_plotly_json() for fid, f in figures.items()}  # {"data", "layout"}
    plotly_js = get_plotlyjs()
    if "</script" in plotly_js.lower():  # would end our <script> early; never true for plotly.js
        plotly_js = re.sub(r"</(script)", r"<\\/\1", plotly_js, flags=re.IGNORECASE)
    first = results[0]
    env = _environment()
    page = env.get_template("report.html").render(
        title=title or "BTC backtest report",
        css=Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
        plotly_js=Markup(plotly_js),
        figures_json=safe_json(payload),
        config_json=safe_json(PLOT_CONFIG),
        sections=sections,
        comparison=comparison,
        outlooks=outlooks,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=first.version,
        data=dict(first.data),
        months=list(MONTHS),
    )
    return write_text_atomic(path, page)  # a reader never sees half a report
