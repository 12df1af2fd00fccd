"""The fast engine: one numba-compiled loop over bars consuming a strategy's :class:`Signals`.

Execution rules (the contract both engines follow; :mod:`backtests.engines.bt` implements the same
rules with backtrader's broker, and ``tests/test_parity.py`` checks they agree trade for trade):

Account: isolated-margin perpetual. Opening ``q`` BTC at fill price ``pe`` locks the margin
``q*pe/leverage`` and pays ``q*pe*commission``; equity = free cash + margin + unrealised PnL.

Exits per position (``Signals.stop``/``target`` and :class:`~strategies.base.ExitRules`): an
**intrabar stop** ``S`` (the nearer of ``stop``, ``fill * (1 ∓ stop_pct)``, ``fill ∓ stop_atr *
atr``), a **stop on the close** ``C`` (``close_stop``, ``close_stop_pct``, ``close_stop_atr``),
a **partial target** ``P`` (``partial_size`` of the position; dropped unless strictly between
the fill and the target) and the **target** ``T``. A trailing stop (``trail_pct``, ``trail_atr``,
``trail_line``) moves ``S`` or ``C`` (``trail_on``) and starts at the entry (its start is an
initial level like the others: until a close moves it, its exit is "stop"/"stop_close");
break-even moves one of them (``breakeven_on``). The **initial stop** (planned risk, trade
column ``initial_stop``) is ``S`` at the entry, else ``C``.

At the **open** of bar ``k`` (signals of bar ``k-1``), in this order:

1. stop on the close: ``C`` triggered at bar ``k-1``'s close -> closed at this open ("stop_close",
   or "trail_close"/"breakeven_close" when a trailing/break-even move set ``C``);
2. time stop: a position opened at the open of bar ``e`` is closed at the open of bar
   ``e + max_bars`` (exit reason "time");
3. ``exit[k-1]`` closes the position ("signal");
4. ``entry[k-1] = d``: if long/short ``-d`` is open it is closed ("reverse" when the mode allows
   opening ``d``, else "signal": in long-only mode a short entry is an exit for longs, and
   vice versa); a position already on side ``d`` is kept (the entry is ignored). When flat and
   the mode allows ``d``, a position is opened unless the bar's open is already through its
   ``S`` or ``T`` (the setup is void: no trade).

Market fills (entries and exits 1-4) happen at ``open * (1 ± slippage)`` (adverse).

Sizing (``size_position``), from the fill price and the equity after step 1-4's exits:
``qmax = equity / (pe * (1/leverage + commission)) * (1 - 1e-9)`` is the largest position whose
margin plus entry fee fits the equity (the 1e-9 keeps float rounding from overdrawing cash, which
backtrader would reject); "percent": ``size * qmax``; "fixed": ``min(size, qmax)``; "risk":
``min(size * equity / |pe - stop|, qmax)`` with the initial stop (an entry without one is
skipped). An account whose equity fell below a millionth of the starting cash (wiped out by
liquidations) opens no more trades.

**During** every bar a position is open (its fill bar included), pessimistic order:

1. liquidation at the liquidation price ``L`` when the bar opens through ``L``, or its range
   crosses ``L`` and ``S`` does not sit between the open and ``L`` (a stop above a long's ``L``
   is hit first): exit at exactly ``L`` (isolated margin), fee ``liquidation_fee * q * L``
   instead of the commission ("liquidation");
2. ``S``: the bar opens through it (a gap) -> fill at the open, else the range reaches it -> fill
   at ``S``; slippage adverse ("stop", or "trail"/"breakeven" when such a move set ``S``);
3. ``P``, then ``T``, like resting limit orders: the bar opens through it -> fill at the open
   with slippage, else the range reaches it -> fill at the level exactly (a resting limit does
   not slip). ``P`` closes ``partial_size`` of the position ("partial": a trade row of its own,
   with that share of the entry fee and funding); the rest stays open on the other rules, and
   ``T`` in the same bar closes it.
   The stop is always checked before the targets when a bar touches both (even when the open
   gapped past a target): backtrader's broker processes the stop order first, and it is the
   pessimistic choice.

``L`` (long) ``= pe * (1 - 1/leverage) / (1 - maintenance_margin)`` (none at 1x),
``L`` (short) ``= pe * (1 + 1/leverage) / (1 + maintenance_margin)``: the price where margin plus
unrealised PnL equals the maintenance margin. With the default rates (maintenance = liquidation
fee = 0.5 %) a liquidation loses exactly the margin.

At the **close** of bar ``k``, in this order:

1. on the last bar an open position is closed at ``close * (1 ∓ slippage)`` with commission
   ("end");
2. ``C``: a close at or beyond it (long: ``close <= C``) closes the position at the next open
   (step 1 at the open);
3. otherwise the stops move (``close_update``), only ever in the position's favour, effective
   from the next bar: trailing to ``close * (1 ∓ trail_pct)``, ``close ∓ trail_atr * atr[k]`` or
   ``trail_line[k]``; break-even to ``pe * (1 ± commission) / (1 ∓ commission)`` once the bar's
   high (long) / low (short) is ``breakeven_pct`` beyond ``pe``;
4. funding: a position still open pays ``side * q * close * F[k]`` where ``F[k]`` sums the
   8-hourly funding rates inside the bar (3 per daily bar); the equity is marked at the close.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numba as nb
import numpy as np
import pandas as pd
import pyarrow as pa
from numba import njit

from backtests.config import WIPED_OUT, BacktestConfig
from backtests.results import EXIT_REASONS, OPEN_EXITS, TRADE_DTYPES, BacktestResult
from backtests.warmup import warmup_report, window_start
from data import jit
from data.frame import timeframe_of, to_canonical
from indicators.liquidation import liquidation_distance_pct
from strategies.base import STOP_KINDS, ExitRules, Signals, Strategy, is_constant

# Exit-reason codes of the kernel's trade records: positions in the one table of names,
# ``backtests.results.EXIT_REASONS`` (numba reads these module globals as constants).
R_SIGNAL = EXIT_REASONS.index("signal")
R_STOP = EXIT_REASONS.index("stop")
R_TARGET = EXIT_REASONS.index("target")
R_LIQ = EXIT_REASONS.index("liquidation")
R_TIME = EXIT_REASONS.index("time")
R_END = EXIT_REASONS.index("end")
R_REVERSE = EXIT_REASONS.index("reverse")
R_STOP_CLOSE = EXIT_REASONS.index("stop_close")
R_TRAIL = EXIT_REASONS.index("trail")
R_TRAIL_CLOSE = EXIT_REASONS.index("trail_close")
R_BREAKEVEN = EXIT_REASONS.index("breakeven")
R_BREAKEVEN_CLOSE = EXIT_REASONS.index("breakeven_close")
R_PARTIAL = EXIT_REASONS.index("partial")
#: Codes of the exits filled at the exit bar's open (``backtests.results.OPEN_EXITS``).
OPEN_EXIT_CODES = np.array([EXIT_REASONS.index(r) for r in OPEN_EXITS], dtype=np.int64)
#: code -> name, taken by an array of codes (Arrow strings: the table's "str" column is built
#: from them without a Python string per row: ~150 -> ~30 us for 3.5k trades)
_REASON_NAMES = pa.array(EXIT_REASONS, pa.large_string())
SIZE_PERCENT, SIZE_FIXED, SIZE_RISK = 0, 1, 2
SIZING_CODES = {"percent": SIZE_PERCENT, "fixed": SIZE_FIXED, "risk": SIZE_RISK}
MODE_LONG, MODE_SHORT, MODE_BOTH = 0, 1, 2
MODE_CODES = {"long": MODE_LONG, "short": MODE_SHORT, "both": MODE_BOTH}
ON_INTRABAR, ON_CLOSE = STOP_KINDS.index("intrabar"), STOP_KINDS.index("close")
#: Fraction of the affordable size left unused so float rounding never overdraws cash.
CASH_BUFFER = 1e-9

# Raw trade record columns (float64 matrix rows) produced by the kernel.
RAW_COLUMNS = ("signal_bar", "entry_bar", "exit_bar", "side", "size", "entry_price",
               "exit_price", "entry_fee", "exit_fee", "funding", "reason", "liquidation_price",
               "initial_stop")
_RAW_INDEX = {name: i for i, name in enumerate(RAW_COLUMNS)}


@njit(cache=True)
def liquidation_price(side: int, entry_price: float, leverage: float, mm: float) -> float:
    """Isolated-margin liquidation price of a position (NaN when it cannot be liquidated)."""
    if side > 0:
        liq = entry_price * (1.0 - 1.0 / leverage) / (1.0 - mm)
        return liq if liq > 0.0 else np.nan
    return entry_price * (1.0 + 1.0 / leverage) / (1.0 + mm)


@njit(cache=True)
def size_position(sizing: int, size: float, equity: float, fill_price: float, stop: float,
                  leverage: float, commission: float, min_equity: float) -> float:
    """Position size in BTC for a new entry (0.0 means: do not trade). See module docstring."""
    if equity <= min_equity or fill_price <= 0.0:
        return 0.0
    qmax = equity / (fill_price * (1.0 / leverage + commission)) * (1.0 - CASH_BUFFER)
    if sizing == SIZE_PERCENT:
        return size * qmax
    if sizing == SIZE_FIXED:
        return min(size, qmax)
    if np.isnan(stop) or stop == fill_price:
        return 0.0
    return min(size * equity / abs(fill_price - stop), qmax)


@njit(cache=True)
def mode_allows(mode: int, side: int) -> bool:
    """Whether the account mode (:data:`MODE_CODES`) may open a position on ``side``."""
    return mode == MODE_BOTH or (mode == MODE_LONG and side > 0) or (mode == MODE_SHORT
                                                                      and side < 0)


class ExitArrays(NamedTuple):
    """A validated :class:`~strategies.base.ExitRules` as the kernel reads it: float64 arrays of
    ``n`` values or of 1 (the same for every bar), NaN for none; ``*_on`` as ``ON_*`` codes."""

    stop_pct: np.ndarray
    stop_atr: np.ndarray
    close_stop: np.ndarray
    close_stop_pct: np.ndarray
    close_stop_atr: np.ndarray
    trail_pct: np.ndarray
    trail_atr: np.ndarray
    trail_line: np.ndarray
    breakeven_pct: np.ndarray
    partial_target: np.ndarray
    partial_pct: np.ndarray
    partial_size: np.ndarray
    atr: np.ndarray
    trail_on: int
    breakeven_on: int


def exit_arrays(rules: ExitRules | None) -> ExitArrays:
    """The kernel's view of validated exit rules (``Signals.validate`` output); None: no rules."""
    rules = rules if rules is not None else _NO_RULES
    arrays = {f: getattr(rules, f) for f in ExitArrays._fields if not f.endswith("_on")}
    for f in ("trail_line", "atr"):  # columns: None -> one NaN for every bar
        if arrays[f] is None:
            arrays[f] = _NAN1
    return ExitArrays(**arrays, trail_on=STOP_KINDS.index(rules.trail_on),
                      breakeven_on=STOP_KINDS.index(rules.breakeven_on))


_NO_RULES = ExitRules().validate(2)
_NAN1 = np.full(1, np.nan)


@njit(cache=True)
def at_bar(a: np.ndarray, j: int) -> float:
    """``a[j]``, or ``a[0]`` when ``a`` holds one value for every bar."""
    return a[0] if a.shape[0] == 1 else a[j]


@njit(cache=True)
def _nearer(side: int, a: float, b: float) -> float:
    """Of two levels on the far side of a position's price, the one nearer it (NaN: none)."""
    if np.isnan(a):
        return b
    if np.isnan(b):
        return a
    return max(a, b) if side > 0 else min(a, b)


@njit(cache=True)
def ratchet(side: int, level: float, source: int, candidate: float, cand_source: int
            ) -> tuple[float, int]:
    """A stop ``level`` (and the exit reason code that set it) moved to ``candidate`` only when
    that is in the position's favour (higher for a long, lower for a short)."""
    if not np.isnan(candidate) and (np.isnan(level) or side * (candidate - level) > 0.0):
        return candidate, cand_source
    return level, source


@njit(cache=True)
def breakeven_price(side: int, entry_price: float, commission: float) -> float:
    """The exit price at which a position's PnL pays both commissions and nothing more."""
    if side > 0:
        return entry_price * (1.0 + commission) / (1.0 - commission)
    return entry_price * (1.0 - commission) / (1.0 + commission)


@njit(cache=True)
def entry_levels(x: ExitArrays, side: int, fill: float, j: int, stop: float, target: float
                 ) -> tuple[float, int, float, int, float, float]:
    """The exit levels of a position opened at ``fill`` by the entry of signal bar ``j``.

    Returns ``(intrabar stop, its reason code, stop on the close, its reason code, partial
    target, partial fraction)``, NaN for none. A trailing stop starts from the fill (or the
    ``trail_line`` at ``j``): its start is an initial stop like the others (reason "stop" or
    "stop_close" until a close moves it); the partial target is dropped unless strictly between
    the fill and the target."""
    atr = at_bar(x.atr, j)
    s = _nearer(side, stop, _nearer(side, fill * (1.0 - side * at_bar(x.stop_pct, j)),
                                    fill - side * at_bar(x.stop_atr, j) * atr))
    c = _nearer(side, at_bar(x.close_stop, j),
                _nearer(side, fill * (1.0 - side * at_bar(x.close_stop_pct, j)),
                        fill - side * at_bar(x.close_stop_atr, j) * atr))
    trail = _nearer(side, _nearer(side, fill * (1.0 - side * at_bar(x.trail_pct, j)),
                                  fill - side * at_bar(x.trail_atr, j) * atr),
                    at_bar(x.trail_line, j))
    if x.trail_on == ON_CLOSE:
        c = _nearer(side, c, trail)
    else:
        s = _nearer(side, s, trail)
    # the partial target nearer the fill of the two ways to give it (-side: lower for a long)
    p = _nearer(-side, at_bar(x.partial_target, j),
                fill * (1.0 + side * at_bar(x.partial_pct, j)))
    if not np.isnan(p) and (side * (p - fill) <= 0.0
                            or (not np.isnan(target) and side * (target - p) <= 0.0)):
        p = np.nan
    return s, R_STOP, c, R_STOP_CLOSE, p, at_bar(x.partial_size, j)


@njit(cache=True)
def stop_exit(side: int, o: float, h: float, low: float, liq: float, stop: float,
              slip: float) -> tuple[int, float]:
    """Liquidation, then the intrabar stop, of an open position in one bar: ``(R_LIQ or R_STOP
    or -1, fill price)`` (rules 1-2 "during every bar" of the module docstring)."""
    has_stop = not np.isnan(stop)
    if not np.isnan(liq):
        if side > 0:
            hit = o <= liq or (low <= liq and not (has_stop and stop > liq))
        else:
            hit = o >= liq or (h >= liq and not (has_stop and stop < liq))
        if hit:
            return R_LIQ, liq
    if has_stop:
        if side > 0:
            if o <= stop:
                return R_STOP, o * (1.0 - slip)
            if low <= stop:
                return R_STOP, stop * (1.0 - slip)
        else:
            if o >= stop:
                return R_STOP, o * (1.0 + slip)
            if h >= stop:
                return R_STOP, stop * (1.0 + slip)
    return -1, np.nan


@njit(cache=True)
def limit_exit(side: int, o: float, h: float, low: float, level: float, slip: float) -> float:
    """Fill price of a resting take-profit at ``level`` in one bar, NaN when not reached: the
    open (slipped) when the bar opens through it, else exactly ``level``."""
    if np.isnan(level):
        return np.nan
    if side > 0:
        if o >= level:
            return o * (1.0 - slip)
        if h >= level:
            return level
    else:
        if o <= level:
            return o * (1.0 + slip)
        if low <= level:
            return level
    return np.nan


@njit(cache=True, inline="always")  # the kernel calls it at every managed close
def close_update(side: int, close: float, high: float, low: float, pe: float,
                 commission: float, trail_pct: float, trail_dist: float, trail_line: float,
                 be_pct: float, trail_on: int, breakeven_on: int, s: float, s_src: int,
                 c: float, c_src: int) -> tuple[float, int, float, int]:
    """Trailing and break-even moves of the stops at the close of a bar (they apply from the
    next bar): ``(intrabar stop, its reason code, stop on the close, its reason code)``.

    ``trail_dist`` is the ATR trail's distance at this close (``trail_atr * atr``, quote
    currency) and ``trail_line`` the line's value at this close (NaN: none); ``trail_on`` and
    ``breakeven_on`` are ``ON_*`` codes. Scalars only: the kernel calls this at every close of
    a managed position, and passing the exit arrays would cost a reference count per array."""
    trail = _nearer(side, _nearer(side, close * (1.0 - side * trail_pct),
                                  close - side * trail_dist), trail_line)
    if trail_on == ON_CLOSE:
        c, c_src = ratchet(side, c, c_src, trail, R_TRAIL_CLOSE)
    else:
        s, s_src = ratchet(side, s, s_src, trail, R_TRAIL)
    if not np.isnan(be_pct) and side * ((high if side > 0 else low) - pe) >= be_pct * pe:
        be = breakeven_price(side, pe, commission)
        if breakeven_on == ON_CLOSE:
            c, c_src = ratchet(side, c, c_src, be, R_BREAKEVEN_CLOSE)
        else:
            s, s_src = ratchet(side, s, s_src, be, R_BREAKEVEN)
    return s, s_src, c, c_src


# Explicit signature: one compile instead of one per call site (constant 0 arguments would be
# typed Literal[int](0) and get their own specialisation).
_SIG_RECORD = nb.int64(nb.float64[:, ::1], *[nb.int64] * 5, *[nb.float64] * 6, nb.int64,
                       nb.float64, nb.float64)


@jit.typed(_SIG_RECORD)
def _record(trades, nt, sbar, ebar, k, side, q, pe, px, efee, xfee, fund, reason,
            liq, istop):  # pragma: no cover - compiled
    """Write one closed trade as row ``nt`` of ``trades`` (:data:`RAW_COLUMNS`); returns nt+1."""
    trades[nt, 0] = sbar
    trades[nt, 1] = ebar
    trades[nt, 2] = k
    trades[nt, 3] = side
    trades[nt, 4] = q
    trades[nt, 5] = pe
    trades[nt, 6] = px
    trades[nt, 7] = efee
    trades[nt, 8] = xfee
    trades[nt, 9] = fund
    trades[nt, 10] = reason
    trades[nt, 11] = liq
    trades[nt, 12] = istop
    return nt + 1


class Market(NamedTuple):
    """The per-bar price arrays of one frame, float64 and contiguous (:func:`market_arrays`)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    # sum of the funding rates inside each bar (BacktestConfig), or one 0 for every bar when
    # there is no funding
    funding: np.ndarray


class KernelInputs(NamedTuple):
    """Everything the compiled loop reads: one frame's :class:`Market`, one strategy's validated
    :class:`Signals` and the :class:`BacktestConfig` numbers (units as in ``BacktestConfig``).
    Built by :func:`kernel_inputs`, the one way into :func:`simulate_nb`."""

    market: Market
    entry: np.ndarray  # int8
    exit: np.ndarray  # bool
    stop: np.ndarray  # float64 price, NaN none; one value: the same for every bar
    target: np.ndarray  # float64 price, NaN none; one value: the same for every bar
    exits: ExitArrays | None  # None: no exit rules (a kernel specialised without them)
    max_bars: int
    cash: float
    commission: float
    slippage: float  # fraction of price
    leverage: float
    maintenance_margin: float
    liquidation_fee: float
    sizing: int  # SIZING_CODES
    size: float
    mode: int  # MODE_CODES


def market_arrays(df: pd.DataFrame, config: BacktestConfig, timeframe: str | None = None
                  ) -> Market:
    """The price and funding arrays of ``df`` for the kernel (build once per frame, reuse).

    ``timeframe`` (e.g. "1d") places the funding times in bars; default :func:`timeframe_of`.
    """
    col = {c: np.ascontiguousarray(df[c].to_numpy(np.float64))
           for c in ("open", "high", "low", "close")}
    if isinstance(config.funding_rate, float) and config.funding_rate == 0.0:
        # no funding: one 0 read for every bar (making and reading 1M zeros cost ~0.3 ms)
        return Market(funding=np.zeros(1), **col)
    funding = np.ascontiguousarray(
        config.funding_per_bar(df.index, timeframe or timeframe_of(df)), dtype=np.float64)
    return Market(funding=funding, **col)


def _prices(column: np.ndarray) -> np.ndarray:
    """A validated stop or target column as the kernel reads it: the array itself, or one
    value (a fresh writable array, like the others: one compiled specialisation) for a constant
    column (:func:`strategies.base.is_constant`, e.g. no stop at all on 1M bars)."""
    return column[:1].copy() if is_constant(column) else column


def kernel_inputs(market: Market, signals: Signals, config: BacktestConfig) -> KernelInputs:
    """Bundle a frame's arrays, validated signals and a config for :func:`simulate_nb`.

    ``signals`` must already be validated against the frame (``Signals.validate``). Scalars are
    cast to fixed Python types so every call site shares one compiled specialisation.
    """
    exits = None if signals.exits is None else exit_arrays(signals.exits)
    return KernelInputs(
        market=market, entry=signals.entry, exit=signals.exit, stop=_prices(signals.stop),
        target=_prices(signals.target), exits=exits, max_bars=int(signals.max_bars),
        cash=float(config.cash), commission=float(config.commission),
        slippage=float(config.slippage), leverage=float(config.leverage),
        maintenance_margin=float(config.maintenance_margin),
        liquidation_fee=float(config.liquidation_fee), sizing=SIZING_CODES[config.sizing],
        size=float(config.size), mode=MODE_CODES[config.mode],
    )


@njit(cache=True)
def simulate_nb(inp):  # pragma: no cover - compiled
    """The execution rules of the module docstring over every bar of ``inp``
    (:class:`KernelInputs`). Returns ``(equity, trades)``: equity at each bar's close (quote
    currency) and one row of :data:`RAW_COLUMNS` per closed trade or partial fill."""
    return _simulate(inp, inp.exits)


@njit(cache=True)
def _simulate(inp, x):  # pragma: no cover - compiled
    """:func:`simulate_nb` with ``inp.exits`` as an argument: numba removes every ``x is None``
    / ``x is not None`` branch at compile time from the argument's type, so signals without
    exit rules (``x`` None) run a loop with no per-bar work for them (issue 15: the fast
    engine stays within 10 % of its speed before the rules; benchmarks/bench_kernel_ab.py)."""
    m = inp.market
    o, h, low, c, funding = m.open, m.high, m.low, m.close, m.funding
    entry, exit_, stop, target = inp.entry, inp.exit, inp.stop, inp.target
    max_bars, cash0, comm, slip = inp.max_bars, inp.cash, inp.commission, inp.slippage
    lev, mm, liq_fee = inp.leverage, inp.maintenance_margin, inp.liquidation_fee
    sizing, size, mode = inp.sizing, inp.size, inp.mode
    n = len(o)
    f_step = 1 if funding.shape[0] > 1 else 0  # one value for every bar: funding[0]
    s_step = 1 if stop.shape[0] > 1 else 0  # (stop and target: the same)
    t_step = 1 if target.shape[0] > 1 else 0
    equity = np.empty(n)
    # A trade opens only on the bar after a non-zero entry and closes once (plus one partial
    # fill row with exit rules): room for that many rows, not one per bar (13 floats a bar were
    # ~100 bytes per bar of reserved memory at the peak of a 1M-bar run, issue 17).
    opens = np.count_nonzero(entry)
    if x is None:
        trades = np.empty((opens + 1, len(RAW_COLUMNS)))
    else:
        trades = np.empty((2 * opens + 1, len(RAW_COLUMNS)))  # a partial fill adds a row
        # the per-bar columns read at each close, indexed k * step (step 0: one value for all)
        atr, line = x.atr, x.trail_line
        atr_step = 1 if atr.shape[0] > 1 else 0
        line_step = 1 if line.shape[0] > 1 else 0
        trail_on, be_on = x.trail_on, x.breakeven_on
    nt = 0
    cash = cash0
    side = 0
    q = 0.0
    pe = 0.0
    margin = 0.0
    efee = 0.0
    fund = 0.0
    ebar = 0
    sbar = 0
    liq = np.nan
    istop = np.nan  # initial stop (planned risk)
    s_px = np.nan  # intrabar stop and the reason code it exits with
    s_src = R_STOP
    c_px = np.nan  # stop on the close and its reason code
    c_src = R_STOP_CLOSE
    p_px = np.nan  # partial target and the fraction closed there
    p_frac = np.nan
    t_px = np.nan
    tr_pct = np.nan
    tr_atr = np.nan
    be_pct = np.nan
    manage = False  # trailing or break-even rules to apply at each close
    pend = -1  # reason code of a stop on the close triggered at the last close
    for k in range(n):
        if k > 0:
            j = k - 1
            reason = -1
            if side != 0:
                if max_bars > 0 and k - ebar >= max_bars:
                    reason = R_TIME
                elif exit_[j]:
                    reason = R_SIGNAL
                if x is not None:
                    if pend >= 0:  # the stop on the close comes first
                        reason = pend
            e = entry[j]
            allowed = e != 0 and mode_allows(mode, e)
            if reason < 0 and side != 0 and e == -side:
                reason = R_REVERSE if allowed else R_SIGNAL
            if reason >= 0:
                px = o[k] * (1.0 - side * slip)
                xfee = q * px * comm
                cash += margin + side * q * (px - pe) - xfee
                if x is None:  # no rule moves the stop: the initial stop is the stop (one value
                    istop = s_px  # fewer carried from bar to bar: ~5-10 % of this loop, measured)
                nt = _record(trades, nt, sbar, ebar, k, side, q, pe, px, efee, xfee, fund, reason,
                             liq, istop)
                side = 0
            if side == 0 and allowed:
                fill = o[k] * (1.0 + e * slip)
                tp = target[j * t_step]
                if x is None:
                    sp = stop[j * s_step]
                    cp = np.nan
                else:
                    sp, sp_src, cp, cp_src, pp, pf = entry_levels(x, e, fill, j, stop[j * s_step],
                                                                  tp)
                valid = True
                if not np.isnan(sp) and e * (o[k] - sp) <= 0.0:
                    valid = False
                if not np.isnan(tp) and e * (tp - o[k]) <= 0.0:
                    valid = False
                if valid:
                    planned = sp if not np.isnan(sp) else cp
                    qty = size_position(sizing, size, cash, fill, planned, lev, comm,
                                        cash0 * WIPED_OUT)
                    if qty > 0.0:
                        side = e
                        q = qty
                        pe = fill
                        margin = q * pe / lev
                        efee = q * pe * comm
                        cash -= margin + efee
                        fund = 0.0
                        ebar = k
                        sbar = j
                        liq = liquidation_price(side, pe, lev, mm)
                        s_px = sp
                        t_px = tp
                        if x is not None:
                            istop = planned
                            s_src, c_px, c_src = sp_src, cp, cp_src
                            p_px, p_frac = pp, pf
                            tr_pct = at_bar(x.trail_pct, j)
                            tr_atr = at_bar(x.trail_atr, j)
                            be_pct = at_bar(x.breakeven_pct, j)
                            manage = (line_step == 1 or not np.isnan(tr_pct)
                                      or not np.isnan(tr_atr) or not np.isnan(be_pct))
                            pend = -1
        if side != 0:
            reason, px = stop_exit(side, o[k], h[k], low[k], liq, s_px, slip)
            if x is not None:
                if reason == R_STOP:
                    reason = s_src
                if reason < 0 and not np.isnan(p_px):
                    ppx = limit_exit(side, o[k], h[k], low[k], p_px, slip)
                    if not np.isnan(ppx):
                        qp = q * p_frac
                        xfee = qp * ppx * comm
                        cash += margin * p_frac + side * qp * (ppx - pe) - xfee
                        nt = _record(trades, nt, sbar, ebar, k, side, qp, pe, ppx, efee * p_frac,
                                     xfee, fund * p_frac, R_PARTIAL, liq, istop)
                        q = q - qp
                        margin = q * pe / lev
                        efee = efee - efee * p_frac
                        fund = fund - fund * p_frac
                        p_px = np.nan
            if reason < 0:
                px = limit_exit(side, o[k], h[k], low[k], t_px, slip)
                if not np.isnan(px):
                    reason = R_TARGET
            if reason < 0 and k == n - 1:
                reason = R_END
                px = c[k] * (1.0 - side * slip)
            if reason >= 0:
                xfee = q * px * (liq_fee if reason == R_LIQ else comm)
                cash += margin + side * q * (px - pe) - xfee
                if x is None:  # no rule moves the stop: the initial stop is the stop
                    istop = s_px
                nt = _record(trades, nt, sbar, ebar, k, side, q, pe, px, efee, xfee, fund, reason,
                             liq, istop)
                side = 0
        if side != 0:
            if x is not None:
                if not np.isnan(c_px) and side * (c[k] - c_px) <= 0.0:
                    pend = c_src
                elif manage:
                    s_px, s_src, c_px, c_src = close_update(
                        side, c[k], h[k], low[k], pe, comm, tr_pct, tr_atr * atr[k * atr_step],
                        line[k * line_step], be_pct, trail_on, be_on, s_px, s_src, c_px, c_src)
            f = side * q * c[k] * funding[k * f_step]
            cash -= f
            fund += f
            equity[k] = cash + margin + side * q * (c[k] - pe)
        else:
            equity[k] = cash
    return equity, trades[:nt].copy()


def prepare(df: pd.DataFrame, strategy: Strategy, config: BacktestConfig,
            signals: Signals | None = None) -> Signals:
    """Check the inputs and return the strategy's validated :class:`Signals` for ``df`` (a
    canonical frame: the engines' entry points pass ``to_canonical(df)``); ``signals``: the
    strategy's signals on ``df`` computed already (the main job's audit uses them too), else
    ``strategy.signals(df)``."""
    if len(df) < 2:
        raise ValueError(f"a backtest needs at least 2 bars, got {len(df)}")
    if not isinstance(strategy, Strategy):
        raise TypeError(f"strategy must be a strategies.base.Strategy instance, got "
                        f"{type(strategy).__name__}")
    if not isinstance(config, BacktestConfig):
        raise TypeError(f"config must be a BacktestConfig, got {type(config).__name__}")
    sig = strategy.signals(df) if signals is None else signals
    if not isinstance(sig, Signals):
        raise TypeError(f"{type(strategy).__name__}.signals() returned "
                        f"{type(sig).__name__}, not Signals")
    return sig.validate(len(df))


def trading_window(df: pd.DataFrame, strategy: Strategy, signals: Signals, start: object
                   ) -> tuple[pd.DataFrame, Signals, dict]:
    """Cut ``df`` and its ``signals`` (computed on all of ``df``) to the trading window.

    The window opens at the first bar at or after ``start`` (None: the first bar). Every signal
    and indicator inside it is the one computed on the whole history, so the bars before the
    window only warm the indicators up; entries are signalled from the window's first bar, so a
    position opens at the earliest on its second bar's open (never on a signal from before).

    Returns:
        (window candles, window signals, the warm-up record of
        :func:`backtests.warmup.warmup_report`).
    """
    pos = window_start(df, start)
    record = warmup_report(df, pos, strategy)
    indicators = signals.held_indicators
    if indicators is None:
        indicators = strategy.indicators(df)  # on the whole history too
    if pos == 0:
        return df, replace(signals, indicators=indicators), record
    window = df.iloc[pos:]
    window.attrs = dict(df.attrs)
    return window, replace(signals, indicators=indicators).from_bar(pos), record


def simulate(df: pd.DataFrame, signals: Signals, config: BacktestConfig
             ) -> tuple[pd.DataFrame, pd.Series]:
    """Run the fast engine on already computed signals.

    Returns:
        (trades, equity): trades with :data:`backtests.results.TRADE_COLUMNS` (plus
        ``signal_bar``), equity in quote currency at each bar's close (Series on ``df.index``).
    """
    return simulate_valid(df, signals.validate(len(df)), config)


def simulate_valid(df: pd.DataFrame, signals: Signals, config: BacktestConfig
                   ) -> tuple[pd.DataFrame, pd.Series]:
    """:func:`simulate` on signals already validated against ``df`` (``Signals.validate``,
    e.g. by :func:`prepare`, then cut by :func:`trading_window`): checking 1M bars twice costs
    ~2 ms of a ~30 ms run."""
    equity, raw = jit.call(simulate_nb, kernel_inputs(market_arrays(df, config), signals, config),
                           work=len(df))
    trades = build_trades(df, raw, config, signals.tags)
    # copy=False: pandas 3 copies a NumPy array into a Series by default; this one is fresh
    return trades, pd.Series(equity, index=df.index, name="equity", copy=False)


@njit(cache=True)
def _excursions(lo, hi, ebar, xbar, side, pe, px):  # pragma: no cover - compiled
    """Maximum adverse and favourable excursion of each trade, % of the entry price.

    Bars fully or partly held count from the fill bar to the bar before the exit, plus the exit
    price itself (what happened inside the exit bar after an intrabar exit is unknowable from
    OHLC)."""
    n = len(ebar)
    mae = np.empty(n)
    mfe = np.empty(n)
    for i in range(n):
        lo_i = min(px[i], pe[i])
        hi_i = max(px[i], pe[i])
        for k in range(ebar[i], xbar[i]):
            lo_i = min(lo_i, lo[k])
            hi_i = max(hi_i, hi[k])
        if side[i] > 0:
            mae[i] = (lo_i / pe[i] - 1.0) * 100.0
            mfe[i] = (hi_i / pe[i] - 1.0) * 100.0
        else:
            mae[i] = (1.0 - hi_i / pe[i]) * 100.0
            mfe[i] = (1.0 - lo_i / pe[i]) * 100.0
    return mae, mfe


def raw_pnl(raw: np.ndarray) -> np.ndarray:
    """Net PnL (quote currency, after fees and funding) of each raw trade record."""
    def c(name: str) -> np.ndarray:
        return raw[:, _RAW_INDEX[name]]

    return (c("side") * c("size") * (c("exit_price") - c("entry_price")) - c("entry_fee")
            - c("exit_fee") - c("funding"))


def build_trades(df: pd.DataFrame, raw: np.ndarray, config: BacktestConfig,
                 tags: np.ndarray | None = None) -> pd.DataFrame:
    """Turn raw trade records (rows of :data:`RAW_COLUMNS`) into the trade table.

    Adds times, PnL (net of fees and funding), return on margin (%), leverage, the maximum
    adverse/favourable excursions (% of entry price, over the bars held up to the exit fill) and
    tags. Shared by both engines so the derived columns cannot differ.
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, len(RAW_COLUMNS))
    r = {name: raw[:, i] for i, name in enumerate(RAW_COLUMNS)}
    ebar = r["entry_bar"].astype(np.int64)
    xbar = r["exit_bar"].astype(np.int64)
    side = r["side"].astype(np.int64)
    reason = r["reason"].astype(np.int64)
    q, pe, px = r["size"], r["entry_price"], r["exit_price"]
    pnl = raw_pnl(raw)
    margin = q * pe / config.leverage
    hi = df["high"].to_numpy()
    lo = df["low"].to_numpy()
    # Contiguous copies: a column of ``raw`` is a strided view unless there are 0 or 1 trades,
    # and each layout is its own compiled specialisation (the audit's short cuts compiled a
    # second one, ~1 s on a cold cache).
    mae, mfe = jit.call(_excursions, lo, hi, ebar, xbar, side, np.ascontiguousarray(pe),
                        np.ascontiguousarray(px), work=len(lo))
    idx = df.index
    # no tags: all missing, as Arrow nulls (an object array of None took ~0.6 ms to convert)
    tag_col = (np.asarray(tags, dtype=object)[r["signal_bar"].astype(np.int64)]
               if tags is not None else pa.nulls(len(raw), pa.large_string()))
    # Every column in its canonical dtype (text as pandas' "str", integer tags as "7"), so
    # normalize_trades takes the table as it is; copy=False: the arrays are fresh already.
    return pd.DataFrame({
        "entry_time": idx[ebar],
        "exit_time": idx[xbar],
        "entry_bar": ebar,
        "exit_bar": xbar,
        "side": side,
        "size": q,
        "entry_price": pe,
        "exit_price": px,
        "entry_fee": r["entry_fee"],
        "exit_fee": r["exit_fee"],
        "funding": r["funding"],
        "pnl": pnl,
        "return_pct": np.divide(pnl, margin, out=np.full(len(raw), np.nan),
                                where=margin > 0) * 100,
        "exit_reason": pd.array(_REASON_NAMES.take(reason), dtype=TRADE_DTYPES["exit_reason"]),
        "leverage": np.full(len(raw), config.leverage),
        "liquidation_price": r["liquidation_price"],
        "initial_stop": r["initial_stop"],
        "mae_pct": mae,
        "mfe_pct": mfe,
        "tag": pd.array(tag_col, dtype=TRADE_DTYPES["tag"]),
        "signal_bar": r["signal_bar"].astype(np.int64),
        "liq_distance_pct": liquidation_distance_pct(side, pe, mae, r["liquidation_price"]),
    }, copy=False)


def make_result(df: pd.DataFrame, strategy: Strategy, config: BacktestConfig, signals: Signals,
                trades: pd.DataFrame, equity: pd.Series, engine: str,
                warmup: dict | None = None):
    """Wrap an engine's raw output into a :class:`backtests.results.BacktestResult`; the
    ``warmup`` record (:func:`trading_window`) goes to ``result.data["warmup"]``."""
    indicators = signals.held_indicators
    if indicators is None:
        indicators = strategy.indicators(df)
    return BacktestResult.from_run(
        df=df, strategy=strategy.name, params=strategy.param_values, config=config.to_dict(),
        trades=trades, equity=equity, engine=engine, indicators=indicators, warmup=warmup,
    )


def run_fast(df: pd.DataFrame, strategy: Strategy, config: BacktestConfig | None = None, *,
             start: object = None, signals: Signals | None = None):
    """Backtest ``strategy`` with the fast engine, trading from ``start`` (None: the first bar)
    with every bar of ``df`` before it as indicator warm-up (see :func:`trading_window`);
    ``signals``: ``strategy.signals(df)`` computed already (see :func:`prepare`).

    Returns a ``BacktestResult`` over the trading window.
    """
    config = config or BacktestConfig()
    df = to_canonical(df, "price frame")
    sig = prepare(df, strategy, config, signals)
    df, sig, warmup = trading_window(df, strategy, sig, start)
    trades, equity = simulate_valid(df, sig, config)  # prepare validated sig
    # Only the indicator frame is read from here on: the per-bar entry, exit, stop, target and
    # tag arrays are let go (unless the caller holds them) before the result is built (~26
    # bytes per bar at the peak of a 1M-bar run, issue 17).
    sig = Signals.from_entries(np.zeros(0, np.int8), indicators=sig.held_indicators)
    return make_result(df, strategy, config, sig, trades, equity, "fast", warmup)
