"""Indicator results shared between the parameter sets of a sweep (indicators.memo): the same
values as computing each call, copies handed out, and only calls on the frame's own columns
with hashable parameters shared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from backtests.config import BacktestConfig
from backtests.tuning.evaluate import BacktestPayload
from data.errors import DataError
from indicators import atr, ema, rsi, sma
from indicators.memo import IndicatorMemo, memoised, sharing


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
