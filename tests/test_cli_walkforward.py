"""``btc-backtest walkforward`` end to end (click's runner) on the real daily candles."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from backtests.cli import main
from backtests.tuning.walkforward import WalkForwardResult, format_span, make_windows
from tests.conftest import real_path
from tests.test_cli_sweep import USER_FILE

pytestmark = pytest.mark.shared_data

GRID = ("--grid", "rsi_period=10,14", "--grid", "oversold=25,30")


@pytest.fixture
def daily() -> str:
    return str(real_path("1d_binance"))


def _invoke(*args: str):
    return CliRunner().invoke(main, ["walkforward", *args])


def _outside_scripts(html: str) -> str:
    # plotly.js itself holds attribution URLs in string literals; the page markup must not
    # reference anything external.
    return re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)


def test_walkforward_prints_windows_saves_result_and_html(daily: str, btc_daily: pd.DataFrame,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "wf"
    res = _invoke("oversold_bounce", *GRID, "--train", "730D", "--test", "365D", "--workers",
                  "1", "--data", daily, "--out", str(out), "--commission", "0.001")
    assert res.exit_code == 0, res.output
    wins = make_windows(btc_daily.index, "730D", "365D")
    assert len(wins) == 7

    # The per-window table: one line per window with its spans, params and both metrics.
    assert re.search(r"#\s+train\s+test\s+params\s+IS sharpe\s+OOS sharpe", res.output)
    idx = btc_daily.index
    for k, (tr0, tr1, te0, te1) in enumerate(wins):
        train = format_span(idx[tr0], idx[tr1 - 1], " -> ")
        test = format_span(idx[te0], idx[te1 - 1], " -> ")
        assert re.search(rf"^\s*{k} {train} {test} rsi_period=\d+, oversold=\d+ ", res.output,
                         re.M), (k, res.output)
    assert "in sample vs out of sample" in res.output
    assert "deflated Sharpe ratio" in res.output and "probability of backtest overfitting" in \
        res.output

    # Saved result, and the printed stitched return / buy and hold are those of the data.
    wf = WalkForwardResult.load(out)
    assert len(wf.windows) == len(wins) and wf.metric == "sharpe"
    assert wf.config["mode"] == "both"  # same default as `btc-backtest run`
    assert wf.settings["data"]["rows"] == 3243
    assert wf.oos_equity.index[0] == idx[wins[0][2] - 1] and wf.oos_equity.index[-1] == idx[-1]
    te0 = wins[0][2]
    bh = 100 * (btc_daily["close"].iloc[-1] * (1 - 0.001)
                / (btc_daily["open"].iloc[te0] * (1 + 0.001)) - 1)
    oos = 100 * (wf.oos_equity.iloc[-1] / 10_000 - 1)
    assert f"{oos:+.2f} % vs buy and hold {bh:+.2f} %" in res.output
    for p in wf.params_by_window:
        assert p["rsi_period"] in (10, 14) and isinstance(p["rsi_period"], int)

    html = (out / "report.html").read_text()
    assert "Lightweight Charts" in html and "plotly" not in html.lower()  # library inlined
    markup = _outside_scripts(html)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", markup)
    assert "<script src" not in html
    assert markup.count('<tr class="window"') == len(wins)
    for tr0, tr1, te0, te1 in wins:
        assert format_span(idx[te0], idx[te1 - 1]) in markup
        assert format_span(idx[tr0], idx[tr1 - 1]) in markup
    assert "buy and hold" in html and "stitched out of sample" in markup
    assert "IS sharpe" in markup and "OOS sharpe" in markup


def test_walkforward_anchored_in_bars_with_random_sets(daily: str, btc_daily: pd.DataFrame,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "a"
    res = _invoke("oversold_bounce", "--random", "3", "--seed", "4", "--grid",
                  "rsi_period=7:21:1", "--grid", "oversold=20:35:1", "--anchored", "--train",
                  "1200", "--test", "600", "--metric", "calmar", "--workers", "1", "--data",
                  daily, "--start", "2018-01-01", "--out", str(out))
    assert res.exit_code == 0, res.output
    df = btc_daily[btc_daily.index >= "2018-01-01"]
    wins = make_windows(df.index, 1200, 600, anchored=True)
    wf = WalkForwardResult.load(out)
    assert len(wf.windows) == len(wins) == 4
    assert (wf.windows["train_start"] == df.index[0]).all()  # anchored
    assert list(wf.windows["test_bars"]) == [te1 - te0 for _, _, te0, te1 in wins]
    assert wf.settings["anchored"] is True and wf.settings["n_sets"] == 3
    assert "IS calmar" in res.output and "OOS calmar" in res.output
    assert wf.windows["is_calmar"].notna().all()
    for p in wf.params_by_window:
        assert 7 <= p["rsi_period"] <= 21 and 20 <= p["oversold"] <= 35


def test_walkforward_user_strategy_name_is_escaped(tmp_path: Path, daily: str) -> None:
    strat = tmp_path / "user.py"
    strat.write_text(USER_FILE)
    out = tmp_path / "toy"
    res = _invoke(f"{strat}:Toy", "--grid", "period=7,14", "--train", "365D", "--test",
                  "365D", "--data", daily, "--end", "2021-12-31", "--workers", "1", "--out",
                  str(out))
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    assert "&lt;b&gt;toy&lt;/b&gt;" in html and "<b>toy</b>" not in html


@pytest.mark.parametrize(("args", "msg"), [
    (("no_such_strategy", *GRID), "unknown strategy 'no_such_strategy'"),
    (("oversold_bounce", "--grid", "rsi_period=14:7:1"), "stop 7 is below start 14"),
    (("oversold_bounce", "--grid", "rsi_period"), "must look like key=start:stop:step"),
    (("oversold_bounce", "--grid", "length=5,6"), "unknown parameter 'length'"),
    (("oversold_bounce", "--grid", "rsi_period=1,5"), "'rsi_period' must be >= 2, got 1"),
    (("oversold_bounce", *GRID, "--metric", "alpha"), "'alpha'; choose one of"),
    (("oversold_bounce",), "give at least one --grid axis or --random N"),
])
def test_walkforward_bad_space_exits_2(args, msg, daily: str) -> None:
    res = _invoke(*args, "--train", "730D", "--test", "365D", "--data", daily)
    assert res.exit_code == 2, res.output
    assert msg in res.output


@pytest.mark.parametrize(("args", "msg"), [
    (("--train", "5000D", "--test", "180D"),
     "no walk-forward window fits in 3243 bars with train='5000D'"),
    (("--train", "3243", "--test", "180D"), "no walk-forward window fits in 3243 bars"),
    (("--train", "730D", "--test", "0"), "0 bars: a window needs at least 2 bars"),
    (("--train", "730D", "--test", "-5D"), "'-5D': a window must be longer than zero"),
    (("--train", "soon", "--test", "180D"), "'soon' is neither a number of bars nor a duration"),
    (("--test", "180D"), "missing option '--train'"),
    (("--train", "730D", "--test", "180D", "--start", "2030-01-01"), "no candles between"),
])
def test_walkforward_bad_windows_exit_2(args, msg, daily: str) -> None:
    res = _invoke("oversold_bounce", *GRID, "--data", daily, *args)
    assert res.exit_code == 2, res.output
    assert msg in res.output
    assert "Traceback" not in res.output


def test_train_longer_than_data_names_the_span(daily: str) -> None:
    res = _invoke("oversold_bounce", *GRID, "--data", daily, "--train", "4000D", "--test", "90D")
    assert res.exit_code == 2
    assert "the data runs 2017-08-17 to 2026-07-03" in res.output
    assert "--train/--test/--step" in res.output
