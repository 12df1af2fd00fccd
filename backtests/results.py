"""The result of one backtest run: what was run, on which data, and what happened.

:class:`BacktestResult` is the single object both engines return and every report reads. It holds
the parameters, the engine configuration, a fingerprint of the data, the prices the run used, the
trade list, the equity and buy-and-hold curves, the indicator columns, S/R events and levels, the
technical outlook and the metrics. It is saved as ``results.json`` plus one Parquet file per frame
and loads back unchanged (same values, dtypes, time zones and NaNs; JSON floats round-trip exactly
because Python writes the shortest repr that parses back to the same double).

Non-finite floats (``inf`` profit factor with no losing trade, ``NaN`` Sharpe of a flat curve) are
legal in memory but not in strict JSON; :func:`backtests.persist.to_jsonable` writes them as
``{"$float": "inf"}`` so that ``results.json`` is valid JSON for any reader (browsers included)
and loads back exactly. Saving and loading is :mod:`backtests.persist`, shared with sweeps and
walk-forwards.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import xxhash

from backtests.config import WIPED_OUT
from backtests.persist import load_frames, plain_json, read_manifest, save_folder
from data.frame import OHLCV, DataError, timeframe_of, to_canonical
from data.perbar import CompactFrame, compact

RESULT_KIND = "btc-backtest-result"
SCHEMA_VERSION = 1
RESULTS_JSON = "results.json"

#: The columns of :attr:`BacktestResult.trades`, in order, one row per closed trade.
TRADE_COLUMNS: tuple[str, ...] = (
    "entry_time",
    "exit_time",
    "entry_bar",
    "exit_bar",
    "side",
    "size",
    "entry_price",
    "exit_price",
    "entry_fee",
    "exit_fee",
    "funding",
    "pnl",
    "return_pct",
    "exit_reason",
    "leverage",
    "liquidation_price",
    "initial_stop",
    "mae_pct",
    "mfe_pct",
    "tag",
)

_TIME = "datetime64[ns, UTC]"
_STR = pd.StringDtype(na_value=np.nan)  # pandas 3's default "str" dtype; NaN for missing
#: Columns added after results were first saved, with the value older tables get for them.
LATER_TRADE_COLUMNS: dict[str, float] = {"initial_stop": np.nan}

#: The dtype of each trade column (``normalize_trades`` coerces to these).
TRADE_DTYPES: dict[str, Any] = {
    "entry_time": _TIME,
    "exit_time": _TIME,
    "entry_bar": "int64",
    "exit_bar": "int64",
    "side": "int64",
    "size": "float64",
    "entry_price": "float64",
    "exit_price": "float64",
    "entry_fee": "float64",
    "exit_fee": "float64",
    "funding": "float64",
    "pnl": "float64",
    "return_pct": "float64",
    "exit_reason": _STR,
    "leverage": "float64",
    "liquidation_price": "float64",
    "initial_stop": "float64",
    "mae_pct": "float64",
    "mfe_pct": "float64",
    "tag": _STR,
}

_COLUMN_LIST = list(TRADE_COLUMNS)
#: (dtype object, its name) of each trade column, in order (``_is_normal``)
_DTYPES = [(pd.api.types.pandas_dtype(TRADE_DTYPES[c]), str(TRADE_DTYPES[c]))
           for c in TRADE_COLUMNS]

#: Allowed values of ``trades.exit_reason``.
EXIT_REASONS: tuple[str, ...] = (
    "signal",
    "stop",
    "target",
    "liquidation",
    "time",
    "end",
    "reverse",
    "stop_close",
    "trail",
    "trail_close",
    "breakeven",
    "breakeven_close",
    "partial",
)
_REASON_SET = frozenset(EXIT_REASONS)
#: The exit reasons filled at the exit bar's open (the others fill inside the bar or at its close).
OPEN_EXITS: tuple[str, ...] = ("signal", "time", "reverse", "stop_close", "trail_close",
                               "breakeven_close")

# The frames a result stores, each in its own Parquet file.
_FRAMES: tuple[str, ...] = ("prices", "trades", "indicators", "events", "levels")
_SERIES: tuple[str, ...] = ("equity", "benchmark")


def empty_trades() -> pd.DataFrame:
    """An empty trade table with :data:`TRADE_COLUMNS` and their dtypes (:data:`TRADE_DTYPES`)."""
    return pd.DataFrame({c: pd.Series([], dtype=TRADE_DTYPES[c]) for c in TRADE_COLUMNS})


def _is_normal(trades: pd.DataFrame) -> bool:
    """True when ``trades`` already has the canonical layout (a cheap fast path: plain lists and
    dtype objects compared, ~0.4 -> ~0.07 ms; an Index slice, ``dtypes.iloc`` and ``str`` of
    each dtype were most of it)."""
    if trades.columns.tolist()[: len(TRADE_COLUMNS)] != _COLUMN_LIST:
        return False
    index = trades.index
    if not isinstance(index, pd.RangeIndex) or index.start != 0 or index.step != 1:
        return False
    # one dtypes look-up (a column access per name would build 20 Series); the dtype's name is
    # looked at only when it is not the canonical dtype object itself (e.g. "str" of another
    # storage, as before)
    if any(d != want and str(d) != name for d, (want, name)
           in zip(trades.dtypes.tolist(), _DTYPES, strict=False)):
        return False
    # a missing reason shows as NaN among the distinct values, which is not a reason either
    return set(trades["exit_reason"].unique()) <= _REASON_SET


def normalize_trades(trades: pd.DataFrame | None) -> pd.DataFrame:
    """Return ``trades`` with the canonical columns first, in order, and canonical dtypes.

    Extra columns are kept after the canonical ones. Integer tags become strings; a missing tag is
    NaN. A table from before a column was added (:data:`LATER_TRADE_COLUMNS`, e.g. a saved
    result) gets that column filled with its default. The index is reset to 0..n-1.

    Raises:
        DataError: when a canonical column is missing, an exit reason is unknown, or a column
            cannot be converted to its dtype.
    """
    if trades is None:
        return empty_trades()
    if not isinstance(trades, pd.DataFrame):
        raise DataError(f"trades is a {type(trades).__name__}, not a DataFrame")
    if _is_normal(trades):
        return trades
    later = {c: v for c, v in LATER_TRADE_COLUMNS.items() if c not in trades.columns}
    if later:
        trades = trades.assign(**later)
    missing = [c for c in TRADE_COLUMNS if c not in trades.columns]
    if missing:
        raise DataError(
            f"trades lack column(s) {', '.join(missing)}",
            hint="build the trade table with backtests.results.empty_trades() columns",
        )
    out = {}
    for c in TRADE_COLUMNS:
        col = trades[c].reset_index(drop=True)
        want = TRADE_DTYPES[c]
        try:
            if want == _TIME:
                col = pd.to_datetime(col, utc=True).astype(_TIME)
            elif want is _STR:
                col = col.astype(_STR)  # ints become "7"; None/NaN stay missing
            else:
                col = col.astype(want)
        except (TypeError, ValueError) as exc:
            raise DataError(f"trades column {c!r} cannot be converted to {want}: {exc}") from exc
        out[c] = col
    res = pd.DataFrame(out)
    bad = sorted(set(res["exit_reason"].dropna()) - set(EXIT_REASONS))
    if bad or res["exit_reason"].isna().any():
        raise DataError(
            f"unknown trade exit reason(s) {bad or ['<missing>']}",
            hint=f"use one of {', '.join(EXIT_REASONS)}",
        )
    for c in trades.columns:
        if c not in TRADE_COLUMNS:
            res[c] = trades[c].to_numpy()
    return res


@functools.cache  # the installed metadata does not change while the process runs (~3 ms a look-up)
def package_version() -> str:
    """The installed version of this package (``"0.0.0+unknown"`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("btc-backtest")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def _ts_iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else pd.Timestamp(ts).isoformat()


#: SHA-256 digests of candle contents already hashed in this process, keyed by the row count and
#: the XXH3-128 digest of the same bytes (about 15x cheaper than SHA-256: 3 ms against 45 ms for
#: 1M bars). Every strategy of a job and every run on one frame then pays the XXH3 pass only. The
#: key is the content, not the frame's identity, so a value changed in place is a different key
#: and is hashed afresh. (XXH3 is not collision resistant against someone crafting two frames for
#: it; a crafted pair would get one recorded SHA-256 in one process, not a wrong backtest.)
_SHA_CACHE: OrderedDict[tuple[int, bytes], str] = OrderedDict()
_SHA_CACHE_SIZE = 16
_SHA_LOCK = threading.Lock()


#: From this many bytes on, :func:`_contents_key` hashes the two halves of the parts in two
#: threads (xxhash releases the GIL): 1M bars are 48 MB, ~3.8 ms in one thread, ~2 ms in two
#: when a second core is free; a thread costs ~0.1 ms to start, so small frames use one.
_PARALLEL_BYTES = 8 << 20


def _xxh3(parts: list[np.ndarray]) -> bytes:
    h = xxhash.xxh3_128()
    for p in parts:
        h.update(p)
    return h.digest()


def _contents_key(parts: list[np.ndarray]) -> bytes:
    """XXH3-128 of ``parts`` in turn or, for large parts, of each half of them (in parallel):
    either way a function of the bytes and their split into parts alone."""
    if sum(p.nbytes for p in parts) < _PARALLEL_BYTES or len(parts) < 2:
        return _xxh3(parts)
    half = len(parts) // 2
    second: list[bytes] = []
    worker = threading.Thread(target=lambda: second.append(_xxh3(parts[half:])))
    worker.start()  # started and joined here: no thread outlives the call (fork-safe)
    first = _xxh3(parts[:half])
    worker.join()
    return first + second[0]


def _contents_sha256(rows: int, parts: list[np.ndarray]) -> str:
    """SHA-256 hex digest of ``parts`` (contiguous arrays) in turn, remembered by their XXH3
    (:func:`_contents_key`)."""
    key = (rows, _contents_key(parts))
    with _SHA_LOCK:
        known = _SHA_CACHE.get(key)
        if known is not None:
            _SHA_CACHE.move_to_end(key)
            return known
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    digest = h.hexdigest()
    with _SHA_LOCK:
        _SHA_CACHE[key] = digest
        while len(_SHA_CACHE) > _SHA_CACHE_SIZE:
            _SHA_CACHE.popitem(last=False)
    return digest


def data_fingerprint(
    df: pd.DataFrame,
    origin: str | None = None,
    *,
    exchange: str | None = None,
    symbol: str | None = None,
) -> dict[str, Any]:
    """Identify a candle frame: where it came from, its span and a hash of its contents.

    Returns a dict with ``source`` (``df.attrs["source"]``), ``exchange`` and ``symbol`` (the
    arguments, else ``df.attrs``, else None), ``timeframe``, ``start``/``end`` (ISO UTC bar open
    times), ``rows``, ``sha256`` and ``origin`` (a free note, e.g. "tiled x4" or "random seed 7").

    The hash is SHA-256 over the index as int64 nanoseconds since the epoch, then each of the
    open, high, low, close and volume columns in turn as float64, all little-endian: identical
    candles give identical hashes whatever the file they were read from. Candles already hashed
    in this process are looked up by a fast hash of the same bytes (:func:`_contents_sha256`).
    """
    df = to_canonical(df, "price frame")
    # Column by column: each column is contiguous already, so hashing copies nothing. (The
    # canonical index is in ns: asi8 is the nanoseconds.)
    # The columns are read from a frame over the same data without ``attrs``: pandas deep-copies
    # a frame's attrs into every column it hands out (a loaded file's validation report: ~40
    # instead of ~9 us a column, 5 columns per fingerprint, more with cold caches).
    bare = pd.DataFrame(df, copy=False)
    parts = [np.ascontiguousarray(df.index.asi8, dtype="<i8")]
    parts += [np.ascontiguousarray(bare[c].to_numpy(), dtype="<f8") for c in OHLCV]
    attrs = df.attrs
    return {
        "source": attrs.get("source"),
        "exchange": exchange if exchange is not None else attrs.get("exchange"),
        "symbol": symbol if symbol is not None else attrs.get("symbol"),
        "timeframe": attrs.get("timeframe"),
        "start": _ts_iso(df.index[0]) if len(df) else None,
        "end": _ts_iso(df.index[-1]) if len(df) else None,
        "rows": len(df),
        "sha256": _contents_sha256(len(df), parts),
        "origin": origin,
    }


class _PendingData:
    """A result's ``data`` record before its hash is taken: the candles as the run saw them (a
    copy-on-write snapshot of their own, so a later write to the caller's frame or to
    ``result.prices`` does not reach them), the origin note and the extra keys."""

    __slots__ = ("extra", "origin", "prices")

    def __init__(self, prices: pd.DataFrame, origin: str | None, extra: dict[str, Any]) -> None:
        self.prices = prices.copy(deep=False)
        self.origin = origin
        self.extra = extra

    def resolve(self) -> dict[str, Any]:
        return {**data_fingerprint(self.prices, self.origin), **self.extra}


def buy_and_hold(df: pd.DataFrame, cash: float, commission: float) -> pd.Series:
    """Equity (quote currency) of buying with all ``cash`` at the first bar's open.

    The quantity is ``cash / (open0 * (1 + commission))``, so notional plus the entry fee use the
    whole cash. Equity at each bar's close is ``quantity * close``; on the last bar the position
    is sold at the close paying ``commission`` again, like a strategy's "end" exit. Returns a
    float64 Series named ``benchmark`` on ``df``'s index.
    """
    if len(df) == 0:
        return pd.Series([], index=df.index, dtype="float64", name="benchmark")
    if not (cash > 0 and 0 <= commission < 1):
        raise DataError(f"buy_and_hold needs cash > 0 and 0 <= commission < 1, got {cash}, "
                        f"{commission}")
    open0 = float(df["open"].iloc[0])
    qty = cash / (open0 * (1.0 + commission))
    eq = qty * df["close"].to_numpy(dtype=np.float64)
    eq[-1] *= 1.0 - commission  # exit fee on the final sale
    return pd.Series(eq, index=df.index, name="benchmark", copy=False)  # eq is fresh


def _frames_equal(a: pd.DataFrame | pd.Series, b: pd.DataFrame | pd.Series) -> bool:
    if type(a) is not type(b):
        return False
    try:
        if isinstance(a, pd.Series):
            pd.testing.assert_series_equal(a, b, check_exact=True, check_freq=False)
        else:
            pd.testing.assert_frame_equal(a, b, check_exact=True, check_freq=False)
    except AssertionError:
        return False
    return a.attrs == b.attrs


def _values_equal(a: Any, b: Any) -> bool:
    """Deep equality where NaN equals NaN (for metrics and parameters)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(_values_equal(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, pd.Series) or isinstance(b, pd.Series):
        return isinstance(a, pd.Series) and isinstance(b, pd.Series) and _frames_equal(a, b)
    if isinstance(a, (float, np.floating)) and isinstance(b, (float, np.floating)):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return bool(type(a) is type(b) and a == b) or (
        isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number))
        and not isinstance(a, bool) and not isinstance(b, bool) and a == b
    )


def _plain_attrs(obj: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """``obj`` with only its plain-JSON ``attrs`` (a shallow copy when some are dropped): a
    result must save and load back unchanged (a loader's ValidationReport in prices.attrs, say,
    is dropped)."""
    plain = {k: v for k, v in obj.attrs.items() if plain_json(v)}
    if plain != obj.attrs:
        obj = obj.copy(deep=False)
        obj.attrs = plain
    return obj


# ----------------------------------------------------------------------------------------------


@dataclass(eq=False)
class BacktestResult:
    """Everything about one backtest run (see the module docstring; the execution rules are in
    :mod:`backtests.engines.fast`).

    Attributes:
        strategy: strategy name.
        params: validated strategy parameters.
        config: ``BacktestConfig.to_dict()``.
        data: :func:`data_fingerprint` of the prices (a plain dict; a result of
            :meth:`from_run` hashes the candles on the first read).
        prices: the canonical OHLCV frame the run used (from :meth:`from_run`: a
            copy-on-write snapshot, so a later change to your own frame does not reach it).
        trades: :data:`TRADE_COLUMNS`, one row per closed trade (coerced by
            :func:`normalize_trades`).
        equity: account equity in quote currency at each bar's close.
        benchmark: buy-and-hold equity (:func:`buy_and_hold`) on the same bars.
        indicators: per-bar indicator columns. Held compactly (:mod:`data.perbar`: zone
            columns as int32 codes into a table of zones, columns that rarely change as runs)
            and rebuilt, bit for bit, as a new DataFrame on each read (~0.1 s for 1M one-minute
            bars of the breakdown's 26 columns): keep a reference while you use it, or read
            a few columns with :meth:`indicator_columns`.
        events: S/R flip and retest events (may be empty).
        levels: S/R zones at the end date (may be empty).
        outlook: technical outlook at the end date.
        story: what the main job tells about the data (:mod:`backtests.story`): "market_now"
            (the outlook at the last bar in short) and "biggest_moves" (the largest daily moves
            and what each strategy held); empty when not computed.
        metrics: :func:`backtests.metrics.compute_metrics` output.
        engine: "fast" or "backtrader".
        version: package version that produced it.
        created: ISO UTC creation time.
        checks: trust checks run with the backtest, e.g. ``{"lookahead": {...}}`` (the quick
            truncation audit of ``btc-backtest run``, see :func:`backtests.job.lookahead_check`);
            empty when none ran. Reports show them as badges.
    """

    strategy: str
    params: dict[str, Any]
    config: dict[str, Any]
    data: dict[str, Any]
    prices: pd.DataFrame
    trades: pd.DataFrame
    equity: pd.Series
    benchmark: pd.Series
    indicators: pd.DataFrame = field(default_factory=pd.DataFrame)
    events: pd.DataFrame = field(default_factory=pd.DataFrame)
    levels: pd.DataFrame = field(default_factory=pd.DataFrame)
    outlook: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    engine: str = "fast"
    story: dict[str, Any] = field(default_factory=dict)
    version: str = field(default_factory=package_version)
    created: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )
    checks: dict[str, Any] = field(default_factory=dict)

    SCHEMA_VERSION: ClassVar[int] = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.trades = normalize_trades(self.trades)
        for name in ("equity", "benchmark"):
            s = getattr(self, name)
            if not isinstance(s, pd.Series):
                raise DataError(f"result {name} is a {type(s).__name__}, not a Series")
        for name in ("events", "levels"):  # (the indicators setter takes None itself)
            if getattr(self, name) is None:
                setattr(self, name, pd.DataFrame())
        for name in (*_FRAMES, *_SERIES):
            if name != "indicators":  # checked by its setter, without building the frame
                setattr(self, name, _plain_attrs(getattr(self, name)))

    # -- construction helper for engines --------------------------------------------------
    @classmethod
    def from_run(
        cls,
        *,
        df: pd.DataFrame,
        strategy: str,
        params: dict[str, Any],
        config: dict[str, Any],
        trades: pd.DataFrame,
        equity: pd.Series | np.ndarray,
        engine: str,
        indicators: pd.DataFrame | None = None,
        events: pd.DataFrame | None = None,
        levels: pd.DataFrame | None = None,
        outlook: dict[str, Any] | None = None,
        origin: str | None = None,
        warmup: dict[str, Any] | None = None,
    ) -> BacktestResult:
        """Build a result from an engine's raw output: adds the buy-and-hold benchmark (with
        ``config["cash"]`` and ``config["commission"]``), the data fingerprint (``data``, with
        ``warmup`` as ``data["warmup"]`` when given; the hash is taken on the first read of
        ``data``, from a snapshot of ``df`` as it is now), the metrics, the package version and
        the creation time. ``prices`` is a copy-on-write snapshot of ``df``: later writes to
        ``df`` through pandas do not reach the result."""
        from backtests.metrics import compute_metrics

        if not isinstance(equity, pd.Series):
            equity = pd.Series(np.asarray(equity, dtype=np.float64), index=df.index)
        equity = equity.rename("equity")
        cash = float(config.get("cash", equity.iloc[0] if len(equity) else 0.0))
        bench = buy_and_hold(df, cash, float(config.get("commission", 0.0)))
        res = cls(
            strategy=strategy,
            params=dict(params),
            config=dict(config),
            # canonical now, so a frame that cannot be hashed fails here, not on a later read
            data=_PendingData(to_canonical(df, "price frame"), origin,
                              {} if warmup is None else {"warmup": warmup}),
            prices=df.copy(deep=False),
            trades=trades,
            equity=equity,
            benchmark=bench,
            indicators=indicators if indicators is not None else pd.DataFrame(index=df.index),
            events=events if events is not None else pd.DataFrame(),
            levels=levels if levels is not None else pd.DataFrame(),
            outlook=dict(outlook or {}),
            engine=engine,
        )
        # On the trades as the result holds them (normalised once, by __post_init__).
        res.metrics = compute_metrics(res.equity, res.trades, bench, timeframe_of(df), cash=cash)
        return res

    # -- derived views ---------------------------------------------------------------------
    @property
    def drawdown(self) -> pd.Series:
        """Drawdown of the equity curve: ``equity / running max - 1`` (fraction, <= 0)."""
        eq = self.equity
        return (eq / eq.cummax() - 1.0).rename("drawdown")

    @property
    def wiped_out(self) -> pd.Timestamp | None:
        """When the account was wiped out, or None: the first bar from which the equity stays
        below ``WIPED_OUT`` (a millionth) of the starting cash to the end. Both engines open no
        trade after it, so the rest of the data is not tested; say so wherever the result's
        trade count or return is shown."""
        eq = self.equity.to_numpy()
        cash = float(self.config.get("cash", eq[0] if len(eq) else 0.0))
        if not len(eq) or not eq[-1] < cash * WIPED_OUT:
            return None
        above = np.flatnonzero(~(eq < cash * WIPED_OUT))
        return self.equity.index[above[-1] + 1 if len(above) else 0]

    def summary(self) -> dict[str, Any]:
        """A flat dict for a CLI table: strategy, engine, span, rows and the headline metrics."""
        keys = (
            "total_return_pct", "cagr_pct", "max_drawdown_pct", "sharpe", "sortino", "calmar",
            "win_rate_pct", "profit_factor", "n_trades", "n_liquidations", "exposure_pct",
            "buy_hold_return_pct", "final_equity",
        )
        out: dict[str, Any] = {
            "strategy": self.strategy,
            "engine": self.engine,
            "start": self.data.get("start"),
            "end": self.data.get("end"),
            "rows": self.data.get("rows"),
        }
        out.update({k: self.metrics.get(k) for k in keys})
        return out

    def trades_by_exit_reason(self) -> pd.DataFrame:
        """Per exit reason: count, win rate %, total and average PnL, average return %."""
        from backtests.metrics import exit_reason_stats

        return exit_reason_stats(self.trades)

    # -- in a notebook (backtests.stats; imported on use: it imports backtests.metrics, which
    # imports this module) -------------------------------------------------------------------
    @property
    def stats(self) -> pd.Series:
        """Statistics with readable labels and units in backtesting.py's order (``Start``,
        ``Return [%]``, ``Sharpe Ratio``, ..., ``Funding Paid [$]``): see
        :mod:`backtests.stats`."""
        from backtests.stats import stats

        return stats(self)

    @property
    def stats_table(self) -> pd.DataFrame:
        """:attr:`stats` next to the same statistics of buy and hold on the same bars."""
        from backtests.stats import stats_table

        return stats_table(self)

    @property
    def returns(self) -> pd.Series:
        """Daily simple returns (fraction) on tz-naive UTC dates, as QuantStats takes them:
        ``qs.reports.html(result.returns, output="report.html")``."""
        from backtests.stats import daily_returns

        return daily_returns(self)

    def plot(self) -> Any:
        """A matplotlib Figure of equity vs buy and hold and their drawdowns."""
        from backtests.stats import plot

        return plot(self)

    def _repr_html_(self) -> str:
        from backtests.stats import stats_html

        return stats_html(self)

    # -- persistence -------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        return {
            "kind": RESULT_KIND,
            "schema": SCHEMA_VERSION,
            "strategy": self.strategy,
            "engine": self.engine,
            "version": self.version,
            "created": self.created,
            "params": self.params,
            "config": self.config,
            "data": self.data,
            "metrics": self.metrics,
            "outlook": self.outlook,
            "story": self.story,
            "checks": self.checks,
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``results.json`` and one Parquet file per frame into ``directory``; return it.

        Atomic, and other files in ``directory`` are left alone (see
        :func:`backtests.persist.save_folder`). ``results.json`` records the SHA-256 of every
        Parquet file; :meth:`load` checks them.
        """
        return save_folder(directory, RESULTS_JSON, self._manifest(),
                           {name: getattr(self, name) for name in _FRAMES + _SERIES})

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> BacktestResult:
        """Load a result written by :meth:`save`.

        Raises:
            DataError: when ``directory`` holds no result, a file is missing or altered, or the
                result was written by a newer schema version.
        """
        manifest = read_manifest(directory, RESULTS_JSON, "backtest result")
        mpath = str(Path(directory) / RESULTS_JSON)
        if manifest.get("kind") != RESULT_KIND:
            raise DataError(f"{RESULTS_JSON} is not a btc-backtest result file", source=mpath,
                            hint="pass the directory written by BacktestResult.save()")
        schema = manifest.get("schema")
        if not isinstance(schema, int) or schema > SCHEMA_VERSION or schema < 1:
            raise DataError(
                f"result schema version {schema!r} is not supported (this version reads "
                f"1..{SCHEMA_VERSION}; written by btc-backtest {manifest.get('version')})",
                source=mpath,
                hint="upgrade btc-backtest to read this result",
            )
        loaded = load_frames(directory, manifest, required=_FRAMES + _SERIES)
        res = cls.__new__(cls)
        for key in ("strategy", "params", "config", "data", "outlook", "metrics", "engine",
                    "version", "created"):
            setattr(res, key, manifest[key])
        res.story = manifest.get("story", {})  # results saved before the story existed
        res.checks = manifest.get("checks", {})  # absent in results saved before checks existed
        for name in _FRAMES + _SERIES:
            setattr(res, name, loaded[name])
        return res

    def replace(self, **changes: Any) -> BacktestResult:
        """A copy with ``changes`` (field name -> value), like :func:`dataclasses.replace`
        but without rebuilding and compacting the indicator frame again (~0.15 s for 1M bars)
        unless ``indicators`` is one of the changes. The copy shares the unchanged fields."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"BacktestResult has no field {unknown[0]!r}")
        new = copy.copy(self)
        for name, value in changes.items():
            setattr(new, name, value)
        new.__post_init__()  # the same checks as a new result's
        return new

    # -- the per-bar indicator frame, held compactly (installed as a property below) --------
    def _get_data(self) -> dict[str, Any]:
        held = self.__dict__["_data"]
        if isinstance(held, _PendingData):  # hashed on the first read (see from_run)
            held = self.__dict__["_data"] = held.resolve()
        return held

    def _set_data(self, data: dict[str, Any] | _PendingData) -> None:
        self.__dict__["_data"] = data

    def _get_indicators(self) -> pd.DataFrame:
        return self._indicators.frame()

    def indicator_columns(self, *names: str) -> pd.DataFrame:
        """The per-bar indicator columns called ``names`` (those the result has, in its
        order; units as in :attr:`indicators`), equal to ``indicators[...]`` of them but
        decoded without rebuilding the other columns (a new DataFrame on each call)."""
        return self._indicators.frame(names)

    def _set_indicators(self, frame: pd.DataFrame | CompactFrame | None) -> None:
        if frame is None:
            frame = pd.DataFrame()
        # columns equal to the candles' own buffers (a "close" column) stay shared with them
        prices = self.__dict__.get("prices")
        prices = prices if isinstance(prices, pd.DataFrame) else None
        if isinstance(frame, CompactFrame):
            # held as it is (a strategy's signal columns, never dense: issue 17)
            attrs = {k: v for k, v in frame.attrs.items() if plain_json(v)}
            self._indicators = replace(frame.owning(prices), attrs=attrs)
            return
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"result indicators is a {type(frame).__name__}, not a DataFrame")
        self._indicators = compact(_plain_attrs(frame), prices)

    # -- comparison --------------------------------------------------------------------------
    def differences(self, other: BacktestResult) -> list[str]:
        """Names of the fields that differ from ``other`` (empty when the results are equal).

        Frames compare exactly (values, dtypes, index, NaN positions, attrs); NaN equals NaN.
        """
        out = [k for k in ("strategy", "engine", "version", "created")
               if getattr(self, k) != getattr(other, k)]
        out += [k for k in ("params", "config", "data", "outlook", "metrics", "story",
                            "checks")
                if not _values_equal(getattr(self, k), getattr(other, k))]
        out += [k for k in _FRAMES + _SERIES
                if not _frames_equal(getattr(self, k), getattr(other, k))]
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BacktestResult):
            return NotImplemented
        return not self.differences(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"BacktestResult({self.strategy!r}, engine={self.engine!r}, "
            f"{self.data.get('start')} -> {self.data.get('end')}, trades={len(self.trades)}, "
            f"return={m.get('total_return_pct', float('nan')):.2f}%)"
        )


# A property over the dataclass field: __init__, load() and any assignment go through the setter
# (which compacts); reading rebuilds the frame. Installed after @dataclass, which would otherwise
# take the property object for the field's default.
BacktestResult.indicators = property(  # type: ignore[assignment]
    BacktestResult._get_indicators, BacktestResult._set_indicators,
    doc="Per-bar indicator columns (a new DataFrame on each read; see the class docstring).")
# The same for the data fingerprint: a result of from_run takes the candles' hash on the first
# read (48 MB of 1M bars take ~3.5 ms, a tenth of a whole backtest, which a loop of runs on one
# frame would otherwise pay every time).
BacktestResult.data = property(  # type: ignore[assignment]
    BacktestResult._get_data, BacktestResult._set_data,
    doc="data_fingerprint() of the prices, a plain dict (see the class docstring).")
