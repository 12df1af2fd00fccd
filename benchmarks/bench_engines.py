"""Time our two engines against raw backtrader, backtesting.py and vectorbt on the same rules.

Rules (oversold bounce, long only): RSI(14) (TA-Lib/Wilder) crosses back above 30 at a bar's close
(``rsi[t-1] <= 30 < rsi[t]``) -> buy at the next bar's open with 95 % of equity; stop at 95 % of
the signal bar's close (known when the order is placed), checked on every bar's low from the fill
bar on, a gap through it fills at the open; exit at the next open once RSI closes above 70;
commission 0.1 % per side; a position still open at the end is closed at the last close.

Data: the real Bitstamp BTC/USD daily candles (5,121 bars, ../shared/data) and 1,000,000
one-minute bars of a **seeded random path** (geometric random walk, seed 42, open = previous close:
no real minute data is that long here).

Run: ``python benchmarks/bench_engines.py [--bars 1000000] [--skip-slow]``. Prints seconds, the
ratio to our fast engine (and of our backtrader path to raw backtrader) and whether every engine
produced the same trades (entry bar, exit bar, prices). Numba-based engines (ours, vectorbt) are
timed warm (compiled on a small slice first), best of 5; the pure-Python engines once. The
compared figure is the process's CPU time (the machine is shared; wall time is printed too).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import talib

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar would garble the table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data.frame import to_canonical  # noqa: E402
from strategies.base import Param, Signals, Strategy  # noqa: E402

SHARED = Path(os.environ.get("BTC_SHARED_DATA", REPO.parent / "shared" / "data"))
CASH, COMMISSION, SIZE = 10_000.0, 0.001, 0.95
PERIOD, OVERSOLD, OVERBOUGHT, STOP = 14, 30.0, 70.0, 0.95

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=UserWarning)


# ---------------------------------------------------------------------------------------------
# Data


def bitstamp_daily() -> pd.DataFrame:
    """The real Bitstamp BTC/USD daily candles (read from ../shared/data, never copied)."""
    raw = pd.read_csv(SHARED / "btc_usd_1d_bitstamp.csv", parse_dates=["timestamp"],
                      index_col="timestamp")
    df = to_canonical(raw)
    df.attrs.update(timeframe="1d", source="btc_usd_1d_bitstamp.csv")
    return df


def random_minutes(n: int, seed: int = 42) -> pd.DataFrame:
    """``n`` one-minute bars of a seeded geometric random walk (about 80 % annual volatility)."""
    rng = np.random.default_rng(seed)
    sigma = 0.8 / np.sqrt(525_600)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    open_ = np.concatenate(([30_000.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, sigma * 0.6, (2, n)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    idx = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC", unit="ns",
                        name="timestamp")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                       "volume": rng.uniform(0.1, 5.0, n)}, index=idx)
    df.attrs.update(timeframe="1m", source=f"seeded random path (seed {seed})")
    return df


# ---------------------------------------------------------------------------------------------
# The rules, for our engines (a user-style Strategy subclass)


def rule_arrays(close: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RSI, the entry bars (cross back above 30) and the exit bars (RSI above 70)."""
    rsi = talib.RSI(close, PERIOD)
    prev = np.roll(rsi, 1)
    prev[0] = np.nan
    entry = (prev <= OVERSOLD) & (rsi > OVERSOLD)
    exit_ = rsi > OVERBOUGHT
    return rsi, entry, exit_


class RsiBounce(Strategy):
    """Long when RSI(14) crosses back above 30; stop 5 % under the signal close; exit RSI > 70."""

    name = "bench_rsi_bounce"
    params: ClassVar[dict[str, Param]] = {"period": Param(PERIOD, "RSI period, bars", int, min=2)}

    def signals(self, df: pd.DataFrame) -> Signals:
        close = df["close"].to_numpy()
        _, entry, exit_ = rule_arrays(close)
        return Signals.from_entries(entry.astype(np.int8), exit=exit_, stop=close * STOP)


# ---------------------------------------------------------------------------------------------
# Engines. Each returns a DataFrame with entry_bar, exit_bar, entry_price, exit_price.


def _our_config():
    from backtests.config import BacktestConfig

    return BacktestConfig(cash=CASH, commission=COMMISSION, size=SIZE, sizing="percent",
                          mode="long")


def _from_result(res) -> pd.DataFrame:
    t = res.trades
    return t[["entry_bar", "exit_bar", "entry_price", "exit_price"]].reset_index(drop=True)


def run_ours_fast(df: pd.DataFrame) -> pd.DataFrame:
    from backtests.engines.fast import run_fast

    return _from_result(run_fast(df, RsiBounce(), _our_config()))


def run_ours_fast_fingerprinted(df: pd.DataFrame) -> dict:
    """:func:`run_ours_fast` and a read of the result's data fingerprint (its hash is taken on
    the first read); returns the fingerprint."""
    from backtests.engines.fast import run_fast

    return run_fast(df, RsiBounce(), _our_config()).data


def run_ours_fast_core(df: pd.DataFrame) -> pd.DataFrame:
    """Our fast engine without the result object: signals + simulation + trade table only
    (no buy-and-hold, fingerprint or metrics), the work comparable to vectorbt's; as
    ``run_fast`` does it: ``prepare`` checks the signals, the simulation takes them as checked."""
    from backtests.engines.fast import prepare, simulate_valid

    cfg = _our_config()
    trades, _ = simulate_valid(df, prepare(df, RsiBounce(), cfg), cfg)
    return trades[["entry_bar", "exit_bar", "entry_price", "exit_price"]]


def run_ours_bt(df: pd.DataFrame) -> pd.DataFrame:
    from backtests.engines.bt import run_backtrader

    return _from_result(run_backtrader(df, RsiBounce(), _our_config()))


def run_raw_backtrader(df: pd.DataFrame) -> pd.DataFrame:
    """A plain bt.Strategy: bt.indicators.RSI, a market buy bracketed with a stop, close on RSI."""
    import backtrader as bt

    class Bounce(bt.Strategy):
        def __init__(self):
            self.rsi = bt.indicators.RSI(self.data.close, period=PERIOD, safediv=True)
            self.stop_order = None
            self.records: list[tuple[int, int, float, float]] = []
            self.entry: tuple[int, float] | None = None

        def notify_order(self, order):
            if order.status != order.Completed:
                return
            bar = len(self.data) - 1
            if order.isbuy():
                self.entry = (bar, order.executed.price)
            else:
                (ebar, eprice) = self.entry
                self.records.append((ebar, bar, eprice, order.executed.price))
                self.entry = None

        def next(self):
            rsi = self.rsi[0]
            if not self.position:
                if self.entry is None and self.rsi[-1] <= OVERSOLD < rsi:
                    close = self.data.close[0]
                    size = SIZE * self.broker.getvalue() / close
                    _, self.stop_order, _ = self.buy_bracket(
                        exectype=bt.Order.Market, size=size, stopprice=close * STOP,
                        limitexec=None)
            elif rsi > OVERBOUGHT:
                self.cancel(self.stop_order)
                self.close()

        def stop(self):
            if self.position:  # close at the last close, like the other engines
                (ebar, eprice) = self.entry
                self.records.append((ebar, len(self.data) - 1, eprice, self.data.close[0]))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=df.tz_convert(None)))
    cerebro.addstrategy(Bounce)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=COMMISSION)
    strat = cerebro.run()[0]
    return pd.DataFrame(strat.records,
                        columns=["entry_bar", "exit_bar", "entry_price", "exit_price"])


def run_backtesting_py(df: pd.DataFrame) -> pd.DataFrame:
    """backtesting.py with FractionalBacktest (BTC is fractional)."""
    from backtesting import Strategy as BtpStrategy
    from backtesting.lib import FractionalBacktest

    class Bounce(BtpStrategy):
        def init(self):
            self.rsi = self.I(talib.RSI, self.data.Close, PERIOD)

        def next(self):
            rsi = self.rsi
            if not self.position:
                if len(rsi) > 1 and rsi[-2] <= OVERSOLD < rsi[-1]:
                    self.buy(size=SIZE, sl=self.data.Close[-1] * STOP)
            elif rsi[-1] > OVERBOUGHT:
                self.position.close()

    data = df.rename(columns=str.capitalize).tz_convert(None)
    bt_ = FractionalBacktest(data, Bounce, cash=CASH, commission=COMMISSION,
                             finalize_trades=True)
    stats = bt_.run()
    t = stats["_trades"]
    return pd.DataFrame({
        "entry_bar": t["EntryBar"].to_numpy(), "exit_bar": t["ExitBar"].to_numpy(),
        "entry_price": t["EntryPrice"].to_numpy(), "exit_price": t["ExitPrice"].to_numpy(),
    })


def run_vectorbt(df: pd.DataFrame) -> pd.DataFrame:
    """vectorbt Portfolio.from_signals: signals shifted to the fill bar, price=open, sl_stop."""
    import vectorbt as vbt

    o = df["open"].to_numpy()
    close = df["close"].to_numpy()
    _, entry, exit_ = rule_arrays(close)
    # Act at the next bar's open: shift the signals one bar forward.
    ent = np.zeros_like(entry)
    ex = np.zeros_like(exit_)
    ent[1:], ex[1:] = entry[:-1], exit_[:-1]
    # sl_stop is a fraction of the fill price; make the stop land on 95 % of the signal close.
    sl = np.full(len(o), np.nan)
    sl[1:] = 1.0 - STOP * close[:-1] / o[1:]
    pf = vbt.Portfolio.from_signals(
        # A naive index: with pandas 3, vectorbt 1.2 wraps a tz-aware index by iterating
        # Timestamps (3.8 s per 1M bars); the plain index is what a vectorbt user would pass.
        close=df["close"].tz_convert(None), entries=ent, exits=ex, price=o, open=o,
        high=df["high"].to_numpy(), low=df["low"].to_numpy(), sl_stop=sl,
        stop_entry_price="fillprice", size=SIZE, size_type="percent", fees=COMMISSION,
        init_cash=CASH,
    )
    rec = pf.trades.records  # structured array: bar positions and average fill prices
    return pd.DataFrame({
        "entry_bar": rec["entry_idx"], "exit_bar": rec["exit_idx"],
        "entry_price": rec["entry_price"], "exit_price": rec["exit_price"],
    })


@dataclass
class Engine:
    label: str
    fn: Callable[[pd.DataFrame], pd.DataFrame]
    numba: bool = False  # best of 5 (see timed)
    slow: bool = False  # pure Python event loop: left out by --skip-slow


ENGINES = [
    Engine("ours: fast", run_ours_fast, numba=True),
    Engine("ours: fast, no result", run_ours_fast_core, numba=True),
    Engine("vectorbt", run_vectorbt, numba=True),
    Engine("backtesting.py", run_backtesting_py),
    Engine("ours: backtrader", run_ours_bt, slow=True),
    Engine("raw backtrader", run_raw_backtrader, slow=True),
]


def available(engine: Engine) -> bool:
    """Our engines join the table once their modules exist."""
    if engine.fn in (run_ours_fast, run_ours_fast_core):
        return (REPO / "backtests" / "engines" / "fast.py").exists()
    if engine.fn is run_ours_bt:
        return (REPO / "backtests" / "engines" / "bt.py").exists()
    return True


def timed(engine: Engine, df: pd.DataFrame) -> tuple[float, float, pd.DataFrame]:
    """(CPU seconds, wall seconds, trades). CPU time of this process is the figure compared:
    the machine is shared, and wall time also counts the time other jobs held the cores."""
    # Every engine runs once on a slice first: numba compiles, and first-call costs (lazy
    # imports, class creation) are not charged to whichever backtrader engine happens to run
    # first. Then best of 5 (numba), of 3 (others on small data) or a single run (1M bars).
    engine.fn(df.iloc[:2_000])
    repeats = 5 if engine.numba else (3 if len(df) <= 100_000 else 1)
    best_cpu, best_wall, out = np.inf, np.inf, None
    for _ in range(repeats):
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        out = engine.fn(df)
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return best_cpu, best_wall, out


def compare(ref: pd.DataFrame, other: pd.DataFrame) -> str:
    """'same' when the trades match (bars exactly, prices to 1e-9), else what differs."""
    if len(ref) != len(other):
        a = set(zip(ref.entry_bar, ref.exit_bar, strict=True))
        b = set(zip(other.entry_bar, other.exit_bar, strict=True))
        first = sorted(a ^ b)[:1]
        return f"{len(other)} trades vs {len(ref)}; first differing (entry, exit) bars {first}"
    bars = (ref.entry_bar.to_numpy() == other.entry_bar.to_numpy()) & (
        ref.exit_bar.to_numpy() == other.exit_bar.to_numpy())
    if not bars.all():
        k = int(np.flatnonzero(~bars)[0])
        return (f"same count, {int((~bars).sum())} differ in bars; first #{k}: "
                f"{tuple(ref.iloc[k, :2])} vs {tuple(other.iloc[k, :2])}")
    rel = np.abs(other[["entry_price", "exit_price"]].to_numpy()
                 / ref[["entry_price", "exit_price"]].to_numpy() - 1.0)
    worst = float(np.nanmax(rel)) if rel.size else 0.0
    return "same" if worst <= 1e-9 else f"same bars, prices differ up to {worst:.2e} rel"


def bench(df: pd.DataFrame, title: str, skip_slow: bool) -> list[dict]:
    print(f"\n## {title}: {len(df):,} bars, {df.index[0]} -> {df.index[-1]}")
    rows = []
    for e in ENGINES:
        if not available(e):
            print(f"  {e.label:22s} (not available yet)")
            continue
        if e.slow and skip_slow:
            print(f"  {e.label:22s} (skipped: --skip-slow)")
            continue
        secs, wall, trades = timed(e, df)
        rows.append({"engine": e.label, "seconds": secs, "wall": wall, "trades": trades})
        print(f"  {e.label:22s} {secs:10.4f} s CPU {wall:10.4f} s wall {len(trades):6d} trades",
              flush=True)
    by = {r["engine"]: r for r in rows}
    ref_name = "ours: fast" if "ours: fast" in by else rows[0]["engine"]
    ref = by[ref_name]
    raw = by.get("raw backtrader")
    print(f"\n| engine | CPU s | wall s | x {ref_name} (CPU) | trades | trades vs {ref_name} "
          "| trades vs raw backtrader |")
    print("|---|---:|---:|---:|---:|---|---|")
    for r in rows:
        ratio = r["seconds"] / ref["seconds"]
        same = "-" if r is ref else compare(ref["trades"], r["trades"])
        same_raw = "-" if raw is None or r is raw else compare(raw["trades"], r["trades"])
        print(f"| {r['engine']} | {r['seconds']:.4f} | {r['wall']:.4f} | {ratio:.2f} "
              f"| {len(r['trades'])} | {same} | {same_raw} |")
    if "ours: backtrader" in by and "raw backtrader" in by:
        q = by["ours: backtrader"]["seconds"] / by["raw backtrader"]["seconds"]
        same = compare(by["raw backtrader"]["trades"], by["ours: backtrader"]["trades"])
        print(f"\nours: backtrader / raw backtrader = {q:.2f} (goal <= 1.3); trades: {same}")
    if "ours: fast" in by:
        for peer in ("vectorbt", "raw backtrader", "backtesting.py"):
            for ours in ("ours: fast", "ours: fast, no result"):
                if peer in by and ours in by:
                    q = by[peer]["seconds"] / by[ours]["seconds"]
                    print(f"{peer} / {ours} = {q:.2f}x (CPU)")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000, help="random 1-minute bars")
    ap.add_argument("--skip-slow", action="store_true", help="skip both backtrader engines")
    ap.add_argument("--only", choices=["daily", "minutes"], help="run one data set")
    args = ap.parse_args(argv)
    if args.only != "minutes":
        bench(bitstamp_daily(), "Bitstamp BTC/USD daily (real)", args.skip_slow)
    if args.only != "daily":
        bench(random_minutes(args.bars), "1-minute bars, seeded random path (seed 42)",
              args.skip_slow)


if __name__ == "__main__":
    main()
