"""Static PNG charts of one backtest result (matplotlib, Agg), for chats, papers and READMEs.

:func:`render_png` writes three 1600x900 images (150 dpi) into a directory:

* ``price.png``: close price (candles when there are few bars), the 200-week EMA, the S/R zones at
  the end date, flip/retest markers, entries (▲ long, ▼ short), exits, liquidations, and
  entry→exit lines green for winners and red for losers; log price axis when BTC moved > 5x.
* ``rsi.png``: RSI with the strategy's oversold/overbought thresholds.
* ``equity.png``: equity vs. buy-and-hold (top) and the underwater drawdown in % (bottom).

Like the HTML report it only reads the result; nothing is recomputed. The Agg backend is set
explicitly and figures are drawn on ``FigureCanvasAgg`` without pyplot (no global figure state),
so this works headless, next to backtrader (which forces Tk) and in threads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # headless, whatever MPLBACKEND says (backtrader forces Tk otherwise)

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from backtests.reports.chart_data import EVENTS_SHOWN
from backtests.reports.html import LEVELS_DRAWN
from backtests.reports.tables import nearest_levels, thresholds

if TYPE_CHECKING:  # pragma: no cover
    from backtests.results import BacktestResult

WIDTH, HEIGHT, DPI = 1600, 900, 150
UP, DOWN, BLUE, GREY, ORANGE, PURPLE = (
    "#26a69a",
    "#ef5350",
    "#2962ff",
    "#8d8d8d",
    "#ff9800",
    "#7e57c2",
)
MARGINS = dict(left=0.065, right=0.985, top=0.9, bottom=0.07)  # of the 1600x900 figure
CANDLES_MAX = 400  # above this many bars the price is drawn as a close line (candles unreadable)


def _event_price_column(events: pd.DataFrame | None) -> str | None:
    """The column giving an event's price (price, else the level, else a close)."""
    if events is None or len(events) == 0 or not {"time", "kind"} <= set(events.columns):
        return None
    return next((c for c in ("price", "level", "close", "break_close") if c in events), None)


def _event_style(kind: str) -> tuple[str, bool]:
    """Colour of an event kind and whether it is drawn as a ring: retests orange rings, flips
    diamonds coloured by the new role (green: became support, red: became resistance)."""
    k = kind.lower()
    if "retest" in k:
        return ORANGE, True
    if k.endswith("to_support"):
        return UP, False
    if k.endswith("to_resistance"):
        return DOWN, False
    return PURPLE, False


def _t(text: Any) -> str:
    """Text safe for matplotlib: a ``$`` would start mathtext (user strings, dollar amounts)."""
    return str(text).replace("$", r"\$")


def _x(index: Any) -> np.ndarray:
    """Timestamps as naive-UTC datetime64 for matplotlib's date axis."""
    idx = pd.DatetimeIndex(index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.to_numpy()


def _money(v: float, _pos: Any = None) -> str:
    """$ tick labels: $950, $5k, $12.5k, $1.2M."""
    if not math.isfinite(v):
        return ""
    a = abs(v)
    if a >= 1e6:
        s = f"{a / 1e6:,.1f}M"
    elif a >= 1e3:
        s = f"{a / 1e3:,.1f}k".replace(".0k", "k")
    else:
        s = f"{a:,.0f}"
    return ("−" if v < 0 else "") + r"\$" + s


def _figure(rows: int = 1, ratios: tuple[int, ...] = (1,),
            right: float | None = None) -> tuple[Figure, list[Any]]:
    # A fixed layout: every chart has the same frame, so matplotlib's constrained layout (which
    # measured every tick label twice per figure: ~40 % of the PNG time) is not needed.
    fig = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(**{**MARGINS, **({"right": right} if right else {})})
    axes = fig.subplots(rows, 1, sharex=True,
                        gridspec_kw={"height_ratios": list(ratios), "hspace": 0.08})
    axes = list(np.atleast_1d(axes))
    for ax in axes:
        ax.grid(True, color="#e6e6e6", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(labelsize=8)
    locator = mdates.AutoDateLocator(minticks=5, maxticks=12)
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    return fig, axes


def _money_axis(ax: Any, lo: float, hi: float) -> None:
    """Dollar-formatted y axis; logarithmic when the series spans more than 5x."""
    if lo > 0 and hi / lo > 5:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(_money))


def _title(ax: Any, result: BacktestResult, what: str, summary: str = "") -> None:
    """Left-aligned title (strategy · chart · data span) with a grey summary line under it."""
    d = result.data
    span = f"{str(d.get('start', ''))[:10]} → {str(d.get('end', ''))[:10]}"
    ax.set_title(
        _t(f"{result.strategy} · {what} · BTC {d.get('timeframe') or ''} · {span}"),
        fontsize=11,
        loc="left",
        pad=18 if summary else 6,
    )
    if summary:
        ax.text(
            0.0,
            1.012,
            _t(summary),
            transform=ax.transAxes,
            ha="left",
            va="bottom",
            fontsize=8,
            color="#555555",
        )


def _save(fig: Figure, path: Path) -> Path:
    # zlib level 1: ~4x faster than PIL's default 6 for ~15 % larger files
    fig.savefig(path, dpi=DPI, facecolor="white", pil_kwargs={"compress_level": 1})
    return path


def _candles(ax: Any, prices: pd.DataFrame, x: np.ndarray) -> None:
    width = (np.median(np.diff(x)).astype("timedelta64[ns]") * 0.7) if len(x) > 1 else None
    up = (prices["close"] >= prices["open"]).to_numpy()
    colours = np.where(up, UP, DOWN)
    ax.vlines(x, prices["low"], prices["high"], colors=colours, linewidth=0.8)
    body_lo = np.minimum(prices["open"], prices["close"]).to_numpy()
    body_h = np.abs(prices["close"] - prices["open"]).to_numpy()
    ax.bar(x, body_h, width, bottom=body_lo, color=colours, linewidth=0)


def _zone_labels(ax: Any, zones: list[tuple[float, str, str]], gap: float = 0.03) -> None:
    """Label S/R zones in the right margin, beside the axis, pushed apart so that no two labels
    overlap (``gap``: minimum distance in axes fraction, ~2 text lines)."""
    if not zones:
        return
    lo, hi = ax.get_ylim()
    log = ax.get_yscale() == "log"

    def frac(v: float) -> float:
        if log:
            return (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return (v - lo) / (hi - lo)

    items = [(frac(c), t, col) for c, t, col in sorted(zones) if 0 <= frac(c) <= 1]
    if not items:
        return
    placed: list[float] = []
    for y, _, _ in items:  # push up until each label clears the one below
        placed.append(max(y, placed[-1] + gap) if placed else y)
    # then centre the stack on the zones it labels, inside the axes
    shift = sum(y for y, _, _ in items) / len(items) - sum(placed) / len(placed)
    shift = min(max(shift, -placed[0]), 1 - placed[-1]) if placed[-1] - placed[0] <= 1 else 0
    for (y, text, colour), p in zip(items, placed, strict=True):
        ax.annotate(_t(text), (1.0, y), xycoords="axes fraction",
                    xytext=(1.012, min(max(p + shift, 0.0), 1.0)), textcoords="axes fraction",
                    fontsize=7, color=colour, va="center", ha="left", annotation_clip=False,
                    arrowprops=dict(arrowstyle="-", color=colour, lw=0.6, shrinkA=0, shrinkB=0))


def price_png(result: BacktestResult, path: Path) -> Path:
    """Price + 200w EMA + S/R zones + events + trades (see the module docstring)."""
    prices = result.prices
    x = _x(prices.index)
    fig, (ax,) = _figure(right=0.89)  # room for the S/R labels
    if len(prices) <= CANDLES_MAX:
        _candles(ax, prices, x)
    else:
        ax.plot(x, prices["close"], color="#37474f", linewidth=0.8, label="Close")
    ind = result.indicator_columns("wema200")
    if "wema200" in ind and ind["wema200"].notna().any():
        ax.plot(_x(ind.index), ind["wema200"], color=ORANGE, linewidth=2.0, label="200-week EMA")
    lv = nearest_levels(result.levels, float(prices["close"].iloc[-1]), LEVELS_DRAWN)
    zones: list[tuple[float, str, str]] = []  # (centre, label, colour), labelled after the axis
    if len(lv):
        x0 = x[int(len(x) * 0.8)]
        for _, z in lv.iterrows():
            role = str(z.get("role", ""))
            c = UP if "support" in role else DOWN if "resist" in role else GREY
            ax.fill_between([x0, x[-1]], z["low"], z["high"], color=c, alpha=0.18, linewidth=0)
            centre = float(z.get("centre", (z["low"] + z["high"]) / 2))
            zones.append((centre, f"{role} ${centre:,.0f}", c))
    ev = result.events
    col = _event_price_column(ev)
    hidden = 0
    if col is not None:
        for kind, g in ev.groupby(ev["kind"].astype(str)):
            if len(g) > EVENTS_SHOWN:  # hundreds of markers would hide the price: counted only
                hidden += len(g)
                continue
            colour, ring = _event_style(kind)
            ax.scatter(_x(g["time"]), g[col], marker="o" if ring else "D", s=22 if ring else 26,
                       facecolors="none" if ring else colour, edgecolors=colour, linewidths=1.0,
                       zorder=4, alpha=0.85, label=_t(f"{kind.replace('_', ' ')} ({len(g)})"))
    tr = result.trades
    if len(tr):
        et, xt = _x(tr["entry_time"]), _x(tr["exit_time"])
        win = (tr["pnl"] > 0).to_numpy()
        segments = [
            [
                (mdates.date2num(et[i]), tr["entry_price"].iat[i]),
                (mdates.date2num(xt[i]), tr["exit_price"].iat[i]),
            ]
            for i in range(len(tr))
        ]
        ax.add_collection(
            LineCollection(
                segments, colors=np.where(win, UP, DOWN), linewidths=1.4, linestyles=":", zorder=3
            )
        )
        long_ = (tr["side"] > 0).to_numpy()
        liq = (tr["exit_reason"] == "liquidation").to_numpy()
        ax.scatter(
            et[long_],
            tr["entry_price"][long_],
            marker="^",
            s=40,
            color=BLUE,
            edgecolors="white",
            linewidths=0.6,
            zorder=5,
            label="Long entry",
        )
        ax.scatter(
            et[~long_],
            tr["entry_price"][~long_],
            marker="v",
            s=40,
            color="#d81b60",
            edgecolors="white",
            linewidths=0.6,
            zorder=5,
            label="Short entry",
        )
        ax.scatter(
            xt[~liq],
            tr["exit_price"][~liq],
            marker="x",
            s=22,
            color="#263238",
            linewidths=1.1,
            zorder=5,
            label="Exit",
        )
        if liq.any():
            ax.scatter(
                xt[liq],
                tr["exit_price"][liq],
                marker="*",
                s=220,
                color="#b71c1c",
                edgecolors="white",
                linewidths=0.6,
                zorder=6,
                label="Liquidation",
            )
    _money_axis(ax, float(prices["low"].min()), float(prices["high"].max()))
    ax.set_ylabel("Price (USD)", fontsize=9)
    _zone_labels(ax, zones)
    m = result.metrics
    handles, labels = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color=UP, linestyle=":", linewidth=1.4),
        Line2D([], [], color=DOWN, linestyle=":", linewidth=1.4),
    ]
    labels += ["Winning trade", "Losing trade"]
    ax.legend(handles, labels, loc="upper left", fontsize=7, ncol=2, framealpha=0.9)
    summary = (
        f"return {m.get('total_return_pct', float('nan')):+.1f}%  ·  "
        f"buy & hold {m.get('buy_hold_return_pct', float('nan')):+.1f}%  ·  "
        f"{len(tr)} trades  ·  {0 if lv is None else len(lv)} S/R zones at the end date"
        + (f"  ·  {hidden} flip/retest events not drawn (see the HTML report)" if hidden else "")
    )
    _title(ax, result, "price, levels and trades", summary)
    ax.set_xlim(x[0], x[-1])
    return _save(fig, path)


RSI_WINDOW = 500  # bars shown in rsi.png: the whole history would be a solid band


def _rsi_levels(params: dict[str, Any]) -> tuple[list[tuple[str, float]], float, float]:
    th = thresholds(params)
    low = [v for n, v in th if "oversold" in n.lower()]
    high = [v for n, v in th if "overbought" in n.lower()]
    return th, (max(low) if low else 30.0), (min(high) if high else 70.0)


def rsi_png(result: BacktestResult, path: Path, window: int = RSI_WINDOW) -> Path:
    """Price (top) and RSI with the strategy's thresholds (bottom) over the last ``window``
    bars, with the entries made in that window."""
    ind = result.indicator_columns("rsi")
    prices = result.prices.iloc[-window:]
    fig, (ax_p, ax) = _figure(2, (2, 3))
    x = _x(prices.index)
    if len(prices) <= CANDLES_MAX:
        _candles(ax_p, prices, x)
    else:
        ax_p.plot(x, prices["close"], color="#37474f", linewidth=0.9)
    tr = result.trades
    if len(tr):
        sel = tr[tr["entry_time"] >= prices.index[0]]
        long_ = (sel["side"] > 0).to_numpy()
        et = _x(sel["entry_time"])
        ax_p.scatter(et[long_], sel["entry_price"][long_], marker="^", s=50, color=BLUE, zorder=5)
        ax_p.scatter(
            et[~long_], sel["entry_price"][~long_], marker="v", s=50, color="#d81b60", zorder=5
        )
    ax_p.yaxis.set_major_formatter(FuncFormatter(_money))
    ax_p.set_ylabel("Price (USD)", fontsize=9)
    summary = f"last {len(prices)} bars"
    if "rsi" in ind and ind["rsi"].notna().any():
        r = ind["rsi"].iloc[-window:]
        rsi = r.to_numpy(dtype=float)
        xr = _x(r.index)
        th, lo, hi = _rsi_levels(result.params)
        ax.plot(xr, rsi, color=PURPLE, linewidth=1.1, label="RSI")
        ax.fill_between(
            xr,
            rsi,
            lo,
            where=rsi < lo,
            color=UP,
            alpha=0.35,
            linewidth=0,
            interpolate=True,
            label=_t(f"below {lo:g} (oversold)"),
        )
        ax.fill_between(
            xr,
            rsi,
            hi,
            where=rsi > hi,
            color=DOWN,
            alpha=0.35,
            linewidth=0,
            interpolate=True,
            label=_t(f"above {hi:g} (overbought)"),
        )
        for name, v in th:
            ax.axhline(v, color=GREY, linestyle="--", linewidth=0.8)
            ax.annotate(
                _t(f"{name} {v:g}"),
                (1.0, v),
                xycoords=("axes fraction", "data"),
                fontsize=7,
                color="#555555",
                ha="right",
                va="bottom",
                bbox=dict(facecolor="white", alpha=0.85, edgecolor="none", pad=0.6),
            )
        ax.legend(loc="upper left", fontsize=7, ncol=3)
        finite = rsi[np.isfinite(rsi)]
        if len(finite):
            summary += f"  ·  RSI now {finite[-1]:.1f}"
    else:
        ax.text(0.5, 0.5, "no RSI in this result", transform=ax.transAxes, ha="center")
    ax.set_ylim(0, 100)
    ax.set_ylabel("RSI", fontsize=9)
    ax.set_xlim(x[0], x[-1])
    _title(ax_p, result, "recent price and RSI", summary)
    return _save(fig, path)


def equity_png(result: BacktestResult, path: Path) -> Path:
    """Equity vs. buy-and-hold (top) and the drawdown in % (bottom)."""
    eq = result.equity.astype(float)
    x = _x(eq.index)
    fig, (ax, ax_dd) = _figure(2, (3, 1))
    values = [eq]
    if result.benchmark is not None and len(result.benchmark):
        bm = result.benchmark.astype(float)
        ax.plot(_x(bm.index), bm, color=GREY, linewidth=1.0, label="Buy & hold")
        values.append(bm)
    ax.plot(x, eq, color=BLUE, linewidth=1.6, label="Strategy equity")
    both = pd.concat(values)
    _money_axis(ax, float(both.min()), float(both.max()))
    dd = (eq / eq.cummax() - 1.0).to_numpy() * 100.0
    ax_dd.fill_between(x, dd, 0, color=DOWN, alpha=0.3, linewidth=0)
    ax_dd.plot(x, dd, color=DOWN, linewidth=0.8)
    if len(dd) and dd.min() < 0:
        k = int(np.argmin(dd))
        ax_dd.plot([x[k]], [dd[k]], "o", color=DOWN, markersize=4, zorder=5)
        ax_dd.annotate(f"max {dd[k]:.1f}%".replace("-", "−"), (x[k], dd[k]), fontsize=7,
                       color=DOWN, xytext=(6, 2), textcoords="offset points", ha="left",
                       va="bottom", bbox=dict(facecolor="white", alpha=0.85, edgecolor="none",
                                              pad=0.8), zorder=6)
    ax_dd.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.0f}%"))
    ax_dd.set_ylabel("Drawdown", fontsize=9)
    ax.set_ylabel("Equity (USD)", fontsize=9)
    m = result.metrics
    summary = (
        f"final ${m.get('final_equity', float('nan')):,.0f}  ·  "
        f"return {m.get('total_return_pct', float('nan')):+.1f}%  ·  "
        f"buy & hold {m.get('buy_hold_return_pct', float('nan')):+.1f}%  ·  "
        f"max DD {m.get('max_drawdown_pct', float('nan')):.1f}%  ·  "
        f"Sharpe {m.get('sharpe', float('nan')):.2f}"
    )
    _title(ax, result, "equity vs. buy & hold", summary)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlim(x[0], x[-1])
    return _save(fig, path)


def render_png(result: BacktestResult, directory: str | Path) -> list[Path]:
    """Write ``price.png``, ``rsi.png`` and ``equity.png`` (1600x900 px) into ``directory``.

    Returns the three paths, in that order. The directory is created if needed.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    return [
        price_png(result, out / "price.png"),
        rsi_png(result, out / "rsi.png"),
        equity_png(result, out / "equity.png"),
    ]
