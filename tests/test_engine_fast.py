"""Fast engine: hand-computed trades (prices, fees, PnL, liquidation), every execution rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests.config import BacktestConfig, ConfigError
from backtests.engines.fast import run_fast, simulate
from strategies.base import Signals, Strategy


def bars(rows: list[tuple[float, float, float, float]], tf: str = "1d") -> pd.DataFrame:
    """A canonical frame from (open, high, low, close) rows, daily from 2024-01-01."""
    idx = pd.date_range("2024-01-01", periods=len(rows), freq=tf.replace("d", "D"), tz="UTC",
                        name="timestamp").as_unit("ns")
    df = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx, dtype=float)
    df["volume"] = 1.0
    df.attrs["timeframe"] = tf
    return df


def sig(n: int, entries: dict[int, int], stop: dict[int, float] | None = None,
        target: dict[int, float] | None = None, exits: tuple[int, ...] = (),
        max_bars: int = 0) -> Signals:
    e = np.zeros(n, np.int8)
    s = np.full(n, np.nan)
    t = np.full(n, np.nan)
    x = np.zeros(n, bool)
    for k, v in entries.items():
        e[k] = v
    for k, v in (stop or {}).items():
        s[k] = v
    for k, v in (target or {}).items():
        t[k] = v
    x[list(exits)] = True
    return Signals(entry=e, exit=x, stop=s, target=t, max_bars=max_bars)


FLAT = (100.0, 101.0, 99.0, 100.0)


def test_hand_computed_10x_long_liquidation():
    df = bars([FLAT, (100, 102, 98, 101), (101, 101, 89, 95), FLAT, FLAT])
    cfg = BacktestConfig(cash=1000, commission=0.001, leverage=10, size=0.5,
                         maintenance_margin=0.005, liquidation_fee=0.005)
    trades, equity = simulate(df, sig(5, {0: 1}), cfg)
    assert len(trades) == 1
    t = trades.iloc[0]
    q = 0.5 * 1000 / (100 * (1 / 10 + 0.001)) * (1 - 1e-9)  # margin + fee = half the equity
    liq = 100 * (1 - 1 / 10) / (1 - 0.005)  # 90.4522613...
    assert t["size"] == pytest.approx(q, rel=1e-15)
    assert t["entry_price"] == 100.0 and t["entry_bar"] == 1 and t["exit_bar"] == 2
    assert t["liquidation_price"] == pytest.approx(90.45226130653266, rel=1e-15)
    assert t["exit_price"] == pytest.approx(liq, rel=1e-15)
    assert t["exit_reason"] == "liquidation"
    assert t["entry_fee"] == pytest.approx(q * 100 * 0.001, rel=1e-14)
    assert t["exit_fee"] == pytest.approx(q * liq * 0.005, rel=1e-14)
    # with maintenance rate == liquidation fee the whole margin is lost, plus the entry fee
    assert t["pnl"] == pytest.approx(-(q * 100 / 10) - q * 100 * 0.001, rel=1e-12)
    assert t["return_pct"] == pytest.approx(-100 - 1, rel=1e-9)  # -100 % margin, -1 % fee
    assert equity.iloc[1] == pytest.approx(1000 - q * 0.1 + q * 1.0, rel=1e-14)  # marked at 101
    assert equity.iloc[-1] == pytest.approx(1000 + t["pnl"], rel=1e-14)


def test_hand_computed_stop_and_target_with_fees_and_slippage():
    df = bars([FLAT, (100, 104, 99, 103), (103, 112, 102, 110), FLAT, (100, 101, 90, 95), FLAT])
    cfg = BacktestConfig(cash=10_000, commission=0.001, slippage_bps=10)
    s = sig(6, {0: 1, 2: 1}, stop={0: 95.0, 2: 92.0}, target={0: 111.0, 2: 120.0})
    trades, equity = simulate(df, s, cfg)
    assert list(trades["exit_reason"]) == ["target", "stop"]
    t1, t2 = trades.iloc[0], trades.iloc[1]
    pe1 = 100 * 1.001
    q1 = 10_000 / (pe1 * 1.001) * (1 - 1e-9)
    assert t1["entry_price"] == pytest.approx(pe1, rel=1e-15)
    assert t1["exit_price"] == 111.0  # a resting target fills exactly at its price
    assert t1["exit_bar"] == 2
    pnl1 = q1 * (111 - pe1) - q1 * pe1 * 0.001 - q1 * 111 * 0.001
    assert t1["pnl"] == pytest.approx(pnl1, rel=1e-12)
    # second trade: signal on bar 2, fill at bar 3's open; stop 92 hit on bar 4 (low 90)
    cash = 10_000 + pnl1
    pe2 = 100 * 1.001
    q2 = cash / (pe2 * 1.001) * (1 - 1e-9)
    assert t2["entry_bar"] == 3 and t2["exit_bar"] == 4
    assert t2["size"] == pytest.approx(q2, rel=1e-14)
    assert t2["exit_price"] == pytest.approx(92 * (1 - 0.001), rel=1e-15)
    pnl2 = q2 * (92 * 0.999 - pe2) - q2 * pe2 * 0.001 - q2 * 92 * 0.999 * 0.001
    assert equity.iloc[-1] == pytest.approx(10_000 + pnl1 + pnl2, rel=1e-12)


def test_gap_through_stop_fills_at_open_and_stop_beats_target():
    df = bars([FLAT, FLAT, (90, 95, 88, 94), FLAT, (100, 112, 94, 100), FLAT])
    s = sig(6, {0: 1, 3: 1}, stop={0: 95.0, 3: 95.0}, target={3: 110.0})
    trades, _ = simulate(df, s, BacktestConfig(commission=0))
    assert list(trades["exit_reason"]) == ["stop", "stop"]
    assert trades["exit_price"].tolist() == [90.0, 95.0]  # gap: the open; same bar as target: stop


def test_target_gap_fills_at_open_with_slippage_short():
    df = bars([FLAT, FLAT, (80, 85, 79, 84), FLAT])
    s = sig(4, {0: -1}, stop={0: 110.0}, target={0: 90.0})
    trades, _ = simulate(df, s, BacktestConfig(mode="short", slippage_bps=100, commission=0))
    t = trades.iloc[0]
    assert t["side"] == -1 and t["exit_reason"] == "target"
    assert t["entry_price"] == pytest.approx(99.0) and t["exit_price"] == pytest.approx(80.8)


def test_reverse_same_direction_mode_filter_and_end():
    df = bars([FLAT] * 8)
    s = sig(8, {0: 1, 1: 1, 3: -1, 5: 1})
    both, _ = simulate(df, s, BacktestConfig(mode="both", commission=0))
    assert list(both["exit_reason"]) == ["reverse", "reverse", "end"]
    assert list(both["side"]) == [1, -1, 1]
    assert list(both["entry_bar"]) == [1, 4, 6] and list(both["exit_bar"]) == [4, 6, 7]
    long_only, _ = simulate(df, s, BacktestConfig(mode="long", commission=0))
    # the short entry closes the long (exit reason "signal") but opens nothing
    assert list(long_only["exit_reason"]) == ["signal", "end"]
    assert list(long_only["entry_bar"]) == [1, 6]
    short_only, _ = simulate(df, s, BacktestConfig(mode="short", commission=0))
    assert list(short_only["side"]) == [-1] and list(short_only["exit_bar"]) == [6]


def test_exit_signal_time_stop_and_void_setup():
    df = bars([FLAT] * 10)
    trades, _ = simulate(df, sig(10, {0: 1, 5: 1}, exits=(2,), max_bars=3), BacktestConfig())
    assert list(trades["exit_reason"]) == ["signal", "time"]
    assert list(trades["exit_bar"]) == [3, 9]  # time stop: fill bar 6 + 3
    # the open is already below the stop: the setup is void, no trade
    void, _ = simulate(df, sig(10, {0: 1}, stop={0: 100.5}), BacktestConfig())
    assert void.empty


def test_funding_three_charges_per_daily_bar():
    df = bars([FLAT] * 4)
    cfg = BacktestConfig(commission=0, funding_rate=0.0001, mode="short")
    trades, equity = simulate(df, sig(4, {0: -1}), cfg)
    t = trades.iloc[0]
    # held at the close of bars 1 and 2 (bar 3 closes it first: "end"), 3 funding times each
    expected = -1 * t["size"] * 100 * 0.0001 * 3 * 2
    assert t["funding"] == pytest.approx(expected, rel=1e-12)  # negative: the short receives
    assert equity.iloc[-1] == pytest.approx(10_000 - expected, rel=1e-12)
    hourly = BacktestConfig(funding_rate=0.0001).funding_per_bar(
        pd.date_range("2024-01-01", periods=24, freq="h", tz="UTC"), "1h")
    assert hourly.sum() == pytest.approx(0.0003) and list(np.flatnonzero(hourly)) == [0, 8, 16]


def test_funding_series_forward_filled():
    idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    rates = pd.Series([0.001, 0.002], index=pd.DatetimeIndex(
        ["2024-01-01 00:00", "2024-01-02 08:00"], tz="UTC"))
    per_bar = BacktestConfig(funding_rate=rates).funding_per_bar(idx, "1d")
    assert per_bar == pytest.approx([0.003, 0.001 + 0.002 * 2, 0.006])
    with pytest.raises(ConfigError, match="starts at"):
        BacktestConfig(funding_rate=rates.iloc[1:]).funding_per_bar(idx, "1d")


def test_risk_and_fixed_sizing():
    df = bars([FLAT] * 4)
    risk, _ = simulate(df, sig(4, {0: 1}, stop={0: 90.0}),
                       BacktestConfig(sizing="risk", size=0.02, commission=0))
    assert risk["size"].iloc[0] == pytest.approx(0.02 * 10_000 / 10)
    nostop, _ = simulate(df, sig(4, {0: 1}), BacktestConfig(sizing="risk", size=0.02))
    assert nostop.empty  # risk sizing needs a stop
    fixed, _ = simulate(df, sig(4, {0: 1}), BacktestConfig(sizing="fixed", size=0.5))
    assert fixed["size"].iloc[0] == 0.5
    capped, _ = simulate(df, sig(4, {0: 1}), BacktestConfig(sizing="fixed", size=1e6,
                                                            commission=0))
    assert capped["size"].iloc[0] == pytest.approx(100.0, rel=1e-8)  # all the equity affords


@pytest.mark.parametrize("bad", [dict(leverage=0.5), dict(commission=0.5), dict(mode="up"),
                                 dict(sizing="kelly"), dict(size=2.0), dict(cash=-1),
                                 dict(funding_rate="x")])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        BacktestConfig(**bad)


def test_config_round_trip():
    rates = pd.Series([0.0001], index=pd.DatetimeIndex(["2024-01-01"], tz="UTC").as_unit("ns"))
    cfg = BacktestConfig(leverage=3, mode="both", funding_rate=rates)
    back = BacktestConfig.from_dict(cfg.to_dict())
    assert back.to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError, match="valid: cash"):
        BacktestConfig.from_dict({"cash": 1, "levrage": 2})


def test_signals_validation_messages():
    df = bars([FLAT] * 3)
    bad = Signals(entry=np.array([0, 2, 0]), exit=np.zeros(3, bool), stop=np.full(3, np.nan),
                  target=np.full(3, np.nan))
    with pytest.raises(ValueError, match="bar 1"):
        simulate(df, bad, BacktestConfig())
    short = Signals.from_entries(np.zeros(2))
    with pytest.raises(ValueError, match=r"expected \(3,\)"):
        simulate(df, short, BacktestConfig())


class _Always(Strategy):
    name = "always"

    def signals(self, df):
        e = np.zeros(len(df), np.int8)
        e[0] = 1
        return Signals.from_entries(e)


def test_run_fast_returns_a_backtest_result():
    df = bars([FLAT, (100, 110, 99, 110), (110, 121, 109, 121)])
    res = run_fast(df, _Always(), BacktestConfig(commission=0))
    assert res.engine == "fast" and res.strategy == "always"
    assert res.metrics["n_trades"] == 1
    assert res.equity.iloc[-1] == pytest.approx(10_000 * 121 / 100 * (1 - 1e-9) + 10_000 * 1e-9)


def test_excursions_cover_the_bars_held_and_the_exit_price():
    # Long from the open of bar 1 (100); bar 1 dips to 96 and peaks at 104, bar 2 reaches 109,
    # bar 3 opens 108 and the target at 110 fills inside it (its low of 90 comes after: unknown).
    df = bars([FLAT, (100, 104, 96, 103), (103, 109, 101, 108), (108, 111, 90, 95), FLAT])
    trades, _ = simulate(df, sig(5, {0: 1}, target={0: 110.0}), BacktestConfig(commission=0))
    t = trades.iloc[0]
    assert (t["exit_bar"], t["exit_reason"], t["exit_price"]) == (3, "target", 110.0)
    assert t["mae_pct"] == pytest.approx(-4.0, rel=1e-12)   # 96 on bar 1
    assert t["mfe_pct"] == pytest.approx(10.0, rel=1e-12)   # the exit at 110 beats bar 2's 109
    # A short held over the same bars: adverse = the highs, favourable = the lows.
    trades, _ = simulate(df, sig(5, {0: -1}, exits=(2,)), BacktestConfig(commission=0,
                                                                        mode="both"))
    t = trades.iloc[0]
    assert (t["exit_bar"], t["exit_price"]) == (3, 108.0)
    assert t["mae_pct"] == pytest.approx(-9.0, rel=1e-12)   # 109 on bar 2
    assert t["mfe_pct"] == pytest.approx(4.0, rel=1e-12)    # 96 on bar 1


def test_single_run_and_sweep_window_share_one_kernel_entry():
    # a whole-frame sweep window runs the same kernel on the same inputs as a single run
    from backtests.engines.fast import build_trades, prepare
    from backtests.tuning.evaluate import BacktestPayload, simulate_window
    from strategies.breakdown import Breakdown
    from tests.lookahead import ohlc_frame

    df = ohlc_frame(600, "1d", seed=3, volatility=0.04)
    cfg = BacktestConfig(mode="both", leverage=3, size=0.5, funding_rate=0.0001)
    trades, equity = simulate(df, prepare(df, Breakdown(), cfg), cfg)
    eq, raw, s = simulate_window(BacktestPayload(df=df, strategy_cls=Breakdown, config=cfg), {})
    assert len(trades) > 0
    np.testing.assert_array_equal(eq, equity.to_numpy())
    pd.testing.assert_frame_equal(build_trades(df, raw, cfg, s.tags), trades)


def test_exit_codes_name_the_one_reason_table():
    from backtests.engines import fast
    from backtests.results import EXIT_REASONS, OPEN_EXITS

    for name in ("signal", "stop", "target", "liquidation", "time", "end", "reverse"):
        code = getattr(fast, {"liquidation": "R_LIQ"}.get(name, f"R_{name.upper()}"))
        assert EXIT_REASONS[code] == name
    assert [EXIT_REASONS[c] for c in fast.OPEN_EXIT_CODES] == list(OPEN_EXITS)


def test_trade_table_is_built_in_canonical_dtypes():
    # normalize_trades takes the engine's table as it is (no second build); integer tags read
    # as text the way normalize_trades converts them, a missing tag as NaN.
    from backtests.results import TRADE_COLUMNS, TRADE_DTYPES, normalize_trades
    from tests.lookahead import ohlc_frame

    df = ohlc_frame(40, "1d", seed=5)
    s = sig(40, {3: 1, 12: 1, 25: 1}, exits=(8, 18))
    s = Signals(entry=s.entry, exit=s.exit, stop=s.stop, target=s.target,
                tags=np.array([7] * 10 + [None] * 10 + ["late"] * 20, dtype=object))
    trades, _ = simulate(df, s, BacktestConfig())
    assert normalize_trades(trades) is trades
    assert {c: str(trades[c].dtype) for c in TRADE_COLUMNS} == {
        c: str(d) for c, d in TRADE_DTYPES.items()}
    tags = trades["tag"].tolist()
    assert tags[0] == "7" and pd.isna(tags[1]) and tags[2] == "late"
    # the same table as the general conversion of an object-typed tag column gives
    pd.testing.assert_frame_equal(
        normalize_trades(trades.assign(tag=np.array([7, None, "late"], dtype=object))), trades)


def test_untagged_trade_table_is_the_object_conversions_table():
    # Without tags the tag column is built as Arrow nulls and the exit reasons are taken from
    # an Arrow array of the names: the same table, dtypes and values as converting Python
    # objects (None, the reason names) gives, for every exit reason code.
    from backtests.engines.fast import RAW_COLUMNS, build_trades
    from backtests.results import EXIT_REASONS, TRADE_DTYPES, normalize_trades
    from tests.lookahead import ohlc_frame

    df = ohlc_frame(60, "1d", seed=2)
    m = len(EXIT_REASONS)
    raw = np.zeros((m, len(RAW_COLUMNS)))
    col = {c: i for i, c in enumerate(RAW_COLUMNS)}
    raw[:, col["entry_bar"]] = np.arange(m)
    raw[:, col["exit_bar"]] = np.arange(m) + 2
    raw[:, col["side"]] = 1
    raw[:, col["size"]] = 0.1
    raw[:, col["entry_price"]] = raw[:, col["exit_price"]] = 100.0
    raw[:, col["reason"]] = np.arange(m)[::-1]
    trades = build_trades(df, raw, BacktestConfig())
    assert normalize_trades(trades) is trades
    assert trades["exit_reason"].tolist() == list(EXIT_REASONS)[::-1]
    assert trades["tag"].isna().all() and str(trades["tag"].dtype) == str(TRADE_DTYPES["tag"])
    objects = trades.assign(
        exit_reason=pd.array(np.array(EXIT_REASONS, dtype=object)[::-1],
                             dtype=TRADE_DTYPES["exit_reason"]),
        tag=pd.array(np.full(m, None, dtype=object), dtype=TRADE_DTYPES["tag"]))
    pd.testing.assert_frame_equal(trades, objects)
    empty = build_trades(df, np.zeros((0, len(RAW_COLUMNS))), BacktestConfig())
    assert len(empty) == 0 and normalize_trades(empty) is empty


def test_no_funding_is_one_zero_for_every_bar():
    # without funding the kernel reads one 0 for every bar instead of a per-bar array of
    # zeros: the same equity and trades bit for bit, both ways, leveraged, with exit rules
    from backtests.engines.fast import kernel_inputs, market_arrays, prepare, simulate_nb
    from strategies.breakdown import Breakdown
    from tests.lookahead import ohlc_frame

    df = ohlc_frame(800, "1h", seed=4, volatility=0.03)
    cfg = BacktestConfig(mode="both", leverage=5, size=0.5)
    market = market_arrays(df, cfg)
    assert market.funding.shape == (1,) and market.funding[0] == 0.0
    per_bar = market._replace(funding=cfg.funding_per_bar(df.index, "1h"))
    assert per_bar.funding.shape == (800,) and not per_bar.funding.any()
    sig = prepare(df, Breakdown(trail_atr=2.0), cfg)
    eq1, raw1 = simulate_nb(kernel_inputs(market, sig, cfg))
    eq2, raw2 = simulate_nb(kernel_inputs(per_bar, sig, cfg))
    assert len(raw1) > 5
    np.testing.assert_array_equal(eq1, eq2)
    np.testing.assert_array_equal(raw1, raw2)
    # with a rate the array is per bar and charged
    paid = market_arrays(df, BacktestConfig(funding_rate=0.0001), "1h").funding
    assert paid.shape == (800,) and paid.sum() > 0


class _NoPrices(Strategy):
    """Random long/short entries and exits; no stop or target given (``from_entries``'
    missing columns) or the same as explicit all-NaN columns (``explicit``), optionally with
    exit rules (``rules``) and a constant stop (``flat_stop``)."""

    name = "no_prices"

    def __init__(self, explicit: bool, rules: bool = False, flat_stop: bool = False) -> None:
        super().__init__()
        self.explicit, self.rules, self.flat_stop = explicit, rules, flat_stop

    def signals(self, df: pd.DataFrame) -> Signals:
        from strategies.base import ExitRules

        n = len(df)
        rng = np.random.default_rng(3)
        entry = rng.choice([-1, 0, 0, 0, 0, 1], n).astype(np.int8)
        exit_ = rng.random(n) < 0.05
        exits = ExitRules(stop_pct=0.03, trail_pct=0.02, partial_pct=0.01,
                          partial_size=0.5) if self.rules else None
        stop = None
        if self.flat_stop:  # one price for every bar: far below, so only longs can use it
            level = float(df["low"].min()) * 0.5
            stop = np.full(n, level) if self.explicit else np.broadcast_to(level, (n,))
        elif self.explicit:
            stop = np.full(n, np.nan)
        target = np.full(n, np.nan) if self.explicit else None
        return Signals.from_entries(entry, exit=exit_, stop=stop, target=target, exits=exits)


@pytest.mark.parametrize("engine", ["fast", "backtrader"])
@pytest.mark.parametrize("case", ["plain", "rules", "flat_stop", "window"])
def test_no_stop_column_is_the_explicit_nan_column(monkeypatch, engine, case):
    # From CONSTANT_FROM bars on, a missing stop/target is one NaN seen at every bar (no
    # per-bar array); lowered here so a short random walk takes that path. Both engines give
    # the result of explicit all-NaN columns (or a full array of one stop), bit for bit.
    import strategies.base as base
    from backtests.runner import run
    from data.frame import to_canonical

    monkeypatch.setattr(base, "CONSTANT_FROM", 2)
    rng = np.random.default_rng(11)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 600)))
    open_ = np.r_[100.0, close[:-1]]
    wick = np.abs(rng.normal(0.0, 0.004, (2, 600)))
    df = to_canonical(pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * (1 + wick[0]),
         "low": np.minimum(open_, close) * (1 - wick[1]), "close": close, "volume": 1.0},
        index=pd.date_range("2024-01-01", periods=600, freq="1h", tz="UTC")))
    cfg = BacktestConfig(leverage=3.0, funding_rate=0.0001, engine=engine)
    kw = {"rules": case == "rules", "flat_stop": case == "flat_stop"}
    start = df.index[100] if case == "window" else None
    sig = _NoPrices(False, **kw).signals(df)
    assert base.is_constant(sig.target) and not sig.target.flags.writeable
    assert base.is_constant(sig.validate(len(df)).target)  # kept, not filled
    got = run(df, _NoPrices(False, **kw), cfg, start=start)
    want = run(df, _NoPrices(True, **kw), cfg, start=start)
    assert len(got.trades) > 10
    assert set(got.differences(want)) <= {"created"}


def test_missing_prices_are_one_constant_nan_on_long_frames():
    import strategies.base as base

    n = base.CONSTANT_FROM
    sig = Signals.from_entries(np.zeros(n, np.int8))
    for arr in (sig.stop, sig.target):
        assert arr.shape == (n,) and base.is_constant(arr) and np.isnan(arr[n - 1])
        assert arr.nbytes == 8 * n and np.shares_memory(arr, sig.target)  # one value, no fill
    short = Signals.from_entries(np.zeros(n - 1, np.int8))
    assert short.target.flags.writeable and not base.is_constant(short.target)
    with pytest.raises(ValueError, match="read-only"):  # as from_entries' docstring says
        sig.stop[7] = 1.0
    own = Signals.from_entries(np.zeros(n, np.int8), stop=np.full(n, np.nan))
    own.stop[7] = 1.0  # the documented way to set prices bar by bar on a long frame
    assert own.stop[7] == 1.0 and np.isnan(own.stop[8])
    cut = sig.validate(n).from_bar(5)
    assert base.is_constant(cut.stop) and len(cut.stop) == n - 5
    bad = Signals.from_entries(np.zeros(n, np.int8), stop=np.broadcast_to(-1.0, (n,)))
    with pytest.raises(ValueError, match=r"Signals.stop must be a positive price or NaN; bar 0"):
        bad.validate(n)
    assert not base.is_constant(np.zeros(1)) and not base.is_constant(np.zeros((3, 3))[:, 0])
