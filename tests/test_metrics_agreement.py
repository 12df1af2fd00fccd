"""One metrics implementation: a sweep row and a full result agree exactly, on synthetic data
(no shared files needed), for whole runs and for walk-forward windows, with every exit kind."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from backtests.config import BacktestConfig
from backtests.engines.fast import build_trades, run_fast
from backtests.metrics import CORE_KEYS, compute_metrics, periods_per_year
from backtests.tuning.evaluate import BacktestPayload, evaluate_backtest, simulate_window
from backtests.tuning.overfit import return_moments
from data.frame import to_canonical
from strategies.base import Param, Signals, Strategy


class Dice(Strategy):
    """Seeded random entries both ways with stops, targets and a time stop (not causal on
    purpose: only the bookkeeping is under test)."""

    name = "dice"
    params: ClassVar = {"seed": Param(0, "random seed", int, min=0),
                        "every": Param(6, "mean bars between entries", int, min=2)}

    def signals(self, df: pd.DataFrame) -> Signals:
        rng = np.random.default_rng(self.p.seed)
        n = len(df)
        close = df["close"].to_numpy()
        entry = np.where(rng.random(n) < 1 / self.p.every, rng.choice([-1, 1], n), 0)
        exit_ = rng.random(n) < 0.05
        stop = np.where(entry > 0, close * 0.96, close * 1.04)
        target = np.where(rng.random(n) < 0.5, np.where(entry > 0, close * 1.05, close * 0.95),
                          np.nan)
        return Signals(entry=entry.astype(np.int8), exit=exit_ & (entry == 0), stop=stop,
                       target=target, max_bars=12)


def _frame(n: int, freq: str, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = np.r_[close[0], close[:-1]]
    idx = pd.date_range("2021-01-01", periods=n, freq=freq, tz="UTC", name="timestamp")
    df = to_canonical(pd.DataFrame({
        "open": open_, "high": np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, n)),
        "low": np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, n)), "close": close,
        "volume": np.ones(n)}, index=idx))
    df.attrs["timeframe"] = {"D": "1d", "h": "1h"}[freq]
    return df


CONFIGS = [BacktestConfig(),
           BacktestConfig(leverage=20, size=0.5, slippage_bps=5, funding_rate=0.0003),
           BacktestConfig(mode="long", sizing="fixed", size=0.2)]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("freq", ["D", "h"])
def test_sweep_row_equals_full_result(cfg: BacktestConfig, freq: str) -> None:
    df = _frame(700, freq)
    for seed in range(3):
        full = run_fast(df, Dice(seed=seed), cfg)
        reasons = set(full.trades["exit_reason"])
        row = evaluate_backtest(BacktestPayload(df=df, strategy_cls=Dice, config=cfg),
                                {"seed": seed})
        assert full.metrics["n_trades"] > 20
        for k in CORE_KEYS:
            if k in full.metrics:
                assert row[k] == pytest.approx(full.metrics[k], rel=1e-12, abs=1e-12,
                                               nan_ok=True), (k, seed)
        moments = return_moments(np.diff(full.equity.to_numpy()) / full.equity.to_numpy()[:-1])
        assert row["skew"] == pytest.approx(moments["skew"], rel=1e-9)
        assert row["kurtosis"] == pytest.approx(moments["kurtosis"], rel=1e-9)
    assert {"stop", "signal", "time"} <= reasons  # both fill kinds (open and intrabar) seen


def test_windowed_sweep_row_equals_compute_metrics_on_the_window() -> None:
    df = _frame(600, "D")
    cfg = CONFIGS[1]
    pay = BacktestPayload(df=df, strategy_cls=Dice, config=cfg, start=250, end=450)
    row = evaluate_backtest(pay, {"seed": 4})
    equity, raw, sig = simulate_window(pay, {"seed": 4})
    lo = pay.start - 1
    trades = build_trades(pay.frame(), raw, cfg, sig.tags)
    trades[["entry_bar", "exit_bar"]] -= lo
    eq = pd.Series(equity[lo:], index=df.index[lo:450])
    ref = compute_metrics(eq, trades, None, "1d", cash=cfg.cash)
    assert ref["n_trades"] > 5 and ref["periods_per_year"] == periods_per_year("1d")
    for k in CORE_KEYS:
        if k in ref:
            assert row[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-12, nan_ok=True), k
