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


def test_readme_sweep_hook_example_sweeps_as_each_set_alone(btc_daily) -> None:
    from backtests.tuning.space import grid
    from backtests.tuning.sweep import run_sweep
    from strategies import Signals, Strategy

    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("<!-- sweep-hook-example")
    m = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert m is not None, "the sweep hook example block is missing"
    scope: dict = {"__name__": "__readme__"}
    exec(compile(m.group(1), "README.md:sweep-hook-example", "exec"), scope)
    cls = scope["RsiCross"]

    class PerSet(Strategy):  # the same rule, written for one set
        params = cls.params

        def signals(self, df):
            r = scope["rsi"](df["close"].to_numpy(), self.p.period)
            prev = scope["np"].r_[float("nan"), r[:-1]]
            return Signals.from_entries((r > self.p.oversold) & (prev <= self.p.oversold))

    space = grid({"period": [7, 14, 21], "oversold": [25.0, 30.0]})
    hooked = run_sweep(btc_daily, cls, space, executor="serial", top=0)
    alone = run_sweep(btc_daily, PerSet, space, executor="serial", top=0)
    assert (hooked.table["n_trades"] > 0).all()
    assert hooked.table.equals(alone.table) and hooked.overfit == alone.overfit
