"""Levels that matter: consolidation, significance scores, the major set, weekly swing levels,
target search, and truncation (look-ahead) tests on real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data import resample
from indicators.keylevels import (
    KEY_LEVEL_COLUMNS,
    SCORE_RULES,
    key_levels,
    level_history,
    level_targets,
    next_level,
    weekly_swing_levels,
    zone_log,
)
from indicators.levels import LevelParams, causal_atr, support_resistance
from tests.lookahead import assert_causal, ohlc_frame


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    from tests.conftest import real

    return real("1d_binance")


@pytest.mark.shared_data
def test_consolidated_zones_are_fewer_narrow_and_keep_every_touch(daily):
    at = 2500
    raw = support_resistance(daily, at=at).table
    z = key_levels(daily, at=at)
    assert list(z.columns[: len(KEY_LEVEL_COLUMNS)]) == list(KEY_LEVEL_COLUMNS)
    assert 0 < len(z) < len(raw)
    assert z["touches"].sum() == raw["touches"].sum()  # merging never drops a touch
    assert z["zones"].sum() == len(raw)
    assert (z["centre"].diff().dropna() > 0).all()
    # a merged zone is never wider than max_width_atr x ATR (scaled to its price)
    p = LevelParams()
    h, lo, c = (daily[k].to_numpy() for k in ("high", "low", "close"))
    atr_pct = causal_atr(h, lo, c, p.atr_period)[at] / c[at]
    merged = z[z["zones"] > 1]
    assert len(merged) > 0
    width = (merged["high"] - merged["low"]) / merged["centre"]
    assert (width <= p.max_width_atr * atr_pct * 1.25).all()  # centre vs member price: slack
    # neighbours left apart are not adjacent (or merging them would break the width cap)
    gap = z["low"].to_numpy()[1:] - z["high"].to_numpy()[:-1]
    span = z["high"].to_numpy()[1:] - z["low"].to_numpy()[:-1]
    allowed = p.max_width_atr * atr_pct * z["centre"].to_numpy()[:-1]
    assert ((gap > 0) | (span > allowed * 0.9)).all()


@pytest.mark.shared_data
def test_scores_follow_the_documented_rules(daily):
    p = LevelParams()
    h = level_history(daily, np.arange(1500, len(daily), 50))
    r = SCORE_RULES
    expect = (np.minimum(h["touches"] * r["touch"], r["max_touch_points"])
              + r["age"] * ((h["last_touch_bar"] - h["first_touch_bar"]) >= p.age_bars)
              + r["volume"] * (h["rel_volume"] >= p.heavy_volume)
              + r["wema"] * h["confluence"] + r["round"] * h["round_number"]
              + r["htf"] * h["htf"])
    np.testing.assert_allclose(h["score"], expect.astype(float))
    assert (h["major"] == (h["score"] >= p.major_score)).all()
    # confluence: the EMA within confluence_pct % of the band
    gap = np.maximum(np.maximum(h["low"] - h["wema"], h["wema"] - h["high"]), 0)
    assert (h["confluence"] == (gap <= p.confluence_pct / 100 * h["wema"])).all()
    # round numbers: a multiple of the centre's power of ten inside the band
    step = 10.0 ** np.floor(np.log10(h["centre"]))
    assert (h["round_number"] == (np.floor(h["high"] / step) * step >= h["low"])).all()
    # the major set is a real subset: neither empty nor everything
    share = h.groupby("bar")["major"].mean()
    assert 0.05 < share.median() < 0.6
    # every evidence kind occurs
    assert h["confluence"].any() and h["htf"].any() and h["round_number"].any()


@pytest.mark.shared_data
def test_weekly_swing_levels_are_stamped_after_their_weeks(daily):
    w = weekly_swing_levels(daily, bars=4)
    assert len(w) > 20 and set(w["kind"]) == {"high", "low"}
    weekly = resample(daily, "1w")
    for _, row in w.iloc[::7].iterrows():
        known_time = daily.index[row["known_bar"]]
        col = row["kind"]
        # the pivot week is at least 4 completed weeks before the bar that knows it
        weeks = weekly[weekly[col] == row["price"]]
        assert len(weeks) >= 1
        pivot_week = weeks.index[0]
        assert known_time + pd.Timedelta(days=1) >= pivot_week + pd.Timedelta(weeks=5)
    # weekly or monthly bars have no higher timeframe here
    assert weekly_swing_levels(resample(daily, "1w")).empty


@pytest.mark.shared_data
def test_level_history_is_causal(daily):
    def table(d: pd.DataFrame) -> pd.DataFrame:
        return level_history(d, np.arange(len(d)))

    assert assert_causal(table, daily.iloc[1200:], cut_points=6, event_time="time") >= 6


def test_level_history_is_causal_on_random_paths():
    df = ohlc_frame(600, "1d", seed=5, volatility=0.04)
    assert assert_causal(lambda d: level_history(d, np.arange(len(d)), weekly_bars=2), df,
                         cut_points=6, event_time="time") >= 6


def test_next_level_picks_the_nearest_qualifying_zone():
    hist = pd.DataFrame({
        "bar": [3, 3, 3, 3, 4], "centre": [80.0, 90.0, 110.0, 130.0, 95.0],
        "low": [78.0, 89.0, 108.0, 128.0, 94.0], "high": [82.0, 91.0, 112.0, 132.0, 96.0],
        "score": [8.0, 3.0, 9.0, 7.0, 9.0], "confluence": [True, False, False, False, False],
        "htf": [False, False, True, False, False], "round_number": [False] * 5,
        "flip": ["resistance_to_support", None, "support_to_resistance", None, None],
    })
    q = next_level(hist, np.array([3, 3, 3, 3]), np.array([100.0, 100.0, 100.0, 100.0]),
                   np.array([-1, 1, -1, 1]), np.array([5.0, 5.0, 30.0, 5.0]), 7.0)
    # short: 90 scores 3 (not major) -> 80's near edge 82; long: 110's near edge 108
    assert q["level"].iloc[0] == 82.0 and bool(q["confluence"].iloc[0])
    assert q["level"].iloc[1] == 108.0 and bool(q["htf"].iloc[1])
    assert np.isnan(q["level"].iloc[2])  # nothing 30 below
    cen = next_level(hist, np.array([3]), np.array([100.0]), np.array([1]), np.array([9.0]),
                     7.0, at="centre")
    assert cen["level"].iloc[0] == 110.0
    flipped = next_level(hist, np.array([3]), np.array([100.0]), np.array([1]),
                         np.array([5.0]), -np.inf, flip="support_to_resistance")
    assert flipped["level"].iloc[0] == 108.0
    with pytest.raises(ValueError, match="edge"):
        next_level(hist, np.array([3]), np.array([1.0]), np.array([1]), np.array([1.0]), 0,
                   at="middle")


@pytest.mark.shared_data
def test_level_history_refuses_a_snapshot_beyond_its_row_limit(daily, monkeypatch):
    """Long minute data asked for at many bars would need gigabytes of zone rows (~67M rows at
    1M one-minute bars): a clear error naming the bar, not the process killed for memory."""
    import indicators.keylevels as kl
    from data.errors import DataError
    from strategies import Breakdown

    every = np.ones(len(daily), dtype=bool)
    full = level_history(daily, every, params=LevelParams())
    limit = 5_000  # engine rows (zones before consolidation); the whole file needs far more
    monkeypatch.setattr(kl, "SNAPSHOT_ROWS_LIMIT", limit)
    with pytest.raises(DataError, match=rf"more than {limit:,} zone rows by bar ([\d,]+) of "
                                        rf"{len(daily):,}") as err:
        level_history(daily, every, params=LevelParams())
    over = int(err.value.what.rsplit("by bar ", 1)[1].split(" of")[0].replace(",", ""))
    assert 0 < over < len(daily) - 1
    assert err.value.timestamp == daily.index[over]
    assert "level_targets" in err.value.hint and "--timeframe 1h" in err.value.hint
    # the bar named is the first that did not fit: the bars before it fit under the same limit,
    # and give the same rows as without a limit
    before = np.flatnonzero(every)[:over]
    pd.testing.assert_frame_equal(level_history(daily, before, params=LevelParams()),
                                  full[full["bar"] < over].reset_index(drop=True))
    with pytest.raises(DataError):
        level_history(daily, np.flatnonzero(every)[: over + 1], params=LevelParams())
    # the strategies' level targets never make these rows: unaffected by the limit
    unlimited = Breakdown().signals(daily)
    monkeypatch.setattr(kl, "SNAPSHOT_ROWS_LIMIT", 10)
    limited = Breakdown().signals(daily)
    np.testing.assert_array_equal(limited.entry, unlimited.entry)
    np.testing.assert_array_equal(limited.target, unlimited.target)


def _target_queries(df: pd.DataFrame, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """``n`` random target queries on ``df``: bars (with repeats, unsorted), prices near the
    close, sides and minimum distances (some NaN, some 0)."""
    rng = np.random.default_rng(seed)
    bar = rng.integers(0, len(df), n)
    close = df["close"].to_numpy()[bar]
    price = close * np.exp(rng.normal(0.0, 0.03, n))
    side = rng.choice([-1, 1], n)
    dist = close * rng.choice([0.0, 0.005, 0.02, 0.08], n)
    dist[rng.random(n) < 0.02] = np.nan
    return bar, price, side, dist


def _same_pick(got: pd.DataFrame, want: pd.DataFrame) -> None:
    # next_level leaves every column NaN when no zone qualifies anywhere; level_targets keeps the
    # dtypes (False, None)
    assert list(got.columns) == list(want.columns)
    for c in ("level", "centre", "low", "high", "score"):
        np.testing.assert_array_equal(got[c].to_numpy(), want[c].to_numpy(dtype=float), c)
    for c in ("confluence", "htf", "round_number"):
        np.testing.assert_array_equal(got[c].to_numpy(dtype=bool),
                                      want[c].astype(object).fillna(False).to_numpy(dtype=bool),
                                      c)
    assert [x if isinstance(x, str) else None for x in got["flip"]] == \
        [x if isinstance(x, str) else None for x in want["flip"]]


@pytest.mark.parametrize("case", ["1d_binance", "1d_bitstamp", "seeded_1m"])
def test_level_targets_equal_next_level_on_the_level_history(case):
    """The strategies' targets come from the zone log without materialising the history: the
    same picks, bit for bit, as next_level on level_history, for every kind of query."""
    from tests.conftest import real

    df = (ohlc_frame(30_000, "1m", seed=7, volatility=0.002) if case == "seeded_1m"
          else real(case))
    bar, price, side, dist = _target_queries(df, 3_000, seed=len(case))
    hist = level_history(df, bar)
    log = zone_log(df)
    major = LevelParams().major_score
    picked = 0
    for min_score, at, flip in ((major, "edge", None), (major, "centre", None),
                                (-np.inf, "edge", "support_to_resistance"),
                                (-np.inf, "centre", "resistance_to_support"),
                                (3.0, "edge", None)):
        want = next_level(hist, bar, price, side, dist, min_score, at=at, flip=flip)
        got = level_targets(log, bar, price, side, dist, min_score, at=at, flip=flip)
        _same_pick(got, want)
        picked += int(np.isfinite(got["level"]).sum())
    assert picked > 1_000  # the queries find levels, not only "none"
    with pytest.raises(ValueError, match="edge"):
        level_targets(log, bar, price, side, dist, major, at="middle")
    with pytest.raises(ValueError, match="flip"):
        level_targets(log, bar, price, side, dist, major, flip="sideways")
    with pytest.raises(ValueError, match="bar positions"):
        level_targets(log, np.array([len(df)]), price[:1], side[:1], dist[:1], major)


def test_level_targets_with_no_zones_yet_find_nothing():
    df = ohlc_frame(30, "1d", seed=1)
    got = level_targets(zone_log(df), np.array([0, 5]), df["close"].to_numpy()[[0, 5]],
                        np.array([1, -1]), np.array([0.0, 0.0]), -np.inf)
    assert got["level"].isna().all() and not got["htf"].any()
    assert got["flip"].isna().all()


@pytest.mark.shared_data
def test_level_targets_are_causal(daily):
    """A target picked at bar t depends on bars up to t only (the zone log is replayed up to t,
    the weekly levels known by t): truncation test on the daily file and a random path."""
    def targets(d: pd.DataFrame) -> pd.DataFrame:
        close = d["close"].to_numpy()
        n = len(d)
        out = {}
        for side in (-1, 1):
            for name, score, flip in (("major", LevelParams().major_score, None),
                                      ("flipped", -np.inf, "support_to_resistance"
                                       if side > 0 else "resistance_to_support")):
                f = level_targets(zone_log(d), np.arange(n), close, np.full(n, side),
                                  close * 0.01, score, flip=flip)
                out[f"{name}{side:+d}"] = f["level"].to_numpy()
                out[f"{name}{side:+d}_score"] = f["score"].to_numpy()
        return pd.DataFrame(out, index=d.index)

    assert assert_causal(targets, daily.iloc[900:], cut_points=8) >= 8
    assert assert_causal(targets, ohlc_frame(800, "4h", seed=9, volatility=0.02),
                         cut_points=8) >= 8


def test_zone_log_and_signal_frame_reuse_the_flips_engine_run():
    """The strategies run the S/R engine once: flips() hands its zone log to zone_log and its
    per-bar columns to signal_frame; both equal what they compute alone, and a result of other
    bars or parameters is refused."""
    from indicators.flips import flips
    from indicators.signals import signal_frame

    df = ohlc_frame(3_000, "1h", seed=4, volatility=0.01)
    p = LevelParams(left=3, right=3)
    res = flips(df, params=p)
    alone, reused = zone_log(df, params=p), zone_log(df, params=p, flip_result=res)
    for name in ("lf", "li", "atr", "close", "wema", "weekly_price", "weekly_known"):
        np.testing.assert_array_equal(getattr(reused, name), getattr(alone, name), name)
    assert reused.n_zones == alone.n_zones > 0
    pd.testing.assert_frame_equal(signal_frame(df, params=p, flip_result=res),
                                  signal_frame(df, params=p))
    with pytest.raises(ValueError, match="other zone/flip parameters"):
        zone_log(df, params=LevelParams(), flip_result=res)
    with pytest.raises(ValueError, match="other bars"):
        signal_frame(df.iloc[:-1], params=p, flip_result=res)
    # rank parameters do not enter the engine: a result is reusable across them
    zone_log(df, params=LevelParams(left=3, right=3, major_score=5.0), flip_result=res)
