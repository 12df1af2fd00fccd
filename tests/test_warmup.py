"""History before ``start`` is warm-up: the trading window sees the full-history indicators.

For several start dates on the real Binance daily candles, on both engines: every indicator and
signal inside the window equals the full-history run's, bit for bit, and once both runs are flat
the trades are the same. Too little history before the window is reported per indicator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from backtests import BacktestConfig, run
from backtests.cli import main
from backtests.engines.fast import prepare, trading_window
from backtests.warmup import warmup_checks, warmup_report, window_start
from data.frame import DataError
from strategies.bounce import OversoldBounce
from strategies.breakdown import Breakdown
from tests.conftest import real_path

STARTS = ("2021-03-15", "2023-06-01", "2025-10-01")
SAME = ["entry_time", "exit_time", "side", "entry_price", "exit_price", "exit_reason",
        "liquidation_price", "tag"]


def _flat_at_close(trades: pd.DataFrame, index: pd.DatetimeIndex) -> np.ndarray:
    """Per bar of ``index``: no position open at the bar's close."""
    held = np.zeros(len(index), dtype=bool)
    for e, x in zip(trades["entry_time"], trades["exit_time"], strict=True):
        held |= (index >= e) & (index < x)
    return ~held


@pytest.fixture(scope="module")
def full_runs(request):
    from tests.conftest import real

    df = real("1d_binance")
    out = {}
    for engine in ("fast", "backtrader"):
        cfg = BacktestConfig(mode="both", engine=engine)
        for cls in (Breakdown, OversoldBounce):
            out[engine, cls.name] = run(df, cls(), cfg)
    return df, out


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("engine", ["fast", "backtrader"])
@pytest.mark.parametrize("start", STARTS)
def test_window_equals_full_history_run(full_runs, engine, start):
    df, full = full_runs
    cfg = BacktestConfig(mode="both", engine=engine)
    compared = 0
    for cls in (Breakdown, OversoldBounce):
        ref = full[engine, cls.name]
        res = run(df, cls(), cfg, start=start)
        first = pd.Timestamp(start, tz="UTC")
        assert res.prices.index[0] == first and res.prices.index[-1] == df.index[-1]
        # every indicator column inside the window, exactly (NaN where NaN)
        assert list(res.indicators.columns) == list(ref.indicators.columns)
        pd.testing.assert_frame_equal(res.indicators, ref.indicators.loc[first:],
                                      check_exact=True, check_freq=False)
        # positions open only inside the window: at the earliest on its second bar's open
        assert (res.trades["entry_time"] > first).all()
        # once both runs are flat at a close, they trade the same from the next bar on
        idx = res.prices.index
        both = _flat_at_close(res.trades, idx) & _flat_at_close(ref.trades, idx)
        t_flat = idx[np.argmax(both)]
        ours = res.trades[res.trades["entry_time"] > t_flat][SAME].reset_index(drop=True)
        theirs = ref.trades[ref.trades["entry_time"] > t_flat][SAME].reset_index(drop=True)
        # backtrader keeps a position's price as a size-weighted average, so with another
        # equity (another size) a price may differ in its last bit; the fast engine is exact.
        pd.testing.assert_frame_equal(ours, theirs, check_exact=engine == "fast", rtol=1e-13)
        compared += len(ours)
        assert res.data["warmup"]["window_start"] == first.isoformat()
        assert res.data["warmup"]["history_bars"] == df.index.get_loc(first)
    assert compared >= 3  # the comparison really covers trades


@pytest.mark.shared_data
@pytest.mark.parametrize("start", STARTS)
def test_signals_in_the_window_are_the_full_history_signals(btc_daily, start):
    cfg = BacktestConfig(mode="both")
    for strategy in (Breakdown(), OversoldBounce()):
        sig = prepare(btc_daily, strategy, cfg)
        pos = window_start(btc_daily, start)
        window, cut, record = trading_window(btc_daily, strategy, sig, start)
        assert len(window) == len(cut.entry) == len(btc_daily) - pos
        for name in ("entry", "exit", "stop", "target"):
            np.testing.assert_array_equal(getattr(cut, name), getattr(sig, name)[pos:])
        np.testing.assert_array_equal(cut.tags, sig.tags[pos:])
        # The old behaviour (computing on the cut data) is really different: no 200-week EMA.
        cut_only = strategy.indicators(btc_daily.iloc[pos:])
        assert cut_only["wema200"].notna().sum() < cut.indicators["wema200"].notna().sum()
        assert record["history_bars"] == pos


@pytest.mark.shared_data
def test_too_little_history_is_reported_per_indicator(btc_daily):
    early = warmup_report(btc_daily, window_start(btc_daily, "2018-03-01"), Breakdown())
    assert early["history_bars"] == 196 and early["history_from"] == "2017-08-17T00:00:00+00:00"
    short = {c["indicator"]: c for c in early["checks"] if c["short"]}
    assert set(short) == {"200-week EMA", "S/R zones and flips"}
    assert short["200-week EMA"]["had"] == 28 and short["200-week EMA"]["needs"] == 661
    assert short["200-week EMA"]["unit"] == "weeks"
    assert len(early["warnings"]) == 2
    assert early["warnings"][0].startswith(
        "too little history for the 200-week EMA: 28 weeks of history before the window, "
        "needs 661 (200 seed weeks + 461 until the seed weighs < 1 %)")
    # RSI(14): 14 seed bars + 63 until the seed weighs < 1 %: (13/14)**63 < 0.01 < (13/14)**62
    rsi = next(c for c in warmup_checks(btc_daily, 50, OversoldBounce()) if c.indicator
               == "RSI(14)")
    assert (rsi.needs, rsi.had, rsi.short) == (77, 50, True)
    assert (13 / 14) ** 63 < 0.01 < (13 / 14) ** 62
    # a strategy's own periods are used
    checks = warmup_checks(btc_daily, 10, Breakdown(pivot_bars=8, atr_period=30))
    names = [c.indicator for c in checks]
    assert "ATR(30)" in names and "pivots (8 bars each side)" in names
    assert next(c for c in checks if c.indicator.startswith("pivots")).needs == 17
    # no start: the first bars of any data are warm-up, nothing was cut, nothing to warn about
    assert warmup_report(btc_daily, 0, Breakdown())["warnings"] == []
    late = warmup_report(btc_daily, window_start(btc_daily, "2025-10-01"), Breakdown())
    assert [w.split(":")[0] for w in late["warnings"]] == [
        "too little history for the 200-week EMA"]


def test_window_start_errors(btc_daily):
    with pytest.raises(DataError, match="fewer than 2 bars from start 2026-07-03"):
        window_start(btc_daily, "2026-07-03")
    with pytest.raises(DataError, match="is not a date"):
        window_start(btc_daily, "soon")
    assert window_start(btc_daily, "2000-01-01") == 0


@pytest.mark.shared_data
def test_cli_start_keeps_history_and_warns(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BTC_BACKTEST_DATA", str(tmp_path / "store"))
    res = CliRunner().invoke(main, [
        "run", "--data", str(real_path("1d_binance")), "-s", "breakdown", "--start",
        "2018-03-01", "--end", "2019-12-31", "--no-png", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert ("trading 2018-03-01 to 2019-12-31 after 196 warm-up bars from 2017-08-17"
            in res.output)
    assert "WARNING: too little history for the 200-week EMA: 28 weeks" in res.output
    assert "WARNING: too little history for the S/R zones and flips: 196 bars" in res.output
    saved = (tmp_path / "r").rglob("results.json")
    text = "".join(p.read_text() for p in saved)
    assert "too little history for the 200-week EMA" in text
