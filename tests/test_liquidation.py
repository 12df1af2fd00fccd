"""Isolated-margin liquidation: price formula, precedence vs stops, gaps, both engines agree."""

from __future__ import annotations

import pytest

from backtests.config import BacktestConfig
from backtests.engines import bt as engine_bt
from backtests.engines import fast as engine_fast
from backtests.engines.fast import liquidation_price
from tests.test_engine_fast import FLAT, bars, sig


@pytest.mark.parametrize("lev", [2.0, 3.0, 10.0, 50.0])
def test_liquidation_price_leaves_exactly_maintenance_margin(lev):
    mm = 0.005
    for side in (1, -1):
        liq = liquidation_price(side, 100.0, lev, mm)
        margin = 100.0 / lev
        # margin + unrealised PnL at the liquidation price == maintenance margin there
        assert margin + side * (liq - 100.0) == pytest.approx(mm * liq, rel=1e-12)


def test_no_liquidation_for_1x_long_but_1x_short_can():
    assert liquidation_price(1, 100.0, 1.0, 0.005) != liquidation_price(1, 100.0, 1.0, 0.005)
    assert liquidation_price(-1, 100.0, 1.0, 0.005) == pytest.approx(200 / 1.005)


CASES = {
    # bar 2 crosses 90.45 (10x long liquidation price); no stop
    "plain": ([FLAT, FLAT, (100, 100, 85, 95), FLAT], {}, "liquidation", 100 * 0.9 / 0.995),
    # a stop above the liquidation price is hit first in the same bar
    "stop_protects": ([FLAT, FLAT, (100, 100, 85, 95), FLAT], {0: 95.0}, "stop", 95.0),
    # a stop below the liquidation price never gets the chance
    "stop_too_far": ([FLAT, FLAT, (100, 100, 85, 95), FLAT], {0: 88.0}, "liquidation",
                     100 * 0.9 / 0.995),
    # the bar opens below the liquidation price: isolated margin, closed at that price
    "gap": ([FLAT, FLAT, (80, 82, 78, 80), FLAT], {0: 95.0}, "liquidation", 100 * 0.9 / 0.995),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("engine", [engine_fast, engine_bt])
def test_liquidation_rules_on_both_engines(case, engine):
    rows, stops, reason, price = CASES[case]
    cfg = BacktestConfig(cash=1000, leverage=10, size=0.5, commission=0.001)
    trades, equity = engine.simulate(bars(rows), sig(len(rows), {0: 1}, stop=stops), cfg)
    assert list(trades["exit_reason"]) == [reason]
    assert trades["exit_price"].iloc[0] == pytest.approx(price, rel=1e-12)
    if reason == "liquidation":
        t = trades.iloc[0]
        assert t["exit_fee"] == pytest.approx(0.005 * t["size"] * price, rel=1e-12)
        margin = t["size"] * 100 / 10
        assert equity.iloc[-1] == pytest.approx(1000 - margin - t["entry_fee"], rel=1e-12)


@pytest.mark.parametrize("engine", [engine_fast, engine_bt])
def test_short_liquidation_on_both_engines(engine):
    rows = [FLAT, FLAT, (100, 112, 99, 105), FLAT]
    cfg = BacktestConfig(cash=1000, leverage=10, size=0.5, mode="short", liquidation_fee=0.01)
    trades, equity = engine.simulate(bars(rows), sig(4, {0: -1}), cfg)
    liq = 100 * 1.1 / 1.005
    t = trades.iloc[0]
    assert t["exit_reason"] == "liquidation" and t["exit_price"] == pytest.approx(liq)
    # liquidation fee above the maintenance rate: a little more than the margin is lost
    loss = t["size"] * (100 / 10 - 0.005 * liq + 0.01 * liq) + t["entry_fee"]
    assert equity.iloc[-1] == pytest.approx(1000 - loss, rel=1e-12)
