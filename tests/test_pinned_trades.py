"""The default strategies' trades, pinned: level targets must not change when their computation
does.

``tests/data/pinned/trades.csv`` holds the trades of ``Breakdown()`` and ``OversoldBounce()``
(defaults: targets at major levels, the reward:risk floor) on the bundled Binance daily candles
and on a seeded 15-minute path, as main produced them at 736731f, before targets were answered
from the zone log (:func:`indicators.keylevels.level_targets`) instead of the materialised level
history. Regenerate only for a deliberate change of the trading rules:
``python -m tests.test_pinned_trades`` (and say why in the commit).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backtests import run
from strategies.bounce import OversoldBounce
from strategies.breakdown import Breakdown
from tests.conftest import real
from tests.lookahead import ohlc_frame

PINNED = Path(__file__).parent / "data" / "pinned" / "trades.csv"
COLUMNS = ["entry_time", "exit_time", "side", "entry_price", "exit_price", "initial_stop",
           "exit_reason", "tag"]
CASES = ("1d_binance", "seeded_15m")
STRATEGIES = {"breakdown": Breakdown, "oversold_bounce": OversoldBounce}


def _data(case: str) -> pd.DataFrame:
    if case == "1d_binance":
        return real("1d_binance")
    return ohlc_frame(20_000, "15m", seed=3, volatility=0.004)


def trades(case: str, strategy: str) -> pd.DataFrame:
    """The trade columns pinned for one data case and default strategy (times as ISO text)."""
    t = run(_data(case), STRATEGIES[strategy]()).trades[COLUMNS].copy()
    for c in ("entry_time", "exit_time"):
        t[c] = t[c].map(lambda x: x.isoformat())
    t.insert(0, "strategy", strategy)
    t.insert(0, "case", case)
    return t.reset_index(drop=True)


@pytest.fixture(scope="module")
def pinned() -> pd.DataFrame:
    return pd.read_csv(PINNED, keep_default_na=False, na_values=[""])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_default_strategy_trades_are_pinned(pinned, case, strategy):
    want = pinned[(pinned["case"] == case) & (pinned["strategy"] == strategy)]
    got = trades(case, strategy)
    assert len(want) > 10  # the cases must trade enough to mean something
    # through the CSV text so both sides have the same dtypes (floats round-trip with %.17g)
    got = pd.read_csv(pd.io.common.StringIO(got.to_csv(index=False, float_format="%.17g")),
                      keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_exact=True)
    # the level targets are really in play (not every trade on the R-multiple fallback)
    assert got["tag"].str.contains("major").any()


if __name__ == "__main__":
    PINNED.parent.mkdir(parents=True, exist_ok=True)
    pd.concat([trades(c, s) for c in CASES for s in sorted(STRATEGIES)]).to_csv(
        PINNED, index=False, float_format="%.17g")
    print(f"wrote {PINNED}")
