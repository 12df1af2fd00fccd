"""The self-contained HTML report: complete, offline, escaped, with one or several strategies."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from backtests.reports.html import (
    _down_ohlc,
    _log_ticks,
    display_timeframe,
    fmt,
    render_html,
    safe_json,
)
from backtests.results import BacktestResult
from tests.conftest import real
from tests.factories import make_result

pytestmark = pytest.mark.shared_data

EVIL = "<script>alert(1)</script>"


class Page(HTMLParser):
    """Collects what the tests look at: tags with attributes, trade rows, scripts, metric cells."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.trade_rows: dict[str, int] = {}
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.metric_cells: dict[tuple[int, str], list[str]] = {}
        self._table: str | None = None
        self._summary_no = 0
        self._in_summary = False
        self._metric: str | None = None
        self._cell: list[str] | None = None
        self._script: dict[str, str | None] | None = None
        self._script_text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        cls = (a.get("class") or "").split()
        if tag == "table" and "trades" in cls:
            self._table = a.get("data-strategy") or ""
            self.trade_rows.setdefault(self._table, 0)
        if tag == "table" and "summary" in cls:
            self._in_summary = True
            self._summary_no += 1
        if tag == "tr" and self._table is not None and "trade" in cls:
            self.trade_rows[self._table] += 1
        if tag == "tr" and self._in_summary and a.get("data-metric"):
            self._metric = a["data-metric"]
            self.metric_cells[(self._summary_no, self._metric)] = []
        if tag == "td" and self._metric is not None:
            self._cell = []
        if tag == "script":
            self._script, self._script_text = a, []

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
            self._in_summary = False
        if tag == "td" and self._cell is not None and self._metric is not None:
            self.metric_cells[(self._summary_no, self._metric)].append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr":
            self._metric = None
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._script_text)))
            self._script = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._script is not None:
            self._script_text.append(data)

    def figures(self) -> dict:
        (text,) = [t for a, t in self.scripts if a.get("id") == "figure-data"]
        return json.loads(text)


def arr(value) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata" (base64)}."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    return real("1d_binance")


@pytest.fixture(scope="module")
def one(daily, tmp_path_factory) -> tuple[BacktestResult, str, Page]:
    result = make_result(daily, n_trades=24)
    path = render_html([result], tmp_path_factory.mktemp("one") / "report.html")
    text = path.read_text(encoding="utf-8")
    return result, text, Page(text)


def test_every_trade_is_a_row(one):
    result, text, page = one
    assert len(result.trades) >= 20
    assert page.trade_rows == {result.strategy: len(result.trades)}
    for t in result.trades.itertuples():
        assert fmt(t.entry_price, "price") in text
        assert fmt(t.pnl, "money") in text
    assert "liquidation" in set(result.trades["exit_reason"])  # the factory's 10x trade


def test_metrics_table_shows_the_saved_metrics(one):
    result, _, page = one
    m = result.metrics
    for key, kind in [("total_return_pct", "pct"), ("max_drawdown_pct", "pct"),
                      ("sharpe", "ratio"), ("win_rate_pct", "pct"), ("n_trades", "int"),
                      ("final_equity", "money"), ("fees_paid", "money")]:  # fmt: skip
        assert page.metric_cells[(1, key)][1] == fmt(m[key], kind), key
    # Long + Short trade counts add up to All; the split is the trade list's.
    _, all_n, long_n, short_n = page.metric_cells[(1, "n_trades")]
    assert int(long_n) + int(short_n) == int(all_n) == len(result.trades)
    assert int(long_n) == int((result.trades["side"] > 0).sum())
    # every saved metric has a row
    assert {k for (_, k) in page.metric_cells} >= set(m)


def test_provenance_outlook_params_and_exit_reasons(one):
    result, text, _ = one
    for key in ("sha256", "source", "start", "end"):
        assert str(result.data[key]) in text
    assert f"{result.data['rows']:,}" in text or str(result.data["rows"]) in text
    assert result.outlook["text"].split(".")[0] in text
    assert "Technical outlook" in text
    for name in result.params:
        assert f"<th>{name}</th>" in text
    for reason in set(result.trades["exit_reason"]):
        assert f"<td>{reason}</td>" in text
    assert "Monthly returns" in text and "Worst drawdowns" in text


def test_self_contained_no_external_urls(one):
    _, text, page = one
    for tag, attrs in page.tags:
        for attr in ("src", "href"):
            value = attrs.get(attr)
            if value is not None:
                assert "http" not in value and not value.startswith("//"), (tag, value)
        if tag == "link":
            raise AssertionError(f"external stylesheet/link: {attrs}")
    scripts = [a for a, _ in page.scripts]
    assert all("src" not in a for a in scripts)
    # plotly.js inlined exactly once
    from plotly.offline import get_plotlyjs

    head = get_plotlyjs()[:300]
    assert text.count(head) == 1


def test_figures_hold_candles_levels_events_trades_rsi_equity(one):
    result, _, page = one
    figs = page.figures()
    price = next(v for k, v in figs.items() if k.endswith("-price"))
    names = [t.get("name", "") for t in price["data"]]
    candles = next(t for t in price["data"] if t["type"] == "candlestick")
    assert len(candles["x"]) == len(result.prices)
    assert {"200-week EMA", "RSI", "Long entry", "Exit", "Liquidation"} <= set(names)
    assert any(n.startswith("Flip") for n in names) and any(n.startswith("Retest") for n in names)
    # one band per S/R zone
    rects = [s for s in price["layout"]["shapes"] if s["type"] == "rect" and s.get("yref") == "y"]
    assert len(rects) == len(result.levels)
    # entry markers cover every trade
    entries = sum(len(t["x"]) for t in price["data"] if t.get("name", "").endswith("entry"))
    assert entries == len(result.trades)
    equity = next(v for k, v in figs.items() if k.endswith("-equity"))
    assert {"Strategy equity", "Buy & hold", "Drawdown"} <= {t["name"] for t in equity["data"]}
    eq_trace = next(t for t in equity["data"] if t["name"] == "Strategy equity")
    np.testing.assert_allclose(arr(eq_trace["y"]), result.equity.to_numpy(), atol=0.006)
    np.testing.assert_allclose(arr(candles["high"]), result.prices["high"].to_numpy())


def test_user_strings_are_escaped(daily, tmp_path):
    result = make_result(
        daily, strategy=EVIL, params={"note": EVIL, "oversold": 30.0}, n_trades=6
    )
    result.trades["tag"] = EVIL
    result.outlook["text"] = f"Outlook {EVIL} & more"
    result.data["origin"] = EVIL
    path = render_html([result], tmp_path / "evil.html")
    text = path.read_text(encoding="utf-8")
    assert EVIL not in text
    assert text.lower().count("<script") == 3  # plotly.js, the figure data, the bootstrap
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = Page(text)
    # the only scripts are ours: plotly, the figure data, the bootstrapping code
    assert len(page.scripts) == 3
    figs = page.figures()  # still valid JSON; chart hover text is HTML-escaped for plotly
    hover = json.dumps(figs)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hover and EVIL not in hover
    assert page.trade_rows == {EVIL: len(result.trades)}


def test_safe_json_cannot_close_a_script():
    text = str(safe_json({"a": "</script><script>x()</script>", "b": "\u2028&"}))
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><script>x()</script>", "b": "\u2028&"}


def test_zero_trades(daily, tmp_path):
    result = make_result(daily, n_trades=0)
    assert len(result.trades) == 0
    text = render_html(result, tmp_path / "empty.html").read_text(encoding="utf-8")
    page = Page(text)
    assert page.trade_rows == {result.strategy: 0}
    assert "No trades in this run." in text
    assert page.metric_cells[(1, "n_trades")][1] == "0"
    assert page.metric_cells[(1, "win_rate_pct")][1] == "—"  # NaN shown as a dash
    price = next(v for k, v in page.figures().items() if k.endswith("-price"))
    assert not any(t.get("name", "").endswith("entry") for t in price["data"])


def test_several_strategies_one_comparison_page(daily, tmp_path):
    results = [
        make_result(daily, strategy="oversold_bounce", n_trades=20, seed=1),
        make_result(daily, strategy="breakdown", n_trades=11, seed=2, with_liquidation=False),
        make_result(daily, strategy="breakdown", n_trades=0, seed=3),
    ]
    text = render_html(results, tmp_path / "cmp.html").read_text(encoding="utf-8")
    page = Page(text)
    assert 'id="comparison"' in text
    assert text.count('class="strategy"') == 3
    # the same name twice gets distinct columns; each section lists its own trades
    assert "breakdown #2" in text and "breakdown #3" in text
    counts = [
        len(re.findall(r'<tr class="trade ', part))
        for part in text.split('<section id="s')[1:]
    ]
    assert counts == [20, 11, 0]
    figs = page.figures()
    comp = figs["comparison-equity"]
    assert [t["name"] for t in comp["data"]].count("Buy & hold") == 1  # same data: one B&H
    assert len(comp["data"]) == 1 + len(results)
    assert sum(k.endswith("-price") for k in figs) == 3
    # one outlook section for the shared data
    assert text.count('class="outlook"') == 1


def test_report_from_saved_results(daily, tmp_path):
    result = make_result(daily, n_trades=12)
    loaded = BacktestResult.load(result.save(tmp_path / "run"))
    page = Page(render_html([loaded], tmp_path / "r.html").read_text(encoding="utf-8"))
    assert page.trade_rows == {result.strategy: len(result.trades)}


def test_hourly_data_is_downsampled_for_display_only(tmp_path):
    hourly = real("1h_binance")  # 3,666 real hourly bars: a lower cap makes them too many
    cap = 1500
    result = make_result(hourly, n_trades=40)
    tf = display_timeframe(hourly, max_candles=cap)
    assert tf is not None and pd.Timedelta(tf) > pd.Timedelta("1h")
    path = render_html([result], tmp_path / "hourly.html", max_candles=cap)
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    price = next(v for k, v in page.figures().items() if k.endswith("-price"))
    candles = next(t for t in price["data"] if t["type"] == "candlestick")
    assert len(candles["x"]) <= cap < len(hourly)
    assert "Display downsampled" in text
    assert page.trade_rows == {result.strategy: len(result.trades)}  # trade list complete
    assert path.stat().st_size < 8_000_000  # plotly.js is ~4.8 MB of it


def test_downsampled_candles_are_exact_aggregates():
    hourly = real("1h_binance").iloc[:24 * 60]
    bars = _down_ohlc(hourly, "1d")
    ref = hourly.resample("1D").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    pd.testing.assert_frame_equal(bars, ref.dropna(), check_freq=False, check_names=False)


def test_display_timeframe_and_ticks():
    idx = pd.date_range("2020-01-01", periods=50_000, freq="1h", tz="UTC", name="timestamp")
    df = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
                      index=idx)  # fmt: skip
    df.attrs["timeframe"] = "1h"
    assert display_timeframe(df.iloc[:100]) is None
    assert display_timeframe(df, max_candles=6000) == "12h"  # 50k h / 12 = 4167 bars
    assert display_timeframe(df, max_candles=30_000) == "2h"
    assert _log_ticks(3000, 126_000) == [5000, 10_000, 20_000, 50_000, 100_000]
    assert fmt(float("inf"), "ratio") == "∞" and fmt(np.nan, "pct") == "—"
    assert fmt(-1234.5, "money") == "−$1,234.50"


def test_single_result_and_bad_input(daily, tmp_path):
    result = make_result(daily, n_trades=3)
    assert render_html(result, tmp_path / "x" / "y.html").exists()  # parents created
    with pytest.raises(ValueError, match="at least one"):
        render_html([], tmp_path / "z.html")


def test_file_size_is_reasonable(one):
    _, text, _ = one
    assert len(text.encode()) < 6_500_000  # ~4.8 MB plotly.js + ~0.8 MB report


def test_write_report_folder_round_trip(daily, tmp_path):
    from backtests.reports.write import load_results, write_report

    results = [make_result(daily, strategy="oversold_bounce", n_trades=8, seed=1),
               make_result(daily, strategy="a/b <c>", n_trades=5, seed=2)]  # fmt: skip
    written = write_report(results, tmp_path / "out")
    assert written["html"] == tmp_path / "out" / "report.html"
    assert written["dir:2"].name == "2-a-b-c"
    assert {k for k in written if k.startswith("png:")} == {
        f"png:{n}:{c}" for n in (1, 2) for c in ("price", "rsi", "equity")
    }
    loaded = load_results(tmp_path / "out")
    assert [r.strategy for r in loaded] == ["oversold_bounce", "a/b <c>"]
    assert [len(r.trades) for r in loaded] == [len(r.trades) for r in results]
    assert len(load_results(written["dir:1"])) == 1
    page = Page(written["html"].read_text(encoding="utf-8"))
    assert page.trade_rows == {"oversold_bounce": 8, "a/b <c>": 5}
    with pytest.raises(Exception, match="no saved backtest results"):
        load_results(tmp_path)


def test_indicator_style_events_and_many_levels(daily, tmp_path):
    """Events without a price column (the indicators' flips table) sit at their level; only
    the zones nearest to the last close are drawn, and big event groups start hidden."""
    result = make_result(daily, n_trades=5)
    ev = result.events.drop(columns=["price"])
    ev["kind"] = np.where(ev["kind"] == "flip", "support_to_resistance", "retest")
    many = pd.concat([ev[ev["kind"] == "retest"]] * 30, ignore_index=True)
    result.events = pd.concat([ev[ev["kind"] != "retest"], many], ignore_index=True)
    last = float(daily["close"].iloc[-1])
    centres = last * np.linspace(0.2, 3.0, 50)
    result.levels = pd.DataFrame({"centre": centres, "low": centres * 0.99,
                                  "high": centres * 1.01, "role": "support", "touches": 2})
    page = Page(render_html([result], tmp_path / "ev.html").read_text(encoding="utf-8"))
    price = next(v for k, v in page.figures().items() if k.endswith("-price"))
    flips = next(t for t in price["data"] if t.get("name", "").startswith("Support to resistance"))
    np.testing.assert_allclose(arr(flips["y"]), ev.loc[ev["kind"] != "retest", "level"], atol=0.01)
    assert flips.get("visible", True) is True
    retests = next(t for t in price["data"] if t.get("name", "").startswith("Retest"))
    assert retests["visible"] == "legendonly" and len(arr(retests["y"])) == len(many)
    rects = [s for s in price["layout"]["shapes"] if s["type"] == "rect" and s.get("yref") == "y"]
    assert len(rects) == 10
    lows = sorted(r["y0"] for r in rects)
    assert lows[0] < last < lows[-1] * 1.02  # the nearest, around the last close
