"""PNG charts of the squeeze (matplotlib, Agg, no pyplot state): survival heatmap, safe-leverage
curve and the liquidation map beside the price chart. They only draw computed results.

* :func:`survival_heatmap_png`: entry date (x) x leverage (y), coloured by how many days after
  the entry the position was liquidated (blank = survived the horizon);
* :func:`safe_leverage_png`: share of entries liquidated within the horizon, 1x..100x;
* :func:`liquidation_map_png`: close price with the S/R zones and the 200-week EMA, and beside it
  the heat strip of live modelled liquidation levels (labelled as a model).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless, whatever MPLBACKEND says

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from backtests.squeeze.liqmap import MODEL_NOTE, LiquidationMap
from backtests.squeeze.survival import CAVEAT, SqueezeResult

__all__ = ["liquidation_map_png", "safe_leverage_png", "squeeze_summary_png",
           "survival_heatmap_png"]

WIDTH, HEIGHT, DPI = 1600, 900, 150
UP, DOWN, BLUE, GREY = "#26a69a", "#ef5350", "#1f77b4", "#9e9e9e"


def _figure() -> Figure:
    fig = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def days_to_liquidation(res: SqueezeResult, side: str) -> np.ndarray:
    """(leverages, entries) float days from each position's opening to its liquidation bar's
    open (NaN = survived the horizon)."""
    bars = res.liq_bars[side]
    opens = res.index.as_unit("ns").asi8
    opened = opens[res.entry_bars] + (res.table["opened_at"].iloc[0] - res.table["entry_time"]
                                      .iloc[0]).value
    when = opens[np.maximum(bars, 0)]
    days = (when - opened[:, None]) / 86_400e9
    return np.where(bars >= 0, np.maximum(days, 0.0), np.nan).T


def survival_heatmap_png(res: SqueezeResult, path: str | Path, side: str = "long") -> Path:
    """Entry date x leverage, coloured by days to liquidation; writes ``path``."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    days = days_to_liquidation(res, side)
    times = res.index[res.entry_bars]
    x = np.arange(len(times) + 1)
    y = np.r_[res.leverages - 0.5, res.leverages[-1] + 0.5]
    mesh = ax.pcolormesh(x, y, np.ma.masked_invalid(days), cmap="inferno", shading="flat")
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label("days from entry to liquidation (blank: survived)")
    maxlev = res.table.loc[res.table["side"] == side, "max_leverage"].to_numpy()
    ax.step(np.arange(len(times)) + 0.5, np.minimum(maxlev, res.leverages[-1]), where="mid",
            color=BLUE, lw=1.2, label="max surviving leverage")
    ax.set_yscale("log")
    ax.set_ylim(res.leverages[0] - 0.1, res.leverages[-1] + 0.5)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}x"))
    ticks = np.linspace(0, len(times) - 1, min(8, len(times))).round().astype(int)
    ax.set_xticks(ticks + 0.5, [f"{times[i]:%Y-%m-%d}" for i in ticks], rotation=20,
                  fontsize=7)
    ax.set_ylabel("leverage (x)")
    ax.set_title(f"{side}s: leverage survival, horizon {res.horizon}", fontsize=10)
    ax.legend(loc="upper right", fontsize=7)
    fig.text(0.01, 0.01, CAVEAT, fontsize=6, color=GREY)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, path)


def safe_leverage_png(res: SqueezeResult, path: str | Path) -> Path:
    """Share of entries liquidated within the horizon, per leverage and side; writes ``path``."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    curve = res.curve()
    for side, colour in (("long", UP), ("short", DOWN)):
        c = curve[curve["side"] == side]
        if len(c):
            ax.plot(c["leverage"], c["liquidated_share"] * 100, color=colour,
                    label=f"{side}s ({c['entries'].iloc[0]} entries)")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}x"))
    ax.set_xlabel("leverage")
    ax.set_ylabel(f"% of entries liquidated within {res.horizon}")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Safe-leverage curve", fontsize=10)
    fig.text(0.01, 0.01, CAVEAT, fontsize=6, color=GREY)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, path)


def liquidation_map_png(df: pd.DataFrame, lmap: LiquidationMap, path: str | Path,
                        zones: pd.DataFrame | None = None, wema: pd.Series | None = None,
                        days: int = 180) -> Path:
    """Close price of the last ``days`` with the S/R ``zones`` nearest the price (``centre``,
    ``low``, ``high`` columns; 3 above and 3 below are drawn) and the 200-week EMA ``wema``, and
    beside it the live liquidation heat strip over the visible range +-20 %; writes ``path``."""
    fig = _figure()
    gs = fig.add_gridspec(1, 2, width_ratios=(4, 1), wspace=0.02)
    ax = fig.add_subplot(gs[0])
    strip_ax = fig.add_subplot(gs[1], sharey=ax)
    view = df[df.index > df.index[-1] - pd.Timedelta(days=days)]
    ax.fill_between(view.index, view["low"], view["high"], color=GREY, alpha=0.35, lw=0,
                    label="high-low")
    ax.plot(view.index, view["close"], color="black", lw=0.9, label="close")
    if wema is not None:
        w = wema.reindex(view.index)
        if w.notna().any():
            ax.plot(view.index, w, color=BLUE, lw=1.2, label="200-week EMA")
    lo_y, hi_y = view["low"].min() * 0.8, view["high"].max() * 1.2
    strip = lmap.strip(bins=80, lo=lo_y, hi=hi_y)
    if zones is not None and len(zones):
        below = zones[zones["centre"] <= lmap.price].tail(3)
        above = zones[zones["centre"] > lmap.price].head(3)
        for i, z in enumerate(pd.concat([below, above]).itertuples()):
            ax.axhspan(z.low, z.high, color="#ffb74d", alpha=0.35, lw=0,
                       label="S/R zones" if i == 0 else None)
    ax.axhline(lmap.price, color=GREY, lw=0.6, ls="--")
    ax.set_ylim(lo_y, hi_y)
    ax.set_ylabel("price (quote currency)")
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(f"Liquidation map as of {lmap.as_of:%Y-%m-%d} (positions opened in the last "
                 f"{lmap.window}): a model", fontsize=10)
    if len(strip):
        h = strip["high"] - strip["low"]
        scale = 1e6
        strip_ax.barh(strip["low"], strip["long"] / scale, height=h, align="edge", color=UP,
                      label="longs liquidated")
        strip_ax.barh(strip["low"], -strip["short"] / scale, height=h, align="edge",
                      color=DOWN, label="shorts liquidated")
    strip_ax.axhline(lmap.price, color=GREY, lw=0.6, ls="--")
    strip_ax.axvline(0, color=GREY, lw=0.5)
    strip_ax.set_xlabel("volume-weighted (M), shorts left / longs right", fontsize=7)
    strip_ax.tick_params(labelleft=False, labelsize=7)
    strip_ax.legend(loc="upper right", fontsize=6)
    fig.text(0.01, 0.01, f"{MODEL_NOTE}.\n{CAVEAT}.", fontsize=6, color=GREY)
    fig.subplots_adjust(left=0.09, right=0.98, top=0.93, bottom=0.12)
    return _save(fig, path)


def squeeze_summary_png(sq: dict, path: str | Path) -> Path:
    """The report's squeeze as one PNG, drawn from a stored
    :func:`backtests.squeeze.summary.squeeze_summary` dict (nothing recomputed): the long
    survival heatmap (top), the safe-leverage curve and the liquidation-map strip (bottom)."""
    fig = _figure()
    gs = fig.add_gridspec(2, 2, height_ratios=(1.1, 1), hspace=0.45, wspace=0.25)
    ax = fig.add_subplot(gs[0, :])
    levs = np.asarray(sq["heatmap_leverages"], dtype=float)
    days = np.array([[np.nan if d is None else d for d in row]
                     for row in sq["days_to_liquidation"]["long"]], dtype=float)
    times = pd.DatetimeIndex(sq["entry_time"])
    mesh = ax.pcolormesh(np.arange(len(times) + 1), np.arange(len(levs) + 1),
                         np.ma.masked_invalid(days.T), cmap="inferno", shading="flat")
    fig.colorbar(mesh, ax=ax, pad=0.01).set_label("days to liquidation", fontsize=7)
    ax.set_yticks(np.arange(len(levs)) + 0.5, [f"{v:g}x" for v in levs], fontsize=6)
    ticks = np.linspace(0, len(times) - 1, min(7, len(times))).round().astype(int)
    ax.set_xticks(ticks + 0.5, [f"{times[i]:%Y-%m-%d}" for i in ticks], fontsize=7)
    ax.set_title(f"Longs: leverage survival, horizon {sq['horizon']} (blank: survived)",
                 fontsize=9)
    cax = fig.add_subplot(gs[1, 0])
    for side, colour in (("long", UP), ("short", DOWN)):
        if side in sq["curve"]:
            share = np.array([np.nan if v is None else v for v in sq["curve"][side]], float)
            cax.plot(sq["curve"]["leverage"], share * 100, color=colour, label=f"{side}s")
    cax.set_xscale("log")
    cax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}x"))
    cax.set_ylim(0, 100)
    cax.set_ylabel(f"% liquidated within {sq['horizon']}", fontsize=7)
    cax.set_title("Safe-leverage curve", fontsize=9)
    cax.legend(fontsize=7)
    cax.grid(alpha=0.3)
    m = sq["map"]
    max_ax = fig.add_subplot(gs[1, 1])
    low = np.asarray(m["low"], float)
    h = np.asarray(m["high"], float) - low
    max_ax.barh(low, np.nan_to_num(np.asarray(m["long"], float)) / 1e6, height=h, align="edge",
                color=UP, label="longs")
    max_ax.barh(low, -np.nan_to_num(np.asarray(m["short"], float)) / 1e6, height=h,
                align="edge", color=DOWN, label="shorts")
    max_ax.axhline(m["price"], color=BLUE, ls="--", lw=0.8)
    max_ax.set_title(f"Liquidation map {m['as_of'][:10]} (a model)", fontsize=9)
    max_ax.set_xlabel("volume-weighted (M); shorts left, longs right", fontsize=7)
    max_ax.tick_params(labelsize=7)
    fig.text(0.01, 0.01, f"{m['note']}.\n{sq['caveat']}.", fontsize=6, color=GREY)
    fig.subplots_adjust(left=0.07, right=0.97, top=0.95, bottom=0.12)
    return _save(fig, path)
