"""``btc-backtest sweep`` and ``btc-backtest audit`` end to end (click's runner)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from backtests.cli import main
from backtests.tuning.sweep import SweepResult

USER_FILE = textwrap.dedent('''
    from typing import ClassVar
    import numpy as np, pandas as pd, talib
    from strategies.base import Param, Signals, Strategy

    class Toy(Strategy):
        """RSI cross above oversold -> long; exit above overbought."""
        name = "<b>toy</b>"
        params: ClassVar = {
            "period": Param(14, "bars", int, min=2, max=30),
            "oversold": Param(30.0, "RSI", min=10, max=45),
            "overbought": Param(70.0, "RSI", min=55, max=90),
        }

        def signals(self, df):
            rsi = talib.RSI(df["close"].to_numpy(), self.p.period)
            prev = np.r_[np.nan, rsi[:-1]]
            entry = np.where((rsi > self.p.oversold) & (prev <= self.p.oversold), 1, 0)
            return Signals.from_entries(entry, exit=rsi > self.p.overbought,
                                        indicators=pd.DataFrame({"rsi": rsi}, index=df.index))

    class Leaky(Strategy):
        name = "leaky"
        params: ClassVar = {}

        def signals(self, df):
            m = df["close"].rolling(7, center=True).mean()
            up = (df["close"] > m).to_numpy()
            return Signals.from_entries(np.where(up, 1, 0), exit=~up,
                                        indicators=pd.DataFrame({"m": m}))
''')


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(11)
    n = 500
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    idx = pd.date_range("2022-01-01", periods=n, freq="D", tz="UTC")
    csv = tmp_path / "candles.csv"
    open_ = np.r_[close[0], close[:-1]]
    pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": open_,
                  "high": np.maximum(open_, close) * 1.02,
                  "low": np.minimum(open_, close) * 0.97, "close": close,
                  "volume": np.ones(n)}).to_csv(csv, index=False)
    strat = tmp_path / "user.py"
    strat.write_text(USER_FILE)
    return strat, csv


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_sweep_grid_saves_table_and_escaped_report(files, tmp_path: Path) -> None:
    strat, csv = files
    out = tmp_path / "sw"
    res = _run("sweep", f"{strat}:Toy", "--grid", "period=7:14:7", "--grid",
               "oversold=25,30,35", "--grid", "overbought=70", "--workers", "1",
               "--data", str(csv), "--out", str(out), "--metric", "sortino")
    assert res.exit_code == 0, res.output
    assert "deflated Sharpe ratio of the best" in res.output
    sw = SweepResult.load(out)
    assert len(sw.table) == 6 and sw.metric == "sortino"
    assert sw.table["sortino"].is_monotonic_decreasing or sw.table["sortino"].isna().any()
    html = (out / "report.html").read_text()
    assert "&lt;b&gt;toy&lt;/b&gt;" in html and "<b>toy</b>" not in html
    assert "Lightweight Charts" in html and "<script src=" not in html  # self-contained
    assert "plotly" not in html.lower() and len(html) < 600_000  # the chart library inlined
    assert "Probability of backtest overfitting" in html


def test_sweep_random_uses_declared_bounds(files, tmp_path: Path) -> None:
    strat, csv = files
    res = _run("sweep", f"{strat}:Toy", "--random", "12", "--seed", "3", "--workers", "2",
               "--data", str(csv), "--out", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    t = SweepResult.load(tmp_path / "r").table
    assert len(t) == 12
    assert t["period"].between(2, 30).all() and t["oversold"].between(10, 45).all()


@pytest.mark.parametrize(("args", "msg"), [
    ((), "give at least one --grid axis or --random N"),
    (("--grid", "length=5,6"), "unknown parameter 'length'"),
    (("--grid", "period=9", "--metric", "alpha"), "'alpha'; choose one of"),
    (("--grid", "period=1,5"), "must be >= 2"),
    (("--grid", "period=5:1:1"), "below start"),
])
def test_sweep_bad_input_exits_2(files, args, msg) -> None:
    strat, csv = files
    res = CliRunner().invoke(main, ["sweep", f"{strat}:Toy", "--data", str(csv), *args])
    assert res.exit_code == 2, res.output
    assert msg in res.output


def test_unknown_strategy_name() -> None:
    res = CliRunner().invoke(main, ["sweep", "no_such_strategy", "--grid", "a=1"])
    assert res.exit_code == 2 and "no_such_strategy" in res.output


def test_audit_flags_leaky_and_passes_causal(files) -> None:
    strat, csv = files
    bad = CliRunner().invoke(main, ["audit", f"{strat}:Leaky", "--data", str(csv), "--cuts",
                                    "10"])
    assert bad.exit_code == 1
    assert "FAIL" in bad.output and "indicator 'm' at bar" in bad.output
    ok = CliRunner().invoke(main, ["audit", f"{strat}:Toy", "--data", str(csv), "--param",
                                   "period=9"])
    assert ok.exit_code == 0, ok.output
    assert "PASS" in ok.output and "'period': 9" in ok.output


@pytest.mark.shared_data
def test_sweep_builtin_bounce_on_real_daily(tmp_path: Path) -> None:
    from tests.conftest import real_path

    data = real_path("1d_binance")
    res = _run("sweep", "oversold_bounce", "--grid", "rsi_period=10,14", "--grid",
               "oversold=25,30", "--workers", "2", "--data", str(data), "--out",
               str(tmp_path / "b"))
    assert res.exit_code == 0, res.output
    sw = SweepResult.load(tmp_path / "b")
    assert len(sw.table) == 4 and sw.data["rows"] == 3243
    assert sw.best_equity is not None and len(sw.best_equity) == 3243


def test_sweep_skips_sets_the_strategy_rejects(tmp_path: Path) -> None:
    from tests.conftest import real_path

    data = real_path("1d_binance")
    # deep defaults to 20: oversold=20 conflicts (deep < oversold < overbought).
    res = _run("sweep", "oversold_bounce", "--grid", "rsi_period=10,14", "--grid",
               "oversold=20,30", "--workers", "1", "--data", str(data), "--out",
               str(tmp_path / "b"))
    assert res.exit_code == 0, res.output
    assert "skipped 2 of 4 sets that the strategy rejects" in res.output
    assert "need deep < oversold < overbought" in res.output
    sw = SweepResult.load(tmp_path / "b")
    assert len(sw.table) == 2 and (sw.table["oversold"] == 30.0).all()
    assert sw.table["oversold"].dtype == float          # the declared type, not the grid's int
    assert "2 more skipped" in " ".join((tmp_path / "b" / "report.html").read_text().split())
    bad = _run("sweep", "oversold_bounce", "--grid", "oversold=15,20", "--data", str(data),
               "--out", str(tmp_path / "c"))
    assert bad.exit_code == 2 and "every parameter set conflicts" in bad.output


@pytest.mark.parametrize("command", ["sweep", "audit", "walkforward"])
def test_data_options_like_run(command: str) -> None:
    res = CliRunner().invoke(main, [command, "--help"])
    assert res.exit_code == 0
    for opt in ("--data ", "--data-dir", "BTC_BACKTEST_DATA", "--timeframe", "--offline",
                "--start", "--end", "--mode"):
        assert opt in res.output, (command, opt)
    assert "[default: both]" in res.output


@pytest.mark.shared_data
def test_sweep_start_end_timeframe_mode_on_real_daily(btc_daily: pd.DataFrame,
                                                      tmp_path: Path) -> None:
    from tests.conftest import real_path

    data = str(real_path("1d_binance"))
    out = tmp_path / "s"
    res = _run("sweep", "oversold_bounce", "--grid", "rsi_period=10,14", "--workers", "1",
               "--data", data, "--start", "2020-01-01", "--end", "2022-12-31", "--out", str(out))
    assert res.exit_code == 0, res.output
    sw = SweepResult.load(out)
    in_range = btc_daily[(btc_daily.index >= "2020-01-01") & (btc_daily.index <= "2022-12-31")]
    assert sw.data["rows"] == len(in_range) == 1096
    assert sw.data["start"].startswith("2020-01-01") and sw.data["end"].startswith("2022-12-31")
    assert sw.config["mode"] == "both"  # the default of `btc-backtest run`

    res = _run("sweep", "oversold_bounce", "--grid", "rsi_period=10,14", "--workers", "1",
               "--data", data, "--timeframe", "1w", "--mode", "long", "--slippage-bps", "5",
               "--out", str(tmp_path / "w"))
    assert res.exit_code == 0, res.output
    sw = SweepResult.load(tmp_path / "w")
    assert sw.data["timeframe"] == "1w" and 450 < sw.data["rows"] < 470
    assert sw.config["mode"] == "long" and sw.config["slippage_bps"] == 5


@pytest.mark.parametrize(("args", "msg"), [
    (("--start", "2030-01-01"), "no candles between 2030-01-01 and the end"),
    (("--start", "2022-02-01", "--end", "2022-01-01"),
     "start 2022-02-01 is after end 2022-01-01"),
    (("--start", "yesterday-ish"), "is not a date"),
    (("--timeframe", "7q"), "unknown timeframe '7q'"),
    (("--timeframe", "1h"), "cannot resample 1d bars to 1h"),
])
def test_sweep_and_audit_bad_data_options_exit_2(files, args, msg) -> None:
    strat, csv = files
    for cmd in (["sweep", f"{strat}:Toy", "--grid", "period=9"], ["audit", f"{strat}:Toy"]):
        res = CliRunner().invoke(main, [*cmd, "--data", str(csv), *args])
        assert res.exit_code == 2, (cmd, res.output)
        assert msg in res.output, (cmd, res.output)


def test_missing_data_file_exits_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["audit", "oversold_bounce", "--data",
                                    str(tmp_path / "nope.csv")])
    assert res.exit_code == 2
    assert "nope.csv not found" in res.output


def test_audit_on_a_slice_still_flags_the_leak(files) -> None:
    strat, csv = files
    res = CliRunner().invoke(main, ["audit", f"{strat}:Leaky", "--data", str(csv), "--start",
                                    "2022-06-01", "--end", "2022-12-31", "--cuts", "5",
                                    "--mode", "long"])
    assert res.exit_code == 1, res.output
    assert "indicator 'm' at bar" in res.output and "214 bars" in res.output


def test_data_dir_from_env_and_offline(tmp_path: Path) -> None:
    # An empty store given through the environment, no download: the bundled real data is used
    # (and named), which shows the store option reached the loader.
    res = CliRunner(env={"BTC_BACKTEST_DATA": str(tmp_path)}).invoke(
        main, ["audit", "oversold_bounce", "--offline", "--no-trades", "--cuts", "3"])
    assert res.exit_code == 0, res.output
    assert "data: bundled real data: Binance spot BTC/USDT daily" in res.output
    assert "(offline: no download tried)" in res.output and "PASS" in res.output
    # ... and the variable really is the option: a file there is rejected like --data-dir.
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    res = CliRunner(env={"BTC_BACKTEST_DATA": str(not_a_dir)}).invoke(
        main, ["sweep", "oversold_bounce", "--grid", "rsi_period=9", "--offline"])
    assert res.exit_code == 2 and "--data-dir" in res.output and "is a file" in res.output


def test_a_strategy_failing_in_a_sweep_names_the_set_and_how_to_see_why(files,
                                                                       tmp_path: Path) -> None:
    strat, csv = files
    path = tmp_path / "failing.py"
    path.write_text(strat.read_text() + textwrap.dedent('''
        class Failing(Toy):
            def signals(self, df):
                if self.p.period == 14:
                    raise ValueError("no signals for period 14")
                return super().signals(df)
    '''))
    res = _run("sweep", f"{path}:Failing", "--grid", "period=7,14", "--workers", "1",
               "--data", str(csv), "--out", str(tmp_path / "f"))
    assert res.exit_code == 1
    line = res.output.strip().splitlines()[-1]
    assert "evaluation failed for parameters {'period': 14}: ValueError: no signals for period 14" \
        in line and "run again with --workers 1 --verbose for the traceback" in line, line
    assert "not your input" not in line
    verbose = CliRunner().invoke(main, ["-v", "sweep", f"{path}:Failing", "--grid", "period=7,14",
                                        "--workers", "1", "--data", str(csv), "--out",
                                        str(tmp_path / "g")])
    assert verbose.exit_code == 1
    # the user's own line is in the traceback (the error is chained in this process)
    assert f'File "{path}"' in verbose.output and 'raise ValueError("no signals' in \
        verbose.output, verbose.output[-2000:]
