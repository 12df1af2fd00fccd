"""An account wiped out by liquidations opens no more trades (both engines); the result, the
terminal and the report say when, so a trade count that stops growing is not mistaken for a
strategy that stopped signalling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from backtests import BacktestConfig, run
from backtests.cli import main
from backtests.config import WIPED_OUT
from backtests.reports.badges import badges
from strategies import Signals, Strategy
from tests.lookahead import ohlc_frame


class AlwaysLong(Strategy):
    """Long on every bar (the engine takes one position at a time)."""

    name = "always_long"

    def signals(self, df: pd.DataFrame) -> Signals:
        return Signals.from_entries(np.ones(len(df), dtype=int))


def _falling(n: int = 400) -> pd.DataFrame:
    df = ohlc_frame(n, "1h", seed=3, volatility=0.002)
    drift = np.exp(-0.004 * np.arange(n))  # -0.4 % a bar: a 100x long is liquidated in hours
    return df.mul(np.c_[drift, drift, drift, drift, np.ones(n)]).set_axis(df.columns, axis=1)


@pytest.mark.parametrize("engine", ["fast", "backtrader"])
def test_wiped_out_account_is_dated_and_stops_trading(engine):
    df = _falling()
    cfg = BacktestConfig(leverage=100, mode="long", engine=engine)
    res = run(df, AlwaysLong(), cfg)
    when = res.wiped_out
    assert when is not None
    eq = res.equity
    assert (eq.loc[when:] < cfg.cash * WIPED_OUT).all()
    assert eq.loc[:when].iloc[:-1].iloc[-1] >= cfg.cash * WIPED_OUT  # the first such bar
    assert (res.trades["entry_time"] <= when).all() and len(res.trades) >= 1
    assert res.trades["exit_reason"].eq("liquidation").any()
    found = [b for b in badges([res]) if "wiped out" in b["label"]]
    assert found and found[0]["status"] == "bad"


def test_a_solvent_account_is_not_wiped_out():
    res = run(_falling(), AlwaysLong(), BacktestConfig(leverage=1, mode="long"))
    assert res.wiped_out is None
    assert not [b for b in badges([res]) if "wiped out" in b["label"]]


def test_cli_warns_when_an_account_is_wiped_out(tmp_path):
    csv = tmp_path / "falling.csv"
    _falling().to_csv(csv, index_label="timestamp")
    strat = tmp_path / "always.py"
    strat.write_text(
        "import numpy as np\nfrom strategies import Signals, Strategy\n\n"
        "class AlwaysLong(Strategy):\n    name = 'always_long'\n\n"
        "    def signals(self, df):\n"
        "        return Signals.from_entries(np.ones(len(df), dtype=int))\n")
    out = CliRunner().invoke(main, ["run", "--data", str(csv), "--strategy",
                                    f"{strat}:AlwaysLong", "--leverage", "100", "--mode", "long",
                                    "--out", str(tmp_path / "rep")])
    assert out.exit_code == 0, out.output
    assert "WARNING: always_long (fast) wiped out the account on " in out.output
    assert "no trade opens in the" in out.output
