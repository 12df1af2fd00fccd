"""Where evaluations run: in this process, in local worker processes or on a Dask cluster.

An *evaluation function* ``evaluate(payload, params) -> dict`` is run over a list of parameter
sets, in chunks, on an :class:`Executor`. The payload (the candles, the strategy class, the engine
configuration) is shipped once per worker, never per task:

* :class:`ProcessExecutor` (default: all cores) forks workers that receive the payload through the
  pool initializer; a chunk whose worker died (``BrokenProcessPool``) is resubmitted to a new pool.
* :class:`DaskExecutor` scatters the payload to every worker of a ``distributed`` cluster once and
  submits chunks with ``retries``; a killed worker's chunks are rescheduled by the scheduler.
* :class:`SerialExecutor` runs in the calling process (debugging, tiny sweeps).

Results are keyed by the parameter set's position in the space, so they are identical whatever the
executor, the number of workers or the chunk size.

An evaluation function may carry a ``many`` attribute, ``many(payload, [params, ...]) -> [dict,
...]``, that evaluates a whole chunk at once with the same results (``evaluate_backtest.many``
computes the chunk's signals in one call of the strategy's ``signals_many`` hook and simulates
the sets in one compiled call); the executors then call it once per chunk.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from backtests.tuning.space import Params

Evaluate = Callable[[Any, Params], dict[str, Any]]
ProgressFn = Callable[[int, int], None]



class SweepError(RuntimeError):
    """An evaluation failed for a reason retrying cannot fix (a bug or bad parameters)."""

    #: What the command line prints as the fix (``backtests.cli``): the traceback of the
    #: strategy's own error is only at hand in the calling process.
    fix = ("the strategy failed on these parameters (its code, or a bug here): run again with "
           "--workers 1 --verbose for the traceback")


# --- executors -------------------------------------------------------------------------------

Chunk = list[tuple[int, Params]]


def _eval_chunk(evaluate: Evaluate, payload: Any, chunk: Chunk) -> list[tuple[int, dict]]:
    """``[(index, evaluate(payload, params)) ...]`` for a chunk: through ``evaluate.many`` when
    the function has one (the whole chunk in one call, see the module docstring). When that
    fails, the sets are evaluated one by one, so that an error names the parameter set it
    comes from; if each of them succeeds alone, the batch's own error is raised.

    Raises:
        SweepError: an evaluation failed (naming the parameters and the original error).
    """
    many = getattr(evaluate, "many", None)
    failed: Exception | None = None
    if many is not None and chunk:
        try:
            results = many(payload, [params for _, params in chunk])
        except Exception as exc:  # find the set at fault below, one by one
            failed = exc
        else:
            if len(results) != len(chunk):
                raise SweepError(f"{getattr(many, '__name__', many)} returned {len(results)} "
                                 f"results for {len(chunk)} parameter sets")
            return [(idx, res) for (idx, _), res in zip(chunk, results, strict=True)]
    out = []
    for idx, params in chunk:
        try:
            out.append((idx, evaluate(payload, params)))
        except Exception as exc:  # carry the parameters that failed, as a picklable error
            # (a hook that failed for the chunk often fails for one set too, with a less
            # telling error: e.g. signals() written as signals_many(df, [self])[0])
            also = (f" (evaluated with the chunk's other sets: {type(failed).__name__}: "
                    f"{failed})" if failed is not None else "")
            # chained for --verbose in this process; a pool pickles the message alone
            raise SweepError(f"evaluation failed for parameters {params}: "
                             f"{type(exc).__name__}: {exc}{also}") from exc
    if failed is not None:
        raise SweepError(f"evaluation failed for the {len(chunk)} parameter sets from "
                         f"{chunk[0][1]} evaluated together (each of them succeeds on its own): "
                         f"{type(failed).__name__}: {failed}")
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
    chunk is a task with ``retries``; a task whose worker dies is rescheduled by the scheduler,
    and chunks cancelled because the payload's copies died with their workers are sent again.
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
            pending = dict(enumerate(chunks))
            total = sum(len(c) for c in chunks)
            results: list[tuple[int, dict]] = []
            rounds = 0
            while pending:
                # The scattered payload cannot be recomputed: when the workers holding it die,
                # the scheduler cancels the tasks that need it. Those chunks are then sent again
                # with a fresh copy of the payload (finished chunks are kept), up to ``retries``
                # times.
                [data] = client.scatter([_ByValue(payload)], broadcast=True, hash=False)
                futs = {client.submit(_eval_chunk, evaluate, data, chunk, pure=False,
                                      retries=self.retries): cid
                        for cid, chunk in pending.items()}
                lost = False
                for fut in as_completed(futs):
                    try:
                        res = fut.result()
                    except SweepError:
                        raise
                    except CancelledError:
                        lost = True
                        continue
                    except Exception as exc:  # KilledWorker after too many deaths, etc.
                        raise SweepError(f"Dask task failed: {type(exc).__name__}: {exc}"
                                         ) from None
                    results.extend(res)
                    del pending[futs[fut]]
                    if progress:
                        progress(len(results), total)
                if lost:
                    rounds += 1
                    if rounds > self.retries:
                        raise SweepError(f"Dask cancelled {len(pending)} chunks {rounds} times "
                                         "(workers lost with the payload); check the cluster")
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
    """About 32 chunks per worker, 16 to 500 sets each: on a machine shared with other jobs a
    worker that gets less CPU takes fewer chunks, so the last chunk to finish is short (with 8
    chunks per worker, 10,000 sets on 2 workers ended on a 500-set chunk of one worker). In one
    process (``workers`` 1) there is nothing to balance: chunks of up to 500 sets, which only
    pace the progress reports, and an evaluation with a ``many`` (a whole chunk at once) makes
    fewer calls."""
    if workers <= 1:
        return max(1, min(500, n_tasks))
    return max(1, min(500, max(16, math.ceil(n_tasks / (workers * 32)))))


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


