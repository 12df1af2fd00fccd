"""Builders of realistic backtest results for the report tests.

Reports only read saved results, so their tests need results that look like real runs without
depending on the engines: :func:`make_result` takes real candles (the ``btc_daily`` fixture, say),
computes the indicators with TA-Lib, constructs a handful of trades whose exits really happen on
those candles (stops, targets, a 10x liquidation, time exits, an open trade closed at the end) and
derives the equity curve, buy-and-hold benchmark, S/R levels, flip/retest events, an outlook and
the metrics from them through ``BacktestResult.from_run``, the constructor the engines use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import talib

from backtests.results import TRADE_COLUMNS, BacktestResult
from data.resample import period_start, resample


def _weekly_ema(df: pd.DataFrame, period: int = 200) -> pd.Series:
    """200-week EMA in 'closed' mode: a week's value is usable from the next week's first bar."""
    weekly = resample(df, "1w", incomplete="drop")
    ema = pd.Series(talib.EMA(weekly["close"].to_numpy(), timeperiod=period), index=weekly.index)
    # the EMA of week w is known once week w has closed: from the first bar of week w+1
    known_from = pd.Series(ema.to_numpy(), index=weekly.index + pd.Timedelta(weeks=1))
    starts = period_start(df.index, "1w")
    return pd.Series(known_from.reindex(starts).to_numpy(), index=df.index, name="wema200")


def _indicators(df: pd.DataFrame) -> pd.DataFrame:
    close = df["close"].to_numpy()
    ind = pd.DataFrame(index=df.index)
    ind["rsi"] = talib.RSI(close, timeperiod=14)
    ind["wema200"] = _weekly_ema(df)
    ind["atr"] = talib.ATR(df["high"].to_numpy(), df["low"].to_numpy(), close, timeperiod=14)
    # Causal rolling extremes as plausible per-bar support/resistance columns.
    ind["support"] = df["low"].rolling(90, min_periods=30).min().shift(1)
    ind["resistance"] = df["high"].rolling(90, min_periods=30).max().shift(1)
    return ind


def _simulate_trades(
    df: pd.DataFrame,
    n_trades: int,
    cash: float,
    commission: float,
    rng: np.random.Generator,
    with_liquidation: bool,
    open_at_end: bool,
) -> tuple[pd.DataFrame, pd.Series]:
    """Build trades whose stops/targets/liquidations really occur on ``df``; return equity too."""
    o, h, lo, c = (df[k].to_numpy() for k in ("open", "high", "low", "close"))
    n = len(df)
    equity = np.full(n, cash, dtype=float)
    rows: list[dict[str, Any]] = []
    if n_trades == 0 or n < 60:
        return pd.DataFrame(columns=list(TRADE_COLUMNS)), pd.Series(equity, index=df.index)
    first = min(250, n // 4)
    starts = np.linspace(first, n - 40, n_trades).astype(int)
    liq_index = n_trades // 2 if with_liquidation else -1
    balance = cash
    last_exit = -1
    for k, signal_bar in enumerate(starts):
        entry_bar = max(int(signal_bar) + 1, last_exit + 1)
        if entry_bar >= n - 2:
            break
        side = 1 if k % 3 != 2 else -1
        lev = 10.0 if k == liq_index else 1.0
        frac = 0.2 if lev > 1 else 0.5
        entry = o[entry_bar]
        margin = balance * frac
        size = margin * lev / entry
        entry_fee = size * entry * commission
        liq = entry * (1 - side * (1 / lev - 0.005)) if lev > 1 else np.nan
        stop = entry * (1 - side * 0.08) if lev == 1 else np.nan
        target = entry * (1 + side * 0.15) if lev == 1 else np.nan
        is_last = k == n_trades - 1
        hold_to_end = is_last and open_at_end
        max_bars = int(rng.integers(8, 45)) if lev == 1 else 400
        if hold_to_end:  # no stop/target: the position is still open at the end of the data
            max_bars, stop, target = n - 1 - entry_bar, np.nan, np.nan
        exit_bar, exit_price, reason = None, None, None
        for t in range(entry_bar, min(n, entry_bar + max_bars + 1)):
            adverse, favour = (lo[t], h[t]) if side > 0 else (h[t], lo[t])
            if lev > 1 and side * (adverse - liq) <= 0:
                exit_bar, exit_price, reason = t, liq, "liquidation"
                break
            if side * (adverse - stop) <= 0:
                gap = side * (o[t] - stop) < 0 and t > entry_bar
                exit_bar, exit_price, reason = t, (o[t] if gap else stop), "stop"
                break
            if side * (favour - target) >= 0:
                exit_bar, exit_price, reason = t, target, "target"
                break
        if exit_bar is None:
            if hold_to_end:
                exit_bar, exit_price, reason = n - 1, c[n - 1], "end"
            else:
                exit_bar = min(n - 1, entry_bar + max_bars)
                exit_price, reason = o[exit_bar], ("time" if k % 2 else "signal")
        exit_fee = size * exit_price * commission
        if reason == "liquidation":
            exit_fee = size * exit_price * 0.005  # liquidation fee
            pnl = -margin - exit_fee - entry_fee
        else:
            pnl = side * size * (exit_price - entry) - entry_fee - exit_fee
        seg = slice(entry_bar, exit_bar + 1)
        adverse_px = lo[seg].min() if side > 0 else h[seg].max()
        favour_px = h[seg].max() if side > 0 else lo[seg].min()
        # mark-to-market equity while the trade is open, realised at its exit
        upnl = side * size * (c[seg] - entry) - entry_fee
        if lev > 1:
            upnl = np.maximum(upnl, -margin - entry_fee)
        equity[seg] = balance + upnl
        balance += pnl
        equity[exit_bar:] = balance
        rows.append(
            {
                "entry_time": df.index[entry_bar],
                "exit_time": df.index[exit_bar],
                "entry_bar": entry_bar,
                "exit_bar": exit_bar,
                "side": side,
                "size": size,
                "entry_price": entry,
                "exit_price": exit_price,
                "entry_fee": entry_fee,
                "exit_fee": exit_fee,
                "funding": 0.0,
                "pnl": pnl,
                "return_pct": pnl / margin * 100.0,
                "exit_reason": reason,
                "leverage": lev,
                "liquidation_price": liq,
                "mae_pct": side * (adverse_px / entry - 1) * 100.0 * lev,
                "mfe_pct": side * (favour_px / entry - 1) * 100.0 * lev,
                "tag": "rsi_cross" if side > 0 else "breakdown",
            }
        )
        last_exit = exit_bar
    trades = pd.DataFrame(rows, columns=list(TRADE_COLUMNS))
    return trades, pd.Series(equity, index=df.index, name="equity")


def _levels(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    last = df["close"].iloc[-1]
    recent = df.iloc[-365:]
    lows = recent["low"].rolling(30).min().dropna().unique()
    highs = recent["high"].rolling(30).max().dropna().unique()
    centres: list[float] = []
    for px in sorted(np.concatenate([lows, highs])):
        if all(abs(px / q - 1) > 0.04 for q in centres):
            centres.append(float(px))
    centres = sorted(centres, key=lambda p: abs(p / last - 1))[:6]
    rows = []
    for px in sorted(centres):
        half = px * 0.008
        rows.append(
            {
                "centre": px,
                "low": px - half,
                "high": px + half,
                "touches": int(rng.integers(2, 7)),
                "role": "support" if px < last else "resistance",
                "strength": float(rng.uniform(0.3, 1.0)),
            }
        )
    return pd.DataFrame(rows, columns=["centre", "low", "high", "touches", "role", "strength"])


def _events(df: pd.DataFrame, ind: pd.DataFrame) -> pd.DataFrame:
    """Flip events where a close breaks the rolling support by 1%, and a retest of it after."""
    close, high = df["close"], df["high"]
    below = close < ind["support"] * 0.99
    flips = np.flatnonzero(below.to_numpy() & ~below.shift(1, fill_value=True).to_numpy())
    rows = []
    for i in flips[:: max(1, len(flips) // 8)][:8]:
        level = float(ind["support"].iloc[i])
        rows.append(
            {
                "time": df.index[i],
                "kind": "flip",
                "price": float(close.iloc[i]),
                "level": level,
                "direction": "support_to_resistance",
            }
        )
        window = slice(i + 1, min(len(df), i + 11))
        near = np.flatnonzero(
            (high.iloc[window] >= level * 0.99).to_numpy() & (close.iloc[window] < level).to_numpy()
        )
        if len(near):
            j = i + 1 + int(near[0])
            rows.append(
                {
                    "time": df.index[j],
                    "kind": "retest",
                    "price": float(high.iloc[j]),
                    "level": level,
                    "direction": "support_to_resistance",
                }
            )
    return pd.DataFrame(rows, columns=["time", "kind", "price", "level", "direction"])


def _outlook(df: pd.DataFrame, ind: pd.DataFrame, levels: pd.DataFrame) -> dict[str, Any]:
    last = float(df["close"].iloc[-1])
    prev = float(df["close"].iloc[-2])
    rsi = float(ind["rsi"].iloc[-1])
    state = (
        "deeply oversold"
        if rsi < 20
        else "oversold"
        if rsi < 30
        else "overbought"
        if rsi > 70
        else "neutral"
    )
    sup = levels[levels["role"] == "support"].sort_values("centre").tail(1)
    res = levels[levels["role"] == "resistance"].sort_values("centre").head(1)
    support = None if sup.empty else float(sup["centre"].iloc[0])
    resistance = None if res.empty else float(res["centre"].iloc[0])
    at = df.index[-1].isoformat()
    text = (
        f"BTC closed at ${last:,.0f} ({(last / prev - 1) * 100:+.2f}%). "
        f"RSI(14) {rsi:.1f}: {state}. "
        + (f"Immediate resistance near ${resistance:,.0f}. " if resistance else "")
        + (f"Critical support zone near ${support:,.0f}." if support else "")
    )
    return {
        "at": at,
        "price": last,
        "change_pct": (last / prev - 1) * 100,
        "rsi": rsi,
        "rsi_state": state,
        "wema200": float(ind["wema200"].iloc[-1]),
        "resistance": {"centre": resistance, "flipped": True},
        "support": {"centre": support, "confluence_200w_ema": False},
        "text": text,
    }


def make_result(
    prices: pd.DataFrame,
    *,
    strategy: str = "oversold_bounce",
    params: dict[str, Any] | None = None,
    n_trades: int = 24,
    engine: str = "fast",
    cash: float = 10_000.0,
    commission: float = 0.001,
    with_liquidation: bool = True,
    open_at_end: bool = True,
    seed: int = 0,
) -> BacktestResult:
    """A realistic :class:`BacktestResult` for ``prices`` (canonical candles, real price path).

    ``n_trades`` trades are attempted (fewer when the data is short); ``with_liquidation`` makes
    the middle one a 10x long that is liquidated if the price path allows; ``open_at_end`` keeps
    the last one open until the final bar (exit reason "end").
    """
    rng = np.random.default_rng(seed)
    df = prices
    ind = _indicators(df)
    trades, equity = _simulate_trades(
        df, n_trades, cash, commission, rng, with_liquidation, open_at_end
    )
    levels = _levels(df, rng)
    if params is None:
        params = {
            "rsi_period": 14,
            "oversold": 30.0,
            "deeply_oversold": 20.0,
            "overbought": 70.0,
            "support_distance_pct": 3.0,
            "max_bars": 30,
        }
    config = {
        "cash": cash,
        "commission": commission,
        "slippage_bps": 0.0,
        "leverage": 1.0,
        "maintenance_margin": 0.005,
        "liquidation_fee": 0.005,
        "funding_rate": 0.0,
        "sizing": "percent",
        "size": 0.5,
        "mode": "both",
        "engine": engine,
    }
    # The same constructor the engines use: benchmark, fingerprint and metrics are the real ones.
    return BacktestResult.from_run(
        df=df,
        strategy=strategy,
        params=params,
        config=config,
        trades=trades,
        equity=equity,
        engine=engine,
        indicators=ind,
        events=_events(df, ind),
        levels=levels,
        outlook=_outlook(df, ind, levels),
        origin="tests/factories.py synthetic trades on real candles",
    )


def hourly_candles(n: int = 44_000, seed: int = 7) -> pd.DataFrame:
    """``n`` hourly candles (a random walk around BTC's price level): the size of the hourly
    report depends on the number of bars, not on their values (packed fixed-width columns)."""
    rng = np.random.default_rng(seed)
    close = 60_000 * np.exp(np.cumsum(rng.normal(0, 0.006, n)))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, 0.003, n)) * close
    idx = pd.date_range("2021-07-01", periods=n, freq="1h", tz="UTC", name="timestamp",
                        unit="ns")
    df = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + wick,
                       "low": np.minimum(open_, close) - wick, "close": close,
                       "volume": rng.gamma(2.0, 400.0, n)}, index=idx)
    df.attrs["timeframe"] = "1h"
    return df
