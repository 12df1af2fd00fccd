"""Core indicators through TA-Lib: RSI, EMA, SMA and ATR.

This is a thin, typed and documented layer over :mod:`talib`, not a reimplementation: every value
is computed by TA-Lib itself, so the output is *exactly* (bit for bit) what ``talib.RSI`` /
``talib.EMA`` / ``talib.SMA`` / ``talib.ATR`` return on the same float64 array. What the layer
adds:

* **Arrays or Series in, the same kind out.** A :class:`numpy.ndarray` gives an ndarray; a
  :class:`pandas.Series` gives a Series on the same index, named after the indicator
  (``"rsi_14"``, ``"ema_200"``, ``"sma_50"``, ``"atr_14"``).
* **Warm-up is NaN.** The first values that TA-Lib cannot compute yet are ``NaN`` (never 0, never
  dropped, so the output stays aligned bar for bar with the input):

  ====================  ==========================================
  function              leading NaN values (clean input)
  ====================  ==========================================
  ``rsi(close, n)``     ``n`` (RSI needs ``n`` price changes)
  ``ema(close, n)``     ``n - 1`` (seeded with the SMA of the first ``n`` closes)
  ``sma(close, n)``     ``n - 1``
  ``atr(h, l, c, n)``   ``n`` (true range needs the previous close)
  ====================  ==========================================

  RSI, EMA and ATR are recursive: their early values depend on where the series starts, and they
  settle only after several times ``n`` bars (TA-Lib calls this the "unstable period"; we use
  TA-Lib's global setting, whose default is 0, so values start right after the warm-up above).
* **Input checks** with :class:`data.frame.DataError` instead of silent garbage:

  - the period must be an integer, at least 2 for RSI and at least 1 for EMA, SMA and ATR
    (TA-Lib's own limits; a period of 1 returns the input unchanged for EMA and SMA), at most
    100,000;
  - the input must be one-dimensional and real-valued (integers are converted to float64);
  - **leading NaNs are allowed** (for example the warm-up of another indicator,
    ``rsi(ema(close, 10))``): TA-Lib skips them and the warm-up counts from the first valid
    value, so the output has ``k + warm-up`` leading NaNs;
  - **a NaN or infinity after the first valid value is rejected.** TA-Lib does not skip it: EMA,
    SMA and ATR return NaN for every later bar, and RSI silently returns 0.0 for every later bar
    (a wrong value that looks valid). Fill or drop the gap first.

Performance: the checks are one vectorised ``isfinite`` pass over the input, so the wrapper costs
a few percent over raw TA-Lib (see ``benchmarks/bench_indicators.py``). Inside a sweep the
functions are shared between parameter sets (:mod:`indicators.memo`): a call on the sweep's own
candles with a period another set used already returns a copy of that result.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar, overload

import numpy as np

from data.errors import DataError
from indicators.memo import memoised

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["atr", "ema", "rsi", "sma"]

ArrayOrSeries = TypeVar("ArrayOrSeries", "np.ndarray", "pd.Series")

_MAX_PERIOD = 100_000


def _talib() -> ModuleType:
    """TA-Lib, imported on the first computation rather than with the package: its own
    ``__init__`` imports pandas (and polars when installed) to wrap its functions, which made
    ``import indicators`` cost 0.6-0.8 s, of which pandas ~0.5 s (python -X importtime, 2-core
    machine); ``from indicators import rsi`` alone now stays under ~0.2 s."""
    import talib

    return talib


def _is_pandas(obj: object, kind: str) -> bool:
    """``obj`` is a pandas ``kind`` ("Series", "DataFrame"). Without pandas imported nothing can
    be one, and importing it to find out would cost ~0.5 s for a numpy input."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, getattr(pd, kind))


def _check_period(period: object, minimum: int, func: str) -> int:
    # bool is an int subclass; rsi(close, True) is a bug, not a period of 1.
    if isinstance(period, bool) or not isinstance(period, int | np.integer):
        raise DataError(
            f"{func}: period must be an integer, got {period!r} ({type(period).__name__})",
            hint=f"pass a whole number of bars, e.g. {func}(close, 14)",
        )
    p = int(period)
    if not minimum <= p <= _MAX_PERIOD:
        raise DataError(
            f"{func}: period must be between {minimum} and {_MAX_PERIOD}, got {p}",
            hint=f"TA-Lib's {func.upper()} accepts periods {minimum}..{_MAX_PERIOD}",
        )
    return p


def _as_array(values: object, func: str, arg: str) -> np.ndarray:
    """Return ``values`` as a 1-D float64 ndarray (no copy when it already is one)."""
    if _is_pandas(values, "Series"):
        import pandas as pd  # imported already (the input is a Series)

        dtype = values.dtype
        if not (pd.api.types.is_float_dtype(dtype) or pd.api.types.is_integer_dtype(dtype)):
            raise DataError(
                f"{func}: {arg} has dtype {dtype}, expected float",
                hint=f"convert it with {arg}.astype('float64')",
            )
        # Nullable dtypes (Float64, Int64) turn <NA> into NaN here, then get checked below.
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    elif isinstance(values, np.ndarray):
        arr = values
        if arr.dtype != np.float64:
            if arr.dtype.kind not in "fiu":
                raise DataError(
                    f"{func}: {arg} has dtype {arr.dtype}, expected float",
                    hint=f"convert it with {arg}.astype(np.float64)",
                )
            arr = arr.astype(np.float64)
    else:
        raise DataError(
            f"{func}: {arg} is a {type(values).__name__}, expected a numpy array or pandas Series",
            hint=f"wrap it with np.asarray({arg}, dtype=float)",
        )
    if arr.ndim != 1:
        raise DataError(
            f"{func}: {arg} must be one-dimensional, got shape {arr.shape}",
            hint="pass a single column, e.g. df['close']",
        )
    return arr


def _check_finite(arr: np.ndarray, func: str, arg: str, index: pd.Index | None) -> None:
    """Reject NaN/inf after the first valid value (leading NaNs are a warm-up and are allowed)."""
    finite = np.isfinite(arr)
    if finite.all():  # the common case: one vectorised pass, nothing else
        return
    if not finite.any():
        if np.isnan(arr).all():
            return  # all-NaN (e.g. an indicator still warming up): TA-Lib returns all NaN
        first_valid = len(arr)
    else:
        first_valid = int(np.argmax(finite))
    lead = arr[:first_valid]
    bad_lead = np.flatnonzero(~np.isnan(lead))  # +/-inf before the first valid value
    if bad_lead.size:
        pos = int(bad_lead[0])
    else:
        bad = np.flatnonzero(~finite[first_valid:])
        if not bad.size:
            return
        pos = first_valid + int(bad[0])
    where = index[pos] if index is not None else None
    raise DataError(
        f"{func}: {arg} has {arr[pos]} at position {pos} after its first valid value; TA-Lib "
        "would return NaN (EMA/SMA/ATR) or a false 0.0 (RSI) for every later bar",
        timestamp=where,
        hint="fill or drop missing values first (leading NaNs are fine)",
    )


def _prepare(values: object, func: str, arg: str = "close") -> tuple[np.ndarray, pd.Index | None]:
    if _is_pandas(values, "DataFrame"):
        import pandas as pd  # imported already (the input is a DataFrame)

        from data.frame import to_canonical

        # A candle frame: its close column (any frame to_canonical accepts), on its own index.
        values = pd.Series(to_canonical(values)["close"].to_numpy(), index=values.index)
    arr = _as_array(values, func, arg)
    index = values.index if _is_pandas(values, "Series") else None
    _check_finite(arr, func, arg, index)
    return arr, index


def _wrap(out: np.ndarray, index: pd.Index | None, name: str) -> np.ndarray | pd.Series:
    if index is None:
        return out
    import pandas as pd  # imported already (the input had an index)

    return pd.Series(out, index=index, name=name, copy=False)


@overload
def rsi(close: np.ndarray, period: int = 14) -> np.ndarray: ...
@overload
def rsi(close: pd.Series, period: int = 14) -> pd.Series: ...
@memoised
def rsi(close: np.ndarray | pd.Series, period: int = 14) -> np.ndarray | pd.Series:
    """Wilder's Relative Strength Index, exactly as ``talib.RSI``.

    Args:
        close: closing prices (1-D float array or Series).
        period: look-back in bars (>= 2), 14 by default as traders use it.

    Returns:
        RSI in percent (0..100), same length and kind as ``close``; a Series is named
        ``"rsi_<period>"``. The first ``period`` values are NaN (plus any leading NaNs of the
        input). Wilder smoothing is recursive, so early values depend on the start of the data.

    Raises:
        DataError: bad period, non-numeric or 2-D input, NaN/inf after the first valid value.
    """
    p = _check_period(period, 2, "rsi")
    arr, index = _prepare(close, "rsi")
    return _wrap(_talib().RSI(arr, timeperiod=p), index, f"rsi_{p}")


@overload
def ema(close: np.ndarray, period: int) -> np.ndarray: ...
@overload
def ema(close: pd.Series, period: int) -> pd.Series: ...
@memoised
def ema(close: np.ndarray | pd.Series, period: int) -> np.ndarray | pd.Series:
    """Exponential moving average, exactly as ``talib.EMA``.

    alpha = 2 / (period + 1); the first value is the simple average of the first ``period``
    values (TA-Lib's seeding), then ``ema += alpha * (close - ema)``.

    Args:
        close: prices (1-D float array or Series).
        period: number of bars (>= 1; 1 returns the input).

    Returns:
        The EMA in price units, same length and kind as ``close`` (Series named
        ``"ema_<period>"``). The first ``period - 1`` values are NaN (plus leading input NaNs).

    Raises:
        DataError: bad period, non-numeric or 2-D input, NaN/inf after the first valid value.
    """
    p = _check_period(period, 1, "ema")
    arr, index = _prepare(close, "ema")
    return _wrap(_talib().EMA(arr, timeperiod=p), index, f"ema_{p}")


@overload
def sma(close: np.ndarray, period: int) -> np.ndarray: ...
@overload
def sma(close: pd.Series, period: int) -> pd.Series: ...
@memoised
def sma(close: np.ndarray | pd.Series, period: int) -> np.ndarray | pd.Series:
    """Simple moving average of the last ``period`` values, exactly as ``talib.SMA``.

    Returns:
        The SMA in price units, same length and kind as ``close`` (Series named
        ``"sma_<period>"``). The first ``period - 1`` values are NaN (plus leading input NaNs).

    Raises:
        DataError: bad period (< 1), non-numeric or 2-D input, NaN/inf after the first valid value.
    """
    p = _check_period(period, 1, "sma")
    arr, index = _prepare(close, "sma")
    return _wrap(_talib().SMA(arr, timeperiod=p), index, f"sma_{p}")


@overload
def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray: ...
@overload
def atr(high: pd.Series, low: pd.Series, close: pd.Series, period: int = 14) -> pd.Series: ...
@overload
def atr(high: pd.DataFrame, low: int = 14) -> pd.Series: ...
@memoised
def atr(
    high: np.ndarray | pd.Series | pd.DataFrame,
    low: np.ndarray | pd.Series | int | None = None,
    close: np.ndarray | pd.Series | None = None,
    period: int = 14,
) -> np.ndarray | pd.Series:
    """Wilder's Average True Range, exactly as ``talib.ATR``.

    Args:
        high, low, close: the bars' prices, all the same length and kind (arrays or Series on
            the same index). Or a candle frame alone: ``atr(df)`` / ``atr(df, 20)`` (any frame
            :func:`data.frame.to_canonical` accepts; the result is on ``df``'s own index).
        period: look-back in bars (>= 1), 14 by default.

    Returns:
        ATR in price units, same length and kind as the inputs (Series named ``"atr_<period>"``
        on ``close``'s index). The first ``period`` values are NaN: the true range needs the
        previous close, then ``period`` true ranges are averaged to seed Wilder's smoothing.

    Raises:
        DataError: bad period, mismatched lengths or indexes, non-numeric or 2-D input, NaN/inf
        after the first valid value.
    """
    if _is_pandas(high, "DataFrame"):
        import pandas as pd  # imported already (the input is a DataFrame)

        from data.frame import to_canonical

        if close is not None or not (low is None or isinstance(low, int | np.integer)):
            raise DataError("atr: with a candle frame, give only the frame and the period",
                            hint="atr(df, 14) or atr(df['high'], df['low'], df['close'], 14)")
        frame, own_index = to_canonical(high), high.index
        period = period if low is None else low
        high, low, close = (pd.Series(frame[c].to_numpy(), index=own_index)
                            for c in ("high", "low", "close"))
    if low is None or close is None:
        raise DataError("atr: needs high, low and close (or a candle frame)",
                        hint="atr(df) or atr(df['high'], df['low'], df['close'])")
    p = _check_period(period, 1, "atr")
    kinds = {_is_pandas(x, "Series") for x in (high, low, close)}
    if len(kinds) != 1:
        raise DataError(
            "atr: high, low and close must all be Series or all be arrays",
            hint="pass df['high'], df['low'], df['close']",
        )
    h, _ = _prepare(high, "atr", "high")
    lo, _ = _prepare(low, "atr", "low")
    c, index = _prepare(close, "atr", "close")
    if not len(h) == len(lo) == len(c):
        raise DataError(
            f"atr: high, low and close differ in length ({len(h)}, {len(lo)}, {len(c)})",
            hint="pass columns of the same frame",
        )
    if index is not None and not (high.index.equals(index) and low.index.equals(index)):
        raise DataError(
            "atr: high, low and close have different indexes",
            hint="pass columns of the same frame",
        )
    return _wrap(_talib().ATR(h, lo, c, timeperiod=p), index, f"atr_{p}")
