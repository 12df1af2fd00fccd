"""Start-up stays light: importing a little does not load what it does not use (issue 17)."""

from __future__ import annotations

import subprocess
import sys
import types


def _loaded_after(code: str) -> set[str]:
    """Top-level module names loaded by a fresh interpreter after running ``code``."""
    script = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    return set(out.stdout.split())


def test_from_indicators_import_rsi_loads_no_numba_or_plotting():
    loaded = _loaded_after("from indicators import rsi")
    assert not {"numba", "matplotlib", "plotly", "backtrader", "scipy"} & loaded


def test_every_public_indicator_name_resolves_to_the_function_not_a_module():
    import indicators.flips
    import indicators.outlook
    import indicators.pivots

    assert set(indicators.__all__) == {"atr", "ema", "rsi", "sma", *indicators._LAZY}
    for name in indicators.__all__:
        value = getattr(indicators, name)
        assert not isinstance(value, types.ModuleType), name
    assert callable(indicators.flips) and callable(indicators.outlook)
    assert callable(indicators.pivots)
