"""A backtest as an evaluation function for sweeps: the payload shipped once to every worker,
one parameter set run through the fast kernel on a window, and its metrics (computed by
:func:`backtests.metrics.core_metrics`, the same code as a full result's).

:func:`evaluate_backtests` does the same for a chunk of parameter sets at once (what the
executors call, as ``evaluate_backtest.many``): the strategy's
:meth:`~strategies.base.Strategy.signals_many` hook gives every set's signals in one call, and
one compiled call simulates the sets and computes their figures, with the same results as
evaluating each set on its own."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from backtests.engines.fast import (
    OPEN_EXIT_CODES,
    R_PARTIAL,
    RAW_COLUMNS,
    KernelInputs,
    Market,
    kernel_inputs,
    market_arrays,
    raw_pnl,
    simulate_nb,
)
from backtests.metrics import (
    CORE_KEYS,
    NO_TIMES,
    YEAR,
    bar_returns_array,
    core_figures,
    core_metrics,
    drawdown_step,
    fold_rows,
    held_bars,
    metrics_pass,
    moment_sums,
    periods_per_year,
    pnl_stats,
)
from backtests.tuning.space import Params
from data.frame import timeframe_of, to_canonical
from indicators.memo import IndicatorMemo, sharing
from strategies.base import Signals, is_constant
from strategies.native import BacktraderStrategy

# --- backtests as evaluations ------------------------------------------------------------------

_IMMUTABLE = (str, bytes, int, float, bool, type(None))


class _ScalarAttrs(dict):
    """A frame's ``attrs`` whose deep copy is a plain copy while its values are immutable
    scalars (then both are the same). pandas deep-copies ``attrs`` into every column it hands
    out: ``df["close"]`` cost ~26 us with ``{"timeframe": "1d"}`` (``copy.deepcopy``'s machinery),
    ~15 us without (load 5-6), once per column a strategy reads, per parameter set."""

    def __deepcopy__(self, memo: dict) -> dict:
        if all(isinstance(v, _IMMUTABLE) for v in self.values()):
            return dict(self)
        return copy.deepcopy(dict(self), memo)  # a value a strategy added: copied as pandas would


def _share_attrs(frame: pd.DataFrame) -> None:
    """Give ``frame`` attrs with a cheap deep copy (:class:`_ScalarAttrs`), same contents. pandas
    keeps ``attrs`` in ``_attrs`` and its setter makes a plain dict of what it is given, so the
    object is put there directly; a pandas that keeps them elsewhere gets them back as they were."""
    before = dict(frame.attrs)
    shared = _ScalarAttrs(before)
    object.__setattr__(frame, "_attrs", shared)
    if frame.attrs is not shared:
        frame.attrs = before

#: Metrics of every sweep row (computed by the same code as ``compute_metrics``), plus the
#: per-bar return moments the deflated Sharpe ratio needs.
SWEEP_METRICS: tuple[str, ...] = CORE_KEYS


@dataclass
class BacktestPayload:
    """What every worker needs once: the candles as arrays, the strategy class, the config and
    the window. Signals are computed on ``df.iloc[:end]``; entries and exits before bar
    ``start - 1`` are ignored, so the first fill can happen at bar ``start``'s open and nothing
    is traded with data beyond ``end``. Metrics cover bars ``max(start - 1, 0) .. end - 1``.

    Everything derived from the candles (the frame strategies see, the kernel's arrays, the
    window's span in years, bars per year) is worked out once per payload, not once per set.
    """

    df: pd.DataFrame
    strategy_cls: type
    config: Any
    start: int = 0
    end: int | None = None
    keep_returns: bool = False
    _arrays: Market | None = None
    _frame: pd.DataFrame | None = None
    _timeframe: str | None = None
    _span: tuple[float, float] | None = None
    _memo: IndicatorMemo | None = None
    _built: dict[int, tuple[Params, Any]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to a worker: the candles and settings, not what the worker rebuilds itself.
        return {**self.__dict__, "_arrays": None, "_frame": None, "_span": None, "_memo": None,
                "_built": None}

    def strategy(self, params: Params) -> Any:
        """``strategy_cls(**params)``: the instance the sweep's parameter check built for this
        very dict (:func:`backtests.tuning.space.check_params`' ``built``) when there is one."""
        hit = self._built.get(id(params)) if self._built else None
        if hit is not None and hit[0] is params:
            return hit[1]
        return self.strategy_cls(**params)

    @property
    def first(self) -> int:
        """Bar position of the window's first metric bar: ``max(start - 1, 0)``."""
        return max(self.start - 1, 0)

    def timeframe(self) -> str:
        """The bar timeframe of ``df`` (worked out once per payload, not once per set)."""
        if self._timeframe is None:
            self._timeframe = timeframe_of(self.df)
        return self._timeframe

    def frame(self) -> pd.DataFrame:
        """``df.iloc[:end]`` as strategies see it in a sweep: canonical, sliced once, with plain
        (object) column labels and only ``attrs["timeframe"]``: pandas 3 deep-copies ``attrs``
        on every column access and looks Arrow string labels up slower (``df["close"]`` took
        ~45 us instead of ~18 us, measured on a busy machine)."""
        if self._frame is None:
            df = self.df if self.end in (None, len(self.df)) else self.df.iloc[:self.end]
            df = to_canonical(df, "price frame")  # once: every set then skips the check
            light = df.copy(deep=False)
            light.columns = pd.Index(list(df.columns), dtype=object)
            light.attrs = {"timeframe": self.timeframe()}
            _share_attrs(light)
            self._frame = light
        return self._frame

    def market(self) -> Market:
        """The kernel's price arrays of :meth:`frame`, built once per payload."""
        if self._arrays is None:
            self._arrays = market_arrays(self.frame(), self.config, self.timeframe())
        return self._arrays

    def memo(self) -> IndicatorMemo:
        """The indicator results the parameter sets share (:mod:`indicators.memo`), one per
        payload in each process: a grid over an RSI period and two thresholds computes each
        period's RSI once."""
        if self._memo is None:
            self._memo = IndicatorMemo(self.frame())
        return self._memo

    def span(self) -> tuple[float, float]:
        """``(years, bars per year)`` of the metric window (bars ``first .. end - 1``)."""
        if self._span is None:
            ns = self.frame().index.asi8
            self._span = ((ns[-1] - ns[self.first]) / YEAR.value,
                          periods_per_year(self.timeframe()))
        return self._span


def window_signals(strategy: Any, df: pd.DataFrame, start: int) -> Any:
    """The strategy's validated signals on ``df`` with entries and exits before bar
    ``start - 1`` removed (warm-up bars: indicators see them, the account does not trade).
    ``df`` must be canonical (:meth:`BacktestPayload.frame` is)."""
    return _from_window(checked_signals(strategy.signals_on_canonical(df), len(df)), start)


def _from_window(sig: Signals, start: int) -> Signals:
    """Validated ``sig`` with its entries and exits before bar ``start - 1`` removed (copies:
    the arrays may be shared with other parameter sets)."""
    cut = max(start - 1, 0)
    if cut:
        sig.entry = sig.entry.copy()
        sig.exit = sig.exit.copy()
        sig.entry[:cut] = 0
        sig.exit[:cut] = False
    return sig


@njit(cache=True)
def _valid_codes(entry: np.ndarray) -> bool:  # pragma: no cover - compiled
    """Every entry in -1..+1 (:meth:`Signals.validate`'s value check of ``entry``). A
    branch-free loop, which vectorises."""
    bad = 0
    for i in range(len(entry)):
        e = entry[i]
        bad += (e < -1) | (e > 1)
    return bad == 0


#: :func:`_price_state`'s answers.
_BAD_PRICE, _NO_PRICE, _PRICED = 0, 1, 2


@njit(cache=True)
def _price_state(prices: np.ndarray) -> int:  # pragma: no cover - compiled
    """:data:`_BAD_PRICE` when a value is neither a positive finite price nor NaN (the check of
    :meth:`Signals.validate`), else :data:`_NO_PRICE` when every value is NaN (no stop or
    target at all) or :data:`_PRICED`. One branch-free loop (it vectorises); ``x - x`` is NaN
    for an infinity (and for NaN, which ``x == x`` lets through)."""
    bad = 0
    priced = 0
    for i in range(len(prices)):
        x = prices[i]
        bad += (x <= 0.0) | ((x - x != 0.0) & (x == x))
        priced += x == x
    if bad:
        return _BAD_PRICE
    return _PRICED if priced else _NO_PRICE


def _fits(arr: Any, dtype: type, n: int) -> bool:
    return (isinstance(arr, np.ndarray) and arr.dtype == dtype and arr.ndim == 1
            and len(arr) == n and arr.flags.c_contiguous)


def checked_signals(sig: Signals, n: int) -> Signals:
    """``sig.validate(n)``, cheaper for the usual sweep case: when the four arrays already have
    their dtypes, one compiled pass checks their values (~2 us instead of ~20 us for five numpy
    reductions and the conversions, on 3,243 bars); anything else (exit rules, tags, another
    dtype, a bad value) goes through :meth:`Signals.validate`, which raises its own errors."""
    if (sig.exits is None and sig.tags is None and int(sig.max_bars) >= 0
            and _fits(sig.entry, np.int8, n) and _fits(sig.exit, np.bool_, n)
            and _fits(sig.stop, np.float64, n) and _fits(sig.target, np.float64, n)
            and _valid_codes(sig.entry) and _price_state(sig.stop) != _BAD_PRICE
            and _price_state(sig.target) != _BAD_PRICE):
        return Signals(entry=sig.entry, exit=sig.exit, stop=sig.stop, target=sig.target,
                       max_bars=int(sig.max_bars), indicators=sig.held_indicators)
    return sig.validate(n)


# Exit-reason code -> filled at the exit bar's open (a lookup is ~40x faster than np.isin).
_AT_OPEN = np.zeros(int(OPEN_EXIT_CODES.max()) + 8, dtype=bool)
_AT_OPEN[OPEN_EXIT_CODES] = True
_COL = {name: i for i, name in enumerate(RAW_COLUMNS)}


def raw_metrics(equity: np.ndarray, raw: np.ndarray, years: float, ppy: float, cash: float,
                offset: int = 0) -> dict[str, float]:
    """The sweep metrics (:data:`backtests.metrics.CORE_KEYS`) of an equity array and raw kernel
    trades: :func:`backtests.metrics.core_metrics`, the same code as a full result's metrics.

    ``years`` is the calendar span of ``equity`` (365-day years), ``ppy`` the bars per year,
    ``offset`` the bar position of ``equity[0]`` in the frame the raw trades refer to.
    """
    pnl = raw_pnl(raw)
    reason = raw[:, _COL["reason"]].astype(np.int64)
    partial = reason == R_PARTIAL
    if partial.any():  # count positions, not partial fills (as compute_metrics)
        closing, folded = fold_rows(partial, raw[:, _COL["size"]], raw[:, _COL["exit_price"]],
                                    {"pnl": pnl})
        raw, pnl, reason = raw[closing], folded["pnl"], reason[closing]
    return core_metrics(
        np.ascontiguousarray(equity, dtype=np.float64), years, ppy, float(cash), pnl,
        raw[:, _COL["entry_bar"]].astype(np.int64), raw[:, _COL["exit_bar"]].astype(np.int64),
        _AT_OPEN[reason], int(offset))


def simulate_window(payload: BacktestPayload, params: Params
                    ) -> tuple[np.ndarray, np.ndarray, Any]:
    """Run the fast-engine kernel for one parameter set: ``(equity, raw_trades, signals)`` over
    bars ``0 .. end - 1`` (equity is flat cash before the window). A user's backtrader strategy
    runs on backtrader instead (``signals`` is then None; about 1,000x slower per set)."""
    strat = payload.strategy_cls(**params)
    if isinstance(strat, BacktraderStrategy):  # no signals: backtrader runs the window
        # imports backtrader (1.5 s measured under load): only when a bt.Strategy is swept
        from backtests.engines.bt_native import simulate_native

        out = simulate_native(payload.frame(), strat, payload.config, trade_from=payload.start)
        return out.equity, out.raw, None
    with sharing(payload.memo()):  # indicator results shared with the other sets
        sig = window_signals(strat, payload.frame(), payload.start)
    equity, raw = simulate_nb(kernel_inputs(payload.market(), sig, payload.config))
    return equity, raw, sig


_PNL_COLS = tuple(_COL[c] for c in ("side", "size", "exit_price", "entry_price", "entry_fee",
                                    "exit_fee", "funding"))
_BAR_COLS = tuple(_COL[c] for c in ("entry_bar", "exit_bar", "reason"))


@njit(cache=True)
def _trade_arrays(raw: np.ndarray, at_open_codes: np.ndarray
                  ) -> tuple:  # pragma: no cover - compiled
    """What the metrics read of raw kernel trades: ``(partial, pnl, entry_bar, exit_bar,
    at_open)``, ``partial`` True when a trade has a partial exit (positions must then be folded
    first), ``pnl`` by :func:`backtests.engines.fast.raw_pnl`'s operations in its order (quote
    currency), the bars as int64 and whether each exit filled at its bar's open."""
    side, size, xp, ep, ef, xf, fund = _PNL_COLS
    eb, xb, why = _BAR_COLS
    n_t = raw.shape[0]
    partial = False
    pnl = np.empty(n_t)
    entry_bar = np.empty(n_t, dtype=np.int64)
    exit_bar = np.empty(n_t, dtype=np.int64)
    at_open = np.empty(n_t, dtype=np.bool_)
    for k in range(n_t):
        pnl[k] = (raw[k, side] * raw[k, size] * (raw[k, xp] - raw[k, ep]) - raw[k, ef]
                  - raw[k, xf] - raw[k, fund])
        entry_bar[k] = np.int64(raw[k, eb])
        exit_bar[k] = np.int64(raw[k, xb])
        code = np.int64(raw[k, why])
        partial |= code == R_PARTIAL
        at_open[k] = at_open_codes[code]
    return partial, pnl, entry_bar, exit_bar, at_open


@njit(cache=True, error_model="numpy")
def _lean_pass(eq: np.ndarray, raw: np.ndarray, lo: int, at_open_codes: np.ndarray,
               returns: np.ndarray, no_times: np.ndarray) -> tuple:  # pragma: no cover - compiled
    """:func:`raw_metrics`' work in one compiled call, for trades without partial exits:
    :func:`backtests.engines.fast.raw_pnl` (same operations, same order), the trades' bars
    and open-fill flags, :func:`backtests.metrics.metrics_pass` over ``eq`` (the equity from
    bar ``lo`` on) and, when ``returns`` is not empty (``len(eq) - 1`` values), the per-bar
    returns written into it (as :func:`backtests.metrics.bar_returns_array`; a sweep's chunk
    has them written straight into its returns matrix). Returns ``(partial, passed,
    n_trades)``, ``passed`` being the first 11 values of ``metrics_pass`` (what
    :func:`backtests.metrics.core_figures` reads: returning fewer objects to box saves ~0.7 us
    a set); with ``partial`` (a trade has a partial exit: positions must be folded first)
    the other values are not to be used.

    ``no_times`` is :data:`backtests.metrics.NO_TIMES`, passed in rather than read as a global
    (numba would freeze it as a read-only constant): ``metrics_pass`` then has the argument
    types of :func:`backtests.metrics.core_metrics`' call, one compiled specialisation for both
    (a second one cost ~8 s of compiling on an empty cache, at load 5)."""
    partial, pnl, entry_bar, exit_bar, at_open = _trade_arrays(raw, at_open_codes)
    n_t = raw.shape[0]
    passed = metrics_pass(eq, pnl, entry_bar, exit_bar, at_open, lo, no_times, no_times)
    for i in range(len(returns)):  # x / 0 is inf here (numpy's error model), then not chosen
        r = eq[i + 1] / eq[i] - 1.0
        returns[i] = r if eq[i] > 0 else 0.0
    return partial, passed[:11], n_t


def window_metrics(payload: BacktestPayload, equity: np.ndarray, raw: np.ndarray
                   ) -> dict[str, Any]:
    """:data:`SWEEP_METRICS` of a window simulated by :func:`simulate_window` (and its per-bar
    returns under ``"_returns"`` when the payload keeps them, for PBO): :func:`raw_metrics`,
    in one compiled call when no trade has a partial exit (the same figures, bit for bit)."""
    lo = payload.first
    years, ppy = payload.span()
    cash = float(payload.config.cash)
    keep = payload.keep_returns
    eq = equity[lo:]
    if eq.dtype == np.float64 and eq.flags.c_contiguous:
        returns = np.empty(len(eq) - 1 if keep and len(eq) > 0 else 0)
        partial, passed, n_t = _lean_pass(eq, raw, lo, _AT_OPEN, returns, NO_TIMES)
        if not partial:
            out: dict[str, Any] = core_figures(passed, float(eq[-1]), len(eq), years, ppy, cash,
                                               n_t)
            if keep:
                out["_returns"] = returns
            return out
    out = raw_metrics(eq, raw, years, ppy, cash, offset=lo)
    if keep:
        out["_returns"] = bar_returns_array(eq)
    return out


def evaluate_backtest(payload: BacktestPayload, params: Params) -> dict[str, Any]:
    """Evaluation function of backtest sweeps: :func:`window_metrics` of one parameter set."""
    equity, raw, _ = simulate_window(payload, params)
    return window_metrics(payload, equity, raw)


@njit(cache=True, error_model="numpy")
def _curve_pair(ea: np.ndarray, eb: np.ndarray, ra: np.ndarray, rb: np.ndarray,
                fa: np.ndarray, fb: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`backtests.metrics.metrics_pass`' per-bar figures (its sweep branch, without bar
    times) of two equity curves of the same length at once: ``fa[:7]`` and ``fb[:7]`` get
    ``(mean, std, m2, m3, m4, downside, max_dd)`` of ``ea`` and ``eb`` (per-bar return mean,
    sample std, central moments 2..4 divided by the count, downside deviation, lowest
    ``eq / peak - 1``: plain fractions), ``ra`` and ``rb`` their per-bar returns
    (``len - 1`` values, as :func:`backtests.metrics.bar_returns_array`). Pass the same curve
    twice for one.

    The same operations in the same order as ``metrics_pass``, bit for bit, arranged for
    speed: the returns are worked out first in a loop that vectorises (``metrics_pass``
    divides twice per bar, in loops bound by their running sums), then the two curves' sums
    run side by side, each a chain of additions that waits for its previous step: two chains
    in one loop take about the time of one. 3,243 bars: ~10 us -> ~6 us a curve."""
    n = len(ea)
    nr = n - 1
    for i in range(nr):  # x / 0 is inf here (numpy's error model), then not chosen
        r = ea[i + 1] / ea[i] - 1.0
        ra[i] = r if ea[i] > 0 else 0.0
    for i in range(nr):
        r = eb[i + 1] / eb[i] - 1.0
        rb[i] = r if eb[i] > 0 else 0.0
    sa = 0.0
    sb = 0.0
    for i in range(nr):
        sa += ra[i]
        sb += rb[i]
    ma = sa / nr if nr > 0 else np.nan
    mb = sb / nr if nr > 0 else np.nan
    a2 = a3 = a4 = ad = 0.0
    b2 = b3 = b4 = bd = 0.0
    peak_a = low_a = ea[0]
    peak_b = low_b = eb[0]
    dd_a = dd_b = 0.0
    for i in range(n):
        if i < nr:
            a2, a3, a4, ad = moment_sums(ra[i], ma, a2, a3, a4, ad)
            b2, b3, b4, bd = moment_sums(rb[i], mb, b2, b3, b4, bd)
        peak_a, low_a, dd_a = drawdown_step(ea[i], peak_a, low_a, dd_a)
        peak_b, low_b, dd_b = drawdown_step(eb[i], peak_b, low_b, dd_b)
    for f, m, m2, m3, m4, dn, dd in ((fa, ma, a2, a3, a4, ad, dd_a),
                                     (fb, mb, b2, b3, b4, bd, dd_b)):
        f[0] = m
        f[1] = np.sqrt(m2 / (nr - 1)) if nr > 1 else np.nan
        f[2] = m2 / nr if nr > 0 else np.nan
        f[3] = m3 / nr if nr > 0 else np.nan
        f[4] = m4 / nr if nr > 0 else np.nan
        f[5] = np.sqrt(dn / nr) if nr > 0 else np.nan
        f[6] = dd


@njit(cache=True, error_model="numpy")
def _simulate_sets(template: KernelInputs, entries: np.ndarray, exits: np.ndarray,
                   prices: np.ndarray, stop_row: np.ndarray, target_row: np.ndarray,
                   max_bars: np.ndarray, lo: int, at_open_codes: np.ndarray,
                   finals: np.ndarray, figures: np.ndarray, n_trades: np.ndarray,
                   partial: np.ndarray, returns: np.ndarray
                   ) -> None:  # pragma: no cover - compiled
    """:func:`simulate_nb` and :func:`_lean_pass`' figures for each row ``i`` of ``entries``
    and ``exits`` (signals without exit rules: stop ``prices[stop_row[i]]``, target
    ``prices[target_row[i]]``, time stop ``max_bars[i]``; the market and the account from
    ``template``), in one call: a sweep's sets cost the kernel and the metrics, not a Python
    call of each (typing the kernel's inputs alone is ~7 us a call).

    Writes element or row ``i`` of ``finals`` (the last equity value, quote currency),
    ``figures`` (``_lean_pass``'s 11 values: the trade figures per set, the curve's by
    :func:`_curve_pair`, each pair of sets as soon as both are simulated, while their curves
    are in the cache), ``n_trades``, ``partial`` (then the other figures are not to be used)
    and, when ``returns`` has rows (one per set, ``entries.shape[1] - lo - 1`` columns), the
    per-bar returns from bar ``lo`` (else they go to two rows of scratch: a row per set took
    2 MB of fresh pages for 80 sets of 3,243 bars, ~1-2 us a set)."""
    t = template
    k = entries.shape[0]
    m = entries.shape[1] - lo  # bars measured
    keep = returns.shape[0] > 0
    scratch = np.empty((0 if keep else 2, max(m - 1, 0)))
    prev = np.empty(0)  # the curve of the pair's first set
    for i in range(k):
        inp = KernelInputs(t.market, entries[i], exits[i], prices[stop_row[i]],
                           prices[target_row[i]], None, max_bars[i], t.cash, t.commission,
                           t.slippage, t.leverage, t.maintenance_margin, t.liquidation_fee,
                           t.sizing, t.size, t.mode)
        eq, raw = simulate_nb(inp)
        finals[i] = eq[-1]
        part, pnl, entry_bar, exit_bar, at_open = _trade_arrays(raw, at_open_codes)
        wins, gp, gl = pnl_stats(pnl)  # as metrics_pass
        figures[i, 7] = wins
        figures[i, 8] = gp
        figures[i, 9] = gl
        figures[i, 10] = held_bars(m, entry_bar, exit_bar, at_open, lo) / m if m else np.nan
        partial[i] = part
        n_trades[i] = raw.shape[0]
        if i % 2 == 0 and i < k - 1:
            prev = eq
            continue
        j = i - i % 2  # the pair (j, i); j == i for an odd count's last set
        first = prev if j < i else eq
        ra = returns[j] if keep else scratch[0]
        rb = returns[i] if keep else scratch[1]
        _curve_pair(first[lo:], eq[lo:], ra, rb, figures[j], figures[i])


#: Parameter sets x bars whose signals :func:`evaluate_backtests` holds at once (one hook call):
#: a chunk's sets are handed to the hook in batches of ``BATCH_BAR_SETS // bars`` sets. Every
#: set's Signals (for the built-in strategies with its ~26-column signal frame: ~3.7 MB a set
#: on the 44,283-bar hourly file) live until the batch is simulated, so 500 sets of 1M minute
#: bars would hold tens of GB. Measured, 120 breakdown sets on the hourly file, peak RSS: 453 MB
#: set by set (before the hook), 894 MB in one batch, 529-549 MB with 2^20 (23 sets a batch),
#: same figures, same time. The daily grid's 240 sets (3,243 bars, 323 a batch) stay one batch.
BATCH_BAR_SETS = 1 << 20


def evaluate_backtests(payload: BacktestPayload, param_sets: Sequence[Params]
                       ) -> list[dict[str, Any]]:
    """:func:`evaluate_backtest` of each parameter set, computed together: the same dicts, in
    order, bit for bit.

    The strategies are built (and their parameters checked) one by one; their signals come
    from calls of the strategy class's :meth:`~strategies.base.Strategy.signals_many` (each
    set's own :meth:`~strategies.base.Strategy.signals` unless the class shares work between
    sets), one per batch of at most :data:`BATCH_BAR_SETS` sets x bars; a batch's sets
    without exit rules or tags are simulated and measured by one compiled call
    (:func:`_simulate_sets`), the others one by one. A user's backtrader strategy runs set by
    set on backtrader.

    Raises:
        ValueError: the hook returned the wrong number of signals, something that is not
            :class:`Signals`, or invalid signals (naming the parameter set).
    """
    cls = payload.strategy_cls
    if issubclass(cls, BacktraderStrategy):
        return [evaluate_backtest(payload, p) for p in param_sets]
    step = max(1, BATCH_BAR_SETS // max(len(payload.frame()), 1))
    out: list[dict[str, Any]] = []
    for a in range(0, len(param_sets), step):
        out.extend(_evaluate_batch(payload, param_sets[a:a + step]))
    return out


def _evaluate_batch(payload: BacktestPayload, param_sets: Sequence[Params]
                    ) -> list[dict[str, Any]]:
    """:func:`evaluate_backtests` of one batch: one hook call, one compiled simulation."""
    cls = payload.strategy_cls
    strategies = [payload.strategy(p) for p in param_sets]
    frame = payload.frame()
    n = len(frame)
    with sharing(payload.memo()):
        sigs = cls.signals_many_on_canonical(frame, strategies)
    name = f"{cls.__name__}.signals_many"
    if not isinstance(sigs, list | tuple) or len(sigs) != len(strategies):
        got = f"{len(sigs)} values" if isinstance(sigs, list | tuple) else type(sigs).__name__
        raise ValueError(f"{name} returned {got} for {len(strategies)} parameter sets: "
                         "give a list of one Signals per strategy, in their order")
    out: list[dict[str, Any] | None] = [None] * len(sigs)
    together: list[int] = []
    prices: list[np.ndarray] = []
    entries, exits, stop_row, target_row, max_bars = [], [], [], [], []
    # Arrays shared between sets (a hook's one stop array, one entry per threshold) are checked
    # once: id -> verdict. The Signals hold their arrays until the end, so ids stay theirs.
    entry_ok: dict[int, bool] = {}
    price_rows: dict[int, int] = {}  # id -> row in [no prices, *prices]; -1: not usable here

    def price_row(arr: np.ndarray) -> int:
        r = price_rows.get(id(arr))
        if r is None:
            if _fits(arr, np.float64, n):
                state = _price_state(arr)
            else:  # one NaN seen at every bar (from_entries' "none" on long frames) is none
                const_nan = (isinstance(arr, np.ndarray) and arr.dtype == np.float64
                             and len(arr) == n and is_constant(arr) and np.isnan(arr[0]))
                state = _NO_PRICE if const_nan else _BAD_PRICE
            r = -1 if state == _BAD_PRICE else 0 if state == _NO_PRICE else len(prices) + 1
            if state == _PRICED:
                prices.append(arr)
            price_rows[id(arr)] = r
        return r

    for i, sig in enumerate(sigs):
        if not isinstance(sig, Signals):
            raise ValueError(f"{name} returned a {type(sig).__name__} for parameters "
                             f"{param_sets[i]}: a Signals was expected")
        entry = sig.entry
        ok = entry_ok.get(id(entry))
        if ok is None:
            ok = entry_ok[id(entry)] = _fits(entry, np.int8, n) and _valid_codes(entry)
        s_row = price_row(sig.stop)
        t_row = price_row(sig.target)
        if not (ok and s_row >= 0 and t_row >= 0 and sig.exits is None and sig.tags is None
                and isinstance(sig.max_bars, int) and sig.max_bars >= 0
                and _fits(sig.exit, np.bool_, n)):
            # exit rules, tags, other dtypes or bad values: checked (validate() names the
            # array and the bar) and simulated on their own
            out[i] = _evaluate_signals(payload, sig, param_sets[i], name)
            continue
        together.append(i)
        entries.append(entry)
        exits.append(sig.exit)
        stop_row.append(s_row)
        target_row.append(t_row)
        max_bars.append(sig.max_bars)
    if together:
        _evaluate_together(payload, together, entries, exits, prices, stop_row, target_row,
                           max_bars, out)
    return out  # type: ignore[return-value]


def _evaluate_signals(payload: BacktestPayload, sig: Signals, params: Params, hook: str
                      ) -> dict[str, Any]:
    """:func:`window_metrics` of one set's signals (from ``hook``), simulated on their own."""
    try:
        sig = _from_window(checked_signals(sig, len(payload.frame())), payload.start)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{hook}: the signals of parameters {params}: {exc}") from None
    equity, raw = simulate_nb(kernel_inputs(payload.market(), sig, payload.config))
    return window_metrics(payload, equity, raw)


#: Set x bar values one :func:`_simulate_sets` call takes at most: a chunk's sets are
#: simulated in groups, so the group's copies of the entries and exits (2 bytes a value, 512 KB)
#: and its figures stay small whatever the chunk size and bar count (each set's curve is
#: measured as soon as it and its pair's are simulated, not kept).
_GROUP_VALUES = 1 << 18


def _evaluate_together(payload: BacktestPayload, together: list[int], entries: list,
                       exits: list, prices: list, stop_row: list, target_row: list,
                       max_bars: list, out: list) -> None:
    """Fill ``out[i]`` for each ``i`` of ``together`` (validated signals without exit rules)
    by :func:`_simulate_sets` calls on groups of sets. The per-bar returns of the chunk's sets
    are rows of one matrix (``out[i]["_returns"]`` views of it, in order)."""
    n = len(payload.frame())
    k = len(together)
    cut = max(payload.start - 1, 0)
    nothing = np.empty(n)
    nothing.fill(np.nan)
    price_rows = np.concatenate([nothing, *prices]).reshape(len(prices) + 1, n)
    lo = payload.first
    years, ppy = payload.span()
    cash = float(payload.config.cash)
    keep = payload.keep_returns
    group = max(1, min(k, _GROUP_VALUES // max(n, 1)))
    finals = np.empty(group)
    figures = np.empty((group, 11))
    n_trades = np.empty(group, dtype=np.int64)
    partial = np.empty(group, dtype=np.bool_)
    returns = np.empty((k if keep else 0, max(n - lo - 1, 0)))  # a row per set, when kept
    stops = np.array(stop_row, dtype=np.int64)
    targets = np.array(target_row, dtype=np.int64)
    times = np.array(max_bars, dtype=np.int64)
    template = None
    for a in range(0, k, group):
        b = min(k, a + group)
        # copies (the hook's arrays stay as they were); one concatenation of the 1-D arrays
        # costs ~0.02 ms where np.stack's per-array reshaping cost ~0.2 ms for 80 sets
        entry = np.concatenate(entries[a:b]).reshape(b - a, n)
        exit_ = np.concatenate(exits[a:b]).reshape(b - a, n)
        if cut:  # warm-up bars: no trading
            entry[:, :cut] = 0
            exit_[:, :cut] = False
        if template is None:
            template = kernel_inputs(payload.market(), Signals(
                entry=entry[0], exit=exit_[0], stop=nothing, target=nothing), payload.config)
        _simulate_sets(template, entry, exit_, price_rows, stops[a:b], targets[a:b],
                       times[a:b], lo, _AT_OPEN, finals, figures, n_trades, partial,
                       returns[a:b])
        # the group's figures as Python values in one conversion each, not one per set
        passed, counts, folds = figures[:b - a].tolist(), n_trades.tolist(), partial.tolist()
        last = finals.tolist()
        for j in range(b - a):
            i = together[a + j]
            if folds[j]:  # positions to fold first: the general path
                eq, raw = simulate_nb(template._replace(
                    entry=entry[j], exit=exit_[j], stop=price_rows[stops[a + j]],
                    target=price_rows[targets[a + j]], max_bars=int(times[a + j])))
                out[i] = window_metrics(payload, eq, raw)
                continue
            row = core_figures(passed[j], last[j], n - lo, years, ppy, cash, counts[j])
            if keep:
                row["_returns"] = returns[a + j]
            out[i] = row


# The executors hand whole chunks of parameter sets to this (backtests.tuning.executors).
evaluate_backtest.many = evaluate_backtests  # type: ignore[attr-defined]
