"""The backtrader engine: the same :class:`Signals`, executed by backtrader's own broker.

The strategy's signals are computed once (vectorised) and a ``bt.Strategy`` reads them by bar
index. backtrader's ``BackBroker`` does the fills (market, stop and limit orders, its slippage
model), the commission, the cash and position book-keeping and the equity; the execution rules are
those of :mod:`backtests.engines.fast` (see its docstring) and ``tests/test_parity.py`` holds both
engines to the same trades and final equity. How each rule is obtained from backtrader:

* **Fill at t+1's open, sized from the fill price.** Cerebro runs with ``cheat_on_open``: in
  ``next_open()`` of bar ``t+1`` the strategy reads bar ``t``'s signals and the bar's open, so it
  sizes the order against the exact fill price (``open * (1 ± slippage)``) and backtrader fills the
  market order at that open. This avoids the sizing trap of placing an all-in order at ``t``'s close
  that no longer fits at ``t+1``'s open (which backtrader silently rejects).
* **Never silently rejected.** Sizes leave a 1e-9 cash buffer (see ``size_position``); the broker's
  submit-time margin check is off (it would pseudo-execute protective orders of a short as new
  longs), and any order backtrader still marks Margin/Rejected raises :class:`BacktraderRejection`.
* **Stops and targets** are native Stop and Limit orders in one OCO group, placed with the entry in
  the same ``next_open()`` so they are live from the fill bar on; backtrader processes the stop
  before the target. Slippage: ``slip_perc`` with ``slip_open`` (market fills and gaps slip),
  ``slip_match``/``slip_out`` (the slipped price is used even outside the bar) and no
  ``slip_limit`` (a target reached intrabar fills exactly at its price).
* **Managed exits** (``ExitRules``): the levels come from the fast engine's compiled helpers
  (``entry_levels``, ``close_update``); the orders are backtrader's. A stop moved by a trailing
  or break-even rule at a close is re-placed with its group at the next ``next_open()``; a stop
  on the close is a market order at the next open; the partial take-profit is a Limit order
  outside the OCO group (its fill must not cancel the stop). Every exit order is
  **reduce-only** (:class:`PerpBroker`): cut to the position, cancelled when flat, as on an
  exchange, so the full-size stop and target rest beside the partial order.
* **Liquidation** (backtrader has none): an order of the OCO group flagged ``liquidation`` that
  :class:`PerpBroker` executes itself, through the broker's own ``_execute``, at exactly the
  liquidation price when the bar reaches it (and no stop is hit first); :class:`PerpCommInfo`
  then charges ``liquidation_fee`` instead of the commission.
* **Funding** is debited from the broker's cash by :class:`PerpBroker` at each bar's close for the
  position then open (``side * size * close * F[k]``).
* **Leverage**: :class:`PerpCommInfo` is stock-like with ``leverage``: a long locks
  ``notional/leverage`` of cash; a short credits the proceeds (backtrader's ``shortcash``); the
  broker's value is then cash + margin + unrealised PnL, as on an isolated-margin account.
* **End of data**: the open position is closed by a cheat-on-close market order (``coc``) placed in
  the last bar's ``next_open()``: it fills at the last close (with slippage) after that bar's
  stops/targets, and is part of the OCO group so a protective exit earlier in the bar cancels it.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # backtrader's plot module forces Tk when loaded; we are headless
import backtrader as bt
import numpy as np
import pandas as pd

from backtests.config import BacktestConfig
from backtests.engines.fast import (
    MODE_CODES,
    RAW_COLUMNS,
    SIZING_CODES,
    WIPED_OUT,
    at_bar,
    build_trades,
    close_update,
    entry_levels,
    exit_arrays,
    liquidation_price,
    make_result,
    mode_allows,
    prepare,
    size_position,
    trading_window,
)
from backtests.results import EXIT_REASONS
from data.frame import timeframe_of, to_canonical
from strategies.base import Signals, Strategy

_REASON_CODE = {r: i for i, r in enumerate(EXIT_REASONS)}


class BacktraderRejection(RuntimeError):
    """backtrader refused an order (margin or rejection): never let that pass silently."""


class PerpCommInfo(bt.CommInfoBase):
    """Percentage commission per side on a leveraged stock-like instrument (fractional size).

    While :class:`PerpBroker` executes a liquidation, ``liquidating`` is set and the fee is
    ``liq_fee`` of the notional instead of ``commission``.
    """

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
        ("liq_fee", 0.005),
    )

    def __init__(self) -> None:
        super().__init__()
        self.liquidating = False

    def _getcommission(self, size, price, pseudoexec):
        rate = self.p.liq_fee if self.liquidating else self.p.commission
        return abs(size) * price * rate


class PerpBroker(bt.brokers.BackBroker):
    """BackBroker plus isolated-margin liquidation orders and 8-hourly funding."""

    def __init__(self) -> None:
        super().__init__()
        self.funding: np.ndarray | None = None  # per-bar sum of funding rates
        self.last_funding = 0.0  # quote currency charged at the last bar's close

    def _reduce_only(self, order) -> bool:
        """Exchange "reduce-only" semantics for the exit orders: an order that would open or add
        to a position is cancelled (with its OCO group), one larger than the position is cut to
        it. Lets a partial take-profit and the full-size stop/target rest side by side."""
        pos = self.getposition(order.data).size
        rem = order.executed.remsize
        if pos == 0 or (pos > 0) == (rem > 0):
            order.cancel()
            self.notify(order)
            self._ococheck(order)
            return False
        if abs(rem) > abs(pos):
            order.executed.remsize = -pos
        return True

    def _try_exec(self, order):
        if order.info.get("reduce_only") and not self._reduce_only(order):
            return None
        if order.info.get("reason") != "liquidation":
            return super()._try_exec(order)
        data = order.data
        liq = order.created.price
        stop = order.info.get("stop_price")
        has_stop = stop is not None and not math.isnan(stop)
        o, h, low = data.open[0], data.high[0], data.low[0]
        if order.issell():  # liquidating a long
            hit = o <= liq or (low <= liq and not (has_stop and stop > liq))
        else:
            hit = o >= liq or (h >= liq and not (has_stop and stop < liq))
        if hit:
            self.execute_liquidation(order, liq)
        return None

    def execute_liquidation(self, order, price: float) -> None:
        """Fill ``order`` now at exactly ``price`` with the liquidation fee (not the commission)."""
        comminfo = self.getcommissioninfo(order.data)
        comminfo.liquidating = True
        try:
            self._execute(order, ago=0, price=price)
        finally:
            comminfo.liquidating = False

    def next(self):
        super().next()
        self.last_funding = 0.0
        if self.funding is None:
            return
        for data, pos in self.positions.items():
            if pos.size:
                charge = pos.size * data.close[0] * self.funding[len(data) - 1]
                if charge:
                    self.cash -= charge
                    self.last_funding += charge
        if self.last_funding:
            self._get_value()


class SignalStrategy(bt.Strategy):
    """Executes precomputed :class:`Signals` (read by bar index) with backtrader's broker.

    The levels of the managed exits (stops relative to the fill, trailing, break-even, partial
    target) come from the fast engine's own compiled helpers (``entry_levels`` at the entry,
    ``close_update`` at each close), so the two engines share that arithmetic; the fills, their
    order within a bar and the book-keeping are backtrader's. A stop moved at a close is
    re-placed (the whole protective group, in the rules' order) at the next bar's open; a stop on
    the close is a market order placed at the next open after the close that triggered it.
    """

    params = (("signals", None), ("config", None))

    def __init__(self) -> None:
        sig: Signals = self.p.signals
        cfg: BacktestConfig = self.p.config
        self.sig = sig
        self.cfg = cfg
        self.x = exit_arrays(sig.exits)
        self.n = self.data.buflen()
        self.slip = cfg.slippage
        self.mode = MODE_CODES[cfg.mode]
        self.sizing = SIZING_CODES[cfg.sizing]
        self.equity = np.full(self.n, np.nan)
        self.records: list[list[float]] = []
        self.trade: dict | None = None  # the open trade
        self.incoming: dict | None = None  # the trade whose entry order is in flight
        self.protect: list = []  # OCO group of the open position: liquidation, stop, target
        self.partial = None  # the partial take-profit order (outside the OCO group)

    # -- order helpers ----------------------------------------------------------------------
    def _order(self, side: int, size: float, **kw):
        fn = self.buy if side > 0 else self.sell
        return fn(size=size, **kw)

    def _cancel_protection(self) -> None:
        for o in [*self.protect, self.partial]:
            if o is not None:
                self.broker.cancel(o)
        self.protect = []
        self.partial = None

    def _close_at_open(self, reason: str, cash: float) -> float:
        """Market-close the position at this open; return the cash backtrader will have after."""
        self._cancel_protection()
        pos = self.position
        side = 1 if pos.size > 0 else -1
        q = abs(pos.size)
        self._order(-side, q, exectype=bt.Order.Market, coc=False, kind="exit", reason=reason)
        px = self.data.open[0] * (1.0 - side * self.slip)
        fee = q * px * self.cfg.commission
        if side > 0:  # margin back plus PnL (backtrader's leveraged stock-like accounting)
            return cash + q * pos.price / self.cfg.leverage + q * (px - pos.price) - fee
        return cash - q * px - fee  # short: the proceeds were credited at entry

    def _place_protection(self, t: dict, q: float) -> None:
        """(Re)place the protective orders of trade ``t`` for ``q`` BTC, in the order the rules
        check them within a bar: liquidation, stop, partial target, target."""
        self._cancel_protection()
        side = t["side"]
        group = []
        if not math.isnan(t["liq"]):
            group.append(dict(exectype=bt.Order.Stop, price=t["liq"], reason="liquidation",
                              stop_price=t["stop"]))
        if not math.isnan(t["stop"]):
            group.append(dict(exectype=bt.Order.Stop, price=t["stop"],
                              reason=EXIT_REASONS[t["stop_src"]]))
        for kw in group:
            leader = self.protect[0] if self.protect else None
            self.protect.append(self._order(-side, q, oco=leader, kind="exit", reduce_only=True,
                                            **kw))
        if not math.isnan(t["partial"]):
            self.partial = self._order(-side, t["partial_size"], exectype=bt.Order.Limit,
                                       price=t["partial"], kind="exit", reason="partial",
                                       reduce_only=True)
        if not math.isnan(t["target"]):
            leader = self.protect[0] if self.protect else None
            self.protect.append(self._order(-side, q, oco=leader, exectype=bt.Order.Limit,
                                            price=t["target"], kind="exit", reason="target",
                                            reduce_only=True))
        t["moved"] = False

    # -- bar events -------------------------------------------------------------------------
    def next_open(self) -> None:
        k = len(self.data) - 1
        if k == 0:
            return
        j = k - 1
        sig = self.sig
        pos = self.position.size
        side = 0 if pos == 0 else (1 if pos > 0 else -1)
        cash = self.broker.get_cash()
        o = self.data.open[0]
        t = self.trade

        reason = None
        if side and t["pending"] is not None:
            reason = t["pending"]
        elif side and sig.max_bars > 0 and k - t["entry_bar"] >= sig.max_bars:
            reason = "time"
        elif side and sig.exit[j]:
            reason = "signal"
        e = int(sig.entry[j])
        allowed = e != 0 and mode_allows(self.mode, e)
        if reason is None and side and e == -side:
            reason = "reverse" if allowed else "signal"
        if reason is not None:
            cash = self._close_at_open(reason, cash)
            side = 0

        if side == 0 and allowed:
            fill = o * (1.0 + e * self.slip)
            tp = float(sig.target[j])
            levels = entry_levels(self.x, e, fill, j, float(sig.stop[j]), tp)
            sp = levels[0]
            valid = not (not math.isnan(sp) and e * (o - sp) <= 0.0)
            valid = valid and not (not math.isnan(tp) and e * (tp - o) <= 0.0)
            if valid:
                planned = sp if not math.isnan(sp) else levels[2]
                q = size_position(self.sizing, self.cfg.size, cash, fill, planned,
                                  self.cfg.leverage, self.cfg.commission,
                                  self.cfg.cash * WIPED_OUT)
                if q > 0.0:
                    self._open(e, q, fill, tp, planned, levels, j)
                    side = e
        elif side != 0 and t["moved"]:
            self._place_protection(t, abs(pos))

        if k == self.n - 1 and side != 0:
            q = self.incoming["size"] if self.incoming else abs(self.position.size)
            leader = self.protect[0] if self.protect else None
            self._order(-side, q, exectype=bt.Order.Market, coc=True, oco=leader, kind="exit",
                        reason="end", reduce_only=True)

    def _open(self, side: int, q: float, fill: float, target: float, planned: float,
              levels: tuple, j: int) -> None:
        self._order(side, q, exectype=bt.Order.Market, coc=False, kind="entry")
        liq = float(liquidation_price(side, fill, self.cfg.leverage,
                                      self.cfg.maintenance_margin))
        sp, sp_src, cp, cp_src, pp, pf = levels
        x = self.x
        tr_pct = float(at_bar(x.trail_pct, j))
        tr_atr = float(at_bar(x.trail_atr, j))
        be_pct = float(at_bar(x.breakeven_pct, j))
        self.incoming = {
            "signal_bar": j, "side": side, "size": q, "expected": fill, "liq": liq,
            "funding": 0.0, "initial_stop": planned, "target": target,
            "stop": sp, "stop_src": sp_src, "close_stop": cp, "close_src": cp_src,
            "partial": pp, "partial_frac": pf, "partial_size": q * pf if not math.isnan(pp)
            else math.nan, "trail_pct": tr_pct, "trail_atr": tr_atr, "breakeven_pct": be_pct,
            "manage": (len(x.trail_line) > 1 or not math.isnan(tr_pct)
                       or not math.isnan(tr_atr) or not math.isnan(be_pct)),
            "pending": None, "moved": False,
        }
        self._place_protection(self.incoming, q)

    def notify_order(self, order) -> None:
        if order.status in (order.Margin, order.Rejected):
            raise BacktraderRejection(
                f"backtrader refused a {order.info.get('kind')} order of {order.size} BTC at bar "
                f"{len(self.data) - 1} ({order.getstatusname()}); cash "
                f"{self.broker.get_cash():.2f}"
            )
        if order.status != order.Completed:
            return
        k = len(self.data) - 1
        ex = order.executed
        if order.info.get("kind") == "entry":
            t = self.incoming
            if not math.isclose(ex.price, t["expected"], rel_tol=1e-12):
                raise RuntimeError(f"entry filled at {ex.price}, sized for {t['expected']}")
            t.update(entry_bar=k, entry_price=ex.price, entry_fee=ex.comm)
            self.trade, self.incoming = t, None
            return
        t = self.trade
        reason = order.info["reason"]
        if reason == "partial":  # a fraction closed, the rest stays open on the other rules
            f = t["partial_frac"]
            self.records.append([
                t["signal_bar"], t["entry_bar"], k, t["side"], t["partial_size"],
                t["entry_price"], ex.price, t["entry_fee"] * f, ex.comm, t["funding"] * f,
                _REASON_CODE[reason], t["liq"], t["initial_stop"],
            ])
            t["size"] = t["size"] - t["partial_size"]
            t["entry_fee"] = t["entry_fee"] - t["entry_fee"] * f
            t["funding"] = t["funding"] - t["funding"] * f
            t["partial"] = math.nan
            self.partial = None
            return
        self.records.append([
            t["signal_bar"], t["entry_bar"], k, t["side"], t["size"], t["entry_price"], ex.price,
            t["entry_fee"], ex.comm, t["funding"], _REASON_CODE[reason], t["liq"],
            t["initial_stop"],
        ])
        self.trade = None
        if not self.position:
            self._cancel_protection()

    def next(self) -> None:
        k = len(self.data) - 1
        t = self.trade
        if t is not None:
            t["funding"] += self.broker.last_funding
            side = t["side"]
            close = self.data.close[0]
            if not math.isnan(t["close_stop"]) and side * (close - t["close_stop"]) <= 0.0:
                t["pending"] = EXIT_REASONS[t["close_src"]]
            elif t["manage"]:
                x = self.x
                s, s_src, c, c_src = close_update(
                    side, close, self.data.high[0], self.data.low[0], t["entry_price"],
                    self.cfg.commission, t["trail_pct"], t["trail_atr"] * at_bar(x.atr, k),
                    at_bar(x.trail_line, k), t["breakeven_pct"], x.trail_on, x.breakeven_on,
                    t["stop"], t["stop_src"], t["close_stop"], t["close_src"])
                if not (s == t["stop"] or (math.isnan(s) and math.isnan(t["stop"]))):
                    t["moved"] = True
                t.update(stop=s, stop_src=s_src, close_stop=c, close_src=c_src)
        self.equity[k] = self.broker.getvalue()


def simulate(df: pd.DataFrame, signals: Signals, config: BacktestConfig
             ) -> tuple[pd.DataFrame, pd.Series]:
    """Run backtrader on precomputed signals; returns (trades, equity) like the fast engine."""
    sig = signals.validate(len(df))
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    broker = PerpBroker()
    broker.set_cash(config.cash)
    broker.set_coc(True)  # only orders flagged coc=True (the "end" exit) fill at the close
    broker.set_coo(True)
    broker.set_checksubmit(False)
    broker.set_slippage_perc(config.slippage, slip_open=True, slip_limit=False,
                             slip_match=True, slip_out=True)
    broker.funding = config.funding_per_bar(df.index, timeframe_of(df))
    broker.addcommissioninfo(PerpCommInfo(commission=config.commission,
                                          leverage=config.leverage,
                                          liq_fee=config.liquidation_fee))
    cerebro.broker = broker
    feed_df = df[["open", "high", "low", "close", "volume"]].copy()
    feed_df.index = df.index.tz_convert(None).as_unit("ns")
    cerebro.adddata(bt.feeds.PandasData(dataname=feed_df, openinterest=None))
    cerebro.addstrategy(SignalStrategy, signals=sig, config=config)
    strat = cerebro.run(runonce=True, preload=True)[0]
    raw = np.array(strat.records, dtype=np.float64).reshape(-1, len(RAW_COLUMNS))
    trades = build_trades(df, raw, config, sig.tags)
    return trades, pd.Series(strat.equity, index=df.index, name="equity")


def run_backtrader(df: pd.DataFrame, strategy: Strategy, config: BacktestConfig | None = None,
                   *, start: object = None, signals: Signals | None = None):
    """Backtest ``strategy`` with backtrader's broker, trading from ``start`` with the bars of
    ``df`` before it as warm-up (:func:`backtests.engines.fast.trading_window`); ``signals``:
    ``strategy.signals(df)`` computed already. Returns a ``BacktestResult`` over the trading
    window."""
    config = config or BacktestConfig(engine="backtrader")
    df = to_canonical(df, "price frame")
    sig = prepare(df, strategy, config, signals)
    df, sig, warmup = trading_window(df, strategy, sig, start)
    trades, equity = simulate(df, sig, config)
    return make_result(df, strategy, config, sig, trades, equity, "backtrader", warmup)
