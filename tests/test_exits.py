"""Managed exits (:class:`strategies.base.ExitRules`): hand-checked fills on small constructed
paths, run on both engines (stop on the close, gaps through stops, stop and target in one bar,
trailing ratchets by percent / ATR / indicator line, break-even, partial take-profit, the initial
stop), input validation, and the reference rule "exit when the close falls 5 % below the entry
fill" written with the API equal to the same rule replayed by hand inside ``signals()``."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from backtests.config import BacktestConfig
from backtests.engines import bt as engine_bt
from backtests.engines import fast as engine_fast
from backtests.metrics import compute_metrics, trade_stats
from backtests.tuning.audit import audit
from strategies.base import ExitRules, Param, Signals, Strategy
from strategies.bounce import OversoldBounce
from strategies.breakdown import Breakdown
from tests.lookahead import assert_causal, ohlc_frame
from tests.test_engine_fast import FLAT, bars

ENGINES = [engine_fast, engine_bt]
LONG = BacktestConfig(mode="long", commission=0.001)


def one_entry(n: int, side: int = 1, at: int = 0, target: float = np.nan,
              stop: float = np.nan, **rules) -> Signals:
    """One entry on bar ``at`` (filled at bar ``at + 1``'s open) with the given exit rules."""
    entry = np.zeros(n, np.int8)
    entry[at] = side
    st = np.full(n, np.nan)
    tg = np.full(n, np.nan)
    st[at], tg[at] = stop, target
    return Signals.from_entries(entry, stop=st, target=tg, exits=ExitRules(**rules))


def run_both(df: pd.DataFrame, s: Signals, cfg: BacktestConfig) -> pd.DataFrame:
    """The fast engine's trades, after checking backtrader made the same ones (and equity)."""
    tf, ef = engine_fast.simulate(df, s, cfg)
    tb, eb = engine_bt.simulate(df, s, cfg)
    pd.testing.assert_frame_equal(tf[["entry_bar", "exit_bar", "side", "exit_reason"]],
                                  tb[["entry_bar", "exit_bar", "side", "exit_reason"]])
    for col in ("size", "entry_price", "exit_price", "entry_fee", "exit_fee", "funding", "pnl",
                "initial_stop"):
        np.testing.assert_allclose(tb[col], tf[col], rtol=1e-12, atol=1e-9, err_msg=col)
    np.testing.assert_allclose(eb, ef, rtol=1e-12)
    return tf


def q_all_in(fill: float, cash: float = 10_000.0, comm: float = 0.001) -> float:
    return cash / (fill * (1 + comm)) * (1 - 1e-9)


def test_stop_on_the_close_ignores_wicks_and_fills_at_the_next_open():
    # fill 100 -> close stop 95: bar 1 trades down to 94 but closes at 96 (kept); bar 2 closes at
    # 94.5 (triggered); bar 3 opens at 93: the exit fill
    df = bars([FLAT, (100, 102, 94, 96), (96, 97, 94, 94.5), (93, 95, 92, 94), FLAT])
    t = run_both(df, one_entry(5, close_stop_pct=0.05), LONG)
    assert len(t) == 1
    r = t.iloc[0]
    assert (r["entry_bar"], r["exit_bar"], r["exit_reason"]) == (1, 3, "stop_close")
    assert r["entry_price"] == 100.0 and r["exit_price"] == 93.0
    assert r["initial_stop"] == pytest.approx(95.0, rel=1e-15)
    q = q_all_in(100.0)
    assert r["pnl"] == pytest.approx(q * (93 - 100) - q * 100 * 0.001 - q * 93 * 0.001, rel=1e-12)
    # the intrabar stop at the same level leaves at 95 inside bar 1 instead
    t2 = run_both(df, one_entry(5, stop_pct=0.05), LONG).iloc[0]
    assert (t2["exit_bar"], t2["exit_reason"], t2["exit_price"]) == (1, "stop", pytest.approx(95.0))


def test_short_stop_on_the_close_with_an_absolute_level_and_atr():
    # short fill 100; close stop = nearer of 104 (absolute) and 100 + 2 * atr(3) = 106 -> 104
    df = bars([FLAT, (100, 105, 99, 103), (103, 106, 102, 104), (105, 106, 104, 105), FLAT])
    atr = np.full(5, 3.0)
    s = one_entry(5, side=-1, close_stop=104.0, close_stop_atr=2.0, atr=atr)
    r = run_both(df, s, BacktestConfig(mode="short", commission=0.0)).iloc[0]
    assert (r["exit_bar"], r["exit_reason"], r["exit_price"]) == (3, "stop_close", 105.0)
    assert r["initial_stop"] == 104.0


def test_gap_through_a_relative_stop_fills_at_the_open_with_slippage():
    cfg = BacktestConfig(mode="long", commission=0.001, slippage_bps=10)
    df = bars([FLAT, FLAT, (90, 92, 88, 91), FLAT])
    r = run_both(df, one_entry(4, stop_pct=0.05), cfg).iloc[0]
    fill = 100 * 1.001
    assert r["entry_price"] == pytest.approx(fill, rel=1e-15)
    assert r["initial_stop"] == pytest.approx(fill * 0.95, rel=1e-15)  # 95.095, from the fill
    assert (r["exit_bar"], r["exit_reason"]) == (2, "stop")
    assert r["exit_price"] == pytest.approx(90 * 0.999, rel=1e-15)  # the open, slipped


def test_bar_touching_stop_partial_and_target_exits_at_the_stop():
    # bar 1 reaches the partial (105), the target (110) and the stop (95): the stop wins whole
    df = bars([FLAT, (100, 111, 94, 100), FLAT])
    s = one_entry(3, target=110.0, stop_pct=0.05, partial_pct=0.05, partial_size=0.5)
    t = run_both(df, s, LONG)
    assert list(t["exit_reason"]) == ["stop"]
    assert t["exit_price"].iloc[0] == pytest.approx(95.0, rel=1e-15)
    assert t["size"].iloc[0] == pytest.approx(q_all_in(100.0), rel=1e-15)


def test_trailing_percent_ratchets_up_only_and_exits_at_the_trail():
    # fill 100, trail 10 %: 90 -> 94.5 (close 105) -> 99 (close 110) -> stays 99 (close 104)
    df = bars([FLAT, (100, 106, 99, 105), (105, 111, 104, 110), (110, 110, 103, 104),
               (104, 105, 98, 100), FLAT])
    r = run_both(df, one_entry(6, trail_pct=0.10), LONG).iloc[0]
    assert (r["exit_bar"], r["exit_reason"]) == (4, "trail")
    assert r["exit_price"] == pytest.approx(99.0, rel=1e-14)
    assert r["initial_stop"] == pytest.approx(90.0, rel=1e-15)  # the trail's start: planned risk


def test_a_trailing_stop_that_never_moved_exits_as_the_plain_stop():
    # fill 100, trail 10 %: the trail starts at 90, the initial stop; close 97 leaves it (87.3 is
    # lower); bar 2 trades down to 88: filled at 90 as "stop" (nothing trailed), and on the close
    # (close 89 <= 90, out at bar 3's open 100) as "stop_close"
    df = bars([FLAT, (100, 101, 95, 97), (97, 98, 88, 89), FLAT, FLAT])
    r = run_both(df, one_entry(5, trail_pct=0.10), LONG).iloc[0]
    assert (r["exit_bar"], r["exit_reason"], r["exit_price"]) == (2, "stop", 90.0)
    r = run_both(df, one_entry(5, trail_pct=0.10, trail_on="close"), LONG).iloc[0]
    assert (r["exit_bar"], r["exit_reason"], r["exit_price"]) == (3, "stop_close", 100.0)
    # one close above the fill moves it (104 -> 93.6): then the exit is the trail's
    df = bars([FLAT, (100, 105, 99, 104), (104, 104, 88, 89), FLAT, FLAT])
    r = run_both(df, one_entry(5, trail_pct=0.10), LONG).iloc[0]
    assert (r["exit_bar"], r["exit_reason"]) == (2, "trail")
    assert r["exit_price"] == pytest.approx(93.6, rel=1e-14)


def test_trailing_percent_short_mirror():
    # short fill 100, trail 10 %: 110 -> 104.5 (close 95) -> 99 (close 90) -> stays (close 96)
    df = bars([FLAT, (100, 101, 94, 95), (95, 96, 89, 90), (90, 97, 89, 96), (96, 100, 95, 97),
               FLAT])
    r = run_both(df, one_entry(6, side=-1, trail_pct=0.10),
                 BacktestConfig(mode="short", commission=0.001)).iloc[0]
    assert (r["exit_bar"], r["exit_reason"]) == (4, "trail")
    assert r["exit_price"] == pytest.approx(99.0, rel=1e-14)


def test_trailing_atr_on_the_close():
    # fill 100, atr 2, 2 x ATR on the close: 96 -> 101 (close 105); close 102 keeps it (the
    # candidate 98 is lower); close 100.5 <= 101 triggers; bar 4 opens at 99: the exit
    df = bars([FLAT, (100, 106, 99, 105), (105, 106, 101, 102), (102, 103, 100, 100.5),
               (99, 100, 98, 99), FLAT])
    s = one_entry(6, trail_atr=2.0, trail_on="close", atr=np.full(6, 2.0))
    r = run_both(df, s, LONG).iloc[0]
    assert (r["exit_bar"], r["exit_reason"], r["exit_price"]) == (4, "trail_close", 99.0)
    assert r["initial_stop"] == 96.0


def test_trailing_follows_an_indicator_line_and_skips_nan():
    # the stop follows line[k] at each close: 95 (entry bar's value) -> 97 -> stays 97 when the
    # line drops to 96 -> NaN leaves it -> bar 4's low 96.5 hits 97
    line = np.array([95.0, 97.0, 96.0, np.nan, 99.0, 99.0])
    df = bars([FLAT, (100, 103, 98, 101), (101, 102, 97.5, 100), (100, 101, 97.2, 99),
               (99, 100, 96.5, 98), FLAT])
    r = run_both(df, one_entry(6, trail_line=line), LONG).iloc[0]
    assert (r["exit_bar"], r["exit_reason"], r["exit_price"]) == (4, "trail", 97.0)
    assert r["initial_stop"] == 95.0


def test_break_even_moves_the_stop_to_entry_plus_fees():
    # fill 100, stop 95; bar 1's high 103.5 is 3 % up: at its close the stop moves to the price
    # that pays both commissions; bar 2 trades down through it
    df = bars([FLAT, (100, 103.5, 99, 102), (102, 102.5, 100, 101), FLAT])
    s = one_entry(4, stop_pct=0.05, breakeven_pct=0.03)
    r = run_both(df, s, LONG).iloc[0]
    be = 100 * 1.001 / 0.999  # 100.2002...
    assert (r["exit_bar"], r["exit_reason"]) == (2, "breakeven")
    assert r["exit_price"] == pytest.approx(be, rel=1e-15)
    assert r["pnl"] == pytest.approx(0.0, abs=1e-9)  # nothing won, nothing lost
    assert r["initial_stop"] == pytest.approx(95.0, rel=1e-15)
    # 2.9 % up does not arm it: the 95 stop stays and bar 2 does not reach it
    df2 = bars([FLAT, (100, 102.9, 99, 102), (102, 102.5, 100, 101), FLAT])
    assert list(run_both(df2, s, LONG)["exit_reason"]) == ["end"]


def test_partial_take_profit_rows_fees_and_funding_shares():
    # fill 100; half at 105 on bar 2 (after one close of funding), the rest at the 110 target on
    # bar 3. Daily bars: 3 funding periods of 0.0001 per bar.
    cfg = BacktestConfig(mode="long", commission=0.001, funding_rate=0.0001)
    df = bars([FLAT, (100, 104, 99, 103), (103, 106, 102, 104), (104, 111, 103, 109), FLAT])
    s = one_entry(5, target=110.0, stop_pct=0.1, partial_pct=0.05, partial_size=0.5)
    t = run_both(df, s, cfg)
    assert list(t["exit_reason"]) == ["partial", "target"]
    q = q_all_in(100.0)
    f1 = q * 103 * 0.0003  # funding paid at bar 1's close, on the whole position
    f3 = 0  # the rest closes inside bar 3, before its close
    p, r = t.iloc[0], t.iloc[1]
    assert (p["entry_bar"], p["exit_bar"], r["exit_bar"]) == (1, 2, 3)
    assert p["size"] == pytest.approx(q / 2, rel=1e-15)
    assert r["size"] == pytest.approx(q / 2, rel=1e-15)
    assert p["exit_price"] == pytest.approx(105.0, rel=1e-15) and r["exit_price"] == 110.0
    assert p["entry_fee"] == pytest.approx(q * 100 * 0.001 / 2, rel=1e-14)
    assert r["entry_fee"] == pytest.approx(q * 100 * 0.001 / 2, rel=1e-14)
    assert p["funding"] == pytest.approx(f1 / 2, rel=1e-12)
    f2 = q / 2 * 104 * 0.0003  # bar 2's close, on the half still open
    assert r["funding"] == pytest.approx(f1 / 2 + f2 + f3, rel=1e-12)
    total = (q / 2 * 5 + q / 2 * 10 - q * 100 * 0.001 - q / 2 * 105 * 0.001
             - q / 2 * 110 * 0.001 - f1 - f2)
    assert t["pnl"].sum() == pytest.approx(total, rel=1e-12)
    eq = engine_fast.simulate(df, s, cfg)[1]
    assert eq.iloc[-1] == pytest.approx(10_000 + total, rel=1e-12)
    # metrics count one trade (a winner), not two rows
    stats = trade_stats(t)
    assert stats["n_trades"] == 1 and stats["win_rate_pct"] == 100.0
    assert stats["net_pnl"] == pytest.approx(total, rel=1e-12)
    m = compute_metrics(eq, t, None, "1d", cash=10_000)
    assert m["n_trades"] == 1


def test_partial_then_stop_counts_as_one_trade_by_its_net_pnl():
    # half at 110 (+10 each), the rest stopped at 95 (-5 each): one winning trade
    df = bars([FLAT, (100, 111, 99, 108), (108, 109, 94, 96), FLAT])
    s = one_entry(4, stop_pct=0.05, partial_pct=0.10, partial_size=0.5)
    t = run_both(df, s, BacktestConfig(mode="long", commission=0.0))
    assert list(t["exit_reason"]) == ["partial", "stop"]
    stats = trade_stats(t)
    assert stats["n_trades"] == 1 and stats["win_rate_pct"] == 100.0
    assert stats["gross_loss"] == 0.0


def test_gap_through_partial_and_target_fills_both_at_the_open():
    cfg = BacktestConfig(mode="long", commission=0.001, slippage_bps=10)
    df = bars([FLAT, FLAT, (112, 113, 111, 112), FLAT])
    s = one_entry(4, target=110.0, partial_target=105.0, partial_size=0.25)
    t = run_both(df, s, cfg)
    assert list(t["exit_reason"]) == ["partial", "target"]
    assert list(t["exit_bar"]) == [2, 2]
    np.testing.assert_allclose(t["exit_price"], [112 * 0.999] * 2, rtol=1e-15)
    np.testing.assert_allclose(t["size"] / t["size"].sum(), [0.25, 0.75], rtol=1e-12)


def test_partial_beyond_the_target_is_dropped():
    df = bars([FLAT, (100, 116, 99, 112), FLAT])
    s = one_entry(3, target=110.0, partial_target=115.0, partial_size=0.5)
    assert list(run_both(df, s, LONG)["exit_reason"]) == ["target"]


def test_trailing_stop_above_the_liquidation_price_protects_the_position():
    # 10x long at 100: liquidation at 90.45. A 20 % trail starts at 80 (below it): a drop to 85
    # liquidates. After closes up to 120 the trail is at 96, above it: the same drop stops out.
    cfg = BacktestConfig(mode="long", leverage=10, size=0.5, commission=0.001)
    liq = 100 * 0.9 / 0.995
    down = bars([FLAT, (100, 101, 85, 90), FLAT])
    r = run_both(down, one_entry(3, trail_pct=0.2), cfg).iloc[0]
    assert r["exit_reason"] == "liquidation" and r["exit_price"] == pytest.approx(liq, rel=1e-15)
    up = bars([FLAT, (100, 121, 99, 120), (120, 121, 85, 90), FLAT])
    r = run_both(up, one_entry(4, trail_pct=0.2), cfg).iloc[0]
    assert r["exit_reason"] == "trail" and r["exit_price"] == pytest.approx(96.0, rel=1e-14)


def test_risk_sizing_uses_the_stop_relative_to_the_fill():
    cfg = BacktestConfig(mode="long", sizing="risk", size=0.01, commission=0.0)
    df = bars([FLAT, (100, 101, 94, 96), FLAT])
    r = run_both(df, one_entry(3, stop_pct=0.05), cfg).iloc[0]
    assert r["size"] == pytest.approx(0.01 * 10_000 / 5.0, rel=1e-12)  # 1 % of equity at risk
    assert r["pnl"] == pytest.approx(-100.0, rel=1e-12)
    # a stop on the close is the planned risk when there is no intrabar stop
    r = run_both(df, one_entry(3, close_stop_pct=0.04), cfg).iloc[0]
    assert r["size"] == pytest.approx(0.01 * 10_000 / 4.0, rel=1e-12)
    assert r["initial_stop"] == pytest.approx(96.0, rel=1e-15)


def test_initial_stop_is_nan_without_a_stop_and_the_signal_stop_otherwise():
    df = bars([FLAT, FLAT, FLAT])
    assert np.isnan(run_both(df, one_entry(3), LONG)["initial_stop"].iloc[0])
    # the nearer of an absolute stop and a relative one
    r = run_both(df, one_entry(3, stop=97.0, stop_pct=0.05), LONG).iloc[0]
    assert r["initial_stop"] == 97.0


@pytest.mark.parametrize(("rules", "match"), [
    (dict(stop_pct=1.5), r"stop_pct .*\(0, 1\)"),
    (dict(trail_pct=-0.1), r"trail_pct"),
    (dict(stop_atr=2.0), r"atr.* missing"),
    (dict(partial_pct=0.05), r"partial_size is missing"),
    (dict(trail_on="open"), r"trail_on must be one of intrabar, close"),
    (dict(close_stop=np.ones(3)), r"close_stop has shape \(3,\), expected \(5,\)"),
    (dict(trail_line=1.0), r"trail_line has shape"),
])
def test_bad_exit_rules_are_named(rules, match):
    with pytest.raises(ValueError, match=match):
        one_entry(5, **rules).validate(5)


# -- the reference rule -----------------------------------------------------------------------

def _rule(df: pd.DataFrame, period: int) -> np.ndarray:
    """Entry rule: the close crosses above its ``period``-bar mean (causal)."""
    c = df["close"]
    above = (c > c.rolling(period).mean()).to_numpy()
    up = above & ~np.r_[False, above[:-1]]
    return up


class CloseStopApi(Strategy):
    """The reference rule with the API: exit when a close is 5 % below the entry fill."""

    params: ClassVar[dict[str, Param]] = {"period": Param(20, "mean length, bars", int, min=2)}

    def signals(self, df: pd.DataFrame) -> Signals:
        entry = _rule(df, self.p.period).astype(np.int8)
        return Signals.from_entries(entry, exits=ExitRules(close_stop_pct=0.05))


class CloseStopReplayed(Strategy):
    """The same rule replayed by hand: track the pending entry, read the next open as the fill
    and emit the exit (only right at 1x all-in, no other stop, no slippage to guess wrong)."""

    params: ClassVar[dict[str, Param]] = {"period": Param(20, "mean length, bars", int, min=2)}

    def signals(self, df: pd.DataFrame) -> Signals:
        rule = _rule(df, self.p.period)
        o, c = df["open"].to_numpy(), df["close"].to_numpy()
        n = len(df)
        entry = np.zeros(n, np.int8)
        exit_ = np.zeros(n, bool)
        holding, pending, fill = False, False, np.nan
        for t in range(n):
            if pending:  # filled at this bar's open
                holding, pending, fill = True, False, o[t]
            if holding and c[t] <= 0.95 * fill:
                exit_[t] = True
                holding = False  # out at the next open
            if rule[t] and not holding:
                entry[t] = 1
                pending = True
        return Signals.from_entries(entry, exit=exit_)


@pytest.mark.parametrize("seed", [1, 2, 8])
def test_reference_rule_with_the_api_equals_the_hand_replayed_rule(seed):
    df = ohlc_frame(1500, "1d", seed=seed, volatility=0.03)
    cfg = BacktestConfig(mode="long", commission=0.001)
    api = engine_fast.run_fast(df, CloseStopApi(), cfg)
    hand = engine_fast.run_fast(df, CloseStopReplayed(), cfg)
    cols = ["entry_bar", "exit_bar", "entry_price", "exit_price", "size", "pnl"]
    assert len(api.trades) > 15
    assert (api.trades["exit_reason"] == "stop_close").sum() > 5
    pd.testing.assert_frame_equal(api.trades[cols], hand.trades[cols])
    np.testing.assert_allclose(api.equity.to_numpy(), hand.equity.to_numpy(), rtol=1e-12)
    # the API's rule needs no fill knowledge: with slippage it still exits 5 % below the fill
    slipped = engine_fast.run_fast(df, CloseStopApi(),
                                   BacktestConfig(mode="long", slippage_bps=20)).trades
    sc = slipped[slipped["exit_reason"] == "stop_close"]
    closes = df["close"].to_numpy()[sc["exit_bar"].to_numpy() - 1]
    assert (closes <= 0.95 * sc["entry_price"].to_numpy()).all()


class DiceExits(Strategy):
    """Seeded random entries both ways with every managed exit (bookkeeping under test)."""

    name = "dice_exits"
    params: ClassVar[dict[str, Param]] = {"seed": Param(0, "random seed", int, min=0)}

    def signals(self, df: pd.DataFrame) -> Signals:
        rng = np.random.default_rng(self.p.seed)
        n = len(df)
        entry = np.where(rng.random(n) < 0.15, rng.choice([-1, 1], n), 0).astype(np.int8)
        return Signals.from_entries(entry, exits=ExitRules(
            stop_pct=0.06, close_stop_pct=0.03, trail_pct=0.05, breakeven_pct=0.02,
            partial_pct=rng.uniform(0.01, 0.04, n), partial_size=0.4))


@pytest.mark.parametrize("cfg", [BacktestConfig(mode="both"),
                                 BacktestConfig(mode="both", leverage=15, size=0.5,
                                                funding_rate=0.0003, slippage_bps=5)])
def test_sweep_row_counts_positions_like_the_full_result(cfg):
    from backtests.metrics import CORE_KEYS
    from backtests.tuning.sweep import BacktestPayload, evaluate_backtest

    df = ohlc_frame(700, "1d", seed=9, volatility=0.03)
    full = engine_fast.run_fast(df, DiceExits(seed=1), cfg)
    rows = full.trades
    assert (rows["exit_reason"] == "partial").sum() > 10
    assert full.metrics["n_trades"] == (rows["exit_reason"] != "partial").sum()
    row = evaluate_backtest(BacktestPayload(df=df, strategy_cls=DiceExits, config=cfg),
                            {"seed": 1})
    for k in CORE_KEYS:
        if k in full.metrics:
            assert row[k] == pytest.approx(full.metrics[k], rel=1e-12, abs=1e-12,
                                           nan_ok=True), k


# -- built-in strategies offering the exits --------------------------------------------------

def _exit_arrays(strategy: Strategy):
    def f(df: pd.DataFrame) -> dict[str, np.ndarray]:
        s = strategy.signals(df).validate(len(df))
        x = s.exits
        return {"entry": s.entry.astype(float), "stop": s.stop,
                "close_stop": np.broadcast_to(x.close_stop, len(df)),
                "trail_atr": np.broadcast_to(x.trail_atr, len(df)),
                "atr": np.full(len(df), np.nan) if x.atr is None else x.atr}
    return f


BUILTIN_EXITS = [Breakdown(trail_atr=2.0, confirm_closes=1),
                 OversoldBounce(stop_on="close", trigger="either", near_pct=8)]


@pytest.mark.parametrize("strategy", BUILTIN_EXITS, ids=["breakdown_trail", "bounce_close"])
def test_builtin_exits_are_causal_and_pass_the_audit(strategy):
    df = ohlc_frame(700, "1d", seed=11, volatility=0.04)
    assert assert_causal(_exit_arrays(strategy), df, cut_points=6) >= 6
    report = audit(df, strategy, cut_points=6)
    assert report.passed, report.findings[:3]
    assert any(c.startswith("signal:exits.") for c in report.checked)


def test_audit_catches_a_trailing_line_that_looks_ahead():
    class Leaky(Strategy):
        name = "leaky_trail"

        def signals(self, df: pd.DataFrame) -> Signals:
            entry = np.zeros(len(df), np.int8)
            entry[::20] = 1
            line = df["low"].rolling(5, center=True, min_periods=1).min().to_numpy()
            return Signals.from_entries(entry, exits=ExitRules(trail_line=line))

    report = audit(ohlc_frame(300, "1d", seed=2, volatility=0.03), Leaky(), cut_points=5)
    assert not report.passed
    assert report.first_leak.field == "exits.trail_line"


@pytest.mark.parametrize("strategy", BUILTIN_EXITS, ids=["breakdown_trail", "bounce_close"])
@pytest.mark.parametrize("cfg", [BacktestConfig(mode="both", leverage=3, size=0.5,
                                                slippage_bps=10),
                                 BacktestConfig(mode="long", commission=0.0)])
def test_builtin_exits_same_trades_on_both_engines(strategy, cfg):
    df = ohlc_frame(900, "1d", seed=5, volatility=0.04)
    sig = engine_fast.prepare(df, strategy, cfg)
    t = run_both(df, sig, cfg)
    reason = "trail" if isinstance(strategy, Breakdown) else "stop_close"
    assert (t["exit_reason"] == reason).any(), set(t["exit_reason"])


def test_builtin_defaults_keep_todays_exits():
    df = ohlc_frame(700, "1d", seed=11, volatility=0.04)
    for strategy in (Breakdown(), OversoldBounce()):
        assert strategy.signals(df).exits is None


# -- a trading window (start=) keeps the exit rules ---------------------------------------------

def test_signals_from_bar_cuts_every_per_bar_array_and_keeps_scalars():
    n = 8
    s = Signals.from_entries(
        np.array([0, 1, 0, -1, 0, 1, 0, 0], np.int8), stop=np.linspace(90, 97, n),
        tags=np.array(list("abcdefgh"), dtype=object), max_bars=3,
        indicators=pd.DataFrame({"x": np.arange(n)}),
        exits=ExitRules(stop_pct=0.05, partial_pct=np.linspace(0.01, 0.08, n), partial_size=0.5,
                        atr=np.arange(1.0, n + 1), trail_atr=2.0),
    ).validate(n)
    c = s.from_bar(3)
    for name in ("entry", "exit", "stop", "target", "tags"):
        np.testing.assert_array_equal(getattr(c, name), getattr(s, name)[3:], err_msg=name)
    assert c.max_bars == 3 and c.indicators["x"].tolist() == [3, 4, 5, 6, 7]
    np.testing.assert_array_equal(c.exits.partial_pct, s.exits.partial_pct[3:])
    np.testing.assert_array_equal(c.exits.atr, np.arange(4.0, n + 1))
    assert c.exits.stop_pct.tolist() == [0.05] and c.exits.trail_atr.tolist() == [2.0]
    assert c.exits.trail_line is None
    c.validate(n - 3)  # still valid signals for the window


@pytest.mark.parametrize("engine", ["fast", "backtrader"])
def test_a_trading_window_trades_with_the_exit_rules(engine):
    # start= on bar 1 with no entry on bar 0: the window's trades are the whole run's. Before,
    # cutting the signals to the window dropped the exit rules (no partial, trail, break-even).
    from backtests import run

    df = ohlc_frame(500, "1d", seed=9, volatility=0.03)
    strat = DiceExits(seed=4)
    assert strat.signals(df).entry[0] == 0
    cfg = BacktestConfig(mode="both", engine=engine)
    full = run(df, strat, cfg)
    window = run(df, strat, cfg, start=df.index[1])
    assert {"partial", "trail", "breakeven"} <= set(full.trades["exit_reason"])
    cols = ["entry_time", "exit_time", "side", "size", "entry_price", "exit_price",
            "exit_reason", "pnl", "initial_stop"]
    pd.testing.assert_frame_equal(window.trades[cols], full.trades[cols])
    pd.testing.assert_series_equal(window.equity, full.equity.iloc[1:])


def test_run_fast_checks_the_signals_once_and_equals_prepare_then_simulate():
    df = ohlc_frame(600, "1d", seed=3, volatility=0.03)
    cfg = BacktestConfig(mode="both", leverage=3, size=0.5)
    start = df.index[100]
    res = engine_fast.run_fast(df, DiceExits(seed=2), cfg, start=start)
    sig = engine_fast.prepare(df, DiceExits(seed=2), cfg)
    wdf, wsig, _ = engine_fast.trading_window(df, DiceExits(seed=2), sig, start)
    trades, equity = engine_fast.simulate(wdf, wsig, cfg)
    pd.testing.assert_frame_equal(res.trades, trades, check_exact=True)
    pd.testing.assert_series_equal(res.equity, equity, check_exact=True)
    # and a bad signal is still refused by run_fast (prepare checks it)

    class Bad(DiceExits):
        def signals(self, df: pd.DataFrame) -> Signals:
            s = super().signals(df)
            s.stop[5] = -1.0
            return s

    with pytest.raises(ValueError, match=r"Signals.stop .* bar 5"):
        engine_fast.run_fast(df, Bad(seed=2), cfg)


def test_full_result_trade_figures_are_trade_stats_and_r_stats_of_the_positions():
    # compute_metrics folds the partial rows once for all its trade figures; each equals the
    # public helpers' figure on the unfolded table, bit for bit
    from backtests.metrics import METRIC_KEYS, r_stats

    df = ohlc_frame(700, "1d", seed=9, volatility=0.03)
    full = engine_fast.run_fast(df, DiceExits(seed=1), BacktestConfig(mode="both"))
    assert (full.trades["exit_reason"] == "partial").sum() > 10
    expected = {**trade_stats(full.trades), **r_stats(full.trades)}
    shared = [k for k in METRIC_KEYS if k in expected]
    assert len(shared) >= 18
    for k in shared:
        assert full.metrics[k] == expected[k] or (np.isnan(full.metrics[k])
                                                  and np.isnan(expected[k])), k
