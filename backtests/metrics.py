"""Performance metrics of a backtest, annualised the crypto way (365 days a year).

Conventions (checked against empyrical-reloaded and quantstats in tests/test_metrics.py):

* Per-bar simple returns ``r_i = equity_i / equity_{i-1} - 1`` for bars 1..n-1 (bar 0 is the
  start: neither engine can hold a position before bar 1's open). A bar after the account reached
  zero has return 0.
* Periods per year = 365 days / bar length: 1d -> 365, 1h -> 8,760, 1w -> 52.142857, 1m ->
  525,600 (monthly bars -> 12).
* CAGR uses the calendar span from the first to the last bar (``(t_last - t_first) / 365 days``).
  On gap-free data this equals empyrical's ``len(returns) / periods``; with missing bars (the
  hourly file lacks 7 hours) the calendar is the honest clock.
* Volatility and Sharpe use the sample standard deviation (ddof=1); risk-free rate 0.
* Sortino: annualised mean return over the downside deviation
  ``sqrt(mean(min(r, 0)^2)) * sqrt(periods)`` (mean over *all* bars, as empyrical and quantstats
  define it). ``inf`` when there is no losing bar and the mean is positive.
* Max drawdown: the lowest ``equity / running max - 1`` (negative %). Its duration is the longest
  time from a peak to the bar that regains it (or to the last bar if never regained), in days.
* Calmar = CAGR / |max drawdown| (NaN without a drawdown).
* Profit factor = gross profit / gross loss over closed trades: ``inf`` with winners and no losing
  trade, NaN with no trade or only break-even trades. Both are valid Python floats; write metrics
  with :func:`backtests.persist.to_jsonable` (or ``BacktestResult.save``) to get strict JSON.
* Exposure = share of bars during which a position was open: bars ``entry_bar..exit_bar-1`` for
  exits at the open (signal, time, reverse) and ``entry_bar..exit_bar`` for exits inside or at the
  close of the exit bar (stop, target, liquidation, end).
* VaR/CVaR 95 %: historical, on per-bar returns (the 5 % quantile, linear interpolation, and the
  mean of returns at or below it).
* R multiples (Van Tharp): a trade's result in units of its planned risk,
  ``R = pnl / (size * |entry_price - initial_stop|)`` (net PnL, fees and funding included; the
  initial stop is the one placed at entry, trade column ``initial_stop``). Trades without an
  initial stop have no R and are left out. ``expectancy_r`` = mean R, ``sqn`` (system quality
  number) = ``sqrt(N) * mean(R) / std(R)`` over the N trades with an R (sample std; no cap on N).

One implementation: :func:`core_metrics` (a compiled pass, :func:`metrics_pass`) computes the
return, risk, trade and exposure figures for both the full result (:func:`compute_metrics`, which
adds the rest) and every sweep row (:func:`backtests.tuning.sweep.evaluate_backtest`). The rest
of a full result's curve figures (drawdown duration, best/worst day, the VaR tail) come from the
same pass given the bar times, with no pandas resampling and no per-bar temporaries.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from backtests.results import OPEN_EXITS
from data import jit
from data.frame import DataError, parse_timeframe

DAYS_PER_YEAR = 365.0
NS_PER_DAY = 86_400 * 10**9
#: The calendar year metrics annualise with (crypto trades every day).
YEAR = pd.Timedelta(days=DAYS_PER_YEAR)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: Keys every ``compute_metrics`` result has (the contract's list first, then extras).
METRIC_KEYS: tuple[str, ...] = (
    "total_return_pct", "cagr_pct", "max_drawdown_pct", "max_drawdown_duration_days",
    "volatility_pct", "sharpe", "sortino", "calmar", "win_rate_pct", "profit_factor",
    "expectancy", "avg_win", "avg_loss", "avg_trade_pct", "best_trade_pct", "worst_trade_pct",
    "exposure_pct", "n_trades", "n_long", "n_short", "n_liquidations", "buy_hold_return_pct",
    "final_equity", "fees_paid", "funding_paid",
    # extras
    "payoff_ratio", "avg_bars_held", "var_95_pct", "cvar_95_pct", "best_day_pct", "worst_day_pct",
    "years", "periods_per_year", "expectancy_r", "sqn", "n_r_trades",
)

#: Edges of the R-multiple distribution's bins (:func:`r_distribution`), in R.
R_BINS: tuple[float, ...] = (-np.inf, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, np.inf)


#: The figures :func:`core_metrics` returns: those of :data:`METRIC_KEYS` a sweep ranks by, plus
#: the per-bar moments the deflated Sharpe ratio needs (as ``backtests.tuning.overfit
#: .return_moments``: ``sr_bar`` = mean / std, ``skew``, ``kurtosis`` (not excess), ``n_obs``).
CORE_KEYS: tuple[str, ...] = (
    "sharpe", "sortino", "calmar", "total_return_pct", "cagr_pct", "max_drawdown_pct",
    "volatility_pct", "win_rate_pct", "profit_factor", "n_trades", "exposure_pct",
    "final_equity", "sr_bar", "skew", "kurtosis", "n_obs",
)


def periods_per_year(timeframe: str | pd.Timedelta) -> float:
    """Bars per 365-day year for a timeframe ("1d" -> 365.0, "1h" -> 8760.0, "1M" -> 12.0)."""
    if isinstance(timeframe, str) and timeframe.strip() == "1M":
        return 12.0
    return YEAR / parse_timeframe(timeframe)


def _check_equity(equity: pd.Series, name: str = "equity", finite: bool = True) -> np.ndarray:
    """``equity`` as float64, checked: a Series on a DatetimeIndex, not empty and, unless
    ``finite`` is False (the caller checks that itself), every value finite."""
    if not isinstance(equity, pd.Series) or not isinstance(equity.index, pd.DatetimeIndex):
        raise DataError(f"{name} must be a pandas Series with a DatetimeIndex",
                        hint="pass BacktestResult.equity")
    if len(equity) == 0:
        raise DataError(f"{name} is empty: no bars to measure")
    eq = equity.to_numpy(dtype=np.float64)
    # A finite sum means every value is finite (NaN and inf propagate); the per-value check
    # (a 1M-bool array) runs only when it is not, e.g. on an overflow of huge values.
    if finite and not math.isfinite(eq.sum()):
        _refuse_non_finite(equity, eq, name)
    return eq


def _refuse_non_finite(equity: pd.Series, eq: np.ndarray, name: str) -> None:
    """Raise the DataError naming the first bar of ``equity`` (values ``eq``) that is not
    finite, if one is."""
    if not np.isfinite(eq).all():
        bad = equity.index[~np.isfinite(eq)][0]
        raise DataError(f"{name} has a non-finite value", timestamp=bad,
                        hint="equity must be a finite amount of quote currency at every bar")


def bar_returns(equity: pd.Series) -> pd.Series:
    """Per-bar simple returns of an equity curve (fraction), indexed by bars 1..n-1.

    A bar whose previous equity is <= 0 (account wiped out) has return 0.
    """
    eq = _check_equity(equity)
    return pd.Series(bar_returns_array(eq), index=equity.index[1:], name="returns")


def bar_returns_array(eq: np.ndarray) -> np.ndarray:
    """:func:`bar_returns` of a float64 array (``len(eq) - 1`` values)."""
    prev, cur = eq[:-1], eq[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(prev > 0, cur / prev - 1.0, 0.0)


def _nan_if_empty(x: np.ndarray, fn) -> float:
    return float(fn(x)) if len(x) else math.nan


def _underwater_runs(eq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drawdown series and the [start, end] bar positions of each underwater run."""
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, eq / peak - 1.0, 0.0)
    under = dd < 0
    edges = np.diff(np.concatenate(([False], under, [False])).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return dd, starts, ends


def _run_durations(index: pd.DatetimeIndex, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Days from each run's peak bar (start - 1) to its recovery bar (end + 1, or the last bar)."""
    if len(starts) == 0:
        return np.zeros(0)
    t = index.as_unit("ns").asi8
    stop = np.minimum(ends + 1, len(t) - 1)
    return (t[stop] - t[np.maximum(starts - 1, 0)]) / 86_400e9


def profit_factor(gross_profit: float, gross_loss: float) -> float:
    """Gross profit / gross loss: ``inf`` with winners and no loss, NaN with neither."""
    if gross_loss > 0:
        return gross_profit / gross_loss
    return math.inf if gross_profit > 0 else math.nan


@njit(cache=True, inline="always")
def bar_return(prev, cur):  # pragma: no cover - compiled
    """One bar's simple return ``cur / prev - 1``; 0 after a wipe-out (``prev <= 0``)."""
    return cur / prev - 1.0 if prev > 0 else 0.0


@njit(cache=True)
def pnl_stats(pnl):  # pragma: no cover - compiled
    """``(wins, gross_profit, gross_loss)`` of net trade PnLs (a zero PnL is neither)."""
    wins = 0
    gp = 0.0
    gl = 0.0
    for k in range(len(pnl)):
        if pnl[k] > 0:
            wins += 1
            gp += pnl[k]
        elif pnl[k] < 0:
            gl -= pnl[k]
    return wins, gp, gl


@njit(cache=True)
def held_mask(n, entry_bar, exit_bar, at_open, offset):  # pragma: no cover - compiled
    """Per bar of an ``n``-bar curve starting at bar ``offset``: True while a position is open
    (bars ``entry..exit-1`` for exits at the open, ``entry..exit`` otherwise; clipped)."""
    held = np.zeros(n + 1, dtype=np.int64)
    for k in range(len(entry_bar)):
        a = min(max(entry_bar[k] - offset, 0), n)
        b = min(max(exit_bar[k] - offset + (0 if at_open[k] else 1), 0), n)
        held[a] += 1  # difference array: overlapping trades stay > 0
        held[b] -= 1
    out = np.zeros(n, dtype=np.bool_)
    run = 0
    for i in range(n):
        run += held[i]
        out[i] = run > 0
    return out


@njit(cache=True)
def held_bars(n, entry_bar, exit_bar, at_open, offset):  # pragma: no cover - compiled
    """How many bars of :func:`held_mask` are True, from the trades alone: the length of the
    union of the clipped held intervals (sorted by start), without a per-bar array."""
    m = len(entry_bar)
    a = np.empty(m, dtype=np.int64)
    b = np.empty(m, dtype=np.int64)
    for k in range(m):
        a[k] = min(max(entry_bar[k] - offset, 0), n)
        b[k] = min(max(exit_bar[k] - offset + (0 if at_open[k] else 1), 0), n)
    order = np.argsort(a, kind="mergesort")
    total = 0
    covered = 0  # bars before this position are counted already
    for k in order:
        lo = max(a[k], covered)
        if b[k] > lo:
            total += b[k] - lo
            covered = b[k]
    return total


@njit(cache=True, inline="always")
def moment_sums(r, mean, m2, m3, m4, dn):  # pragma: no cover - compiled
    """One bar's return ``r`` (a fraction) added to the central moment sums about ``mean`` and
    to the sum of squared losses (``min(r, 0) ** 2``: exactly 0 for a gain, without a branch).
    Returns the new ``(m2, m3, m4, dn)``: sums of the 2nd, 3rd and 4th powers of ``r - mean``
    and of the squared losses."""
    d = r - mean
    d2 = d * d
    rn = min(r, 0.0)
    return m2 + d2, m3 + d2 * d, m4 + d2 * d2, dn + rn * rn


@njit(cache=True, inline="always")
def drawdown_step(x, peak, low, max_dd):  # pragma: no cover - compiled
    """One bar's equity ``x`` added to a running drawdown: returns ``(peak, low, max_dd)``, the
    highest equity so far, the lowest since that peak and the lowest ``eq / peak - 1`` (a
    fraction, <= 0; only bars under a positive peak count)."""
    if x > peak:
        return x, x, max_dd
    if x < low:  # under one peak only a new low can be a deeper drawdown
        return peak, x, min(max_dd, x / peak - 1.0) if peak > 0 else max_dd
    return peak, low, max_dd


#: The bar times to pass :func:`metrics_pass` when only the :data:`CORE_KEYS` figures are needed.
NO_TIMES = np.zeros(0, dtype=np.int64)


@njit(cache=True, error_model="numpy")
def metrics_pass(eq, pnl, entry_bar, exit_bar, at_open, offset, t_ns,
                 closes):  # pragma: no cover - compiled
    """The compiled pass behind :func:`core_metrics` and :func:`compute_metrics`.

    Returns ``(mean, std, m2, m3, m4, downside, max_dd, wins, gross_profit, gross_loss,
    exposed, neg, longest, best, worst, count, finite)``: per-bar return mean, sample std (ddof 1),
    central moments 2..4 (divided by n), downside deviation (root mean square of the negative
    returns), lowest ``eq / peak - 1``, the trade figures of :func:`pnl_stats` and the share of
    bars held. Two passes over the curve and no per-bar array (the returns are recomputed in
    the second: cheaper than writing and reading them back).

    With the bars' UTC times ``t_ns`` (int64 ns; :data:`NO_TIMES` skips this) the second pass
    also gives what only a full result reports: ``neg``, the negative per-bar returns in bar
    order (VaR/CVaR need the low tail only); ``longest``, the longest underwater run in days
    (from its peak, the bar before the run, to the bar that regains it or the last bar); and
    the best and worst period return (``-inf`` and ``inf`` when ``count``, the number of
    periods with a return, is 0): per UTC day when ``closes`` holds the positions of the bars
    that close a day (:func:`day_closes`), else (an empty array) per bar; and ``finite``,
    whether every equity value is finite (True without ``t_ns``: not checked there; with
    ``t_ns``, the other figures of a curve that is not finite are not to be used). A day's return
    compares its last equity with that of the previous day with bars; 0/0 after a wipe-out is
    skipped (``error_model="numpy"``: x/0 is inf and 0/0 NaN, as in numpy, not an exception).
    """
    n = len(eq)
    nr = n - 1
    extras = len(t_ns) == n
    s = 0.0
    ahead = jit.PREFETCH_AHEAD  # each loop asks for the equity ahead of it (jit.prefetch)
    if extras:
        for i in range(nr):
            jit.prefetch(eq, i + ahead)
            # A bar whose equity did not move (no position: about half of them) adds exactly
            # +0.0 (x / x is 1, and the sum is never -0.0): skipped, division and addition
            # (1.0 -> 0.75 ms on 1M bars). Only +inf to +inf differs (its return is NaN), and a
            # curve that is not finite is refused by the caller (``finite`` below).
            if eq[i] != eq[i + 1]:
                s += bar_return(eq[i], eq[i + 1])
    else:
        for i in range(nr):
            jit.prefetch(eq, i + ahead)
            s += bar_return(eq[i], eq[i + 1])
    mean = s / nr if nr > 0 else np.nan
    by_day = len(closes) > 0
    day = 0  # index in closes of the next day's last bar
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    dn = 0.0
    peak = eq[0]
    low = eq[0]  # the lowest equity since the peak
    max_dd = 0.0
    neg = np.empty(nr if extras else 0)
    m = 0
    best = -np.inf
    worst = np.inf
    count = 0
    run = -1  # first bar of the current underwater run, -1 above water
    longest = 0.0
    prev_day_eq = np.nan
    nonfinite = 0.0
    if not extras:  # the sweep's figures: the loop without a per-bar test for the rest
        for i in range(n):
            jit.prefetch(eq, i + ahead)
            if i < nr:
                m2, m3, m4, dn = moment_sums(bar_return(eq[i], eq[i + 1]), mean, m2, m3, m4, dn)
            peak, low, max_dd = drawdown_step(eq[i], peak, low, max_dd)
    else:
        nxt = closes[0] if by_day else -1  # the next bar that closes a UTC day (-1: none)
        for i in range(n):
            jit.prefetch(eq, i + ahead)
            x = eq[i]
            nonfinite += x * 0.0  # NaN from an inf or NaN on, else 0
            if i < nr:
                r = bar_return(x, eq[i + 1])
                m2, m3, m4, dn = moment_sums(r, mean, m2, m3, m4, dn)
                neg[m] = r
                m += 1 if r < 0 else 0
                if not by_day:
                    best = max(best, r)
                    worst = min(worst, r)
                    count += 1
            peak, low, max_dd = drawdown_step(x, peak, low, max_dd)
            # _underwater_runs' eq / peak - 1 < 0, without the division: for peak > 0 the
            # rounded quotient is below 1 exactly when eq < peak (the double nearest below 1
            # is 1 - 2**-53, and eq <= the double below peak keeps the true quotient under
            # 1 - 2**-53). A run ends on the bar that regains the peak (its span reaches that
            # bar) or on the last bar.
            if peak > 0 and x < peak:
                if run < 0:
                    run = i
                if i == n - 1:
                    longest = max(longest, (t_ns[i] - t_ns[max(run - 1, 0)]) / 86_400e9)
            elif run >= 0:
                longest = max(longest, (t_ns[i] - t_ns[max(run - 1, 0)]) / 86_400e9)
                run = -1
            if i == nxt:  # bar i closes its UTC day
                if not np.isnan(prev_day_eq):
                    r = x / prev_day_eq - 1.0
                    if not np.isnan(r):
                        best = max(best, r)
                        worst = min(worst, r)
                        count += 1
                prev_day_eq = x
                day += 1
                nxt = closes[day] if day < len(closes) else -1
    std = np.sqrt(m2 / (nr - 1)) if nr > 1 else np.nan
    wins, gp, gl = pnl_stats(pnl)
    exposed = held_bars(n, entry_bar, exit_bar, at_open, offset) / n if n else np.nan
    return (mean, std, m2 / nr if nr > 0 else np.nan, m3 / nr if nr > 0 else np.nan,
            m4 / nr if nr > 0 else np.nan, np.sqrt(dn / nr) if nr > 0 else np.nan, max_dd,
            wins, gp, gl, exposed, neg[:m], longest, best, worst, count, nonfinite == 0.0)


def day_closes(t_ns: np.ndarray) -> np.ndarray:
    """Positions (int64, ascending) of the bars that close a UTC day: the last bar before each
    midnight that has bars before it, and the last bar. ``t_ns``: sorted UTC times in int64 ns.
    A binary search per midnight, so the per-bar pass need not read the times."""
    if len(t_ns) == 0:
        return NO_TIMES
    midnights = np.arange(t_ns[0] // NS_PER_DAY + 1, t_ns[-1] // NS_PER_DAY + 1,
                          dtype=np.int64) * NS_PER_DAY
    last = np.searchsorted(t_ns, midnights, side="left") - 1  # a day without bars repeats one
    return np.unique(np.append(last, len(t_ns) - 1)).astype(np.int64)


@njit(cache=True)
def at_or_below(x, level):  # pragma: no cover - compiled
    """The values of ``x`` at or below ``level``, in their order: ``x[x <= level]`` without the
    boolean mask and numpy's compaction of it (~0.8 -> ~0.15 ms over the ~250k losses of a
    1M-bar curve). Every value is written and the count moves only for a kept one: no branch
    to mispredict."""
    out = np.empty(len(x))
    m = 0
    for i in range(len(x)):
        out[m] = x[i]
        m += 1 if x[i] <= level else 0
    return out[:m]


#: :func:`_lowest` samples every this many values (and only arrays over 64 times as long).
_SAMPLE_STEP = 64


def _lowest(x: np.ndarray, m: int) -> np.ndarray:
    """Values of ``x`` among which are its ``m`` smallest (with ties), every value above them
    left out: ``x`` itself, or for a long ``x`` the values at or below a level read off a sorted
    sample (every 64th value; a third more than the share ``m`` needs), kept only when at least
    ``m`` values are at or below it, which makes them exactly the ``m`` smallest and some
    larger (a quarter of the values to select from: ~1.7 -> ~1.3 ms with cold caches)."""
    if len(x) <= _SAMPLE_STEP * _SAMPLE_STEP:
        return x
    sample = np.sort(x[::_SAMPLE_STEP])
    at = min(len(sample) - 1, int(m / len(x) * len(sample) * 1.3) + 8)
    kept = jit.call(at_or_below, x, sample[at], work=len(x))
    return kept if len(kept) >= m else x


def tail_risk(eq: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """Historical VaR and CVaR 95 % of per-bar returns (fractions): ``np.quantile(r, 0.05)``
    and the mean of the returns at or below it, NaN without returns.

    ``neg`` (the negative returns in bar order, :func:`metrics_pass`) holds the low tail: when
    both order statistics the quantile interpolates between are negative, they are selected
    among these alone (a quarter of the bars, say, instead of all) and interpolated by
    ``np.quantile`` itself, so the figure is the one ``np.quantile`` gives on all the returns.
    """
    n = len(eq) - 1
    if n < 1:
        return math.nan, math.nan
    pos = (n - 1) * 0.05  # np.quantile's position for method "linear"
    k = math.floor(pos)
    if k + 1 < len(neg):
        low = np.partition(_lowest(neg, k + 2), k)  # one selection (two kth values cost 5x more)
        a, b = low[k], low[k + 1 :].min()  # what follows the k-th holds the (k+1)-th smallest
        var = float(np.quantile(np.array([a, b]), pos - k))  # the same interpolation
        # var < 0: the same values in the same order, so numpy's mean sums them the same way
        return var, float(jit.call(at_or_below, neg, var, work=len(neg)).mean())
    r = bar_returns_array(eq)
    var = float(np.quantile(r, 0.05))
    return var, float(r[r <= var].mean())


def core_metrics(equity: np.ndarray, years: float, ppy: float, cash: float, pnl: np.ndarray,
                 entry_bar: np.ndarray, exit_bar: np.ndarray, at_open: np.ndarray,
                 offset: int = 0) -> dict[str, float]:
    """The :data:`CORE_KEYS` figures of an equity curve and its closed trades.

    Args:
        equity: float64 equity (quote currency) at each bar's close.
        years: calendar span of the curve in 365-day years; ``ppy``: bars per year.
        cash: starting cash.
        pnl, entry_bar, exit_bar, at_open: per trade: net PnL, bar positions, whether the exit
            filled at the exit bar's open (``backtests.results.OPEN_EXITS``).
        offset: bar position of ``equity[0]`` in the frame the trades' bars refer to.

    Returns:
        Percentages in %, money in quote currency; definitions in the module docstring.
    """
    passed = metrics_pass(equity, pnl, entry_bar, exit_bar, at_open, offset, NO_TIMES,
                          NO_TIMES)
    return core_figures(passed, float(equity[-1]), len(equity), years, ppy, cash, len(pnl))


def core_figures(passed: tuple, final: float, n_bars: int, years: float, ppy: float,
                 cash: float, n_t: int) -> dict[str, float]:
    """The :data:`CORE_KEYS` dict from :func:`metrics_pass`'s output (``passed``) for an
    equity curve of ``n_bars`` values ending at ``final`` (quote currency) with ``n_t`` trades
    (the other arguments as :func:`core_metrics`). Percentages in %, money in quote currency."""
    mean, std, m2, m3, m4, downside, max_dd, wins, gp, gl, exposed = passed[:11]
    total = final / cash - 1.0
    if years > 0:
        try:
            cagr = (final / cash) ** (1.0 / years) - 1.0 if final > 0 else -1.0
        except OverflowError:  # a gain compounded over a span of hours: beyond any float
            cagr = math.inf
    else:
        cagr = math.nan
    n_r = n_bars - 1
    sharpe, sortino = annualised_ratios(mean, std, downside, n_r, ppy)
    flat = not (m2 > 0) or n_r < 2
    return {
        "sharpe": sharpe, "sortino": sortino,
        "calmar": cagr / abs(max_dd) if max_dd < 0 else math.nan,
        "total_return_pct": 100.0 * total, "cagr_pct": 100.0 * cagr,
        "max_drawdown_pct": 100.0 * max_dd, "volatility_pct": 100.0 * std * math.sqrt(ppy),
        "win_rate_pct": 100.0 * wins / n_t if n_t else math.nan,
        "profit_factor": profit_factor(gp, gl), "n_trades": n_t,
        "exposure_pct": 100.0 * exposed, "final_equity": final,
        "sr_bar": (0.0 if std == 0 else mean / std) if n_r > 1 else math.nan,
        "skew": 0.0 if flat else m3 / m2**1.5,
        "kurtosis": 3.0 if flat else m4 / m2**2,
        "n_obs": float(n_r),
    }


def fold_rows(partial: np.ndarray, size: np.ndarray, exit_price: np.ndarray,
              additive: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fold the partial-exit rows of trade records into the row that closes their position.

    A position's partial fills are the rows just before its closing row (one position is open
    at a time). Returns ``(closing, folded)``: the boolean mask of closing rows and, per closing
    row, the position's whole ``size``, its size-weighted mean ``exit_price`` (so ``side * size *
    (exit_price - entry_price)`` is the sum of the rows' gross PnL) and the sums of the
    ``additive`` columns (fees, funding, PnL...).
    """
    closing = ~partial
    gid = np.concatenate(([0], np.cumsum(closing[:-1]))) if len(partial) else partial.astype(int)
    g = int(closing.sum())

    def total(x: np.ndarray) -> np.ndarray:
        return np.bincount(gid, weights=x, minlength=g)[:g]

    q = total(size)
    out = {"size": q, "exit_price": total(size * exit_price) / q}
    out.update({k: total(v) for k, v in additive.items()})
    return closing, out


def positions(trades: pd.DataFrame, partial: np.ndarray | None = None) -> pd.DataFrame:
    """The trade table with one row per position: partial take-profit rows ("partial") folded
    into the row that closes the position (:func:`fold_rows`; ``return_pct`` recomputed on the
    whole position's margin). Trade statistics count positions, not fills. ``partial``: the
    rows' "partial" flags when the caller has them (:func:`reason_flags`)."""
    if partial is None:
        partial = (trades["exit_reason"] == "partial").to_numpy()
    if not partial.any():
        return trades
    cols = ("entry_fee", "exit_fee", "funding", "pnl")
    closing, f = fold_rows(partial, trades["size"].to_numpy(np.float64),
                           trades["exit_price"].to_numpy(np.float64),
                           {c: trades[c].to_numpy(np.float64) for c in cols})
    out = trades.loc[closing].reset_index(drop=True)
    for c, v in f.items():
        out[c] = v
    margin = out["size"] * out["entry_price"] / out["leverage"]
    out["return_pct"] = np.where(margin > 0, out["pnl"] / margin.where(margin > 0) * 100, np.nan)
    return out


def trade_stats(trades: pd.DataFrame) -> dict[str, float]:
    """Closed-trade statistics (quote currency and %): see the module docstring.

    Returns win_rate_pct, profit_factor, expectancy (mean net PnL per trade), avg_win, avg_loss
    (negative), payoff_ratio (avg_win / |avg_loss|), avg_trade_pct / best_trade_pct /
    worst_trade_pct (of ``return_pct``), avg_bars_held, n_trades, n_long, n_short,
    n_liquidations, fees_paid, funding_paid, gross_profit, gross_loss, net_pnl. A position
    with partial exits counts once, by its whole PnL (:func:`positions`).
    """
    return position_stats(positions(trades))


def position_stats(trades: pd.DataFrame, n_liquidations: int | None = None) -> dict[str, float]:
    """:func:`trade_stats` of a table already folded by :func:`positions` (compute_metrics
    folds once for every figure instead of once per helper); ``n_liquidations``: the count of
    "liquidation" exits when the caller has it (:func:`reason_flags`)."""
    if n_liquidations is None:
        n_liquidations = int((trades["exit_reason"] == "liquidation").sum())
    pnl = trades["pnl"].to_numpy(dtype=np.float64)
    ret = trades["return_pct"].to_numpy(dtype=np.float64)
    side = trades["side"].to_numpy()
    n = len(pnl)
    # A fresh writable array whatever pandas hands out (a read-only view, or a new array for
    # an empty table): one compiled specialisation, not one per flag.
    n_wins, gross_profit, gross_loss = jit.call(pnl_stats, np.array(pnl), work=n)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    avg_win = _nan_if_empty(wins, np.mean)
    avg_loss = _nan_if_empty(losses, np.mean)
    bars = trades["exit_bar"].to_numpy(dtype=np.int64) - trades["entry_bar"].to_numpy(np.int64)
    return {
        "win_rate_pct": 100.0 * n_wins / n if n else math.nan,
        "profit_factor": profit_factor(gross_profit, gross_loss),
        "expectancy": _nan_if_empty(pnl, np.mean),
        "avg_win": avg_win,
        "avg_loss": avg_loss,
        "payoff_ratio": avg_win / -avg_loss if len(wins) and len(losses) else math.nan,
        "avg_trade_pct": _nan_if_empty(ret, np.mean),
        "best_trade_pct": _nan_if_empty(ret, np.max),
        "worst_trade_pct": _nan_if_empty(ret, np.min),
        "avg_bars_held": _nan_if_empty(bars, np.mean),
        "n_trades": n,
        "n_long": int((side > 0).sum()),
        "n_short": int((side < 0).sum()),
        "n_liquidations": n_liquidations,
        # np.nansum is pandas' Series.sum (NaN as 0, the same pairwise sum), without the Series
        "fees_paid": float(_nansum(trades, "entry_fee") + _nansum(trades, "exit_fee")),
        "funding_paid": float(_nansum(trades, "funding")),
        "gross_profit": float(gross_profit),
        "gross_loss": float(gross_loss),
        "net_pnl": float(pnl.sum()),
    }


def _nansum(trades: pd.DataFrame, column: str) -> np.float64:
    return np.nansum(trades[column].to_numpy(dtype=np.float64))


def reason_flags(trades: pd.DataFrame, *groups: tuple[str, ...]) -> list[np.ndarray]:
    """Per group of exit reasons, a boolean per row of ``trades``: its ``exit_reason`` is one
    of them (a missing reason is in none). One factorisation of the column for every group:
    a comparison of the Arrow strings per group cost ~50-90 us each on 3.5k trades."""
    codes, names = pd.factorize(trades["exit_reason"])
    names = list(names)
    # code -1 (missing) reads the last entry of each look-up table: False
    return [np.array([n in g for n in names] + [False])[codes] for g in groups]


def _trade_bars(trades: pd.DataFrame, n_bars: int, at_open: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(entry_bar, exit_bar, at_open)`` of ``trades``, checked to lie inside ``n_bars``
    (``at_open``: the rows' flags of :data:`OPEN_EXITS` when the caller has them)."""
    start = trades["entry_bar"].to_numpy(dtype=np.int64)
    stop = trades["exit_bar"].to_numpy(dtype=np.int64)
    if at_open is None:
        at_open = trades["exit_reason"].isin(OPEN_EXITS).to_numpy()
    end = np.where(at_open, stop, stop + 1)  # exclusive
    if len(start) and (start.min() < 0 or end.max() > n_bars or (end < start).any()):
        raise DataError(f"trade bar positions fall outside the {n_bars} equity bars",
                        hint="entry_bar/exit_bar must be positions in the price frame")
    return start, stop, at_open


def exposure(trades: pd.DataFrame, n_bars: int) -> np.ndarray:
    """Boolean per bar: True while a position is open (rules in the module docstring)."""
    if n_bars == 0:
        return np.zeros(0, dtype=bool)
    return held_mask(n_bars, *_trade_bars(trades, n_bars), 0)


def annualised_ratios(mean: float, std: float, downside: float, n_returns: int,
                      ppy: float) -> tuple[float, float]:
    """Annualised Sharpe and Sortino ratios from per-bar return statistics.

    ``mean``/``std`` (ddof 1)/``downside`` (root mean square of the negative returns) are per
    bar, ``ppy`` bars per year. Returns ``(sharpe, sortino)``: NaN with fewer than 2 returns or
    no variation; Sortino is +inf for a positive mean without a losing bar.
    """
    sharpe = mean / std * math.sqrt(ppy) if n_returns > 1 and std > 0 else math.nan
    if n_returns < 2:
        sortino = math.nan
    elif downside > 0:
        sortino = mean * ppy / (downside * math.sqrt(ppy))
    else:
        sortino = math.inf if mean > 0 else math.nan
    return sharpe, sortino


def compute_metrics(
    equity: pd.Series,
    trades: pd.DataFrame,
    benchmark: pd.Series | None,
    timeframe: str | pd.Timedelta,
    *,
    cash: float | None = None,
) -> dict[str, Any]:
    """All metrics of a run, keyed as in :data:`METRIC_KEYS`.

    Args:
        equity: account equity (quote currency) at each bar's close.
        trades: closed trades (``backtests.results.TRADE_COLUMNS``).
        benchmark: buy-and-hold equity on the same bars (None: ``buy_hold_return_pct`` is NaN).
        timeframe: bar length ("1d", "1h", ...), for annualisation.
        cash: starting cash; defaults to ``equity.iloc[0]`` (the engines' equity at bar 0).

    Returns:
        A dict of floats (counts as ints). Percentages are in % (``12.5`` means 12.5 %), money in
        quote currency, durations in days. See the module docstring for each definition.
    """
    eq = _check_equity(equity, finite=False)  # the pass below checks every value
    partial, at_open, liquidated = reason_flags(trades, ("partial",), OPEN_EXITS,
                                                ("liquidation",))
    if partial.any():  # a position with partial exits is one trade
        trades = positions(trades, partial)
        at_open, liquidated = reason_flags(trades, OPEN_EXITS, ("liquidation",))
    ppy = periods_per_year(timeframe)
    pnl = trades["pnl"].to_numpy(dtype=np.float64)
    t_ns = equity.index.asi8 if equity.index.unit == "ns" else equity.index.as_unit("ns").asi8
    # one pass for the sweep's figures and the rest; best/worst per UTC day for bars shorter
    # than a day, else per bar
    closes = day_closes(t_ns) if ppy > DAYS_PER_YEAR else NO_TIMES
    passed = jit.call(metrics_pass, eq, pnl, *_trade_bars(trades, len(eq), at_open), 0, t_ns,
                      closes, work=len(eq))
    neg, longest, best, worst, n_periods, finite = passed[11:]
    if not finite:
        _refuse_non_finite(equity, eq, "equity")
    start = float(eq[0]) if cash is None else float(cash)
    if start <= 0:
        raise DataError(f"starting cash must be positive, got {start}")
    years = (equity.index[-1] - equity.index[0]) / YEAR
    out: dict[str, Any] = core_figures(passed, float(eq[-1]), len(eq), years, ppy, start,
                                       len(pnl))
    var, cvar = tail_risk(eq, neg)
    if benchmark is not None and len(benchmark):
        bh = float(benchmark.iloc[-1]) / start - 1.0
    else:
        bh = math.nan
    ts = position_stats(trades, int(liquidated.sum()))  # folded above
    out.update({
        "max_drawdown_duration_days": float(longest),
        "buy_hold_return_pct": 100.0 * bh,
        "var_95_pct": 100.0 * var,
        "cvar_95_pct": 100.0 * cvar,
        "best_day_pct": 100.0 * float(best) if n_periods else math.nan,
        "worst_day_pct": 100.0 * float(worst) if n_periods else math.nan,
        "years": float(years),
        "periods_per_year": float(ppy),
    })
    out.update({k: v for k, v in ts.items() if k in METRIC_KEYS and k not in out})
    out.update(r_figures(position_r(trades)))
    return {k: out[k] for k in METRIC_KEYS}


def monthly_returns(equity: pd.Series, cash: float | None = None) -> pd.DataFrame:
    """Calendar-month returns in %: one row per year, columns Jan..Dec and Year (compounded).

    Each month compares its last equity with the previous month's last equity; the first month
    compares with ``cash`` (default: the first equity value). Months without bars are NaN.
    """
    _check_equity(equity)
    start = float(equity.iloc[0]) if cash is None else float(cash)
    month_end = equity.resample("MS").last().dropna()
    prev = month_end.shift(1)
    prev.iloc[0] = start
    r = month_end / prev - 1.0
    table = pd.DataFrame(
        {"year": r.index.year, "month": r.index.month, "r": r.to_numpy()}
    ).pivot(index="year", columns="month", values="r")
    table = table.reindex(columns=range(1, 13))
    year = (1.0 + table.fillna(0.0)).prod(axis=1) - 1.0
    table.columns = list(MONTHS)
    table["Year"] = year
    table.index.name = "year"
    table.columns.name = None
    return table * 100.0


def drawdown_periods(equity: pd.Series, top: int = 5) -> pd.DataFrame:
    """The ``top`` deepest drawdowns: peak, valley and recovery times, depth % and duration.

    Columns: peak, valley, recovery (NaT if not recovered by the last bar), depth_pct (negative),
    duration_days (peak to recovery, or to the last bar), recovered (bool). Sorted deepest first.
    """
    eq = _check_equity(equity)
    dd, starts, ends = _underwater_runs(eq)
    idx = equity.index
    cols = ["peak", "valley", "recovery", "depth_pct", "duration_days", "recovered"]
    if len(starts) == 0:
        out = pd.DataFrame({c: [] for c in cols})
        for c in ("peak", "valley", "recovery"):
            out[c] = pd.Series([], dtype=idx.dtype)
        return out.astype({"depth_pct": "float64", "duration_days": "float64",
                           "recovered": "bool"})
    depth = np.minimum.reduceat(dd, starts)
    order = np.argsort(depth, kind="stable")[:top]
    durations = _run_durations(idx, starts, ends)
    rows = []
    for k in order:
        s, e = starts[k], ends[k]
        valley = s + int(np.argmin(dd[s : e + 1]))
        recovered = e + 1 < len(eq)
        rows.append({
            "peak": idx[s - 1] if s > 0 else idx[0],
            "valley": idx[valley],
            "recovery": idx[e + 1] if recovered else pd.NaT,
            "depth_pct": 100.0 * float(depth[k]),
            "duration_days": float(durations[k]),
            "recovered": recovered,
        })
    out = pd.DataFrame(rows, columns=cols)
    out["recovery"] = pd.to_datetime(out["recovery"], utc=True).astype(idx.dtype)
    return out


def side_stats(trades: pd.DataFrame) -> pd.DataFrame:
    """Trade statistics for all, long and short trades side by side (TradingView-style)."""
    side = trades["side"].to_numpy()
    parts = {"all": trades, "long": trades[side > 0], "short": trades[side < 0]}
    return pd.DataFrame({k: trade_stats(v) for k, v in parts.items()})


def _group_stats(trades: pd.DataFrame, key: str) -> pd.DataFrame:
    cols = ["trades", "share_pct", "win_rate_pct", "pnl_total", "pnl_avg", "return_avg_pct"]
    if len(trades) == 0:
        return pd.DataFrame(columns=cols, index=pd.Index([], name=key), dtype="float64")
    g = trades.assign(_win=trades["pnl"] > 0).groupby(key, sort=True, dropna=False)
    out = pd.DataFrame({
        "trades": g.size(),
        "win_rate_pct": 100.0 * g["_win"].mean(),
        "pnl_total": g["pnl"].sum(),
        "pnl_avg": g["pnl"].mean(),
        "return_avg_pct": g["return_pct"].mean(),
    })
    out["share_pct"] = 100.0 * out["trades"] / len(trades)
    return out[cols].sort_values("trades", ascending=False, kind="stable")


def exit_reason_stats(trades: pd.DataFrame) -> pd.DataFrame:
    """Per exit reason: trades, share %, win rate %, total and mean PnL, mean return %."""
    return _group_stats(trades, "exit_reason")


def tag_stats(trades: pd.DataFrame) -> pd.DataFrame:
    """Per entry tag (freqtrade-style): the same columns as :func:`exit_reason_stats`, counting
    positions (partial exits folded in)."""
    return _group_stats(positions(trades), "tag")


def r_multiples(trades: pd.DataFrame) -> np.ndarray:
    """Each trade's result in R (module docstring), one value per position (partial exits
    folded in: :func:`positions`); NaN for a trade without an initial stop (or without the
    ``initial_stop`` column at all)."""
    return position_r(positions(trades))


def position_r(trades: pd.DataFrame) -> np.ndarray:
    """:func:`r_multiples` of a table already folded by :func:`positions`."""
    if "initial_stop" not in trades.columns:
        return np.full(len(trades), np.nan)
    risk = trades["size"].to_numpy(np.float64) * np.abs(
        trades["entry_price"].to_numpy(np.float64) - trades["initial_stop"].to_numpy(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(risk > 0, trades["pnl"].to_numpy(np.float64) / risk, np.nan)


def r_stats(trades: pd.DataFrame) -> dict[str, float]:
    """``expectancy_r`` (mean R), ``sqn`` and ``n_r_trades`` (trades with an R); NaN without R."""
    return r_figures(r_multiples(trades))


def r_figures(r: np.ndarray) -> dict[str, float]:
    """:func:`r_stats` of R multiples (NaN: no R)."""
    r = r[np.isfinite(r)]
    n = len(r)
    sd = float(np.std(r, ddof=1)) if n > 1 else math.nan
    return {
        "expectancy_r": float(r.mean()) if n else math.nan,
        "sqn": math.sqrt(n) * float(r.mean()) / sd if n > 1 and sd > 0 else math.nan,
        "n_r_trades": n,
    }


def r_distribution(trades: pd.DataFrame) -> pd.DataFrame:
    """How the trades' R multiples spread over the bins :data:`R_BINS` (``< -2R``, ``-2R..-1R``,
    ... ``>= 3R``; a bin holds ``lower <= R < upper``): ``trades`` and ``share_pct`` (of the
    trades with an R) per bin, indexed by the bin label."""
    r = r_multiples(trades)
    r = r[np.isfinite(r)]
    edges = np.asarray(R_BINS)
    labels = []
    for lo, hi in itertools.pairwise(edges):
        labels.append(f"< {hi:g}R" if np.isinf(lo) else f">= {lo:g}R" if np.isinf(hi)
                      else f"{lo:g}R..{hi:g}R")
    counts = np.histogram(r, bins=edges)[0] if len(r) else np.zeros(len(labels), np.int64)
    share = 100.0 * counts / len(r) if len(r) else np.full(len(labels), np.nan)
    return pd.DataFrame({"trades": counts.astype(np.int64), "share_pct": share},
                        index=pd.Index(labels, name="r_multiple"))
