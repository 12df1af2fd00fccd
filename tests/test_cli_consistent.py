"""One consistent command line (issue 13, section 3): names, suggestions, one error style, number
formatting, walk-forward and sweep summaries, timeframe and date hints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import backtests.cli.tuning as cli_tuning
from backtests.cli import main
from backtests.tuning.walkforward import WalkForwardResult
from strategies import OversoldBounce, load_strategy
from tests.conftest import real_path

pytestmark = pytest.mark.shared_data


@pytest.fixture
def daily() -> str:
    return str(real_path("1d_binance"))


@pytest.fixture(autouse=True)
def _private_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTC_BACKTEST_DATA", str(tmp_path / "store"))


def _run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


def _one_error_line(stderr: str) -> str:
    """The error output is exactly one line: ``error: WHAT (fix: HOW)``."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, stderr
    line = lines[0]
    assert re.fullmatch(r"error: .+ \(fix: .+\)", line), line
    assert "Usage:" not in stderr and "Traceback" not in stderr and "Try '" not in stderr
    return line


# ---------- strategy names and suggestions ----------


def test_strategy_names_accept_dash_and_underscore(daily: str) -> None:
    assert load_strategy("oversold-bounce") is load_strategy("oversold_bounce") is OversoldBounce
    for name in ("oversold-bounce", "oversold_bounce"):
        code, out, err = _run("audit", name, "--data", daily, "--start", "2025-06-01",
                              "--cuts", "2", "--no-trades")
        assert code == 0, err
        assert "oversold_bounce" in out


@pytest.mark.parametrize(("args", "suggestion"), [
    (("run", "-s", "brekdown"), "did you mean 'breakdown'?"),
    (("sweep", "oversold-bounse", "--grid", "rsi_period=10,14"), "did you mean 'oversold_bounce'?"),
    (("run", "-s", "oversold_bounce", "-p", "rsi_perod=10"), "did you mean 'rsi_period'"),
    (("run", "-s", "breakdown", "-p", "breakdown.confirm_close=2"),
     "did you mean 'confirm_closes'?"),
    (("sweep", "oversold_bounce", "--grid", "oversld=20,25"), "did you mean 'oversold'"),
    (("audit", "oversold_bounce", "--param", "rsi_perod=10"), "did you mean 'rsi_period'"),
])
def test_unknown_names_get_the_closest_not_the_full_list(daily: str, args: tuple[str, ...],
                                                         suggestion: str) -> None:
    code, _, err = _run(*args, "--data", daily)
    assert code == 2
    line = _one_error_line(err)
    assert suggestion in line
    # never the whole list of parameters: at most three names are suggested
    assert line.count("'") <= 2 * 4 + 2 and "valid:" not in line


# ---------- one error style, exit 2 for bad input ----------


@pytest.mark.parametrize("args", [
    ("run", "--bogus"),                                   # click: no such option
    ("run", "--mode", "sideways"),                        # click: bad choice
    ("sweep",),                                           # click: missing argument
    ("walkforward", "oversold_bounce", "--grid", "rsi_period=10,14"),  # missing --train
    ("nosuchcommand",),                                   # click: no such command
    ("outlook", "--at"),                                  # click: option needs a value
    ("run", "--leverage", "500"),                         # config range
    ("run", "--data", "nope.csv"),                        # data: missing file
    ("outlook", "--data", "nope.csv"),
    ("audit", "oversold_bounce", "--cuts", "0"),          # click: out of range
    ("sweep", "oversold_bounce"),                         # no axis
    ("run", "--timeframe", "3d"),
    ("outlook", "--at", "05/02/2026"),
    ("data", "info", "nope.csv"),
])
def test_every_command_errors_in_one_line_with_a_fix_and_exit_2(args: tuple[str, ...]) -> None:
    code, _, err = _run(*args)
    assert code == 2, err
    _one_error_line(err)


# ---------- numbers printed the way they are meant ----------


def test_run_summary_separators_and_buy_and_hold_once(daily: str, tmp_path: Path) -> None:
    code, out, err = _run("run", "--data", daily, "--no-png", "-o", str(tmp_path / "r"))
    assert code == 0, err
    lines = out.splitlines()
    head = lines[0]
    assert "B&H" not in head and "final equity" in head
    rows = lines[2:4]  # the table: header, rule, one row per strategy
    assert [r.split()[0] for r in rows] == ["breakdown", "oversold_bounce"]
    assert len(rows) == 2
    bh = [ln for ln in lines if ln.startswith("buy and hold")]
    assert len(bh) == 1  # once, not on every row
    # 1,365.65 % buy and hold and equities over 10,000 print with thousands separators
    assert re.search(r"buy and hold 2017-08-17 -> 2026-07-03: \+\d{1,3}(,\d{3})+\.\d\d %", bh[0])
    for row in rows:
        equity = row.split()[-1]
        assert re.fullmatch(r"\d{1,3}(,\d{3})+\.\d\d", equity), row


def test_sweep_prints_int_parameters_as_ints_and_verdicts(daily: str, tmp_path: Path) -> None:
    code, out, err = _run("sweep", "oversold_bounce", "--grid", "rsi_period=10,14",
                          "--grid", "oversold=25,30", "--workers", "1", "--data", daily,
                          "--out", str(tmp_path / "sw"))
    assert code == 0, err
    table = out.splitlines()[1:5]
    for row in table:
        rsi_period, oversold = row.split()[:2]
        assert rsi_period in ("10", "14") and oversold in ("25", "30")  # not 10.000 / 25.000
    dsr = next(ln for ln in out.splitlines() if ln.startswith("deflated Sharpe ratio"))
    value = float(re.search(r"of the best: ([\d.]+)", dsr).group(1))
    verdict = ("not distinguishable from luck" if value < 0.95
               else "distinguishable from luck")
    assert dsr.endswith(verdict + (" (below 0.95)" if value < 0.95 else " (0.95 or more)"))
    pbo = next(ln for ln in out.splitlines() if ln.startswith("probability of backtest"))
    assert re.search(r": (likely overfit|low risk of overfitting)", pbo)


def test_walkforward_counts_windows_without_trades_and_shows_progress(
        daily: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bars: list[tuple[int, str]] = []
    real_bar = cli_tuning._progress_bar

    def spy(total: int, unit: str):
        bar, progress = real_bar(total, unit)
        bars.append((total, unit))
        return bar, progress

    monkeypatch.setattr(cli_tuning, "_progress_bar", spy)
    code, out, err = _run("walkforward", "oversold_bounce", "--grid", "oversold=20,25",
                          "--train", "730D", "--test", "90D", "--workers", "1", "--data", daily,
                          "--start", "2021-01-01", "--out", str(tmp_path / "wf"))
    assert code == 0, err
    assert bars and bars[0][1] == "window"
    res = WalkForwardResult.load(tmp_path / "wf")
    n_windows = len(res.windows)
    assert bars[0][0] == n_windows
    idle = int((res.windows["oos_n_trades"] == 0).sum())
    assert idle > 0
    assert "oversold=20.0" not in out and "oversold=25.0" not in out  # not upcast floats
    assert re.search(rf"windows_without_trades\s+\d+\s+{idle}\s", out)
    assert re.search(rf"windows\s+{n_windows}\s+{n_windows}\s", out)
    note = next(ln for ln in out.splitlines() if "test windows made no trade" in ln)
    assert note.startswith(f"{idle} of {n_windows} test windows made no trade")
    assert f"over the {n_windows - idle} windows that traded" in note


# ---------- timeframe and date hints ----------


def test_timeframe_hint_says_what_is_valid(daily: str) -> None:
    code, _, err = _run("run", "--data", daily, "--timeframe", "3d")
    assert code == 2
    line = _one_error_line(err)
    assert "'3d'" in line and "fit whole into weeks" in line
    assert "1h, 2h, 4h, 6h, 8h, 12h, 1d or 1w" in line


@pytest.mark.parametrize("command", ["run", "sweep", "outlook"])
def test_impossible_resample_suggests_only_what_the_command_accepts(daily: str,
                                                                    command: str) -> None:
    # 4h from daily bars cannot be made; the fix must not suggest 3d, which these commands
    # (they compute the 200-week EMA) refuse next.
    extra = ("oversold_bounce", "--grid", "rsi_period=10,14") if command == "sweep" else ()
    code, _, err = _run(command, *extra, "--data", daily, "--timeframe", "4h")
    assert code == 2
    line = _one_error_line(err)
    assert "cannot resample 1d bars to 4h" in line
    assert "1d bars go into whole multiples of 1d: 1d or 1w" in line
    assert "3d" not in line


@pytest.mark.parametrize("value", ["05/02/2026", "2/5/26", "Feb 5 2026", "2026/02/05"])
def test_ambiguous_or_non_iso_dates_are_rejected_with_the_formats(daily: str,
                                                                  value: str) -> None:
    for args in (("outlook", "--at", value), ("run", "--start", value, "--no-png")):
        code, _, err = _run(*args, "--data", daily)
        assert code == 2
        line = _one_error_line(err)
        assert "YYYY-MM-DD" in line and "YYYY-MM-DDTHH:MM" in line
    code, _, err = _run("outlook", "--at", "05/02/2026", "--data", daily)
    assert "ambiguous" in err
