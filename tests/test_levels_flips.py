"""Support/resistance zones and flips: hand-made paths with known answers, per-bar == snapshot,
truncation (look-ahead) on real and random data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from data.frame import DataError
from indicators.core import atr
from indicators.flips import BAR_COLUMNS, CONFIRMED_BY, EVENT_COLUMNS, EVENT_KIND, flips
from indicators.keylevels import zone_log
from indicators.levels import (
    SR_COLUMNS,
    causal_atr,
    relative_volume,
    sr_levels,
    support_resistance,
)
from indicators.pivots import pivots
from tests.lookahead import assert_causal, ohlc_frame, ohlc_paths

# Percent-based parameters make the hand-made answers easy to check by eye.
P = dict(left=2, right=2, tolerance_pct=1.0, band_pct=0.5)
F = dict(P, buffer_pct=0.5, confirm_closes=2, retest_bars=10)


def frame(high, low, close) -> pd.DataFrame:
    high, low, close = (np.asarray(x, dtype=float) for x in (high, low, close))
    open_ = np.clip(np.r_[close[0], close[:-1]], low, high)
    idx = pd.date_range("2024-01-01", periods=len(close), freq="D", tz="UTC", unit="ns",
                        name="timestamp")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                       "volume": np.full(len(close), 10.0)}, index=idx)
    df.attrs["timeframe"] = "1d"
    return df


# A double bottom at 100 / 100.2 (bars 2 and 7), broken by the close of bar 12, accepted by the
# closes of bars 13 and 14 (flip confirmed on bar 14), retested from below on bar 17 (high 99.8
# into the zone, close 98.5 back below).
#               0    1    2    3    4    5    6    7      8    9    10   11   12   13    14
DB_H = [110, 109, 106, 106, 108, 110, 109, 105, 104, 107, 108, 105, 102, 98.5, 98,
        97, 98, 99.8, 98.6, 96.5]
DB_L = [108, 105, 100, 102, 104, 106, 104, 100.2, 101, 103, 104, 101, 97, 96, 95,
        94, 94.5, 97, 95, 93]
DB_C = [109, 106, 102, 105, 107, 109, 105, 101, 103, 106, 105, 102, 98, 97, 96,
        95, 97.5, 98.5, 96, 94]


@pytest.fixture
def double_bottom() -> pd.DataFrame:
    return frame(DB_H, DB_L, DB_C)


def test_double_bottom_zone(double_bottom):
    lv = support_resistance(double_bottom, at=11, **P)
    sup = lv.nearest_support()
    assert sup["centre"] == pytest.approx(100.1)
    assert sup["touches"] == 2
    assert sup["origin"] == "pivot_low"
    assert sup["low"] == pytest.approx(100.0 - 0.005 * 100.2)  # pad from the latest member
    assert sup["high"] == pytest.approx(100.2 + 0.005 * 100.2)
    assert sup["first_touch"] == double_bottom.index[2]
    assert sup["last_touch"] == double_bottom.index[7]
    assert sup["role"] == "support" and sup["flip"] is None
    # the pivot high 110 (bar 5) is a resistance; 108 (bar 10) is only known at bar 12
    res = lv.above(n=5)
    assert res["centre"].tolist() == [110.0]
    assert (res["role"] == "resistance").all()
    res = support_resistance(double_bottom, at=12, **P).above(n=5)
    assert res["centre"].tolist() == pytest.approx([100.1, 108.0, 110.0])
    # the pivot low of bar 7 is only known at bar 9: at bar 8 the zone has one touch
    assert support_resistance(double_bottom, at=8, **P).nearest_support()["touches"] == 1


def test_double_bottom_breakdown_flip_and_retest(double_bottom):
    ev, bars = flips(double_bottom, **F)
    assert list(ev.columns) == list(EVENT_COLUMNS)
    assert ev["kind"].tolist() == ["support_to_resistance", "retest"]
    flip, retest = ev.iloc[0], ev.iloc[1]
    # recorded on the confirming bar (14), with the breaking close of bar 12
    assert flip["bar"] == 14 and flip["time"] == double_bottom.index[14]
    assert flip["break_bar"] == 12 and flip["break_close"] == 98.0
    assert flip["confirmed_by"] == "closes"
    assert flip["level"] == pytest.approx(100.1)
    assert flip["level_low"] == pytest.approx(100.0 - 0.501)
    assert retest["bar"] == 17 and retest["flip_kind"] == "support_to_resistance"
    assert retest["confirmed_by"] == "rejection" and retest["zone_id"] == flip["zone_id"]
    assert np.flatnonzero(bars["breakdown"]).tolist() == [14]
    assert not bars["breakout"].any()
    assert np.flatnonzero(bars["retest_rejected"]).tolist() == [17]
    # the flipped level is exposed from the confirming bar on, never before
    assert bars["flipped_resistance"].iloc[:14].isna().all()
    assert bars["flipped_resistance"].iloc[14:19].tolist() == pytest.approx([100.1] * 5)
    # the support became the resistance as soon as the close went under its centre
    assert bars["support"].iloc[11] == pytest.approx(100.1)
    assert bars["resistance"].iloc[12] == pytest.approx(100.1)
    # snapshots say the same
    assert support_resistance(double_bottom, at=13, **F).nearest_resistance()["flip"] is None
    z = support_resistance(double_bottom, at=14, **F).nearest_resistance()
    assert z["flip"] == "support_to_resistance" and z["flip_time"] == double_bottom.index[14]
    # the retest's pivot high (99.8, bar 17, known at 19) joins the flipped zone
    z = support_resistance(double_bottom, at=19, **F).nearest_resistance()
    assert z["touches"] == 3 and z["origin"] == "both"
    assert z["centre"] == pytest.approx((100 + 100.2 + 99.8) / 3)


def test_failed_retest_confirms_a_flip_early(double_bottom):
    # with 5 acceptance closes needed, the bar-17 retest (back into the zone, closing below it)
    # confirms the flip instead
    ev, _ = flips(double_bottom, **dict(F, confirm_closes=5))
    flip = ev[ev["kind"] == "support_to_resistance"].iloc[0]
    assert flip["bar"] == 17 and flip["confirmed_by"] == "failed_retest"
    assert flip["break_bar"] == 12


def test_reclaim_cancels_the_break(double_bottom):
    # close of bar 13 back inside the zone: the break of bar 12 is not accepted
    c = list(DB_C)
    h = list(DB_H)
    c[13], h[13] = 100.5, 100.8
    ev, bars = flips(frame(h, DB_L, c), **F)
    flips_ = ev[ev["kind"] == "support_to_resistance"]
    assert 12 not in flips_["break_bar"].tolist()
    # the close of bar 14 breaks it again; bars 15 and 16 accept that break
    assert flips_["break_bar"].tolist() == [14] and flips_["bar"].tolist() == [16]
    assert np.flatnonzero(bars["breakdown"]).tolist() == [16]


def test_confirm_closes_zero_flips_on_the_breaking_close(double_bottom):
    ev, _ = flips(double_bottom, **dict(F, confirm_closes=0))
    flip = ev[ev["kind"] == "support_to_resistance"].iloc[0]
    assert flip["bar"] == 12 and flip["break_bar"] == 12


def test_flips_far_below_an_earlier_price_regime_are_found():
    # The engine only scans zones whose centre can still be in reach of the close (bounded by
    # the widest zone seen, in price and relative to its centre). A first regime 1,000x higher
    # leaves zones 1,000x wider in price: later flips (a double bottom, a support broken after a
    # close inside its band, and their mirror images broken upwards: prices 20,000 / x) must
    # give the same events as on their own.
    paths = [(DB_H, DB_L, DB_C, F), (IB_H, IB_L, IB_C, dict(F, confirm_closes=0))]
    paths += [([20_000 / x for x in lo], [20_000 / x for x in h], [20_000 / x for x in c], kw)
              for h, lo, c, kw in paths]
    for h, lo, c, kw in paths:
        alone, _ = flips(frame(h, lo, c), **kw)
        assert (alone["kind"] != "retest").any()
        k = len(c)
        ev, _ = flips(frame([1000 * x for x in h] + h, [1000 * x for x in lo] + lo,
                            [1000 * x for x in c] + c), **kw)
        late = ev[ev["level"] < 1000].reset_index(drop=True)  # zones of the second regime
        assert late["bar"].tolist() == (alone["bar"] + k).tolist()
        assert late["break_bar"].tolist() == (alone["break_bar"] + k).tolist()
        cols = ["kind", "flip_kind", "confirmed_by", "level", "level_low", "level_high"]
        pd.testing.assert_frame_equal(late[cols], alone[cols])


def zigzag(peaks, troughs, step=2.0):
    """Closes rising to each peak then falling to each trough; high/low = close +- 1."""
    closes = [105.0]
    for pk, tr in zip(peaks, troughs, strict=True):
        while closes[-1] + step < pk:
            closes.append(closes[-1] + step)
        closes.append(pk)
        while closes[-1] - step > tr:
            closes.append(closes[-1] - step)
        closes.append(tr)
    closes += [tr + step, tr + 2 * step, tr + 3 * step]
    c = np.array(closes)
    return frame(c + 1, c - 1, c)


def test_range_has_one_support_one_resistance_and_no_flip():
    df = zigzag(peaks=[109, 108.8, 109.2], troughs=[101, 101.2, 100.8])
    lv = support_resistance(df, **P)
    assert len(lv) == 2
    sup, res = lv.nearest_support(), lv.nearest_resistance()
    assert sup["touches"] == 3 and res["touches"] == 3
    assert sup["centre"] == pytest.approx(np.mean([100, 100.2, 99.8]))
    assert res["centre"] == pytest.approx(np.mean([110, 109.8, 110.2]))
    assert sup["origin"] == "pivot_low" and res["origin"] == "pivot_high"
    ev, bars = flips(df, **F)
    assert ev.empty
    assert not bars[["breakdown", "breakout", "retest_rejected", "retest_held"]].any().any()


def test_trend_has_no_levels():
    c = 100 + np.arange(60) * 1.5
    df = frame(c + 1, c - 1, c)
    assert len(support_resistance(df, **P)) == 0
    ev, bars = flips(df, **F)
    assert ev.empty
    assert bars[list(SR_COLUMNS)].isna().all().all()


def test_round_levels_and_helpers(double_bottom):
    lv = support_resistance(double_bottom, at=11, round_levels=5, **P)
    rnd = lv.table[lv.table["origin"] == "round"]
    assert rnd["centre"].tolist() == [100.0, 105.0, 110.0]  # multiples of 5 inside 100..110
    # 100 is within the band of the two double-bottom pivots
    assert rnd.set_index("centre").loc[100.0, "touches"] == 2
    assert lv.below(102.5, 2)["centre"].tolist() == pytest.approx([100.1, 100.0])
    assert lv.above(106, 2)["centre"].tolist() == [110.0, 110.0]  # pivot zone and round level
    assert set(lv.above(106, 2)["origin"]) == {"pivot_high", "round"}
    assert lv.nearest_support(50) is None


def test_bad_input_is_reported(double_bottom):
    with pytest.raises(DataError, match="no low column"):
        sr_levels(double_bottom.drop(columns="low"))
    bad = double_bottom.copy()
    bad.iloc[5, bad.columns.get_loc("close")] = np.nan
    with pytest.raises(DataError, match="bar 5"):
        flips(bad)
    with pytest.raises(ValueError, match="tolerance_atr"):
        sr_levels(double_bottom, tolerance_atr=-1)
    with pytest.raises(ValueError, match="confirm_closes"):
        flips(double_bottom, confirm_closes=1.5)
    with pytest.raises(DataError, match="before the first bar"):
        support_resistance(double_bottom, at="2020-01-01")


# ---------- per-bar form == snapshot at many bars ----------


def _agree(df, cuts, **kw):
    sr = sr_levels(df, **kw)
    close = df["close"].to_numpy()
    for t in cuts:
        lv = support_resistance(df, at=int(t), **kw)
        for side, row in (("support", lv.nearest_support(close[t])),
                          ("resistance", lv.nearest_resistance(close[t]))):
            got = sr[[side, f"{side}_low", f"{side}_high"]].iloc[t].to_numpy()
            if row is None:
                assert np.isnan(got).all(), (t, side)
            else:
                np.testing.assert_array_equal(got, row[["centre", "low", "high"]].to_numpy(float))


@pytest.mark.shared_data
def test_per_bar_agrees_with_snapshot_real_daily(btc_daily):
    rng = np.random.default_rng(0)
    cuts = np.r_[rng.integers(15, len(btc_daily), 60), len(btc_daily) - 1]
    _agree(btc_daily, cuts)
    _agree(btc_daily, cuts[:20], min_touches=2, tolerance_pct=2.0)


def test_per_bar_agrees_with_snapshot_random():
    df = ohlc_frame(3000, "1h", seed=7)
    _agree(df, np.random.default_rng(1).integers(0, 3000, 40))


def test_flips_bars_extend_sr_levels(double_bottom):
    df = ohlc_frame(2000, "4h", seed=3)
    _, bars = flips(df)
    assert list(bars.columns) == list(BAR_COLUMNS)
    pd.testing.assert_frame_equal(bars[list(SR_COLUMNS)], sr_levels(df))


# ---------- look-ahead ----------


def _flip_bars(d):
    return flips(d).bars


def _flip_events(d):
    return flips(d).events


@pytest.mark.shared_data
def test_causal_real_daily(btc_daily):
    assert assert_causal(lambda d: sr_levels(d), btc_daily, cut_points=40) >= 30
    assert assert_causal(_flip_bars, btc_daily, cut_points=40) >= 30
    assert assert_causal(_flip_events, btc_daily, cut_points=40, event_time="time") >= 30
    # the full run really has events to compare
    ev = _flip_events(btc_daily)
    assert (ev["kind"] == "support_to_resistance").sum() > 10
    assert (ev["kind"] == "retest").sum() > 10


@pytest.mark.shared_data
def test_snapshot_causal_real_daily(btc_daily):
    # the snapshot at t from all data equals the snapshot on data ending at t
    for t in (400, 1500, 2600, len(btc_daily) - 2):
        a = support_resistance(btc_daily, at=btc_daily.index[t]).table
        b = support_resistance(btc_daily.iloc[: t + 1]).table
        pd.testing.assert_frame_equal(a, b)


@given(ohlc_paths(min_bars=2, max_bars=400))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_flips_causal_random(df):
    assert_causal(_flip_bars, df, cut_points=6)
    assert_causal(_flip_events, df, cut_points=6, event_time="time")


IB_H = [110, 109, 106, 106, 108, 110, 109, 105, 104, 107, 108, 103, 99.8, 99, 98]
IB_L = [108, 105, 100, 102, 104, 106, 104, 100.2, 101, 103, 104, 99.9, 97, 96, 95]
IB_C = [109, 106, 102, 105, 107, 109, 105, 101, 103, 106, 105, 100, 97.5, 97, 96]


def test_a_close_inside_the_band_still_holds_the_support():
    # zone around 100 (pivot lows at bars 2 and 7, band 99.5..100.7 with 0.5 % pads); bar 11
    # closes inside the band below its centre (support still holding), bar 12 closes below the
    # band minus the buffer: the break is counted from there (confirm_closes=0: flips on bar 12)
    df = frame(IB_H, IB_L, IB_C)
    z = support_resistance(df, at=11, **P).table
    row = z[(z["low"] <= 100.0) & (z["high"] >= 100.0)].iloc[0]
    assert row["low"] <= 100.0 < row["centre"]  # bar 11's close is inside, under the centre
    ev = flips(df, **dict(F, confirm_closes=0)).events
    s2r = ev[ev["kind"] == "support_to_resistance"]
    assert list(s2r["bar"]) == [12] and list(s2r["break_bar"]) == [12]


def test_level_parameters_are_declared_once():
    import inspect

    from indicators.levels import LevelParams

    sig = inspect.signature(flips)
    for name in LevelParams.names("zones", "flips"):
        assert sig.parameters[name].default == getattr(LevelParams(), name)
    assert "buffer_atr" not in inspect.signature(sr_levels).parameters  # zones only
    assert "buffer_atr (default 0.3)" in flips.__doc__
    with pytest.raises(TypeError, match="does not use level parameter"):
        sr_levels(frame(DB_H, DB_L, DB_C), buffer_atr=1.0)
    with pytest.raises(ValueError, match="left must be an integer >= 1"):
        sr_levels(frame(DB_H, DB_L, DB_C), left=0)
    with pytest.raises(ValueError, match="tolerance_pct must be None or a finite number"):
        LevelParams(tolerance_pct=-1)
    # params= and named values agree; named values override params=
    df = frame(DB_H, DB_L, DB_C)
    a = flips(df, **F).bars
    b = flips(df, params=LevelParams(**F)).bars
    pd.testing.assert_frame_equal(a, b)
    c = flips(df, params=LevelParams(**F), confirm_closes=0).events
    assert c.equals(flips(df, **dict(F, confirm_closes=0)).events)


# ---------- the array cores stay the numpy formulas they replaced ----------


def _relative_volume_numpy(v, bars):
    csum = np.concatenate([[0.0], np.cumsum(v)])
    k = np.arange(1, len(v) + 1)
    lo = np.maximum(k - bars, 0)
    mean = (csum[k] - csum[lo]) / (k - lo)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean > 0, v / mean, 0.0)


@pytest.mark.parametrize("bars", [1, 3, 50, 700])
def test_relative_volume_is_the_prefix_sum_formula_bit_for_bit(bars):
    rng = np.random.default_rng(bars)
    v = rng.lognormal(3.0, 2.0, 600)
    v[rng.random(600) < 0.2] = 0.0  # bars without volume, and runs of them
    v[100:180] = 0.0
    v[0] = -0.0
    got = relative_volume(v, bars)
    want = _relative_volume_numpy(v, bars)
    assert np.array_equal(got.view(np.int64), want.view(np.int64))
    with pytest.raises(ValueError, match="bars must be an integer >= 1"):
        relative_volume(v, 0)


def test_causal_atr_fills_the_warm_up_with_the_running_range_mean():
    df = ohlc_frame(300, "1h", seed=5)
    h, lo, c = (df[k].to_numpy() for k in ("high", "low", "close"))
    ta = atr(h, lo, c, 14)
    want = np.where(np.isnan(ta), np.cumsum(h - lo) / np.arange(1, 301), ta)
    got = causal_atr(h, lo, c, 14)
    assert np.array_equal(got, want) and not np.isnan(got).any()
    assert np.isnan(atr(h, lo, c, 14)[:14]).all()  # the shared TA-Lib result is not modified


# ---------- event names: categoricals that read like the strings ----------


def test_event_names_are_categoricals_that_compare_as_strings():
    ev = flips(ohlc_frame(3000, "1h", seed=11)).events
    assert len(ev) > 20
    assert ev["kind"].dtype == EVENT_KIND and ev["flip_kind"].dtype == EVENT_KIND
    assert ev["confirmed_by"].dtype == CONFIRMED_BY
    flips_only = ev[ev["kind"] != "retest"]
    assert set(flips_only["kind"].astype(str)) <= {"support_to_resistance",
                                                   "resistance_to_support"}
    assert (flips_only["kind"] == flips_only["flip_kind"]).all()
    assert set(ev.loc[ev["kind"] == "retest", "confirmed_by"].astype(str)) == {"rejection"}
    # plain pandas: strings out, and the frame stays usable where object columns were
    assert isinstance(ev["kind"].iloc[0], str)
    assert ev["kind"].astype(str).dtype != "category"
    assert ev["flip_kind"].fillna(ev["kind"]).equals(ev["flip_kind"])
    assert ev.groupby("kind", observed=True).size().sum() == len(ev)


def _ladder() -> tuple[list[float], list[float], list[float]]:
    """Highs, lows, closes of 20 supports stepping up 4 apart (one pivot low each)."""
    h, lo, c = [], [], []
    for i in range(20):
        base = 100 + 4 * i
        for off in (3, 2, 0, 2, 3):
            h.append(base + off + 1)
            lo.append(base + off)
            c.append(base + off + 0.5)
    return h, lo, c


def test_more_events_than_bars_outgrow_the_event_buffers():
    # A ladder of 20 supports, a crash through all of them (flipped on the breaking close), then
    # 150 bars that wick up through every flipped zone and close below: each retests them all,
    # so events outnumber bars (the engine's buffers hold one event per bar; the run that
    # outgrows them is repeated with room for all).
    h, lo, c = _ladder()
    top = h[-1]
    h += [61.0] * 3 + [top + 5.0] * 150
    lo += [59.0] * 153
    c += [60.0] * 153
    df = frame(h, lo, c)
    kw = dict(F, confirm_closes=0)
    ev = flips(df, **kw).events
    assert len(ev) > 10 * len(df)
    assert ev["bar"].is_monotonic_increasing
    per_bar = ev[ev["kind"] == "retest"].groupby("bar").size()
    assert per_bar.iloc[-100:].nunique() == 1 and per_bar.iloc[-1] >= 20
    assert assert_causal(lambda d: flips(d, **kw).events, df, cut_points=8,
                         event_time="time") >= 6


def test_a_zone_log_beyond_two_rows_per_pivot_is_complete_and_causal():
    # The ladder, then price swinging below and above all of it: every swing flips all 20 zones
    # (one log row each) but adds only two pivots, so the log outgrows its buffer (two rows per
    # pivot) and the engine run is repeated; cut runs (smaller logs) must agree row for row.
    h, lo, c = _ladder()
    top = h[-1]
    for _ in range(30):
        for v in (60.0, 60.0, top + 20, top + 20):
            h.append(v + 1)
            lo.append(v - 1)
            c.append(v)
    df = frame(h, lo, c)
    kw = dict(F, confirm_closes=0)
    full = zone_log(df, **kw)
    n_piv = int(pivots(df["high"], df["low"], kw["left"], kw["right"])[
        ["pivot_high", "pivot_low"]].notna().to_numpy().sum())
    assert len(full.li) > 2 * n_piv + 64
    for t in (60, 101, 150, len(df) - 2):
        cut = zone_log(df.iloc[: t + 1], **kw)
        upto = full.li[:, 0] <= t
        assert np.array_equal(cut.li, full.li[upto]) and np.array_equal(cut.lf, full.lf[upto])
    ev = flips(df, **kw).events
    assert len(ev) > len(df) + 64
    assert assert_causal(lambda d: flips(d, **kw).events, df, cut_points=6,
                         event_time="time") >= 5
