"""The main job's story: the market at the last bar and the biggest moves, on real daily data."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import talib

from backtests import BacktestConfig, BacktestResult
from backtests.job import run_job
from backtests.reports.assets import render
from backtests.reports.html import render_html
from backtests.story import RECENT_FLIPS_SHOWN, market_now, move_lines
from strategies.bounce import OversoldBounce
from strategies.breakdown import Breakdown

CRASH = pd.Timestamp("2026-02-05", tz="UTC")


@pytest.fixture(scope="module")
def job():
    from tests.conftest import real

    df = real("1d_binance")
    results = run_job(df, [Breakdown(), OversoldBounce()], BacktestConfig(leverage=3.0))
    return df, results


@pytest.mark.shared_data
def test_market_now_is_the_outlook_at_the_last_bar(job):
    df, results = job
    now = results[0].story["market_now"]
    assert all(r.story == results[0].story for r in results)  # one story per job
    ol = results[0].outlook
    assert now["as_of"] == df.index[-1].isoformat() and now["price"] == df["close"].iloc[-1]
    assert now["support"]["centre"] == ol["support"]["centre"] < now["price"]
    assert now["resistance"]["centre"] == ol["resistance"]["centre"] > now["price"]
    assert now["dist_wema_pct"] == pytest.approx((now["price"] / now["wema200"] - 1) * 100)
    assert now["rsi"] == pytest.approx(talib.RSI(df["close"].to_numpy(), 14)[-1], abs=1e-9)
    for f in now["recent_flips"]:
        assert df.index[-1] - pd.Timestamp(f["time"]) < pd.Timedelta(days=30)
        assert f["kind"] in ("support_to_resistance", "resistance_to_support")
    assert now["lines"][0].startswith(
        f"BTC {now['price']:,.0f} after the 2026-07-03 daily close (2026-07-04 00:00 UTC): "
        "support ")
    assert "% below price" in now["lines"][0] and "% above price" in now["lines"][0]
    assert len(now["lines"]) == 3


@pytest.mark.shared_data
def test_the_february_2026_crash_is_one_of_the_biggest_moves(job):
    df, results = job
    moves = results[0].story["biggest_moves"]
    assert len(moves) == 6
    sig = [abs(m["sigma"]) for m in moves]
    assert sig == sorted(sig, reverse=True)
    crash = next(m for m in moves if m["date"] == CRASH.isoformat())
    close = df["close"]
    i = df.index.get_loc(CRASH)
    assert crash["change_pct"] == pytest.approx((close.iloc[i] / close.iloc[i - 1] - 1) * 100)
    assert round(crash["change_pct"], 1) == -14.0
    # sigma: the change over the standard deviation of the 90 daily changes before it
    chg = close.pct_change().to_numpy() * 100
    assert crash["sigma"] == pytest.approx(chg[i] / np.std(chg[i - 90:i], ddof=1))
    # volume against the mean of the 20 days before
    vol = df["volume"].to_numpy()
    assert crash["volume_ratio"] == pytest.approx(vol[i] / vol[i - 20:i].mean())
    assert crash["volume_ratio"] > 3
    assert crash["rsi"] == pytest.approx(talib.RSI(close.to_numpy(), 14)[i], abs=1e-9)
    assert any("support" in z for z in crash["zones"])
    for r, held in zip(results, crash["strategies"], strict=True):
        assert held["strategy"] == r.strategy
        eq = r.equity
        assert held["pnl"] == pytest.approx(eq.iloc[i] - eq.iloc[i - 1])
        t = r.trades
        on = t[(t["entry_time"] <= CRASH) & (t["exit_time"] >= CRASH)]
        if len(on):
            tr = on.iloc[-1]
            assert held["position"] == ("long" if tr["side"] > 0 else "short")
            worst = df["low"].iloc[i] if tr["side"] > 0 else df["high"].iloc[i]
            assert held["liq_distance_worst_pct"] == pytest.approx(
                tr["side"] * (worst - tr["liquidation_price"]) / worst * 100)
        else:
            assert held["position"] == "flat" and held["pnl"] == pytest.approx(0.0)
    lines = move_lines(moves)
    assert lines[0].startswith("Biggest moves: 2020-03-12 -39.5%") and len(lines) == 3
    assert "2026-02-05 -14.0% (6.5 sigma, volume 5.1x)" in lines[0]


@pytest.mark.shared_data
def test_story_is_saved_and_shown_first_in_the_report(job, tmp_path):
    _, results = job
    loaded = BacktestResult.load(results[0].save(tmp_path / "r"))
    assert loaded.story == json.loads(json.dumps(results[0].story))
    manifest = json.loads((tmp_path / "r" / "results.json").read_text())
    assert manifest["story"]["biggest_moves"][0]["date"].startswith("2020-03-12")
    html = render_html(results, tmp_path / "report.html").read_text(encoding="utf-8")
    cards = re.findall(r'<section id="([^"]+)" class="card[ "]', html)
    assert cards[:2] == ["market-now", "biggest-moves"]  # the page's first card: market now
    row = re.search(r'<tr class="move" data-date="2026-02-05T00:00:00\+00:00" '
                    r'data-zoom-from="([^"]+)" data-zoom-to="([^"]+)"', html)
    assert row and row.groups() == ("2026-01-06T00:00:00+00:00", "2026-03-07T00:00:00+00:00")
    assert "Market now · 2026-07-03" in html


def test_market_now_keeps_the_latest_recent_flips_and_counts_them_all():
    """Minute data flips thousands of times a month: the story keeps the latest few (the
    results JSON and the report's cell stay small) and says how many there were."""
    as_of = pd.Timestamp("2026-03-31", tz="UTC")
    times = as_of - pd.to_timedelta(np.arange(40)[::-1] * 12, unit="h")  # 20 days of flips
    events = pd.DataFrame({"time": times, "kind": ["support_to_resistance", "retest"] * 20,
                           "level_low": np.arange(40.0), "level_high": np.arange(40.0) + 1})
    now = market_now({"as_of": as_of.isoformat(), "last": 100.0}, events)
    assert now["recent_flip_count"] == 20
    assert len(now["recent_flips"]) == RECENT_FLIPS_SHOWN == 10
    assert [f["level_low"] for f in now["recent_flips"]] == [float(v) for v in range(20, 40, 2)]
    cell = render("cards/market_now.html", now=now)
    assert "the latest 10 of 20 in the last 30 days: " in cell
    few = market_now({"as_of": as_of.isoformat(), "last": 100.0}, events.iloc[-6:])
    assert few["recent_flip_count"] == 3 and len(few["recent_flips"]) == 3
    assert "the latest" not in render("cards/market_now.html", now=few)
    many = {**now, "recent_flip_count": 3343}  # minute data: the count reads like a number
    assert "the latest 10 of 3,343 in the last 30 days: " in render("cards/market_now.html",
                                                                     now=many)


def test_market_now_saved_before_the_count_renders_every_flip_it_holds():
    # results saved before recent_flip_count existed: the card lists what the story holds
    as_of = pd.Timestamp("2026-03-31", tz="UTC")
    events = pd.DataFrame({"time": as_of - pd.to_timedelta(np.arange(12)[::-1], unit="D"),
                           "kind": "resistance_to_support", "level_low": np.arange(12.0),
                           "level_high": np.arange(12.0) + 1})
    now = market_now({"as_of": as_of.isoformat(), "last": 100.0}, events)
    now.pop("recent_flip_count")
    cell = render("cards/market_now.html", now=now)
    assert "the latest" not in cell
    assert cell.count("resistance to support") == 10 + 3  # the cell, and the last 3 in words
