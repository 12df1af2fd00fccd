"""Strategy API, the two built-in strategies (causality, rules) and loading a user's file."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from backtests.config import BacktestConfig
from backtests.engines import bt as engine_bt
from backtests.engines import fast as engine_fast
from backtests.runner import run
from strategies import (
    Breakdown,
    OversoldBounce,
    Param,
    ParamError,
    Signals,
    Strategy,
    StrategyLoadError,
    load_strategy,
)
from tests.lookahead import assert_causal, ohlc_frame


def _arrays(strategy: Strategy):
    def f(df: pd.DataFrame) -> dict[str, np.ndarray]:
        s = strategy.signals(df)
        return {"entry": s.entry.astype(float), "exit": s.exit.astype(float), "stop": s.stop,
                "target": s.target}
    return f


def test_params_are_validated_and_coerced():
    s = OversoldBounce(rsi_period="21", oversold=25, trigger="either", use_stop="false")
    assert s.p.rsi_period == 21 and s.p.oversold == 25.0 and s.p.use_stop is False
    with pytest.raises(ParamError, match=r"unknown parameter 'rsi_perod'.*did you mean "
                                         r"'rsi_period'"):
        OversoldBounce(rsi_perod=14)
    with pytest.raises(ParamError, match="one of"):
        Breakdown(target="moon")
    with pytest.raises(ParamError, match=">= 2"):
        OversoldBounce(rsi_period=1)
    with pytest.raises(ParamError, match="expects int"):
        OversoldBounce(rsi_period=14.5)
    assert Breakdown().param_values["target"] == "level"
    # level parameters come from their one declaration (LevelParams)
    from indicators.levels import LevelParams
    assert Breakdown.params["buffer_atr"].default == LevelParams().buffer_atr
    assert Breakdown.params["major_score"].help == LevelParams.spec("major_score")["help"]
    assert OversoldBounce.params["atr_period"].default == LevelParams().atr_period


def test_conflicting_params_fail_at_construction():
    from strategies import ParamConflict

    with pytest.raises(ParamConflict, match="need deep < oversold < overbought"):
        OversoldBounce(deep=30, oversold=25)
    with pytest.raises(ParamConflict):
        OversoldBounce(oversold=75)          # above overbought 70
    assert issubclass(ParamConflict, ParamError)   # callers catching ParamError still do
    OversoldBounce(deep=10, oversold=25, overbought=80)


def test_bad_param_declaration_fails_at_class_creation():
    with pytest.raises(ParamError):
        # the class statement itself must fail: its default is not an int
        type("Bad", (Strategy,), {"params": {"n": Param("x", "an int", int)}})


@pytest.mark.shared_data
@pytest.mark.parametrize("strategy", [OversoldBounce(), Breakdown(),
                                      Breakdown(confluence_only=True, volume_confirm=True),
                                      Breakdown(target="flipped", target_at="centre"),
                                      OversoldBounce(trigger="bullish_close", near="wema",
                                                     exit_overbought=True)])
def test_signals_are_causal(btc_daily, strategy):
    df = btc_daily.loc["2020":"2023"]
    assert assert_causal(_arrays(strategy), df, cut_points=8) >= 8


@pytest.mark.parametrize("strategy", [OversoldBounce(trigger="either", near_pct=8),
                                      Breakdown(confirm_closes=1)])
def test_signals_are_causal_on_random_paths(strategy):
    df = ohlc_frame(700, "1d", seed=11, volatility=0.04)
    assert assert_causal(_arrays(strategy), df, cut_points=6) >= 6


@pytest.mark.shared_data
def test_breakdown_rules(btc_daily):
    s = Breakdown().signals(btc_daily)
    f = s.indicators
    short = s.entry == -1
    assert short.sum() > 20 and (s.entry == 1).sum() > 20
    assert f["breakdown"].to_numpy()[short].all()  # only on confirmed flips
    close = f["close"].to_numpy()
    assert (s.stop[short] > close[short]).all() and (s.target[short] < close[short]).all()
    expected_stop = (f["flipped_resistance_high"] + f["atr"]).to_numpy()[short]
    np.testing.assert_allclose(s.stop[short], expected_stop)
    assert all(t.startswith("breakdown -> ") for t in s.tags[short])
    # the reward:risk floor holds at every entry, net of the planning fees
    assert (f["planned_rr"].to_numpy()[s.entry != 0] >= 1.5).all()
    # targets are at least 1 ATR and 1 R away from the close
    risk = np.abs(close - s.stop)[short]
    dist = (close - s.target)[short]
    assert (dist >= np.maximum(f["atr"].to_numpy()[short], risk) - 1e-9).all()
    # confluence filter keeps a subset
    c = Breakdown(confluence_only=True).signals(btc_daily)
    assert (c.entry != 0).sum() < (s.entry != 0).sum()
    assert np.all((c.entry != 0) <= (s.entry != 0))
    # the near-edge stop sits inside the far-edge one; a lower floor admits more trades
    near = Breakdown(stop_at="zone_near").signals(btc_daily)
    both = (near.entry == -1) & short
    assert (near.stop[both] < s.stop[both]).all()
    loose = Breakdown(min_rr=0.5).signals(btc_daily)
    assert (loose.entry != 0).sum() > (s.entry != 0).sum()


@pytest.mark.shared_data
def test_bounce_rules(btc_daily_bitstamp):
    s = OversoldBounce().signals(btc_daily_bitstamp)
    f = s.indicators
    go = s.entry == 1
    assert go.sum() > 10 and not (s.entry == -1).any()
    rsi = f["rsi"].to_numpy()
    prev = np.concatenate([[np.nan], rsi[:-1]])
    assert (rsi[go] > 30).all() and (prev[go] <= 30).all()  # the cross trigger
    close = f["close"].to_numpy()
    assert (s.stop[go] < close[go]).all() and (s.target[go] > close[go]).all()
    assert (f["planned_rr"].to_numpy()[go] >= 1.5).all()
    assert all(" at " in t and " -> " in t for t in s.tags[go])
    deep_only = OversoldBounce(require_deep=True, min_rr=0).signals(btc_daily_bitstamp)
    every = OversoldBounce(min_rr=0).signals(btc_daily_bitstamp)
    assert 0 < (deep_only.entry == 1).sum() < (every.entry == 1).sum()
    assert (every.entry == 1).sum() > go.sum()  # the floor skips setups
    timed = OversoldBounce(max_bars=7)
    assert timed.signals(btc_daily_bitstamp).max_bars == 7


USER_FILE = textwrap.dedent('''
    import numpy as np
    import talib
    from strategies.base import Param, Signals, Strategy

    class RsiCross(Strategy):
        """Long when RSI crosses back above `level`, short when it falls below 100 - level."""
        name = "rsi_cross"
        params = {"period": Param(14, "RSI period", int, min=2),
                  "level": Param(30.0, "RSI level", min=1, max=49)}

        def signals(self, df):
            rsi = talib.RSI(df["close"].to_numpy(), self.p.period)
            prev = np.concatenate([[np.nan], rsi[:-1]])
            up = (prev <= self.p.level) & (rsi > self.p.level)
            down = (prev >= 100 - self.p.level) & (rsi < 100 - self.p.level)
            entry = np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)
            close = df["close"].to_numpy()
            return Signals.from_entries(entry, stop=close * (1 - 0.08 * entry))
''')


def test_user_strategy_file_runs_on_both_engines(tmp_path):
    path = tmp_path / "my_strats.py"
    path.write_text(USER_FILE)
    cls = load_strategy(f"{path}:RsiCross")
    assert cls.name == "rsi_cross" and cls.description.startswith("Long when RSI")
    assert load_strategy(str(path)) is not None  # the only subclass in the file
    strat = cls(period=10)
    df = ohlc_frame(600, "1d", seed=3, volatility=0.03)
    cfg = BacktestConfig(mode="both", leverage=2)
    fast = run(df, strat, cfg)
    slow = run(df, strat, BacktestConfig(**{**cfg.to_dict(), "engine": "backtrader"}))
    assert fast.metrics["n_trades"] > 5
    pd.testing.assert_frame_equal(fast.trades[["entry_bar", "exit_bar", "exit_reason"]],
                                  slow.trades[["entry_bar", "exit_bar", "exit_reason"]])
    assert slow.equity.iloc[-1] == pytest.approx(fast.equity.iloc[-1], rel=1e-9)


def test_loader_errors(tmp_path):
    assert load_strategy("breakdown") is Breakdown
    with pytest.raises(StrategyLoadError, match="did you mean 'breakdown'"):
        load_strategy("breakdwn")
    with pytest.raises(StrategyLoadError, match="not found"):
        load_strategy(str(tmp_path / "nope.py") + ":X")
    path = tmp_path / "s.py"
    path.write_text(USER_FILE)
    with pytest.raises(StrategyLoadError, match="defined there: RsiCross"):
        load_strategy(f"{path}:Missing")
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_xyz\n")
    with pytest.raises(StrategyLoadError, match="ModuleNotFoundError"):
        load_strategy(f"{broken}:X")


def test_engines_reject_bad_strategy_output():
    class Wrong(Strategy):
        def signals(self, df):
            return np.zeros(len(df))

    df = ohlc_frame(50, "1d", seed=1)
    with pytest.raises(TypeError, match="not Signals"):
        engine_fast.run_fast(df, Wrong(), BacktestConfig())
    with pytest.raises(TypeError, match="not Signals"):
        engine_bt.run_backtrader(df, Wrong(), BacktestConfig())


@pytest.mark.parametrize(
    ("field", "values", "msg"),
    [
        ("entry", [0, 255, 0, 0], "entry must be -1, 0 or \\+1; bar 1 holds 255"),  # int8 wraps
        ("entry", [0, 0, -2, 1], "bar 2 holds -2"),
        ("stop", [np.nan, np.nan, np.nan, 0.0], "stop must be a positive price or NaN; bar 3"),
        ("stop", [-np.inf] * 4, "bar 0 holds -inf"),
        ("target", [1.0, np.inf, np.nan, 2.0], "target must be a positive price or NaN; bar 1"),
        ("target", [5.0, 4.0, -1.0, np.nan], "bar 2 holds -1.0"),
    ],
)
def test_signals_bad_values_name_the_first_bad_bar(field: str, values: list, msg: str) -> None:
    arrays = {"entry": np.zeros(4, np.int8), "exit": np.zeros(4, bool),
              "stop": np.full(4, np.nan), "target": np.full(4, np.nan)}
    arrays[field] = np.array(values)
    with pytest.raises(ValueError, match=msg):
        Signals(**arrays).validate(4)
    if field == "entry":  # the shortcut that casts to int8 checks first too
        with pytest.raises(ValueError, match=msg):
            Signals.from_entries(np.array(values))


def test_signals_validate_keeps_good_values() -> None:
    entry = np.array([1, 0, -1, 0], dtype=np.int64)
    stop = np.array([np.nan, 90.0, 110.0, np.nan])
    sig = Signals.from_entries(entry, stop=stop, target=np.full(4, np.nan)).validate(4)
    assert sig.entry.dtype == np.int8 and sig.entry.tolist() == [1, 0, -1, 0]
    np.testing.assert_array_equal(sig.stop, stop)
    assert np.isnan(sig.target).all() and not sig.exit.any()
    empty = Signals.from_entries(np.zeros(0, np.int8)).validate(0)
    assert len(empty.entry) == 0


def test_breakdown_sides_planned_in_threads_equal_planned_one_by_one(btc_hourly, monkeypatch):
    import strategies.plan as plan_module
    from strategies.breakdown import Breakdown

    strat = Breakdown()
    monkeypatch.setattr(plan_module, "THREADED_BARS", 10**12)  # one by one
    alone = strat.signals(btc_hourly)
    monkeypatch.setattr(plan_module, "THREADED_BARS", 0)  # threads whenever 2 CPUs
    threaded = strat.signals(btc_hourly)
    assert (alone.entry != 0).sum() > 10
    np.testing.assert_array_equal(threaded.entry, alone.entry)
    np.testing.assert_array_equal(threaded.stop, alone.stop)
    np.testing.assert_array_equal(threaded.target, alone.target)
    assert list(threaded.tags) == list(alone.tags)
    pd.testing.assert_frame_equal(threaded.indicators, alone.indicators)
