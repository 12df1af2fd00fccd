"""data.perbar: per-bar frames held compactly read back bit for bit, and a result keeps
its indicator frame in far fewer bytes than the dense frame."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from data.perbar import CompactFrame, Distance, ZoneGroup, compact
from tests.lookahead import ohlc_frame


def _bits_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.columns.equals(b.columns) and a.columns.name == b.columns.name
    assert list(a.dtypes) == list(b.dtypes) and a.attrs == b.attrs
    for c in a.columns:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if x.dtype == np.float64:  # NaN payloads and the sign of zero too
            assert np.array_equal(x.view(np.int64), y.view(np.int64)), c


def _zone_frame(n: int = 5000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    zone = np.repeat(rng.integers(0, 40, n // 10), 10)  # 40 zones, each holds 10 bars
    centre = 100.0 + zone
    centre[:50] = np.nan  # warm-up
    df = pd.DataFrame({
        "close": 100 + rng.standard_normal(n).cumsum(),
        "support": centre, "support_low": centre - 0.5, "support_high": centre + 0.5,
        "flag": rng.random(n) < 0.1,
        "state": pd.Categorical(rng.choice(["a", "b"], n)),
        "flat": np.full(n, np.nan),
        "steps": np.repeat(np.arange(n // 500, dtype=float), 500),
        "rare": np.where(np.arange(n) % 1000 == 0, -0.0, 0.0),
    }, index=idx)
    df.columns.name = "column"
    df.attrs["source"] = "test"
    return df


def test_round_trip_is_bit_for_bit_and_compact():
    df = _zone_frame()
    cf = compact(df)
    names = list(df.columns)
    assert [names[w[0]] for w in cf.zones] == ["support"]
    assert {names[i] for i in cf.runs} >= {"flat", "steps", "rare"}
    assert next(iter(cf.zones.values()))[1].shape == (41, 3)  # 40 zones and the NaN warm-up
    _bits_equal(cf.frame(), df)
    dense = df.memory_usage(index=False).sum()
    assert cf.nbytes < 0.45 * dense
    assert cf.frame() is not cf.frame()  # a new frame each time: changing one changes nothing


def test_a_centre_with_two_bands_is_two_zones():
    # two zones may share a round-number centre with different bands (seen on real daily data)
    df = _zone_frame()
    df.iloc[3000, df.columns.get_loc("support_low")] -= 0.25
    cf = compact(df)
    assert next(iter(cf.zones.values()))[1].shape == (42, 3)
    _bits_equal(cf.frame(), df)


def test_zones_that_change_on_most_bars_stay_dense():
    df = _zone_frame()
    noise = np.random.default_rng(5).standard_normal(len(df))
    df["support"] = df["support"] + noise  # a distinct centre on every bar
    cf = compact(df)
    assert not cf.zones and df.columns.get_loc("support_low") in cf.dense
    _bits_equal(cf.frame(), df)


@pytest.mark.parametrize("frame", [
    pd.DataFrame(),
    pd.DataFrame(index=pd.date_range("2024-01-01", periods=3, tz="UTC")),
    pd.DataFrame({"x": [1.0]}),
    pd.DataFrame(np.ones((50, 2)), columns=["a", "a"]),
    pd.DataFrame({"x_low": np.arange(200.0), "x": np.arange(200.0), 7: np.zeros(200)}),
], ids=["empty", "index_only", "one_row", "duplicate_names", "odd_names"])
def test_edge_frames_read_back_unchanged(frame):
    _bits_equal(compact(frame).frame(), frame)


def test_a_column_of_a_larger_block_is_copied_unless_shared():
    block = np.random.default_rng(3).standard_normal((4000, 6))
    df = pd.DataFrame(block, columns=list("abcdef"))
    base = np.asarray(df["a"].to_numpy())
    while isinstance(base.base, np.ndarray):
        base = base.base
    kept = compact(df[["a", "b"]])
    for v in kept.dense.values():  # the 6-column block can be freed once the frame goes
        assert v.base is None or v.base.nbytes <= v.nbytes
    shared = compact(df[["a"]], shared=df)
    assert np.shares_memory(shared.dense[0], df["a"].to_numpy())


def test_a_result_keeps_the_breakdown_indicators_compactly_and_saves_them_dense(tmp_path):
    from backtests import run
    from backtests.results import BacktestResult
    from strategies.breakdown import Breakdown

    df = ohlc_frame(20_000, "1m", seed=42, volatility=0.002)
    strat = Breakdown(target="r_multiple")
    res = run(df, strat)
    dense = strat.signals(df).indicators  # the frame the run kept
    _bits_equal(res.indicators, dense)
    held = res._indicators
    names = list(dense.columns)
    assert {names[w[0]] for w in held.zones} == {"support", "resistance", "flipped_support",
                                                 "flipped_resistance"}
    assert held.nbytes < 0.5 * dense.memory_usage(index=False).sum()
    # the Parquet file is the plain dense frame: read with pandas alone, equal to the columns
    res.save(tmp_path)
    plain = pd.read_parquet(tmp_path / "indicators.parquet")
    pd.testing.assert_frame_equal(plain, dense, check_exact=True, check_freq=False)
    back = BacktestResult.load(tmp_path)
    assert back == res and back._indicators.zones.keys() == held.zones.keys()


@pytest.mark.shared_data
def test_real_daily_breakdown_frame_is_held_compactly_and_read_back_exactly(btc_daily):
    from strategies.breakdown import Breakdown

    frame = Breakdown().signals(btc_daily).indicators
    cf = compact(frame, shared=btc_daily)
    assert len(cf.zones) == 4  # support, resistance and both flipped zones
    assert cf.nbytes < 0.65 * frame.memory_usage(index=False).sum()
    _bits_equal(cf.frame(), frame)


def test_result_replace_keeps_the_compact_frame_without_rebuilding_it(monkeypatch):
    from backtests import run
    from backtests.results import DataError
    from data.perbar import CompactFrame
    from strategies.breakdown import Breakdown

    df = ohlc_frame(3000, "1h", seed=4, volatility=0.01)
    res = run(df, Breakdown(target="r_multiple"))
    before = res.indicators
    calls = []
    real = CompactFrame.frame
    monkeypatch.setattr(CompactFrame, "frame", lambda self: calls.append(1) or real(self))
    new = res.replace(story={"x": 1}, checks={"lookahead": {"passed": True}})
    assert calls == [] and new._indicators is res._indicators
    assert new.story == {"x": 1} and res.story == {} and new.checks != res.checks
    assert new.differences(res) == ["story", "checks"]
    _bits_equal(new.indicators, before)
    with pytest.raises(TypeError, match="no field 'nope'"):
        res.replace(nope=1)
    with pytest.raises(DataError, match="equity is a list"):
        res.replace(equity=[1.0])


def test_named_columns_read_back_as_the_frame_subset_without_the_others():
    df = _zone_frame()
    cf = compact(df)
    part = cf.frame(["support_high", "steps", "close", "not-a-column"])
    assert list(part.columns) == ["close", "support_high", "steps"]  # the frame's order
    _bits_equal(part, df[["close", "support_high", "steps"]])
    assert part.columns.name == "column" and part.attrs == df.attrs
    none = cf.frame([])
    assert none.shape == (len(df), 0) and none.index.equals(df.index)


def test_reports_read_only_the_indicator_columns_they_draw(monkeypatch):
    from backtests import run
    from backtests.reports import chart_data
    from data.perbar import CompactFrame
    from strategies.breakdown import Breakdown

    df = ohlc_frame(3000, "1h", seed=4, volatility=0.01)
    res = run(df, Breakdown(target="r_multiple"))
    full = res.indicators
    _bits_equal(res.indicator_columns("rsi", "wema200"),
                full[[c for c in full.columns if c in ("rsi", "wema200")]])
    asked = []
    real = CompactFrame.frame
    monkeypatch.setattr(CompactFrame, "frame",
                        lambda self, columns=None: asked.append(columns) or real(self, columns))
    lines = chart_data.indicator_lines(chart_data.Blobs(), res)
    table = chart_data.trade_table(res)
    assert {"support", "resistance", "rsi"} <= set(lines) and len(table["why"]) == len(res.trades)
    assert asked and None not in asked  # never the whole frame of ~26 columns


@pytest.mark.parametrize("strategy", ["breakdown", "bounce"])
def test_a_read_indicator_frame_is_the_readers_own_to_change(strategy):
    """Every column of a result's (or a strategy's) indicator frame takes a write, which
    changes neither the next read, the signals' frame nor the candles (the dense columns are
    shared copy-on-write; they were read-only views, or the result's own held arrays)."""
    from backtests import run
    from strategies.bounce import OversoldBounce
    from strategies.breakdown import Breakdown

    df = ohlc_frame(3000, "1h", seed=4, volatility=0.01)
    candles = df.copy()
    make = Breakdown if strategy == "breakdown" else OversoldBounce
    res = run(df, make())
    sig = make().signals(df)
    for reader in (lambda: res.indicators, lambda: sig.held_indicators.frame()):
        before = reader()
        for c in before.columns:
            mine = reader()
            k = mine.columns.get_loc(c)
            mine.iloc[0, k] = 12345.0 if mine[c].dtype.kind == "f" else mine.iloc[1, k]
            assert mine.iloc[0, k] != before.iloc[0, k] or mine[c].dtype.kind != "f", c
        _bits_equal(reader(), before)
    # a frame outliving the result it was read from takes writes too
    orphan = run(df, make()).indicators
    gc.collect()
    for c in orphan.columns:
        k = orphan.columns.get_loc(c)
        orphan.iloc[0, k] = orphan.iloc[1, k]
    pd.testing.assert_frame_equal(df, candles)


def test_rows_from_a_bar_are_held_as_they_are_and_read_back_as_the_frame_cut_there():
    df = _zone_frame()
    close = df["close"].to_numpy()
    rr = np.full(len(df), np.nan)
    rr[3::8] = np.arange(len(rr[3::8])) * 0.5  # NaN on 7 bars in 8: held sparse
    codes, table = compact(df).zones[(1, 2, 3)]
    cols = [("close", df["close"]), ("support", ZoneGroup(codes, table))]
    cols += [(c, df[c]) for c in df.columns[4:]]
    cols.append(("dist", Distance("close", "support")))
    held = CompactFrame.build(df.index, cols).with_column("planned_rr", rr)
    assert held.zones and held.runs and held.sparse and held.derived and held.dense
    whole = held.frame()
    steps = held.runs[list(held.columns).index("steps")][0]
    for pos in (0, 1, 49, 50, 61, 62, int(steps[3]), int(steps[3]) + 1, 2500, 4999, 5000):
        part = held.from_bar(pos)
        assert len(part) == len(df) - pos and part.index.equals(df.index[pos:])
        _bits_equal(part.frame(), whole.iloc[pos:])
        assert np.shares_memory(part.column("close"), close) or pos == len(df)
    with pytest.raises(IndexError, match="from_bar"):
        held.from_bar(len(df) + 1)


@pytest.mark.parametrize("strategy", ["breakdown", "bounce"])
def test_a_trading_window_keeps_the_indicators_compact_and_equal(strategy):
    from backtests import run
    from strategies.bounce import OversoldBounce
    from strategies.breakdown import Breakdown

    df = ohlc_frame(3000, "1h", seed=4, volatility=0.01)
    make = Breakdown if strategy == "breakdown" else OversoldBounce
    start = df.index[1200]
    want = make().signals(df).indicators.iloc[1200:]
    sig = make().signals(df)
    cut = sig.from_bar(1200)
    assert isinstance(cut.held_indicators, CompactFrame)  # not decoded to be cut
    _bits_equal(cut.indicators, want)
    _bits_equal(run(df, make(), start=start).indicators, want)
