"""Look-ahead audit: flags deliberately leaky strategies at the right first bar, passes causal
ones (toy and the project's own)."""

from __future__ import annotations

import importlib.util
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import talib

from backtests.tuning.audit import AuditReport, audit, default_cuts
from data.frame import to_canonical
from strategies.base import Param, Signals, Strategy

HAS_ENGINE = importlib.util.find_spec("backtests.engines.fast") is not None
needs_engine = pytest.mark.skipif(not HAS_ENGINE, reason="backtests.engines.fast not there yet")


def random_candles(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 20_000 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, n))
    idx = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC", name="timestamp")
    idx.freq = None
    df = to_canonical(pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                                    "volume": rng.uniform(1, 10, n)}, index=idx))
    df.attrs.update(timeframe="1d", source="random")
    return df


class CentredMean(Strategy):
    """Leaky: long when the close is above a *centred* 5-bar mean (uses 2 future bars)."""

    name = "leaky_centred"
    params: ClassVar[dict[str, Param]] = {"window": Param(5, "bars", int, min=3)}

    def signals(self, df: pd.DataFrame) -> Signals:
        sma = df["close"].rolling(self.p.window, center=True).mean()
        up = (df["close"] > sma).to_numpy()
        entry = np.where(up, 1, 0).astype(np.int8)
        return Signals.from_entries(entry, exit=~up, indicators=pd.DataFrame({"csma": sma}))


def _week(idx: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return (idx - pd.to_timedelta(idx.day_of_week, unit="D")).normalize()


class WeeklyClose(Strategy):
    """Leaky unless ``shift``: long above the weekly close, mapped onto the days of its week."""

    name = "weekly_close"
    params: ClassVar[dict[str, Param]] = {
        "shift": Param(False, "use the previous, completed week", bool)}

    def signals(self, df: pd.DataFrame) -> Signals:
        week = _week(df.index)
        wclose = df["close"].groupby(week).last()
        if self.p.shift:
            wclose = wclose.shift(1)  # only completed weeks: causal
        level = pd.Series(wclose.reindex(week).to_numpy(), index=df.index)
        up = (df["close"] > level).to_numpy()
        return Signals.from_entries(np.where(up, 1, 0), exit=~up,
                                    indicators=pd.DataFrame({"weekly_close": level}))


class RsiBounce(Strategy):
    """Causal: RSI crosses back above oversold -> long; exit above overbought; 8% stop."""

    name = "rsi_bounce_toy"
    params: ClassVar[dict[str, Param]] = {
        "period": Param(14, "bars", int, min=2), "oversold": Param(30.0, "RSI"),
        "overbought": Param(70.0, "RSI")}

    def signals(self, df: pd.DataFrame) -> Signals:
        close = df["close"].to_numpy()
        rsi = talib.RSI(close, self.p.period)
        prev = np.r_[np.nan, rsi[:-1]]
        cross = (rsi > self.p.oversold) & (prev <= self.p.oversold)
        return Signals.from_entries(np.where(cross, 1, 0), exit=rsi > self.p.overbought,
                                    stop=close * 0.92, indicators=pd.DataFrame(
                                        {"rsi": rsi}, index=df.index))


def test_default_cuts() -> None:
    cuts = default_cuts(1000, 25)
    assert cuts[0] == 100 and cuts[-1] == 999 and len(cuts) == 25
    assert cuts == sorted(set(cuts))
    with pytest.raises(ValueError, match="at least 3 bars"):
        default_cuts(2)


def test_centred_window_flagged_two_bars_before_each_cut() -> None:
    df = random_candles()
    cuts = [100, 257, 400, 599]
    rep = audit(df, CentredMean(), cut_points=cuts, check_trades=False)
    assert not rep.passed
    ind = [f for f in rep.findings if f.kind == "indicator"]
    assert [f.cut for f in ind] == cuts
    # A centred 5-bar window reads 2 bars ahead: the first changed value is cut - 2.
    assert all(f.bar == f.cut - 2 for f in ind)
    # ...and 2 values change (1 for the last cut: the full run has NaN on the last 2 bars too).
    assert [f.n_changed for f in ind] == [2, 2, 2, 1]
    assert all(np.isnan(f.truncated) and np.isfinite(f.full) for f in ind)
    assert rep.first_leak.bar == 98
    assert "indicator 'csma' at bar 98" in rep.summary()


def test_unshifted_weekly_close_flagged_at_the_start_of_the_cut_week() -> None:
    df = random_candles()
    week = _week(df.index)
    rep = audit(df, WeeklyClose(), cut_points=40, check_trades=False)
    ind = {f.cut: f for f in rep.findings if f.kind == "indicator"}
    for cut in rep.cut_points:
        if week[cut] != week[cut - 1]:          # cut on a week boundary: nothing to see
            assert cut not in ind
        else:                                   # mid-week: the whole week so far changes
            first = int(np.argmax(week == week[cut - 1]))
            assert ind[cut].bar == first, cut
    assert ind, "some cuts must fall mid-week"


def test_shifted_weekly_close_and_rsi_pass() -> None:
    df = random_candles()
    for strat in (WeeklyClose(shift=True), RsiBounce(period=9, oversold=35)):
        rep = audit(df, strat, cut_points=30, check_trades=False)
        assert rep.passed, rep.summary()
        assert isinstance(rep, AuditReport) and "PASS" in rep.summary()
        assert "indicator:" in " ".join(rep.checked)


def test_bad_cut_points() -> None:
    with pytest.raises(ValueError, match="cut points must be in"):
        audit(random_candles(50), RsiBounce(), cut_points=[10, 50], check_trades=False)


@needs_engine
def test_trades_compared_and_leaky_trades_flagged() -> None:
    df = random_candles(400)
    ok = audit(df, RsiBounce(period=7, oversold=35, overbought=60), cut_points=15)
    assert ok.trades_checked and ok.passed, ok.summary()
    bad = audit(df, CentredMean(), cut_points=15)
    trades = [f for f in bad.findings if f.kind == "trade"]
    assert trades and all(f.bar <= f.cut - 1 for f in trades)


@needs_engine
@pytest.mark.shared_data
def test_project_strategies_pass_on_real_data(btc_daily: pd.DataFrame) -> None:
    from strategies.loader import builtin_strategies

    strategies = builtin_strategies()
    assert set(strategies) == {"breakdown", "oversold_bounce"}
    for cls in strategies.values():
        rep = audit(btc_daily, cls(), cut_points=12)
        assert rep.passed, rep.summary()


class LeakyKinds(Strategy):
    """Leaky in one column of each kind the audit compares by its own rule: a bool and an int
    column, a categorical and the tags (object), each reading the next bar's close."""

    name = "leaky_kinds"
    params: ClassVar[dict[str, Param]] = {}

    def signals(self, df: pd.DataFrame) -> Signals:
        close = df["close"].to_numpy()
        rises = np.r_[close[1:] > close[:-1], False]  # the next close: look-ahead
        state = pd.Categorical(np.where(rises, "up", "down"), categories=["down", "up"],
                               ordered=True)
        tags = np.where(rises, "up next", None).astype(object)
        entry = np.where(rises, 1, 0).astype(np.int8)
        return Signals.from_entries(entry, tags=tags, indicators=pd.DataFrame(
            {"rises": rises, "code": rises.astype(np.int64), "state": state}, index=df.index))


def test_leaks_in_bool_int_categorical_and_tag_columns_are_flagged() -> None:
    df = random_candles(300)
    cuts = [100, 200]
    rep = audit(df, LeakyKinds(), cut_points=cuts, check_trades=False)
    first = {(f.kind, f.field, f.cut): f for f in rep.findings}
    close = df["close"].to_numpy()
    for cut in cuts:
        # the last kept bar saw the next close in the full run, not in the truncated one
        rose = bool(close[cut] > close[cut - 1])
        for kind, name in (("signal", "entry"), ("indicator", "rises"), ("indicator", "code"),
                           ("indicator", "state")):
            if rose:
                assert first[(kind, name, cut)].bar == cut - 1, (name, cut)
            else:
                assert (kind, name, cut) not in first
        if rose:
            f = first[("signal", "tags", cut)]
            assert (f.bar, f.full, f.truncated) == (cut - 1, "up next", None)
            assert first[("indicator", "state", cut)].full == "up"
    assert any(bool(close[c] > close[c - 1]) for c in cuts)


class CountedRsi(RsiBounce):
    """:class:`RsiBounce` that appends the length of every frame it is run on to ``calls``."""

    def __init__(self, calls: list[int], **params: object) -> None:
        super().__init__(**params)
        self.calls = calls

    def signals(self, df: pd.DataFrame) -> Signals:
        self.calls.append(len(df))
        return super().signals(df)


def test_the_audit_compares_with_given_full_signals_and_recomputes_every_cut() -> None:
    df = random_candles(300)
    calls: list[int] = []

    strat = CountedRsi(calls)
    full = strat.signals(df)
    calls.clear()
    rep = audit(df, strat, cut_points=[100, 250], check_trades=False, full_signals=full)
    assert rep.passed and calls == [100, 250]
    # a full run that is not the strategy's own is caught, not trusted
    other = RsiBounce(period=9).signals(df)
    assert not audit(df, strat, cut_points=[100, 250], check_trades=False,
                     full_signals=other).passed


@needs_engine
def test_the_job_backtests_and_audits_the_same_full_signals(monkeypatch, tmp_path) -> None:
    from backtests.config import BacktestConfig
    from backtests.job import AUDIT_CUTS, run_job
    from data import cache

    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    df = random_candles(300)
    calls: list[int] = []

    (res,) = run_job(df, [CountedRsi(calls, period=7, oversold=35)], BacktestConfig())
    assert res.checks["lookahead"]["passed"] and not res.checks["lookahead"]["reused"]
    # once on the whole data (backtest and audit), once per cut on the truncated data
    assert calls.count(300) == 1
    assert sorted(calls[1:]) == sorted(res.checks["lookahead"]["cuts"])
    assert len(calls) == 1 + AUDIT_CUTS


def test_an_audit_of_several_strategies_runs_each_cuts_s_r_engine_once(request) -> None:
    from backtests.tuning.audit import audit_all
    from strategies.bounce import OversoldBounce
    from strategies.breakdown import Breakdown

    df = random_candles(500)
    strategies = [Breakdown(), OversoldBounce(), CentredMean()]
    alone = [audit(df, s, cut_points=[150, 300, 499]) for s in strategies]
    runs = request.getfixturevalue("engine_runs")  # counted from here on
    together = audit_all(df, strategies, cut_points=[150, 300, 499])
    # the full runs (computed here) once per strategy, then one engine run per cut for both
    assert sorted(runs) == [150, 300, 499, 500, 500]
    for a, b in zip(alone, together, strict=True):
        assert a.passed == b.passed and a.checked == b.checked
        assert a.to_frame().equals(b.to_frame())
    assert together[0].passed and together[1].passed and not together[2].passed
