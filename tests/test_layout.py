"""A user's ``data.py`` (or ``strategies/``) next to a notebook shadows our packages: importing
``backtests`` says so in one clear ImportError instead of failing deep inside an import."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from backtests.layout import ROOT, ShadowedPackageError, check_layout


def _import_backtests(cwd: Path) -> subprocess.CompletedProcess:
    # ``python -c`` puts the current directory first on sys.path, as a notebook kernel does.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", "from backtests import run; print(run)"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_users_data_py_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "data.py").write_text("rows = [1, 2, 3]\n")
    res = _import_backtests(tmp_path)
    assert res.returncode != 0
    assert "ShadowedPackageError" in res.stderr
    assert f"{tmp_path / 'data.py'} shadows btc-backtest's 'data' package" in res.stderr
    assert "rename your data.py" in res.stderr


def test_a_users_strategies_package_is_named_too(tmp_path: Path) -> None:
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "__init__.py").write_text("")
    res = _import_backtests(tmp_path)
    assert res.returncode != 0 and "shadows btc-backtest's 'strategies' package" in res.stderr


def test_without_shadowing_files_the_import_works(tmp_path: Path) -> None:
    (tmp_path / "notes.py").write_text("")
    (tmp_path / "data").mkdir()  # a plain folder of CSVs (no __init__.py) shadows nothing
    res = _import_backtests(tmp_path)
    assert res.returncode == 0, res.stderr
    assert "function run" in res.stdout


def test_check_layout_in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    check_layout()  # this checkout: fine
    fake = types.ModuleType("indicators")
    fake.__file__ = str(tmp_path / "indicators.py")
    monkeypatch.setitem(sys.modules, "indicators", fake)
    with pytest.raises(ShadowedPackageError, match=r"indicators\.py shadows"):
        check_layout()
