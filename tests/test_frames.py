"""Any reasonable OHLCV frame in, at every public entry point (issue 13, section 1).

The matrix: every public function that takes candles x every frame variant a user may hold
(pandas' own ``read_csv`` output, other resolutions and zones, naive times, a time column,
yfinance/backtesting.py column names, aliases, extra columns, integer prices). Each variant must
give exactly what the canonical frame gives, per-bar outputs on the variant's own index; frames
that cannot be used must raise the project's DataError naming the column or row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from backtests import BacktestConfig, run
from backtests.tuning.audit import audit
from backtests.tuning.sweep import run_sweep
from backtests.tuning.walkforward import walk_forward
from data.frame import DataError, is_canonical, to_canonical
from indicators import (
    atr,
    breakdown_signal,
    flips,
    htf_ema,
    outlook,
    rsi,
    signal_frame,
    sr_levels,
    support_resistance,
    weekly_ema,
)
from strategies import Breakdown, OversoldBounce
from tests.conftest import real

N_BARS = 1500  # ~4 years of daily bars: long enough to seed a 100-week EMA, quick to run


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    """Binance daily candles, prices rounded to whole dollars (so that an integer-price variant
    holds exactly the same numbers), no attrs (the variants carry none either)."""
    df = real("1d_binance").iloc[-N_BARS:].copy()
    for c in ("open", "high", "low", "close"):
        df[c] = df[c].round()
    df.attrs = {}
    assert is_canonical(df)
    return df


def _reset(df: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    out = df.copy()
    out.index = index
    return out


VARIANTS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "canonical": lambda d: d,
    "read_csv us UTC": lambda d: _reset(d, d.index.as_unit("us")),
    "ms UTC": lambda d: _reset(d, d.index.as_unit("ms")),
    "s UTC": lambda d: _reset(d, d.index.as_unit("s")),
    "naive ns": lambda d: _reset(d, d.index.tz_localize(None)),
    "naive s, unnamed": lambda d: _reset(d, d.index.tz_localize(None).as_unit("s").rename(None)),
    "UTC+0 zone": lambda d: _reset(d, d.index.tz_convert("Etc/GMT-0")),
    "timestamp column": lambda d: d.reset_index(),
    "Date column of ISO text": lambda d: d.reset_index().assign(
        timestamp=lambda x: x["timestamp"].dt.strftime("%Y-%m-%d")).rename(
        columns={"timestamp": "Date"}),
    "epoch ms time column": lambda d: d.reset_index().assign(
        time=lambda x: x["timestamp"].astype("int64") // 10**6).drop(columns="timestamp"),
    "yfinance columns": lambda d: _reset(d, d.index.tz_localize(None).rename("Date")).rename(
        columns=str.title).assign(**{"Adj Close": lambda x: x["Close"] * 0.5}),
    "upper case, vol alias, extras": lambda d: d.rename(
        columns={"open": "OPEN", "high": "HIGH", "low": "LOW", "close": "CLOSE",
                 "volume": "vol"}).assign(trades=7, note="x"),
    "integer prices": lambda d: d.astype({c: "int64" for c in ("open", "high", "low", "close")}),
    "extra columns first": lambda d: d.assign(symbol="BTCUSDT")[
        ["symbol", "close", "open", "low", "high", "volume"]],
}


def _values(x: Any) -> Any:
    """What is compared: values only (indexes are checked separately)."""
    if isinstance(x, pd.Series | pd.DataFrame):
        return x.reset_index(drop=True)
    return x


def _same(a: Any, b: Any) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(_values(a), _values(b), check_exact=True)
    elif isinstance(a, pd.Series):
        pd.testing.assert_series_equal(_values(a), _values(b), check_exact=True)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b)
    else:
        assert a == b


def _result(res: Any) -> dict[str, Any]:
    return {"metrics": res.metrics, "trades": res.trades, "equity": res.equity,
            "prices": res.prices[["open", "high", "low", "close", "volume"]]}


def _signals(sig: Any) -> dict[str, Any]:
    return {k: getattr(sig, k) for k in ("entry", "exit", "stop", "target", "max_bars")}


SMALL = BacktestConfig(mode="both")
ENTRY_POINTS: dict[str, tuple[Callable[[pd.DataFrame], Any], bool]] = {
    # name: (call, per_bar: the output is on the input's own index)
    "weekly_ema": (lambda d: weekly_ema(d, 100), True),
    "htf_ema developing": (lambda d: htf_ema(d, "1w", 50, "developing"), True),
    "atr(frame)": (lambda d: atr(d, 20), True),
    "rsi(frame)": (lambda d: rsi(d), True),
    "support_resistance": (lambda d: support_resistance(d, min_touches=2).table, False),
    "sr_levels": (lambda d: sr_levels(d), True),
    "flips": (lambda d: flips(d).bars, True),
    "flip events": (lambda d: flips(d).events, False),
    "breakdown_signal": (lambda d: breakdown_signal(d), True),
    "signal_frame": (lambda d: signal_frame(d, wema_period=100), True),
    "outlook": (lambda d: outlook(d, wema_period=100).to_dict(), False),
    "Breakdown.signals": (lambda d: _signals(Breakdown().signals(d)), False),
    "OversoldBounce.indicators": (lambda d: OversoldBounce().indicators(d), True),
    "backtests.run": (lambda d: _result(run(d, OversoldBounce(), SMALL)), False),
    "run backtrader": (lambda d: _result(run(d, Breakdown(), BacktestConfig(
        engine="backtrader", mode="both"))), False),
    "run_sweep": (lambda d: run_sweep(d, OversoldBounce, {"rsi_period": [10, 14]}, SMALL,
                                      executor="serial", top=1).table.drop(
        columns=["elapsed_s"], errors="ignore"), False),
    "walk_forward": (lambda d: walk_forward(d, OversoldBounce, {"rsi_period": [10, 14]}, 600,
                                            300, SMALL, executor="serial").windows, False),
    "audit": (lambda d: audit(d, Breakdown(), cut_points=[700, 1200], config=SMALL).findings,
              False),
}

_expected: dict[str, Any] = {}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_accepts_every_frame(base: pd.DataFrame, entry: str,
                                               variant: str) -> None:
    call, per_bar = ENTRY_POINTS[entry]
    if entry not in _expected:
        _expected[entry] = call(base)
    frame = VARIANTS[variant](base)
    got = call(frame)
    _same(_expected[entry], got)
    if per_bar:
        assert got.index.equals(frame.index), "per-bar output must be on the caller's index"


def test_a_per_bar_output_can_be_assigned_to_the_users_frame(base: pd.DataFrame) -> None:
    raw = VARIANTS["naive ns"](base)
    raw["wema"] = weekly_ema(raw, 100)
    raw["atr"] = atr(raw)
    assert raw["wema"].notna().sum() == weekly_ema(base, 100).notna().sum() > 0
    np.testing.assert_array_equal(raw["atr"].to_numpy(), atr(base).to_numpy())


def test_canonical_frame_is_returned_as_is(base: pd.DataFrame) -> None:
    assert to_canonical(base) is base
    with_extra = base.assign(note="kept")
    assert to_canonical(with_extra) is with_extra  # extra columns of a canonical frame stay


def test_conversion_result(base: pd.DataFrame) -> None:
    out = to_canonical(VARIANTS["yfinance columns"](base))
    assert list(out.columns) == ["open", "high", "low", "close", "volume"]
    assert str(out.index.dtype) == "datetime64[ns, UTC]" and out.index.name == "timestamp"
    np.testing.assert_array_equal(out["close"].to_numpy(), base["close"].to_numpy())  # not Adj
    berlin = _reset(base, base.index.tz_convert("Europe/Berlin"))
    assert to_canonical(berlin).index.equals(base.index)  # same instants, now in UTC
    no_volume = to_canonical(base.drop(columns="volume"))
    assert no_volume["volume"].isna().all()


def test_canonical_frame_passes_the_boundary_untouched(base: pd.DataFrame) -> None:
    """A canonical frame is returned as is: same object, same memory, attrs untouched (what it
    costs is measured in benchmarks/bench_data.py, not timed here)."""
    attrs = dict(base.attrs)
    out = to_canonical(base)
    assert out is base
    assert np.shares_memory(out["close"].to_numpy(), base["close"].to_numpy())
    assert out.attrs == attrs


def _unsorted(d: pd.DataFrame) -> pd.DataFrame:
    return d.iloc[[0, 2, 1, *range(3, len(d))]]


BAD: dict[str, tuple[Callable[[pd.DataFrame], Any], str]] = {
    "no close": (lambda d: d.drop(columns="close"), r"no close column"),
    "only Adj Close": (lambda d: d.rename(columns={"close": "Adj Close"}),
                       r"no close column \('Adj Close' is not used"),
    "unsorted": (_unsorted, r"not sorted by time: row 2 .* row 1"),
    "duplicated": (lambda d: d.iloc[[0, 1, 1, *range(2, len(d))]],
                   r"duplicated time at rows 1 and 2"),
    "text price": (lambda d: d.astype({"close": object}).assign(
        close=lambda x: x["close"].where(np.arange(len(x)) != 7, "n/a")),
        r"column 'close' \(close\) is not numeric: row 7 holds 'n/a'"),
    "no time": (lambda d: d.reset_index(drop=True), r"no time"),
    "bad time text": (lambda d: d.reset_index().assign(
        timestamp=lambda x: x["timestamp"].astype(str).where(np.arange(len(x)) != 3, "soon")),
        r"holds 'soon' at row 3"),
    "not a frame": (lambda d: d["close"], r"is a Series, not a DataFrame|atr: needs high"),
}


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_unusable_frames_raise_data_error(base: pd.DataFrame, entry: str, bad: str) -> None:
    make, pattern = BAD[bad]
    frame = make(base.iloc[:800])
    call, _ = ENTRY_POINTS[entry]
    if bad == "not a frame" and entry in ("rsi(frame)",):
        pytest.skip("rsi takes a close Series by design")
    with pytest.raises(DataError, match=pattern):
        call(frame)
