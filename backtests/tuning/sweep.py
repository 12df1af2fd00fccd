"""Parameter sweeps: parameter spaces, executors (local processes or Dask), and the sweep runner.

The machinery is generic: an *evaluation function* ``evaluate(payload, params) -> dict`` is run
over a list of parameter sets, in chunks, on an :class:`Executor`. The payload (the candles, the
strategy class, the engine configuration) is shipped once per worker, never per task:

* :class:`ProcessExecutor` (default: all cores) forks workers that receive the payload through the
  pool initializer; a chunk whose worker died (``BrokenProcessPool``) is resubmitted to a new pool.
* :class:`DaskExecutor` scatters the payload to every worker of a ``distributed`` cluster once and
  submits chunks with ``retries``; a killed worker's chunks are rescheduled by the scheduler.
* :class:`SerialExecutor` runs in the calling process (debugging, tiny sweeps).

Results are keyed by the parameter set's position in the space, so they are identical whatever the
executor, the number of workers or the chunk size; :func:`run_sweep` sorts them by the chosen
metric with a stable sort (ties keep parameter order).
"""

from __future__ import annotations

import itertools
import math
import multiprocessing as mp
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from backtests.engines.fast import (
    OPEN_EXIT_CODES,
    RAW_COLUMNS,
    Market,
    kernel_inputs,
    market_arrays,
    raw_pnl,
    simulate_nb,
)
from backtests.metrics import CORE_KEYS, YEAR, core_metrics, periods_per_year
from backtests.persist import load_frames, plain, read_manifest, save_folder
from data.frame import timeframe_of
from strategies.native import BacktraderStrategy

Params = dict[str, Any]
Evaluate = Callable[[Any, Params], dict[str, Any]]
ProgressFn = Callable[[int, int], None]


class SweepError(RuntimeError):
    """An evaluation failed for a reason retrying cannot fix (a bug or bad parameters)."""


# --- parameter spaces ------------------------------------------------------------------------

_RANGE_RE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")


def _number(text: str, spec: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{spec!r}: {text!r} is not a number") from None


def _scalar(text: str) -> Any:
    text = text.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return _number(text, text)
    except ValueError:
        return text


def parse_axis(spec: str) -> tuple[str, list[Any]]:
    """One grid axis from ``key=start:stop:step`` (stop inclusive), ``key=a,b,c`` or ``key=v``.

    Ranges of integers stay integers; float ranges are rounded to 12 significant digits so that
    ``0.1:0.3:0.1`` gives ``[0.1, 0.2, 0.3]`` and not ``0.30000000000000004``.
    """
    if "=" not in spec:
        raise ValueError(f"grid axis {spec!r} must look like key=start:stop:step or key=a,b,c")
    key, _, values = spec.partition("=")
    key = key.strip()
    if not key.isidentifier():
        raise ValueError(f"grid axis {spec!r}: {key!r} is not a parameter name")
    m = _RANGE_RE.match(values)
    if m:
        start, stop, step = (_number(g, spec) for g in m.groups())
        if step <= 0:
            raise ValueError(f"grid axis {spec!r}: step must be > 0")
        if stop < start:
            raise ValueError(f"grid axis {spec!r}: stop {stop} is below start {start}")
        n = math.floor((stop - start) / step + 1e-9) + 1
        if n > 100_000:
            raise ValueError(f"grid axis {spec!r} has {n} values: use a larger step")
        if all(isinstance(v, int) for v in (start, stop, step)):
            vals: list[Any] = [start + i * step for i in range(n)]
        else:
            vals = [float(f"{start + i * step:.12g}") for i in range(n)]
        return key, vals
    items = [v for v in values.split(",") if v.strip()]
    if not items:
        raise ValueError(f"grid axis {spec!r} has no values")
    return key, [_scalar(v) for v in items]


def parse_grid(specs: Iterable[str]) -> dict[str, list[Any]]:
    """Axes from ``--grid`` specs, in the order given; a key given twice is an error."""
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        key, vals = parse_axis(spec)
        if key in axes:
            raise ValueError(f"grid axis {key!r} is given twice")
        axes[key] = vals
    return axes


def grid(axes: dict[str, Sequence[Any]]) -> list[Params]:
    """Cartesian product of the axes, the first axis varying slowest (deterministic order)."""
    keys = list(axes)
    for k in keys:
        if len(axes[k]) == 0:
            raise ValueError(f"grid axis {k!r} has no values")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]


def random_space(
    n: int,
    ranges: dict[str, Sequence[Any] | tuple[float, float]],
    seed: int = 0,
    integer: Iterable[str] = (),
) -> list[Params]:
    """``n`` distinct random parameter sets, reproducible from ``seed``.

    Each range is either a list of values (sampled uniformly) or a ``(low, high)`` tuple of
    numbers (uniform in ``[low, high]``; integers in ``integer`` are drawn from ``low..high``).
    If the space has fewer than ``n`` distinct points, all of them are returned (in grid order).
    """
    if n < 1:
        raise ValueError(f"--random needs N >= 1, got {n}")
    integer = set(integer)
    keys = list(ranges)
    discrete: dict[str, list[Any]] = {}
    for k in keys:
        r = ranges[k]
        if isinstance(r, tuple):
            lo, hi = r
            if hi < lo:
                raise ValueError(f"random range for {k!r}: high {hi} is below low {lo}")
            if k in integer:
                discrete[k] = list(range(int(lo), int(hi) + 1))
        else:
            if len(r) == 0:
                raise ValueError(f"random range for {k!r} has no values")
            discrete[k] = list(r)
    if len(discrete) == len(keys):
        size = math.prod(len(v) for v in discrete.values())
        if size <= n:
            return grid(discrete)
    rng = np.random.default_rng(seed)
    seen: set[tuple] = set()
    out: list[Params] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"could not draw {n} distinct parameter sets from {ranges}")
        p: Params = {}
        for k in keys:
            if k in discrete:
                vals = discrete[k]
                p[k] = vals[int(rng.integers(len(vals)))]
            else:
                lo, hi = ranges[k]  # type: ignore[misc]
                p[k] = float(f"{rng.uniform(lo, hi):.12g}")
        key = tuple(p[k] for k in keys)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# --- executors -------------------------------------------------------------------------------

Chunk = list[tuple[int, Params]]


def _eval_chunk(evaluate: Evaluate, payload: Any, chunk: Chunk) -> list[tuple[int, dict]]:
    out = []
    for idx, params in chunk:
        try:
            out.append((idx, evaluate(payload, params)))
        except Exception as exc:  # carry the parameters that failed, as a picklable error
            raise SweepError(f"evaluation failed for parameters {params}: "
                             f"{type(exc).__name__}: {exc}") from None
    return out


# Per-process state of a pool worker: the payload arrives once, through the initializer.
_WORKER: dict[str, Any] = {}


def _init_worker(evaluate: Evaluate, payload: Any) -> None:
    _WORKER["evaluate"] = evaluate
    _WORKER["payload"] = payload


def _pool_chunk(chunk: Chunk) -> list[tuple[int, dict]]:
    return _eval_chunk(_WORKER["evaluate"], _WORKER["payload"], chunk)


class Executor(Protocol):
    """Runs ``evaluate`` over chunks of parameter sets; returns ``(index, metrics)`` pairs."""

    name: str
    workers: int

    def run(
        self, evaluate: Evaluate, payload: Any, chunks: list[Chunk],
        progress: ProgressFn | None = None,
    ) -> list[tuple[int, dict]]: ...


class SerialExecutor:
    """Everything in the calling process, one chunk after another."""

    name = "serial"
    workers = 1

    def run(self, evaluate: Evaluate, payload: Any, chunks: list[Chunk],
            progress: ProgressFn | None = None) -> list[tuple[int, dict]]:
        out: list[tuple[int, dict]] = []
        total = sum(len(c) for c in chunks)
        for chunk in chunks:
            out.extend(_eval_chunk(evaluate, payload, chunk))
            if progress:
                progress(len(out), total)
        return out


class ProcessExecutor:
    """A local process pool (``workers`` processes, default all cores).

    The payload is handed to each worker once by the pool initializer (with the ``fork`` start
    method it is inherited, not even pickled). If a worker dies (killed, out of memory,
    ``os._exit``), every chunk not yet finished is resubmitted to a fresh pool, up to
    ``max_restarts`` times; finished chunks are kept.
    """

    name = "processes"

    def __init__(self, workers: int | None = None, max_restarts: int = 3,
                 start_method: str | None = None) -> None:
        self.workers = int(workers or os.cpu_count() or 1)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.max_restarts = max_restarts
        methods = mp.get_all_start_methods()
        self.start_method = start_method or ("fork" if "fork" in methods else "spawn")
        self.restarts = 0

    def run(self, evaluate: Evaluate, payload: Any, chunks: list[Chunk],
            progress: ProgressFn | None = None) -> list[tuple[int, dict]]:
        pending = dict(enumerate(chunks))
        results: list[tuple[int, dict]] = []
        total = sum(len(c) for c in chunks)
        self.restarts = 0
        ctx = mp.get_context(self.start_method)
        while pending:
            broken = False
            with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(evaluate, payload)) as pool:
                futs = {pool.submit(_pool_chunk, chunk): cid for cid, chunk in pending.items()}
                remaining = set(futs)
                while remaining:
                    done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for fut in done:
                        try:
                            res = fut.result()
                        except BrokenProcessPool:
                            broken = True
                            continue
                        results.extend(res)
                        del pending[futs[fut]]
                        if progress:
                            progress(len(results), total)
            if broken and pending:
                self.restarts += 1
                if self.restarts > self.max_restarts:
                    raise SweepError(
                        f"worker processes died {self.restarts} times; {len(pending)} chunks "
                        "lost (out of memory? try fewer --workers)"
                    )
        return results


class _ByValue:
    """Pickles ``obj`` with cloudpickle, with the modules of loaded strategy files by value: a
    Dask worker is another process (perhaps on another machine) that cannot import
    ``user_strategy_...`` by name. Unpickles as ``obj`` itself."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        import cloudpickle

        from strategies.loader import USER_MODULE_PREFIX

        for name, module in list(sys.modules.items()):
            if name.startswith(USER_MODULE_PREFIX):
                cloudpickle.register_pickle_by_value(module)
        return cloudpickle.loads, (cloudpickle.dumps(self.obj),)


class DaskExecutor:
    """A Dask ``distributed`` cluster: ``scheduler`` is an address (``tcp://host:8786``) or a
    ``distributed.Client``. The payload is scattered to every worker once (``broadcast``), each
    chunk is a task with ``retries``; a task whose worker dies is rescheduled by the scheduler.
    """

    name = "dask"

    def __init__(self, scheduler: Any, retries: int = 3) -> None:
        self.scheduler = scheduler
        self.retries = retries
        self.workers = 0

    def _client(self) -> tuple[Any, bool]:
        from distributed import Client

        if isinstance(self.scheduler, Client):
            return self.scheduler, False
        try:
            return Client(self.scheduler, timeout="10s"), True
        except OSError as exc:
            raise SweepError(
                f"cannot reach the Dask scheduler at {self.scheduler!r}: {exc} "
                "(start one with `dask scheduler` and `dask worker ADDRESS`)"
            ) from None

    def run(self, evaluate: Evaluate, payload: Any, chunks: list[Chunk],
            progress: ProgressFn | None = None) -> list[tuple[int, dict]]:
        from distributed import as_completed

        client, own = self._client()
        try:
            self.workers = len(client.scheduler_info(n_workers=-1)["workers"])
            [data] = client.scatter([_ByValue(payload)], broadcast=True, hash=False)
            futs = [client.submit(_eval_chunk, evaluate, data, chunk, pure=False,
                                  retries=self.retries) for chunk in chunks]
            total = sum(len(c) for c in chunks)
            results: list[tuple[int, dict]] = []
            for fut in as_completed(futs):
                try:
                    results.extend(fut.result())
                except SweepError:
                    raise
                except Exception as exc:  # KilledWorker after too many deaths, etc.
                    raise SweepError(f"Dask task failed: {type(exc).__name__}: {exc}") from None
                if progress:
                    progress(len(results), total)
            return results
        finally:
            if own:
                client.close()


def make_executor(executor: str | Executor | None = None, workers: int | None = None,
                  scheduler: str | None = None) -> Executor:
    """An executor from a name (``"processes"``, ``"dask"``, ``"serial"``) or an instance."""
    if executor is not None and not isinstance(executor, str):
        return executor
    if scheduler is not None or executor == "dask":
        if scheduler is None:
            raise ValueError("the dask executor needs a scheduler address")
        return DaskExecutor(scheduler)
    if executor in (None, "processes", "process"):
        if workers == 1:
            return SerialExecutor()
        return ProcessExecutor(workers)
    if executor == "serial":
        return SerialExecutor()
    raise ValueError(f"unknown executor {executor!r}: use processes, dask or serial")


def default_chunk_size(n_tasks: int, workers: int) -> int:
    """About 8 chunks per worker (load balance, cheap retries), at most 500 sets per chunk."""
    return max(1, min(500, math.ceil(n_tasks / (max(workers, 1) * 8))))


def evaluate_all(
    evaluate: Evaluate,
    payload: Any,
    param_sets: Sequence[Params],
    executor: str | Executor | None = None,
    workers: int | None = None,
    chunk_size: int | None = None,
    progress: ProgressFn | None = None,
) -> list[dict]:
    """``[evaluate(payload, p) for p in param_sets]``, in parameter order, on an executor."""
    ex = make_executor(executor, workers)
    if not param_sets:
        return []
    size = chunk_size or default_chunk_size(len(param_sets), max(ex.workers, 1) or 2)
    indexed = list(enumerate(param_sets))
    chunks = [indexed[i:i + size] for i in range(0, len(indexed), size)]
    pairs = ex.run(evaluate, payload, chunks, progress)
    out: list[dict | None] = [None] * len(param_sets)
    for idx, res in pairs:
        out[idx] = res
    missing = [i for i, r in enumerate(out) if r is None]
    if missing:
        raise SweepError(f"{len(missing)} parameter sets returned no result (first: "
                         f"{param_sets[missing[0]]})")
    return out  # type: ignore[return-value]


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
    rows = []
    ids = range(len(param_sets)) if trials is None else trials
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


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


# --- backtests as evaluations ------------------------------------------------------------------

#: Metrics of every sweep row (computed by the same code as ``compute_metrics``), plus the
#: per-bar return moments the deflated Sharpe ratio needs.
SWEEP_METRICS: tuple[str, ...] = CORE_KEYS


@dataclass
class BacktestPayload:
    """What every worker needs once: the candles as arrays, the strategy class, the config and
    the window. Signals are computed on ``df.iloc[:end]``; entries and exits before bar
    ``start - 1`` are ignored, so the first fill can happen at bar ``start``'s open and nothing
    is traded with data beyond ``end``. Metrics cover bars ``max(start - 1, 0) .. end - 1``."""

    df: pd.DataFrame
    strategy_cls: type
    config: Any
    start: int = 0
    end: int | None = None
    keep_returns: bool = False
    _arrays: Market | None = None
    _frame: pd.DataFrame | None = None

    def frame(self) -> pd.DataFrame:
        """``df.iloc[:end]``, sliced once (slicing copies attrs deeply: not per evaluation)."""
        if self._frame is None:
            df = self.df if self.end in (None, len(self.df)) else self.df.iloc[:self.end]
            # pandas deep-copies attrs on every column access: keep only the simple ones
            # (timeframe, source...), not e.g. a loader's validation report.
            light = df.copy(deep=False)
            light.attrs = {k: v for k, v in df.attrs.items()
                           if v is None or isinstance(v, str | int | float | bool)}
            self._frame = light
        return self._frame

    def market(self) -> Market:
        """The kernel's price arrays of :meth:`frame`, built once per payload."""
        if self._arrays is None:
            self._arrays = market_arrays(self.frame(), self.config, timeframe_of(self.df))
        return self._arrays


def window_signals(strategy: Any, df: pd.DataFrame, start: int) -> Any:
    """The strategy's validated signals on ``df`` with entries and exits before bar
    ``start - 1`` removed (warm-up bars: indicators see them, the account does not trade)."""
    sig = strategy.signals(df).validate(len(df))
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


def raw_metrics(equity: np.ndarray, raw: np.ndarray, index: pd.DatetimeIndex, cash: float,
                timeframe: str, offset: int = 0) -> dict[str, float]:
    """The sweep metrics (:data:`backtests.metrics.CORE_KEYS`) of an equity array and raw kernel
    trades: :func:`backtests.metrics.core_metrics`, the same code as a full result's metrics.

    ``offset`` is the bar position of ``equity[0]`` in the frame the raw trades refer to.
    """
    ns = index.asi8
    return core_metrics(
        np.ascontiguousarray(equity, dtype=np.float64), (ns[-1] - ns[0]) / YEAR.value,
        periods_per_year(timeframe), float(cash), raw_pnl(raw),
        raw[:, _COL["entry_bar"]].astype(np.int64), raw[:, _COL["exit_bar"]].astype(np.int64),
        _AT_OPEN[raw[:, _COL["reason"]].astype(np.int64)], int(offset))


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


def evaluate_backtest(payload: BacktestPayload, params: Params) -> dict[str, Any]:
    """Evaluation function of backtest sweeps: :data:`SWEEP_METRICS` of one parameter set (and
    its per-bar returns under ``"_returns"`` when the payload keeps them, for PBO)."""
    equity, raw, _ = simulate_window(payload, params)
    lo = max(payload.start - 1, 0)
    df = payload.frame()
    out: dict[str, Any] = raw_metrics(equity[lo:], raw, df.index[lo:], payload.config.cash,
                                      timeframe_of(payload.df), offset=lo)
    if payload.keep_returns:
        eq = equity[lo:]
        with np.errstate(divide="ignore", invalid="ignore"):
            out["_returns"] = np.where(eq[:-1] > 0, eq[1:] / eq[:-1] - 1.0, 0.0)
    return out


def _as_param_sets(space: Sequence[Params] | dict[str, Sequence[Any]]) -> list[Params]:
    if isinstance(space, dict):
        return grid(space)
    return [dict(p) for p in space]


def check_params(strategy_cls: type, param_sets: Sequence[Params]) -> list[dict[str, Any]]:
    """Validate every parameter set against the strategy before any work starts.

    Returns:
        The sets whose values conflict with each other (the strategy's ``check`` raised
        :class:`~strategies.base.ParamConflict`, e.g. ``deep >= oversold``), to be skipped:
        ``[{"trial": position, "params": set, "reason": message}, ...]``. A grid crossing such
        a boundary is normal; those sets are not trials and do not count in the DSR.

    Raises:
        ValueError (the strategy's ``ParamError``) naming the set: an unknown key or a value
        outside its declaration; ``ParamConflict`` when every set conflicts.
    """
    from strategies.base import ParamConflict

    skipped = []
    for i, p in enumerate(param_sets):
        try:
            strategy_cls(**p)
        except ParamConflict as exc:
            skipped.append({"trial": i, "params": dict(p), "reason": str(exc)})
        except ValueError as exc:
            raise type(exc)(f"{exc} (in parameter set {p})") from None
    if param_sets and len(skipped) == len(param_sets):
        first = skipped[0]
        raise ParamConflict(f"every parameter set conflicts, e.g. {first['params']}: "
                            f"{first['reason']}")
    return skipped


def _pbo_splits(n_rows: int, wanted: int = 16) -> int:
    s = wanted
    while s > 2 and n_rows < 4 * s:
        s -= 2
    return s


def selection_statistics(table: pd.DataFrame, returns: pd.DataFrame | None,
                         pbo_splits: int = 16) -> dict[str, Any]:
    """Deflated Sharpe ratio of the best row (``table`` sorted best first) given all trials, and
    the PBO of the selection when per-bar returns of every trial are available."""
    from backtests.tuning.overfit import (
        deflated_sharpe_ratio,
        expected_max_sharpe,
        probabilistic_sharpe_ratio,
        probability_of_backtest_overfitting,
    )

    out: dict[str, Any] = {}
    if "n_trades" in table and not (table["n_trades"] > 0).any():
        # Every set flat: Sharpe ratios are undefined and all CSCV ranks tie, so any DSR or PBO
        # would be noise dressed up as a statistic.
        out["note"] = "no parameter set traded: nothing to judge"
        return out
    srs = table["sr_bar"].to_numpy(dtype=float)
    finite = srs[np.isfinite(srs)]
    best = table.iloc[0]
    n_trials = len(finite)
    if n_trials and np.isfinite(best["sr_bar"]) and best["n_obs"] >= 2:
        var = float(finite.var(ddof=1)) if n_trials > 1 else 0.0
        args = (float(best["sr_bar"]), int(best["n_obs"]))
        moments = (float(best["skew"]), float(best["kurtosis"]))
        out["dsr"] = deflated_sharpe_ratio(*args, n_trials, var, *moments)
        out["psr"] = probabilistic_sharpe_ratio(*args, *moments)
        out["sr0_bar"] = expected_max_sharpe(n_trials, var)
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
        df: canonical candles.
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
    from backtests.config import BacktestConfig
    from backtests.results import data_fingerprint, package_version
    from backtests.runner import run

    if metric not in SWEEP_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(SWEEP_METRICS)}")
    config = config or BacktestConfig()
    param_sets = _as_param_sets(space)
    if not param_sets:
        raise ValueError("the parameter space is empty")
    skipped = check_params(strategy_cls, param_sets)
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
                              end=end, keep_returns=keep_returns)
    ex = make_executor(executor, workers, scheduler)
    t0 = time.perf_counter()
    metrics = evaluate_all(evaluate_backtest, payload, param_sets, executor=ex,
                           chunk_size=chunk_size, progress=progress)
    elapsed = time.perf_counter() - t0
    table = results_table(param_sets, metrics, metric, trials=trials)
    returns = None
    if keep_returns:
        returns = pd.DataFrame({str(i): m["_returns"] for i, m in zip(trials, metrics,
                                                                       strict=True)},
                               index=df.index[lo + 1:end])
    # Re-run the best few through the engine proper: reports show them without recomputing.
    window = df.iloc[:end]
    equity = {}
    bench = None
    for _, row in table.head(top).iterrows():
        p = {k: plain(row[k]) for k in param_sets[0]}
        if start > 0:
            eq, _, _ = simulate_window(payload, p)
            equity[str(int(row["trial"]))] = eq[lo:]
        else:
            res = run(window, strategy_cls(**p), config)
            equity[str(int(row["trial"]))] = res.equity.to_numpy()
            bench = res.benchmark
    best_equity = pd.DataFrame(equity, index=window.index[lo:]) if equity else None
    from datetime import UTC, datetime

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


# --- HTML report -------------------------------------------------------------------------------

#: Stylesheet of the sweep report, shared by the walk-forward report.
REPORT_STYLE = """\
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px} h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:13px} td,th{padding:4px 8px;border-bottom:1px solid #ddd;
text-align:right} th{background:#f4f4f4} td.l,th.l{text-align:left}
.box{display:inline-block;margin:4px 16px 4px 0;padding:8px 12px;background:#f7f7f7;
border-radius:6px}
.warn{color:#a40000} .ok{color:#006400} .note{color:#555;font-size:13px;max-width:900px}
"""


_REPORT_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Sweep: {{ r.strategy }} by {{ r.metric }}</title>
<style>{{ style }}</style></head><body>
<h1>Parameter sweep: {{ r.strategy }}</h1>
<p class="note">{{ r.space.n }} parameter sets{% if r.skipped %} ({{ r.skipped|length }} more
skipped, not counted as trials: the strategy rejects them, e.g. {{ r.skipped[0].params }}:
{{ r.skipped[0].reason }}){% endif %}, sorted by <b>{{ r.metric }}</b>; data
{{ r.data.source or "?" }} {{ r.data.timeframe or "" }} {{ r.data.start }} &rarr; {{ r.data.end }}
({{ r.data.rows }} bars, sha256 {{ (r.data.sha256 or "")[:12] }}); executor {{ r.executor }}
({{ r.workers }} workers), {{ "%.2f"|format(r.elapsed_s) }} s; version {{ r.version }},
{{ r.created }}.</p>
<h2>Is the best one real?</h2>
{% if o.note is defined %}<div class="box">{{ o.note }}</div>{% endif %}
{% if o.dsr is defined %}
<div class="box">Deflated Sharpe ratio: <b class="{{ 'ok' if o.dsr >= 0.95 else 'warn' }}">
{{ "%.3f"|format(o.dsr) }}</b> (PSR without deflation {{ "%.3f"|format(o.psr) }};
{{ o.n_trials }} trials)</div>{% endif %}
{% if o.pbo is defined %}
<div class="box">Probability of backtest overfitting:
<b class="{{ 'ok' if o.pbo < 0.2 else 'warn' }}">
{{ "%.2f"|format(o.pbo) }}</b> (CSCV, {{ o.pbo_splits }} blocks; OOS loss probability
{{ "%.2f"|format(o.pbo_prob_loss) }})</div>{% endif %}
<p class="note">The deflated Sharpe ratio is the probability that the best parameter set's true
Sharpe beats the best of this many skill-less trials (Bailey &amp; López de Prado 2014); values
below 0.95 mean the winner is not distinguishable from luck. PBO is the share of
in-sample/out-of-sample splits in which the in-sample winner ranked at or below the median out of
sample (Bailey, Borwein, López de Prado &amp; Zhu 2015).</p>
{% if heatmap %}<h2>{{ r.metric }} over {{ x }} &times; {{ y }}</h2>{{ heatmap }}{% endif %}
<h2>Top {{ top|length }}</h2>
<table><tr><th>#</th>{% for c in cols %}
<th class="{{ 'l' if c in r.param_names else '' }}">{{ c }}</th>{% endfor %}</tr>
{% for row in top %}<tr><td>{{ loop.index }}</td>{% for c in cols %}
<td class="{{ 'l' if c in r.param_names else '' }}">{{ row[c] }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if equity %}<h2>Equity of the best {{ n_equity }}</h2>{{ equity }}{% endif %}
{% if logits %}<h2>CSCV logits of the in-sample winner's out-of-sample rank</h2>
{{ logits }}{% endif %}
</body></html>
"""

_TABLE_COLUMNS = ("sharpe", "sortino", "total_return_pct", "cagr_pct", "max_drawdown_pct",
                  "win_rate_pct", "profit_factor", "n_trades", "exposure_pct")


def _fmt_cell(v: Any) -> str:
    v = plain(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def plotly_fragments() -> Callable[[Any], Any]:
    """A function turning plotly figures into HTML fragments (``markupsafe.Markup``) for one
    page: the first fragment inlines plotly.js (the page works offline), later ones reuse it."""
    import plotly.io as pio
    from markupsafe import Markup

    include = {"first": True}

    def html(fig: Any) -> Markup:
        out = pio.to_html(fig, include_plotlyjs=include["first"], full_html=False,
                          config={"displaylogo": False})
        include["first"] = False
        return Markup(out)

    return html


def write_report(result: SweepResult, path: str | Path, x: str | None = None,
                 y: str | None = None, top: int = 20) -> Path:
    """Write a self-contained HTML report (plotly inlined, every text escaped).

    The heatmap shows ``result.metric`` over parameters ``x`` and ``y`` (default: the first two
    parameters with more than one value), taking the best value over any other parameters.
    Everything comes from the saved sweep: nothing is recomputed.
    """
    import plotly.graph_objects as go
    from jinja2 import Environment
    from markupsafe import Markup

    t = result.table
    varying = [p for p in result.param_names if t[p].nunique() > 1]
    for name, val in (("x", x), ("y", y)):
        if val is not None and val not in result.param_names:
            raise ValueError(f"--{name} {val!r} is not a swept parameter; choose from "
                             f"{', '.join(result.param_names)}")
    x = x or (varying[0] if varying else None)
    y = y or next((p for p in varying if p != x), None)
    html = plotly_fragments()

    heatmap = None
    if x and y and x != y:
        piv = t.pivot_table(index=y, columns=x, values=result.metric, aggfunc="max")
        fig = go.Figure(go.Heatmap(z=piv.to_numpy(), x=[str(c) for c in piv.columns],
                                   y=[str(i) for i in piv.index], colorscale="RdYlGn",
                                   colorbar={"title": result.metric}))
        fig.update_layout(xaxis_title=x, yaxis_title=y, height=480, margin={"t": 20})
        heatmap = html(fig)
    equity = None
    if result.best_equity is not None and not result.best_equity.empty:
        fig = go.Figure()
        by_trial = t.set_index("trial")
        for col in result.best_equity.columns:
            p = by_trial.loc[int(col), result.param_names]
            label = ", ".join(f"{k}={_fmt_cell(v)}" for k, v in p.items())
            fig.add_trace(go.Scatter(x=result.best_equity.index, y=result.best_equity[col],
                                     name=label, mode="lines"))
        if result.benchmark is not None:
            fig.add_trace(go.Scatter(x=result.benchmark.index, y=result.benchmark,
                                     name="buy and hold", mode="lines",
                                     line={"dash": "dot", "color": "#888"}))
        fig.update_layout(yaxis_title="equity", yaxis_type="log", height=440,
                          margin={"t": 20}, legend={"orientation": "h"})
        equity = html(fig)
    logits = None
    if result.overfit.get("pbo_logits"):
        fig = go.Figure(go.Histogram(x=result.overfit["pbo_logits"], nbinsx=40))
        fig.add_vline(x=0, line_dash="dash")
        fig.update_layout(xaxis_title="logit of OOS relative rank (<= 0: overfit)", height=300,
                          margin={"t": 20})
        logits = html(fig)
    cols = [*result.param_names, *[c for c in _TABLE_COLUMNS if c in t.columns]]
    # to_dict keeps each column's dtype (iterrows would show int parameters as 14.000).
    rows = [{c: _fmt_cell(v) for c, v in r.items()} for r in t.head(top)[cols].to_dict("records")]
    env = Environment(autoescape=True)
    page = env.from_string(_REPORT_TEMPLATE).render(
        r=result, o=result.overfit, style=Markup(REPORT_STYLE), heatmap=heatmap, x=x, y=y,
        top=rows, cols=cols, equity=equity, logits=logits,
        n_equity=0 if result.best_equity is None else result.best_equity.shape[1],
    )
    from backtests._files import write_text_atomic

    return write_text_atomic(path, page)
