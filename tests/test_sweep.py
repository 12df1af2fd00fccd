"""Sweep machinery: parameter spaces, executors (serial, processes, Dask), retries, results."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import talib

from backtests.tuning.executors import (
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    SweepError,
    evaluate_all,
)
from backtests.tuning.space import grid, parse_axis, parse_grid, random_space
from backtests.tuning.sweep import SweepResult, results_table
from strategies.base import Param, Signals, Strategy

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
    # 1 == 1.0 in Python: check the type too (a float period would break int-only strategies).
    assert all(type(v) is int for v in back.best.values())


# --- backtest sweeps on the fast engine ---------------------------------------------------------


class RsiRule(Strategy):
    """RSI crosses back above oversold -> long at the next open; exit when RSI > overbought."""

    name = "rsi_rule"
    params: ClassVar[dict[str, Param]] = {
        "period": Param(14, "RSI period, bars", int, min=2),
        "oversold": Param(30.0, "RSI level", min=0, max=100),
        "overbought": Param(70.0, "RSI level", min=0, max=100),
    }

    def signals(self, df: pd.DataFrame) -> Signals:
        rsi = talib.RSI(df["close"].to_numpy(), self.p.period)
        prev = np.r_[np.nan, rsi[:-1]]
        entry = np.where((rsi > self.p.oversold) & (prev <= self.p.oversold), 1, 0)
        return Signals.from_entries(entry, exit=rsi > self.p.overbought,
                                    indicators=pd.DataFrame({"rsi": rsi}, index=df.index))


SMALL_GRID = {"period": [7, 14], "oversold": [25.0, 30.0], "overbought": [65.0, 75.0]}


@pytest.mark.shared_data
def test_sweep_metrics_equal_compute_metrics_and_executors_agree(btc_daily: pd.DataFrame) -> None:
    from backtests.config import BacktestConfig
    from backtests.engines.fast import run_fast
    from backtests.tuning.evaluate import SWEEP_METRICS
    from backtests.tuning.sweep import run_sweep

    cfg = BacktestConfig(commission=0.001)
    ser = run_sweep(btc_daily, RsiRule, SMALL_GRID, cfg, executor="serial", top=3)
    par = run_sweep(btc_daily, RsiRule, SMALL_GRID, cfg, workers=2, chunk_size=3)
    pd.testing.assert_frame_equal(ser.table, par.table)
    assert len(ser.table) == 8 and ser.table["sharpe"].is_monotonic_decreasing
    # Every row's metrics are exactly those of a full run through the engine.
    for _, row in ser.table.iterrows():
        p = {k: row[k] for k in ser.param_names}
        res = run_fast(btc_daily, RsiRule(**p), cfg)
        for k in SWEEP_METRICS:
            if k in res.metrics:
                assert row[k] == pytest.approx(res.metrics[k], rel=1e-12, nan_ok=True), k
        if int(row["trial"]) in (int(c) for c in ser.best_equity.columns):
            np.testing.assert_array_equal(ser.best_equity[str(int(row["trial"]))],
                                          res.equity.to_numpy())
    assert list(ser.best_equity.columns) == [str(t) for t in ser.table["trial"][:3]]
    assert ser.returns.shape == (len(btc_daily) - 1, 8)
    assert 0.0 <= ser.overfit["dsr"] <= 1.0 and 0.0 <= ser.overfit["pbo"] <= 1.0
    assert ser.best == {k: ser.table.iloc[0][k] for k in ser.param_names}


def test_sweep_rejects_bad_parameters_and_metric() -> None:
    from backtests.tuning.sweep import run_sweep

    df = _toy_frame()
    with pytest.raises(ValueError, match=r"period.*in parameter set"):
        run_sweep(df, RsiRule, {"period": [1]}, executor="serial")
    with pytest.raises(ValueError, match="unknown parameter"):
        run_sweep(df, RsiRule, {"length": [5]}, executor="serial")
    with pytest.raises(ValueError, match="unknown metric"):
        run_sweep(df, RsiRule, {"period": [5]}, metric="alpha", executor="serial")


def _toy_frame(n: int = 300) -> pd.DataFrame:
    from data.frame import to_canonical

    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    idx = pd.date_range("2021-01-01", periods=n, freq="D", tz="UTC", name="timestamp")
    df = to_canonical(pd.DataFrame({"open": np.r_[close[0], close[:-1]], "high": close * 1.01,
                                    "low": close * 0.98, "close": close,
                                    "volume": np.ones(n)}, index=idx))
    df.attrs.update(timeframe="1d", source="random")
    return df


def test_windowed_sweep_trades_only_inside_the_window() -> None:
    from backtests.tuning.evaluate import BacktestPayload, evaluate_backtest, simulate_window

    df = _toy_frame()
    from backtests.config import BacktestConfig

    pay = BacktestPayload(df=df, strategy_cls=RsiRule, config=BacktestConfig(), start=150,
                          end=250, keep_returns=True)
    p = {"period": 5, "oversold": 40.0, "overbought": 60.0}
    eq, raw, _ = simulate_window(pay, p)
    assert len(eq) == 250 and (eq[:150] == 10_000.0).all()
    assert raw[:, 1].min() >= 150 and raw[:, 2].max() <= 249      # entry/exit bars
    m = evaluate_backtest(pay, p)
    assert len(m["_returns"]) == 100 and m["n_trades"] == len(raw) > 0


def test_int_parameters_stay_ints_in_best_and_report(tmp_path: Path) -> None:
    from backtests.reports.sweep_page import write_sweep_report as write_report
    from backtests.tuning.sweep import run_sweep

    res = run_sweep(_toy_frame(), RsiRule, {"period": [5, 9], "oversold": [40.0],
                                             "overbought": [60.0]}, executor="serial")
    assert type(res.best["period"]) is int and type(res.best["oversold"]) is float
    html = write_report(res, tmp_path / "r.html").read_text()
    assert '<td class="l">5</td>' in html and '<td class="l">9</td>' in html
    assert '<td class="l">5.000</td>' not in html


def test_no_trades_anywhere_gives_a_note_not_a_statistic(tmp_path: Path) -> None:
    from backtests.reports.sweep_page import write_sweep_report as write_report
    from backtests.tuning.sweep import run_sweep

    # Oversold 0 is never crossed: no set trades, so DSR and PBO have nothing to judge.
    res = run_sweep(_toy_frame(), RsiRule, {"period": [5, 9], "oversold": [0.0],
                                             "overbought": [60.0, 70.0]}, executor="serial")
    assert (res.table["n_trades"] == 0).all()
    assert res.overfit == {"note": "no parameter set traded: nothing to judge"}
    html = write_report(res, tmp_path / "r.html").read_text()
    assert "nothing to judge" in html and "Deflated Sharpe ratio:" not in html


USER_STRATEGY = '''
import numpy as np
import talib
from strategies.base import Param, Signals, Strategy


class MyRsi(Strategy):
    """A user's strategy in a file of their own (not importable by name on other machines)."""

    name = "my_rsi"
    params = {"period": Param(14, "RSI period, bars", int, min=2),
              "level": Param(40.0, "RSI level", min=0, max=100)}

    def signals(self, df):
        rsi = talib.RSI(df["close"].to_numpy(), self.p.period)
        prev = np.r_[np.nan, rsi[:-1]]
        entry = np.where((rsi > self.p.level) & (prev <= self.p.level), 1, 0)
        return Signals.from_entries(entry, exit=rsi > 100 - self.p.level)
'''


def test_dask_runs_a_users_strategy_file(dask_client, tmp_path: Path) -> None:
    from backtests.tuning.sweep import run_sweep
    from strategies.loader import load_strategy

    path = tmp_path / "my_strategy.py"
    path.write_text(USER_STRATEGY)
    cls = load_strategy(f"{path}:MyRsi")
    space = {"period": [5, 9], "level": [35.0, 40.0]}
    ref = run_sweep(_toy_frame(), cls, space, executor="serial")
    # The Dask workers are other processes that cannot import the file's module by name: the
    # class must travel by value.
    got = run_sweep(_toy_frame(), cls, space, executor=DaskExecutor(dask_client))
    pd.testing.assert_frame_equal(got.table, ref.table)
    assert (ref.table["n_trades"] > 0).all()


class OrderedRsi(RsiRule):
    """RsiRule with a cross-parameter constraint, as OversoldBounce has."""

    name = "ordered_rsi"

    def check(self) -> None:
        from strategies.base import ParamConflict

        if not self.p.oversold < self.p.overbought:
            raise ParamConflict(f"need oversold < overbought, got {self.p.oversold} >= "
                                f"{self.p.overbought}")


def test_conflicting_sets_are_skipped_with_trial_ids_kept(tmp_path: Path) -> None:
    from backtests.tuning.sweep import run_sweep
    from strategies.base import ParamConflict

    space = grid({"period": [5, 9], "oversold": [40.0, 60.0], "overbought": [50.0, 65.0]})
    bad = [i for i, p in enumerate(space) if p["oversold"] >= p["overbought"]]
    assert len(bad) == 2
    res = run_sweep(_toy_frame(), OrderedRsi, space, executor="serial")
    assert sorted(s["trial"] for s in res.skipped) == bad
    assert "need oversold < overbought" in res.skipped[0]["reason"]
    assert sorted(res.table["trial"]) == [i for i in range(8) if i not in bad]
    for _, row in res.table.iterrows():   # a row's parameters are the set its trial id names
        assert space[int(row["trial"])]["oversold"] == row["oversold"]
    assert sorted(res.returns.columns, key=int) == [str(i) for i in range(8) if i not in bad]
    assert res.overfit["n_trials"] == 6 and res.space == {"n": 6, "n_space": 8, "start": 0,
                                                          "end": 300}
    assert SweepResult.load(res.save(tmp_path / "s")).skipped == res.skipped
    # The same sets without the conflicting ones give the same metrics.
    ok = run_sweep(_toy_frame(), OrderedRsi, [space[i] for i in range(8) if i not in bad],
                   executor="serial")
    cols = [c for c in ok.table.columns if c != "trial"]
    pd.testing.assert_frame_equal(ok.table[cols], res.table[cols])
    with pytest.raises(ParamConflict, match="every parameter set conflicts"):
        run_sweep(_toy_frame(), OrderedRsi, [space[i] for i in bad], executor="serial")


class _Peek(Strategy):
    """Records the frame it is handed and enters on every 20th bar."""

    seen: ClassVar[list[pd.DataFrame]] = []

    def signals(self, df: pd.DataFrame) -> Signals:
        _Peek.seen.append(df)
        e = np.zeros(len(df), np.int8)
        e[::20] = 1
        return Signals.from_entries(e, exit=np.roll(e, 5).astype(bool))


def test_payload_frame_is_a_plain_pandas_frame_with_its_timeframe() -> None:
    import pickle

    from backtests.config import BacktestConfig
    from backtests.tuning.evaluate import BacktestPayload, evaluate_backtest

    df = _toy_frame()
    pay = BacktestPayload(df=df, strategy_cls=_Peek, config=BacktestConfig(), end=250)
    _Peek.seen.clear()
    row = evaluate_backtest(pay, {})
    seen = _Peek.seen[0]
    # What the strategy gets: the window's candles, any pandas API works, the timeframe is known,
    # and it is built once per payload (pandas 3 copies attrs on every column access).
    assert isinstance(seen, pd.DataFrame) and seen.index.equals(df.index[:250])
    pd.testing.assert_frame_equal(seen, df.iloc[:250], check_column_type=False)
    assert seen.columns.dtype == object and seen.attrs == {"timeframe": "1d"}
    assert seen.resample("7D")["close"].last().notna().any()
    evaluate_backtest(pay, {})
    assert _Peek.seen[1] is seen
    # Shipped to a worker: the candles, not the frame and arrays derived from them.
    clone = pickle.loads(pickle.dumps(pay))
    assert clone._frame is None and clone._arrays is None and clone.df.equals(df)
    assert evaluate_backtest(clone, {}) == row
    years, ppy = pay.span()
    assert ppy == 365.0 and years == pytest.approx(249 / 365)


def test_payload_frame_columns_carry_attrs_copies() -> None:
    # The frame's attrs are copied cheaply into each column (their values are immutable
    # strings); what a strategy adds to them is still deep-copied, as pandas does.
    import pickle

    from backtests.config import BacktestConfig
    from backtests.tuning.evaluate import BacktestPayload

    frame = BacktestPayload(df=_toy_frame(), strategy_cls=_Peek, config=BacktestConfig()).frame()
    close = frame["close"]
    assert type(close.attrs) is dict and close.attrs == {"timeframe": "1d"}
    close.attrs["timeframe"] = "changed"
    assert frame.attrs == {"timeframe": "1d"} and frame["close"].attrs["timeframe"] == "1d"
    frame.attrs["notes"] = ["a"]
    col = frame["open"]
    assert col.attrs["notes"] == ["a"] and col.attrs["notes"] is not frame.attrs["notes"]
    assert frame.iloc[:10].attrs == frame.attrs
    assert pickle.loads(pickle.dumps(frame)).attrs == frame.attrs
