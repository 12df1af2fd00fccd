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


def test_import_indicators_loads_neither_pandas_nor_talib_until_a_computation():
    # TA-Lib's own __init__ imports pandas (~0.5 s): both wait for the first computation.
    loaded = _loaded_after("import indicators\nimport data")
    assert not {"pandas", "talib", "numba", "scipy", "matplotlib"} & loaded
    loaded = _loaded_after("import numpy as np\nfrom indicators import rsi\n"
                           "import talib\nx = np.linspace(1, 50, 60) ** 1.5\n"
                           "assert np.array_equal(rsi(x, 14), talib.RSI(x, 14), equal_nan=True)")
    assert "talib" in loaded


def test_data_names_resolve_to_functions_after_their_modules_are_imported():
    import importlib

    importlib.import_module("data.resample")  # the submodules first: they must not hide
    importlib.import_module("data.validate")  # the functions of the same name
    from data import DataError, resample, validate
    from data.frame import DataError as FrameDataError

    assert callable(resample) and callable(validate) and DataError is FrameDataError
    assert not isinstance(resample, types.ModuleType) and not isinstance(validate, types.ModuleType)


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


def test_cli_help_imports_no_command_module_nor_pandas():
    loaded = _loaded_after("from backtests.cli import main\n"
                           "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert not {"pandas", "numba", "matplotlib", "plotly", "backtrader"} & loaded
    assert not any(m.startswith("backtests.cli.") for m in loaded)


def test_cli_command_table_matches_the_commands():
    import click

    from backtests.cli import COMMANDS, load_command, main

    ctx = click.Context(main)
    for name, (_module, help_line) in COMMANDS.items():
        cmd = main.get_command(ctx, name)
        assert cmd is load_command(name) and cmd.name == name
        assert cmd.get_short_help_str(limit=400) == help_line, name
    # every command a command module defines is listed
    import importlib

    defined = {c.name for m in {mod for mod, _ in COMMANDS.values()}
               for c in importlib.import_module(m).COMMANDS}
    assert defined == set(COMMANDS)
