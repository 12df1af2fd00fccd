"""Options declared once (:mod:`backtests.cli.options`): command-line defaults equal the API's,
one ``--param`` parser, and data selection (:mod:`data.select`) as library logic."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from backtests.cli import load_command, main
from backtests.cli.options import CONFIG_OPTIONS, config_defaults, strategy_params
from backtests.config import BacktestConfig
from backtests.reports.format import terminal
from backtests.results import BacktestResult
from data.frame import DataError
from data.select import parse_time, select_candles, slice_dates
from strategies.bounce import OversoldBounce
from strategies.breakdown import Breakdown

COMMANDS = ("run", "sweep", "walkforward", "audit")


def _option(command: str, field: str) -> click.Option | None:
    cmd = load_command(command)
    return next((p for p in cmd.params if p.name == field), None)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_config_option_defaults_to_the_api_default(command: str) -> None:
    api = BacktestConfig()
    checked = 0
    for field in CONFIG_OPTIONS:
        opt = _option(command, field)
        if opt is None:
            assert command != "run" and field == "engine"  # tuning runs on the fast engine
            continue
        assert opt.default == getattr(api, field), (command, field)
        checked += 1
    assert checked >= len(CONFIG_OPTIONS) - 1


def test_mode_default_is_both_on_the_command_line_and_in_the_api() -> None:
    assert BacktestConfig().mode == "both"
    for command in COMMANDS:
        res = CliRunner().invoke(main, [command, "--help"])
        assert res.exit_code == 0
        assert "--mode" in res.output and "[default: both]" in res.output


def test_every_config_field_has_an_option() -> None:
    assert set(config_defaults()) == set(CONFIG_OPTIONS)


def test_param_values_are_coerced_by_the_declaration() -> None:
    classes = [OversoldBounce, Breakdown]
    got = strategy_params(("oversold=25", "oversold_bounce.rsi_period=9"), classes)
    assert got["oversold_bounce"] == {"oversold": 25.0, "rsi_period": 9}
    assert isinstance(got["oversold_bounce"]["oversold"], float)
    assert got["breakdown"] == {}
    with pytest.raises(click.BadParameter, match="expects int"):
        strategy_params(("oversold_bounce.rsi_period=9.5",), classes)
    with pytest.raises(click.BadParameter, match="unknown parameter 'nope'"):
        strategy_params(("nope=1",), classes)
    with pytest.raises(click.BadParameter, match="is not key=value"):
        strategy_params(("rsi_period",), classes)


def _candles(tmp_path: Path, n: int = 72, freq: str = "1h") -> Path:
    idx = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC")
    close = 40_000 + np.arange(n, dtype=float)
    csv = tmp_path / "c.csv"
    pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": close,
                  "high": close + 5, "low": close - 5, "close": close,
                  "volume": np.ones(n)}).to_csv(csv, index=False)
    return csv


def test_select_candles_resamples_and_slices(tmp_path: Path) -> None:
    csv = _candles(tmp_path)
    df, desc = select_candles(csv, timeframe="1d", start="2024-01-02", offline=True,
                              echo=lambda _m: None)
    assert list(df.index.strftime("%Y-%m-%d")) == ["2024-01-02", "2024-01-03"]
    assert df["open"].iloc[0] == 40_024 and df["close"].iloc[-1] == 40_071
    assert "resampled 1h -> 1d" in desc and "2024-01-02 to 2024-01-03" in desc


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(start="someday"), "start 'someday' is not a date"),
    (dict(start="2024-02-01", end="2024-01-01"), "start 2024-02-01 is after end 2024-01-01"),
    (dict(start="2030-01-01"), "no candles between 2030-01-01 and the end"),
    (dict(timeframe="7x"), "unknown timeframe '7x'"),
    (dict(min_bars=100), "only 72 candle(s) selected"),
])
def test_select_candles_raises_data_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError) as err:
        select_candles(_candles(tmp_path), offline=True, echo=lambda _m: None, **kwargs)
    assert message in str(err.value)


def test_select_candles_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv not found"):
        select_candles(tmp_path / "nope.csv")


def test_parse_time_and_slice() -> None:
    assert parse_time("2024-01-02") == pd.Timestamp("2024-01-02", tz="UTC")
    assert parse_time("2024-01-02T01:00+01:00") == pd.Timestamp("2024-01-02", tz="UTC")
    assert parse_time(None) is None
    df = pd.DataFrame({"close": [1.0, 2.0, 3.0]},
                      index=pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC"))
    df.attrs["timeframe"] = "1d"
    part = slice_dates(df, None, parse_time("2024-01-02"))
    assert len(part) == 2 and part.attrs["timeframe"] == "1d"


def test_run_reaches_every_generated_option(tmp_path: Path) -> None:
    csv = _candles(tmp_path, n=300)
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, [
        "run", "-s", "oversold_bounce", "--data", str(csv), "--no-png", "-o", str(out),
        "--funding", "0.0002", "--maintenance-margin", "0.01", "--liquidation-fee", "0.002",
        "--sizing", "fixed", "--size", "0.1", "--mode", "long", "--slippage-bps", "3"])
    assert res.exit_code == 0, res.output
    saved = BacktestResult.load(next(p for p in out.iterdir() if p.is_dir()))
    assert saved.config == {**BacktestConfig().to_dict(), "funding_rate": 0.0002,
                            "maintenance_margin": 0.01, "liquidation_fee": 0.002,
                            "sizing": "fixed", "size": 0.1, "mode": "long",
                            "slippage_bps": 3.0}


def test_terminal_numbers_are_ascii_and_keep_their_width() -> None:
    assert terminal(12.345, "10.2f") == "     12.35"
    assert terminal(float("nan"), "10.2f") == "       n/a" and terminal(None, "7.2f") == "    n/a"
    assert terminal(float("inf"), "7.2f") == "    inf" and terminal(-np.inf) == "-inf"
    assert terminal(np.float64(3.6), "d") == "4" and terminal(np.int64(7), "g") == "7"
    assert terminal(True) == "True" and terminal("rsi") == "rsi"
