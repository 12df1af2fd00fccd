"""Every bad option value exits 2 with one line naming the option, before any data is loaded;
numbers must be finite; an unaffordable fixed size is capped with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from backtests.cli import main

CANONICAL = Path(__file__).parent / "data" / "formats" / "canonical.csv"

BAD = [
    (["run", "-p", "target_r=inf"], "--param", "'target_r' expects float (a finite number)"),
    (["run", "-p", "confluence_pct=inf"], "--param", "'confluence_pct' expects float"),
    (["run", "-p", "buffer_atr=-inf"], "--param", "'buffer_atr' expects float"),
    (["run", "-p", "oversold=nan"], "--param", "'oversold' expects float"),
    (["run", "-p", "rsi_period=99999999999999999999"], "--param",
     "'rsi_period' expects int (a whole number up to 2,147,483,647)"),
    (["run", "--timeframe", "99999999999999999999d"], "'--timeframe'", "longer than 3660 days"),
    (["run", "--timeframe", "0h"], "'--timeframe'", "must be positive"),
    (["run", "--start", "2024-13-01"], "'--start'", "is not a date"),
    (["run", "--cash", "inf"], "cash", "must be finite"),
    (["run", "--commission", "nan"], "commission", "must be finite"),
    (["run", "--strategy", ",,,"], "--strategy", "names no strategy"),
    (["run", "--out", "/proc/btc-backtest/out"], "--out", "cannot write there"),
    (["data", "resample", str(CANONICAL), "--to", "4h", "-o", "/nonexistent/x.csv"], "'-o'",
     "does not exist"),
    (["data", "import", str(CANONICAL), "--data-dir", "/proc/btc-backtest"], "--data-dir",
     "cannot write to the candle store folder"),
    (["sweep", "oversold_bounce", "--grid", "oversold=25,30", "--out", "."], "--out",
     "is the current folder"),
]


@pytest.mark.parametrize("args,option,fragment", BAD, ids=[" ".join(b[0][:3]) for b in BAD])
def test_bad_value_exits_2_naming_the_option(args, option, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, [*args, "--dataset", "binance"] if args[0] in ("run", "sweep")
                           else args)
    assert r.exit_code == 2, r.output
    assert option in r.output and fragment in r.output, r.output
    assert "Traceback" not in r.output
    assert "data:" not in r.output  # refused before any data was loaded
    lines = [ln for ln in r.output.splitlines() if ln.strip() and not ln.startswith(("Usage",
                                                                                     "Try "))]
    assert len(lines) == 1, r.output


def test_unaffordable_fixed_size_is_capped_with_a_warning(tmp_path):
    data = tmp_path / "btc.csv"
    lines = CANONICAL.read_text()
    data.write_text(lines)
    r = CliRunner().invoke(main, ["run", "--data", str(data), "-s", "oversold_bounce",
                                  "--sizing", "fixed", "--size", "1e12", "--no-png", "--out",
                                  str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "warning: --size 1e+12 BTC is more than --cash 10000 x --leverage 1 buys" in r.output
    assert "entries are capped at what the equity affords" in r.output
