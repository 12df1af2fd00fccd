"""The run report page: complete, offline, escaped, small, and only reading saved results."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from backtests.reports import cards, chart_data
from backtests.reports.assets import chart_library, safe_json
from backtests.reports.cards import Card
from backtests.reports.format import fmt
from backtests.reports.html import render_html
from backtests.results import BacktestResult
from tests.conftest import real
from tests.factories import hourly_candles, make_result
from tests.lookahead import ohlc_frame

pytestmark = pytest.mark.shared_data

EVIL = "<script>alert(1)</script>"


class Page(HTMLParser):
    """What the tests look at: tags, scripts, and the cells of every table (by table class)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.metric_cells: dict[tuple[int, str], list[str]] = {}
        self._script: dict[str, str | None] | None = None
        self._text: list[str] = []
        self._cell: list[str] | None = None
        self._metric: str | None = None
        self._summaries = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script":
            self._script, self._text = a, []
        if tag == "table":
            self.tables.append((a.get("class") or "", []))
            if "summary" in (a.get("class") or ""):
                self._summaries += 1
        if tag == "tr" and self.tables:
            self.tables[-1][1].append([])
            self._metric = a.get("data-metric")
            if self._metric:
                self.metric_cells[(self._summaries, self._metric)] = []
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._text)))
            self._script = None
        if tag in ("td", "th") and self._cell is not None and self.tables:
            text = "".join(self._cell).strip()
            self.tables[-1][1][-1].append(text)
            if self._metric and tag == "td":
                self.metric_cells[(self._summaries, self._metric)].append(text)
            self._cell = None

    def handle_data(self, data):
        if self._script is not None:
            self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def payload(self) -> dict:
        (text,) = [t for a, t in self.scripts if a.get("id") == "report-data"]
        return json.loads(text)

    def table(self, cls: str, n: int = 0) -> list[list[str]]:
        return [rows for c, rows in self.tables if cls in c.split()][n]


def decode(payload: dict, ref: dict) -> np.ndarray:
    """A packed column back as float64 (missing: NaN), as the page's script decodes it."""
    raw = base64.b64decode(payload["blobs"][ref["b"]])
    a = np.frombuffer(raw, dtype="<" + ref["d"]).astype(float)
    na = {"i4": -(2**31), "u2": 65535}.get(ref["d"])
    if na is not None:
        a[a == na] = np.nan
    return a / ref["k"]


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    return real("1d_binance")


@pytest.fixture(scope="module")
def one(daily, tmp_path_factory) -> tuple[BacktestResult, str, Page]:
    result = make_result(daily, n_trades=24)
    path = render_html([result], tmp_path_factory.mktemp("one") / "report.html")
    text = path.read_text(encoding="utf-8")
    return result, text, Page(text)


def test_chart_data_is_the_saved_result_exactly(one):
    result, _, page = one
    data = page.payload()
    (chart,) = data["charts"]
    bars = chart["bars"]
    sec = bars["t0"] + decode(data, bars["t"]) * 60
    expect = result.prices.index.as_unit("s").asi8
    np.testing.assert_array_equal(sec, expect)
    for col in ("open", "high", "low", "close"):
        np.testing.assert_allclose(decode(data, bars[col[0]]), result.prices[col], atol=0.005)
    np.testing.assert_allclose(decode(data, bars["v"]), result.prices["volume"], rtol=1e-6)
    rsi = decode(data, chart["lines"]["rsi"])
    np.testing.assert_allclose(rsi, result.indicators["rsi"], atol=0.005)
    np.testing.assert_allclose(decode(data, chart["equity"]["equity"]), result.equity, atol=0.005)
    trades = chart["trades"]
    assert len(trades["pnl"]) == len(result.trades)
    np.testing.assert_allclose(trades["pnl"], result.trades["pnl"], atol=1e-4)  # 4 decimals
    assert trades["exit_reason"] == list(result.trades["exit_reason"])
    assert "liquidation" in trades["exit_reason"]  # the factory's 10x trade
    assert all(isinstance(w, str) and w for w in trades["why"])


def test_metrics_table_shows_the_saved_metrics(one):
    result, _, page = one
    m = result.metrics
    for key, kind in [("total_return_pct", "pct"), ("max_drawdown_pct", "pct"),
                      ("sharpe", "ratio"), ("win_rate_pct", "pct_abs"), ("n_trades", "int"),
                      ("final_equity", "money"), ("fees_paid", "money")]:  # fmt: skip
        assert page.metric_cells[(1, key)][1] == fmt(m[key], kind), key
    _, all_n, long_n, short_n = page.metric_cells[(1, "n_trades")]
    assert int(long_n) + int(short_n) == int(all_n) == len(result.trades)
    assert {k for (_, k) in page.metric_cells} >= set(m)
    assert page.metric_cells[(1, "total_return_pct")][1][0] in "+−0"  # % carry their sign
    # every metric the engine saves has a written label, not one made from its key ("Sqn")
    from backtests.reports.tables import METRIC_ROWS
    unlabelled = set(m) - {k for k, *_ in METRIC_ROWS}
    assert not unlabelled, unlabelled


def test_tables_are_formatted_and_sorted_as_captioned(one):
    _, text, page = one
    levels = page.table("levels")
    head, rows = levels[0], levels[1:]
    assert head[:4] == ["Role", "Centre", "Zone", "From last close"]
    centres = [float(r[1].replace("$", "").replace(",", "")) for r in rows]
    assert centres == sorted(centres, reverse=True) and len(rows) >= 3  # highest price first
    assert all(re.fullmatch(r"[+−]?\d[\d,]*\.\d\d%", r[3]) for r in rows)
    assert "T00:00:00" not in text  # dates as dates, never ISO timestamps
    exits = page.table("exit-reasons")[1:]
    counts = [int(r[1]) for r in exits]
    assert counts == sorted(counts, reverse=True)  # "most trades first"
    dd = page.table("drawdowns")[1:]
    depths = [float(r[3].replace("−", "-").rstrip("%")) for r in dd]
    assert depths == sorted(depths)  # deepest first


def test_outlook_is_sentences_and_a_small_table_not_a_key_dump(one):
    result, text, page = one
    section = text.split('id="outlook"')[1]
    assert result.outlook["text"].split(".")[0] in section
    assert "rsi_period" not in section and "change_1bar_pct" not in section
    assert len(page.table("outlook-levels")) <= 6


def test_self_contained_offline_and_small(one):
    _, text, page = one
    for tag, attrs in page.tags:
        for attr in ("src", "href"):
            value = attrs.get(attr)
            if value is not None:
                assert "http" not in value and not value.startswith("//"), (tag, value)
        assert tag != "link", attrs
    assert all("src" not in a for a, _ in page.scripts)
    lib = str(chart_library())
    assert "Lightweight Charts" in lib[:300] and text.count(lib[:300]) == 1  # inlined once
    assert "plotly" not in text.lower()
    assert len(text.encode()) < 1_000_000


def test_user_strings_are_escaped(daily, tmp_path):
    result = make_result(daily, strategy=EVIL, params={"note": EVIL, "oversold": 30.0}, n_trades=6)
    result.trades["tag"] = EVIL
    result.outlook["text"] = f"Outlook {EVIL}\nMore {EVIL} & more"
    result.data["origin"] = EVIL
    text = render_html([result], tmp_path / "evil.html").read_text(encoding="utf-8")
    assert EVIL not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = Page(text)
    assert len(page.scripts) == 3  # the chart library, the data, our script
    assert page.payload()["charts"][0]["trades"]["tag"] == [EVIL] * len(result.trades)


def test_safe_json_cannot_close_a_script():
    text = str(safe_json({"a": "</script><script>x()</script>", "b": "\u2028&", "c": float("nan")}))
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><script>x()</script>", "b": "\u2028&", "c": None}


def test_zero_trades_and_no_levels(daily, tmp_path):
    result = make_result(daily, n_trades=0)
    result.levels = pd.DataFrame()
    text = render_html(result, tmp_path / "empty.html").read_text(encoding="utf-8")
    page = Page(text)
    assert "No trades in this run." in text
    assert page.metric_cells[(1, "n_trades")][1] == "0"
    assert page.metric_cells[(1, "win_rate_pct")][1] == "—"
    assert page.payload()["charts"][0]["trades"]["pnl"] == []
    assert "No zones." in text


def test_several_strategies_one_comparison_card(daily, tmp_path):
    results = [
        make_result(daily, strategy="oversold_bounce", n_trades=20, seed=1),
        make_result(daily, strategy="breakdown", n_trades=11, seed=2, with_liquidation=False),
        make_result(daily, strategy="breakdown", n_trades=0, seed=3),
    ]
    text = render_html(results, tmp_path / "cmp.html").read_text(encoding="utf-8")
    page = Page(text)
    assert 'id="comparison"' in text and text.count('class="strategy"') == 3
    assert "breakdown #2" in text and "breakdown #3" in text
    data = page.payload()
    assert [len(c["trades"]["pnl"]) for c in data["charts"]] == [20, 11, 0]
    # the same candles are stored once for the three strategies
    assert len({c["bars"]["c"]["b"] for c in data["charts"]}) == 1
    assert text.count('class="outlook"') == 1


def test_report_from_saved_results(daily, tmp_path):
    result = make_result(daily, n_trades=12)
    loaded = BacktestResult.load(result.save(tmp_path / "run"))
    page = Page(render_html([loaded], tmp_path / "r.html").read_text(encoding="utf-8"))
    assert len(page.payload()["charts"][0]["trades"]["pnl"]) == 12


def test_hourly_report_is_native_and_under_budget(tmp_path):
    hourly = hourly_candles()
    results = [make_result(hourly, strategy="oversold_bounce", n_trades=400, seed=1),
               make_result(hourly, strategy="breakdown", n_trades=1500, seed=2)]
    path = render_html(results, tmp_path / "hourly.html")
    page = Page(path.read_text(encoding="utf-8"))
    bars = page.payload()["charts"][0]["bars"]
    assert bars["n"] == len(hourly) and bars["step"] == 3600  # every native bar is there
    assert path.stat().st_size < 4_000_000


def test_single_result_and_bad_input(daily, tmp_path):
    result = make_result(daily, n_trades=3)
    assert render_html(result, tmp_path / "x" / "y.html").exists()  # parents created
    with pytest.raises(ValueError, match="at least one"):
        render_html([], tmp_path / "z.html")


def test_a_registered_card_is_shown_first(daily, tmp_path, monkeypatch):
    def market_now(ctx):
        last = ctx.results[0].prices["close"].iloc[-1]
        return Card("market-now", "Market now", f"<p class='mn'>{fmt(last, 'price')}</p>")

    monkeypatch.setattr(cards, "PAGE_CARDS", [market_now, *cards.PAGE_CARDS])
    results = [make_result(daily, n_trades=3, seed=1), make_result(daily, n_trades=4, seed=2)]
    text = render_html(results, tmp_path / "cards.html").read_text(encoding="utf-8")
    order = [text.index(x) for x in ('id="market-now"', 'id="comparison"', 'class="strategy"')]
    assert order == sorted(order)
    assert fmt(daily["close"].iloc[-1], "price") in text


def test_trust_badges(daily, tmp_path):
    a = make_result(daily, n_trades=5)
    a.checks = {"lookahead": {"passed": True, "cuts": [1000, 2000],
                              "cut_times": ["2020-05-12", "2023-02-05"]}}
    b = make_result(daily, n_trades=5, engine="backtrader")
    text = render_html([a, b], tmp_path / "b.html").read_text(encoding="utf-8")
    assert "no look-ahead" in text and "not audited" in text
    assert "engines agree" in text
    assert a.data["sha256"][:12] in text


def test_write_report_folder_round_trip(daily, tmp_path):
    from backtests.reports.write import load_results, write_report

    results = [make_result(daily, strategy="oversold_bounce", n_trades=8, seed=1),
               make_result(daily, strategy="a/b <c>", n_trades=5, seed=2)]  # fmt: skip
    assert not any(k.startswith("png:") for k in write_report(results[:1], tmp_path / "no-png"))
    written = write_report(results, tmp_path / "out", png=True)
    assert written["html"] == tmp_path / "out" / "report.html"
    assert written["dir:2"].name == "2-a-b-c"
    assert {k for k in written if k.startswith("png:")} == {
        f"png:{n}:{c}" for n in (1, 2) for c in ("price", "rsi", "equity")
    }
    loaded = load_results(tmp_path / "out")
    assert [r.strategy for r in loaded] == ["oversold_bounce", "a/b <c>"]
    page = Page(written["html"].read_text(encoding="utf-8"))
    assert [len(c["trades"]["pnl"]) for c in page.payload()["charts"]] == [8, 5]
    with pytest.raises(Exception, match="no saved backtest results"):
        load_results(tmp_path)


def test_png_default_is_the_same_in_the_cli_and_the_api():
    import inspect

    from backtests.cli.run import report_command, run_command
    from backtests.reports.write import write_report

    api = inspect.signature(write_report).parameters["png"].default
    for command in (run_command, report_command):
        option = next(p for p in command.params if p.name == "png")
        assert option.default is api is False  # opt-in: benchmarks/README.md, rendering


def test_long_series_ship_recent_bars_native_and_history_aggregated(tmp_path):
    # 120,000 one-minute bars: the last NATIVE_BARS as they are, the 100,000 before them as the
    # finest display candles that fit in HISTORY_BARS (15 minutes: 6,667), said on the page
    prices = ohlc_frame(120_000, "1m", seed=5, volatility=0.002)
    result = make_result(prices, n_trades=40)
    path = render_html([result], tmp_path / "long.html")
    text = path.read_text(encoding="utf-8")
    data = Page(text).payload()
    (chart,) = data["charts"]
    bars = chart["bars"]
    cut = len(prices) - chart_data.NATIVE_BARS
    assert bars["n"] == len(prices) and bars["history_tf"] == 900
    sec = bars["t0"] + decode(data, bars["t"]) * 60
    hist = prices.iloc[:cut].resample("15min").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    assert len(sec) == len(hist) + chart_data.NATIVE_BARS
    assert len(hist) <= chart_data.HISTORY_BARS
    expect = np.r_[hist.index.as_unit("s").asi8, prices.index[cut:].as_unit("s").asi8]
    np.testing.assert_array_equal(sec, expect)
    assert bars["native_from"] == prices.index[cut].timestamp()
    for col in ("open", "high", "low", "close"):
        want = np.r_[hist[col].to_numpy(), prices[col].to_numpy()[cut:]]
        np.testing.assert_allclose(decode(data, bars[col[0]]), want, atol=0.005)
    np.testing.assert_allclose(decode(data, bars["v"]),
                               np.r_[hist["volume"], prices["volume"].to_numpy()[cut:]],
                               rtol=1e-6)
    eq = result.equity.resample("15min").last()
    want = np.r_[eq.iloc[:len(hist)].to_numpy(), result.equity.to_numpy()[cut:]]
    np.testing.assert_allclose(decode(data, chart["equity"]["equity"]), want, atol=0.005)
    rsi = result.indicators["rsi"]
    want = np.r_[rsi.iloc[:cut].resample("15min").last().to_numpy(), rsi.to_numpy()[cut:]]
    np.testing.assert_allclose(decode(data, chart["lines"]["rsi"]), want, atol=0.005)
    assert f"the {cut:,} bars before them are shown as {len(hist):,} 15m candles" in text
    assert path.stat().st_size < 4_000_000


def test_long_series_merge_the_history_events_per_candle_and_kind():
    # events before the native bars are merged per 15-minute history candle and kind (with how
    # many there were); events among the native bars ship as they are
    prices = ohlc_frame(120_000, "1m", seed=5, volatility=0.002)
    result = make_result(prices, n_trades=10)
    cut = len(prices) - chart_data.NATIVE_BARS
    rng = np.random.default_rng(1)
    rows = np.sort(rng.choice(len(prices), 3_000, replace=False))
    kinds = rng.choice(["support_to_resistance", "retest"], len(rows))
    result.events = pd.DataFrame({"time": prices.index[rows], "kind": kinds,
                                  "price": np.arange(len(rows), dtype=float)})
    out = chart_data.events(result)
    native_from = prices.index[cut].timestamp()
    native = [e for e in out if e["t"] >= native_from]
    merged = [e for e in out if e["t"] < native_from]
    assert [e["t"] for e in native] == [int(t.timestamp()) for t in prices.index[rows[rows >= cut]]]
    assert "n" not in native[0]
    old = pd.Series(kinds[rows < cut], index=prices.index[rows[rows < cut]])
    want = old.groupby([old.index.floor("15min"), old.to_numpy()]).size()
    got = {(pd.Timestamp(e["t"], unit="s", tz="UTC"), e["kind"]): e.get("n", 1) for e in merged}
    assert got == want.to_dict() and sum(got.values()) == (rows < cut).sum()
    assert any(e.get("n", 1) > 1 for e in merged)
    last = max(merged, key=lambda e: e["t"])  # the price is the candle's last event's
    assert last["price"] == float(np.flatnonzero(
        (rows < cut) & (kinds == last["kind"]))[-1])
    # a short series: every event as it is
    short = make_result(prices.iloc[:5_000], n_trades=5)
    short.events = result.events[result.events["time"] < prices.index[5_000]]
    assert [e["t"] for e in chart_data.events(short)] == [
        int(t.timestamp()) for t in short.events["time"]]


@pytest.mark.shared_data
def test_provenance_reads_the_warm_up_and_zones_ladder_by_centre(tmp_path):
    """A real run's report: the warm-up record is sentences per indicator (not a key dump), with
    and without a start date, and the S/R table is ordered by the centre it shows."""
    from backtests import BacktestConfig, run
    from indicators.levels import support_resistance
    from strategies.breakdown import Breakdown

    df = real("1d_binance")
    levels = support_resistance(df).table  # as the job attaches them (backtests.job.analyse)
    for start, expect in ((None, "trading from the first bar (2017-08-17)"),
                          ("2023-06-01", "trading from 2023-06-01; 2,114 bars of history")):
        res = run(df, Breakdown(), BacktestConfig(), start=start).replace(levels=levels)
        page = Page(render_html([res], tmp_path / f"r{start}.html").read_text())
        prov = dict((r[0], r[1]) for r in page.table("provenance") if len(r) == 2)
        assert "checks" not in prov and "warmup" not in prov
        warm = prov["warm-up"]
        assert expect in warm, warm
        assert "200-week EMA" in warm and "RSI(14)" in warm
        if start:  # 2,114 daily bars before the window: enough for RSI, short for the 200w EMA
            assert "RSI(14): had 2,114 of 77 bars (enough)" in warm
            assert "200-week EMA: had 302 of 661 weeks (too short)" in warm
        centres = [float(r[1].replace("$", "").replace(",", "")) for r in page.table("levels")[1:]]
        assert centres == sorted(centres, reverse=True) and len(centres) >= 3


def test_why_names_the_tag_rsi_and_the_last_event_within_30_bars():
    """The trade inspector's reason: the tag, RSI at the signal bar, and the last flip/retest at
    or before the signal bar if it is at most 30 bars old (a retest falls back to its kind;
    missing zone or confirmation are left out)."""
    result = make_result(hourly_candles(300), n_trades=4)
    ev = pd.DataFrame({
        "bar": [110, 150, 160],
        "kind": pd.Categorical(["flip", "flip", "retest"]),
        "flip_kind": pd.Categorical(["support_to_resistance", "resistance_to_support", None]),
        "level_low": [100.0, 200.0, np.nan],
        "level_high": [110.0, 210.5, np.nan],
        "confirmed_by": pd.Categorical(["closes", None, "rejection"]),
    })
    result = result.replace(events=ev)
    rsi = result.indicators["rsi"].to_numpy()
    trades = pd.DataFrame({"tag": ["dip", None, "late", None], "signal_bar": [112, 155, 290, 161],
                           "entry_bar": [113, 156, 291, 162]})
    why = chart_data._why(result, trades)
    assert why == [
        f"signal: dip; RSI {rsi[112]:.1f} at the signal close; last S/R event: support to "
        "resistance zone $100–$110, confirmed by closes (2 bars before)",
        f"RSI {rsi[155]:.1f} at the signal close; last S/R event: resistance to support zone "
        "$200–$210 (5 bars before)",
        f"signal: late; RSI {rsi[290]:.1f} at the signal close",  # event 130 bars old
        f"RSI {rsi[161]:.1f} at the signal close; last S/R event: retest, confirmed by "
        "rejection (1 bar before)",  # a retest has no flip kind: its own kind, not "nan"
    ]
    # without a signal bar the bar before the entry is the signal bar
    assert chart_data._why(result, trades.drop(columns="signal_bar").head(1)) == why[:1]
    assert chart_data._why(result, trades.head(0)) == []
