"""The story of the data a job ran on: the market now, and the biggest moves.

Computed once by :func:`backtests.job.run_job` and saved in every result's ``story`` (reports and
the terminal only read it):

* :func:`market_now`: the technical outlook at the last bar in a trader's words: price against
  the nearest support and resistance, the 200-week EMA and the distance to it, the RSI state, the
  flips of the last 30 days;
* :func:`biggest_moves`: the ``n`` largest daily close-to-close moves of the trading window,
  measured against the volatility of their time (the change divided by the standard deviation
  of the :data:`SIGMA_DAYS` daily changes before it: a -14 % day in a calm 2026 ranks above a
  -16 % day in the wild 2017), each with its volume against the 20 days before, the RSI at the
  close, the zones it broke or flipped, and per strategy what it held that day, its P/L that day
  and, when leveraged, how far the price was from its liquidation price.

Units: prices in quote currency, changes and distances in % (of the previous close for a move,
of the price for distances), volume ratios as multiples of the average.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from backtests.results import BacktestResult
from data.frame import parse_timeframe, timeframe_of
from data.resample import resample
from indicators.core import rsi as ta_rsi
from indicators.flips import flips
from indicators.outlook import finite_or_none

#: Flips this recent (days before the last bar) are "recent" in the market-now card.
RECENT_DAYS = 30
#: At most this many of them are kept (the latest): minute data flips thousands of times a month.
RECENT_FLIPS_SHOWN = 10
#: Bars in the volume average a move's volume is compared with (the bars before it).
VOLUME_BARS = 20
#: Days of daily changes whose standard deviation scales a move (known before the move).
SIGMA_DAYS = 90
N_MOVES = 6


def _zone(level: dict[str, Any] | None) -> dict[str, Any] | None:
    if not level:
        return None
    return {k: level.get(k) for k in ("centre", "low", "high", "distance_pct", "touches",
                                      "note", "flipped", "wema_confluence")}


def _price(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def _away(x: float | None) -> str:
    """A distance as words that read one way: ``5.3% below`` / ``3.5% above``."""
    if x is None:
        return "n/a"
    return f"{abs(x):.1f}% {'below' if x < 0 else 'above'}"


def market_now(outlook: dict[str, Any], events: pd.DataFrame) -> dict[str, Any]:
    """The market at the last bar from the job's outlook dict and flip events.

    Returns a dict: ``as_of``, ``price``, ``support``/``resistance`` (nearest zones: centre,
    low, high, distance_pct, touches, note...), ``wema200``, ``dist_wema_pct``,
    ``wema200_slope``, ``rsi``, ``rsi_state``, ``trend``, ``recent_flips`` (the flips confirmed
    in the last :data:`RECENT_DAYS` days, at most the latest :data:`RECENT_FLIPS_SHOWN`: time,
    kind, level_low, level_high), ``recent_flip_count`` (all of them) and ``lines``
    (three sentences for the terminal and the report). ``{"note": ...}`` when the outlook is
    missing.
    """
    if not outlook or "last" not in outlook:
        return {"note": outlook.get("note", "no technical outlook") if outlook else
                "no technical outlook"}
    as_of = pd.Timestamp(outlook["as_of"])
    recent: list[dict[str, Any]] = []
    n_recent = 0
    if len(events):
        ev = events[(events["kind"] != "retest")
                    & (events["time"] > as_of - pd.Timedelta(days=RECENT_DAYS))]
        n_recent = len(ev)
        ev = ev.sort_values("time", kind="stable").iloc[-RECENT_FLIPS_SHOWN:]
        recent = [{"time": t.isoformat(), "kind": str(k), "level_low": float(lo),
                   "level_high": float(hi)}
                  for t, k, lo, hi in zip(ev["time"], ev["kind"], ev["level_low"],
                                          ev["level_high"], strict=True)]
    sup, res = _zone(outlook.get("support")), _zone(outlook.get("resistance"))
    price = float(outlook["last"])
    out = {
        "as_of": as_of.isoformat(),
        "price": price,
        "support": sup,
        "resistance": res,
        "wema200": finite_or_none(outlook.get("wema200")),
        "dist_wema_pct": finite_or_none(outlook.get("dist_wema_pct")),
        "wema200_slope": outlook.get("wema200_slope"),
        "rsi": finite_or_none(outlook.get("rsi")),
        "rsi_state": outlook.get("rsi_state"),
        "trend": outlook.get("trend"),
        "recent_flips": recent,
        "recent_flip_count": n_recent,
    }

    def side(z: dict[str, Any] | None, what: str) -> str:
        if z is None:
            return f"no {what} in the data"
        return (f"{what} {_price(z['centre'])} ({_away(z['distance_pct'])} price, zone "
                f"{_price(z['low'])}-{_price(z['high'])}{'; flipped' if z['flipped'] else ''})")

    rsi = out["rsi"]
    lines = [
        f"BTC {_price(price)} {outlook.get('label') or f'on {as_of:%Y-%m-%d}'}: "
        f"{side(sup, 'support')}, "
        f"{side(res, 'resistance')}.",
        f"200-week EMA {_price(out['wema200'])} (price {_away(out['dist_wema_pct'])} it, "
        f"{out['wema200_slope'] or 'n/a'}); RSI {'n/a' if rsi is None else f'{rsi:.1f}'} "
        f"{(out['rsi_state'] or '').replace('_', ' ')}; trend {out['trend']}.",
    ]
    if recent:
        lines.append("Recent flips: " + "; ".join(
            f"{f['time'][:10]} {f['kind'].replace('_', ' ')} at {_price(f['level_low'])}-"
            f"{_price(f['level_high'])}" for f in recent[-3:]) + ".")
    else:
        lines.append(f"No support/resistance flip in the last {RECENT_DAYS} days.")
    out["lines"] = lines
    return out


def _daily(df: pd.DataFrame) -> pd.DataFrame:
    """Daily candles of ``df`` (resampled when the bars are shorter than a day)."""
    tf = timeframe_of(df)
    if parse_timeframe(tf) < pd.Timedelta(days=1):
        return resample(df, "1d", incomplete="drop")
    return df


def _held(r: BacktestResult, day: pd.Timestamp, day_end: pd.Timestamp, close: float,
          low: float, high: float) -> dict[str, Any]:
    """What ``r`` held during the day starting at ``day``: side, P/L, liquidation distance."""
    t = r.trades
    eq = r.equity
    on = t[(t["entry_time"] < day_end) & (t["exit_time"] >= day)] if len(t) else t
    before = eq[eq.index < day]
    during = eq[(eq.index >= day) & (eq.index < day_end)]
    start_eq = float(before.iloc[-1]) if len(before) else float(r.config.get("cash", np.nan))
    end_eq = float(during.iloc[-1]) if len(during) else start_eq
    out: dict[str, Any] = {
        "strategy": r.strategy,
        "position": "flat",
        "pnl": end_eq - start_eq,
        "pnl_pct": (end_eq / start_eq - 1.0) * 100.0 if start_eq else None,
    }
    if len(on):
        tr = on.iloc[-1]
        side = int(tr["side"])
        out.update(position="long" if side > 0 else "short",
                   entry_time=pd.Timestamp(tr["entry_time"]).isoformat(),
                   entry_price=float(tr["entry_price"]), leverage=float(tr["leverage"]))
        if pd.Timestamp(tr["exit_time"]) < day_end:
            out["exit"] = str(tr["exit_reason"])
            out["exit_price"] = float(tr["exit_price"])
        liq = finite_or_none(tr["liquidation_price"])
        if liq is not None and float(tr["leverage"]) > 1:  # at 1x a short's "liquidation"
            # price is twice its entry: not a risk worth a column
            # Positive: the price stayed that far from liquidation (at the close / at the
            # day's worst price for the position).
            worst = low if side > 0 else high
            out["liquidation_price"] = liq
            out["liq_distance_close_pct"] = side * (close - liq) / close * 100.0
            out["liq_distance_worst_pct"] = side * (worst - liq) / worst * 100.0
    return out


def biggest_moves(results: Sequence[BacktestResult], history: pd.DataFrame,
                  n: int = N_MOVES) -> list[dict[str, Any]]:
    """The ``n`` largest daily close-to-close moves of the results' trading window, by size in
    standard deviations of the :data:`SIGMA_DAYS` daily changes before each (``sigma``).

    ``history`` is the job's candles including any warm-up before the window (the RSI, the
    volume average and the zones use it). Returns one dict per move, largest first: ``date``,
    ``change_pct`` (close vs previous close), ``open``/``high``/``low``/``close``,
    ``volume_ratio`` (volume / mean of the :data:`VOLUME_BARS` days before), ``rsi`` (RSI(14) at
    the close), ``zones`` (flips whose break or confirmation fell on that day, and the support or
    resistance zone the close went through) and ``strategies`` (per result: position held,
    P/L that day in quote currency and %, exit that day, liquidation distance when leveraged).
    """
    if not results:
        return []
    window = results[0].prices
    daily = _daily(history)
    if len(daily) < 3:
        return []
    close = daily["close"]
    chg = close.pct_change() * 100.0
    vol_avg = daily["volume"].rolling(VOLUME_BARS, min_periods=VOLUME_BARS).mean().shift(1)
    rsi = ta_rsi(close, 14)
    fl = flips(daily)
    bars, events = fl.bars, fl.events
    prev = bars[["support_low", "support_high", "resistance_low", "resistance_high"]].shift(1)
    sigma = chg / chg.rolling(SIGMA_DAYS, min_periods=30).std().shift(1)
    in_window = sigma[(sigma.index >= window.index[0].floor("D")) & sigma.notna()]
    top = in_window.abs().sort_values(ascending=False, kind="stable").index[:n]
    day_len = pd.Timedelta(days=1)
    moves = []
    for day in top:
        row = daily.loc[day]
        zones = []
        if len(events):
            ev = events[(events["kind"] != "retest")
                        & ((events["break_time"] == day) | (events["time"] == day))]
            for _, e in ev.iterrows():
                zones.append(
                    f"{str(e['kind']).replace('_', ' ')} flip of zone {_price(e['level_low'])}-"
                    f"{_price(e['level_high'])} (broken {pd.Timestamp(e['break_time']):%Y-%m-%d}, "
                    f"confirmed {pd.Timestamp(e['time']):%Y-%m-%d})")
        c = float(row["close"])
        # the zones known at the previous close that this close went through
        z = {k: finite_or_none(v) for k, v in prev.loc[day].items()}
        if z["support_low"] is not None and c < z["support_low"]:
            zones.append(f"closed below the support zone {_price(z['support_low'])}-"
                         f"{_price(z['support_high'])}")
        if z["resistance_high"] is not None and c > z["resistance_high"]:
            zones.append(f"closed above the resistance zone {_price(z['resistance_low'])}-"
                         f"{_price(z['resistance_high'])}")
        va = finite_or_none(vol_avg.get(day))
        moves.append({
            "date": day.isoformat(),
            "change_pct": float(chg[day]),
            "sigma": float(sigma[day]),
            "open": float(row["open"]), "high": float(row["high"]), "low": float(row["low"]),
            "close": c,
            "volume": float(row["volume"]),
            "volume_ratio": float(row["volume"]) / va if va else None,
            "rsi": finite_or_none(rsi.get(day)),
            "zones": zones,
            "strategies": [_held(r, day, day + day_len, c, float(row["low"]), float(row["high"]))
                           for r in results],
        })
    return moves


def move_lines(moves: list[dict[str, Any]], limit: int = 3) -> list[str]:
    """Two or three terminal lines about the biggest moves (from :func:`biggest_moves`)."""
    if not moves:
        return []
    head = "Biggest moves: " + ", ".join(
        f"{m['date'][:10]} {m['change_pct']:+.1f}% ({abs(m['sigma']):.1f} sigma"
        + (f", volume {m['volume_ratio']:.1f}x)" if m["volume_ratio"] else ")")
        for m in moves[:limit + 2])
    lines = [head]
    for m in moves[:limit - 1]:
        held = "; ".join(
            f"{s['strategy']} {s['position']}"
            + ("" if s["position"] == "flat" else f" {s['pnl_pct']:+.1f}%")
            + (f", {s['liq_distance_worst_pct']:.1f}% from liquidation"
               if s.get("liq_distance_worst_pct") is not None else "")
            + (f", exit {s['exit']}" if s.get("exit") else "")
            for s in m["strategies"])
        lines.append(f"  {m['date'][:10]}: {held}")
    return lines


def story(results: Sequence[BacktestResult], history: pd.DataFrame, outlook: dict[str, Any],
          events: pd.DataFrame, n: int = N_MOVES) -> dict[str, Any]:
    """``{"market_now": market_now(...), "biggest_moves": biggest_moves(...)}``."""
    return {"market_now": market_now(outlook, events),
            "biggest_moves": biggest_moves(results, history, n)}
