"""Parameter-sweep benchmark: our sweep vs vectorbt, backtesting.py ``optimize`` and backtrader
``optstrategy`` on the same RSI rules, in one run; plus 10,000 random sets on hourly data.

Rules (identical in every engine): long at the next bar's open when RSI(period) crosses back
above ``oversold`` (``rsi[t-1] <= oversold < rsi[t]``); exit at the next open when RSI >
``overbought`` on a bar without such a cross (a short RSI can jump from below ``oversold`` to above
``overbought`` in one bar; engines resolve simultaneous entry and exit signals differently, so the
rules never emit both); all-in, 0.1 % commission per side, no stop. Grid: period 7..21 x oversold
{20,25,30,35} x overbought {65,70,75,80} = 240 sets on the real Binance daily candles
(3,243 bars). Trade counts of a few sets are compared across engines. Our strategy computes its
RSI with ``indicators.rsi`` (TA-Lib's, bit for bit). ``RsiRule`` has the batch hook
(``Strategy.signals_many``): a chunk of sets gets one RSI per period, one cross per (period,
oversold) and one comparison per (period, overbought), as the vectorbt code builds its columns;
``RsiRulePerSet`` is the same rules without it (each set's ``signals``; a sweep still shares
each period's RSI through ``indicators.memo``). Both give the same signals.

Run: ``PYTHONPATH=. python benchmarks/bench_sweep.py [--skip-backtrader] [--random N]``.
Prints a Markdown table (times and ratios to ours).

``--only overhead`` measures our per-set cost beyond the simulation (``evaluate_all`` with a
strategy whose signals are computed beforehand, minus the kernel alone on the same inputs);
``--only random --repeat 5`` runs the random sets with 1 and 2 workers in turn (A B A B ...),
median wall time, load average recorded.
"""

from __future__ import annotations

import argparse
import os
import os as _os
import sys
import time
from pathlib import Path
from typing import ClassVar

_os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py progress bars

import matplotlib

matplotlib.use("Agg")  # backtrader must stay headless

import backtrader as bt
import numpy as np
import pandas as pd
import talib
from backtesting import Strategy as BStrategy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backtests.config import BacktestConfig  # noqa: E402
from backtests.engines.fast import kernel_inputs, simulate_nb  # noqa: E402
from backtests.tuning.evaluate import BacktestPayload, evaluate_backtest  # noqa: E402
from backtests.tuning.executors import ProcessExecutor, SerialExecutor, evaluate_all  # noqa: E402
from backtests.tuning.space import grid, random_space  # noqa: E402
from backtests.tuning.sweep import run_sweep  # noqa: E402
from data.loaders import load  # noqa: E402
from indicators import rsi as ind_rsi  # noqa: E402
from strategies.base import Param, Signals, Strategy  # noqa: E402

SHARED = Path(os.environ.get("BTC_SHARED_DATA", REPO.parent / "shared" / "data"))
PERIODS = list(range(7, 22))
OVERSOLD = [20.0, 25.0, 30.0, 35.0]
OVERBOUGHT = [65.0, 70.0, 75.0, 80.0]
COMMISSION = 0.001
CASH = 10_000.0
CHECK = [(14, 30.0, 70.0), (7, 20.0, 80.0), (21, 35.0, 65.0), (10, 25.0, 75.0)]


class RsiRulePerSet(Strategy):
    """RSI crosses back above oversold -> long next open; RSI > overbought -> exit next open.
    Signals one parameter set at a time (a strategy without the batch hook)."""

    name = "rsi_rule"
    params: ClassVar[dict[str, Param]] = {
        "period": Param(14, "RSI period, bars", int, min=2, max=50),
        "oversold": Param(30.0, "RSI level", min=5, max=50),
        "overbought": Param(70.0, "RSI level", min=50, max=95),
    }

    def signals(self, df: pd.DataFrame) -> Signals:
        # indicators.rsi is talib.RSI bit for bit; in a sweep each period's RSI is computed
        # once and shared by the sets with that period (indicators.memo).
        rsi = ind_rsi(df["close"].to_numpy(), self.p.period)
        prev = np.r_[np.nan, rsi[:-1]]
        cross = (rsi > self.p.oversold) & (prev <= self.p.oversold)
        return Signals.from_entries(np.where(cross, 1, 0),
                                    exit=(rsi > self.p.overbought) & ~cross)


class RsiRule(RsiRulePerSet):
    """:class:`RsiRulePerSet` with the batch hook a sweep uses, as vectorbt's users write their
    grids: one RSI per period and one cross per (period, oversold) for all the sets of a chunk,
    the overbought exits compared on top. Same signals as :meth:`RsiRulePerSet.signals`."""

    @classmethod
    def signals_many(cls, df: pd.DataFrame, strategies: list[Strategy]) -> list[Signals]:
        close = df["close"].to_numpy()
        no_price = np.full(len(df), np.nan)  # no stop, no target: one array for every set
        rsis: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        crosses: dict[tuple[int, float], tuple[np.ndarray, np.ndarray]] = {}
        above: dict[tuple[int, float], np.ndarray] = {}
        out = []
        for s in strategies:
            p = s.p
            if p.period not in rsis:
                rsi = ind_rsi(close, p.period)
                rsis[p.period] = rsi, np.concatenate(([np.nan], rsi[:-1]))  # np.r_'s values
            rsi, prev = rsis[p.period]
            if (p.period, p.oversold) not in crosses:
                cross = (rsi > p.oversold) & (prev <= p.oversold)
                crosses[p.period, p.oversold] = cross, ~cross
            if (p.period, p.overbought) not in above:
                above[p.period, p.overbought] = rsi > p.overbought
            cross, no_cross = crosses[p.period, p.oversold]
            # a bool entry is +1 where True: the same codes as np.where(cross, 1, 0)
            out.append(Signals.from_entries(cross, exit=above[p.period, p.overbought] & no_cross,
                                            stop=no_price, target=no_price))
        return out


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# --- ours ------------------------------------------------------------------------------------

def ours(df: pd.DataFrame, workers: int) -> tuple[float, float, pd.DataFrame]:
    cfg = BacktestConfig(cash=CASH, commission=COMMISSION)
    space = grid({"period": PERIODS, "oversold": OVERSOLD, "overbought": OVERBOUGHT})
    pay = BacktestPayload(df=df, strategy_cls=RsiRule, config=cfg)
    evaluate_backtest(pay, space[0])  # numba compile/cache load
    ex = SerialExecutor() if workers == 1 else ProcessExecutor(workers)
    t_eval, _ = best_of(lambda: evaluate_all(evaluate_backtest, pay, space, executor=ex))
    t_full, res = best_of(lambda: run_sweep(df, RsiRule, space, cfg, executor=ex), repeat=2)
    return t_eval, t_full, res.table


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Precomputed(Strategy):
    """RsiRule's parameters, signals looked up in :data:`PRECOMPUTED` (filled beforehand): a
    sweep of it costs the kernel plus our per-set overhead, no signal computation."""

    name = "precomputed"
    params: ClassVar[dict[str, Param]] = dict(RsiRule.params)

    def signals(self, df: pd.DataFrame) -> Signals:
        return PRECOMPUTED[(self.p.period, self.p.oversold, self.p.overbought)]


PRECOMPUTED: dict[tuple, Signals] = {}


def overhead(df: pd.DataFrame, repeat: int = 5) -> str:
    """Per-set cost of ``evaluate_all`` beyond the kernel, in thread CPU time (what other jobs
    on a shared machine distort least) and wall time, median of ``repeat``."""
    cfg = BacktestConfig(cash=CASH, commission=COMMISSION)
    space = grid({"period": PERIODS, "oversold": OVERSOLD, "overbought": OVERBOUGHT})
    frame = BacktestPayload(df=df, strategy_cls=RsiRule, config=cfg).frame()
    for p in space:
        PRECOMPUTED[(p["period"], p["oversold"], p["overbought"])] = RsiRule(**p).signals(frame)
    pre = BacktestPayload(df=df, strategy_cls=Precomputed, config=cfg)
    inputs = [kernel_inputs(pre.market(), s.validate(len(frame)), cfg)
              for s in PRECOMPUTED.values()]
    ex = SerialExecutor()

    def kernel() -> None:
        for inp in inputs:
            simulate_nb(inp)

    cases = {
        "kernel alone (simulate_nb)": kernel,
        "evaluate_all, signals precomputed": lambda: evaluate_all(evaluate_backtest, pre, space,
                                                                  executor=ex),
        "evaluate_all, RsiRule": lambda: evaluate_all(
            evaluate_backtest, BacktestPayload(df=df, strategy_cls=RsiRule, config=cfg), space,
            executor=ex),
    }
    for fn in cases.values():
        fn()
    before = loadavg()
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    wall: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeat):
        for k, fn in cases.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            fn()
            cpu[k].append(time.thread_time() - c0)
            wall[k].append(time.perf_counter() - t0)
    n = len(space)
    med = {k: (np.median(cpu[k]) / n * 1e6, np.median(wall[k]) / n * 1e6) for k in cases}
    lines = [f"per set, {n} sets on {len(df):,} bars, median of {repeat}; load average before "
             f"{before}, after {loadavg()}", "", "| case | CPU us/set | wall us/set |",
             "|---|---:|---:|"]
    lines += [f"| {k} | {c:.1f} | {w:.1f} |" for k, (c, w) in med.items()]
    k_cpu, k_wall = med["kernel alone (simulate_nb)"]
    p_cpu, p_wall = med["evaluate_all, signals precomputed"]
    lines.append(f"| **overhead beyond the kernel** | **{p_cpu - k_cpu:.1f}** | "
                 f"**{p_wall - k_wall:.1f}** |")
    return "\n".join(lines)


def random_scaling(n: int, repeat: int) -> str:
    """``n`` random sets on the hourly candles with 1 and 2 workers, interleaved; median wall
    time; asserts both give the same table."""
    hourly = load(SHARED / "btc_usd_1h_binance.csv.gz")
    space = random_space(n, {"period": (5, 50), "oversold": (10.0, 45.0),
                             "overbought": (55.0, 90.0)}, seed=1, integer=["period"])
    cfg = BacktestConfig(cash=CASH, commission=COMMISSION)
    run_sweep(hourly, RsiRule, space[:50], cfg, workers=1, top=0)  # numba caches loaded
    times: dict[int, list[float]] = {1: [], 2: []}
    tables = {}
    before = loadavg()
    for _ in range(repeat):
        for w in (1, 2):
            t0 = time.perf_counter()
            res = run_sweep(hourly, RsiRule, space, cfg, workers=w, top=1)
            times[w].append(time.perf_counter() - t0)
            tables[w] = res.table
    assert tables[1].equals(tables[2]), "1 and 2 workers disagree"
    t1, t2 = np.median(times[1]), np.median(times[2])
    return "\n".join([
        f"{n:,} random sets, hourly {len(hourly):,} bars, median of {repeat} (1 and 2 workers "
        f"in turn); load average before {before}, after {loadavg()}", "",
        "| workers | wall time | sets/s |", "|---|---:|---:|",
        f"| 1 | {t1:.2f} s | {n / t1:,.0f} |", f"| 2 | {t2:.2f} s | {n / t2:,.0f} |",
        f"| speed-up | {t1 / t2:.2f}x | |"])


# --- vectorbt (vectorised over parameters) -----------------------------------------------------

def vectorbt_sweep(df: pd.DataFrame) -> tuple[float, pd.Series]:
    import vectorbt as vbt

    close = df["close"].to_numpy()
    open_ = df["open"]

    def run():
        cols, ent, ext = [], [], []
        for p in PERIODS:
            rsi = talib.RSI(close, p)
            prev = np.r_[np.nan, rsi[:-1]]
            for o in OVERSOLD:
                cross = (rsi > o) & (prev <= o)
                for b in OVERBOUGHT:
                    cols.append((p, o, b))
                    ent.append(cross)
                    ext.append((rsi > b) & ~cross)
        idx = pd.MultiIndex.from_tuples(cols, names=["period", "oversold", "overbought"])
        # Signal at bar t's close -> order at bar t+1's open.
        e = pd.DataFrame(np.column_stack(ent), index=df.index, columns=idx).shift(1,
                                                                                  fill_value=False)
        x = pd.DataFrame(np.column_stack(ext), index=df.index, columns=idx).shift(1,
                                                                                  fill_value=False)
        pf = vbt.Portfolio.from_signals(df["close"], e, x, price=open_, fees=COMMISSION,
                                        init_cash=CASH, freq="1D")
        return pf.trades.count()

    run()  # compile
    return best_of(run)


# --- backtesting.py ------------------------------------------------------------------------------

class BRsi(BStrategy):
    """The same rules for backtesting.py (module level: optimize pickles it to its workers)."""

    period = 14
    oversold = 30.0
    overbought = 70.0

    def init(self):
        self.rsi = self.I(talib.RSI, self.data.Close, self.period)

    def next(self):
        r = self.rsi
        cross = r[-2] <= self.oversold < r[-1]
        if not self.position and cross:
            self.buy()
        elif self.position and r[-1] > self.overbought and not cross:
            self.position.close()


def backtesting_sweep(df: pd.DataFrame) -> tuple[float, dict]:
    data = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    data.index = data.index.tz_localize(None)
    from backtesting.lib import FractionalBacktest

    bk = FractionalBacktest(data, BRsi, cash=CASH, commission=COMMISSION, finalize_trades=True)

    def run():
        return bk.optimize(period=PERIODS, oversold=OVERSOLD, overbought=OVERBOUGHT,
                           maximize="Sharpe Ratio", return_heatmap=True)

    t, _ = best_of(run, repeat=1)
    counts = {c: int(bk.run(period=c[0], oversold=c[1], overbought=c[2])["# Trades"])
              for c in CHECK}
    return t, counts


# --- backtrader ------------------------------------------------------------------------------

class BtRsi(bt.Strategy):
    """The same rules for backtrader."""

    params = (("period", 14), ("oversold", 30.0), ("overbought", 70.0))

    def __init__(self):
        self.rsi = bt.indicators.RSI(self.data.close, period=self.p.period, safediv=True)
        self.n_trades = 0

    def notify_trade(self, trade):
        if trade.isopen and trade.justopened:
            self.n_trades += 1

    def next(self):
        r = self.rsi
        if len(r) < 2:
            return
        cross = r[-1] <= self.p.oversold < r[0]
        if not self.position and cross:
            # size from the signal close with a cash buffer (the fill is at the next open)
            self.buy(size=self.broker.getcash() * 0.95 / self.data.close[0])
        elif self.position and r[0] > self.p.overbought and not cross:
            self.close()


def backtrader_sweep(df: pd.DataFrame, maxcpus: int) -> tuple[float, dict]:
    feed_df = df.copy()
    feed_df.index = feed_df.index.tz_localize(None)

    def cerebro():
        c = bt.Cerebro(stdstats=False, optreturn=True)
        c.adddata(bt.feeds.PandasData(dataname=feed_df))
        c.broker.setcash(CASH)
        c.broker.setcommission(commission=COMMISSION)
        return c

    def run():
        c = cerebro()
        c.optstrategy(BtRsi, period=PERIODS, oversold=OVERSOLD, overbought=OVERBOUGHT)
        return c.run(maxcpus=maxcpus)

    t, _ = best_of(run, repeat=1)
    counts = {}
    for p, o, b in CHECK:
        c = cerebro()
        c.addstrategy(BtRsi, period=p, oversold=o, overbought=b)
        counts[(p, o, b)] = c.run()[0].n_trades
    return t, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-backtrader", action="store_true")
    ap.add_argument("--random", type=int, default=10_000)
    ap.add_argument("--only", choices=["overhead", "random"],
                    help="only the per-set overhead, or only the random sets (interleaved)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per case with --only")
    args = ap.parse_args()
    daily = load(SHARED / "btc_usd_1d_binance.csv")
    if args.only == "overhead":
        print(overhead(daily, args.repeat))
        return
    if args.only == "random":
        print(random_scaling(args.random, args.repeat))
        return
    rows = []
    t1_eval, t1_full, table = ours(daily, 1)
    t2_eval, t2_full, table2 = ours(daily, 2)
    assert table.equals(table2), "1 and 2 workers disagree"
    ref = t1_eval
    rows += [("ours, 1 worker: table of 240 sets", t1_eval),
             ("ours, 1 worker: run_sweep (+ DSR, PBO 12,870 splits, best 5 re-run)", t1_full),
             ("ours, 2 workers: table of 240 sets", t2_eval),
             ("ours, 2 workers: run_sweep (+ DSR, PBO, best 5 re-run)", t2_full)]
    t_vbt, vbt_counts = vectorbt_sweep(daily)
    rows.append(("vectorbt 1.2 from_signals, 240 columns at once", t_vbt))
    t_bp, bp_counts = backtesting_sweep(daily)
    rows.append(("backtesting.py 0.6.6 optimize (FractionalBacktest, its own processes)", t_bp))
    bt_counts = {}
    if not args.skip_backtrader:
        t_bt, bt_counts = backtrader_sweep(daily, maxcpus=2)
        rows.append(("backtrader 1.9.78 optstrategy, maxcpus=2", t_bt))
    print("| sweep (240 sets, daily 3,243 bars) | time | ratio to ours (1 worker, table) |")
    print("|---|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.3f} s | {t / ref:.2f}x |")
    print()
    ours_counts = table.set_index(["period", "oversold", "overbought"])["n_trades"]
    print("| period, oversold, overbought | ours | vectorbt | backtesting.py | backtrader |")
    print("|---|---|---|---|---|")
    for c in CHECK:
        print(f"| {c[0]}, {c[1]:g}, {c[2]:g} | {int(ours_counts.loc[c])} | "
              f"{int(vbt_counts.loc[c])} | {bp_counts[c]} | {bt_counts.get(c, '-')} |")
    agree = (ours_counts.sort_index().to_numpy() == vbt_counts.sort_index().to_numpy()).mean()
    print(f"\ntrade counts equal to vectorbt's on {agree:.1%} of the 240 sets")

    if args.random:
        hourly = load(SHARED / "btc_usd_1h_binance.csv.gz")
        space = random_space(args.random, {"period": (5, 50), "oversold": (10.0, 45.0),
                                           "overbought": (55.0, 90.0)}, seed=1,
                             integer=["period"])
        cfg = BacktestConfig(cash=CASH, commission=COMMISSION)
        print(f"\n| {args.random:,} random sets, hourly {len(hourly):,} bars | wall time |"
              " sets/s |")
        print("|---|---|---|")
        tables = []
        for w in (1, 2):
            t0 = time.perf_counter()
            res = run_sweep(hourly, RsiRule, space, cfg, workers=w, top=1)
            t = time.perf_counter() - t0
            tables.append(res.table)
            print(f"| {w} worker{'s' if w > 1 else ''} | {t:.1f} s | {args.random / t:,.0f} |")
        assert tables[0].equals(tables[1]), "1 and 2 workers disagree"


if __name__ == "__main__":
    main()
