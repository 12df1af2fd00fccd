"""Parity: the fast engine and backtrader produce the same trades and final equity.

Both strategies x parameter sets (long-only, short mode, 1x, 3x, 10x that liquidates, commission
and slippage on/off, funding) on the real daily candles and on seeded random paths. Same trades
means: entry/exit bar, side and exit reason equal; size, prices, fees, funding and PnL within
1e-9 relative; final equity within 1e-6 relative. Signals are computed once per strategy and data
set and fed to both engines (the engines are what is compared).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from backtests.config import BacktestConfig
from backtests.engines import bt as engine_bt
from backtests.engines import fast as engine_fast
from strategies.base import ExitRules, Signals
from strategies.bounce import OversoldBounce
from strategies.breakdown import Breakdown
from tests.lookahead import ohlc_frame

CONFIGS = {
    "long_1x": dict(mode="long"),
    "long_1x_free": dict(mode="long", commission=0.0, slippage_bps=0.0),
    "short_3x_slip": dict(mode="short", leverage=3, size=0.5, slippage_bps=10),
    "both_3x_funding": dict(mode="both", leverage=3, size=0.5, funding_rate=0.0001),
    "both_10x_liq": dict(mode="both", leverage=10, size=0.3, slippage_bps=5),
    "risk_2pct": dict(mode="both", sizing="risk", size=0.02, leverage=5),
}
# the strategy variants: stops off at 10x so liquidations really happen
STRATEGIES = {
    "bounce": lambda: OversoldBounce(),
    "bounce_nostop_time": lambda: OversoldBounce(use_stop=False, max_bars=15,
                                                 exit_overbought=True, trigger="either"),
    "breakdown": lambda: Breakdown(),
    "breakdown_nostop_r": lambda: Breakdown(use_stop=False, target="r_multiple",
                                            confirm_closes=1),
}
PLAN = [  # (strategy, config) pairs: every config and every strategy at least twice
    ("bounce", "long_1x"), ("bounce", "long_1x_free"), ("bounce_nostop_time", "both_10x_liq"),
    ("bounce", "risk_2pct"),
    ("breakdown", "long_1x"), ("breakdown", "short_3x_slip"), ("breakdown", "both_3x_funding"),
    ("breakdown_nostop_r", "both_10x_liq"), ("breakdown", "risk_2pct"),
]

_signals: dict[tuple[str, str], Signals] = {}


def _sig(data_key: str, df: pd.DataFrame, strat_key: str) -> Signals:
    key = (data_key, strat_key)
    if key not in _signals:
        _signals[key] = engine_fast.prepare(df, STRATEGIES[strat_key](), BacktestConfig())
    return _signals[key]


def assert_same(df: pd.DataFrame, sig: Signals, cfg: BacktestConfig) -> pd.DataFrame:
    tf, ef = engine_fast.simulate(df, sig, cfg)
    tb, eb = engine_bt.simulate(df, sig, cfg)
    exact = ["entry_bar", "exit_bar", "side", "exit_reason"]
    assert len(tf) == len(tb), f"{len(tf)} fast trades vs {len(tb)} backtrader trades"
    pd.testing.assert_frame_equal(tf[exact], tb[exact])
    for col in ("size", "entry_price", "exit_price", "entry_fee", "exit_fee", "funding", "pnl",
                "liquidation_price"):
        np.testing.assert_allclose(tb[col], tf[col], rtol=1e-9, atol=1e-9 * cfg.cash,
                                   err_msg=col)
    assert eb.iloc[-1] == pytest.approx(ef.iloc[-1], rel=1e-6)
    np.testing.assert_allclose(eb.to_numpy(), ef.to_numpy(), rtol=1e-9)
    return tf


@pytest.mark.shared_data
@pytest.mark.parametrize(("strat", "conf"), PLAN)
def test_parity_binance_daily(btc_daily, strat, conf):
    df = btc_daily.loc["2019":]  # ~7 years: enough trades, keeps backtrader's share of time low
    trades = assert_same(df, _sig("binance", df, strat), BacktestConfig(**CONFIGS[conf]))
    assert len(trades) > 0
    if conf == "both_10x_liq":
        assert (trades["exit_reason"] == "liquidation").any()


@pytest.mark.shared_data
@pytest.mark.parametrize(("strat", "conf"), PLAN[::2])
def test_parity_bitstamp_daily(btc_daily_bitstamp, strat, conf):
    df = btc_daily_bitstamp.loc["2013":"2018"]
    trades = assert_same(df, _sig("bitstamp", df, strat), BacktestConfig(**CONFIGS[conf]))
    assert len(trades) > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("conf", ["long_1x", "both_10x_liq", "short_3x_slip"])
def test_parity_random_paths(seed, conf):
    df = ohlc_frame(1200, "1d", seed=seed, volatility=0.04, gap_fraction=0.0)
    strat = "breakdown_nostop_r" if conf == "both_10x_liq" else "breakdown"
    trades = assert_same(df, engine_fast.prepare(df, STRATEGIES[strat](), BacktestConfig()),
                         BacktestConfig(**CONFIGS[conf]))
    assert len(trades) > 0


@pytest.mark.parametrize("seed", [4, 5])
def test_parity_random_signals_with_gaps(seed):
    # random entries/stops/targets on a path with price gaps between bars: every exit kind
    df = ohlc_frame(800, "1d", seed=seed, volatility=0.05)
    rng = np.random.default_rng(seed)
    o = df["open"].to_numpy()
    n = len(df)
    df["open"] = o * np.exp(rng.normal(0, 0.02, n))  # gap the opens off the previous close
    df["high"] = np.maximum(df["high"], df["open"])
    df["low"] = np.minimum(df["low"], df["open"])
    c = df["close"].to_numpy()
    entry = rng.choice(np.array([-1, 0, 1], np.int8), n, p=[0.05, 0.9, 0.05])
    sig = Signals(entry=entry, exit=rng.random(n) < 0.02,
                  stop=c * (1 - entry * rng.uniform(0.03, 0.15, n)),  # some beyond liquidation
                  target=c * (1 + entry * rng.uniform(0.05, 0.3, n)), max_bars=8)
    trades = assert_same(df, sig, BacktestConfig(mode="both", leverage=12, size=0.25,
                                                 slippage_bps=8, funding_rate=0.0002))
    assert {"stop", "target", "liquidation", "reverse", "time"} <= set(trades["exit_reason"])


# -- managed exits (strategies.base.ExitRules): every kind, both engines --------------------------

EXIT_KINDS = {  # name -> (rules, the exit reason it must produce somewhere)
    "stop_close_pct": (dict(close_stop_pct=0.05), "stop_close"),
    "stop_close_atr": (dict(close_stop_atr=1.0, close_stop=np.nan), "stop_close"),
    "stop_pct": (dict(stop_pct=0.04), "stop"),
    "stop_atr": (dict(stop_atr=1.5), "stop"),
    "trail_pct": (dict(trail_pct=0.06), "trail"),
    "trail_atr_close": (dict(trail_atr=2.0, trail_on="close"), "trail_close"),
    "trail_line": (dict(trail_line="line"), "trail"),
    "breakeven": (dict(breakeven_pct=0.03, stop_pct=0.05), "breakeven"),
    "breakeven_close": (dict(breakeven_pct=0.03, close_stop_pct=0.05, breakeven_on="close"),
                        "breakeven_close"),
    "partial": (dict(partial_pct=0.04, partial_size=0.5, stop_pct=0.05), "partial"),
    "all": (dict(partial_pct=0.04, partial_size=0.3, stop_pct=0.08, trail_pct=0.05,
                 breakeven_pct=0.02, close_stop_pct=0.04), "trail"),
}
EXIT_CONFIGS = {
    "long_1x_free": dict(mode="long", commission=0.0, slippage_bps=0.0),
    "short_3x_slip": dict(mode="short", leverage=3, size=0.5, slippage_bps=10),
    "both_20x_liq_funding": dict(mode="both", leverage=20, size=0.25, slippage_bps=8,
                                 funding_rate=0.0002),
    "risk_1pct": dict(mode="both", sizing="risk", size=0.01, leverage=5),
}


def _exit_signals(seed: int, rules: dict) -> tuple[pd.DataFrame, Signals]:
    """Random entries and targets on a gapping random path, with ``rules`` for every entry."""
    df = ohlc_frame(500, "1d", seed=seed, volatility=0.05)
    rng = np.random.default_rng(seed)
    n = len(df)
    df["open"] = df["open"].to_numpy() * np.exp(rng.normal(0, 0.02, n))  # gaps
    df["high"] = np.maximum(df["high"], df["open"])
    df["low"] = np.minimum(df["low"], df["open"])
    c = df["close"].to_numpy()
    rules = dict(rules)
    if rules.get("trail_line") == "line":  # the lowest close of 10 bars (long-side support)
        rules["trail_line"] = pd.Series(c).rolling(10).min().to_numpy()
    if any(k.endswith("_atr") for k in rules):
        rules["atr"] = talib.ATR(df["high"].to_numpy(), df["low"].to_numpy(), c, 14)
    entry = rng.choice(np.array([-1, 0, 1], np.int8), n, p=[0.05, 0.9, 0.05])
    sig = Signals(entry=entry, exit=rng.random(n) < 0.01, stop=np.full(n, np.nan),
                  target=c * (1 + entry * rng.uniform(0.1, 0.3, n)),
                  exits=ExitRules(**rules))
    return df, sig


@pytest.mark.parametrize("conf", list(EXIT_CONFIGS))
@pytest.mark.parametrize("kind", list(EXIT_KINDS))
def test_parity_managed_exits(kind, conf):
    rules, reason = EXIT_KINDS[kind]
    seen: set[str] = set()
    for seed in (4, 5):
        df, sig = _exit_signals(seed, rules)
        seen |= set(assert_same(df, sig, BacktestConfig(**EXIT_CONFIGS[conf]))["exit_reason"])
    if conf == "both_20x_liq_funding":  # stops beyond the liquidation price do not protect
        assert "liquidation" in seen
    else:
        assert reason in seen, f"{kind} never exited by {reason!r}: {sorted(seen)}"
