"""Results in a notebook (issue 13, section 2): ``result.stats`` in backtesting.py's order with
units, a buy-and-hold column, ``_repr_html_``, ``plot()``, and ``result.returns`` that QuantStats
takes as is; every figure that backtesting.py or QuantStats also computes is checked against
them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import quantstats as qs
from backtesting._stats import compute_stats  # the library's own statistics, no re-derivation

from backtests import BacktestConfig, run
from backtests.stats import LABELS
from strategies import Breakdown, OversoldBounce
from tests.conftest import real

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def result():
    return run(real("1d_binance"), Breakdown(), BacktestConfig(mode="both"))


def test_stats_labels_order_and_units(result) -> None:
    s = result.stats
    assert isinstance(s, pd.Series) and s.name == "breakdown"
    assert list(s.index) == list(LABELS)
    assert list(s.index[:8]) == ["Start", "End", "Duration", "Exposure Time [%]",
                                 "Equity Final [$]", "Equity Peak [$]", "Return [%]",
                                 "Buy & Hold Return [%]"]
    m = result.metrics
    assert s["Return [%]"] == m["total_return_pct"]
    assert s["Sharpe Ratio"] == m["sharpe"] and s["Sortino Ratio"] == m["sortino"]
    assert s["Return (Ann.) [%]"] == m["cagr_pct"]
    assert s["# Trades"] == m["n_trades"] == len(result.trades)
    assert s["Funding Paid [$]"] == m["funding_paid"]
    assert s["# Liquidations"] == m["n_liquidations"]
    assert s["Start"] == result.equity.index[0] and isinstance(s["Duration"], pd.Timedelta)
    losses = (result.trades["pnl"] < 0).to_numpy()
    longest = max((len(run) for run in "".join("L" if x else "." for x in losses).split(".")),
                  default=0)
    assert s["Max. Consecutive Losses"] == longest > 0


def test_buy_and_hold_column_has_its_own_sharpe_and_drawdown(result) -> None:
    t = result.stats_table
    assert list(t.columns) == ["breakdown", "Buy & Hold"]
    bh = t["Buy & Hold"]
    bench = result.benchmark
    r = bench.pct_change().dropna()
    r.index = r.index.tz_localize(None)
    assert bh["Sharpe Ratio"] == pytest.approx(qs.stats.sharpe(r, periods=365), rel=1e-9)
    assert bh["Max. Drawdown [%]"] == pytest.approx(
        100 * float((bench / bench.cummax() - 1).min()), rel=1e-12)
    assert bh["Return [%]"] == pytest.approx(result.metrics["buy_hold_return_pct"], rel=1e-12)
    assert bh["Exposure Time [%]"] == 100.0 and bh["# Trades"] is None
    assert bh["Sharpe Ratio"] != t.loc["Sharpe Ratio", "breakdown"]


def test_stats_agree_with_backtesting_py(result) -> None:
    """backtesting.py's compute_stats on our trades and equity: every figure both define alike."""
    tr = result.trades
    theirs_trades = pd.DataFrame({
        "Size": tr["size"] * tr["side"], "EntryBar": tr["entry_bar"], "ExitBar": tr["exit_bar"],
        "EntryPrice": tr["entry_price"], "ExitPrice": tr["exit_price"], "PnL": tr["pnl"],
        "ReturnPct": tr["return_pct"] / 100.0, "EntryTime": tr["entry_time"],
        "ExitTime": tr["exit_time"],
    })
    theirs_trades["Duration"] = theirs_trades["ExitTime"] - theirs_trades["EntryTime"]
    ohlc = result.prices.rename(columns=str.title)
    theirs = compute_stats(theirs_trades, result.equity.to_numpy(), ohlc, None)
    ours = result.stats
    for label in ("Start", "End", "Duration", "# Trades", "Max. Drawdown Duration",
                  "Avg. Drawdown Duration", "Max. Trade Duration", "Avg. Trade Duration"):
        assert ours[label] == theirs[label], label
    for label in ("Equity Final [$]", "Equity Peak [$]", "Return [%]", "Max. Drawdown [%]",
                  "Avg. Drawdown [%]", "Win Rate [%]", "Best Trade [%]", "Worst Trade [%]",
                  "Avg. Trade [%]", "Expectancy [%]", "SQN", "Kelly Criterion"):
        assert ours[label] == pytest.approx(theirs[label], rel=1e-9, abs=1e-12), label


def test_returns_go_into_quantstats_as_is(result, tmp_path: Path) -> None:
    r = result.returns
    assert isinstance(r.index, pd.DatetimeIndex) and r.index.tz is None
    assert len(r) == len(result.equity) - 1  # daily bars: one return per bar after the first
    m = result.metrics
    assert qs.stats.sharpe(r, periods=365) == pytest.approx(m["sharpe"], rel=1e-9)
    assert qs.stats.sortino(r, periods=365) == pytest.approx(m["sortino"], rel=1e-9)
    assert 100 * qs.stats.volatility(r, periods=365) == pytest.approx(m["volatility_pct"],
                                                                      rel=1e-9)
    assert 100 * qs.stats.max_drawdown(r) == pytest.approx(m["max_drawdown_pct"], rel=1e-9)
    assert 100 * qs.stats.comp(r) == pytest.approx(m["total_return_pct"], rel=1e-9)
    out = tmp_path / "qs.html"
    qs.reports.html(r, output=str(out), title="breakdown")
    text = out.read_text(encoding="utf-8")
    assert "Sharpe" in text and len(text) > 50_000


def test_returns_of_intraday_bars_are_daily(btc_hourly) -> None:
    res = run(btc_hourly, OversoldBounce(), BacktestConfig(mode="both"))
    r = res.returns
    days = pd.DatetimeIndex(res.equity.index.tz_localize(None).normalize().unique())
    assert r.index.equals(days)
    growth = float(np.prod(1 + r.to_numpy()))
    assert growth == pytest.approx(res.equity.iloc[-1] / res.equity.iloc[0], rel=1e-12)


def test_plot_is_a_figure_and_html_repr(result, tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = result.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 10_000
    html = result._repr_html_()
    assert "<table>" in html and "Sharpe Ratio" in html and "Buy &amp; Hold" in html
    assert f"{result.metrics['final_equity']:,.2f}" in html
    assert not math.isnan(result.stats["Avg. Drawdown [%]"])
