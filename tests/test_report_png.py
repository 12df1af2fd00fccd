"""PNG charts: produced, 1600x900, and carrying real content (not blank, not one colour)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from PIL import Image

from backtests.reports.png import _money, _t, render_png
from tests.conftest import real
from tests.factories import make_result

pytestmark = pytest.mark.shared_data

NAMES = ["price.png", "rsi.png", "equity.png"]


def _check_png(path, min_kb: int = 40) -> np.ndarray:
    assert path.exists()
    assert path.stat().st_size > min_kb * 1024, (path.name, path.stat().st_size)
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == (1600, 900)
        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    # mostly white background, but plenty of drawn pixels in several colours
    flat = rgb.reshape(-1, 3)
    non_white = (flat < 235).any(axis=1).mean()
    assert 0.02 < non_white < 0.6, (path.name, non_white)
    colours = {tuple(c) for c in flat[:: 97] // 32}
    assert len(colours) >= 8, (path.name, len(colours))
    return rgb


@pytest.fixture(scope="module")
def daily_result():
    return make_result(real("1d_binance"), n_trades=24)


def test_three_charts_with_content(daily_result, tmp_path):
    paths = render_png(daily_result, tmp_path / "png")
    assert [p.name for p in paths] == NAMES
    images = [_check_png(p) for p in paths]
    # the three charts are different pictures
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(images[a] - images[b]).mean() > 5
    assert matplotlib.get_backend().lower() == "agg"


def test_price_chart_draws_the_trades(daily_result, tmp_path):
    """Removing the trades changes the price chart where the markers were (downsampled diff)."""
    no_trades = make_result(real("1d_binance"), n_trades=0)
    a = _check_png(render_png(daily_result, tmp_path / "a")[0])
    b = _check_png(render_png(no_trades, tmp_path / "b")[0])
    small = lambda im: im.reshape(90, 10, 160, 10, 3).mean(axis=(1, 3))  # noqa: E731
    changed = (np.abs(small(a) - small(b)) > 8).any(axis=2).mean()
    assert changed > 0.01  # markers and entry→exit lines in several places


def test_zero_trades_and_hourly(tmp_path):
    empty = make_result(real("1d_binance"), n_trades=0)
    for p in render_png(empty, tmp_path / "empty"):
        _check_png(p)
    hourly = make_result(real("1h_binance"), n_trades=30)
    for p in render_png(hourly, tmp_path / "hourly"):
        _check_png(p)


def test_user_text_cannot_trigger_mathtext(tmp_path):
    r = make_result(real("1d_binance"), strategy="$x^2$ <b>", n_trades=4)
    for p in render_png(r, tmp_path / "m"):
        _check_png(p)
    assert _t("a $b$") == r"a \$b\$"
    assert _money(12_500) == r"\$12.5k" and _money(5_000) == r"\$5k" and _money(950) == r"\$950"
