"""Isolated-margin liquidation math for leveraged BTC perpetual positions (pure array functions).

The model (USDT-margined linear perpetual, one-way mode, isolated margin; Binance's formula):

* a position of notional ``N`` opened at price ``E`` with leverage ``L`` has the isolated margin
  ``N/L`` (minus the entry fee when ``entry_fee`` is taken from it);
* the maintenance margin is ``rate * notional - amount``: ``rate`` and ``amount`` come from the
  notional tier (:class:`MarginModel`; ``amount`` makes the tiers continuous);
* it is liquidated when margin + unrealised PnL falls to the maintenance margin, i.e. at
  ``LP_long  = E * (1 - 1/L + fee - amount/N) / (1 - rate)`` and
  ``LP_short = E * (1 + 1/L - fee + amount/N) / (1 + rate)``.

Exchanges trigger liquidation on the **mark price** (an index of several spot venues); these
functions are applied to candle lows/highs of one market, the usual backtest proxy: a wick on one
venue can cross a level that the mark price never reached, and the mark can move between candles.

:func:`survival` answers, for many entries at once, "up to which leverage would a position opened
at this bar's close have survived until the horizon, and when would each leverage on a grid have
been liquidated" with sparse tables (O(log n) per entry and leverage, independent of the horizon).
Nothing here imports ``backtests`` (indicators stay below the engines in the package flow).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit

from data import jit
from data.frame import DataError

__all__ = ["DEFAULT_TIERS_FILE", "MarginModel", "Survival", "Tier", "liquidated_above",
           "liquidation_distance_pct", "liquidation_prices", "load_tiers",
           "max_leverage_survived", "survival"]

#: Binance USDT-M BTCUSDT tier table shipped with the package (source and date inside).
DEFAULT_TIERS_FILE = Path(__file__).with_name("margin_tiers_binance_btcusdt.json")
#: Default position notional (USDT) of the survival analysis: inside Binance's first tier.
DEFAULT_NOTIONAL = 10_000.0


@dataclass(frozen=True)
class Tier:
    """One notional bracket: up to ``max_notional`` (quote currency), ``max_leverage`` allowed,
    ``maintenance_rate`` as a fraction of notional."""

    max_notional: float
    max_leverage: float
    maintenance_rate: float


@dataclass(frozen=True)
class MarginModel:
    """Margin terms of the position being analysed.

    Attributes:
        tiers: notional brackets, ascending (a single open-ended tier for a flat rate).
        notional: position notional in quote currency (selects the tier).
        entry_fee: fee at entry as a fraction of notional, taken from the isolated margin
            (0 = paid from the wallet, as the engines do).
        liquidation_fee: fee charged on liquidation, fraction of the notional at the liquidation
            price (does not move the price; it sets the loss, see :meth:`loss_of_margin`).
        source: where the tier table comes from, with its date.
    """

    tiers: tuple[Tier, ...] = field(default_factory=lambda: load_tiers(DEFAULT_TIERS_FILE).tiers)
    notional: float = DEFAULT_NOTIONAL
    entry_fee: float = 0.0
    liquidation_fee: float = 0.005
    source: str = "Binance USDT-M BTCUSDT tiers, 2021-03-18"

    def __post_init__(self) -> None:
        if not self.tiers:
            raise DataError("a margin model needs at least one tier")
        if not (np.isfinite(self.notional) and self.notional > 0):
            raise DataError(f"notional must be > 0, got {self.notional}")
        if not 0 <= self.entry_fee < 0.1 or not 0 <= self.liquidation_fee < 0.5:
            raise DataError(f"fees out of range: entry {self.entry_fee}, liquidation "
                            f"{self.liquidation_fee} (fractions of notional)")

    @classmethod
    def flat(cls, rate: float, **kw: object) -> MarginModel:
        """One maintenance rate for every notional (no tier amount, no leverage cap)."""
        if not 0 <= rate < 0.5:
            raise DataError(f"maintenance rate must be in [0, 0.5), got {rate}",
                            hint="0.005 = 0.5 %")
        kw.setdefault("source", f"flat maintenance rate {rate:g}")
        return cls(tiers=(Tier(np.inf, np.inf, float(rate)),), **kw)  # type: ignore[arg-type]

    def terms(self) -> tuple[float, float, float]:
        """(maintenance rate, maintenance amount / notional, max leverage) for :attr:`notional`.

        The amount of tier ``k`` is ``amount[k-1] + floor_k * (rate_k - rate[k-1])`` with
        ``floor_k`` the previous tier's ``max_notional`` (Binance's "maintenance amount")."""
        amount = 0.0
        prev_rate = self.tiers[0].maintenance_rate
        floor = 0.0
        for t in self.tiers:
            amount += floor * (t.maintenance_rate - prev_rate)
            prev_rate = t.maintenance_rate
            if self.notional <= t.max_notional:
                return t.maintenance_rate, amount / self.notional, t.max_leverage
            floor = t.max_notional
        raise DataError(f"notional {self.notional:,.0f} is above the last tier "
                        f"({self.tiers[-1].max_notional:,.0f})", hint="use a smaller --notional")

    def loss_of_margin(self, leverage: np.ndarray | float, side: int) -> np.ndarray:
        """Share of the isolated margin lost when liquidated (1.0 = exactly the margin).

        Loss = margin - maintenance at the liquidation price + liquidation fee there."""
        lev = np.asarray(leverage, dtype=np.float64)
        lp = liquidation_prices(side, 1.0, lev, self)
        rate, amount, _ = self.terms()
        margin = 1.0 / lev - self.entry_fee
        kept = rate * lp - amount - self.liquidation_fee * lp
        return np.where(np.isnan(lp), 0.0, (margin - kept) / margin)


def load_tiers(path: str | Path) -> MarginModel:
    """Read a tier table: JSON ``{"source", "date", "tiers": [{max_notional, max_leverage,
    maintenance_rate}, ...]}`` or a CSV with those three columns. Returns a :class:`MarginModel`
    with the default notional and fees."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"cannot read tier file {path}: {exc.strerror}") from None
    source = str(path)
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
            rows = doc["tiers"]
            source = f"{doc.get('name', path.name)}, {doc.get('date', 'undated')}"
        else:
            lines = [ln.split(",") for ln in text.strip().splitlines()]
            head = [h.strip() for h in lines[0]]
            rows = [dict(zip(head, (v.strip() for v in ln), strict=True)) for ln in lines[1:]]
        tiers = tuple(Tier(float(r["max_notional"]), float(r["max_leverage"]),
                           float(r["maintenance_rate"])) for r in rows)
    except (KeyError, ValueError, TypeError, IndexError, json.JSONDecodeError) as exc:
        raise DataError(f"tier file {path} is not a tier table ({type(exc).__name__}: {exc})",
                        hint="columns/keys: max_notional, max_leverage, maintenance_rate") from None
    bounds = [t.max_notional for t in tiers]
    if not tiers or bounds != sorted(bounds) or any(not 0 <= t.maintenance_rate < 1
                                                    for t in tiers):
        raise DataError(f"tier file {path}: tiers must be ascending by max_notional with "
                        f"rates in [0, 1)")
    return MarginModel(tiers=tiers, source=source)


def liquidation_prices(side: int, entry_price: np.ndarray | float, leverage: np.ndarray | float,
                       model: MarginModel) -> np.ndarray:
    """Liquidation price(s), quote currency, broadcasting entry prices against leverages.

    NaN where the position cannot be liquidated (a long whose price would be <= 0)."""
    rate, amount, _ = model.terms()
    e = np.asarray(entry_price, dtype=np.float64)
    inv = 1.0 / np.asarray(leverage, dtype=np.float64)
    if side > 0:
        lp = e * (1.0 - inv + model.entry_fee - amount) / (1.0 - rate)
        return np.where(lp > 0.0, lp, np.nan)
    return e * (1.0 + inv - model.entry_fee + amount) / (1.0 + rate)


def max_leverage_survived(side: int, entry_price: np.ndarray | float,
                          extreme: np.ndarray | float, model: MarginModel) -> np.ndarray:
    """The leverage at which the liquidation price equals ``extreme`` (the lowest low for a
    long, the highest high for a short): every leverage strictly below it survived. Capped at
    the tier's max leverage (also when no leverage would have been liquidated)."""
    rate, amount, cap = model.terms()
    e = np.asarray(entry_price, dtype=np.float64)
    x = np.asarray(extreme, dtype=np.float64)
    if side > 0:
        d = 1.0 + model.entry_fee - amount - x * (1.0 - rate) / e
    else:
        d = x * (1.0 + rate) / e - 1.0 + model.entry_fee - amount
    with np.errstate(divide="ignore"):
        lev = np.where(d > 0.0, 1.0 / np.where(d > 0.0, d, 1.0), np.inf)
    return np.minimum(lev, cap)


class Survival(NamedTuple):
    """Per entry (rows) results of :func:`survival`.

    liq_bar: (entries, leverages) int64, index of the first bar whose low (long) / high (short)
        reaches the liquidation price, -1 when the position survived to its horizon end.
    extreme_bar: int64 bar of the lowest low (long) / highest high (short) after the entry.
    extreme: that price (the adverse excursion's end).
    max_leverage: float, :func:`max_leverage_survived` at ``extreme``.
    """

    liq_bar: np.ndarray
    extreme_bar: np.ndarray
    extreme: np.ndarray
    max_leverage: np.ndarray


@njit(cache=True)
def _sparse_arg(values, sign):  # pragma: no cover - compiled
    """Sparse table of arg-min (sign=+1) / arg-max (sign=-1) over windows of 2**j bars."""
    n = len(values)
    levels = 1
    while (1 << levels) <= n:
        levels += 1
    table = np.empty((levels, n), dtype=np.int64)
    for k in range(n):
        table[0, k] = k
    for j in range(1, levels):
        half = 1 << (j - 1)
        for k in range(n - (1 << j) + 1):
            a = table[j - 1, k]
            b = table[j - 1, k + half]
            table[j, k] = a if sign * values[a] <= sign * values[b] else b
    return table


@njit(cache=True)
def _range_arg(table, values, sign, lo, hi):  # pragma: no cover - compiled
    """Arg-min/max of values[lo..hi] (inclusive) from the sparse table."""
    length = hi - lo + 1
    j = 0
    while (1 << (j + 1)) <= length:
        j += 1
    a = table[j, lo]
    b = table[j, hi - (1 << j) + 1]
    return a if sign * values[a] <= sign * values[b] else b


@njit(cache=True)
def _first_reach(table, values, sign, lo, hi, level):  # pragma: no cover - compiled
    """First k in [lo, hi] with sign*values[k] <= sign*level, or -1 (greedy block skipping)."""
    pos = lo
    for j in range(table.shape[0] - 1, -1, -1):
        width = 1 << j
        if pos + width - 1 <= hi and sign * values[table[j, pos]] > sign * level:
            pos += width
    if pos <= hi and sign * values[pos] <= sign * level:
        return pos
    return -1


@njit(cache=True)
def _survival_nb(path, entries, ends, sign, levels):  # pragma: no cover - compiled
    """For each entry i (bar entries[i]), over bars entries[i]+1..ends[i]:
    the arg-extreme bar and, per liquidation level row levels[i, :], the first bar reaching it."""
    table = _sparse_arg(path, sign)
    m = len(entries)
    g = levels.shape[1]
    liq = np.full((m, g), -1, dtype=np.int64)
    ext = np.full(m, -1, dtype=np.int64)
    for i in range(m):
        lo = entries[i] + 1
        hi = ends[i]
        if hi < lo:
            continue
        ext[i] = _range_arg(table, path, sign, lo, hi)
        worst = path[ext[i]]
        for j in range(g):
            lv = levels[i, j]
            if np.isnan(lv) or sign * worst > sign * lv:
                continue
            liq[i, j] = _first_reach(table, path, sign, lo, hi, lv)
    return liq, ext


def survival(low: np.ndarray, high: np.ndarray, close: np.ndarray, entries: np.ndarray,
             ends: np.ndarray, side: int, leverages: np.ndarray, model: MarginModel) -> Survival:
    """Leverage survival of positions opened at the close of each bar in ``entries``.

    A position opened at ``close[i]`` is watched over bars ``i+1 .. ends[i]`` (inclusive bar
    indices) and liquidated on the first bar whose low (long, ``side=1``) or high (short,
    ``side=-1``) reaches its liquidation price (:func:`liquidation_prices`). Entries with
    ``ends[i] <= i`` get ``extreme_bar = -1`` and NaN results.
    """
    if side not in (1, -1):
        raise ValueError(f"side must be 1 (long) or -1 (short), got {side}")
    entries = np.ascontiguousarray(entries, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    prices = np.ascontiguousarray(np.asarray(close, dtype=np.float64)[entries])
    levs = np.asarray(leverages, dtype=np.float64)
    levels = np.ascontiguousarray(liquidation_prices(side, prices[:, None], levs[None, :], model))
    path = np.ascontiguousarray(low if side > 0 else high, dtype=np.float64)
    liq, ext = jit.call(_survival_nb, path, entries, ends, float(side), levels,
                        work=len(path) + levels.size)
    extreme = np.where(ext >= 0, path[np.maximum(ext, 0)], np.nan)
    max_lev = np.where(ext >= 0, max_leverage_survived(side, prices, extreme, model), np.nan)
    return Survival(liq, ext, extreme, max_lev)


def liquidated_above(entry_prices: np.ndarray, extreme: float, side: int = 1,
                     model: MarginModel | None = None) -> float | None:
    """The leverage above which *every* position opened at ``entry_prices`` on ``side`` is
    liquidated by a bar reaching ``extreme`` (its low for longs, high for shorts): the largest of
    the entries' :func:`max_leverage_survived`. None when some entry would survive any leverage
    the tier allows (its price is already beyond ``extreme``) or there is no entry."""
    model = model or MarginModel()
    prices = np.asarray(entry_prices, dtype=np.float64)
    if not len(prices):
        return None
    worst = float(np.max(max_leverage_survived(side, prices, extreme, model)))
    return None if worst >= model.terms()[2] else worst


def liquidation_distance_pct(side: np.ndarray, entry_price: np.ndarray, mae_pct: np.ndarray,
                             liquidation_price: np.ndarray) -> np.ndarray:
    """How close each trade came to its liquidation price: the gap between its worst price
    (``mae_pct``, % of entry, negative = against the position) and the liquidation price, in %
    of the entry price. 0 = reached (liquidated); NaN where there is no liquidation price."""
    side = np.asarray(side, dtype=np.float64)
    pe = np.asarray(entry_price, dtype=np.float64)
    lp = np.asarray(liquidation_price, dtype=np.float64)
    return np.asarray(mae_pct, dtype=np.float64) + side * (1.0 - lp / pe) * 100.0
