"""Sweep machinery: parameter spaces, executors (serial, processes, Dask), retries, results."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests.sweep import (
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    SweepError,
    SweepResult,
    evaluate_all,
    grid,
    parse_axis,
    parse_grid,
    random_space,
    results_table,
)

# --- spaces --------------------------------------------------------------------------------


def test_parse_axis_forms() -> None:
    assert parse_axis("rsi_period=7:21:1") == ("rsi_period", list(range(7, 22)))
    assert parse_axis("oversold=20:35:5") == ("oversold", [20, 25, 30, 35])
    assert parse_axis("x=0.1:0.3:0.1") == ("x", [0.1, 0.2, 0.3])
    assert parse_axis("mode=long,short") == ("mode", ["long", "short"])
    assert parse_axis("flag=true,false") == ("flag", [True, False])
    assert parse_axis("k=2.5") == ("k", [2.5])


@pytest.mark.parametrize(
    ("spec", "msg"),
    [
        ("rsi", "must look like"),
        ("1x=1,2", "not a parameter name"),
        ("a=5:1:1", "below start"),
        ("a=1:5:0", "step must be > 0"),
        ("a=1:b:1", "not a number"),
        ("a=,", "no values"),
    ],
)
def test_parse_axis_errors(spec: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        parse_axis(spec)


def test_grid_order_and_duplicates() -> None:
    axes = parse_grid(["a=1:2:1", "b=x,y,z"])
    g = grid(axes)
    assert len(g) == 6
    assert g[:3] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"}]
    with pytest.raises(ValueError, match="twice"):
        parse_grid(["a=1", "a=2"])


def test_random_space_reproducible_distinct_and_bounded() -> None:
    ranges = {"period": (5, 30), "oversold": (15.0, 40.0), "mode": ["long", "both"]}
    a = random_space(500, ranges, seed=3, integer=["period"])
    assert a == random_space(500, ranges, seed=3, integer=["period"])
    assert a != random_space(500, ranges, seed=4, integer=["period"])
    assert len({tuple(p.values()) for p in a}) == 500
    assert all(5 <= p["period"] <= 30 and isinstance(p["period"], int) for p in a)
    assert all(15.0 <= p["oversold"] <= 40.0 for p in a)
    # A discrete space smaller than N: the whole grid, once.
    small = random_space(100, {"a": [1, 2, 3], "b": (1, 2)}, integer=["b"])
    assert len(small) == 6


# --- executors -----------------------------------------------------------------------------


def cheap_eval(payload: dict, params: dict) -> dict:
    """Deterministic and cheap: a stand-in for a backtest."""
    x = payload["data"] * params["a"] + params["b"]
    return {"score": float(np.sin(x).sum()), "n": float(params["a"] * 10 + params["b"]),
            "pid": os.getpid()}


def killing_eval(payload: dict, params: dict) -> dict:
    """Kills its worker process the first time it runs anywhere (guarded by a marker file)."""
    marker = Path(payload["marker"])
    if params["a"] == payload["kill_at"]:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os._exit(17)
    return cheap_eval(payload, params)


def failing_eval(payload: dict, params: dict) -> dict:
    if params["a"] == 3:
        raise ZeroDivisionError("boom")
    return cheap_eval(payload, params)


PARAMS = grid({"a": list(range(12)), "b": [0.0, 0.5, 1.0]})
PAYLOAD = {"data": np.linspace(0, 1, 1000)}


def _strip(res: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "pid"} for r in res]


def test_serial_and_processes_identical_for_any_workers_and_chunks() -> None:
    ref = _strip(evaluate_all(cheap_eval, PAYLOAD, PARAMS, executor=SerialExecutor()))
    assert [r["n"] for r in ref] == [p["a"] * 10 + p["b"] for p in PARAMS]
    for workers, chunk in [(1, 5), (2, 1), (2, 7), (2, None)]:
        ex = ProcessExecutor(workers)
        got = evaluate_all(cheap_eval, PAYLOAD, PARAMS, executor=ex, chunk_size=chunk)
        assert _strip(got) == ref
    # Work really ran in other processes.
    pids = {r["pid"] for r in evaluate_all(cheap_eval, PAYLOAD, PARAMS,
                                            executor=ProcessExecutor(2), chunk_size=2)}
    assert os.getpid() not in pids


def test_process_pool_retries_chunks_of_a_killed_worker(tmp_path: Path) -> None:
    payload = {**PAYLOAD, "marker": str(tmp_path / "killed"), "kill_at": 7}
    ex = ProcessExecutor(2)
    got = evaluate_all(killing_eval, payload, PARAMS, executor=ex, chunk_size=3)
    assert (tmp_path / "killed").exists()          # a worker did die...
    assert ex.restarts == 1                         # ...the pool was rebuilt once...
    ref = evaluate_all(cheap_eval, PAYLOAD, PARAMS, executor=SerialExecutor())
    assert _strip(got) == _strip(ref)               # ...and nothing was lost


def test_evaluation_errors_are_not_retried_and_name_the_parameters() -> None:
    with pytest.raises(SweepError, match=r"'a': 3.*ZeroDivisionError: boom"):
        evaluate_all(failing_eval, PAYLOAD, PARAMS, executor=ProcessExecutor(2), chunk_size=4)
    with pytest.raises(SweepError, match="ZeroDivisionError"):
        evaluate_all(failing_eval, PAYLOAD, PARAMS, executor=SerialExecutor())


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_identical_to_serial(dask_client) -> None:
    ref = _strip(evaluate_all(cheap_eval, PAYLOAD, PARAMS, executor=SerialExecutor()))
    ex = DaskExecutor(dask_client)
    assert _strip(evaluate_all(cheap_eval, PAYLOAD, PARAMS, executor=ex, chunk_size=5)) == ref
    assert ex.workers == 2
    # By address too (what --scheduler passes).
    ex2 = DaskExecutor(dask_client.scheduler.address)
    assert _strip(evaluate_all(cheap_eval, PAYLOAD, PARAMS, executor=ex2, chunk_size=4)) == ref


def test_dask_retries_a_killed_workers_task(dask_client, tmp_path: Path) -> None:
    payload = {**PAYLOAD, "marker": str(tmp_path / "killed"), "kill_at": 5}
    got = evaluate_all(killing_eval, payload, PARAMS, executor=DaskExecutor(dask_client),
                       chunk_size=3)
    assert (tmp_path / "killed").exists()
    ref = evaluate_all(cheap_eval, PAYLOAD, PARAMS, executor=SerialExecutor())
    assert _strip(got) == _strip(ref)


def test_dask_unreachable_scheduler_is_a_clear_error() -> None:
    pytest.importorskip("distributed")
    with pytest.raises(SweepError, match="cannot reach the Dask scheduler"):
        evaluate_all(cheap_eval, PAYLOAD, PARAMS[:2],
                     executor=DaskExecutor("tcp://127.0.0.1:1"))


# --- results ----------------------------------------------------------------------------------


def test_results_table_sorted_stably_and_roundtrip(tmp_path: Path) -> None:
    params = [{"a": i % 3, "b": i} for i in range(6)]
    metrics = [{"sharpe": s, "n_trades": 3.0, "_returns": np.zeros(2)}
               for s in [1.0, 2.0, 1.0, np.nan, 2.0, 0.5]]
    t = results_table(params, metrics, "sharpe")
    assert t["trial"].tolist() == [1, 4, 0, 2, 5, 3]   # ties keep parameter order, NaN last
    assert "_returns" not in t.columns
    with pytest.raises(ValueError, match="unknown metric 'sortino'"):
        results_table(params, metrics, "sortino")
    idx = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC", name="timestamp")
    idx.freq = None  # canonical frames carry no freq
    res = SweepResult(
        strategy="x", metric="sharpe", param_names=["a", "b"], table=t,
        returns=pd.DataFrame({"0": [0.0, 0.1, -0.1, 0.0]}, index=idx),
        best_equity=pd.DataFrame({"1": [1.0, 2.0, 3.0, 4.0]}, index=idx),
        benchmark=pd.Series([1.0, 1.1, 1.2, 1.3], index=idx, name="benchmark"),
        overfit={"pbo": 0.25}, config={"cash": 10_000.0}, space={"a": [0, 1, 2]},
    )
    out = res.save(tmp_path / "sw")
    res.save(tmp_path / "sw")  # overwriting is atomic and fine
    back = SweepResult.load(out)
    pd.testing.assert_frame_equal(back.table, res.table)
    pd.testing.assert_frame_equal(back.returns, res.returns)
    pd.testing.assert_frame_equal(back.best_equity, res.best_equity)
    pd.testing.assert_series_equal(back.benchmark, res.benchmark)
    assert back.overfit == {"pbo": 0.25} and back.best == {"a": 1, "b": 1}
