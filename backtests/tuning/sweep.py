"""Parameter sweeps: :func:`run_sweep` backtests every parameter set of a space (on an executor of
:mod:`backtests.tuning.executors`, each set evaluated by :mod:`backtests.tuning.evaluate`), ranks
them by a metric with a stable sort (ties keep parameter order) and judges the winner (deflated
Sharpe ratio, probability of backtest overfitting); :class:`SweepResult` holds and saves it.

Parameter spaces are built by :mod:`backtests.tuning.space`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtests.config import BacktestConfig
from backtests.persist import load_frames, plain, read_manifest, save_folder
from backtests.results import data_fingerprint, package_version
from backtests.runner import run
from backtests.tuning.evaluate import (
    SWEEP_METRICS,
    BacktestPayload,
    evaluate_backtest,
    simulate_window,
)
from backtests.tuning.executors import Executor, ProgressFn, evaluate_all, make_executor
from backtests.tuning.overfit import (
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from backtests.tuning.space import Params, as_param_sets, check_params
from data.frame import to_canonical
from strategies.native import BacktraderStrategy

# --- sweep results ---------------------------------------------------------------------------


#: The manifest file of a saved sweep.
SWEEP_JSON = "sweep.json"


@dataclass
class SweepResult:
    """A sweep: one row per parameter set (``trial`` = its position in the space), sorted by
    ``metric`` (best first), plus what is needed to judge it honestly and to report it without
    recomputing: per-bar returns of every trial (for PBO, when kept), the equity of the best few,
    and the overfitting statistics of the selection."""

    strategy: str
    metric: str
    param_names: list[str]
    table: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)
    returns: pd.DataFrame | None = None        # per-bar returns, columns = trial ids (str)
    best_equity: pd.DataFrame | None = None    # equity of the best few, columns = trial ids (str)
    benchmark: pd.Series | None = None         # buy-and-hold equity over the same bars
    overfit: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # conflicting sets, not run
    executor: str = ""
    workers: int = 0
    elapsed_s: float = 0.0
    created: str = ""
    version: str = ""

    @property
    def best(self) -> Params:
        """Parameters of the best row (by ``metric``)."""
        # Column by column: ``table.iloc[0]`` would upcast int parameters to float.
        return {k: plain(self.table[k].iloc[0]) for k in self.param_names}

    def save(self, directory: str | Path) -> Path:
        """Write ``sweep.json`` and Parquet frames into ``directory``
        (:func:`backtests.persist.save_folder`: atomic; other files left alone)."""
        meta = {k: getattr(self, k) for k in (
            "strategy", "metric", "param_names", "config", "data", "space", "overfit",
            "skipped", "executor", "workers", "elapsed_s", "created", "version")}
        return save_folder(directory, SWEEP_JSON, meta, {
            "table": self.table, "returns": self.returns, "best_equity": self.best_equity,
            "benchmark": self.benchmark})

    @classmethod
    def load(cls, directory: str | Path) -> SweepResult:
        """Read a directory written by :meth:`save`.

        Raises:
            DataError: no saved sweep there, or a file missing or altered.
        """
        meta = read_manifest(directory, SWEEP_JSON, "sweep")
        frames = load_frames(directory, meta, required=("table",))
        meta.pop("files")
        return cls(**frames, **meta)


def results_table(param_sets: Sequence[Params], metrics: Sequence[dict], metric: str,
                  ascending: bool = False, trials: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per set: ``trial`` (``trials[i]``, default the position ``i``), the parameters,
    then scalar metrics; stably sorted by ``metric`` (NaN last)."""
    ids = list(range(len(param_sets)) if trials is None else trials)
    if len(ids) != len(param_sets) or len(metrics) != len(param_sets):
        raise ValueError(f"{len(param_sets)} parameter sets, {len(metrics)} metric dicts and "
                         f"{len(ids)} trial ids: one each per set")
    cols = _table_columns(ids, param_sets, metrics)
    if cols is not None and isinstance(cols.get(metric), np.ndarray):
        # sorted before the frame is built: pandas' sort_values and reset_index cost ~0.4 ms
        # on 240 rows when their code is not in the CPU caches, as after another job
        order = sort_order(cols[metric], ascending)
        return pd.DataFrame({k: v[order] if isinstance(v, np.ndarray) else [v[i] for i in order]
                             for k, v in cols.items()})
    if cols is not None:
        table = pd.DataFrame(cols)
    else:  # sets or metrics with different keys: row by row, missing ones NaN
        rows = []
        for i, p, m in zip(ids, param_sets, metrics, strict=True):
            row = {"trial": i, **p}
            row.update({k: v for k, v in m.items() if np.isscalar(v) and not k.startswith("_")})
            rows.append(row)
        table = pd.DataFrame(rows)
    if metric not in table.columns:
        raise ValueError(f"unknown metric {metric!r}; available: "
                         f"{sorted(c for c in table.columns if c != 'trial')}")
    return table.sort_values(metric, ascending=ascending, kind="mergesort",
                             na_position="last").reset_index(drop=True)


def sort_order(values: np.ndarray, ascending: bool = False) -> np.ndarray:
    """Row positions (intp) that sort ``values`` (a 1-D float or int array) as pandas'
    ``sort_values(kind="mergesort", na_position="last")`` does: a stable sort (equal values
    keep their order, descending too), NaN last in their order. The steps of
    ``pandas.core.sorting.nargsort``, so the same positions (``tests/test_sweep_exact.py``
    compares them on ties, NaN and signed zeros)."""
    mask = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), dtype=bool)
    idx = np.arange(len(values))
    non_nans = values[~mask]
    non_nan_idx = idx[~mask]
    if not ascending:
        non_nans = non_nans[::-1]
        non_nan_idx = non_nan_idx[::-1]
    order = non_nan_idx[non_nans.argsort(kind="mergesort")]
    if not ascending:
        order = order[::-1]
    return np.concatenate([order, np.nonzero(mask)[0]]).astype(np.intp)


def _table_columns(ids: list[int], param_sets: Sequence[Params], metrics: Sequence[dict]
                   ) -> dict[str, Any] | None:
    """:func:`results_table`'s columns, name -> array or list, in row order (a sweep's sets all
    have the same keys; 240 rows: ~1 ms instead of ~5 ms row by row), or None when the sets or
    the metric dicts differ in their keys or a metric is scalar in some rows only."""
    if not param_sets:
        return None
    p_keys, m_keys = list(param_sets[0]), list(metrics[0])
    if any(list(p) != p_keys for p in param_sets) or any(list(m) != m_keys for m in metrics):
        return None
    cols: dict[str, Any] = {"trial": _column(ids)}
    for k in p_keys:
        cols[k] = _column([p[k] for p in param_sets])
    is_scalar: dict[type, bool] = {}  # np.isscalar depends on the type alone: once per type
    for k in m_keys:
        if k.startswith("_"):
            continue
        values = [m[k] for m in metrics]
        kinds = set()
        types = {type(v) for v in values}
        for t in types:
            if t not in is_scalar:
                is_scalar[t] = np.isscalar(next(v for v in values if type(v) is t))
            kinds.add(is_scalar[t])
        if kinds != {True}:
            if True in kinds:
                return None
            continue
        cols[k] = _column(values, types)
    return cols


def _column(values: list, types: set[type] | None = None) -> Any:
    """``values`` as the array pandas would make of the list when they are all Python floats
    (float64) or all Python ints that fit int64 (int64): ~10x faster for pandas than a list it
    inspects value by value (a sweep table's 20 columns: ~0.7 ms). Anything else stays a list
    (strings, bools, mixed types: pandas infers their column as before)."""
    types = {type(v) for v in values} if types is None else types
    if types == {float}:
        return np.array(values, dtype=np.float64)
    if types == {int} and -(2**63) <= min(values) and max(values) < 2**63:
        return np.array(values, dtype=np.int64)
    return values


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _pbo_splits(n_rows: int, wanted: int = 16) -> int:
    s = wanted
    while s > 2 and n_rows < 4 * s:
        s -= 2
    return s


def selection_statistics(table: pd.DataFrame, returns: pd.DataFrame | None,
                         pbo_splits: int = 16) -> dict[str, Any]:
    """Deflated Sharpe ratio of the best row (``table`` sorted best first) given all trials, and
    the PBO of the selection when per-bar returns of every trial are available."""
    out: dict[str, Any] = {}
    # (columns read as arrays: pandas' Series operations and a mixed-type row cost ~1 ms on a
    # sweep's 240 rows when their code is not in the CPU caches, as after another job)
    if "n_trades" in table and not (table["n_trades"].to_numpy() > 0).any():
        # Every set flat: Sharpe ratios are undefined and all CSCV ranks tie, so any DSR or PBO
        # would be noise dressed up as a statistic.
        out["note"] = "no parameter set traded: nothing to judge"
        return out
    srs = table["sr_bar"].to_numpy(dtype=float)
    finite = srs[np.isfinite(srs)]
    best = {k: table[k].to_numpy()[0] for k in ("sr_bar", "n_obs", "skew", "kurtosis")}
    n_trials = len(finite)
    if n_trials and np.isfinite(best["sr_bar"]) and best["n_obs"] >= 2:
        var = float(finite.var(ddof=1)) if n_trials > 1 else 0.0
        args = (float(best["sr_bar"]), int(best["n_obs"]))
        moments = (float(best["skew"]), float(best["kurtosis"]))
        sr0 = expected_max_sharpe(n_trials, var)  # deflated_sharpe_ratio's benchmark
        out["dsr"] = probabilistic_sharpe_ratio(*args, *moments, sharpe_benchmark=sr0)
        out["psr"] = probabilistic_sharpe_ratio(*args, *moments)
        out["sr0_bar"] = sr0
        out["n_trials"] = n_trials
        out["sr_variance"] = var
    if returns is not None and returns.shape[1] >= 2 and len(returns) >= 8:
        res = probability_of_backtest_overfitting(returns.to_numpy(),
                                                  n_splits=_pbo_splits(len(returns), pbo_splits))
        out["pbo"] = res.pbo
        out["pbo_prob_loss"] = res.prob_loss
        out["pbo_slope"] = res.degradation_slope
        out["pbo_splits"] = res.n_splits
        out["pbo_logits"] = res.logits.tolist()
        out["pbo_is"] = res.is_performance.tolist()
        out["pbo_oos"] = res.oos_performance.tolist()
    return out


def _rows_matrix(rows: list[np.ndarray]) -> np.ndarray:
    """``np.stack(rows)``, without the copy when the rows already are, in order, the rows of
    one C-contiguous matrix (a chunk evaluated together writes its sets' returns that way; the
    240-set daily grid's 6 MB copy cost ~1.3 ms). The matrix is then returned itself."""
    base = rows[0].base if rows else None
    if (isinstance(base, np.ndarray) and base.ndim == 2 and base.shape[0] == len(rows)
            and base.flags.c_contiguous and base.dtype == rows[0].dtype
            and all(r.base is base for r in rows)):
        start = base.__array_interface__["data"][0]
        step = base.strides[0]
        if all(r.shape == base.shape[1:] and r.__array_interface__["data"][0] == start + i * step
               for i, r in enumerate(rows)):
            return base
    return np.stack(rows)


#: Keep every trial's per-bar returns (for PBO) below this many values (T x N); 40 M = 320 MB.
KEEP_RETURNS_LIMIT = 40_000_000


def run_sweep(
    df: pd.DataFrame,
    strategy_cls: type,
    space: Sequence[Params] | dict[str, Sequence[Any]],
    config: Any = None,
    metric: str = "sharpe",
    executor: str | Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    top: int = 5,
    keep_returns: bool | None = None,
    progress: ProgressFn | None = None,
    start: int = 0,
    end: int | None = None,
    pbo_splits: int = 16,
) -> SweepResult:
    """Backtest ``strategy_cls`` with every parameter set of ``space`` on the fast engine.

    Args:
        df: candles (any frame :func:`data.frame.to_canonical` accepts).
        strategy_cls: a :class:`~strategies.base.Strategy` subclass.
        space: a list of parameter dicts (:func:`grid`, :func:`random_space`) or grid axes.
        config: ``BacktestConfig`` (default one if None).
        metric: column to sort by, best (highest) first: one of :data:`SWEEP_METRICS`.
        executor, workers, scheduler: where to run (:func:`make_executor`): local processes by
            default (all cores), ``"serial"``, or a Dask scheduler address.
        chunk_size: parameter sets per task (default: about 8 tasks per worker).
        top: how many of the best are re-run through ``backtests.run`` to store their equity.
        keep_returns: keep every trial's per-bar returns (needed for PBO); default: when the
            matrix has fewer than :data:`KEEP_RETURNS_LIMIT` values.
        start, end: trade only bars ``start .. end - 1`` (earlier bars warm indicators up).

    Returns:
        :class:`SweepResult` (table sorted by ``metric``; DSR and PBO in ``overfit``).
    """
    if metric not in SWEEP_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(SWEEP_METRICS)}")
    df = to_canonical(df, "price frame")
    config = config or BacktestConfig()
    param_sets = as_param_sets(space)
    if not param_sets:
        raise ValueError("the parameter space is empty")
    built: dict[int, tuple[Params, Any]] = {}
    skipped = check_params(strategy_cls, param_sets, built)
    n_space = len(param_sets)
    # Trial ids stay positions in the space the caller gave, conflicting sets left out.
    skip = {s["trial"] for s in skipped}
    trials = [i for i in range(n_space) if i not in skip]
    param_sets = [param_sets[i] for i in trials]
    end = len(df) if end is None else end
    lo = max(start - 1, 0)
    if keep_returns is None:
        keep_returns = (end - lo) * len(param_sets) <= KEEP_RETURNS_LIMIT
    payload = BacktestPayload(df=df, strategy_cls=strategy_cls, config=config, start=start,
                              end=end, keep_returns=keep_returns, _built=built)
    if not issubclass(strategy_cls, BacktraderStrategy):
        payload.market()  # built here once: forked workers inherit it instead of each building it
        payload.span()
    ex = make_executor(executor, workers, scheduler)
    t0 = time.perf_counter()
    metrics = evaluate_all(evaluate_backtest, payload, param_sets, executor=ex,
                           chunk_size=chunk_size, progress=progress)
    elapsed = time.perf_counter() - t0
    table = results_table(param_sets, metrics, metric, trials=trials)
    returns = None
    if keep_returns:
        # One block, a row per trial (pandas keeps a frame's columns as rows): 240 arrays
        # took ~7 ms to become a frame as a dict or np.column_stack, ~1 ms this way. The
        # layout (each trial's returns contiguous) is the one the dict gave, so PBO's block
        # sums run in the same order.
        returns = pd.DataFrame(_rows_matrix([m["_returns"] for m in metrics]).T,
                               index=df.index[lo + 1:end],
                               columns=pd.Index([str(i) for i in trials]), copy=False)
    # Re-run the best few through the engine proper: reports show them without recomputing.
    equity = {}
    bench = None
    for row in table.head(top).to_dict("records") if top > 0 else []:
        p = {k: plain(row[k]) for k in param_sets[0]}
        if start > 0:
            eq, _, _ = simulate_window(payload, p)
            equity[str(int(row["trial"]))] = eq[lo:]
        else:
            res = run(df.iloc[:end], strategy_cls(**p), config)
            equity[str(int(row["trial"]))] = res.equity.to_numpy()
            bench = res.benchmark
    best_equity = pd.DataFrame(equity, index=df.index[lo:end]) if equity else None
    return SweepResult(
        strategy=getattr(strategy_cls, "name", strategy_cls.__name__),
        metric=metric,
        param_names=list(param_sets[0]),
        table=table,
        config=config.to_dict(),
        data=data_fingerprint(df),
        space={"n": len(param_sets), "n_space": n_space, "start": start, "end": end},
        skipped=skipped,
        returns=returns,
        best_equity=best_equity,
        benchmark=bench,
        overfit=selection_statistics(table, returns, pbo_splits),
        executor=ex.name,
        workers=ex.workers,
        elapsed_s=elapsed,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        version=package_version(),
    )
