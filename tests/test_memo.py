"""Indicator results shared between the parameter sets of a sweep (indicators.memo): the same
values as computing each call, copies handed out, and only calls on the frame's own columns
with hashable parameters shared."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import talib

from backtests.config import BacktestConfig
from backtests.tuning.evaluate import BacktestPayload, evaluate_backtest
from backtests.tuning.executors import SerialExecutor, evaluate_all
from data.errors import DataError
from indicators import atr, core, ema, rsi, sma
from indicators.memo import IndicatorMemo, memoised, sharing
from strategies.base import Param, Signals, Strategy


@pytest.fixture
def frame(btc_daily: pd.DataFrame) -> pd.DataFrame:
    # the frame strategies see in a sweep
    return BacktestPayload(df=btc_daily, strategy_cls=object, config=BacktestConfig()).frame()


def test_shared_calls_give_the_computed_values_as_copies(frame: pd.DataFrame) -> None:
    memo = IndicatorMemo(frame)
    close = frame["close"].to_numpy()
    with sharing(memo):
        first = rsi(frame["close"].to_numpy(), 14)
        first[:20] = -1.0  # a strategy writing into its result changes nobody else's
        second = rsi(frame["close"].to_numpy(), 14)
        series = rsi(frame["close"], 14)
        again = rsi(frame["close"], 14)
        other = [ema(close, 20), sma(close, 20),
                 atr(frame["high"].to_numpy(), frame["low"].to_numpy(), close, 14)]
        other2 = [ema(close, 20), sma(close, 20),
                  atr(frame["high"].to_numpy(), frame["low"].to_numpy(), close, 14)]
    np.testing.assert_array_equal(second, talib.RSI(close, 14))
    assert second is not first
    assert memo.misses == 5 and memo.hits == 5  # ndarray and Series calls are separate
    assert isinstance(series, pd.Series) and series.name == "rsi_14"
    assert series.index.equals(frame.index) and again is not series
    np.testing.assert_array_equal(again.to_numpy(), second)
    for a, b, ref in zip(other, other2, [talib.EMA(close, 20), talib.SMA(close, 20), talib.ATR(
            frame["high"].to_numpy(), frame["low"].to_numpy(), close, 14)], strict=True):
        np.testing.assert_array_equal(a, ref)
        np.testing.assert_array_equal(b, ref)


def test_only_the_frames_own_columns_and_hashable_values_are_shared(frame: pd.DataFrame
                                                                    ) -> None:
    memo = IndicatorMemo(frame)
    close = frame["close"].to_numpy()
    derived = close * 1.0
    with sharing(memo):
        for _ in range(2):
            np.testing.assert_array_equal(rsi(derived, 9), talib.RSI(close, 9))
            np.testing.assert_array_equal(rsi(close[1:], 9), talib.RSI(close[1:], 9))
            np.testing.assert_array_equal(
                rsi(pd.Series(close, index=frame.index.copy(deep=True)), 9),
                talib.RSI(close, 9))
    assert memo.hits == 0 and memo.misses == 0
    with sharing(memo):
        rsi(close, 14)
        with pytest.raises(DataError, match="period must be an integer"):
            rsi(close, 14.0)  # equal to 14 but another call: still an error
        with pytest.raises(DataError, match="period must be an integer"):
            rsi(close, 14.0)
    assert memo.misses == 1


def test_nothing_shared_outside_sharing_or_past_the_limit(frame: pd.DataFrame) -> None:
    calls = []

    @memoised
    def double(x: np.ndarray, k: int) -> np.ndarray:
        calls.append(k)
        return x * k

    close = frame["close"].to_numpy()
    double(close, 2)
    double(close, 2)
    assert calls == [2, 2]
    memo = IndicatorMemo(frame, max_bytes=close.nbytes)
    with sharing(memo):
        for k in (2, 2, 3, 3):
            np.testing.assert_array_equal(double(close, k), close * k)
    assert calls == [2, 2, 2, 3, 3] and memo.bytes == close.nbytes  # 3's did not fit
    with sharing(None):
        double(close, 2)
    assert calls[-1] == 2 and len(calls) == 6


def test_unstorable_results_are_not_shared(frame: pd.DataFrame) -> None:
    calls = []

    @memoised
    def stats(x: np.ndarray) -> dict:
        calls.append(1)
        return {"mean": float(x.mean())}

    memo = IndicatorMemo(frame)
    with sharing(memo):
        a = stats(frame["close"].to_numpy())
        a["mean"] = 0.0
        b = stats(frame["close"].to_numpy())
    assert len(calls) == 2 and b["mean"] == frame["close"].mean()


def test_sweep_payload_shares_one_memo_per_process(frame: pd.DataFrame) -> None:
    pay = BacktestPayload(df=frame, strategy_cls=object, config=BacktestConfig())
    assert pay.memo() is pay.memo() and pay.memo().frame is pay.frame()
    assert pay.__getstate__()["_memo"] is None  # workers build their own


class _RsiCross(Strategy):
    """Long when the RSI crosses back above ``level`` (indicators.rsi on the close)."""

    name = "rsi_cross_memo_test"
    params: ClassVar[dict[str, Param]] = {"period": Param(14, "bars", int, min=2),
                                          "level": Param(30.0, "RSI level")}

    def signals(self, df: pd.DataFrame) -> Signals:
        r = rsi(df["close"].to_numpy(), self.p.period)
        up = (r > self.p.level) & (np.r_[np.nan, r[:-1]] <= self.p.level)
        return Signals.from_entries(np.where(up, 1, 0), exit=r > 70)


def test_a_sweep_computes_each_distinct_rsi_once(btc_daily: pd.DataFrame,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class CountingTalib:
        @staticmethod
        def RSI(close: np.ndarray, timeperiod: int) -> np.ndarray:  # TA-Lib's names
            calls.append(timeperiod)
            return talib.RSI(close, timeperiod)

    space = [{"period": p, "level": lv} for p in (9, 14) for lv in (25.0, 30.0, 35.0)]
    pay = BacktestPayload(df=btc_daily, strategy_cls=_RsiCross, config=BacktestConfig())
    monkeypatch.setattr(core, "_talib", lambda: CountingTalib)
    shared = evaluate_all(evaluate_backtest, pay, space, executor=SerialExecutor())
    assert sorted(calls) == [9, 14]
    assert pay.memo().hits == 4 and pay.memo().misses == 2
    calls.clear()
    # each set with a payload of its own, nothing shared: the same rows
    alone = [evaluate_backtest(BacktestPayload(df=btc_daily, strategy_cls=_RsiCross,
                                               config=BacktestConfig()), p) for p in space]
    assert len(calls) == 6 and shared == alone


def test_strategies_with_the_same_zones_share_one_engine_run(frame: pd.DataFrame,
                                                             engine_runs: list[int]) -> None:
    from indicators.flips import flips
    from indicators.levels import LevelParams

    runs = engine_runs
    alone = flips(frame)
    memo = IndicatorMemo(frame)
    with sharing(memo):
        first = flips(frame)
        # other ranking parameters, the same zones and flips: the same engine run
        second = flips(frame, params=LevelParams(major_score=3.0))
        first.bars.loc[first.bars.index[100:], "support"] = -1.0  # writes its own copy only
        first.bars["extra"] = 1.0
        third = flips(frame, buffer_atr=0.5)  # other flip rule: its own run
    assert runs == [len(frame)] * 3  # alone, first, third (second shared)
    assert second.params.major_score == 3.0 and third.params.buffer_atr == 0.5
    pd.testing.assert_frame_equal(second.bars, alone.bars)
    pd.testing.assert_frame_equal(second.events, alone.events)
    assert not third.bars.equals(alone.bars)
    with sharing(memo):
        fourth = flips(frame)
    pd.testing.assert_frame_equal(fourth.bars, alone.bars)
    assert runs == [len(frame)] * 3  # alone, first, third: second and fourth shared
