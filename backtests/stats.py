"""A backtest's statistics as a notebook user expects them: labelled, with units, in
backtesting.py's order, next to buy and hold; plus daily returns for QuantStats and a figure.

Built on :attr:`BacktestResult.metrics <backtests.results.BacktestResult>` (the one metrics
implementation, :func:`backtests.metrics.compute_metrics`); this module only adds what a
backtesting.py user also expects and the metrics do not hold, each defined as backtesting.py
defines it (cross-checked in ``tests/test_stats.py``):

* ``Avg. Drawdown [%]`` / ``Avg. Drawdown Duration``: mean depth / length of every drawdown
  (peak to recovery, or to the last bar); ``Max. Drawdown Duration`` likewise the longest;
* ``Avg. Trade [%]``: the *geometric* mean of the trades' returns; ``Expectancy [%]``: their
  arithmetic mean (``metrics["avg_trade_pct"]``);
* ``Max./Avg. Trade Duration``: exit time - entry time;
* ``SQN`` = sqrt(trades) x mean(PnL) / std(PnL) (ddof 1), as backtesting.py; ``SQN (R)`` is
  ``metrics["sqn"]``, Van Tharp's on R multiples (trades with a stop only);
  ``Kelly Criterion`` = win rate - (1 - win rate) / (mean winning PnL / mean losing |PnL|);
* ``Max. Consecutive Losses``: the longest run of losing trades (PnL < 0).

Where our definitions differ from backtesting.py's on purpose they keep ours and say so in the
label's docstring: ``Return (Ann.) [%]`` is the CAGR over the calendar span (365-day years),
volatility, Sharpe and Sortino are annualised from per-bar returns with 365 days a year (as
QuantStats with ``periods=365`` computes them), the profit factor is gross profit / gross loss
in money.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtests.metrics import bar_returns, compute_metrics, drawdown_periods
from data.frame import timeframe_of

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

    from backtests.results import BacktestResult

#: The labels of :func:`stats`, in order (backtesting.py's, then ours).
LABELS: tuple[str, ...] = (
    "Start", "End", "Duration", "Exposure Time [%]", "Equity Final [$]", "Equity Peak [$]",
    "Return [%]", "Buy & Hold Return [%]", "Return (Ann.) [%]", "Volatility (Ann.) [%]",
    "Sharpe Ratio", "Sortino Ratio", "Calmar Ratio", "Max. Drawdown [%]", "Avg. Drawdown [%]",
    "Max. Drawdown Duration", "Avg. Drawdown Duration", "# Trades", "Win Rate [%]",
    "Best Trade [%]", "Worst Trade [%]", "Avg. Trade [%]", "Max. Trade Duration",
    "Avg. Trade Duration", "Profit Factor", "Expectancy [%]", "SQN", "SQN (R)",
    "Kelly Criterion",
    "Max. Consecutive Losses", "# Liquidations", "Funding Paid [$]", "Fees Paid [$]",
)


def _ceil(td: pd.Timedelta | None, bar: str) -> pd.Timedelta | None:
    """A duration rounded up to the bar's resolution (days on daily bars), as backtesting.py
    shows durations."""
    if td is None or pd.isna(td):
        return None
    return td.ceil("D" if bar[-1] in "dwM" else pd.Timedelta(bar).resolution_string)


def _drawdowns(equity: pd.Series, bar: str
               ) -> tuple[float, pd.Timedelta | None, pd.Timedelta | None]:
    """(mean depth %, longest, mean duration) over every drawdown of ``equity``."""
    runs = drawdown_periods(equity, top=len(equity))
    if runs.empty:
        return math.nan, None, None
    days = runs["duration_days"]
    return (float(runs["depth_pct"].mean()), _ceil(pd.Timedelta(days=float(days.max())), bar),
            _ceil(pd.Timedelta(days=float(days.mean())), bar))


def _max_losing_streak(pnl: np.ndarray) -> int:
    best = run = 0
    for loss in pnl < 0:
        run = run + 1 if loss else 0
        best = max(best, run)
    return best


def _trade_extras(trades: pd.DataFrame, bar: str) -> dict[str, Any]:
    pnl = trades["pnl"].to_numpy(dtype=np.float64)
    ret = trades["return_pct"].to_numpy(dtype=np.float64) / 100.0
    n = len(pnl)
    dur = trades["exit_time"] - trades["entry_time"]
    out: dict[str, Any] = {
        "Avg. Trade [%]": (float(np.exp(np.mean(np.log1p(ret)))) - 1.0) * 100.0
        if n and (ret > -1).all() else (math.nan if not n else -100.0),
        "Max. Trade Duration": _ceil(dur.max(), bar) if n else None,
        "Avg. Trade Duration": _ceil(dur.mean(), bar) if n else None,
        "Max. Consecutive Losses": _max_losing_streak(pnl),
    }
    std = float(np.std(pnl, ddof=1)) if n > 1 else math.nan
    out["SQN"] = math.sqrt(n) * float(np.mean(pnl)) / std if n > 1 and std > 0 else math.nan
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    if n and len(wins) and len(losses):
        win_rate = len(wins) / n
        out["Kelly Criterion"] = win_rate - (1 - win_rate) / (wins.mean() / -losses.mean())
    else:
        out["Kelly Criterion"] = math.nan
    return out


def _column(m: dict[str, Any], equity: pd.Series, extras: dict[str, Any] | None,
            bar: str) -> list[Any]:
    avg_dd, max_dd_dur, avg_dd_dur = _drawdowns(equity, bar)
    extras = extras or {}
    idx = equity.index
    values = {
        "Start": idx[0], "End": idx[-1], "Duration": idx[-1] - idx[0],
        "Exposure Time [%]": m.get("exposure_pct"),
        "Equity Final [$]": m.get("final_equity"),
        "Equity Peak [$]": float(equity.max()),
        "Return [%]": m.get("total_return_pct"),
        "Buy & Hold Return [%]": m.get("buy_hold_return_pct"),
        "Return (Ann.) [%]": m.get("cagr_pct"),
        "Volatility (Ann.) [%]": m.get("volatility_pct"),
        "Sharpe Ratio": m.get("sharpe"),
        "Sortino Ratio": m.get("sortino"),
        "Calmar Ratio": m.get("calmar"),
        "Max. Drawdown [%]": m.get("max_drawdown_pct"),
        "Avg. Drawdown [%]": avg_dd,
        "Max. Drawdown Duration": max_dd_dur,
        "Avg. Drawdown Duration": avg_dd_dur,
        "# Trades": m.get("n_trades"),
        "Win Rate [%]": m.get("win_rate_pct"),
        "Best Trade [%]": m.get("best_trade_pct"),
        "Worst Trade [%]": m.get("worst_trade_pct"),
        "Profit Factor": m.get("profit_factor"),
        "Expectancy [%]": m.get("avg_trade_pct"),
        "SQN (R)": m.get("sqn"),
        "# Liquidations": m.get("n_liquidations"),
        "Funding Paid [$]": m.get("funding_paid"),
        "Fees Paid [$]": m.get("fees_paid"),
        **extras,
    }
    return [values.get(k) for k in LABELS]


def stats(result: BacktestResult) -> pd.Series:
    """The strategy's statistics, labelled with units, in backtesting.py's order
    (:data:`LABELS`); an object Series named after the strategy (times as Timestamps,
    durations as Timedeltas, missing values as None/NaN)."""
    bar = timeframe_of(result.prices)
    col = _column(result.metrics, result.equity, _trade_extras(result.trades, bar), bar)
    return pd.Series(col, index=list(LABELS), name=result.strategy, dtype=object)


def buy_and_hold_stats(result: BacktestResult) -> pd.Series:
    """The same statistics for buying and holding on the same bars (``result.benchmark``: one
    position, so its own Sharpe, drawdowns and exposure; trade rows are left empty)."""
    bench = result.benchmark
    cash = float(result.config.get("cash", bench.iloc[0]))
    m = compute_metrics(bench, result.trades.iloc[:0], bench,
                        timeframe_of(result.prices), cash=cash)
    m["exposure_pct"] = 100.0
    for k in ("n_trades", "n_liquidations", "funding_paid", "fees_paid", "win_rate_pct",
              "best_trade_pct", "worst_trade_pct", "profit_factor", "avg_trade_pct"):
        m[k] = None
    return pd.Series(_column(m, bench, None, timeframe_of(result.prices)), index=list(LABELS),
                     name="Buy & Hold",
                     dtype=object)


def stats_table(result: BacktestResult) -> pd.DataFrame:
    """:func:`stats` and :func:`buy_and_hold_stats` side by side (columns: the strategy's
    name, ``Buy & Hold``)."""
    return pd.concat([stats(result), buy_and_hold_stats(result)], axis=1)


def daily_returns(result: BacktestResult) -> pd.Series:
    """The strategy's simple returns per UTC day (per bar for daily or longer bars), as
    QuantStats takes them: a float Series on a tz-naive DatetimeIndex of UTC dates, named after
    the strategy; intraday bars are compounded into days (``qs.reports.html(returns)``)."""
    eq = result.equity
    tf = timeframe_of(result.prices)
    if tf[-1] in "dwM":
        r = bar_returns(eq)
    else:
        daily = eq.resample("1D").last().dropna()
        first = pd.Series([float(eq.iloc[0])], index=[eq.index[0].floor("D") - pd.Timedelta(
            days=1)])
        r = pd.concat([first, daily]).pct_change().dropna()
    r = r.copy()
    r.index = r.index.tz_convert("UTC").tz_localize(None)
    return r.rename(result.strategy)


def _fmt(value: Any, label: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, pd.Timedelta):
        return f"{value.days:,} days" + (f" {value.seconds // 3600} h" if value.seconds else "")
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:,.2f}" if ("[" in label) else f"{value:,.3f}"
    return str(value)


def stats_html(result: BacktestResult) -> str:
    """An HTML table of :func:`stats_table` (thousands separators, units in the labels)."""
    table = stats_table(result)
    head = "".join(f"<th>{escape(str(c))}</th>" for c in table.columns)
    rows = "".join(
        f"<tr><th style='text-align:left'>{escape(label)}</th>"
        + "".join(f"<td style='text-align:right'>{_fmt(v, label)}</td>" for v in row)
        + "</tr>"
        for label, row in zip(table.index, table.to_numpy(), strict=True))
    data = result.data
    title = (f"<p><b>{escape(result.strategy)}</b> on "
             f"{escape(str(data.get('source') or 'candles'))}, "
             f"{str(data.get('start'))[:10]} to {str(data.get('end'))[:10]} "
             f"({data.get('rows'):,} bars, {result.engine} engine)</p>")
    return f"{title}<table><tr><th></th>{head}</tr>{rows}</table>"


def plot(result: BacktestResult) -> Figure:
    """A matplotlib Figure: equity and buy and hold (quote currency, log scale) over the
    drawdown of each (%). Made without pyplot, so no window opens and nothing stays registered;
    a notebook shows it inline."""
    from matplotlib.figure import Figure  # matplotlib loads only when a plot is asked for

    fig = Figure(figsize=(10, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for series, label, color in ((result.equity, result.strategy, "tab:blue"),
                                 (result.benchmark, "Buy & Hold", "tab:gray")):
        x = series.index.tz_convert("UTC").tz_localize(None)
        top.plot(x, series.to_numpy(), label=label, color=color, linewidth=1.2)
        dd = (series / series.cummax() - 1.0) * 100.0
        bottom.plot(x, dd.to_numpy(), color=color, linewidth=1.0)
    top.set_yscale("log")
    top.set_ylabel("equity [$]")
    top.legend(loc="upper left")
    top.set_title(f"{result.strategy}: {result.metrics.get('total_return_pct', math.nan):,.1f} %"
                  f" vs buy and hold {result.metrics.get('buy_hold_return_pct', math.nan):,.1f} %")
    bottom.set_ylabel("drawdown [%]")
    bottom.set_xlabel("UTC")
    return fig
