"""The HTML report as a user sees it: opened offline in headless Chromium (Debian's package).

Install the browser with ``bash scripts/install-chromium.sh`` (``make test`` does it). Playwright's
own browser download is never used: we drive ``/usr/bin/chromium`` (or ``$CHROMIUM``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from backtests.reports.html import render_html
from tests.conftest import REPO, real
from tests.factories import make_result

pytestmark = [pytest.mark.browser, pytest.mark.shared_data]

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


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


def _open(browser, path: Path, viewport=(1480, 1000)):
    """Open ``path``; return the page and the lists of console errors and failed/remote requests."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)  # fmt: skip
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, errors, requests


def test_report_renders_in_chromium(browser, tmp_path):
    daily = real("1d_binance")
    results = [
        make_result(daily, strategy="oversold_bounce", n_trades=24, seed=0),
        make_result(daily, strategy="breakdown", n_trades=14, seed=5),
    ]
    path = render_html(results, tmp_path / "report.html")
    page, errors, requests = _open(browser, path)
    n_figures = 1 + 2 * len(results)  # comparison + (price, equity) per strategy
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_figures}",
        timeout=20_000,
    )
    # every chart drew: plotly's SVG layers exist and hold traces
    plots = page.locator(".js-plotly-plot")
    assert plots.count() == n_figures
    for i in range(n_figures):
        assert plots.nth(i).locator("svg.main-svg").count() >= 1
        assert plots.nth(i).locator("g.trace").count() >= 1
    # candles are drawn as SVG paths, one box per bar
    price_id = page.locator("section.strategy").first.get_attribute("id") + "-price"
    price = page.locator(f"#{price_id}")
    assert price.locator("g.trace.boxes path").count() >= len(daily) * 0.95
    # tables rendered, with exactly one row per trade
    for r in results:
        rows = page.locator(f'table.trades[data-strategy="{r.strategy}"] tbody tr.trade')
        assert rows.count() == len(r.trades)
        assert page.locator(f'table.trades[data-strategy="{r.strategy}"]').is_visible()
    assert page.locator("table.summary").count() == len(results)
    assert page.locator("table.comparison tbody tr").count() >= 10
    assert page.locator("#outlook .outlook-text").first.inner_text().startswith("BTC closed at")
    # hovering the price chart shows plotly's hover label (the chart is interactive)
    drag = price.locator(".nsewdrag").first
    drag.scroll_into_view_if_needed()
    box = drag.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    page.wait_for_function(
        f"document.querySelectorAll('#{price_id} .hoverlayer .hovertext, "
        f"#{price_id} .hoverlayer .legend').length > 0",
        timeout=5_000,
    )
    page.evaluate("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    page.close()
    assert errors == []
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests
    assert (ARTIFACTS / "report.png").stat().st_size > 100_000


def test_zero_trade_report_renders(browser, tmp_path):
    result = make_result(real("1d_binance"), n_trades=0)
    page, errors, _ = _open(browser, render_html([result], tmp_path / "empty.html"))
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2")
    assert page.locator("table.trades tbody tr.trade").count() == 0
    assert page.locator("table.trades tbody tr.no-trades").is_visible()
    page.close()
    assert errors == []
