"""The seed's plan, played as written on the shipped Binance daily data (February 2026).

The plan: *the loss of the ~$76k support -> short toward the $70k-68k support with 200-week-EMA
confluence; RSI deeply oversold at that confluence -> long toward the flipped resistance.*

The parameters are the ones a trader would set for that plan (also in the README), not the
defaults and not fitted to this event:

- breakdown: act on the first daily close below the support (``confirm_closes=0``; the close
  must still clear the zone by the default 0.3 ATR), stop just back inside the broken level
  (``stop_at="zone_near"``, ``stop_atr=0.25``: a close back in the zone means the break failed),
  target the next major support at least 1 ATR and 1 R away, reward:risk >= 1.5 (defaults);
- bounce: RSI deeply oversold (``require_deep=True``) near support or the 200-week EMA, stop
  under the support zone the bounce starts from (``stop_at="zone"``, ``stop_atr=0.25``),
  target the level that flipped from support to resistance (``target="flipped"``),
  reward:risk >= 1.5 (default).

Every check below reads the levels, flips, EMA and RSI from the data: nothing about the event
(prices, dates of the break) is written in the test except the window it looks at.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests import BacktestConfig, run
from indicators.flips import flips
from indicators.keylevels import level_history
from strategies import Breakdown, OversoldBounce

BREAKDOWN_PLAN = dict(confirm_closes=0, stop_at="zone_near", stop_atr=0.25)
BOUNCE_PLAN = dict(require_deep=True, stop_at="zone", stop_atr=0.25, target="flipped")
WINDOW = ("2026-01-25", "2026-02-28")

pytestmark = pytest.mark.shared_data


def _trades(df: pd.DataFrame, strategy) -> pd.DataFrame:
    t = run(df, strategy, BacktestConfig(mode="both")).trades
    start, end = (pd.Timestamp(x, tz="UTC") for x in WINDOW)
    return t[(t["entry_time"] >= start) & (t["entry_time"] <= end)]


def _zone_at(hist: pd.DataFrame, price: float, edge: str | None = None) -> pd.Series | None:
    """The consolidated zone whose band holds ``price`` (whose ``edge`` column equals it, when
    given: neighbouring zones can share a boundary)."""
    if edge is not None:
        inside = hist[np.isclose(hist[edge], price, rtol=0, atol=1e-6)]
    else:
        inside = hist[(hist["low"] <= price) & (price <= hist["high"])]
    return inside.iloc[0] if len(inside) == 1 else None


@pytest.fixture(scope="module")
def plan_trades():
    from tests.conftest import real

    df = real("1d_binance")
    short_s = Breakdown(**BREAKDOWN_PLAN)
    long_s = OversoldBounce(**BOUNCE_PLAN)
    return df, short_s, long_s, short_s.signals(df), long_s.signals(df)


def _lost_support(df, short_s, short_sig):
    """The shorts entered in the window on the loss of a support: (trade, signal bar, the flip
    event of the lost zone, the consolidated zone holding the target)."""
    shorts = _trades(df, short_s)
    shorts = shorts[shorts["side"] == -1]
    ev = flips(df, params=short_s.level_params()).events
    ev = ev[ev["kind"] == "support_to_resistance"]
    close = df["close"].to_numpy()
    found = []
    for _, t in shorts.iterrows():
        b = int(t["entry_bar"]) - 1  # the signal bar: its close decided the trade
        hist = level_history(df, [b], params=short_s.level_params())
        for _, z in ev[ev["bar"] == b].iterrows():
            held_before = close[b - 1] >= z["level_low"]       # the support held until then
            broken = close[b] < z["level_low"]                   # the close lost it
            if held_before and broken and short_sig.stop[b] > z["level_low"]:
                found.append((t, b, z, _zone_at(hist, short_sig.target[b], edge="high")))
    assert found, "no short entered on the loss of a support in the window"
    return found


def _plan_short(df, short_s, short_sig):
    """The short whose target is a support zone with 200-week-EMA confluence."""
    hits = [x for x in _lost_support(df, short_s, short_sig)
            if x[3] is not None and bool(x[3]["confluence"])]
    assert hits, "no short after a lost support aimed at a 200-week-EMA confluence zone"
    return hits[0]


def test_short_after_the_support_is_lost_toward_the_confluence(plan_trades):
    df, short_s, _long_s, short_sig, _ = plan_trades
    t, b, lost, zone = _plan_short(df, short_s, short_sig)
    # the lost support held through the start of the window (it was the support of the move)
    start = df.index.get_indexer([pd.Timestamp(WINDOW[0], tz="UTC")])[0]
    assert (df["close"].to_numpy()[start:b] >= lost["level_low"]).all()
    # the target sits in a major support zone with 200-week-EMA confluence, below the lost one
    assert bool(zone["confluence"]) and bool(zone["major"])
    assert zone["high"] < lost["level_low"]
    wema = zone["wema"]
    assert zone["low"] * 0.97 <= wema <= zone["high"] * 1.03
    # the plan met the reward:risk floor and the tag says why it was taken
    assert short_sig.indicators["planned_rr"].iloc[b] >= 1.5
    assert t["tag"].startswith("breakdown -> major support") and "200w EMA" in t["tag"]


def test_long_at_the_confluence_toward_the_flipped_level(plan_trades):
    df, short_s, long_s, short_sig, long_sig = plan_trades
    t_short, _b, lost, _zone = _plan_short(df, short_s, short_sig)
    longs = _trades(df, long_s)
    longs = longs[(longs["side"] == 1) & (longs["entry_bar"] > t_short["entry_bar"])]
    assert len(longs) >= 1, "no bounce long after the breakdown"
    t = longs.iloc[0]
    b = int(t["entry_bar"]) - 1
    f = long_sig.indicators
    # RSI deeply oversold within the setup window
    setup = slice(b - long_s.p.setup_bars + 1, b + 1)
    assert (f["rsi"].to_numpy()[setup] < long_s.p.deep).any()
    # entry at the confluence: the signal close lies in the zone that meets the 200-week EMA
    hist = level_history(df, [b], params=long_s.level_params())
    here = _zone_at(hist, float(df["close"].iloc[b]))
    assert here is not None and bool(here["confluence"])
    # target at the flipped level: a zone that flipped support -> resistance and holds the
    # support the short was taken on
    target = long_sig.target[b]
    zone = _zone_at(hist, target, edge="low")
    assert zone is not None and zone["flip"] == "support_to_resistance"
    assert zone["low"] <= lost["level"] <= zone["high"]
    assert long_sig.indicators["planned_rr"].iloc[b] >= 1.5
    assert "flipped resistance" in t["tag"] and t["tag"].startswith("deeply_oversold")
    # and the long came after the short was closed, from below the flipped level
    assert t["entry_price"] < zone["low"]
    assert not np.isnan(t["exit_price"])
