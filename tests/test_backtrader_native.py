"""A user's backtrader strategy, unchanged, on our data/broker/results, and our indicators inside
backtrader (indicators.bt): equal to the pandas functions and free of look-ahead."""

from __future__ import annotations

from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from backtests import BacktestConfig, run
from backtests.cli import main
from backtests.results import BacktestResult
from indicators import flips, rsi, sr_levels, weekly_ema
from indicators.bt import Flips, OversoldSignal, SupportResistance, WeeklyEMA
from strategies import Signals, Strategy, load_strategy
from strategies.native import BacktraderStrategy
from tests.test_engine_fast import FLAT, bars

USER = Path(__file__).parent / "data" / "user_strategies"
SMA_FILE = f"{USER / 'sma_cross_bt.py'}:SmaCross"
LEVELS_FILE = f"{USER / 'levels_bt.py'}:LevelBreakout"


def _feed(df: pd.DataFrame) -> bt.feeds.PandasData:
    plain = df[["open", "high", "low", "close", "volume"]].copy()
    plain.index = plain.index.tz_convert(None)
    return bt.feeds.PandasData(dataname=plain, openinterest=None)


# -- loading -----------------------------------------------------------------------------------
def test_load_strategy_wraps_a_backtrader_class_with_its_params():
    cls = load_strategy(SMA_FILE)
    assert issubclass(cls, BacktraderStrategy) and cls.bt_class.__name__ == "SmaCross"
    assert {k: (p.default, p.type) for k, p in cls.params.items()} == {
        "fast": (10, int), "slow": (30, int)}
    s = cls(fast="5")  # coerced like our own params (strings from the command line)
    assert s.bt_params == {"fast": 5, "slow": 30}
    with pytest.raises(ValueError, match="unknown parameter"):
        cls(fastt=5)
    with pytest.raises(TypeError, match="backtrader engine only"):
        s.signals(bars([FLAT, FLAT]))


# -- the SMA crossover equals a plain cerebro run --------------------------------------------
def _plain_cerebro(df: pd.DataFrame, cash: float, commission: float, stake: float):
    strategy_cls = load_strategy(SMA_FILE).bt_class
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(cash)
    cerebro.broker.setcommission(commission=commission)
    cerebro.addsizer(bt.sizers.FixedSize, stake=stake)
    cerebro.adddata(_feed(df))
    cerebro.addstrategy(strategy_cls)
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="ta")
    fills: list[tuple] = []

    class Fills(bt.Analyzer):
        def notify_order(self, order):
            if order.status == order.Completed:
                fills.append((len(self.data) - 1, order.executed.size, order.executed.price))

    cerebro.addanalyzer(Fills)
    cerebro.run()
    return cerebro.broker.getvalue(), fills


def test_sma_cross_unchanged_equals_plain_cerebro(btc_daily):
    cfg = BacktestConfig(cash=1_000_000.0, commission=0.001, sizing="fixed", size=2.0)
    res = run(btc_daily, load_strategy(SMA_FILE)(), cfg)
    value, fills = _plain_cerebro(btc_daily, 1_000_000.0, 0.001, 2.0)
    assert isinstance(res, BacktestResult) and res.engine == "backtrader"
    assert res.config["native_backtrader"] is True and res.config["rejected_orders"] == 0
    assert res.equity.iloc[-1] == pytest.approx(value, rel=1e-12)
    entries = [(k, p) for k, s, p in fills if s > 0]
    exits = [(k, p) for k, s, p in fills if s < 0]
    t = res.trades
    assert len(t) >= 40 and len(entries) == len(t)
    assert list(zip(t["entry_bar"], t["entry_price"], strict=True)) == entries
    closed = t[t["exit_reason"] != "end"]
    assert list(zip(closed["exit_bar"], closed["exit_price"], strict=True)) == exits
    assert set(t["exit_reason"]) <= {"signal", "end"}
    # PnL of the trade table adds up to the equity change (fees and all)
    assert t["pnl"].sum() == pytest.approx(value - 1_000_000.0, rel=1e-9)


def test_cli_runs_a_backtrader_file_with_params_and_report(tmp_path, btc_daily):
    data = tmp_path / "btc.csv"
    btc_daily.rename_axis("timestamp").to_csv(data)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["run", "--data", str(data), "--strategy", SMA_FILE,
                                  "-p", "fast=20", "-p", "slow=50", "--sizing", "fixed",
                                  "--size", "0.01", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "SmaCross" in r.output
    saved = BacktestResult.load(next(out.glob("*SmaCross*")))
    assert saved.params == {"fast": 20, "slow": 50} and saved.engine == "backtrader"
    assert len(saved.trades) > 10
    assert (out / "report.html").stat().st_size > 10_000
    assert "run on the backtrader engine only" in r.output
    # all-in at the signal close: backtrader refuses the orders that no longer fit at the open,
    # and the run says so (with the count) instead of hiding it
    r = CliRunner().invoke(main, ["run", "--data", str(data), "--strategy", SMA_FILE,
                                  "--no-png", "--out", str(tmp_path / "out2")])
    assert r.exit_code == 0, r.output
    assert "warning: backtrader refused" in r.output and "--size 0.95" in r.output


def test_percent_sizing_is_a_share_of_cash_at_the_signal_close():
    df = bars([FLAT] * 40 + [(100, 130, 99, 128)] + [FLAT] * 40)

    class BuyOnce(bt.Strategy):
        def next(self):
            if len(self) == 3:
                self.buy()

    res = run(df, BuyOnce, BacktestConfig(cash=10_000.0, commission=0.001, size=0.5))
    t = res.trades.iloc[0]
    expected = 0.5 * 10_000.0 / (100.0 * (1.0 + 0.001)) * (1.0 - 1e-9)
    assert t["size"] == pytest.approx(expected, rel=1e-12)
    assert t["exit_reason"] == "end"  # left open, as cerebro leaves it: marked at the last close


def test_liquidation_of_a_leveraged_long_at_the_closed_form_price():
    # long 5x at the open of bar 2 (100); bar 4 trades down to 70: liquidated at exactly L
    df = bars([FLAT, FLAT, FLAT, FLAT, (100, 101, 70, 75), FLAT, FLAT])

    class LongAndHold(bt.Strategy):
        def __init__(self):
            self.notes = []

        def next(self):
            if len(self) == 2:
                self.buy()

        def notify_order(self, order):
            if order.status == order.Completed:
                self.notes.append(order.info.get("reason"))

    lev, mmr = 5.0, 0.005
    res = run(df, LongAndHold, BacktestConfig(leverage=lev, maintenance_margin=mmr,
                                              commission=0.0, liquidation_fee=0.005, size=0.5))
    t = res.trades.iloc[0]
    liq = 100.0 * (1 - 1 / lev) / (1 - mmr)  # closed form, independent of the engine
    assert t["exit_reason"] == "liquidation" and t["exit_bar"] == 4
    assert t["exit_price"] == pytest.approx(liq, rel=1e-12)
    assert t["liquidation_price"] == pytest.approx(liq, rel=1e-12)
    # with a 0.5 % liquidation fee and maintenance margin, the margin is lost (and no more)
    margin = t["size"] * 100.0 / lev
    assert t["pnl"] == pytest.approx(-margin, rel=1e-9)
    assert res.equity.iloc[-1] == pytest.approx(10_000.0 - margin, rel=1e-9)


def test_a_resting_stop_above_the_liquidation_price_fills_first():
    df = bars([FLAT, FLAT, FLAT, FLAT, (100, 101, 70, 75), FLAT, FLAT])

    class LongWithStop(bt.Strategy):
        def next(self):
            if len(self) == 2:
                self.buy()
                self.sell(exectype=bt.Order.Stop, price=90.0)

    res = run(df, LongWithStop, BacktestConfig(leverage=5.0, commission=0.0))
    t = res.trades.iloc[0]
    assert (t["exit_reason"], t["exit_bar"], t["exit_price"]) == ("stop", 4, 90.0)


# -- our indicators inside backtrader ------------------------------------------------------------
class _Collect(bt.Strategy):
    def __init__(self):
        self.ind = {"wema": WeeklyEMA(self.data, period=200),
                    "sr": SupportResistance(self.data), "flips": Flips(self.data),
                    "rsi": OversoldSignal(self.data)}
        self.rows: list[dict[str, float]] = []

    def next(self):
        row = {}
        for key, ind in self.ind.items():
            for alias in ind.lines.getlinealiases():
                row[f"{key}.{alias}"] = getattr(ind.lines, alias)[0]
        self.rows.append(row)


def _collect(df: pd.DataFrame, runonce: bool = True) -> pd.DataFrame:
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce, preload=runonce)
    cerebro.adddata(_feed(df))
    cerebro.addstrategy(_Collect)
    strat = cerebro.run()[0]
    return pd.DataFrame(strat.rows, index=df.index)


def _expected(df: pd.DataFrame) -> pd.DataFrame:
    cols = {"wema.ema": weekly_ema(df, 200)}
    for c, v in sr_levels(df).items():
        cols[f"sr.{c}"] = v
    for c, v in flips(df).bars.items():
        cols[f"flips.{c}"] = v.astype(np.float64)
    r = rsi(df["close"], 14)
    cols["rsi.rsi"] = r
    nan = r.isna()
    cols["rsi.oversold"] = (r < 30).astype(float).mask(nan)
    cols["rsi.deeply_oversold"] = (r < 20).astype(float).mask(nan)
    cols["rsi.overbought"] = (r > 70).astype(float).mask(nan)
    return pd.DataFrame(cols, index=df.index)


def test_bt_indicator_params_are_the_pandas_keywords():
    assert list(SupportResistance.params._getkeys()) == [
        "left", "right", "tolerance_atr", "tolerance_pct", "band_atr", "band_pct", "atr_period",
        "min_touches"]
    assert "confirm_closes" in Flips.params._getkeys() and "params" not in Flips.params._getkeys()


def test_bt_indicators_equal_the_pandas_functions(btc_daily):
    got = _collect(btc_daily)
    exp = _expected(btc_daily)[got.columns]
    pd.testing.assert_frame_equal(got, exp, check_exact=True, check_freq=False)
    assert got["wema.ema"].notna().sum() > 1000 and got["flips.breakdown"].sum() > 20


def test_bt_indicators_event_mode_equals_vectorised_mode(btc_daily):
    df = btc_daily.iloc[-400:]
    pd.testing.assert_frame_equal(_collect(df, runonce=False), _collect(df, runonce=True),
                                  check_exact=True)


@pytest.mark.parametrize("cut", [700, 1500, 2900])
def test_bt_indicators_do_not_look_ahead(btc_daily, cut):
    full = _collect(btc_daily)
    part = _collect(btc_daily.iloc[:cut])
    pd.testing.assert_frame_equal(part, full.iloc[:cut], check_exact=True)


# -- a bt.Strategy with our indicators == the equivalent vectorised Strategy -------------------
class LevelBreakoutVectorised(Strategy):
    """The vectorised twin of tests/data/user_strategies/levels_bt.py:LevelBreakout."""

    name = "level_breakout_vec"

    def signals(self, df: pd.DataFrame) -> Signals:
        close = df["close"].to_numpy()
        sr = sr_levels(df)
        wema = weekly_ema(df, 200).to_numpy()
        res_high = np.r_[np.nan, sr["resistance_high"].to_numpy()[:-1]]
        sup_low = np.r_[np.nan, sr["support_low"].to_numpy()[:-1]]
        with np.errstate(invalid="ignore"):
            entry = ((close > wema) & (close > res_high)).astype(np.int8)
            exit_ = close < sup_low
        return Signals.from_entries(entry, exit=exit_)


@pytest.mark.parametrize("engine", ["fast", "backtrader"])
def test_bt_strategy_with_our_indicators_equals_vectorised_twin(btc_daily, engine):
    cfg = BacktestConfig(cash=1_000_000.0, commission=0.001, sizing="fixed", size=1.0)
    native = run(btc_daily, load_strategy(LEVELS_FILE)(), cfg).trades
    vec = run(btc_daily, LevelBreakoutVectorised(),
              BacktestConfig(**{**cfg.to_dict(), "engine": engine})).trades
    assert len(native) >= 5
    for col in ("entry_bar", "exit_bar", "side", "size"):
        assert native[col].tolist() == vec[col].tolist(), col
    np.testing.assert_allclose(native["entry_price"], vec["entry_price"], rtol=1e-12)
    np.testing.assert_allclose(native["exit_price"], vec["exit_price"], rtol=1e-12)
    # the engines differ only at the end of data: ours close the last position (with a fee),
    # a native backtrader run leaves it open, marked at the last close
    closed = native["exit_reason"] != "end"
    assert native.loc[closed, "exit_reason"].tolist() == vec.loc[closed, "exit_reason"].tolist()


# -- sweeps, walk-forward and warm-up windows with a bt.Strategy -------------------------------
def test_trading_window_bars_before_start_are_warm_up_only(btc_daily):
    from backtests.engines.bt_native import simulate_native

    strat = load_strategy(SMA_FILE)()
    cfg = BacktestConfig(cash=1_000_000.0, sizing="fixed", size=1.0)
    full = simulate_native(btc_daily, strat, cfg)
    start = 2000
    part = simulate_native(btc_daily, strat, cfg, trade_from=start)
    cols = list(__import__("backtests.engines.fast", fromlist=["RAW_COLUMNS"]).RAW_COLUMNS)
    entry = cols.index("entry_bar")
    assert part.warmup_orders > 0 and part.raw[:, entry].min() >= start
    assert np.all(part.equity[:start] == 1_000_000.0)
    # from the first bar the full run was flat inside the window on, the trades are the same
    full_entries = full.raw[:, entry]
    first_flat = int(full.raw[full.raw[:, cols.index("exit_bar")] >= start - 1][0, entry])
    later_full = full.raw[full_entries >= max(first_flat, start)]
    later_part = part.raw[part.raw[:, entry] >= max(first_flat, start)]
    np.testing.assert_array_equal(later_part, later_full)


def test_sweep_and_walk_forward_accept_a_bt_strategy(btc_daily):
    from backtests.tuning.sweep import run_sweep
    from backtests.tuning.walkforward import walk_forward

    cls = load_strategy(SMA_FILE)
    cfg = BacktestConfig(cash=1_000_000.0, sizing="fixed", size=1.0, commission=0.001)
    space = {"fast": [5, 10], "slow": [30, 60]}
    sw = run_sweep(btc_daily, cls, space, cfg, executor="serial", top=1)
    assert len(sw.table) == 4
    for _, row in sw.table.iterrows():  # every row is the full backtest of its set
        res = run(btc_daily, cls(fast=int(row["fast"]), slow=int(row["slow"])), cfg)
        assert row["n_trades"] == len(res.trades)
        assert row["final_equity"] == pytest.approx(res.equity.iloc[-1], rel=1e-12)
    wf = walk_forward(btc_daily, cls, space, train="730D", test="365D", config=cfg,
                      executor="serial")
    assert len(wf.windows) >= 4
    t = wf.oos_trades.merge(wf.windows[["window", "test_start", "test_end"]], on="window")
    assert len(t) > 5
    assert ((t["entry_time"] >= t["test_start"]) & (t["entry_time"] <= t["test_end"])).all()


def test_run_with_start_keeps_history_as_warm_up(btc_daily):
    cls = load_strategy(SMA_FILE)
    cfg = BacktestConfig(cash=1_000_000.0, sizing="fixed", size=1.0)
    full = run(btc_daily, cls(), cfg)
    res = run(btc_daily, cls(), cfg, start="2024-01-01")
    first = btc_daily.index.get_loc(pd.Timestamp("2024-01-01", tz="UTC"))
    assert res.equity.index[0] == btc_daily.index[first] and res.equity.iloc[0] == 1_000_000.0
    assert res.data["warmup"]["history_bars"] == first
    assert (res.trades["entry_time"] > btc_daily.index[first]).all()
    # the SMAs saw the history: once the full run is flat inside the window, the trades agree
    later = full.trades[full.trades["entry_time"] > res.trades["entry_time"].iloc[0]]
    cols = ["entry_time", "exit_time", "entry_price", "exit_price"]
    pd.testing.assert_frame_equal(res.trades[cols].iloc[1:].reset_index(drop=True),
                                  later[cols].reset_index(drop=True))
