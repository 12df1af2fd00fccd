"""Metrics against independent references (empyrical-reloaded, quantstats) and hand computations."""

from __future__ import annotations

import json
import math

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
import quantstats.stats as qs

from backtests.metrics import (
    METRIC_KEYS,
    bar_returns,
    compute_metrics,
    drawdown_periods,
    exit_reason_stats,
    exposure,
    monthly_returns,
    periods_per_year,
    side_stats,
    tag_stats,
    trade_stats,
)
from backtests.persist import to_jsonable
from backtests.results import buy_and_hold, empty_trades, normalize_trades
from data.frame import DataError

REL = 1e-9

CONTRACT_KEYS = (
    "total_return_pct cagr_pct max_drawdown_pct max_drawdown_duration_days volatility_pct sharpe "
    "sortino calmar win_rate_pct profit_factor expectancy avg_win avg_loss avg_trade_pct "
    "best_trade_pct worst_trade_pct exposure_pct n_trades n_long n_short n_liquidations "
    "buy_hold_return_pct final_equity fees_paid funding_paid"
).split()


def _equity(values, start="2024-01-01", freq="1D") -> pd.Series:
    idx = pd.date_range(start, periods=len(values), freq=freq, tz="UTC", unit="ns")
    return pd.Series(np.asarray(values, dtype=float), index=idx, name="equity")


def _trades(rows: list[dict], **defaults: object) -> pd.DataFrame:
    base = {**defaults,
        "entry_time": pd.Timestamp("2024-01-01", tz="UTC"),
        "exit_time": pd.Timestamp("2024-01-02", tz="UTC"),
        "size": 0.1, "entry_price": 100.0, "exit_price": 100.0, "entry_fee": 0.0,
        "exit_fee": 0.0, "funding": 0.0, "leverage": 1.0, "liquidation_price": np.nan,
        "mae_pct": 0.0, "mfe_pct": 0.0, "tag": None, "side": 1, "exit_reason": "signal",
    }
    return normalize_trades(pd.DataFrame([{**base, **r} for r in rows]))


def _random_in_out_equity(df: pd.DataFrame, seed: int, cash: float = 10_000.0,
                          commission: float = 0.001) -> tuple[pd.Series, pd.DataFrame]:
    """A real-data equity curve of a random in/out sequence (long at open, out at open)."""
    rng = np.random.default_rng(seed)
    n = len(df)
    o, c = df["open"].to_numpy(), df["close"].to_numpy()
    eq = np.empty(n)
    eq[0] = cash
    cash_now, qty, entry_bar = cash, 0.0, -1
    rows = []
    for i in range(1, n):
        if qty == 0 and rng.random() < 0.05:  # enter at bar i's open
            qty = cash_now / (o[i] * (1 + commission))
            efee = qty * o[i] * commission
            cash_now -= qty * o[i] + efee
            entry_bar, entry_px = i, o[i]
        elif qty > 0 and rng.random() < 0.08:  # exit at bar i's open
            xfee = qty * o[i] * commission
            cash_now += qty * o[i] - xfee
            pnl = qty * (o[i] - entry_px) - efee - xfee
            rows.append({"entry_bar": entry_bar, "exit_bar": i, "entry_price": entry_px,
                         "exit_price": o[i], "size": qty, "entry_fee": efee, "exit_fee": xfee,
                         "pnl": pnl, "return_pct": 100 * pnl / (qty * entry_px + efee)})
            qty = 0.0
        eq[i] = cash_now + qty * c[i]
    if qty > 0:  # close at the last close, like the engines' "end" exit
        xfee = qty * c[-1] * commission
        pnl = qty * (c[-1] - entry_px) - efee - xfee
        rows.append({"entry_bar": entry_bar, "exit_bar": n - 1, "entry_price": entry_px,
                     "exit_price": c[-1], "size": qty, "entry_fee": efee, "exit_fee": xfee,
                     "pnl": pnl, "return_pct": 100 * pnl / (qty * entry_px + efee),
                     "exit_reason": "end"})
        eq[-1] = cash_now + qty * c[-1] - xfee
    return pd.Series(eq, index=df.index, name="equity"), _trades(rows)


def _references(r: pd.Series, ann: float) -> dict[str, list[float]]:
    """Independent values for our keys, from both libraries (fractions turned into %)."""
    return {
        "sharpe": [ep.sharpe_ratio(r, annualization=ann), qs.sharpe(r, periods=ann)],
        "sortino": [ep.sortino_ratio(r, annualization=ann), qs.sortino(r, periods=ann)],
        "volatility_pct": [100 * ep.annual_volatility(r, annualization=ann),
                           100 * qs.volatility(r, periods=ann)],
        "max_drawdown_pct": [100 * ep.max_drawdown(r), 100 * qs.max_drawdown(r)],
        "cagr_pct": [100 * ep.annual_return(r, annualization=ann),
                     100 * ep.cagr(r, annualization=ann), 100 * qs.cagr(r, periods=ann)],
        "calmar": [ep.calmar_ratio(r, annualization=ann), qs.calmar(r, periods=ann)],
        "cvar_95_pct": [100 * qs.conditional_value_at_risk(r, method="historical")],
        "total_return_pct": [100 * ep.cum_returns_final(r), 100 * qs.comp(r)],
    }


def _assert_matches(m: dict, refs: dict[str, list[float]]) -> None:
    for key, values in refs.items():
        for ref in values:
            assert m[key] == pytest.approx(ref, rel=REL), key


@pytest.mark.shared_data
def test_buy_and_hold_daily_matches_empyrical_and_quantstats(btc_daily):
    eq = buy_and_hold(btc_daily, 10_000.0, 0.001)
    m = compute_metrics(eq, empty_trades(), eq, "1d")
    r = eq.pct_change().dropna()
    _assert_matches(m, _references(r, 365))
    assert m["max_drawdown_pct"] < -75  # the 2018 and 2022 bear markets
    assert m["var_95_pct"] == pytest.approx(100 * np.quantile(r, 0.05), rel=REL)
    # quantstats' VaR is parametric (normal); ours is historical: they differ on fat tails.
    assert m["var_95_pct"] != pytest.approx(100 * qs.value_at_risk(r), rel=1e-3)


@pytest.mark.shared_data
def test_random_trade_sequence_on_bitstamp_matches_references(btc_daily_bitstamp):
    eq, trades = _random_in_out_equity(btc_daily_bitstamp, seed=7)
    assert len(trades) > 50
    m = compute_metrics(eq, trades, None, "1d", cash=10_000.0)
    r = bar_returns(eq)
    _assert_matches(m, _references(r, 365))
    assert m["n_trades"] == len(trades)
    # Trade PnL and the equity curve tell the same story.
    assert m["final_equity"] == pytest.approx(10_000 + trades["pnl"].sum(), rel=REL)
    assert m["fees_paid"] == pytest.approx(trades["entry_fee"].sum() + trades["exit_fee"].sum())
    assert 0 < m["exposure_pct"] < 100


@pytest.mark.shared_data
def test_hourly_gaps_cagr_uses_calendar_time(btc_hourly):
    eq = buy_and_hold(btc_hourly, 10_000.0, 0.0)
    m = compute_metrics(eq, empty_trades(), eq, "1h")
    r = eq.pct_change().dropna()
    assert m["sharpe"] == pytest.approx(ep.sharpe_ratio(r, annualization=8760), rel=REL)
    assert m["sortino"] == pytest.approx(qs.sortino(r, periods=8760), rel=REL)
    # 6 hours are missing: counting bars (empyrical) makes the span 6 h shorter than the clock.
    years = (eq.index[-1] - eq.index[0]) / pd.Timedelta(days=365)
    assert (len(r) + 6) / 8760 == pytest.approx(years, rel=1e-12)
    assert m["cagr_pct"] == pytest.approx(
        100 * ep.annual_return(r, annualization=len(r) / years), rel=REL)
    assert m["cagr_pct"] != pytest.approx(100 * ep.annual_return(r, annualization=8760), rel=1e-9)
    # best/worst *day* come from daily closes, not hourly bars.
    daily = eq.resample("1D").last().pct_change().dropna()
    assert m["best_day_pct"] == pytest.approx(100 * daily.max(), rel=REL)


def test_periods_per_year():
    assert periods_per_year("1d") == 365
    assert periods_per_year("1h") == 8760
    assert periods_per_year("4h") == 2190
    assert periods_per_year("1m") == 525_600
    assert periods_per_year("1w") == pytest.approx(365 / 7, rel=1e-15)
    assert periods_per_year("1M") == 12
    with pytest.raises(DataError):
        periods_per_year("7x")


def test_keys_and_hand_computed_drawdown():
    eq = _equity([100, 110, 99, 88, 110, 121, 120, 130, 104])
    m = compute_metrics(eq, empty_trades(), None, "1d")
    assert tuple(m) == METRIC_KEYS
    assert set(CONTRACT_KEYS) <= set(m)
    assert m["total_return_pct"] == pytest.approx(4.0)
    assert m["max_drawdown_pct"] == pytest.approx(-20.0)  # 130 -> 104
    # peak 110 on day 1, regained on day 4: 3 days; peak 130 on day 7 never regained: 1 day;
    # 121 -> 120 on days 5-6 regained day 7: 2 days.
    assert m["max_drawdown_duration_days"] == 3.0
    assert m["calmar"] == pytest.approx(m["cagr_pct"] / 20.0)
    assert math.isnan(m["buy_hold_return_pct"]) and math.isnan(m["profit_factor"])
    assert m["final_equity"] == 104.0 and m["years"] == pytest.approx(8 / 365)

    dp = drawdown_periods(eq, top=5)
    assert list(dp["depth_pct"]) == pytest.approx([-20.0, -20.0, 100 * (120 / 121 - 1)])
    first = dp.iloc[0]  # ties keep time order: 110 -> 88 first
    assert first["peak"] == eq.index[1] and first["valley"] == eq.index[3]
    assert first["recovery"] == eq.index[4] and bool(first["recovered"])
    last = dp.iloc[1]
    assert pd.isna(last["recovery"]) and not last["recovered"] and last["duration_days"] == 1
    assert str(dp["recovery"].dtype) == "datetime64[ns, UTC]"
    assert len(drawdown_periods(eq, top=1)) == 1
    assert drawdown_periods(_equity([1, 2, 3])).empty


def test_flat_and_rising_curves():
    flat = compute_metrics(_equity([100.0] * 5), empty_trades(), None, "1d")
    assert flat["total_return_pct"] == 0 and flat["max_drawdown_pct"] == 0
    assert math.isnan(flat["sharpe"]) and math.isnan(flat["sortino"])
    assert math.isnan(flat["calmar"]) and flat["max_drawdown_duration_days"] == 0
    up = compute_metrics(_equity([100, 101, 103, 104]), empty_trades(), None, "1d")
    assert up["sortino"] == math.inf  # no losing bar, as empyrical
    assert ep.sortino_ratio(bar_returns(_equity([100, 101, 103, 104]))) == math.inf


def test_hand_computed_trade_stats():
    trades = _trades([
        {"entry_bar": 1, "exit_bar": 3, "pnl": 100.0, "return_pct": 10.0, "entry_fee": 1.0,
         "exit_fee": 1.1, "tag": "rsi"},
        {"entry_bar": 4, "exit_bar": 5, "pnl": -50.0, "return_pct": -5.0, "side": -1,
         "exit_reason": "stop", "entry_fee": 1.0, "exit_fee": 0.9, "funding": 0.5},
        {"entry_bar": 6, "exit_bar": 9, "pnl": 30.0, "return_pct": 3.0, "exit_reason": "target",
         "tag": "rsi"},
        {"entry_bar": 9, "exit_bar": 10, "pnl": -20.0, "return_pct": -2.0, "side": -1,
         "exit_reason": "liquidation", "funding": -0.2, "leverage": 10.0},
        {"entry_bar": 11, "exit_bar": 12, "pnl": 0.0, "return_pct": 0.0, "exit_reason": "end"},
    ])
    s = trade_stats(trades)
    assert s["n_trades"] == 5 and s["n_long"] == 3 and s["n_short"] == 2
    assert s["win_rate_pct"] == pytest.approx(40.0)  # break-even trade is not a win
    assert s["profit_factor"] == pytest.approx(130 / 70)
    assert s["expectancy"] == pytest.approx(60 / 5)
    assert s["avg_win"] == pytest.approx(65.0) and s["avg_loss"] == pytest.approx(-35.0)
    assert s["payoff_ratio"] == pytest.approx(65 / 35)
    assert s["avg_trade_pct"] == pytest.approx(6 / 5)
    assert s["best_trade_pct"] == 10.0 and s["worst_trade_pct"] == -5.0
    assert s["n_liquidations"] == 1
    assert s["fees_paid"] == pytest.approx(4.0) and s["funding_paid"] == pytest.approx(0.3)
    assert s["avg_bars_held"] == pytest.approx((2 + 1 + 3 + 1 + 1) / 5)

    # Exposure over 13 bars: [1,3) signal exit at open; [4,5] stop; [6,9] target;
    # [9,10] liquidation (overlap at bar 9 counted once); [11,12] end.
    held = exposure(trades, 13)
    assert held.tolist() == [False, True, True, False, True, True, True, True, True, True,
                             True, True, True]
    m = compute_metrics(_equity(np.linspace(100, 160, 13)), trades, None, "1d")
    assert m["exposure_pct"] == pytest.approx(100 * 11 / 13)

    sides = side_stats(trades)
    assert list(sides.columns) == ["all", "long", "short"]
    assert sides.loc["n_trades", "long"] == 3 and sides.loc["net_pnl", "short"] == -70
    reasons = exit_reason_stats(trades)
    assert reasons.loc["liquidation", "trades"] == 1
    assert reasons.loc["signal", "win_rate_pct"] == 100.0
    assert reasons["share_pct"].sum() == pytest.approx(100.0)
    tags = tag_stats(trades)
    assert tags.loc["rsi", "pnl_total"] == 130.0 and tags["trades"].sum() == 5


def test_profit_factor_edges_are_json_safe():
    only_wins = _trades([{"entry_bar": 1, "exit_bar": 2, "pnl": 5.0, "return_pct": 1.0}])
    m = compute_metrics(_equity([100, 100, 105]), only_wins, None, "1d")
    assert m["profit_factor"] == math.inf and math.isnan(m["payoff_ratio"])
    text = json.dumps(to_jsonable(m), allow_nan=False)  # strict JSON, no Infinity literal
    assert '{"$float": "inf"}' in text
    none = trade_stats(empty_trades())
    assert none["n_trades"] == 0 and math.isnan(none["profit_factor"])
    assert math.isnan(none["win_rate_pct"]) and none["fees_paid"] == 0.0
    assert exit_reason_stats(empty_trades()).empty


def test_monthly_returns_hand_computed():
    idx = pd.DatetimeIndex(["2023-12-30", "2023-12-31", "2024-01-15", "2024-01-31",
                            "2024-02-29", "2024-04-01"], tz="UTC").as_unit("ns")
    eq = pd.Series([100.0, 110.0, 90.0, 99.0, 118.8, 59.4], index=idx)
    t = monthly_returns(eq)
    assert list(t.columns) == ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                               "Oct", "Nov", "Dec", "Year"]
    assert t.loc[2023, "Dec"] == pytest.approx(10.0)
    assert t.loc[2024, "Jan"] == pytest.approx(-10.0)
    assert t.loc[2024, "Feb"] == pytest.approx(20.0)
    assert math.isnan(t.loc[2024, "Mar"])
    assert t.loc[2024, "Apr"] == pytest.approx(-50.0)
    assert t.loc[2024, "Year"] == pytest.approx(100 * (59.4 / 110 - 1))
    assert monthly_returns(eq, cash=50.0).loc[2023, "Dec"] == pytest.approx(120.0)


def test_wiped_out_account_and_bad_input():
    eq = _equity([100, 50, 0, 0])
    m = compute_metrics(eq, empty_trades(), None, "1d")
    assert m["total_return_pct"] == -100 and m["cagr_pct"] == -100
    assert m["max_drawdown_pct"] == -100
    assert bar_returns(eq).tolist() == [-0.5, -1.0, 0.0]
    with pytest.raises(DataError, match="empty"):
        compute_metrics(_equity([]), empty_trades(), None, "1d")
    with pytest.raises(DataError, match="non-finite"):
        compute_metrics(_equity([1.0, np.nan]), empty_trades(), None, "1d")
    # the compiled pass checks every value (inf, -inf first, NaN on a minute curve by day) and
    # the error names the first bad bar
    for values, tf in (([1.0, 2.0, np.inf, 3.0], "1d"), ([-np.inf, 1.0], "1d"),
                       ([5.0] * 3000 + [np.nan] + [5.0] * 10, "1m")):
        eq_bad = _equity(values)
        if tf == "1m":
            eq_bad.index = pd.date_range("2024-01-01", periods=len(values), freq="1min",
                                         tz="UTC", unit="ns", name="timestamp")
        first = eq_bad.index[int(np.flatnonzero(~np.isfinite(values))[0])]
        with pytest.raises(DataError, match="non-finite") as err:
            compute_metrics(eq_bad, empty_trades(), None, tf)
        assert first.isoformat() in str(err.value), str(err.value)
    with pytest.raises(DataError, match="DatetimeIndex"):
        compute_metrics(pd.Series([1.0, 2.0]), empty_trades(), None, "1d")
    bad = _trades([{"entry_bar": 1, "exit_bar": 9, "pnl": 1.0, "return_pct": 1.0}])
    with pytest.raises(DataError, match="outside"):
        compute_metrics(_equity([1.0, 2.0, 3.0]), bad, None, "1d")


def test_buy_hold_return_and_cash():
    idx = pd.date_range("2024-01-01", periods=3, freq="1D", tz="UTC", unit="ns")
    df = pd.DataFrame({"open": [100.0, 110, 120], "high": [1.0] * 3, "low": [1.0] * 3,
                       "close": [105.0, 115, 125], "volume": [1.0] * 3}, index=idx)
    bench = buy_and_hold(df, 1000.0, 0.01)
    qty = 1000 / (100 * 1.01)
    assert bench.tolist() == pytest.approx([qty * 105, qty * 115, qty * 125 * 0.99], rel=1e-15)
    m = compute_metrics(_equity([1000.0, 1000, 1000]), empty_trades(), bench, "1d", cash=1000.0)
    assert m["buy_hold_return_pct"] == pytest.approx(100 * (qty * 125 * 0.99 / 1000 - 1))


def test_hand_computed_r_multiples():
    from backtests.metrics import r_distribution, r_multiples, r_stats

    # size 0.1 at 100: a stop 10 away risks 1.0 of quote currency; a short's stop sits above
    trades = _trades([
        {"entry_bar": 1, "exit_bar": 2, "pnl": 2.5},                     # +2.5R
        {"entry_bar": 3, "exit_bar": 4, "pnl": -1.0, "exit_reason": "stop"},  # -1R
        {"entry_bar": 5, "exit_bar": 6, "pnl": 0.5, "side": -1},         # +0.5R (stop 110)
        {"entry_bar": 7, "exit_bar": 8, "pnl": 3.0},                     # no stop: no R
    ], return_pct=0.0)
    # without the column every R is missing, and the statistics say so
    assert np.isnan(r_multiples(trades)).all() and r_stats(trades)["n_r_trades"] == 0
    trades["initial_stop"] = [90.0, 90.0, 110.0, np.nan]
    r = r_multiples(trades)
    np.testing.assert_allclose(r[:3], [2.5, -1.0, 0.5])
    assert np.isnan(r[3])
    s = r_stats(trades)
    assert s["n_r_trades"] == 3
    assert s["expectancy_r"] == pytest.approx(2 / 3)
    sd = np.std([2.5, -1.0, 0.5], ddof=1)
    assert s["sqn"] == pytest.approx(math.sqrt(3) * (2 / 3) / sd)
    d = r_distribution(trades)
    assert d["trades"].sum() == 3
    assert d.loc["-1R..0R", "trades"] == 1 and d.loc["0R..1R", "trades"] == 1
    assert d.loc["2R..3R", "trades"] == 1 and d["share_pct"].sum() == pytest.approx(100.0)
    m = compute_metrics(_equity(np.linspace(100, 110, 10)), trades, None, "1d")
    assert m["expectancy_r"] == pytest.approx(2 / 3) and m["n_r_trades"] == 3


def _reference_path_figures(equity: pd.Series, timeframe: str) -> dict[str, float]:
    """The VaR/CVaR, best/worst day and longest drawdown as compute_metrics computed them with
    pandas and numpy before the one-pass version (resample per UTC day, np.quantile over all
    bar returns, underwater runs as arrays): the figures must stay exactly these."""
    eq = equity.to_numpy()
    prev, cur = eq[:-1], eq[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(prev > 0, cur / prev - 1.0, 0.0)
    if len(r):
        var = float(np.quantile(r, 0.05))
        cvar = float(r[r <= var].mean())
    else:
        var = cvar = math.nan
    if periods_per_year(timeframe) <= 365.0:
        day = pd.Series(r)
    else:
        daily = equity.resample("1D").last().dropna()
        day = daily.pct_change().dropna()
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, eq / peak - 1.0, 0.0)
    edges = np.diff(np.concatenate(([False], dd < 0, [False])).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    t = equity.index.as_unit("ns").asi8
    durations = (t[np.minimum(ends + 1, len(t) - 1)] - t[np.maximum(starts - 1, 0)]) / 86_400e9
    return {
        "var_95_pct": 100.0 * var, "cvar_95_pct": 100.0 * cvar,
        "best_day_pct": 100.0 * float(day.max()) if len(day) else math.nan,
        "worst_day_pct": 100.0 * float(day.min()) if len(day) else math.nan,
        "max_drawdown_duration_days": float(durations.max()) if len(durations) else 0.0,
    }


@pytest.mark.parametrize("seed", range(12))
def test_path_figures_are_exactly_the_pandas_ones(seed):
    # Minute, hourly and daily curves with missing bars and whole missing days, flat stretches
    # (returns of 0), a wipe-out to 0, times before 1970, mostly rising curves (the 5 % quantile
    # is then not a loss) and very short curves: every figure bit for bit the reference's.
    rng = np.random.default_rng(seed)
    tf = ("1m", "1h", "1d", "15m")[seed % 4]
    n = int(rng.choice([1, 2, 3, 25, 500, 20_000]))
    step = pd.Timedelta({"1m": "1min", "1h": "1h", "1d": "1D", "15m": "15min"}[tf])
    jumps = rng.choice([1, 1, 1, 2, 50], size=n, p=[0.6, 0.2, 0.1, 0.09, 0.01])
    start = pd.Timestamp("1969-12-29" if seed % 3 == 0 else "2024-03-01", tz="UTC")
    idx = pd.DatetimeIndex(start + step * np.cumsum(jumps), name="timestamp").as_unit("ns")
    drift = (0.002, -0.001, 0.0)[seed % 3]
    r = rng.normal(drift, 0.01, n) * (rng.random(n) < 0.6)  # ~40 % flat bars
    if seed in (3, 7):
        r = np.abs(r) * (rng.random(n) < 0.97) - r * (rng.random(n) < 0.03)  # few losses
    eq = 10_000.0 * np.cumprod(1.0 + r)
    if seed == 5:
        eq[n // 2:] = 0.0  # wiped out: 0/0 days are skipped, later returns are 0
    equity = pd.Series(eq, index=idx, name="equity")
    got = compute_metrics(equity, empty_trades(), None, tf, cash=10_000.0)
    for key, want in _reference_path_figures(equity, tf).items():
        assert (math.isnan(got[key]) and math.isnan(want)) or got[key] == want, (key, got[key],
                                                                                 want)


def test_cagr_of_a_big_gain_over_hours_is_inf_not_an_error():
    # +346 % in 300 minutes compounds to more than a float holds over a year: CAGR (and so
    # Calmar) is inf, every other figure as usual (it raised OverflowError)
    eq = 1000.0 * np.cumprod(np.r_[1.0, np.full(300, 1.005)])
    eq[150] *= 0.99  # one losing bar: a drawdown for Calmar
    idx = pd.date_range("2024-01-01", periods=len(eq), freq="1min", tz="UTC", name="timestamp")
    m = compute_metrics(pd.Series(eq, index=idx), empty_trades(), None, "1m", cash=1000.0)
    assert m["cagr_pct"] == math.inf and m["calmar"] == math.inf
    assert m["total_return_pct"] == pytest.approx(100.0 * (eq[-1] / 1000.0 - 1.0))
    assert json.loads(json.dumps(to_jsonable(m)))["cagr_pct"] is not None


def _assert_tail_is_numpys(r: np.ndarray, freq: str, tf: str) -> None:
    """compute_metrics' VaR/CVaR of the curve with per-bar returns ``r`` (bars ``freq`` apart,
    timeframe ``tf``) are bit for bit
    ``np.quantile(r, 0.05)`` and ``r[r <= var].mean()``."""
    eq = np.concatenate(([1000.0], 1000.0 * np.cumprod(1.0 + r)))
    idx = pd.date_range("2000-01-01", periods=len(eq), freq=freq, tz="UTC", name="timestamp")
    got = compute_metrics(pd.Series(eq, index=idx), empty_trades(), None, tf, cash=1000.0)
    ret = np.where(eq[:-1] > 0, eq[1:] / eq[:-1] - 1.0, 0.0)
    var = float(np.quantile(ret, 0.05))
    assert got["var_95_pct"] == 100.0 * var
    assert got["cvar_95_pct"] == 100.0 * float(ret[ret <= var].mean())


@pytest.mark.parametrize("case", ["ties", "few", "one", "gains", "flat", "big"])
def test_var_cvar_are_numpys_quantile_and_mask_mean(case):
    # VaR/CVaR bit for bit np.quantile(r, 0.05) and r[r <= var].mean() over all the returns:
    # returns on a grid of 0.1 % (many ties at and around the quantile), fewer than 20 returns
    # (the quantile interpolates between the two lowest), one return, only gains (the
    # quantile is not a loss: the whole-curve path), no change at all, and 200k bars.
    from backtests.metrics import at_or_below

    rng = np.random.default_rng(7)
    r = {
        "ties": np.round(rng.normal(0.0, 0.004, 5_000), 3),
        "few": rng.normal(0.0, 0.01, 17),
        "one": np.array([-0.02]),
        "gains": np.abs(rng.normal(0.0, 0.01, 300)),
        "flat": np.zeros(50),
        "big": rng.normal(0.0, 0.01, 200_000) * (rng.random(200_000) < 0.5),
    }[case]
    _assert_tail_is_numpys(r, "1h", "1h")
    # the compaction keeps the order and every value at the level (ties included)
    x = np.round(rng.normal(0.0, 1.0, 1_000), 1)
    for level in (-1.0, 0.0, x.min(), x.max(), -np.inf):
        np.testing.assert_array_equal(at_or_below(x, level), x[x <= level])


@pytest.mark.parametrize("seed", range(6))
def test_exposure_count_equals_the_held_mask(seed):
    # core_metrics counts the held bars from the trades (union of intervals); the per-bar mask
    # of exposure()/held_mask is the reference: overlapping, nested, zero-length and clipped
    # trades, exits at the open and inside the bar, a window offset.
    from backtests.metrics import core_metrics, held_mask

    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    m = int(rng.integers(0, 40))
    offset = int(rng.integers(0, 20)) if seed % 2 else 0
    entry = rng.integers(0, n + 30, m).astype(np.int64)
    exit_ = entry + rng.integers(0, 25, m)
    at_open = rng.random(m) < 0.5
    eq = 100.0 * np.cumprod(1 + rng.normal(0, 0.01, n))
    got = core_metrics(eq, 1.0, 365.0, 100.0, np.zeros(m), entry, exit_, at_open, offset)
    want = held_mask(n, entry, exit_, at_open, offset).sum() / n
    assert got["exposure_pct"] == 100.0 * want


@pytest.mark.parametrize("seed", range(8))
def test_full_pass_skips_unmoved_bars_bit_for_bit(seed):
    # A full result's pass skips the first pass's division and addition where the equity did
    # not move (no position); the sweeps' pass adds every bar. Long flat stretches, repeated
    # values inside a position, a wipe-out to 0 (0/0), tiny and negative moves: every figure
    # the two share is the same, bit for bit.
    from backtests.metrics import NO_TIMES, day_closes, metrics_pass

    rng = np.random.default_rng(seed)
    n = int(rng.choice([2, 3, 40, 5_000, 300_000]))
    r = rng.normal(0.0, 0.01, n) * (rng.random(n) < (0.1, 0.5, 0.9)[seed % 3])
    r[rng.random(n) < 0.01] = 1e-300  # moves that round away: equal values, not a flat bar
    eq = 10_000.0 * np.cumprod(1.0 + r)
    if seed % 4 == 1:
        eq[n // 2:] = 0.0
    entry = np.sort(rng.integers(0, n, 10)).astype(np.int64)
    exit_ = np.minimum(entry + rng.integers(0, 50, 10), n - 1)
    args = (eq, rng.normal(0.0, 1.0, 10), entry, exit_, rng.random(10) < 0.5, 0)
    t_ns = np.arange(n, dtype=np.int64) * 60_000_000_000
    full = metrics_pass(*args, t_ns, day_closes(t_ns))
    core = metrics_pass(*args, NO_TIMES, NO_TIMES)
    for a, b in zip(full[:11], core[:11], strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    s = 0.0
    for i in range(n - 1):  # the definition: every bar's return, in bar order
        s += eq[i + 1] / eq[i] - 1.0 if eq[i] > 0 else 0.0
    assert full[0] == s / (n - 1)


@pytest.mark.parametrize("seed", range(6))
def test_lowest_values_hold_the_smallest_exactly(seed):
    # _lowest keeps every value at or below a level read off a sample only when at least m of
    # them are (then they are the m smallest and some larger), else all: the m smallest values
    # are the same, and so VaR/CVaR on a long curve equal numpy's on all the returns.
    from backtests.metrics import _lowest

    rng = np.random.default_rng(seed)
    n = int(rng.choice([100, 5_000, 300_000]))
    x = np.round(rng.standard_t(3, n), int(rng.choice([1, 3, 9])))  # ties at coarse rounding
    if seed == 5:
        x[: n // 2] = x.min()  # half the values tie at the minimum
    taken = 0
    for m in (1, 2, n // 20, n // 3, n):
        got = _lowest(x, m)
        assert got is x or len(got) >= m
        np.testing.assert_array_equal(np.sort(got)[:m], np.sort(x)[:m])
        np.testing.assert_array_equal(got, x[x <= got.max()])  # every value up to a level
        taken += got is not x
    assert taken or n <= 64 * 64  # the sampled path ran on the long arrays
    _assert_tail_is_numpys(rng.normal(0.0, 0.01, n) * (rng.random(n) < 0.5), "1min", "1m")
