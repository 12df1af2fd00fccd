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
import json
import math
import multiprocessing as mp
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

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
            [data] = client.scatter([payload], broadcast=True, hash=False)
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
    executor: str = ""
    workers: int = 0
    elapsed_s: float = 0.0
    created: str = ""
    version: str = ""

    @property
    def best(self) -> Params:
        """Parameters of the best row (by ``metric``)."""
        row = self.table.iloc[0]
        return {k: _py(row[k]) for k in self.param_names}

    def save(self, directory: str | Path) -> Path:
        """Write ``sweep.json`` and Parquet frames into ``directory`` (atomically replaced)."""
        directory = Path(directory)
        tmp = directory.with_name(directory.name + ".tmp")
        if tmp.exists():
            _rmtree(tmp)
        tmp.mkdir(parents=True)
        self.table.to_parquet(tmp / "table.parquet")
        frames = {"returns": self.returns, "best_equity": self.best_equity}
        for name, frame in frames.items():
            if frame is not None:
                frame.to_parquet(tmp / f"{name}.parquet")
        if self.benchmark is not None:
            self.benchmark.to_frame("benchmark").to_parquet(tmp / "benchmark.parquet")
        meta = {k: getattr(self, k) for k in ("strategy", "metric", "param_names", "config",
                                              "data", "space", "overfit", "executor",
                                              "workers", "elapsed_s", "created", "version")}
        meta["frames"] = [n for n, f in frames.items() if f is not None]
        meta["has_benchmark"] = self.benchmark is not None
        (tmp / "sweep.json").write_text(json.dumps(meta, indent=2, default=_json_default))
        if directory.exists():
            old = directory.with_name(directory.name + ".old")
            if old.exists():
                _rmtree(old)
            directory.rename(old)
            tmp.rename(directory)
            _rmtree(old)
        else:
            tmp.rename(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SweepResult:
        """Read a directory written by :meth:`save`."""
        directory = Path(directory)
        meta_path = directory / "sweep.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path} not found: not a saved sweep")
        meta = json.loads(meta_path.read_text())
        frames = {n: pd.read_parquet(directory / f"{n}.parquet") for n in meta.pop("frames")}
        bench = None
        if meta.pop("has_benchmark"):
            bench = pd.read_parquet(directory / "benchmark.parquet")["benchmark"]
        return cls(table=pd.read_parquet(directory / "table.parquet"), benchmark=bench,
                   **frames, **meta)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (pd.Timestamp, pd.Timedelta)):
        return o.isoformat()
    return str(o)


def results_table(param_sets: Sequence[Params], metrics: Sequence[dict], metric: str,
                  ascending: bool = False) -> pd.DataFrame:
    """One row per set: ``trial``, the parameters, then scalar metrics; stably sorted by
    ``metric`` (NaN last)."""
    rows = []
    for i, (p, m) in enumerate(zip(param_sets, metrics, strict=True)):
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
