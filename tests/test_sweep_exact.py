"""A sweep's results are exactly those of running every parameter set on its own.

:func:`run_sweep` takes shortcuts (indicator results shared between sets, one compiled signal
check and one compiled metrics call per set, the results table built column by column, PBO's
running block sums); these tests compute the same sets the straightforward way (each strategy
built, its signals computed, validated and simulated on their own, then
:func:`~backtests.tuning.evaluate.raw_metrics`, ``Signals.validate``, a row-by-row table and the
PBO of a plain returns matrix) on real daily candles and require every metric of every set, the
DSR and the PBO to be equal, bit for bit.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from backtests.config import BacktestConfig
from backtests.engines.fast import (
    R_PARTIAL,
    RAW_COLUMNS,
    kernel_inputs,
    market_arrays,
    run_fast,
    simulate_nb,
)
from backtests.metrics import (
    CORE_KEYS,
    NO_TIMES,
    YEAR,
    bar_returns_array,
    metrics_pass,
    periods_per_year,
)
from backtests.tuning.evaluate import (
    BacktestPayload,
    _curve_pair,  # compared with metrics_pass
    checked_signals,
    evaluate_backtest,
    evaluate_backtests,
    raw_metrics,
    window_metrics,
)
from backtests.tuning.executors import SweepError
from backtests.tuning.overfit import _cscv_blocks, _cscv_keyed  # compared with each other
from backtests.tuning.space import grid
from backtests.tuning.sweep import results_table, run_sweep, selection_statistics, sort_order
from data.frame import timeframe_of
from indicators import rsi
from strategies.base import ExitRules, Param, Signals, Strategy


class RsiRule(Strategy):
    """RSI crosses back above ``oversold``: long; RSI above ``overbought``: exit; 8 % stop."""

    name = "rsi_rule_test"
    params: ClassVar[dict[str, Param]] = {
        "period": Param(14, "RSI period, bars", int, min=2),
        "oversold": Param(30.0, "RSI level"),
        "overbought": Param(70.0, "RSI level"),
        "partial": Param(False, "take half off 6 % above the entry", bool),
    }

    def signals(self, df: pd.DataFrame) -> Signals:
        close = df["close"].to_numpy()
        r = rsi(close, self.p.period)
        prev = np.r_[np.nan, r[:-1]]
        cross = (r > self.p.oversold) & (prev <= self.p.oversold)
        exits = ExitRules(partial_pct=0.06, partial_size=0.5) if self.p.partial else None
        return Signals.from_entries(np.where(cross, 1, 0), exit=(r > self.p.overbought) & ~cross,
                                    stop=close * 0.92, exits=exits)


class RsiRuleBatch(RsiRule):
    """:class:`RsiRule` with the batch hook: one RSI per period, one cross per (period,
    oversold) and one stop array for every set of the chunk (arrays shared between sets)."""

    @classmethod
    def signals_many(cls, df: pd.DataFrame, strategies: list[Strategy]) -> list[Signals]:
        close = df["close"].to_numpy()
        stop = close * 0.92
        out: list = [None] * len(strategies)
        for period in sorted({s.p.period for s in strategies}, reverse=True):  # not set order
            r = rsi(close, period)
            prev = np.r_[np.nan, r[:-1]]
            for i, p in ((i, s.p) for i, s in enumerate(strategies) if s.p.period == period):
                cross = (r > p.oversold) & (prev <= p.oversold)
                exits = ExitRules(partial_pct=0.06, partial_size=0.5) if p.partial else None
                out[i] = Signals.from_entries(cross, exit=(r > p.overbought) & ~cross,
                                              stop=stop, exits=exits)
        return out


def _nan_equal(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _straightforward(df: pd.DataFrame, space: list[dict], cfg: BacktestConfig
                     ) -> tuple[list[dict], np.ndarray]:
    """Every set on its own: signals, Signals.validate, the kernel, raw_metrics and the
    per-bar returns (numpy), no sharing between sets."""
    tf = timeframe_of(df)
    market = market_arrays(df, cfg, tf)
    years = (df.index.asi8[-1] - df.index.asi8[0]) / YEAR.value
    rows, returns = [], []
    for p in space:
        sig = RsiRule(**p).signals(df).validate(len(df))
        equity, raw = simulate_nb(kernel_inputs(market, sig, cfg))
        rows.append(raw_metrics(equity, raw, years, periods_per_year(tf), cfg.cash))
        returns.append(bar_returns_array(equity))
    return rows, np.column_stack(returns)


@pytest.mark.parametrize("strategy", [RsiRule, RsiRuleBatch])
def test_sweep_equals_each_set_run_on_its_own(btc_daily: pd.DataFrame, strategy: type) -> None:
    cfg = BacktestConfig(cash=10_000.0, commission=0.001, mode="long")
    # periods repeat across thresholds, so the sweep shares RSIs; partial exits take the
    # metrics path that folds positions (sets with exit rules are simulated one by one in a
    # chunk, the others together); RsiRuleBatch computes a chunk's signals in one call
    space = grid({"period": [7, 14, 21], "oversold": [25.0, 30.0, 35.0],
                  "overbought": [65.0, 75.0], "partial": [False, True]})
    res = run_sweep(btc_daily, strategy, space, cfg, executor="serial", top=0)
    rows, returns = _straightforward(btc_daily, space, cfg)
    assert min(r["n_trades"] for r in rows) >= 5
    ref_table = pd.DataFrame([{"trial": i, **p, **r} for i, (p, r)
                              in enumerate(zip(space, rows, strict=True))])
    ref_table = ref_table.sort_values("sharpe", ascending=False, kind="mergesort",
                                      na_position="last").reset_index(drop=True)
    pd.testing.assert_frame_equal(res.table, ref_table, check_exact=True)
    np.testing.assert_array_equal(res.returns.to_numpy(), returns)
    ref_stats = selection_statistics(ref_table, pd.DataFrame(returns))
    assert set(res.overfit) == set(ref_stats)
    for k, v in ref_stats.items():
        assert _nan_equal(res.overfit[k], v), k
    assert 0.0 <= res.overfit["pbo"] <= 1.0 and res.overfit["pbo_splits"] == 16
    # sets differing only by rounding make near ties in CSCV: the keyed kernel decides them as
    # scoring every column exactly does
    blocks = returns[len(returns) % 16:].reshape(16, -1, returns.shape[1])
    bsum, bsq = blocks.sum(axis=1), (blocks**2).sum(axis=1)
    weight = np.ones(returns.shape[1], dtype=np.intp)
    half = float(blocks.shape[1] * 8)
    for a, b in zip(_cscv_keyed(bsum, bsq, half, True, weight),
                    _cscv_blocks(bsum, bsq, half, True, weight), strict=True):
        np.testing.assert_array_equal(a, b)
    # and the full engine (trade table, compute_metrics) agrees with a few rows
    for trial in (0, 5, 29):
        full = run_fast(btc_daily, RsiRule(**space[trial]), cfg).metrics
        row = res.table.set_index("trial").loc[trial]
        for k in CORE_KEYS:
            if k in full:
                assert row[k] == pytest.approx(full[k], rel=1e-12, abs=1e-12, nan_ok=True), k


def test_one_worker_and_two_give_the_same_sweep(btc_daily: pd.DataFrame) -> None:
    cfg = BacktestConfig(cash=10_000.0, commission=0.001, mode="long")
    space = grid({"period": [9, 14], "oversold": [25.0, 30.0], "overbought": [70.0, 75.0]})
    one = run_sweep(btc_daily, RsiRule, space, cfg, executor="serial", top=0)
    two = run_sweep(btc_daily, RsiRule, space, cfg, workers=2, chunk_size=3, top=0)
    pd.testing.assert_frame_equal(one.table, two.table, check_exact=True)
    assert one.overfit == two.overfit


def test_windowed_sweep_row_with_partial_exits_equals_raw_metrics(btc_daily: pd.DataFrame
                                                                  ) -> None:
    cfg = BacktestConfig(cash=10_000.0, commission=0.001, mode="long")
    pay = BacktestPayload(df=btc_daily, strategy_cls=RsiRule, config=cfg, start=900,
                          end=2900, keep_returns=True)
    for partial in (False, True):
        row = evaluate_backtest(pay, {"partial": partial})
        sig = RsiRule(partial=partial).signals(pay.frame()).validate(2900)
        sig.entry[:899] = 0
        sig.exit[:899] = False
        equity, raw = simulate_nb(kernel_inputs(pay.market(), sig, cfg))
        assert (raw[:, RAW_COLUMNS.index("reason")] == R_PARTIAL).any() == partial
        eq = equity[899:]
        ref = raw_metrics(eq, raw, *pay.span(), cfg.cash, offset=899)
        assert {k: row[k] for k in ref} == pytest.approx(ref, rel=0, abs=0, nan_ok=True)
        np.testing.assert_array_equal(row["_returns"], bar_returns_array(eq))
        assert window_metrics(pay, equity, raw).keys() == row.keys()


def test_checked_signals_is_validate(btc_daily: pd.DataFrame) -> None:
    n = 50
    close = btc_daily["close"].to_numpy()[:n]
    good = Signals.from_entries(np.r_[1, np.zeros(n - 1, dtype=int)], stop=close * 0.9,
                                target=np.full(n, np.nan))
    fast, slow = checked_signals(good, n), good.validate(n)
    for name in ("entry", "exit", "stop", "target"):
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.dtype == b.dtype and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)
    assert (fast.max_bars, fast.tags, fast.exits) == (slow.max_bars, slow.tags, slow.exits)
    # other dtypes are converted as validate converts them
    loose = Signals(entry=np.zeros(n, dtype=np.int64), exit=np.zeros(n, dtype=np.int64),
                    stop=np.full(n, 100, dtype=np.int32), target=np.full(n, np.nan))
    assert checked_signals(loose, n).stop.dtype == np.float64
    # bad values: validate's own errors
    for field, value, msg in (("entry", 2, "entry must be -1, 0 or"),
                              ("entry", -2, "entry must be -1, 0 or"),
                              ("stop", -1.0, "stop must be a positive"),
                              ("stop", 0.0, "stop must be a positive"),
                              ("stop", np.inf, "stop must be a positive"),
                              ("target", -np.inf, "target must be a positive")):
        sig = Signals.from_entries(np.zeros(n, dtype=int))
        getattr(sig, field)[7] = value
        with pytest.raises(ValueError, match=msg):
            checked_signals(sig, n)
    with pytest.raises(ValueError, match="one value per bar"):
        checked_signals(Signals.from_entries(np.zeros(n - 1, dtype=int)), n)


def test_results_table_by_columns_equals_row_by_row() -> None:
    params = [{"a": 1, "b": 2.5, "on": True, "kind": "x", "big": 2**70},
              {"a": 3, "b": 1.0, "on": False, "kind": "y", "big": 1},
              {"a": 2, "b": 0.5, "on": True, "kind": "x", "big": -5}]
    metrics = [{"sharpe": 1.0, "n_trades": 4, "_returns": np.zeros(3)},
               {"sharpe": float("nan"), "n_trades": 0, "_returns": np.zeros(3)},
               {"sharpe": 1.0, "n_trades": 7, "_returns": np.zeros(3)}]
    table = results_table(params, metrics, "sharpe", trials=[4, 5, 9])
    rows = pd.DataFrame([{"trial": t, **p, **{k: v for k, v in m.items() if k[0] != "_"}}
                         for t, p, m in zip([4, 5, 9], params, metrics, strict=True)])
    ref = rows.sort_values("sharpe", ascending=False, kind="mergesort",
                           na_position="last").reset_index(drop=True)
    pd.testing.assert_frame_equal(table, ref, check_exact=True)
    assert table["trial"].tolist() == [4, 9, 5]  # ties keep set order, NaN last
    # sets with different keys: row by row, a missing value is NaN
    mixed = results_table([{"a": 1}, {"a": 2, "b": 3}], [{"sharpe": 1.0}, {"sharpe": 2.0}],
                          "sharpe")
    assert mixed["trial"].tolist() == [1, 0] and math.isnan(mixed["b"].iloc[1])
    with pytest.raises(ValueError, match="one each per set"):
        results_table(params, metrics[:2], "sharpe")


@pytest.mark.parametrize("start", [0, 900])
def test_batch_hook_gives_each_sets_own_signals_and_figures(btc_daily: pd.DataFrame,
                                                            start: int) -> None:
    cfg = BacktestConfig(cash=10_000.0, commission=0.001, mode="long")
    space = grid({"period": [7, 14], "oversold": [25.0, 30.0], "overbought": [65.0, 75.0],
                  "partial": [False, True]})
    pay = BacktestPayload(df=btc_daily, strategy_cls=RsiRuleBatch, config=cfg, start=start,
                          end=2900, keep_returns=True)
    frame = pay.frame()
    strategies = [RsiRuleBatch(**p) for p in space]
    many = RsiRuleBatch.signals_many(frame, strategies)
    for s, sig in zip(strategies, many, strict=True):  # the hook is each set's signals()
        one = s.signals(frame)
        for name in ("entry", "exit", "stop", "target"):
            np.testing.assert_array_equal(getattr(sig, name), getattr(one, name))
    kept = [sig.entry.copy() for sig in many]
    rows = evaluate_backtests(pay, space)
    alone = [evaluate_backtest(BacktestPayload(df=btc_daily, strategy_cls=RsiRule, config=cfg,
                                               start=start, end=2900, keep_returns=True), p)
             for p in space]
    assert [r.keys() for r in rows] == [r.keys() for r in alone]
    for got, ref in zip(rows, alone, strict=True):
        np.testing.assert_array_equal(got.pop("_returns"), ref.pop("_returns"))
        assert got == pytest.approx(ref, rel=0, abs=0, nan_ok=True)
        assert [type(v) for v in got.values()] == [type(v) for v in ref.values()]
    # the warm-up cut works on the sweep's copies: the hook's (shared) arrays are untouched
    again = RsiRuleBatch.signals_many(frame, strategies)
    for k, sig in zip(kept, again, strict=True):
        np.testing.assert_array_equal(k, sig.entry)


class _ConstantNone(RsiRuleBatch):
    """RsiRuleBatch without its stop, "no target" given as one NaN seen at every bar (what
    ``Signals.from_entries`` gives on long frames)."""

    @classmethod
    def signals_many(cls, df: pd.DataFrame, strategies: list[Strategy]) -> list[Signals]:
        out = super().signals_many(df, strategies)
        none = np.broadcast_to(np.float64(np.nan), len(df))
        for sig in out:
            sig.stop = none
            sig.target = none
        return out


def test_a_constant_none_stop_is_simulated_with_the_chunk(btc_daily: pd.DataFrame,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import backtests.tuning.evaluate as evaluate

    cfg = BacktestConfig(cash=10_000.0, commission=0.001, mode="long")
    space = grid({"period": [7, 14], "oversold": [25.0, 30.0]})
    pay = BacktestPayload(df=btc_daily, strategy_cls=_ConstantNone, config=cfg,
                          keep_returns=True)
    alone = []
    monkeypatch.setattr(evaluate, "_evaluate_signals", lambda *a: alone.append(a) or {})
    rows = evaluate_backtests(pay, space)
    assert not alone  # every set went through the compiled chunk
    for p, row in zip(space, rows, strict=True):
        own = RsiRule(**p).signals(btc_daily)
        sig = Signals.from_entries(own.entry, exit=own.exit)  # no stop, no target
        ref = window_metrics(pay, *simulate_nb(kernel_inputs(pay.market(), sig.validate(
            len(btc_daily)), cfg)))
        np.testing.assert_array_equal(row.pop("_returns"), ref.pop("_returns"))
        assert row == pytest.approx(ref, rel=0, abs=0, nan_ok=True)


class _BadHook(RsiRule):
    """A batch hook returning one Signals too few, or an entry code 2 for overbought 75."""

    name = "bad_hook"
    mode = "short"

    @classmethod
    def signals_many(cls, df: pd.DataFrame, strategies: list[Strategy]) -> list[Signals]:
        out = [s.signals(df) for s in strategies]
        if cls.mode == "short":
            return out[:-1]
        for s, sig in zip(strategies, out, strict=True):
            if s.p.overbought == 75.0:
                sig.entry[100] = 2
        return out


def test_a_wrong_batch_hook_is_a_clear_error(btc_daily: pd.DataFrame) -> None:
    cfg = BacktestConfig(cash=10_000.0, commission=0.001, mode="long")
    space = grid({"period": [7, 14], "overbought": [65.0, 75.0]})
    with pytest.raises(SweepError, match=r"each of them succeeds on its own\): ValueError: "
                                         r"_BadHook.signals_many returned 3 values for 4 "
                                         r"parameter sets"):
        run_sweep(btc_daily, _BadHook, space, cfg, executor="serial", top=0)

    class Invalid(_BadHook):
        mode = "invalid"

    with pytest.raises(SweepError, match=r"signals_many: the signals of parameters "
                                         r"\{'period': 7, 'overbought': 75.0\}: Signals.entry "
                                         r"must be -1, 0 or \+1; bar 100 holds 2"):
        run_sweep(btc_daily, Invalid, space, cfg, executor="serial", top=0)

    class Raising(RsiRule):
        def signals(self, df: pd.DataFrame) -> Signals:
            if self.p.period == 9:
                raise ValueError("no signals for period 9")
            return super().signals(df)

    class ShortSelf(RsiRule):  # signals() through a hook that drops the last set
        def signals(self, df: pd.DataFrame) -> Signals:
            return self.signals_many(df, [self])[0]

        @classmethod
        def signals_many(cls, df: pd.DataFrame, strategies: list[Strategy]) -> list[Signals]:
            return [RsiRule(**s.p.__dict__).signals(df) for s in strategies][:-1]

    # each set fails alone with an IndexError: the chunk's clearer error is named beside it
    with pytest.raises(SweepError, match=r"evaluation failed for parameters \{'period': 7\}: "
                                         r"IndexError: .*\(evaluated with the chunk's other "
                                         r"sets: ValueError: ShortSelf.signals_many returned 1 "
                                         r"values for 2 parameter sets") as err:
        run_sweep(btc_daily, ShortSelf, [{"period": 7}, {"period": 9}], cfg,
                  executor="serial", top=0)
    assert isinstance(err.value.__cause__, IndexError)  # the traceback --verbose shows

    # a set whose own signals() fails (in the default hook) is named as before
    with pytest.raises(SweepError, match=r"evaluation failed for parameters \{'period': 9\}: "
                                         r"ValueError: no signals for period 9"):
        run_sweep(btc_daily, Raising, [{"period": 7}, {"period": 9}], cfg, executor="serial",
                  top=0)


def test_batch_hook_declaration_and_inheritance(btc_daily: pd.DataFrame) -> None:
    with pytest.raises(TypeError, match="signals_many must be a classmethod"):
        type("NotClassmethod", (RsiRule,), {"signals_many": lambda cls, df, s: []})

    class OwnSignals(RsiRuleBatch):  # signals() changed below the hook: the hook is not used
        def signals(self, df: pd.DataFrame) -> Signals:
            return Signals.from_entries(np.zeros(len(df), dtype=int))

    frame = BacktestPayload(df=btc_daily, strategy_cls=OwnSignals, config=BacktestConfig()
                            ).frame()
    sigs = OwnSignals.signals_many_on_canonical(frame, [OwnSignals(period=9)])
    assert not sigs[0].entry.any()
    # called by hand on a frame that is not canonical (capitalised columns, naive index)
    raw = btc_daily.rename(columns=str.capitalize)
    raw.index = raw.index.tz_localize(None)
    for cls in (RsiRule, RsiRuleBatch):
        [sig] = cls.signals_many(raw, [cls(period=9)])
        np.testing.assert_array_equal(sig.entry, RsiRule(period=9).signals(btc_daily).entry)


def test_a_serial_sweep_builds_each_strategy_once(btc_daily: pd.DataFrame) -> None:
    built: list[dict] = []

    class Counting(RsiRuleBatch):
        def __init__(self, **params: object) -> None:
            super().__init__(**params)
            built.append(params)

    space = grid({"period": [9, 14], "oversold": [25.0, 30.0]})
    one = run_sweep(btc_daily, Counting, space, executor="serial", top=0)
    assert len(built) == len(space)  # the parameter check's instances are the ones run
    ref = run_sweep(btc_daily, RsiRule, space, executor="serial", top=0)
    assert one.table.equals(ref.table)


def test_a_chunk_goes_to_the_hook_in_batches_bounded_by_bars(btc_daily: pd.DataFrame,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """Every set's Signals of one hook call live until the batch is simulated, so a chunk is
    handed over in batches of at most BATCH_BAR_SETS sets x bars (500 sets of 1M bars would
    hold tens of GB); the figures are those of one batch."""
    import backtests.tuning.evaluate as evaluate

    cfg = BacktestConfig(cash=10_000.0, commission=0.001, mode="long")
    space = grid({"period": [7, 14, 21], "oversold": [25.0, 30.0], "overbought": [65.0, 75.0]})
    pay = BacktestPayload(df=btc_daily, strategy_cls=RsiRuleBatch, config=cfg, end=3000,
                          keep_returns=True)
    whole = evaluate_backtests(pay, space)
    sizes: list[int] = []
    hook = RsiRuleBatch.signals_many_on_canonical.__func__
    monkeypatch.setattr(RsiRuleBatch, "signals_many_on_canonical", classmethod(
        lambda cls, df, s: sizes.append(len(s)) or hook(cls, df, s)))
    monkeypatch.setattr(evaluate, "BATCH_BAR_SETS", 5 * 3000 + 1)  # 5 sets of 3,000 bars
    batched = evaluate_backtests(pay, space)
    assert sizes == [5, 5, 2]
    for got, ref in zip(batched, whole, strict=True):
        np.testing.assert_array_equal(got.pop("_returns"), ref.pop("_returns"))
        assert got == pytest.approx(ref, rel=0, abs=0, nan_ok=True)


def _curves() -> list[np.ndarray]:
    """Equity curves with what the per-bar figures must get right: flat stretches, gains and
    losses, a wipe-out to 0 and below (returns 0 from there), one and two bars."""
    rng = np.random.default_rng(17)
    out = []
    for n in (1, 2, 3, 50, 3243):
        r = rng.normal(0, 0.03, n) * (rng.random(n) < 0.6)
        out.append(1e4 * np.cumprod(1 + r))
    wiped = out[3].copy()
    wiped[20:30] = 0.0
    wiped[30:] = -5.0
    out.append(wiped)
    out.append(np.full(40, 1e4))
    return out


def test_curve_pair_is_metrics_pass_bit_for_bit() -> None:
    """The sweep's chunk computes the curve figures two curves at a time
    (``evaluate._curve_pair``): the same values as ``metrics_pass`` for each, and the returns of
    ``bar_returns_array``, bit for bit (``repr``: signed zeros and NaN included)."""
    none = np.zeros(0)
    nobars = np.zeros(0, dtype=np.int64)
    curves = _curves()
    for a in curves:
        for b in [c for c in curves if len(c) == len(a)]:
            ra, rb = np.empty(len(a) - 1), np.empty(len(b) - 1)
            fa, fb = np.full(11, 7.0), np.full(11, 7.0)
            _curve_pair(a, b, ra, rb, fa, fb)
            for eq, r, f in ((a, ra, fa), (b, rb, fb)):
                ref = metrics_pass(eq, none, nobars, nobars, np.zeros(0, dtype=np.bool_), 0,
                                   NO_TIMES, NO_TIMES)[:7]
                assert [repr(float(x)) for x in f[:7]] == [repr(float(x)) for x in ref]
                assert r.tobytes() == bar_returns_array(eq).tobytes()
                assert (f[7:] == 7.0).all()  # the trade figures' slots are left alone


@pytest.mark.parametrize("ascending", [False, True])
def test_sort_order_is_pandas_sort_values(ascending: bool) -> None:
    """The results table is sorted before pandas builds it (``sweep.sort_order``): the same row
    order as ``sort_values(kind="mergesort", na_position="last")`` on ties, NaN, signed zeros,
    infinities and int columns."""
    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 7, 240, 1000):
        ties = rng.choice([-1.5, -0.0, 0.0, 0.25, 2.0, np.nan, np.inf, -np.inf], n)
        x = np.where(rng.random(n) < 0.6, ties, rng.normal(size=n))
        for values in (x, rng.integers(-3, 3, n)):
            frame = pd.DataFrame({"v": values, "row": np.arange(n)})
            want = frame.sort_values("v", ascending=ascending, kind="mergesort",
                                     na_position="last")["row"].to_numpy()
            got = sort_order(values, ascending)
            assert got.dtype == np.intp and got.tolist() == want.tolist()
