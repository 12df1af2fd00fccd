"""The squeeze analysis: leverage survival, the closed-form check on the Feb-2026 crash, tiers,
agreement with a brute-force scan and with both engines' liquidations, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from backtests.cli import main
from backtests.config import BacktestConfig
from backtests.engines import bt as engine_bt
from backtests.engines import fast as engine_fast
from backtests.squeeze import leverage_survival
from data.frame import DataError
from indicators.liquidation import MarginModel, Tier, liquidation_prices, load_tiers, survival
from tests.conftest import real_path
from tests.test_engine_fast import bars, sig

FLAT = MarginModel.flat(0.005)


def test_hand_computed_long_and_short():
    # entry at the close of bar 0 (100); later lows 95, 80, highs 105, 110
    df = bars([(100, 100, 100, 100), (100, 105, 95, 100), (100, 110, 80, 100),
               (100, 101, 99, 100)])
    res = leverage_survival(df, "2024-01-01", "2024-01-01", until="2024-01-04", model=FLAT)
    long = res.table[res.table["side"] == "long"].iloc[0]
    short = res.table[res.table["side"] == "short"].iloc[0]
    # long survives iff 100*(1-1/L)/(1-0.005) < 80  <=>  L < 1/(1 - 0.8*0.995)
    assert long["max_leverage"] == pytest.approx(1 / (1 - 0.8 * 0.995), rel=1e-13)
    assert long["adverse_pct"] == pytest.approx(-20.0) and long["adverse_price"] == 80
    # 4.93x -> the first grid step that dies is 5x, on bar 2 (the 95 low of bar 1 needs 20.5x)
    assert long["next_leverage"] == 5 and long["next_liquidated_time"] == df.index[2]
    # short survives iff 100*(1+1/L)/(1+0.005) > 110  <=>  L < 1/(1.1*1.005 - 1)
    assert short["max_leverage"] == pytest.approx(1 / (1.1 * 1.005 - 1), rel=1e-13)
    assert short["next_leverage"] == 10 and short["next_liquidated_time"] == df.index[2]
    curve = res.curve().set_index(["side", "leverage"])["liquidated_share"]
    assert curve[("long", 4.0)] == 0 and curve[("long", 5.0)] == 1
    assert curve[("short", 9.0)] == 0 and curve[("short", 10.0)] == 1


def test_tiers_match_binance_formula_with_maintenance_amount():
    model = MarginModel(notional=600_000.0)  # third tier: 1 %, 50x
    rate, amount, cap = model.terms()
    cum = 50_000 * (0.005 - 0.004) + 250_000 * (0.01 - 0.005)  # Binance's maintenance amount
    assert (rate, cap) == (0.01, 50) and amount * 600_000 == pytest.approx(cum)
    e, lev = 80_000.0, 20.0
    q = 600_000 / e
    wb = q * e / lev  # isolated wallet balance = initial margin
    # Binance: LP = (WB + cumB - side*Q*E) / (Q*MMR - side*Q)
    lp_long = (wb + cum - q * e) / (q * rate - q)
    lp_short = (wb + cum + q * e) / (q * rate + q)
    assert liquidation_prices(1, e, lev, model) == pytest.approx(lp_long, rel=1e-13)
    assert liquidation_prices(-1, e, lev, model) == pytest.approx(lp_short, rel=1e-13)
    # default notional sits in the first tier, 0.40 %
    assert MarginModel().terms() == (0.004, 0.0, 125)


def test_tier_file_csv_and_bad_file(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("max_notional,max_leverage,maintenance_rate\n1000,50,0.01\n1e9,10,0.05\n")
    m = load_tiers(f)
    assert m.tiers == (Tier(1000, 50, 0.01), Tier(1e9, 10, 0.05))
    assert MarginModel(tiers=m.tiers, notional=5000).terms()[:2] == (0.05, pytest.approx(0.008))
    bad = tmp_path / "bad.csv"
    bad.write_text("notional,rate\n1,2\n")
    with pytest.raises(DataError, match="not a tier table"):
        load_tiers(bad)


def _brute(low, high, close, i, end, side, lev, model):
    lp = liquidation_prices(side, close[i], lev, model)
    for k in range(i + 1, end + 1):
        if (side > 0 and low[k] <= lp) or (side < 0 and high[k] >= lp):
            return k
    return -1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_matches_brute_force_scan(seed):
    rng = np.random.default_rng(seed)
    n = 300
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    high = close * (1 + rng.uniform(0, 0.04, n))
    low = close * (1 - rng.uniform(0, 0.04, n))
    entries = np.arange(0, n - 1)
    ends = np.minimum(entries + rng.integers(1, 80, len(entries)), n - 1)
    levs = np.array([1, 2, 3, 5, 10, 25, 100.0])
    for side in (1, -1):
        s = survival(low, high, close, entries, ends, side, levs, FLAT)
        for i in range(0, len(entries), 7):
            for j, lev in enumerate(levs):
                assert s.liq_bar[i, j] == _brute(low, high, close, i, ends[i], side, lev, FLAT)
            # grid leverage liquidated exactly when it is at or above the survival maximum
            np.testing.assert_array_equal(s.liq_bar[i] >= 0, levs >= s.max_leverage[i])


# --- the seed's claim on the real Binance daily data ------------------------------------------


def _binance_daily() -> pd.DataFrame:
    raw = pd.read_csv(real_path("1d_binance"), index_col="timestamp")
    raw.index = pd.to_datetime(raw.index, utc=True).as_unit("ns")
    raw.index.name = "timestamp"
    raw.attrs["timeframe"] = "1d"
    return raw


@pytest.mark.shared_data
def test_feb_2026_crash_leverage_above_about_4x_was_wiped_out():
    df = _binance_daily()
    res = leverage_survival(df, "2026-01-25", "2026-02-03", horizon="30D", side="long")
    t = res.table.set_index("entry_time")
    assert len(t) == 10 and t["complete"].all()
    for ts, row in t.iterrows():
        e = df.loc[ts, "close"]
        # independent closed form: worst low of the 30 days after the entry close, then the
        # leverage whose long liquidation price E(1-1/L)/(1-0.004) equals it
        after = df.loc[ts + pd.Timedelta(days=1): ts + pd.Timedelta(days=30), "low"]
        worst = after.min()
        assert row["adverse_price"] == worst
        assert row["max_leverage"] == pytest.approx(1 / (1 - worst * (1 - 0.004) / e), rel=1e-12)
    # what the data says: the crash low was 60,000 on 2026-02-06; no long opened 25 Jan - 3 Feb
    # survived 5x, none opened 25-30 Jan survived 4x, the best entry survived below 4.73x
    assert set(t["adverse_price"]) == {60_000.0}
    assert (t["max_leverage"] < 5).all()
    assert (t.loc[:"2026-01-30", "max_leverage"] < 4).all()
    assert t["max_leverage"].min() == pytest.approx(3.02, abs=0.005)
    assert t["max_leverage"].max() == pytest.approx(4.73, abs=0.005)
    curve = res.curve().set_index("leverage")["liquidated_share"]
    assert curve[3.0] == 0.0 and curve[5.0] == 1.0
    assert "longs opened 2026-01-25..2026-02-03 survived 30D only below 3.0x–4.7x" in res.text()


# --- both engines liquidate where the analysis says -------------------------------------------


def _gapless(df: pd.DataFrame) -> pd.DataFrame:
    """Each bar opens at the previous close, so an engine's next-open fill = the entry close."""
    out = df.copy()
    out.iloc[1:, out.columns.get_loc("open")] = df["close"].to_numpy()[:-1]
    out["high"] = out[["high", "open"]].max(axis=1)
    out["low"] = out[["low", "open"]].min(axis=1)
    out.attrs = dict(df.attrs)
    return out


@pytest.mark.shared_data
@pytest.mark.parametrize("engine", [engine_fast, engine_bt])
def test_engines_liquidate_at_the_predicted_bars(engine):
    df = _gapless(_binance_daily().loc["2026-01-20":"2026-03-15"])
    res = leverage_survival(df, "2026-01-25", "2026-02-10", until="2026-03-15", model=FLAT)
    levs = [2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 50.0, 100.0]
    step = 1 if engine is engine_fast else 4
    checked = liquidated = 0
    for side, code in (("long", 1), ("short", -1)):
        for r, i in list(enumerate(res.entry_bars))[::step]:
            part = df.iloc[i:]
            for lev in levs:
                predicted = res.liq_bars[side][r, int(lev) - 1]
                cfg = BacktestConfig(cash=10_000, commission=0.0, leverage=lev,
                                     maintenance_margin=0.005, mode=side)
                trades, _ = engine.simulate(part, sig(len(part), {0: code}), cfg)
                t = trades.iloc[0]
                assert t["entry_price"] == df["close"].iloc[i]
                if predicted >= 0:
                    assert t["exit_reason"] == "liquidation", (side, df.index[i], lev)
                    assert t["exit_bar"] + i == predicted, (side, df.index[i], lev)
                    liquidated += 1
                else:
                    assert t["exit_reason"] == "end", (side, df.index[i], lev)
                checked += 1
    assert liquidated > 10 and checked > liquidated


# --- command line -----------------------------------------------------------------------------


@pytest.mark.shared_data
def test_cli_json_and_text():
    data = str(real_path("1d_binance"))
    runner = CliRunner()
    out = runner.invoke(main, ["squeeze", "--data", data, "--from", "2026-01-31", "--to",
                               "2026-02-01", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [(r["entry_time"], r["side"]) for r in rows] == [
        ("2026-01-31T00:00:00+00:00", "long"), ("2026-01-31T00:00:00+00:00", "short"),
        ("2026-02-01T00:00:00+00:00", "long"), ("2026-02-01T00:00:00+00:00", "short")]
    assert rows[0]["entry_price"] == 78741.09
    assert rows[0]["max_leverage"] == pytest.approx(1 / (1 - 60_000 * 0.996 / 78741.09))
    text = runner.invoke(main, ["squeeze", "--data", data, "--from", "2026-01-31", "--to",
                                "2026-02-01", "--side", "long", "--maintenance", "0.005"])
    assert text.exit_code == 0
    assert "5x on 2026-02-05" in text.stdout and "mark price" in text.stdout
    assert "flat maintenance rate 0.005" in text.stdout


@pytest.mark.shared_data
@pytest.mark.parametrize("args,msg", [
    (["--until", "2026-03-01", "--horizon", "30D"], "either --until or --horizon"),
    (["--from", "2030-01-01"], "no entry bar"),
    (["--horizon", "soon"], "not a duration"),
    (["--maintenance", "0.7"], "maintenance rate"),
])
def test_cli_bad_input_is_one_line(args, msg):
    data = str(real_path("1d_binance"))
    out = CliRunner().invoke(main, ["squeeze", "--data", data, *args])
    assert out.exit_code == 2 and msg in out.output


# --- liquidation map and charts ---------------------------------------------------------------


def test_liquidation_map_weights_and_live_levels():
    from backtests.squeeze import liquidation_map

    df = bars([(100, 100, 100, 100), (100, 101, 99, 100), (100, 100, 94, 95),
               (95, 96, 94, 95)])
    df["volume"] = [1.0, 2.0, 3.0, 4.0]
    lm = liquidation_map(df, window="2D", leverages=(10.0, 20.0), model=FLAT)
    lv = lm.levels.set_index(["entry_time", "side", "leverage"])
    # the window holds the last two bars (opened after 2024-01-02 00:00): entries at 95 and 95
    assert sorted(set(lm.levels["entry_time"])) == list(df.index[2:])
    row = lv.loc[(df.index[2], "long", 20.0)]
    assert row["liquidation_price"] == pytest.approx(95 * (1 - 1 / 20) / 0.995)  # 90.70
    assert row["weight"] == pytest.approx(3 * 95 / 2)  # quote volume split over 2 leverages
    # entry at bar 2's close 95, 20x long liq 90.70: bar 3's low 94 does not reach it -> alive
    assert row["alive"]
    # the 20x short from bar 2 (liq 95*1.05/1.005 = 99.25 > high 96) is alive too
    assert lv.loc[(df.index[2], "short", 20.0), "alive"]
    strip = lm.strip(bins=4)
    live = lm.levels[lm.levels["alive"]]
    assert strip["long"].sum() + strip["short"].sum() == pytest.approx(live["weight"].sum())


def test_liquidation_map_drops_positions_already_liquidated():
    from backtests.squeeze import liquidation_map

    df = bars([(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 80, 85)])
    lm = liquidation_map(df, window="3D", leverages=(2.0, 10.0), model=FLAT)
    lv = lm.levels.set_index(["entry_time", "side", "leverage"])["alive"]
    assert not lv[(df.index[0], "long", 10.0)]  # 90.45 was crossed by the 80 low
    assert lv[(df.index[0], "long", 2.0)]       # 50.25 was not
    assert lv[(df.index[2], "long", 10.0)]      # opened at the last close: nothing after it


@pytest.mark.shared_data
def test_cli_png_charts(tmp_path):
    data = str(real_path("1d_binance"))
    out = CliRunner().invoke(main, ["squeeze", "--data", data, "--from", "2026-01-01", "--to",
                                    "2026-02-28", "--png", str(tmp_path)])
    assert out.exit_code == 0, out.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["liquidation_map.png", "safe_leverage.png", "survival_long.png",
                     "survival_short.png"]
    assert all((tmp_path / n).stat().st_size > 20_000 for n in names)


# --- trade distance to liquidation and the outlook line ---------------------------------------


@pytest.mark.parametrize("engine", [engine_fast, engine_bt])
def test_trades_carry_their_distance_to_liquidation(engine):
    df = bars([(100, 100, 100, 100), (100, 101, 95, 100), (100, 101, 97, 100),
               (100, 100, 85, 95), (95, 95, 95, 95)])
    cfg = BacktestConfig(cash=1000, leverage=10, size=0.5, commission=0.0, mode="both")
    # a long from bar 1 closed by the exit signal at bar 3's open, then a 10x long liquidated
    trades, _ = engine.simulate(df, sig(5, {0: 1, 2: 1}, exits=(1,)), cfg)
    first, second = trades.iloc[0], trades.iloc[1]
    lp = 100 * 0.9 / 0.995
    # worst low 95 (5 % below entry), liquidation 9.55 % below: 4.55 % of entry away
    assert first["liq_distance_pct"] == pytest.approx((95 - lp) / 100 * 100)
    assert second["exit_reason"] == "liquidation"
    assert second["liq_distance_pct"] == pytest.approx(0.0, abs=1e-12)


def test_outlook_line_longs_liquidated_above(btc_daily):
    from indicators.outlook import outlook

    view = outlook(btc_daily, at="2026-02-07")  # after the 2026-02-06 daily close
    d = btc_daily.loc[:"2026-02-06"]
    window = d["close"].iloc[:-1][d.index[:-1] >= d.index[-1] - pd.Timedelta(days=30)]
    low = d["low"].iloc[-1]  # 60,000
    # independently: the entry that survives most is the lowest close; L = 1/(1 - low*(1-mmr)/E)
    want = 1 / (1 - low * (1 - 0.004) / window.min())
    assert view.longs_liquidated_above == pytest.approx(want, rel=1e-12)
    assert f"above {want:.1f}x would have been liquidated by this bar's low" in view.text()
    # a bar whose low is above some entry's close: no leverage liquidates every long
    assert outlook(btc_daily, at="2026-01-15").longs_liquidated_above is None


def test_squeeze_summary_is_plain_data_consistent_with_the_analysis(btc_daily):
    from backtests.squeeze.summary import HEATMAP_LEVERAGES, squeeze_summary

    df = btc_daily.loc[:"2026-03-31"]
    s = squeeze_summary(df, entry_days=90)
    json.dumps(s, allow_nan=False)  # the report stores and reads it as JSON
    i = s["entry_time"].index("2026-01-28T00:00:00+00:00")
    j = HEATMAP_LEVERAGES.index(4)
    # the 4x long opened at the 28 Jan close (29 Jan 00:00) died on the 5 Feb bar: 7 days
    assert s["days_to_liquidation"]["long"][i][j] == 7.0
    assert s["days_to_liquidation"]["long"][i][HEATMAP_LEVERAGES.index(3)] is None
    assert s["max_leverage"]["long"][i] == pytest.approx(3.02, abs=0.005)
    assert len(s["curve"]["long"]) == 100 and s["curve"]["long"][0] == 0.0
    assert s["map"]["as_of"] == "2026-03-31T00:00:00+00:00" and "model" in s["map"]["note"]
    assert sum(s["map"]["long"]) > 0 and sum(s["map"]["short"]) > 0


def test_job_stores_the_squeeze_and_the_report_draws_it(btc_daily, tmp_path):
    from backtests.job import run_job
    from backtests.reports.html import render_html
    from backtests.results import BacktestResult
    from strategies.bounce import OversoldBounce

    df = btc_daily.loc["2024-06-01":"2026-03-31"]
    res = run_job(df, [OversoldBounce()], BacktestConfig())[0]
    sq = res.data["squeeze"]
    assert sq["map"]["as_of"] == "2026-03-31T00:00:00+00:00"
    saved = BacktestResult.load(res.save(tmp_path / "r"))
    assert saved.data["squeeze"] == json.loads(json.dumps(sq))  # survives the round trip
    page = render_html([saved], tmp_path / "report.html").read_text()
    assert 'id="squeeze"' in page and 'id="squeeze-heat-long"' in page
    assert sq["summary"][0] in page and "a model" in page and "mark price" in page
    assert "<th>squeeze</th>" not in page  # not dumped into the provenance table
    # the heatmap is drawn from the stored numbers, passed as they are
    compact = json.dumps(sq["heatmap_leverages"], separators=(",", ":"))
    assert f'"leverages":{compact}' in page
    from backtests.reports.write import write_report

    written = write_report([saved], tmp_path / "folder", save_results=False, png=True)
    assert written["png:squeeze"].stat().st_size > 30_000
    # a result without it (older saves): no card, no error
    assert f"(entries: {sq['entries']})" in page
    old = BacktestResult.load(tmp_path / "r")  # saved before "entries" existed: no such note
    old.data["squeeze"].pop("entries")
    assert "(entries:" not in render_html([old], tmp_path / "old.html").read_text()
    bare = BacktestResult.load(tmp_path / "r")
    bare.data.pop("squeeze")
    assert 'id="squeeze"' not in render_html([bare], tmp_path / "bare.html").read_text()


def test_squeeze_summary_on_minute_bars_has_one_entry_per_day():
    """Intraday data: one entry per UTC day at its close (not 1,440 a day), each with the same
    numbers as the per-bar analysis gives that bar; daily data keeps every bar."""
    from backtests.squeeze.summary import HEATMAP_LEVERAGES, squeeze_summary
    from tests.lookahead import ohlc_frame

    # 12 days and 5 hours of one-minute bars, volatile enough to liquidate some leverage
    df = ohlc_frame(12 * 1440 + 300, "1m", seed=3, volatility=0.004)
    s = squeeze_summary(df, entry_days=365, horizon="2D", map_window="1D")
    assert len(s["entry_time"]) == 12 and s["entries"].startswith("one per day")
    assert all(t.endswith("T23:59:00+00:00") for t in s["entry_time"])
    per_bar = leverage_survival(df, horizon="2D")  # every bar an entry
    t = per_bar.table.set_index(["entry_time", "side"])
    for k, when in enumerate(s["entry_time"]):
        row = t.loc[(pd.Timestamp(when), "long")]
        assert s["max_leverage"]["long"][k] == pytest.approx(row["max_leverage"], abs=5e-5)
    assert s["complete"] == [True] * 10 + [False] * 2  # the last two days lack 2 days after
    assert s["curve"]["entries"] == 10
    days = np.array(s["days_to_liquidation"]["short"], dtype=float)
    assert days.shape == (12, len(HEATMAP_LEVERAGES)) and 0 < np.isfinite(days).sum() < days.size
    with pytest.raises(DataError, match="no day's last bar"):
        leverage_survival(df.iloc[:600], horizon="2D", daily=True)


def test_squeeze_summary_daily_data_keeps_every_bar(btc_daily):
    from backtests.squeeze.summary import squeeze_summary

    df = btc_daily.loc[:"2026-03-31"]
    s = squeeze_summary(df, entry_days=90)
    every = leverage_survival(df, start=df.index[-1] - pd.Timedelta(days=90), horizon="30D")
    assert s["entry_time"] == [t.isoformat() for t in every.index[every.entry_bars]]
    assert s["entries"] == "one per bar"
