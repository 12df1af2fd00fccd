"""BacktestResult: exact save/load round trip, atomic writes, clear errors, fingerprint."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtests.results as results_mod
from backtests.persist import from_jsonable, to_jsonable
from backtests.results import (
    RESULTS_JSON,
    SCHEMA_VERSION,
    TRADE_COLUMNS,
    TRADE_DTYPES,
    BacktestResult,
    buy_and_hold,
    data_fingerprint,
    empty_trades,
    normalize_trades,
)
from data.frame import DataError


def _prices(n: int = 60, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    idx = pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC", unit="ns",
                        name="timestamp")
    df = pd.DataFrame({
        "open": open_, "high": np.maximum(open_, close) * 1.01,
        "low": np.minimum(open_, close) * 0.99, "close": close,
        "volume": rng.uniform(1, 10, n),
    }, index=idx)
    df.attrs.update(timeframe="1d", source="synthetic")
    return df


def _trades(df: pd.DataFrame) -> pd.DataFrame:
    t = df.index
    return normalize_trades(pd.DataFrame({
        "entry_time": [t[3], t[20], t[40]], "exit_time": [t[10], t[25], t[59]],
        "entry_bar": [3, 20, 40], "exit_bar": [10, 25, 59], "side": [1, -1, 1],
        "size": [0.3, 0.25, 0.1 / 3], "entry_price": df["open"].iloc[[3, 20, 40]].to_numpy(),
        "exit_price": df["open"].iloc[[10, 25, 59]].to_numpy(), "entry_fee": [9.1, 7.7, 1.0],
        "exit_fee": [9.3, 7.5, 1.1], "funding": [0.0, -1.25, 0.3], "pnl": [120.5, -80.25, 0.1],
        "return_pct": [1.2, -0.8, 0.001], "exit_reason": ["signal", "stop", "end"],
        "leverage": [1.0, 3.0, 1.0], "liquidation_price": [np.nan, 41_000.5, np.nan],
        "mae_pct": [-1.5, -4.0, 0.0], "mfe_pct": [3.0, 1.0, 0.2], "tag": ["rsi<30", None, 7],
    }))


def _result(tmp_note: str = "unit") -> BacktestResult:
    df = _prices()
    trades = _trades(df)
    config = {"cash": 10_000.0, "commission": 0.001, "slippage_bps": 2.5, "leverage": 3.0,
              "mode": "both", "sizing": "percent", "size": 0.95, "engine": "fast",
              "funding_rate": pd.Series([0.0001, -0.00005], index=df.index[[0, 30]]),
              "choices": ("a", "b"), "note": None}
    equity = pd.Series(10_000 + np.cumsum(np.r_[0.0, np.full(len(df) - 1, 0.1)]) / 3,
                       index=df.index, name="equity")
    ind = pd.DataFrame({"rsi": np.r_[np.full(14, np.nan), np.linspace(20, 80, len(df) - 14)],
                        "in_zone": np.arange(len(df)) % 3 == 0,
                        "regime": pd.Series(["bull", "bear"] * 30, index=df.index)},
                       index=df.index)
    events = pd.DataFrame({"time": df.index[[5, 30]], "kind": ["flip_down", "retest"],
                           "price": [31_000.25, np.nan], "level_id": [1, 1]})
    levels = pd.DataFrame({"centre": [30_000.0, 35_000.0], "low": [29_800.0, 34_700.0],
                           "high": [30_200.0, 35_300.0], "touches": [4, 2],
                           "role": ["support", "resistance"],
                           "mixed": pd.Series([1, "x"], dtype=object)})
    res = BacktestResult.from_run(
        df=df, strategy="oversold_bounce", params={"rsi_period": 14, "oversold": 30.0,
                                                   "use_ema": True, "name": tmp_note},
        config=config, trades=trades, equity=equity, engine="fast", indicators=ind,
        events=events, levels=levels,
        outlook={"bias": "neutral", "score": float("nan"), "levels": [1.5, 2.0],
                 "at": pd.Timestamp("2024-02-29", tz="UTC")},
        origin="seeded random walk, seed 1",
    )
    res.metrics["profit_factor_probe"] = math.inf
    return res


def test_round_trip_is_exact(tmp_path):
    res = _result()
    out = res.save(tmp_path / "run1")
    assert out == tmp_path / "run1"
    back = BacktestResult.load(out)
    assert back == res
    assert back is not res and back != _result("other")
    for name in ("prices", "trades", "indicators", "events", "levels"):
        a, b = getattr(res, name), getattr(back, name)
        assert list(a.dtypes.astype(str)) == list(b.dtypes.astype(str)), name
        assert a.index.equals(b.index), name
    assert str(back.prices.index.dtype) == "datetime64[ns, UTC]"
    assert back.prices.index.name == "timestamp" and back.prices.attrs["timeframe"] == "1d"
    assert back.equity.name == "equity" and back.benchmark.name == "benchmark"
    assert back.equity.index.tz is not None
    assert np.isnan(back.indicators["rsi"].iloc[0])
    assert back.levels["mixed"].tolist() == [1, "x"]
    assert back.trades["tag"].tolist()[0] == "rsi<30" and back.trades["tag"].tolist()[2] == "7"
    assert pd.isna(back.trades["tag"].iloc[1])
    assert back.metrics["profit_factor_probe"] == math.inf
    assert math.isnan(back.outlook["score"])
    assert back.config["choices"] == ("a", "b")
    pd.testing.assert_series_equal(back.config["funding_rate"], res.config["funding_rate"])
    # Floats round-trip bit for bit through JSON.
    for k, v in res.metrics.items():
        w = back.metrics[k]
        assert (isinstance(v, float) and math.isnan(v) and math.isnan(w)) or v == w, k
    # results.json is strict JSON (no NaN/Infinity literals) and says what it is.
    raw = json.loads((out / RESULTS_JSON).read_text(),
                     parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert raw["kind"] == "btc-backtest-result" and raw["schema"] == SCHEMA_VERSION
    assert raw["data"]["rows"] == 60 and raw["engine"] == "fast"
    assert {p.name for p in out.iterdir()} == {
        RESULTS_JSON, "prices.parquet", "trades.parquet", "indicators.parquet",
        "events.parquet", "levels.parquet", "equity.parquet", "benchmark.parquet"}


def test_equality_sees_small_changes(tmp_path):
    res = _result()
    back = BacktestResult.load(res.save(tmp_path / "r"))
    back.equity.iloc[5] = np.nextafter(back.equity.iloc[5], np.inf)
    assert back != res
    back = BacktestResult.load(tmp_path / "r")
    back.metrics["sharpe"] = 0.0
    assert back != res


def test_overwrite_keeps_foreign_files_and_leaves_no_temp(tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    (target / "report.html").write_text("<html></html>")
    first = _result("first")
    first.save(target)
    second = _result("second")
    second.trades = second.trades.iloc[:1]
    second.save(target)
    assert BacktestResult.load(target) == second
    assert (target / "report.html").read_text() == "<html></html>"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temp dir left behind


def test_failed_save_never_leaves_a_half_result(tmp_path, monkeypatch):
    good = _result("good")
    target = tmp_path / "r"
    good.save(target)
    calls = {"n": 0}
    real_to_parquet = pd.DataFrame.to_parquet

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real_to_parquet(self, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing)
    with pytest.raises(OSError, match="disk full"):
        _result("bad").save(target)
    with pytest.raises(OSError, match="disk full"):
        calls["n"] = 0
        _result("bad").save(tmp_path / "new")
    monkeypatch.undo()
    assert BacktestResult.load(target) == good  # old result intact
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="not a saved backtest result"):
        BacktestResult.load(tmp_path)
    (tmp_path / RESULTS_JSON).write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        BacktestResult.load(tmp_path)
    (tmp_path / RESULTS_JSON).write_text('{"kind": "something-else"}')
    with pytest.raises(DataError, match="not a btc-backtest result"):
        BacktestResult.load(tmp_path)

    out = _result().save(tmp_path / "r")
    manifest = json.loads((out / RESULTS_JSON).read_text())
    manifest["schema"] = SCHEMA_VERSION + 1
    (out / RESULTS_JSON).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"schema version 2 is not supported.*upgrade"):
        BacktestResult.load(out)

    out = _result().save(tmp_path / "r2")
    (out / "trades.parquet").unlink()
    with pytest.raises(DataError, match=r"trades\.parquet is missing"):
        BacktestResult.load(out)

    out = _result().save(tmp_path / "r3")
    other = _result("x")
    other.equity = other.equity * 2
    other.save(tmp_path / "r4")
    (out / "equity.parquet").write_bytes((tmp_path / "r4" / "equity.parquet").read_bytes())
    with pytest.raises(DataError, match=r"equity\.parquet does not match its checksum"):
        BacktestResult.load(out)


def test_unstorable_values_are_rejected(tmp_path):
    res = _result()
    res.config["bad"] = object()
    with pytest.raises(DataError, match="cannot store a object"):
        res.save(tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert list(tmp_path.iterdir()) == []


def test_jsonable_round_trip():
    obj = {"a": [1, 2.5, float("nan"), -math.inf, np.float64(0.1), np.int64(3), True],
           "t": pd.Timestamp("2024-01-01 12:00", tz="UTC"), "tu": (1, "x"), "n": None}
    back = from_jsonable(json.loads(json.dumps(to_jsonable(obj), allow_nan=False)))
    assert back["a"][:2] == [1, 2.5] and math.isnan(back["a"][2]) and back["a"][3] == -math.inf
    assert back["a"][4] == 0.1 and back["a"][5] == 3 and back["a"][6] is True
    assert back["t"] == obj["t"] and back["tu"] == (1, "x") and back["n"] is None


def test_trade_table_shape_and_validation():
    e = empty_trades()
    assert tuple(e.columns) == TRADE_COLUMNS and len(e) == 0
    assert {c: str(t) for c, t in e.dtypes.items()} == {c: str(TRADE_DTYPES[c])
                                                          for c in TRADE_COLUMNS}
    df = _prices()
    t = _trades(df)
    assert str(t["entry_time"].dtype) == "datetime64[ns, UTC]"
    assert t["side"].dtype == np.int64 and t["exit_reason"].dtype == TRADE_DTYPES["exit_reason"]
    with pytest.raises(DataError, match="lack column"):
        normalize_trades(t.drop(columns=["pnl", "tag"]))
    bad = t.copy()
    bad.loc[0, "exit_reason"] = "panic"
    with pytest.raises(DataError, match=r"unknown trade exit reason.*panic"):
        normalize_trades(bad)
    extra = t.assign(note=["a", "b", "c"])
    assert list(normalize_trades(extra).columns) == [*TRADE_COLUMNS, "note"]


def test_fingerprint():
    df = _prices()
    fp = data_fingerprint(df, "seed 1", exchange="bitstamp", symbol="BTC/USD")
    assert fp["rows"] == 60 and fp["timeframe"] == "1d" and fp["source"] == "synthetic"
    assert fp["start"] == "2024-01-01T00:00:00+00:00" and fp["end"] == "2024-02-29T00:00:00+00:00"
    assert fp["exchange"] == "bitstamp" and fp["symbol"] == "BTC/USD" and fp["origin"] == "seed 1"
    assert len(fp["sha256"]) == 64
    assert data_fingerprint(df.copy())["sha256"] == fp["sha256"]
    changed = df.copy()
    changed.iloc[30, 3] = np.nextafter(changed.iloc[30, 3], 0)
    assert data_fingerprint(changed)["sha256"] != fp["sha256"]
    shifted = df.copy()
    shifted.index = shifted.index + pd.Timedelta(hours=1)
    assert data_fingerprint(shifted)["sha256"] != fp["sha256"]
    # Any frame to_canonical accepts: a naive index is taken as UTC, so the same candles.
    assert data_fingerprint(df.tz_convert(None))["sha256"] == fp["sha256"]
    with pytest.raises(DataError, match="not sorted"):
        data_fingerprint(df.iloc[::-1])


@pytest.mark.shared_data
def test_real_data_result_round_trip(btc_daily, tmp_path):
    fp = data_fingerprint(btc_daily)
    assert fp["rows"] == 3243 and fp["start"].startswith("2017-08-17")
    bench = buy_and_hold(btc_daily, 10_000.0, 0.001)
    res = BacktestResult.from_run(df=btc_daily, strategy="hold", params={},
                                  config={"cash": 10_000.0, "commission": 0.001},
                                  trades=empty_trades(), equity=bench.rename("equity"),
                                  engine="fast")
    assert res.metrics["total_return_pct"] == pytest.approx(res.metrics["buy_hold_return_pct"])
    assert res.drawdown.max() == 0 and res.drawdown.min() == pytest.approx(
        res.metrics["max_drawdown_pct"] / 100)
    assert BacktestResult.load(res.save(tmp_path / "hold")) == res


def test_summary_and_exit_reasons():
    res = _result()
    s = res.summary()
    assert s["strategy"] == "oversold_bounce" and s["n_trades"] == 3 and s["rows"] == 60
    assert res.trades_by_exit_reason().loc["stop", "trades"] == 1
    assert "oversold_bounce" in repr(res)
    assert res.version == results_mod.package_version()
    assert res.created.endswith("+00:00")


def test_buy_and_hold_first_open_and_exit_fee():
    df = _prices(5)
    b = buy_and_hold(df, 1_000.0, 0.002)
    qty = 1_000.0 / (df["open"].iloc[0] * 1.002)
    assert b.iloc[:-1].tolist() == pytest.approx((qty * df["close"].iloc[:-1]).tolist(),
                                                 rel=1e-15)
    assert b.iloc[-1] == pytest.approx(qty * df["close"].iloc[-1] * 0.998, rel=1e-15)
    assert b.index.equals(df.index) and b.name == "benchmark"


def test_save_into_a_file_path_fails_clearly(tmp_path: Path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        _result().save(f)
    assert f.read_text() == "x"


def test_fingerprint_is_sha256_of_the_documented_bytes_and_cached_by_contents(monkeypatch):
    df = _prices()
    ref = hashlib.sha256(df.index.as_unit("ns").asi8.astype("<i8").tobytes())
    for c in ("open", "high", "low", "close", "volume"):
        ref.update(df[c].to_numpy(dtype="<f8").tobytes())
    assert data_fingerprint(df)["sha256"] == ref.hexdigest()

    calls = []
    real = hashlib.sha256

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(hashlib, "sha256", counting)
    # The same contents again (the same frame or a copy): looked up, not hashed again.
    assert data_fingerprint(df)["sha256"] == ref.hexdigest()
    assert data_fingerprint(df.copy())["sha256"] == ref.hexdigest()
    assert calls == []
    # A value changed in place in the very same frame is new contents: hashed afresh, and the
    # digest is that of a frame built with the changed value from scratch.
    before = data_fingerprint(df)["sha256"]
    df.iloc[7, 1] = np.nextafter(df.iloc[7, 1], np.inf)
    after = data_fingerprint(df)["sha256"]
    assert calls == [1] and after != before
    monkeypatch.undo()
    fresh = pd.DataFrame({c: df[c].to_numpy().copy() for c in df.columns},
                         index=df.index.copy())
    assert data_fingerprint(fresh)["sha256"] == after
    # ... and changing it back gives the first digest again.
    df.iloc[7, 1] = np.nextafter(df.iloc[7, 1], -np.inf)
    assert data_fingerprint(df)["sha256"] == before


@pytest.mark.parametrize("parallel_from", [0, 1 << 40], ids=["two_threads", "one_thread"])
def test_fingerprint_cache_key_sees_a_change_in_any_column(monkeypatch, parallel_from):
    # large frames hash the two halves of the columns in two threads: a change in a column of
    # either half (open: first; volume: second) or in the index is new contents either way
    import backtests.results as results

    monkeypatch.setattr(results, "_PARALLEL_BYTES", parallel_from)
    df = _prices()
    ref = data_fingerprint(df)["sha256"]
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    assert data_fingerprint(df.copy())["sha256"] == ref and calls == []
    for col in ("open", "volume"):
        changed = df.copy()
        changed.iloc[-1, changed.columns.get_loc(col)] *= 1.5
        assert data_fingerprint(changed)["sha256"] != ref, col
    later = df.copy()
    later.index = later.index + pd.Timedelta(seconds=1)
    assert data_fingerprint(later)["sha256"] != ref
    assert len(calls) == 3


def test_a_canonical_trade_table_is_taken_as_is_and_any_other_is_normalised():
    # normalize_trades' fast path: the table itself when its layout is canonical (extra columns
    # after, a "str" column of Python storage included); a column of another dtype, another
    # order, another index or a missing reason is normalised or refused.
    t = _trades(_prices())
    assert normalize_trades(t) is t
    extra = t.assign(note=[1, 2, 3])
    assert normalize_trades(extra) is extra
    python_str = t.assign(tag=t["tag"].astype(pd.StringDtype("python", na_value=np.nan)))
    assert normalize_trades(python_str) is python_str
    as_float = t.assign(side=t["side"].astype(np.float64))
    out = normalize_trades(as_float)
    assert out is not as_float and out["side"].dtype == np.int64
    pd.testing.assert_frame_equal(out, t)
    swapped = t[[TRADE_COLUMNS[1], TRADE_COLUMNS[0], *TRADE_COLUMNS[2:]]]
    pd.testing.assert_frame_equal(normalize_trades(swapped), t)
    shifted = t.set_axis([5, 6, 7])
    pd.testing.assert_frame_equal(normalize_trades(shifted), t)
    missing = t.copy()
    missing.loc[1, "exit_reason"] = None
    with pytest.raises(DataError, match="missing"):
        normalize_trades(missing)


def test_a_result_keeps_the_candles_it_ran_on_and_hashes_them_when_first_read(monkeypatch):
    from backtests.engines.fast import run_fast
    from strategies import OversoldBounce

    df = _prices(400, seed=3)
    calls = []
    real = results_mod.data_fingerprint
    monkeypatch.setattr(results_mod, "data_fingerprint",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    res = run_fast(df, OversoldBounce(), start=df.index[100])
    assert calls == []  # no hash taken in the run
    original = df.iloc[100:].copy()
    want = real(original)["sha256"]
    # The caller changes its frame through pandas after the run, before anything read the
    # result: the result's candles and their hash stay those the run used.
    close = df.columns.get_loc("close")
    df.iloc[150, close] *= 2.0
    df.iloc[:, close] += 1.0
    pd.testing.assert_frame_equal(res.prices, original)
    assert res.data["sha256"] == want and calls == [1]
    assert res.data["rows"] == 300 and res.data["start"] == _ts(original.index[0])
    assert res.data["warmup"]["history_bars"] == 100  # the engine's extra key is kept
    assert res.data["sha256"] == want and calls == [1]  # hashed once
    # A change to the result's own prices does not reach the recorded hash either.
    res2 = run_fast(original, OversoldBounce())
    res2.prices.iloc[5, close] = 1.0
    assert res2.data["sha256"] == want
    assert res2.data["sha256"] != real(res2.prices)["sha256"]


def _ts(t: pd.Timestamp) -> str:
    return t.isoformat()
