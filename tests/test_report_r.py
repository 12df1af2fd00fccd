"""The report shows each strategy's trades in R multiples (issue 18), read from the saved trades."""

from __future__ import annotations

from backtests import BacktestConfig, run
from backtests.metrics import r_distribution
from backtests.reports.html import render_html
from strategies import Breakdown


def test_r_multiples_card(btc_daily, tmp_path):
    res = run(btc_daily, Breakdown(), BacktestConfig())
    assert res.metrics["n_r_trades"] > 20
    path = tmp_path / "report.html"
    render_html([res], path)
    html = path.read_text()
    assert "trades in R multiples" in html
    assert f"{res.metrics['expectancy_r']:.4f}" in html
    dist = r_distribution(res.trades)
    assert int(dist["trades"].sum()) == res.metrics["n_r_trades"]
    for label, row in dist.iterrows():  # every bin's count is on the page
        assert f"<td>{label.replace('<', '&lt;').replace('>', '&gt;')}</td>" in html
        assert f'<td class="num">{int(row.trades)}</td>' in html
