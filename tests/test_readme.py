"""The README's notebook example runs as written, on a frame read with plain ``pd.read_csv``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO, real_path

MARKER = "<!-- notebook-example"


def notebook_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(MARKER)
    m = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert m is not None, "the notebook example block is missing"
    return m.group(1)


def test_readme_notebook_example_runs(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    data = real_path("1d_binance")  # the daily file bundled with the package
    monkeypatch.chdir(Path(data).parent)
    code = notebook_example()
    assert f'pd.read_csv("{data.name}"' in code  # plain pandas, no loader of ours
    exec(compile(code, "README.md:notebook-example", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "datetime64[us, UTC]" in out
    assert "2026-02-06" in out
    assert "Sharpe Ratio" in out and "# Trades" in out
