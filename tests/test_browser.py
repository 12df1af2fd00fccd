"""The HTML report as a trader uses it: opened offline in headless Chromium (Debian's package).

Install the browser with ``bash scripts/install-chromium.sh`` (``make test`` does it). Playwright's
own browser download is never used: we drive ``/usr/bin/chromium`` (or ``$CHROMIUM``).
Screenshots land in ``test-artifacts/`` (full page, the Feb-2026 crash zoomed, a selected trade).
"""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from backtests.reports.html import render_html
from tests.conftest import REPO, real
from tests.factories import hourly_candles, make_result

pytestmark = [pytest.mark.browser, pytest.mark.shared_data]

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
DAY = 86_400


def _chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("Chromium not found: run `bash scripts/install-chromium.sh` (Debian's chromium)")


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, path: Path, viewport=(1600, 1000)):
    """Open ``path``; return the page, console errors, requests and seconds to the first chart."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)  # fmt: skip
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.on("request", lambda r: requests.append(r.url))
    t0 = time.perf_counter()
    page.goto(path.resolve().as_uri(), wait_until="commit")
    page.wait_for_function("document.documentElement.dataset.reportReady === '1'", timeout=20_000,
                           polling="raf")
    page.wait_for_function("document.documentElement.dataset.firstChartMs", timeout=20_000)
    wall = time.perf_counter() - t0
    # ms from navigation start to the frame painting the first price chart (the page's clock)
    first_chart = int(page.evaluate("document.documentElement.dataset.firstChartMs")) / 1000
    print(f"first chart {first_chart:.2f} s (wall {wall:.2f} s, load {os.getloadavg()[0]:.1f})")
    return page, errors, requests, first_chart


def _first_chart(page) -> str:
    return page.evaluate("Object.keys(btcReport.charts)[0]")


def _visible(page, chart: str) -> dict:
    return page.evaluate(f"btcReport.charts[{chart!r}].visible()")


def _axis_labels(page, chart: str) -> int:
    """Tick labels drawn on the price axis of the candle pane: rows of dark text pixels in the
    axis strip, grouped into bands (one band per label)."""
    from PIL import Image

    box = page.evaluate(f"""(() => {{
        const c = btcReport.charts[{chart!r}];
        c.el.scrollIntoView({{block: "center", behavior: "instant"}});
        const r = c.el.getBoundingClientRect();
        const w = c.candles.priceScale().width();
        return {{x: r.right - w, y: r.top, w: w, h: c.chart.panes()[0].getHeight()}};
    }})()""")
    png = page.screenshot(clip={"x": box["x"] + 2, "y": box["y"], "width": box["w"] - 4,
                                "height": box["h"]})
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    dark = ((rgb.max(axis=2) < 130) & (np.ptp(rgb, axis=2) < 40)).sum(axis=1) >= 2
    bands = np.flatnonzero(np.diff(np.r_[0, dark.astype(int)]) == 1)
    return len(bands)


@pytest.fixture(scope="module")
def daily_report(tmp_path_factory) -> Path:
    daily = real("1d_binance")
    results = [
        make_result(daily, strategy="oversold_bounce", n_trades=24, seed=0),
        make_result(daily, strategy="breakdown", n_trades=60, seed=5),
    ]
    return render_html(results, tmp_path_factory.mktemp("browser") / "report.html")


def test_report_behaves_like_a_trading_chart(browser, daily_report):
    page, errors, requests, first_chart = _open(browser, daily_report)
    ARTIFACTS.mkdir(exist_ok=True)
    assert first_chart < 5.0, first_chart  # budget 1 s on a quiet machine: benchmarks/README
    chart = _first_chart(page)
    assert page.locator(f"#{chart} canvas").count() >= 3  # price, volume, RSI panes drawn

    # The February 2026 crash: the price axis refits to the candles in view, labelled.
    page.evaluate(f"btcReport.zoom({chart!r}, '2026-01-25', '2026-02-15')")
    page.wait_for_timeout(300)
    v = _visible(page, chart)
    assert v["tf"] == DAY and 15 <= v["candles"] <= 25, v
    assert 55_000 <= v["bottom"] < v["top"] <= 100_000, v
    assert _axis_labels(page, chart) >= 3
    page.locator(f"#{chart}").scroll_into_view_if_needed()
    page.locator(f"#{chart}").screenshot(path=str(ARTIFACTS / "report-crash-zoom.png"))
    page.locator(f'.toolbar[data-chart="{chart}"] [data-scale="linear"]').click()
    page.wait_for_timeout(200)
    v_lin = _visible(page, chart)
    assert 55_000 <= v_lin["bottom"] < v_lin["top"] <= 100_000, v_lin
    assert _axis_labels(page, chart) >= 3

    # Range buttons are measured from the data's end: 6M shows six months of daily candles.
    page.locator(f'.toolbar[data-chart="{chart}"] [data-range="6M"]').click()
    page.wait_for_timeout(200)
    v = _visible(page, chart)
    assert v["tf"] == DAY and v["candles"] >= 150, v
    end = page.evaluate(f"btcReport.charts[{chart!r}].last")
    assert abs(v["to"] - end) <= DAY  # no padding beyond the data

    # Clicking the first trade row zooms the chart onto that trade and opens the inspector.
    table = page.locator(f'table.trades[data-chart="{chart}"]')
    page.locator(f'.toolbar[data-chart="{chart}"] [data-range="All"]').click()
    first = table.locator("tbody tr.trade").first
    i = int(first.get_attribute("data-i"))
    entry, exit_ = page.evaluate(f"[btcReport.charts[{chart!r}].trades.entry_time[{i}], "
                                 f"btcReport.charts[{chart!r}].trades.exit_time[{i}]]")
    before = _visible(page, chart)
    first.click()
    page.wait_for_timeout(300)
    after = _visible(page, chart)
    assert (after["from"], after["to"]) != (before["from"], before["to"])
    assert after["from"] <= entry and exit_ <= after["to"] + DAY, (after, entry, exit_)
    inspector = page.locator(f"#{chart}-inspector")
    assert inspector.is_visible() and "Trade #1" in inspector.inner_text()
    assert "Why" in inspector.inner_text()
    page.locator(f"#{chart}").scroll_into_view_if_needed()
    page.locator(f"#{chart}").locator("xpath=..").screenshot(
        path=str(ARTIFACTS / "report-selected-trade.png"))

    # Sorting the trade list by P/L orders it (descending first, then ascending).
    header = table.locator("thead th[data-col=pnl]")
    header.click()
    pnl = page.evaluate(f"""Array.from(document.querySelectorAll(
        'table.trades[data-chart="{chart}"] tbody tr.trade')).map(r =>
        btcReport.charts[{chart!r}].trades.pnl[+r.dataset.i])""")
    assert pnl == sorted(pnl, reverse=True) and len(pnl) == 24
    assert header.get_attribute("aria-sort") == "descending"
    header.click()
    texts = table.locator("tbody tr.trade td:nth-child(9)").all_inner_texts()
    values = [float(t.replace("−", "-").replace("$", "").replace(",", "")) for t in texts]
    assert values == sorted(values)

    # Filtering and CSV export.
    tools = page.locator(f'.trade-tools[data-chart="{chart}"]')
    tools.locator(".trade-outcome").select_option("loss")
    shown = table.locator("tbody tr.trade").count()
    assert 0 < shown < 24 and all(v <= 0 for v in pnl[-shown:])
    with page.expect_download() as dl:
        tools.locator(".trade-csv").click()
    csv = Path(dl.value.path()).read_text().splitlines()
    assert csv[0].startswith("n,side,entry_time") and len(csv) == shown + 1

    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    page.close()
    assert errors == []
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests
    assert daily_report.stat().st_size < 2_000_000


def test_drawdown_pane_keeps_a_linear_axis_under_a_log_equity_axis(browser, daily_report):
    """The equity pane turns log when equity or buy & hold spans more than 5x (buy & hold on the
    daily file does); the drawdown pane under it must stay linear in percent. lightweight-charts
    hands a pane created after the log switch the log mode too: the report drew -16 % and -59 %
    drawdowns at almost the same height."""
    page, errors, _, _ = _open(browser, daily_report)
    chart = _first_chart(page)
    got = page.evaluate(f"""(() => {{
        const eq = btcReport.charts[{chart!r}].equity, panes = eq.panes();
        const dd = panes[1].getSeries()[0];
        return {{modes: [eq.priceScale("right", 0).options().mode,
                         eq.priceScale("right", 1).options().mode],
                 y: [0, -20, -40].map(v => dd.priceToCoordinate(v))}};
    }})()""")
    page.close()
    assert errors == []
    assert got["modes"] == [1, 0], got
    y0, y20, y40 = got["y"]
    assert y0 < y20 < y40 and abs((y20 - y0) - (y40 - y20)) <= 1.0, got  # equal steps: linear


@pytest.mark.slow
def test_hourly_report_draws_native_candles_when_zoomed_in(browser, tmp_path):
    hourly = hourly_candles()  # 44k bars, like Binance hourly 2021-2026
    results = [make_result(hourly, strategy="oversold_bounce", n_trades=300, seed=1),
               make_result(hourly, strategy="breakdown", n_trades=1500, seed=2)]
    path = render_html(results, tmp_path / "hourly.html")
    assert path.stat().st_size < 4_000_000
    page, errors, _, first_chart = _open(browser, path)
    assert first_chart < 8.0, first_chart  # budget 2 s on a quiet machine: benchmarks/README
    chart = _first_chart(page)
    assert _visible(page, chart)["tf"] > 3600  # all 44k bars in view: aggregated
    page.evaluate(f"btcReport.zoom({chart!r}, '2025-02-01', '2025-02-08')")
    page.wait_for_timeout(300)
    v = _visible(page, chart)
    assert v["tf"] == 3600 and v["candles"] >= 150, v  # native hourly candles
    page.close()
    assert errors == []


def test_zero_trade_report_renders(browser, tmp_path):
    result = make_result(real("1d_binance"), n_trades=0)
    page, errors, _, _ = _open(browser, render_html([result], tmp_path / "empty.html"))
    assert page.locator("table.trades tbody tr.trade").count() == 0
    assert page.locator("table.trades tbody tr.no-trades").is_visible()
    page.close()
    assert errors == []
