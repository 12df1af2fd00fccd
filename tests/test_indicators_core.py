"""indicators.core: exact equality with TA-Lib, warm-up, input checks and causality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from data.frame import DataError
from indicators import atr, ema, rsi, sma
from indicators.core import atr as core_atr
from tests.lookahead import assert_causal, ohlc_frame, ohlc_paths

PERIODS = (2, 3, 14, 50, 200)
REAL = ("btc_daily", "btc_daily_bitstamp", "btc_hourly")


def _same(a: np.ndarray, b: np.ndarray) -> None:
    # assert_array_equal treats NaN == NaN and otherwise demands bit-exact equality.
    np.testing.assert_array_equal(a, b, strict=True)


def _all_four(df: pd.DataFrame, period: int) -> list[tuple[str, object, np.ndarray]]:
    """(name, our Series output, raw TA-Lib output on the same float64 arrays)."""
    h, lo, c = (df[k].to_numpy() for k in ("high", "low", "close"))
    out = [
        ("ema", ema(df["close"], period), talib.EMA(c, timeperiod=period)),
        ("sma", sma(df["close"], period), talib.SMA(c, timeperiod=period)),
        ("atr", atr(df["high"], df["low"], df["close"], period), talib.ATR(h, lo, c, period)),
    ]
    if period >= 2:
        out.append(("rsi", rsi(df["close"], period), talib.RSI(c, timeperiod=period)))
    return out


@pytest.mark.shared_data
@pytest.mark.parametrize("fixture", REAL)
@pytest.mark.parametrize("period", PERIODS)
def test_series_equal_talib_on_real_data(request, fixture, period):
    df = request.getfixturevalue(fixture)
    for name, ours, ref in _all_four(df, period):
        assert isinstance(ours, pd.Series)
        assert ours.name == f"{name}_{period}"
        assert ours.index.equals(df.index)
        assert ours.dtype == np.float64
        _same(ours.to_numpy(), ref)


@pytest.mark.shared_data
@pytest.mark.parametrize("fixture", REAL)
def test_arrays_equal_talib_on_real_data(request, fixture):
    df = request.getfixturevalue(fixture)
    h, lo, c = (df[k].to_numpy() for k in ("high", "low", "close"))
    for p in (14, 200):
        out = rsi(c, p)
        assert type(out) is np.ndarray
        _same(out, talib.RSI(c, p))
        _same(ema(c, p), talib.EMA(c, p))
        _same(sma(c, p), talib.SMA(c, p))
        _same(atr(h, lo, c, p), talib.ATR(h, lo, c, p))
    # The input is never modified.
    _same(c, df["close"].to_numpy())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [1, 5, 15, 16, 250, 5000])
def test_equal_talib_on_random_walks(seed, n):
    df = ohlc_frame(n, "1h", seed=seed, volatility=0.03, flat_fraction=0.1)
    for p in (1, 2, 14, 30):
        for _, ours, ref in _all_four(df, p):
            _same(ours.to_numpy(), ref)


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.float64, st.integers(0, 300), elements=st.floats(-1e6, 1e6)),
    period=st.integers(2, 40),
    lead=st.integers(0, 20),
)
def test_equal_talib_on_arbitrary_floats(x, period, lead):
    # Arbitrary finite values (negative, repeated, zero) plus a run of leading NaNs.
    x = np.r_[np.full(lead, np.nan), x]
    _same(rsi(x, period), talib.RSI(x, period))
    _same(ema(x, period), talib.EMA(x, period))
    _same(sma(x, period), talib.SMA(x, period))
    hi, lo = x + 1.0, x - 1.0
    _same(atr(hi, lo, x, period), talib.ATR(hi, lo, x, period))


@pytest.mark.parametrize(
    ("func", "warmup"),
    [
        (lambda x, p: rsi(x, p), lambda p: p),
        (lambda x, p: ema(x, p), lambda p: p - 1),
        (lambda x, p: sma(x, p), lambda p: p - 1),
        (lambda x, p: atr(x + 1, x - 1, x, p), lambda p: p),
    ],
    ids=["rsi", "ema", "sma", "atr"],
)
@pytest.mark.parametrize("lead", [0, 7])
def test_warmup_is_documented_number_of_nans(func, warmup, lead):
    x = np.r_[np.full(lead, np.nan), ohlc_frame(400, "1d", seed=3)["close"].to_numpy()]
    for p in (2, 14, 200):
        out = func(x, p)
        n_nan = lead + warmup(p)
        assert np.isnan(out[:n_nan]).all()
        assert np.isfinite(out[n_nan:]).all()


def test_period_one_is_identity_for_ema_and_sma():
    x = ohlc_frame(50, "1d", seed=1)["close"].to_numpy()
    _same(sma(x, 1), x)
    _same(ema(x, 1), talib.EMA(x, 1))
    _same(ema(x, 1), x)  # TA-Lib special-cases it: no (x - prev) * 1 + prev rounding


def test_integer_input_is_converted_like_float():
    x = np.arange(1, 60, dtype=np.int64) % 7 + 100
    _same(rsi(x, 5), talib.RSI(x.astype(np.float64), 5))
    s = pd.Series(x, index=pd.date_range("2024-01-01", periods=len(x), tz="UTC"))
    _same(ema(s, 5).to_numpy(), talib.EMA(x.astype(np.float64), 5))


def test_rsi_range_and_extremes():
    up = np.linspace(100, 200, 40)
    assert (rsi(up, 14)[14:] == 100.0).all()
    assert (rsi(up[::-1], 14)[14:] == 0.0).all()
    r = rsi(ohlc_frame(2000, "1h", seed=5, volatility=0.05)["close"], 14).dropna()
    assert ((r >= 0) & (r <= 100)).all()


def test_all_nan_and_empty_inputs():
    assert np.isnan(ema(np.full(10, np.nan), 3)).all()
    assert rsi(np.array([], dtype=float), 14).shape == (0,)
    empty = pd.Series([], dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    assert len(sma(empty, 3)) == 0


# -- input checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x: rsi(x, 1), r"rsi: period must be between 2 and 100000, got 1"),
        (lambda x: rsi(x, 0), r"between 2 and"),
        (lambda x: ema(x, 0), r"ema: period must be between 1 and 100000, got 0"),
        (lambda x: sma(x, -3), r"between 1 and"),
        (lambda x: atr(x, x, x, 0), r"atr: period must be between 1"),
        (lambda x: ema(x, 100_001), r"between 1 and 100000"),
        (lambda x: rsi(x, 14.0), r"period must be an integer, got 14.0 \(float\)"),
        (lambda x: ema(x, True), r"period must be an integer, got True"),
        (lambda x: ema(x, "20"), r"period must be an integer"),
        (lambda x: rsi(list(x), 14), r"rsi: close is a list, expected a numpy array"),
        (lambda x: rsi(x.reshape(2, -1), 14), r"one-dimensional, got shape \(2, 50\)"),
        (lambda x: rsi(x.astype(object), 14), r"dtype object, expected float"),
        (lambda x: rsi(x.astype(str), 14), r"expected float"),
        (lambda x: atr(x, x, x[:-1], 3), r"differ in length \(100, 100, 99\)"),
    ],
)
def test_bad_input_raises_data_error(call, match):
    x = np.linspace(1.0, 2.0, 100)
    with pytest.raises(DataError, match=match):
        call(x)


def test_nan_inside_input_is_rejected_with_position_and_timestamp():
    df = ohlc_frame(100, "1h", seed=2)
    c = df["close"].copy()
    c.iloc[40] = np.nan
    # TA-Lib itself would silently return 0.0 from there on: that is what we refuse.
    assert (talib.RSI(c.to_numpy(), 14)[41:] == 0.0).all()
    with pytest.raises(DataError, match=r"position 40 after its first valid value") as exc:
        rsi(c)
    assert exc.value.timestamp == df.index[40]
    assert "fill or drop" in str(exc.value)
    with pytest.raises(DataError, match="position 40"):
        ema(c.to_numpy(), 10)
    with pytest.raises(DataError, match="atr: low has nan at position 40"):
        atr(df["high"], c.rename("low"), df["close"])


def test_infinity_is_rejected_even_before_first_value():
    x = np.r_[np.nan, np.inf, np.linspace(1, 2, 30)]
    with pytest.raises(DataError, match="inf at position 1"):
        sma(x, 3)
    y = np.r_[np.linspace(1, 2, 30), -np.inf]
    with pytest.raises(DataError, match="-inf at position 30"):
        rsi(y, 3)


def test_atr_rejects_mixed_kinds_and_indexes():
    df = ohlc_frame(50, "1d", seed=0)
    with pytest.raises(DataError, match="all be Series or all be arrays"):
        core_atr(df["high"], df["low"].to_numpy(), df["close"])
    shifted = df["low"].copy()
    shifted.index = shifted.index + pd.Timedelta(hours=1)
    with pytest.raises(DataError, match="different indexes"):
        atr(df["high"], shifted, df["close"])


def test_nullable_series_with_missing_value_is_rejected():
    s = pd.Series([1.0, 2.0, None, 4.0] * 10, dtype="Float64")
    with pytest.raises(DataError, match="position 2"):
        ema(s, 3)


# -- causality --------------------------------------------------------------------------------

FUNCS = {
    "rsi": lambda d: rsi(d["close"], 14),
    "ema": lambda d: ema(d["close"], 20),
    "sma": lambda d: sma(d["close"], 20),
    "atr": lambda d: atr(d["high"], d["low"], d["close"], 14),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("fixture", ["btc_daily", "btc_hourly"])
@pytest.mark.parametrize("name", sorted(FUNCS))
def test_truncation_on_real_data(request, fixture, name):
    df = request.getfixturevalue(fixture)
    assert assert_causal(FUNCS[name], df, cut_points=30) >= 20


@settings(max_examples=25, deadline=None)
@given(df=ohlc_paths(min_bars=2, max_bars=400))
def test_truncation_on_random_paths(df):
    def all_four(d: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({k: f(d) for k, f in FUNCS.items()})

    assert assert_causal(all_four, df, cut_points=10) >= 1
