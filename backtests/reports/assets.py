"""What every report page is made of: the chart library, our stylesheet and script, the template
environment, and safe embedding of data in a page.

The chart library is TradingView's lightweight-charts (Apache-2.0), a ~200 KB standalone build
read at render time from the installed PyPI package ``lwcharts`` (a dependency in setup.cfg, which
ships ``lightweight-charts.standalone.production.js`` v5.2 and needs only pandas). It is inlined
once per page, so a report is one file that works offline. It was chosen over plotly.js (4.8 MB)
for TradingView's own chart behaviour: the price axis refits to the visible candles, readable
ticks on log and linear scales, panes for volume and RSI, markers beside the bars.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from backtests.reports.format import fmt, fmt_duration, fmt_time, fmt_value, label, sign_class
from data.frame import DataError

TEMPLATES = Path(__file__).with_name("templates")
CHART_PACKAGE = "lwcharts"
CHART_FILE = "vendor/lightweight-charts.standalone.production.js"


@functools.cache
def chart_library() -> Markup:
    """The lightweight-charts standalone script, ready to inline in a ``<script>`` element.

    Raises:
        DataError: when the ``lwcharts`` package (which ships it) is not installed.
    """
    try:
        text = (resources.files(CHART_PACKAGE) / CHART_FILE).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise DataError(
            f"the chart library is missing: {CHART_PACKAGE}/{CHART_FILE} ({exc})",
            hint=f"pip install {CHART_PACKAGE} (a btc-backtest dependency; `make install`)",
        ) from None
    if "Lightweight Charts" not in text[:400]:
        raise DataError(f"{CHART_PACKAGE}/{CHART_FILE} is not TradingView's lightweight-charts",
                        hint=f"reinstall {CHART_PACKAGE}")
    return Markup(re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE))


@functools.cache
def asset(name: str) -> Markup:
    """One of our own static files (``report.css``, ``report.js``), for inlining."""
    return Markup((TEMPLATES / name).read_text(encoding="utf-8"))


def safe_json(obj: Any) -> Markup:
    """JSON for embedding in an HTML ``<script>``: ``<``, ``>``, ``&`` and U+2028/U+2029 escaped,
    so no string can end the script element or break the JS parser. NaN becomes null."""
    text = obj if isinstance(obj, str) else json.dumps(_finite(obj), separators=(",", ":"),
                                                       allow_nan=False, default=str)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return Markup(text)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


@functools.cache
def environment() -> Environment:
    """The jinja2 environment of every report page: autoescaped, strict, with the format
    filters (``fmt``, ``fmt_value``, ``fmt_time``, ``fmt_duration``, ``sign``, ``json``,
    ``label``)."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt, fmt_value=fmt_value, fmt_time=fmt_time,
                       fmt_duration=fmt_duration, sign=sign_class, json=safe_json,
                       label=label)
    env.globals.update(chart_library=chart_library, asset=asset)
    return env


def render(template: str, **context: Any) -> str:
    """Render one template of ``templates/`` with ``context``."""
    return environment().get_template(template).render(**context)
