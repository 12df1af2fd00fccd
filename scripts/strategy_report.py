"""What the built-in strategies' default trades look like, on the shipped daily data.

The measurement behind issue 18 (before and after): for each daily file and strategy, with
default parameters and the CLI's defaults (fast engine, mode "both", 0.1 % commission):

- trades; exit-reason counts with the median trade return (%) per reason;
- same-bar share (entry and exit in the same bar) overall and among target exits;
- share of trades whose price moved less than 0.5 % from entry to exit;
- target exits that lost money (after fees);
- planned reward:risk at the fill: ``|target - entry| / |entry - stop|`` from the signal bar's
  stop and target (median; "net" subtracts the round-trip fees from the reward and adds them to
  the risk);
- R multiples (pnl / planned risk in quote currency) with expectancy and SQN;
- the trades of a window (default 2026-01-25..2026-02-28) on the Binance file.

Run: ``PYTHONPATH=. python scripts/strategy_report.py [--json out.json]``. It takes seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from backtests import BacktestConfig, run
from data import load
from strategies import Breakdown, OversoldBounce

DATA = Path(os.environ.get("BTC_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared"
                           / "data"))
FILES = ("btc_usd_1d_binance.csv", "btc_usd_1d_bitstamp.csv")


def planned(trades: pd.DataFrame, sig, commission: float) -> pd.DataFrame:
    """Planned risk, reward and reward:risk of each trade from the signal bar's stop/target."""
    sb = trades["entry_bar"].to_numpy() - 1  # signals of bar t fill at bar t+1's open
    side = trades["side"].to_numpy()
    pe = trades["entry_price"].to_numpy()
    stop = sig.stop[sb]
    target = sig.target[sb]
    risk = np.abs(pe - stop)
    reward = np.abs(target - pe)
    fees = 2 * commission * pe
    with np.errstate(invalid="ignore", divide="ignore"):
        rr = reward / risk
        rr_net = (reward - fees) / (risk + fees)
        r_mult = trades["pnl"].to_numpy() / (risk * trades["size"].to_numpy())
    return pd.DataFrame({"side": side, "stop": stop, "target": target, "risk": risk,
                         "rr": rr, "rr_net": rr_net, "r": r_mult})


def figures(trades: pd.DataFrame, plan: pd.DataFrame) -> dict:
    """The headline figures of one run (see the module docstring)."""
    n = len(trades)
    move = (trades["exit_price"] / trades["entry_price"] - 1).abs() * 100
    same = trades["entry_bar"] == trades["exit_bar"]
    tgt = trades["exit_reason"] == "target"
    by = {}
    for reason, g in trades.groupby("exit_reason"):
        by[str(reason)] = {"n": len(g), "median_return_pct": round(float(
            g["return_pct"].median()), 2)}
    r = plan["r"].to_numpy()
    r = r[np.isfinite(r)]
    sqn = float(math.sqrt(len(r)) * r.mean() / r.std(ddof=1)) if len(r) > 1 else float("nan")
    return {
        "trades": n,
        "exit_reasons": by,
        "same_bar_pct": round(100 * float(same.mean()), 1) if n else 0.0,
        "same_bar_target_pct": round(100 * float((same & tgt).mean()), 1) if n else 0.0,
        "move_lt_0.5pct_pct": round(100 * float((move < 0.5).mean()), 1) if n else 0.0,
        "abs_return_lt_0.5pct_pct": round(100 * float((trades["return_pct"].abs() < 0.5)
                                                      .mean()), 1) if n else 0.0,
        "target_exits_with_loss": int((tgt & (trades["pnl"] < 0)).sum()),
        "median_planned_rr": round(float(np.nanmedian(plan["rr"])), 2) if n else None,
        "median_planned_rr_net": round(float(np.nanmedian(plan["rr_net"])), 2) if n else None,
        "with_target_pct": round(100 * float(np.isfinite(plan["target"]).mean()), 1) if n else 0,
        "expectancy_r": round(float(r.mean()), 3) if len(r) else None,
        "sqn": round(sqn, 2),
        "total_return_pct": None,
    }


def window(trades: pd.DataFrame, plan: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """The trades entered in ``[start, end]`` with their plan, for printing."""
    t = trades.assign(stop=plan["stop"].to_numpy(), target=plan["target"].to_numpy(),
                      rr=plan["rr"].to_numpy(), r=plan["r"].to_numpy())
    et = t["entry_time"]
    sel = t[(et >= pd.Timestamp(start, tz="UTC")) & (et <= pd.Timestamp(end, tz="UTC")
                                                     + pd.Timedelta(days=1))]
    cols = ["entry_time", "exit_time", "side", "entry_price", "stop", "target", "rr",
            "exit_price", "exit_reason", "return_pct", "r", "tag"]
    out = sel[cols].copy()
    out["entry_time"] = out["entry_time"].dt.strftime("%Y-%m-%d")
    out["exit_time"] = out["exit_time"].dt.strftime("%Y-%m-%d")
    return out.round({"entry_price": 0, "stop": 0, "target": 0, "rr": 2, "exit_price": 0,
                      "return_pct": 2, "r": 2})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--start", default="2026-01-25")
    ap.add_argument("--end", default="2026-02-28")
    args = ap.parse_args()
    cfg = BacktestConfig(mode="both")  # the CLI's default mode
    out: dict = {"loadavg": Path("/proc/loadavg").read_text().split()[:3]}
    pd.set_option("display.width", 200)
    for fname in FILES:
        df = load(DATA / fname)
        for cls in (Breakdown, OversoldBounce):
            strat = cls()
            res = run(df, strat, cfg)
            sig = strat.signals(df)
            plan = planned(res.trades, sig, cfg.commission)
            fig = figures(res.trades, plan)
            fig["total_return_pct"] = round(float(res.metrics["total_return_pct"]), 2)
            out[f"{fname}:{cls.name}"] = fig
            print(f"\n== {fname} {cls.name}")
            print(json.dumps(fig, indent=None))
            if "binance" in fname:
                w = window(res.trades, plan, args.start, args.end)
                print(f"trades entered {args.start}..{args.end}:")
                print(w.to_string(index=False) if len(w) else "(none)")
                out[f"{fname}:{cls.name}:window"] = w.to_dict(orient="records")
    print("\nloadavg", " ".join(out["loadavg"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
