"""A backtest as an evaluation function for sweeps: the payload shipped once to every worker,
one parameter set run through the fast kernel on a window, and its metrics (computed by
:func:`backtests.metrics.core_metrics`, the same code as a full result's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtests.engines.fast import (
    OPEN_EXIT_CODES,
    R_PARTIAL,
    RAW_COLUMNS,
    Market,
    kernel_inputs,
    market_arrays,
    raw_pnl,
    simulate_nb,
)
from backtests.metrics import CORE_KEYS, YEAR, core_metrics, fold_rows, periods_per_year
from backtests.tuning.space import Params
from data.frame import timeframe_of, to_canonical
from strategies.native import BacktraderStrategy

# --- backtests as evaluations ------------------------------------------------------------------

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

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to a worker: the candles and settings, not what the worker rebuilds itself.
        return {**self.__dict__, "_arrays": None, "_frame": None, "_span": None}

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
            self._frame = light
        return self._frame

    def market(self) -> Market:
        """The kernel's price arrays of :meth:`frame`, built once per payload."""
        if self._arrays is None:
            self._arrays = market_arrays(self.frame(), self.config, self.timeframe())
        return self._arrays

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
    sig = strategy.signals_on_canonical(df).validate(len(df))
    cut = max(start - 1, 0)
    if cut:
        sig.entry = sig.entry.copy()
        sig.exit = sig.exit.copy()
        sig.entry[:cut] = 0
        sig.exit[:cut] = False
    return sig


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
    sig = window_signals(strat, payload.frame(), payload.start)
    equity, raw = simulate_nb(kernel_inputs(payload.market(), sig, payload.config))
    return equity, raw, sig


def window_metrics(payload: BacktestPayload, equity: np.ndarray, raw: np.ndarray
                   ) -> dict[str, Any]:
    """:data:`SWEEP_METRICS` of a window simulated by :func:`simulate_window` (and its per-bar
    returns under ``"_returns"`` when the payload keeps them, for PBO)."""
    lo = payload.first
    eq = equity[lo:]
    out: dict[str, Any] = raw_metrics(eq, raw, *payload.span(), payload.config.cash, offset=lo)
    if payload.keep_returns:
        with np.errstate(divide="ignore", invalid="ignore"):
            out["_returns"] = np.where(eq[:-1] > 0, eq[1:] / eq[:-1] - 1.0, 0.0)
    return out


def evaluate_backtest(payload: BacktestPayload, params: Params) -> dict[str, Any]:
    """Evaluation function of backtest sweeps: :func:`window_metrics` of one parameter set."""
    equity, raw, _ = simulate_window(payload, params)
    return window_metrics(payload, equity, raw)
