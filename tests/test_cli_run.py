"""``btc-backtest run | outlook | strategies | report`` as a user sees them: output, files and
exit codes (0 ok, 2 bad input), including the bad-input messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from backtests.cli import main
from backtests.results import BacktestResult
from indicators import outlook
from tests.conftest import real, real_path

pytestmark = pytest.mark.shared_data


@pytest.fixture
def daily_file() -> str:
    return str(real_path("1d_binance"))


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # An empty private store: no test reads or writes the user's data directory.
    monkeypatch.setenv("BTC_BACKTEST_DATA", str(tmp_path / "store"))
    return CliRunner()


def _run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(main, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_run_writes_a_report_and_prints_the_summary(
    runner: CliRunner, daily_file: str, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    code, stdout, stderr = _run(runner, "run", "--data", daily_file, "--start", "2022-01-01",
                                "--end", "2024-12-31", "--no-png", "-o", str(out))
    assert code == 0, stderr
    assert "breakdown" in stdout and "oversold_bounce" in stdout
    assert "final equity" in stdout and "buy and hold" in stdout
    assert (out / "report.html").stat().st_size > 100_000
    saved = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert saved == ["1-breakdown", "2-oversold_bounce"]
    res = BacktestResult.load(out / "2-oversold_bounce")
    assert res.prices.index[0].strftime("%Y-%m-%d") == "2022-01-01"
    assert res.prices.index[-1].strftime("%Y-%m-%d") == "2024-12-31"
    assert res.outlook  # the shared analysis is attached to each result
    assert res.config["mode"] == "both" and res.engine == "fast"
    assert "timing: start-up" in stderr and ", load " in stderr
    # The summary row reports what the saved result holds (reports never recompute).
    row = next(line for line in stdout.splitlines() if line.startswith("oversold_bounce"))
    assert f"{res.metrics['total_return_pct']:.2f}" in row
    assert f"{int(res.metrics['n_trades'])}" in row.split()


def test_run_params_engine_and_leverage_reach_the_result(
    runner: CliRunner, daily_file: str, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    code, _, stderr = _run(runner, "run", "-s", "oversold_bounce", "-p", "oversold=25",
                           "-p", "oversold_bounce.near_pct=5", "--leverage", "3",
                           "--commission", "0.0005", "--slippage", "5", "--engine",
                           "backtrader", "--data", daily_file, "--start", "2023-01-01",
                           "--no-png", "-o", str(out))
    assert code == 0, stderr
    res = BacktestResult.load(out / "1-oversold_bounce")
    assert res.params["oversold"] == 25.0 and res.params["near_pct"] == 5.0
    assert res.config["leverage"] == 3.0 and res.config["slippage_bps"] == 5.0
    assert res.engine == "backtrader"


def test_report_rerenders_from_saved_results_only(
    runner: CliRunner, daily_file: str, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    assert _run(runner, "run", "-s", "breakdown", "--data", daily_file, "--start", "2024-01-01",
                "--no-png", "-o", str(out))[0] == 0
    again = tmp_path / "again"
    code, stdout, stderr = _run(runner, "report", str(out), "-o", str(again), "--no-png")
    assert code == 0, stderr
    assert (again / "report.html").exists()
    assert "breakdown" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "nosuch"], "unknown strategy 'nosuch'"),
        (["-p", "nosuch=1"], "unknown parameter 'nosuch'"),
        (["-s", "breakdown", "-p", "oversold=20"], "unknown parameter 'oversold'"),
        (["-p", "oversold=abc"], "parameter 'oversold' expects float"),
        (["-s", "oversold_bounce", "-p", "deep=35"], "need deep < oversold < overbought"),
        (["-p", "oversold"], "is not key=value"),
        (["--start", "2024-13-45"], "is not a date"),
        (["--start", "2024-05-01", "--end", "2024-01-01"],
         "start 2024-05-01 is after end 2024-01-01"),
        (["--start", "2030-01-01"], "no candles between 2030-01-01 and the end"),
        (["--leverage", "500"], "leverage must be in [1, 125]"),
        (["--timeframe", "7x"], "unknown timeframe '7x'"),
        (["--timeframe", "1h"], "cannot resample 1d bars to 1h"),
    ],
)
def test_run_bad_input_is_one_line_and_exit_2(
    runner: CliRunner, daily_file: str, tmp_path: Path, args: list[str], message: str
) -> None:
    code, _, stderr = _run(runner, "run", "--data", daily_file, "--no-png",
                           "-o", str(tmp_path / "r"), *args)
    assert code == 2, stderr
    assert message in stderr
    assert "Traceback" not in stderr


def test_run_missing_file_is_a_clear_error(runner: CliRunner, tmp_path: Path) -> None:
    code, _, stderr = _run(runner, "run", "--data", str(tmp_path / "nope.csv"))
    assert code == 2
    assert "nope.csv not found" in stderr


def test_outlook_text_and_json(runner: CliRunner, daily_file: str) -> None:
    code, stdout, stderr = _run(runner, "outlook", "--data", daily_file, "--at", "2026-02-06")
    assert code == 0, stderr
    assert "RSI" in stdout and "support" in stdout.lower()
    code, stdout, _ = _run(runner, "outlook", "--data", daily_file, "--at", "2026-02-06",
                           "--json")
    assert code == 0
    view = json.loads(stdout)
    # --at 2026-02-06 = after the last daily close known then: the 2026-02-05 bar's
    assert view["as_of"].startswith("2026-02-05") and view["known_at"].startswith("2026-02-06")
    assert view["last"] == pytest.approx(62909.86)
    assert view["resistance"]["centre"] > view["last"]
    # --json carries the same fields as the text, and as the API
    api = outlook(real("1d_binance"), at="2026-02-06").to_dict()
    assert view == api
    code, text, _ = _run(runner, "outlook", "--data", daily_file, "--at", "2026-02-06")
    assert text.splitlines() == view["text"]


@pytest.mark.parametrize(
    ("at", "message"),
    [("2001-01-01", "before the data starts"), ("2099-01-01", "after the data ends"),
     ("someday", "is not a date")],
)
def test_outlook_bad_dates(runner: CliRunner, daily_file: str, at: str, message: str) -> None:
    code, _, stderr = _run(runner, "outlook", "--data", daily_file, "--at", at)
    assert code == 2
    assert message in stderr


def test_strategies_lists_parameters_with_defaults() -> None:
    res = CliRunner().invoke(main, ["strategies"])
    assert res.exit_code == 0
    assert "breakdown" in res.stdout and "oversold_bounce" in res.stdout
    assert "oversold" in res.stdout and "default 30.0" in res.stdout
    assert "file.py:ClassName" in res.stdout


def test_report_on_a_folder_without_results(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, stderr = _run(runner, "report", str(tmp_path / "empty"))
    assert code == 2
    assert "no saved backtest results" in stderr


def test_verbose_shows_the_traceback(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(main, ["--verbose", "run", "--data", str(tmp_path / "nope.csv")])
    assert res.exit_code == 2
    assert "Traceback" in res.stderr


def test_summary_table_columns_stay_aligned_with_missing_metrics() -> None:
    from types import SimpleNamespace

    from backtests.cli.run import summary_table

    flat = SimpleNamespace(strategy="oversold_bounce", metrics={
        "total_return_pct": 0.0, "max_drawdown_pct": 0.0, "sharpe": float("nan"),
        "n_trades": 0, "win_rate_pct": None, "n_liquidations": 0,
        "buy_hold_return_pct": float("inf")})
    busy = SimpleNamespace(strategy="breakdown", metrics={
        "total_return_pct": 12.5, "max_drawdown_pct": -3.0, "sharpe": 1.2, "n_trades": 4,
        "win_rate_pct": 75.0, "n_liquidations": 1, "buy_hold_return_pct": 30.0})
    lines = summary_table([busy, flat]).splitlines()
    assert len({len(line) for line in lines[:4]}) == 1   # every row as wide as the header
    cells = lines[3].split()
    assert cells[3] == "n/a" and cells[5] == "n/a" and cells[7] == "n/a"  # no final equity
    assert lines[4:] == ["buy and hold: +30.00 % (for breakdown)",
                         "buy and hold: inf % (for oversold_bounce)"]
