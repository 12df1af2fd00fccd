"""Sweep and walk-forward pages: the run report's style, offline, re-rendered by
``btc-backtest report DIR`` from the saved results alone."""

from __future__ import annotations

import re

from click.testing import CliRunner

from backtests.cli import main
from backtests.reports.format import fmt
from backtests.tuning.sweep import run_sweep
from backtests.tuning.walkforward import format_span, walk_forward
from strategies.loader import builtin_strategies
from tests.conftest import real

EVIL = "<b>x</b>"


def _offline(text: str) -> None:
    assert "Lightweight Charts" in text and "plotly" not in text.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text)


def test_report_command_rerenders_a_saved_sweep_and_walk_forward(tmp_path):
    df = real("1d_binance").iloc[-1500:]
    cls = builtin_strategies()["oversold_bounce"]
    sweep = run_sweep(df, cls, {"rsi_period": [10, 14], "oversold": [25.0, 30.0]},
                      executor="serial")
    sweep.data["source"] = EVIL
    sweep.save(tmp_path / "sw")
    wf = walk_forward(df, cls, {"rsi_period": [10, 14], "oversold": [25.0, 30.0]},
                      train=500, test=250)
    wf.save(tmp_path / "wf")
    res = CliRunner().invoke(main, ["report", str(tmp_path / "sw"), str(tmp_path / "wf"),
                                    "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    sw_html = (tmp_path / "out" / "sw" / "report.html").read_text(encoding="utf-8")
    _offline(sw_html)
    assert EVIL not in sw_html and "&lt;b&gt;x&lt;/b&gt;" in sw_html
    assert sw_html.count("<tr><td class=\"num\">") >= 4  # the top sets, one row each
    best = sweep.table.iloc[0]
    assert fmt(best["total_return_pct"], "pct") in sw_html
    assert 'class="data heatmap"' in sw_html and 'id="sweep-equity"' in sw_html
    wf_html = (tmp_path / "out" / "wf" / "report.html").read_text(encoding="utf-8")
    _offline(wf_html)
    assert wf_html.count('<tr class="window"') == len(wf.windows)
    for _, w in wf.windows.iterrows():
        assert format_span(w["test_start"], w["test_end"]) in wf_html
    assert "stitched out of sample" in wf_html and 'id="wf-equity"' in wf_html
