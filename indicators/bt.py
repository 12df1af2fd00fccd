"""Our indicators as backtrader indicators: use them inside any ``bt.Strategy``.

    import backtrader as bt
    from indicators.bt import WeeklyEMA, SupportResistance

    class MyStrategy(bt.Strategy):
        def __init__(self):
            self.wema = WeeklyEMA(self.data, period=200)
            self.sr = SupportResistance(self.data)

        def next(self):
            if self.data.close[0] < self.sr.support_low[0] and self.data.close[0] > self.wema[0]:
                self.buy()

Each indicator's lines are the columns of the matching pandas function of :mod:`indicators`
(:func:`~indicators.htf.weekly_ema`, :func:`~indicators.levels.sr_levels`,
:func:`~indicators.flips.flips`, :func:`~indicators.core.rsi`), computed on the feed's bars and
equal to them value for value (``tests/test_indicators_bt.py``). Their parameters are those of the
pandas function, read from its signature, so the two cannot drift.

Causality: the value on bar ``t`` depends on bars ``0..t`` only. In backtrader's default
vectorised mode (``runonce=True``) ``once()`` evaluates the pandas function once over the preloaded
bars; the function is causal (its own truncation tests), and ``tests/test_indicators_bt.py``
repeats the truncation test on backtrader runs. In event mode (``runonce=False`` or live data)
``next()`` evaluates it on the bars seen so far and takes the last row: the same values, at a cost
of O(bars²) (about a second for S/R on a few thousand daily bars).

The feed must hold the canonical columns (open, high, low, close, volume) with UTC times, as
:func:`backtests.engines.bt_native.run_native` and ``bt.feeds.PandasData`` on our frames give.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import backtrader as bt
import numpy as np
import pandas as pd

from indicators.core import rsi
from indicators.flips import BAR_COLUMNS, flips
from indicators.htf import weekly_ema
from indicators.levels import SR_COLUMNS, sr_levels

__all__ = ["Flips", "OversoldSignal", "SupportResistance", "WeeklyEMA", "feed_frame"]

#: backtrader's date number of 1970-01-01 00:00 (days since 0001-01-01, plus one).
_EPOCH_NUM = 719163.0


def feed_frame(data: bt.AbstractDataBase, upto: int | None = None) -> pd.DataFrame:
    """The canonical candle frame (UTC index, float64 OHLCV) of a backtrader feed's bars.

    ``upto``: number of bars from the start (default: all the bars the feed holds). In
    ``once()`` the arrays hold every preloaded bar; in ``next()`` ``len(data)`` bars are visible.
    Timestamps are rounded to the millisecond (backtrader stores them as float days).
    """
    n = len(data.close.array) if upto is None else upto
    num = np.asarray(data.datetime.array[:n], dtype=np.float64)
    ms = np.rint((num - _EPOCH_NUM) * 86_400_000.0).astype(np.int64)
    idx = pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True)).as_unit("ns")
    cols = {c: np.asarray(getattr(data, c).array[:n], dtype=np.float64)
            for c in ("open", "high", "low", "close", "volume")}
    return pd.DataFrame(cols, index=idx)


def _keywords(func: Callable[..., Any], skip: tuple[str, ...] = ()) -> tuple[tuple[str, Any], ...]:
    """backtrader ``params`` from a pandas function's keyword parameters (names and defaults)."""
    out = []
    for name, p in inspect.signature(func).parameters.items():
        # ``params`` (a whole LevelParams) would shadow backtrader's own ``params``: the named
        # keywords already cover it.
        if name in ("df", "params", *skip) or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out.append((name, p.default))
    return tuple(out)


class _FrameIndicator(bt.Indicator):
    """Lines = columns of a causal pandas function of the feed's bars (see the module doc)."""

    #: The columns of :meth:`compute`'s frame, in the order of ``lines``.
    columns: ClassVar[tuple[str, ...]] = ()
    _min_bars: ClassVar[int] = 1  # fewer bars than this: every line is NaN

    def compute(self, df: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def _kwargs(self) -> dict[str, Any]:
        return {name: getattr(self.p, name) for name in self.p._getkeys()}

    def _values(self, df: pd.DataFrame) -> np.ndarray:
        if len(df) < self._min_bars:
            return np.full((len(df), len(self.columns)), np.nan)
        frame = self.compute(df)
        return frame[list(self.columns)].to_numpy(dtype=np.float64, na_value=np.nan)

    def once(self, start: int, end: int) -> None:
        # backtrader calls once() in pieces (oncestart for the first bar, then the rest): the
        # causal function is evaluated once over every preloaded bar and each piece is copied.
        values = getattr(self, "_once_values", None)
        if values is None or len(values) < end:
            values = self._once_values = self._values(feed_frame(self.data))
        for j in range(len(self.columns)):
            dst = self.lines[j].array
            for i in range(start, end):
                dst[i] = values[i, j]

    def next(self) -> None:
        values = self._values(feed_frame(self.data, len(self.data)))
        for j in range(len(self.columns)):
            self.lines[j][0] = values[-1, j]


class WeeklyEMA(_FrameIndicator):
    """The ``period``-week EMA (200 by default) on the feed's bars: :func:`indicators.weekly_ema`.

    ``mode="closed"`` uses completed Monday-anchored weeks only; ``"developing"`` includes the
    week in progress (its close so far). NaN until enough weeks have closed.
    """

    lines = ("ema",)
    params = _keywords(weekly_ema)
    columns = ("ema",)
    _min_bars = 2  # one bar has no timeframe to infer (and no EMA)
    plotinfo: ClassVar[dict] = {"subplot": False}

    def compute(self, df: pd.DataFrame) -> pd.DataFrame:
        return weekly_ema(df, **self._kwargs()).rename("ema").to_frame()


class SupportResistance(_FrameIndicator):
    """Nearest support and resistance zones per bar: :func:`indicators.sr_levels`.

    Lines (price units, NaN where no such zone exists yet): ``support`` (centre of the nearest
    zone at or below the close) with its band ``support_low``/``support_high``, and
    ``resistance``/``resistance_low``/``resistance_high`` above the close.
    """

    lines = SR_COLUMNS
    params = _keywords(sr_levels)
    columns = SR_COLUMNS
    plotinfo: ClassVar[dict] = {"subplot": False}

    def compute(self, df: pd.DataFrame) -> pd.DataFrame:
        return sr_levels(df, **self._kwargs())


class Flips(_FrameIndicator):
    """Support/resistance flips and retests per bar: :func:`indicators.flips`'s ``bars``.

    Lines: the :class:`SupportResistance` lines, ``breakdown``/``breakout`` (1.0 on the bar whose
    close confirms a support->resistance / resistance->support flip, else 0.0),
    ``flipped_resistance``/``flipped_support`` with ``_low``/``_high`` bands, and
    ``retest_rejected``/``retest_held`` (1.0/0.0). ``breakdown`` is the breakdown signal of
    :func:`indicators.breakdown_signal`.
    """

    lines = BAR_COLUMNS
    params = _keywords(flips)
    columns = BAR_COLUMNS

    def compute(self, df: pd.DataFrame) -> pd.DataFrame:
        return flips(df, **self._kwargs()).bars.astype(np.float64)


class OversoldSignal(_FrameIndicator):
    """RSI and its oversold states per bar (:func:`indicators.rsi`, equal to TA-Lib's RSI).

    Lines: ``rsi``; ``oversold`` (1.0 when rsi < ``threshold``), ``deeply_oversold`` (1.0 when
    rsi < ``deep``), ``overbought`` (1.0 when rsi > ``overbought``); NaN during the warm-up.
    The states are those of :func:`indicators.oversold`.
    """

    lines = ("rsi", "oversold", "deeply_oversold", "overbought")
    params = (("period", 14), ("threshold", 30.0), ("deep", 20.0), ("overbought", 70.0))
    columns = ("rsi", "oversold", "deeply_oversold", "overbought")

    def compute(self, df: pd.DataFrame) -> pd.DataFrame:
        r = rsi(df["close"], self.p.period).to_numpy(dtype=np.float64)
        nan = np.isnan(r)
        with np.errstate(invalid="ignore"):
            states = {
                "oversold": np.where(nan, np.nan, r < self.p.threshold),
                "deeply_oversold": np.where(nan, np.nan, r < self.p.deep),
                "overbought": np.where(nan, np.nan, r > self.p.overbought),
            }
        return pd.DataFrame({"rsi": r, **states}, index=df.index)
