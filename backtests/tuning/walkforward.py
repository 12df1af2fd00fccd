"""Walk-forward analysis: choose parameters on a training window, trade them on the next window.

Windows are rolling (a fixed-length training window slides forward) or anchored (training always
starts at the first bar and grows). Lengths are in bars (``int``) or time (``"730D"``,
``"26W"``: anything :class:`pandas.Timedelta` parses). On each step:

1. a sweep (:func:`backtests.tuning.sweep.run_sweep`) over the parameter space ranks every set
   on the training window (indicators warm up on the bars before it, trades stay inside it);
2. the best set by ``metric`` is run on the following test window: its signals are computed on
   the data up to the end of the test window (so indicators are warmed up on everything before,
   and nothing after the window is visible), and it trades only inside the window: a position
   still open at the window's last bar is closed at that bar's close;
3. the test windows' per-bar returns are chained into one out-of-sample equity curve.

The result puts in-sample and out-of-sample metrics side by side, with the deflated Sharpe ratio
and the probability of backtest overfitting of each window's selection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtests.config import BacktestConfig
from backtests.engines.fast import build_trades
from backtests.metrics import compute_metrics
from backtests.persist import load_frames, plain, read_manifest, save_folder
from backtests.results import buy_and_hold
from backtests.tuning.evaluate import BacktestPayload, simulate_window, window_metrics
from backtests.tuning.executors import Executor, make_executor
from backtests.tuning.space import Params, as_param_sets
from backtests.tuning.sweep import run_sweep
from data.frame import timeframe_of, to_canonical

#: The manifest file of a saved walk-forward.
WALKFORWARD_JSON = "walkforward.json"

#: Metrics shown side by side (in-sample: the chosen set on its training window).
COMPARED: tuple[str, ...] = ("sharpe", "sortino", "cagr_pct", "total_return_pct",
                             "max_drawdown_pct", "win_rate_pct", "profit_factor", "n_trades",
                             "exposure_pct")


def _to_bars(length: int | str | pd.Timedelta, index: pd.DatetimeIndex, at: int, name: str
             ) -> int:
    """A window length in bars: ``int`` as is, a duration converted at bar position ``at``."""
    if isinstance(length, int | np.integer):
        if length < 2:
            raise ValueError(f"{name} must be at least 2 bars, got {length}")
        return int(length)
    try:
        td = pd.Timedelta(length)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {length!r} is neither a number of bars nor a duration "
                         "like '365D'") from None
    if td <= pd.Timedelta(0):
        raise ValueError(f"{name} must be positive, got {length!r}")
    end = int(index.searchsorted(index[min(at, len(index) - 1)] + td, side="left"))
    return max(end - at, 2)


def make_windows(index: pd.DatetimeIndex, train: int | str, test: int | str,
                 anchored: bool = False, step: int | str | None = None,
                 min_test: int = 2) -> list[tuple[int, int, int, int]]:
    """``(train_start, train_end, test_start, test_end)`` bar positions (ends exclusive).

    Rolling: the training window has a fixed length and slides by ``step`` (default: the test
    length), so test windows tile the data without overlap. Anchored: training starts at bar 0.
    The last test window is cut at the end of the data (dropped if shorter than ``min_test``).
    """
    n = len(index)
    windows = []
    train_start = 0
    train_end = _to_bars(train, index, 0, "train")
    while train_end < n:
        test_len = _to_bars(test, index, train_end, "test")
        test_end = min(train_end + test_len, n)
        if test_end - train_end < min_test:
            break
        windows.append((0 if anchored else train_start, train_end, train_end, test_end))
        adv = test_end - train_end if step is None else _to_bars(step, index, train_end, "step")
        if not anchored:
            train_start += adv
        train_end += adv
    if not windows:
        raise ValueError(f"no walk-forward window fits in {n} bars with train={train!r}, "
                         f"test={test!r}: use shorter windows or more data")
    return windows


@dataclass
class WalkForwardResult:
    """Walk-forward outcome.

    ``windows``: one row per step (times, chosen parameters, ``is_*`` and ``oos_*`` metrics,
    the selection's ``dsr`` and ``pbo``); ``comparison``: in-sample vs out-of-sample metrics side
    by side (means of the finite values over windows, trade counts summed), plus the stitched
    out-of-sample curve's own metrics, and the rows ``windows`` and ``windows_without_trades``
    (a window without trades has no Sharpe, Sortino, win rate or profit factor: those means are
    over the windows that traded);
    ``oos_equity``: the stitched out-of-sample equity (quote currency, starting at ``cash`` on
    the bar before the first test window); ``benchmark``: buy-and-hold equity on the same bars
    (bought at the first test bar's open, :func:`backtests.results.buy_and_hold`);
    ``oos_trades``: the trades of all test windows (bar positions refer to the full data frame;
    column ``window``).
    """

    strategy: str
    metric: str
    param_names: list[str]
    windows: pd.DataFrame
    comparison: pd.DataFrame
    oos_equity: pd.Series
    oos_trades: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    benchmark: pd.Series | None = None

    @property
    def params_by_window(self) -> list[Params]:
        """The parameter set chosen on each train window, in window order."""
        # to_dict keeps each column's dtype; iterrows may upcast int parameters to float.
        return [{k: plain(v) for k, v in r.items()}
                for r in self.windows[self.param_names].to_dict("records")]

    def save(self, directory: str | Path) -> Path:
        """``walkforward.json`` plus Parquet frames (:func:`backtests.persist.save_folder`:
        atomic; other files in ``directory`` left alone)."""
        meta = {"strategy": self.strategy, "metric": self.metric,
                "param_names": self.param_names, "config": self.config,
                "settings": self.settings}
        return save_folder(directory, WALKFORWARD_JSON, meta, {
            "windows": self.windows, "comparison": self.comparison,
            "oos_equity": self.oos_equity, "oos_trades": self.oos_trades,
            "benchmark": self.benchmark})

    @classmethod
    def load(cls, directory: str | Path) -> WalkForwardResult:
        """Read a directory written by :meth:`save`.

        Raises:
            DataError: no saved walk-forward there, or a file missing or altered.
        """
        meta = read_manifest(directory, WALKFORWARD_JSON, "walk-forward")
        frames = load_frames(directory, meta, required=("windows", "comparison", "oos_equity",
                                                        "oos_trades"))
        meta.pop("files")
        return cls(benchmark=frames.pop("benchmark", None), **frames, **meta)


def walk_forward(
    df: pd.DataFrame,
    strategy_cls: type,
    space: list[Params] | dict[str, list[Any]],
    train: int | str,
    test: int | str,
    config: Any = None,
    metric: str = "sharpe",
    anchored: bool = False,
    step: int | str | None = None,
    executor: str | Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> WalkForwardResult:
    """Walk-forward optimisation of ``strategy_cls`` over ``space`` (see the module docstring).

    Args:
        df: candles (any frame :func:`data.frame.to_canonical` accepts).
        strategy_cls: a Strategy subclass.
        space: parameter sets or grid axes.
        train, test: window lengths, in bars or as durations (``"730D"``).
        config: ``BacktestConfig`` (default one if None).
        metric: selection metric (highest wins), one of ``backtests.tuning.sweep.SWEEP_METRICS``.
        anchored: training windows all start at bar 0 (else rolling).
        step: how far windows move (default: the test length).
        executor, workers, scheduler: where the training sweeps run.
        progress: called as ``progress(windows_done, n_windows)`` after each window.

    Returns:
        :class:`WalkForwardResult`.
    """
    df = to_canonical(df, "price frame")
    config = config or BacktestConfig()
    param_sets = as_param_sets(space)
    ex = make_executor(executor, workers, scheduler)
    wins = make_windows(df.index, train, test, anchored, step)
    rows = []
    oos_returns = []
    trades = []
    for k, (tr0, tr1, te0, te1) in enumerate(wins):
        sw = run_sweep(df, strategy_cls, param_sets, config, metric=metric, executor=ex,
                       start=tr0, end=tr1, top=0)
        is_row = sw.table.iloc[0]
        # The set itself (``trial`` is its position), not the table row: a row mixing ints and
        # floats is upcast to float, and an int parameter must stay an int.
        best = dict(param_sets[int(is_row["trial"])])
        pay = BacktestPayload(df=df, strategy_cls=strategy_cls, config=config, start=te0,
                              end=te1, keep_returns=True)
        equity, raw, sig = simulate_window(pay, best)  # once: trades and metrics from one run
        oos = window_metrics(pay, equity, raw)
        win_trades = build_trades(pay.frame(), raw, config, sig.tags if sig is not None else None)
        win_trades.insert(0, "window", k)
        trades.append(win_trades)
        oos_returns.append(pd.Series(oos.pop("_returns"), index=df.index[te0:te1]))
        row: dict[str, Any] = {
            "window": k,
            "train_start": df.index[tr0], "train_end": df.index[tr1 - 1],
            "test_start": df.index[te0], "test_end": df.index[te1 - 1],
            "train_bars": tr1 - tr0, "test_bars": te1 - te0, **best,
        }
        shown = COMPARED if metric in COMPARED else (*COMPARED, metric)
        row.update({f"is_{m}": plain(is_row[m]) for m in shown})
        row.update({f"oos_{m}": plain(oos[m]) for m in shown})
        row["dsr"] = sw.overfit.get("dsr", np.nan)
        row["pbo"] = sw.overfit.get("pbo", np.nan)
        row["n_trials"] = len(param_sets)
        rows.append(row)
        if progress is not None:
            progress(k + 1, len(wins))
    windows = pd.DataFrame(rows)
    r = pd.concat(oos_returns)
    first = wins[0][2]
    idx = df.index[first - 1:wins[-1][3]] if first > 0 else df.index[:wins[-1][3]]
    eq_vals = config.cash * np.cumprod(np.r_[1.0, 1.0 + r.to_numpy()])
    if first == 0:  # cannot happen (train >= 2 bars), kept for clarity
        eq_vals = eq_vals[1:]
    oos_equity = pd.Series(eq_vals, index=idx, name="equity")
    # Buy and hold over the same bars: cash until the first test bar's open, then held.
    bh = buy_and_hold(df.iloc[first:wins[-1][3]], config.cash, config.commission)
    benchmark = pd.concat([pd.Series([config.cash], index=df.index[first - 1:first]), bh]
                          ).rename("benchmark")
    oos_trades = pd.concat(trades, ignore_index=True)
    shifted = oos_trades.copy()  # bar positions relative to the stitched curve's first bar
    off = max(first - 1, 0)
    shifted["entry_bar"] -= off
    shifted["exit_bar"] -= off
    stitched = compute_metrics(oos_equity, shifted, None, timeframe_of(df), cash=config.cash)
    def finite_mean(col: str) -> float:
        v = windows[col].to_numpy(dtype=float)
        v = v[np.isfinite(v)]  # a window without losing trade has profit factor inf
        return float(v.mean()) if len(v) else np.nan

    comp = pd.DataFrame({
        "in_sample": [finite_mean(f"is_{m}") for m in COMPARED],
        "out_of_sample": [finite_mean(f"oos_{m}") for m in COMPARED],
        "stitched_oos": [stitched.get(m, np.nan) for m in COMPARED],
    }, index=list(COMPARED))
    comp.loc["n_trades", ["in_sample", "out_of_sample"]] = [
        windows["is_n_trades"].sum(), windows["oos_n_trades"].sum()]
    # Said, not silently dropped: a window without trades has no Sharpe, Sortino, win rate or
    # profit factor, so those means are over the windows that traded (returns count it as 0 %).
    comp.loc["windows"] = [len(windows), len(windows), np.nan]
    comp.loc["windows_without_trades"] = [int((windows["is_n_trades"] == 0).sum()),
                                          int((windows["oos_n_trades"] == 0).sum()), np.nan]
    return WalkForwardResult(
        strategy=getattr(strategy_cls, "name", strategy_cls.__name__),
        metric=metric,
        param_names=list(param_sets[0]),
        windows=windows,
        comparison=comp,
        oos_equity=oos_equity,
        oos_trades=oos_trades,
        config=config.to_dict(),
        settings={"train": str(train), "test": str(test), "anchored": anchored,
                  "step": None if step is None else str(step), "n_sets": len(param_sets),
                  "mean_pbo": float(windows["pbo"].mean()),
                  "mean_dsr": float(windows["dsr"].mean())},
        benchmark=benchmark,
    )


def format_span(start: pd.Timestamp, end: pd.Timestamp, sep: str = " → ") -> str:
    """``"2019-01-01 → 2020-12-31"`` (times shown only when a bound is not at midnight)."""
    def one(ts: pd.Timestamp) -> str:
        ts = pd.Timestamp(ts)
        return f"{ts:%Y-%m-%d}" if ts == ts.normalize() else f"{ts:%Y-%m-%d %H:%M}"

    return f"{one(start)}{sep}{one(end)}"
