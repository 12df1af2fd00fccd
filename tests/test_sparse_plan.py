"""Strategy plans held on the setup bars only (issue 17: the peak memory of a long run): the
rolling helpers worked out on a few bars equal pandas' rolling windows over all of them, a
:class:`~strategies.plan.Plan` expands to the per-bar values, and the strategies' per-bar
outputs are NaN/None/0 exactly off their entry bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from indicators.levels import LevelParams
from strategies import Breakdown, OversoldBounce
from strategies.bounce import ROLLING_SHIFTS, rolling_any, window_any, window_min
from strategies.plan import plan
from tests.lookahead import ohlc_frame


@pytest.mark.parametrize("window", [1, 2, 5, ROLLING_SHIFTS, ROLLING_SHIFTS + 1, 40, 500])
def test_rolling_any_equals_pandas_rolling_max(window):
    rng = np.random.default_rng(window)
    x = rng.random(300) < 0.05
    want = pd.Series(x).rolling(window, min_periods=1).max().to_numpy().astype(bool)
    np.testing.assert_array_equal(rolling_any(x, window), want)
    bars = np.sort(rng.choice(300, 40, replace=False))
    np.testing.assert_array_equal(window_any(x, bars, window), want[bars])


@pytest.mark.parametrize("window", [1, 3, 7])
def test_window_min_equals_pandas_rolling_min(window):
    rng = np.random.default_rng(7)
    x = rng.random(200)
    x[[0, 5, 6, 7, 8, 9, 10, 50]] = np.nan  # NaN skipped; all-NaN windows give NaN
    want = pd.Series(x).rolling(window, min_periods=1).min().to_numpy()
    bars = np.arange(200)
    np.testing.assert_array_equal(window_min(x, bars, window), want)


def test_plan_holds_setup_bars_and_expands_to_per_bar_values():
    df = ohlc_frame(400, "1h", seed=5)
    close = df["close"].to_numpy()
    bars = np.array([10, 50, 51, 300])
    stop = close[bars] * np.array([0.99, 0.98, np.nan, 1.01])  # a NaN stop: no valid risk
    p = Breakdown(target="r_multiple", target_r=2.0, min_rr=1.5).p
    pl = plan(df, bars, 1, stop, np.ones(len(df)), p, LevelParams())
    risk = np.abs(close[bars] - stop)
    np.testing.assert_array_equal(pl.bars, bars)
    np.testing.assert_array_equal(pl.risk, risk)
    want_target = close[bars] + 2.0 * risk
    valid = [0, 1, 3]
    np.testing.assert_array_equal(pl.target[valid], want_target[valid])
    assert np.isnan(pl.target[2]) and pl.why[2] is None and not pl.take[2]
    assert list(pl.why[valid]) == ["2R"] * 3
    np.testing.assert_array_equal(pl.taken, bars[pl.take])
    full = pl.per_bar("target", len(df))
    assert full.shape == (len(df),) and np.isnan(np.delete(full, bars)).all()
    np.testing.assert_array_equal(full[bars], pl.target)
    assert pl.per_bar("take", len(df), False).sum() == pl.take.sum()


@pytest.mark.parametrize("strategy", [Breakdown(), Breakdown(target="r_multiple"),
                                      OversoldBounce(), OversoldBounce(stop_on="close")])
def test_per_bar_outputs_are_empty_off_the_entry_bars(strategy):
    df = ohlc_frame(6_000, "15m", seed=3, volatility=0.004)
    sig = strategy.signals(df)
    on = sig.entry != 0
    assert on.sum() > 5
    rr = sig.indicators["planned_rr"].to_numpy()
    assert np.isnan(rr[~on]).all() and np.isfinite(rr[on]).all()
    assert np.isnan(sig.target[~on]).all() and np.isnan(sig.stop[~on]).all()
    assert all(t is None for t in sig.tags[~on]) and all(isinstance(t, str) for t in sig.tags[on])
    stops = sig.stop if sig.exits is None else sig.exits.close_stop
    assert np.isfinite(stops[on]).all()
