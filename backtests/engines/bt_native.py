"""A user's own ``backtrader.Strategy``, unchanged, on our data, broker model and results.

:func:`run_native` runs the class wrapped by :func:`strategies.native.backtrader_strategy` in a
``Cerebro`` with:

* **our data**: the canonical frame (any data our loaders accept, resampled as asked) as a
  ``PandasData`` feed, times in UTC;
* **our broker model** (:class:`~backtests.engines.bt.PerpBroker`,
  :class:`~backtests.engines.bt.PerpCommInfo`): commission per side, percentage slippage,
  leverage (isolated margin), funding charged at each bar's close, and **liquidation**, which
  backtrader lacks (rule below);
* **sizing** from the config when the strategy calls ``buy()``/``sell()`` without a size
  (:class:`ConfigSizer`): "percent" = that fraction of the cash as margin plus entry fee at the
  signal bar's close, "fixed" = that many BTC. backtrader sizes at the signal bar's close and
  fills at the next open: an order that no longer fits the cash at the fill is refused by
  backtrader (``Margin``); such refusals are counted in ``result.config["rejected_orders"]`` and
  reported, never hidden (``--size 0.95`` leaves room for the next bar's move).

Liquidation (isolated margin, the formula of :func:`backtests.engines.fast.liquidation_price` on
the position's average entry price): a position open at a bar's start whose liquidation price
``L`` the bar reaches (open through ``L``, or its range crosses ``L`` with no resting stop of the
strategy between the open and ``L``) is closed at exactly ``L`` before the bar's other orders,
with the liquidation fee; a position opened during the bar is checked against the rest of the
bar's range after its fill. The strategy's other open orders on the feed are then cancelled (as
an exchange does) and it receives the fill in ``notify_order`` with ``order.info.reason ==
"liquidation"``.

Trades: one row per closing fill (a partial close is a row of its own), with the entry's average
price and a pro-rata share of the entry fee and funding; exit reasons "signal" (market/close
orders), "stop" (stop orders), "target" (limit orders), "liquidation". A position still open
after the last bar is **not** closed (as a plain ``cerebro.run()`` leaves it): it is reported as
an "end" trade marked at the last close without an exit fee, and the final equity is backtrader's
broker value, so the final value equals a plain cerebro run with the same settings (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import backtrader as bt
import numpy as np
import pandas as pd

from backtests.config import BacktestConfig, ConfigError
from backtests.engines.bt import PerpBroker, PerpCommInfo
from backtests.engines.fast import (
    CASH_BUFFER,
    RAW_COLUMNS,
    build_trades,
    liquidation_price,
    timeframe_of,
)
from backtests.results import EXIT_REASONS, BacktestResult
from backtests.warmup import warmup_report, window_start
from data.frame import check_canonical
from strategies.native import BacktraderStrategy

__all__ = ["ConfigSizer", "NativeBroker", "NativeRun", "run_native", "simulate_native"]

_REASON_CODE = {r: i for i, r in enumerate(EXIT_REASONS)}
_STOP_TYPES = (bt.Order.Stop, bt.Order.StopLimit, bt.Order.StopTrail, bt.Order.StopTrailLimit)


class ConfigSizer(bt.Sizer):
    """``BacktestConfig.sizing``/``size`` for orders placed without a size (see module doc)."""

    params = (("sizing", "percent"), ("size", 1.0), ("leverage", 1.0), ("commission", 0.0))

    def _getsizing(self, comminfo, cash, data, isbuy):  # backtrader's Sizer hook
        if self.p.sizing == "fixed":
            return self.p.size
        price = data.close[0]
        if price <= 0 or cash <= 0:
            return 0.0
        qmax = cash / (price * (1.0 / self.p.leverage + self.p.commission))
        return self.p.size * qmax * (1.0 - CASH_BUFFER)


class NativeBroker(PerpBroker):
    """:class:`PerpBroker` that liquidates the positions of a strategy it does not control."""

    def __init__(self, leverage: float, maintenance_margin: float, trade_from: int = 0) -> None:
        super().__init__()
        self.leverage = leverage
        self.mmr = maintenance_margin
        self.trade_from = trade_from
        self.warmup_orders = 0  # orders placed on warm-up bars, cancelled
        self.owner: bt.Strategy | None = None  # set when the strategy starts (_Recorder)

    def _warm_up(self, order):
        # Bars before ``trade_from - 1`` are warm-up: indicators see them, the account does
        # not trade (an order placed there would fill before the trading window).
        if len(order.data) - 1 < self.trade_from - 1:
            self.cancel(order)
            self.warmup_orders += 1
        return order

    def buy(self, *args, **kwargs):  # backtrader's broker API
        return self._warm_up(super().buy(*args, **kwargs))

    def sell(self, *args, **kwargs):  # backtrader's broker API
        return self._warm_up(super().sell(*args, **kwargs))

    def _liq_price(self, pos) -> float:
        side = 1 if pos.size > 0 else -1
        return float(liquidation_price(side, pos.price, self.leverage, self.mmr))

    def _resting_stop_first(self, data, side: int, liq: float) -> bool:
        """A resting stop of the strategy sits between the bar's open and ``liq``."""
        for o in self.pending:
            if o is None or o.data is not data or not o.alive() or o.exectype not in _STOP_TYPES:
                continue
            closes_long = side > 0 and o.issell() and o.created.price > liq
            closes_short = side < 0 and o.isbuy() and o.created.price < liq
            if closes_long or closes_short:
                return True
        return False

    def _check_liquidation(self, data, at_open: bool) -> None:
        pos = self.positions[data]
        if not pos.size or self.leverage <= 1.0:
            return
        side = 1 if pos.size > 0 else -1
        liq = self._liq_price(pos)
        if math.isnan(liq):
            return
        o, h, low = data.open[0], data.high[0], data.low[0]
        if side > 0:
            hit = (at_open and o <= liq) or low <= liq
        else:
            hit = (at_open and o >= liq) or h >= liq
        if not hit or (at_open and self._resting_stop_first(data, side, liq)
                       and not (o <= liq if side > 0 else o >= liq)):
            return
        order_fn = self.sell if side > 0 else self.buy
        order = order_fn(self.owner, data, abs(pos.size), price=liq, exectype=bt.Order.Market,
                         _checksubmit=False, reason="liquidation")
        self.execute_liquidation(order, liq)
        for other in list(self.pending):  # an exchange cancels the rest on liquidation
            if other is not None and other is not order and other.data is data and other.alive():
                self.cancel(other)

    def next(self) -> None:
        held = {d: self.positions[d].size for d in self.positions}
        for data, size in held.items():
            if size:
                self._check_liquidation(data, at_open=True)
        super().next()
        for data, pos in self.positions.items():
            if pos.size and pos.size != held.get(data, 0.0):
                self._check_liquidation(data, at_open=False)
        self._get_value()


class _Recorder(bt.Analyzer):
    """Collects fills, funding and equity bar by bar, and rebuilds round-trip trade records."""

    def start(self) -> None:
        self.strategy.broker.owner = self.strategy
        self.n = self.data.buflen()
        self.equity = np.full(self.n, np.nan)
        self.fills: list[tuple] = []  # (bar, signed size, price, fee, reason code, signal bar)
        self.funding = np.zeros(self.n)
        self.rejected = 0

    def notify_order(self, order) -> None:
        if order.status in (order.Margin, order.Rejected):
            self.rejected += 1
            return
        if order.status != order.Completed:
            return
        ex = order.executed
        if order.info.get("reason") == "liquidation":
            reason = "liquidation"
        elif order.exectype in _STOP_TYPES:
            reason = "stop"
        elif order.exectype == bt.Order.Limit:
            reason = "target"
        else:
            reason = "signal"
        created = order.created.dt or None  # backtrader date number of the bar it was placed on
        self.fills.append((len(self.data) - 1, ex.size, ex.price, ex.comm, reason, created))

    def _record(self) -> None:
        k = len(self.data) - 1
        self.equity[k] = self.strategy.broker.getvalue()
        self.funding[k] = self.strategy.broker.last_funding

    prenext = nextstart = next = _record


def _round_trips(fills: list[tuple], funding: np.ndarray, close: np.ndarray, signal_bar: np.ndarray,
                 leverage: float, mmr: float) -> np.ndarray:
    """Raw trade records (:data:`RAW_COLUMNS`) from fills: one row per closing fill (the
    initial stop is NaN: a native strategy's planned risk is not known to the engine)."""
    rows: list[list[float]] = []
    pos = pe = efee = fund = 0.0
    ebar = sbar = 0
    fills_at = {}
    for f in fills:
        fills_at.setdefault(f[0], []).append(f)
    for k in range(len(funding)):
        for bar, size, price, fee, reason, sig in fills_at.get(k, ()):
            remaining, fee_left = size, fee
            if pos and np.sign(size) != np.sign(pos):
                q = min(abs(size), abs(pos))
                share = q / abs(pos)
                xfee = fee * q / abs(size)
                side = 1 if pos > 0 else -1
                rows.append([sbar, ebar, bar, side, q, pe, price, efee * share, xfee,
                             fund * share, _REASON_CODE[reason],
                             liquidation_price(side, pe, leverage, mmr), np.nan])
                efee *= 1.0 - share
                fund *= 1.0 - share
                pos += -side * q
                if abs(pos) < 1e-12 * max(q, 1.0):
                    pos = 0.0
                remaining = size + side * q
                fee_left = fee - xfee
            if remaining and abs(remaining) > 1e-15:
                if pos == 0.0:
                    pe, efee, fund, ebar = price, fee_left, 0.0, bar
                    sbar = int(signal_bar[bar]) if sig is None else int(sig)
                else:  # adding to the position: average entry price
                    pe = (pe * abs(pos) + price * abs(remaining)) / (abs(pos) + abs(remaining))
                    efee += fee_left
                pos += remaining
        if pos:
            fund += funding[k]
    if pos:  # open after the last bar: marked at the last close, not closed (see module doc)
        side = 1 if pos > 0 else -1
        last = len(close) - 1
        rows.append([sbar, ebar, last, side, abs(pos), pe, close[last], efee, 0.0, fund,
                     _REASON_CODE["end"], liquidation_price(side, pe, leverage, mmr), np.nan])
    return np.array(rows, dtype=np.float64).reshape(-1, len(RAW_COLUMNS))


@dataclass
class NativeRun:
    """Raw output of :func:`simulate_native`: ``equity`` (broker value at each bar's close, quote
    currency), ``raw`` trade records (:data:`~backtests.engines.fast.RAW_COLUMNS`), the number of
    orders backtrader ``rejected`` for lack of cash, and the ``warmup_orders`` cancelled because
    they were placed before the trading window."""

    equity: np.ndarray
    raw: np.ndarray
    rejected: int
    warmup_orders: int


def simulate_native(df: pd.DataFrame, strategy: BacktraderStrategy, config: BacktestConfig,
                    trade_from: int = 0) -> NativeRun:
    """Run the user's backtrader class wrapped in ``strategy`` on ``df`` (see the module doc).

    ``trade_from``: first bar of the trading window; the bars before it are warm-up (the
    strategy and its indicators see them, orders placed before bar ``trade_from - 1`` are
    cancelled), so the first fill can happen at bar ``trade_from``'s open, as in the fast engine.

    Raises:
        ConfigError: ``sizing="risk"`` (it needs a stop per entry, which backtrader orders do not
            declare).
    """
    check_canonical(df, "price frame")
    if config.sizing == "risk":
        raise ConfigError("sizing 'risk' needs a stop per entry; a backtrader strategy declares "
                          "none: use --sizing percent or fixed (or size orders yourself)")
    cerebro = bt.Cerebro(stdstats=False)
    broker = NativeBroker(config.leverage, config.maintenance_margin, trade_from)
    broker.set_cash(config.cash)
    broker.set_checksubmit(False)
    broker.set_slippage_perc(config.slippage, slip_open=True, slip_limit=False, slip_match=True,
                             slip_out=True)
    broker.funding = config.funding_per_bar(df.index, timeframe_of(df))
    broker.addcommissioninfo(PerpCommInfo(commission=config.commission, leverage=config.leverage,
                                          liq_fee=config.liquidation_fee))
    cerebro.broker = broker
    cerebro.addsizer(ConfigSizer, sizing=config.sizing, size=config.size,
                     leverage=config.leverage, commission=config.commission)
    feed = df[["open", "high", "low", "close", "volume"]].copy()
    feed.index = df.index.tz_convert(None).as_unit("ns")
    cerebro.adddata(bt.feeds.PandasData(dataname=feed, openinterest=None))
    cerebro.addstrategy(strategy.bt_class, **strategy.bt_params)
    cerebro.addanalyzer(_Recorder, _name="recorder")
    strat = cerebro.run()[0]
    rec = strat.analyzers.recorder
    close = df["close"].to_numpy(np.float64)
    # The signal bar of a trade is the bar its opening order was placed on; without one (our
    # liquidation orders never open), the bar before the fill.
    signal_bar = np.maximum(np.arange(len(df)) - 1, 0)
    nums = np.array([bt.date2num(t) for t in feed.index.to_pydatetime()])
    fills = [(*f[:5], None if f[5] is None else
              int(min(np.searchsorted(nums, f[5] - 1e-9), len(nums) - 1)))
             for f in rec.fills]
    raw = _round_trips(fills, rec.funding, close, signal_bar, config.leverage,
                       config.maintenance_margin)
    equity = pd.Series(rec.equity).ffill().fillna(config.cash).to_numpy(np.float64)
    return NativeRun(equity=equity, raw=raw, rejected=int(rec.rejected),
                     warmup_orders=broker.warmup_orders)


def run_native(df: pd.DataFrame, strategy: BacktraderStrategy,
               config: BacktestConfig | None = None, *, start: object = None) -> BacktestResult:
    """Backtest the user's backtrader strategy wrapped in ``strategy`` on ``df``, trading from
    ``start`` (None: the first bar).

    As with our own strategies (:func:`backtests.engines.fast.trading_window`), the bars before
    the window are warm-up: backtrader runs on all of ``df``, so the strategy's indicators see
    them, but an order placed before the window's first bar is cancelled, and a position opens
    at the earliest on the window's second bar's open. The result covers the window;
    ``result.data["warmup"]`` records the history the window had.

    Returns a :class:`BacktestResult` with ``engine="backtrader"`` and
    ``config["native_backtrader"] = True`` (reports say "backtrader only": there is no second
    engine to agree with), ``config["rejected_orders"]`` (orders backtrader refused for lack of
    cash at the fill) and equity = backtrader's broker value at each bar's close.

    Raises:
        ConfigError: see :func:`simulate_native`.
    """
    config = config or BacktestConfig(engine="backtrader")
    pos = window_start(df, start)
    out = simulate_native(df, strategy, config, trade_from=pos + 1 if pos else 0)
    raw = out.raw.copy()
    for col in ("signal_bar", "entry_bar", "exit_bar"):  # bar positions in the window
        raw[:, RAW_COLUMNS.index(col)] -= pos
    window = df.iloc[pos:]
    window.attrs = dict(df.attrs)
    trades = build_trades(window, raw, config, None)
    settings = {**config.to_dict(), "engine": "backtrader", "native_backtrader": True,
                "rejected_orders": out.rejected}
    return BacktestResult.from_run(
        df=window, strategy=strategy.name, params=strategy.param_values, config=settings,
        trades=trades, equity=pd.Series(out.equity[pos:], index=window.index, name="equity"),
        engine="backtrader", warmup=warmup_report(df, pos, strategy),
    )
