"""backtrader engine: headless, never silently rejects an order, same hand-computed trades."""

from __future__ import annotations

import numpy as np
import pytest

from backtests.config import BacktestConfig
from backtests.engines import bt as engine_bt
from backtests.engines import fast as engine_fast
from strategies.base import Signals
from tests.test_engine_fast import FLAT, _Always, bars, sig


def test_matplotlib_is_headless():
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"


def test_same_hand_computed_trades_as_fast_engine():
    df = bars([FLAT, (100, 104, 99, 103), (103, 112, 102, 110), FLAT, (100, 101, 90, 95), FLAT])
    s = sig(6, {0: 1, 2: 1}, stop={0: 95.0, 2: 92.0}, target={0: 111.0, 2: 120.0})
    cfg = BacktestConfig(commission=0.001, slippage_bps=10, funding_rate=0.0001)
    tf, ef = engine_fast.simulate(df, s, cfg)
    tb, eb = engine_bt.simulate(df, s, cfg)
    assert list(tb["exit_reason"]) == ["target", "stop"]
    for col in ("entry_bar", "exit_bar", "side"):
        assert tb[col].tolist() == tf[col].tolist()
    for col in ("size", "entry_price", "exit_price", "entry_fee", "exit_fee", "funding", "pnl"):
        np.testing.assert_allclose(tb[col], tf[col], rtol=1e-12)
    np.testing.assert_allclose(eb, ef, rtol=1e-12)


def test_entry_on_last_bar_is_closed_at_the_close():
    df = bars([FLAT, FLAT, (100, 105, 99, 104)])
    s = sig(3, {1: 1})
    tb, eb = engine_bt.simulate(df, s, BacktestConfig(commission=0.001))
    _, ef = engine_fast.simulate(df, s, BacktestConfig(commission=0.001))
    assert list(tb["exit_reason"]) == ["end"]
    assert tb["exit_price"].iloc[0] == pytest.approx(104.0, rel=1e-15)  # bt averages fills
    assert tb["entry_bar"].iloc[0] == tb["exit_bar"].iloc[0] == 2
    assert eb.iloc[-1] == pytest.approx(ef.iloc[-1], rel=1e-12)


@pytest.mark.shared_data
@pytest.mark.parametrize(("lev", "size"), [(1.0, 1.0), (2.0, 1.0), (10.0, 0.2)])
def test_all_in_orders_are_never_rejected(btc_daily, lev, size):
    # all-in entries every 10 bars, alternating sides: each must fill (a rejection would raise)
    n = len(btc_daily)
    entry = np.zeros(n, np.int8)
    entry[::10] = 1
    entry[5::10] = -1
    s = Signals.from_entries(entry)
    cfg = BacktestConfig(mode="both", leverage=lev, size=size, commission=0.001,
                         slippage_bps=5)
    tb, eb = engine_bt.simulate(btc_daily, s, cfg)
    tf, ef = engine_fast.simulate(btc_daily, s, cfg)
    assert len(tb) == len(tf) > 500
    assert eb.iloc[-1] == pytest.approx(ef.iloc[-1], rel=1e-6)


def test_an_unaffordable_order_raises_instead_of_vanishing(monkeypatch):
    # oversize every order 2x beyond what the cash allows: backtrader must not drop it quietly
    real = engine_bt.size_position
    monkeypatch.setattr(engine_bt, "size_position", lambda *a: 2 * real(*a))
    with pytest.raises(engine_bt.BacktraderRejection, match="entry order"):
        engine_bt.simulate(bars([FLAT] * 4), sig(4, {0: 1}), BacktestConfig())


def test_run_backtrader_returns_a_backtest_result():
    df = bars([FLAT, (100, 110, 99, 110), (110, 121, 109, 121)])
    res = engine_bt.run_backtrader(df, _Always(), BacktestConfig(commission=0,
                                                                 engine="backtrader"))
    assert res.engine == "backtrader" and res.metrics["n_trades"] == 1
    assert res.trades["exit_reason"].tolist() == ["end"]
