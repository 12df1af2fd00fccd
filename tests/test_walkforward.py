"""Walk-forward: windows, selection on the training window only, out-of-sample stitching,
and causality of the whole procedure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests.config import BacktestConfig
from backtests.tuning.sweep import run_sweep
from backtests.tuning.walkforward import WalkForwardResult, make_windows, walk_forward
from tests.test_sweep import RsiRule

SPACE = {"period": [7, 14], "oversold": [25.0, 35.0], "overbought": [65.0, 75.0]}


def _index(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC", name="timestamp")


def test_rolling_and_anchored_windows_by_bars() -> None:
    idx = _index(100)
    assert make_windows(idx, 40, 20) == [(0, 40, 40, 60), (20, 60, 60, 80), (40, 80, 80, 100)]
    assert make_windows(idx, 40, 25) == [(0, 40, 40, 65), (25, 65, 65, 90), (50, 90, 90, 100)]
    assert make_windows(idx, 40, 20, anchored=True) == [(0, 40, 40, 60), (0, 60, 60, 80),
                                                        (0, 80, 80, 100)]
    assert make_windows(idx, 40, 30, step=10)[:2] == [(0, 40, 40, 70), (10, 50, 50, 80)]


def test_windows_by_time_follow_the_calendar_and_gaps() -> None:
    idx = _index(400).delete(range(100, 110))  # a 10-day hole
    wins = make_windows(idx, "90D", "30D")
    tr0, tr1, te0, te1 = wins[0]
    assert (tr0, tr1) == (0, 90) and idx[te1] - idx[te0] == pd.Timedelta("30D")
    assert te1 - te0 == 20  # 30 calendar days, 10 of them missing
    assert all(idx[b[3] - 1] - idx[b[2]] < pd.Timedelta("30D") for b in wins[1:-1])


@pytest.mark.parametrize(("train", "test", "msg"), [
    (1, 10, "at least 2 bars"), ("soon", 10, "neither a number"), (99, 10, "no walk-forward"),
    ("-5D", 10, "positive"),
])
def test_window_errors(train, test, msg) -> None:
    with pytest.raises(ValueError, match=msg):
        make_windows(_index(100), train, test)


@pytest.mark.shared_data
def test_walk_forward_selects_on_train_and_trades_only_in_test(btc_daily: pd.DataFrame,
                                                              tmp_path) -> None:
    cfg = BacktestConfig()
    wf = walk_forward(btc_daily, RsiRule, SPACE, train="730D", test="365D", config=cfg,
                      executor="serial")
    wins = make_windows(btc_daily.index, "730D", "365D")
    assert len(wf.windows) == len(wins) >= 5
    # Each window's parameters are the best of a sweep that sees only its training window.
    for (tr0, tr1, _, _), params in list(zip(wins, wf.params_by_window, strict=True))[:3]:
        sw = run_sweep(btc_daily, RsiRule, SPACE, cfg, executor="serial", start=tr0, end=tr1,
                       top=0)
        assert sw.best == params
    # Trades live inside their test window (entry on/after its first bar, exit by its last).
    for _, t in wf.oos_trades.iterrows():
        _, _, te0, te1 = wins[int(t["window"])]
        assert te0 <= t["entry_bar"] <= t["exit_bar"] <= te1 - 1
    # The stitched equity chains the windows' returns.
    growth = np.prod(1 + wf.windows["oos_total_return_pct"].to_numpy() / 100)
    assert wf.oos_equity.iloc[-1] == pytest.approx(cfg.cash * growth, rel=1e-9)
    assert wf.oos_equity.index[0] == btc_daily.index[wins[0][2] - 1]
    assert wf.oos_equity.index[-1] == btc_daily.index[-1]
    assert list(wf.comparison.columns) == ["in_sample", "out_of_sample", "stitched_oos"]
    assert wf.comparison.loc["n_trades", "stitched_oos"] == len(wf.oos_trades)
    assert wf.windows["pbo"].between(0, 1).all() and wf.windows["dsr"].between(0, 1).all()
    back = WalkForwardResult.load(wf.save(tmp_path / "wf"))
    pd.testing.assert_frame_equal(back.windows, wf.windows)
    pd.testing.assert_series_equal(back.oos_equity, wf.oos_equity)

    # Causal: cutting the data after window 2's test leaves windows 0-2 exactly as they were.
    cut = wins[2][3]
    short = walk_forward(btc_daily.iloc[:cut], RsiRule, SPACE, train="730D", test="365D",
                         config=cfg, executor="serial")
    cols = [c for c in wf.windows.columns if c not in ("pbo",)]  # PBO blocks depend on T only
    pd.testing.assert_frame_equal(short.windows[cols].iloc[:3], wf.windows[cols].iloc[:3])


def test_walk_forward_on_hourly_bars_with_a_gap_annualises_with_hours() -> None:
    # Hourly bars with one missing hour early on and no timeframe attribute: pandas' frequency
    # inference gives up (None) on such an index, which once made walk-forward annualise the
    # stitched curve as daily bars (Sharpe too small by sqrt(24)).
    rng = np.random.default_rng(5)
    n = 1200
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="timestamp",
                        unit="ns")
    close = 40_000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    df = pd.DataFrame({"open": np.r_[close[0], close[:-1]], "close": close,
                       "high": close * 1.004, "low": close * 0.996, "volume": 1.0}, index=idx)
    df["high"] = df[["open", "close", "high"]].max(axis=1)
    df["low"] = df[["open", "close", "low"]].min(axis=1)
    df = df.drop(idx[10])
    df.attrs = {}
    assert pd.infer_freq(df.index[:50]) is None
    wf = walk_forward(df, RsiRule, {"period": [7, 14], "oversold": [30.0, 40.0],
                                    "overbought": [60.0]},
                      train=400, test=200, executor="serial")
    eq = wf.oos_equity
    r = (eq / eq.shift(1) - 1).dropna()
    assert r.std() > 0, "the test needs trades out of sample"
    expected = r.mean() / r.std() * np.sqrt(24 * 365)  # hours per year
    assert wf.comparison.loc["sharpe", "stitched_oos"] == pytest.approx(expected, rel=1e-9)


def test_each_test_window_is_simulated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import backtests.tuning.evaluate as evaluate
    from tests.test_sweep import _toy_frame

    runs = []
    kernel = evaluate.simulate_nb

    def counted(inp):  # type: ignore[no-untyped-def]
        runs.append(len(inp.entry))
        return kernel(inp)

    together = evaluate._simulate_sets  # a chunk's sets simulated in one compiled call

    def counted_sets(template, entries, *args):  # type: ignore[no-untyped-def]
        runs.extend([entries.shape[1]] * entries.shape[0])
        return together(template, entries, *args)

    monkeypatch.setattr(evaluate, "simulate_nb", counted)
    monkeypatch.setattr(evaluate, "_simulate_sets", counted_sets)
    wf = walk_forward(_toy_frame(), RsiRule, SPACE, train=120, test=60, executor="serial")
    n_win, n_sets = len(wf.windows), 8
    # Per window: one run per parameter set on the training window, one on the test window
    # (its metrics and its trades come from the same run).
    assert n_win >= 2 and len(runs) == n_win * (n_sets + 1)
    assert wf.windows["oos_n_trades"].sum() == len(wf.oos_trades)
