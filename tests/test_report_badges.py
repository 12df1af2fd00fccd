"""Trust badges: the look-ahead audit run with every job, saved with the result, shown in the
report's header (a leaky strategy gets a red badge)."""

from __future__ import annotations

import pandas as pd

from backtests.config import BacktestConfig
from backtests.job import run_job
from backtests.reports.badges import audit_badge, badges, data_badges
from backtests.results import BacktestResult
from strategies.loader import builtin_strategies
from tests.conftest import real
from tests.test_audit import CentredMean  # leaky on purpose: a centred mean


def test_run_job_audits_each_strategy_and_the_badge_says_so(tmp_path):
    df = real("1d_binance").iloc[-900:]
    honest = builtin_strategies()["oversold_bounce"]()
    results = run_job(df, [honest, CentredMean()], BacktestConfig())
    ok, leak = (r.checks["lookahead"] for r in results)
    assert ok["passed"] is True and len(ok["cuts"]) == 3 and ok["first_leak"] is None
    assert leak["passed"] is False and "changes when data ends" in leak["first_leak"]
    assert audit_badge(results[0])["status"] == "ok"
    assert audit_badge(results[1])["status"] == "bad"
    loaded = BacktestResult.load(results[1].save(tmp_path / "r"))  # checks are saved
    assert loaded.checks == results[1].checks
    labels = [b["label"] for b in badges(results)]
    assert any(lbl.endswith("LOOK-AHEAD") for lbl in labels)
    assert f"data {results[0].data['sha256'][:12]}" in labels


def test_data_badges_name_gaps_and_a_short_warm_up():
    df = real("1d_binance").iloc[-400:]
    df = df.drop(df.index[100:103])  # three missing days
    r = run_job(df, [builtin_strategies()["oversold_bounce"]()], BacktestConfig(),
                check_lookahead=False)[0]
    assert r.checks == {}
    found = {b["label"]: b for b in data_badges(r)}
    gap = next(b for k, b in found.items() if "gap" in k)
    assert "3 bar(s) missing" in gap["detail"]
    assert audit_badge(r)["label"].endswith("not audited")


def test_no_warning_on_long_clean_data():
    r = run_job(real("1d_binance"), [builtin_strategies()["oversold_bounce"]()],
                BacktestConfig(), check_lookahead=False)[0]
    first = r.trades["entry_time"].min() if len(r.trades) else None
    warnings = [b["label"] for b in data_badges(r)]
    assert not any("gap" in w for w in warnings)
    if first is not None and (first - r.prices.index[0]) >= pd.Timedelta(days=1400):
        assert warnings == []
