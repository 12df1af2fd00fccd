"""A local candle store: one Parquet file per (exchange, symbol, timeframe).

Layout: ``<root>/<exchange>/<BASE-QUOTE>/<timeframe>.parquet``, e.g.
``~/.local/share/btc-backtest/binance/BTC-USDT/1d.parquet``. The root is, in order of precedence,
the ``root`` argument, the ``BTC_BACKTEST_DATA`` environment variable, or the platform's user data
directory for ``btc-backtest``.

Every write is atomic: the new file is written to a temporary file in the same directory, flushed
to disk (fsync) and moved over the old one with :func:`os.replace`. A process killed at any moment
leaves either the old file or the new one, never a partial file. Provenance (``source``,
``downloaded_at``, exchange, symbol, timeframe) travels in the Parquet schema metadata.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.frame import OHLCV, DataError, check_canonical, parse_timeframe, to_canonical

ENV_VAR = "BTC_BACKTEST_DATA"
APP_NAME = "btc-backtest"
_META_KEY = b"btc_backtest"
_TMP_SUFFIX = ".tmp"


def default_root() -> Path:
    """The store root when none is given: ``$BTC_BACKTEST_DATA`` or the user data directory."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def symbol_dirname(symbol: str) -> str:
    """File-system name of a unified symbol: ``"BTC/USDT"`` -> ``"BTC-USDT"``."""
    s = symbol.strip().upper().replace("/", "-").replace(":", "-")
    if not s or any(c in s for c in "\\ .") or s.startswith("-"):
        raise DataError(f"invalid symbol {symbol!r}", hint="use BASE/QUOTE, e.g. BTC/USD")
    return s


def dirname_symbol(name: str) -> str:
    """Inverse of :func:`symbol_dirname` for the usual BASE-QUOTE case."""
    return name.replace("-", "/", 1)


def _check_exchange(exchange: str) -> str:
    e = exchange.strip().lower()
    if not e or not all(c.isalnum() or c in "_-" for c in e):
        raise DataError(
            f"invalid exchange name {exchange!r}",
            hint="use a ccxt exchange id such as binance, bitstamp, coinbase, kraken",
        )
    return e


@dataclass(frozen=True)
class StoreEntry:
    """One stored series, as listed by :meth:`DataStore.list`.

    ``gaps`` is the number of holes (runs of missing bars) and ``largest_gap`` the number of bars
    missing in the largest one; ``size`` is the file size in bytes.
    """

    exchange: str
    symbol: str
    timeframe: str
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    rows: int
    gaps: int
    largest_gap: int
    path: Path
    size: int
    source: str | None = None
    downloaded_at: str | None = None


Gap = tuple[pd.Timestamp, pd.Timestamp, int]


def find_gaps(index: pd.DatetimeIndex, timeframe: str) -> list[Gap]:
    """Holes in a bar index: ``[(first_missing_open, last_missing_open, n_missing_bars)]``.

    Monthly data (``"1M"``) has no fixed bar length and is reported without gaps.
    """
    if len(index) < 2 or timeframe == "1M":
        return []
    step = parse_timeframe(timeframe).value
    ns = index.as_unit("ns").asi8
    diffs = np.diff(ns)
    out = []
    for i in np.flatnonzero(diffs > step):
        n = int(diffs[i] // step) - 1
        if n <= 0:  # misaligned bar, not a whole missing period
            continue
        first = pd.Timestamp(int(ns[i] + step), unit="ns", tz="UTC")
        last = pd.Timestamp(int(ns[i] + n * step), unit="ns", tz="UTC")
        out.append((first, last, n))
    return out


class DataStore:
    """Parquet candle files per (exchange, symbol, timeframe) under one root directory."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_root()

    def __repr__(self) -> str:
        return f"DataStore({str(self.root)!r})"

    # ------------------------------------------------------------------ paths
    def path(self, exchange: str, symbol: str, timeframe: str) -> Path:
        """File holding the series (it may not exist yet)."""
        if timeframe != "1M":
            parse_timeframe(timeframe)  # rejects nonsense before it becomes a file name
        folder = self.root / _check_exchange(exchange) / symbol_dirname(symbol)
        return folder / f"{timeframe}.parquet"

    def exists(self, exchange: str, symbol: str, timeframe: str) -> bool:
        """Whether the series is stored."""
        return self.path(exchange, symbol, timeframe).exists()

    # ------------------------------------------------------------------ read
    def read(self, exchange: str, symbol: str, timeframe: str) -> pd.DataFrame:
        """Return the stored series as a canonical frame.

        ``attrs`` hold ``source``, ``exchange``, ``symbol``, ``timeframe``, ``downloaded_at`` and
        ``path``.

        Raises:
            DataError: when nothing is stored for the key, or the file is unreadable.
        """
        path = self.path(exchange, symbol, timeframe)
        if not path.exists():
            raise DataError(
                f"no {exchange} {symbol} {timeframe} candles in the store {self.root}",
                hint=(
                    f"btc-backtest data download --exchange {exchange} --symbol {symbol} "
                    f"--timeframe {timeframe}, or btc-backtest data import FILE"
                ),
            )
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(
                f"cannot read stored file: {exc}",
                source=str(path),
                hint="delete the file and download or import the data again",
            ) from exc
        meta = _read_meta(table.schema)
        df = to_canonical(table.to_pandas())
        df.attrs = {
            "source": meta.get("source") or str(path),
            "exchange": meta.get("exchange", _check_exchange(exchange)),
            "symbol": meta.get("symbol", symbol),
            "timeframe": timeframe,
            "downloaded_at": meta.get("downloaded_at"),
            "path": str(path),
        }
        return df

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> pd.Timestamp | None:
        """Open time of the last stored bar, or None when nothing is stored."""
        path = self.path(exchange, symbol, timeframe)
        if not path.exists():
            return None
        idx = _read_index(path)
        return idx[-1] if len(idx) else None

    # ------------------------------------------------------------------ write
    def write(
        self,
        df: pd.DataFrame,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        source: str | None = None,
        downloaded_at: str | datetime | None = None,
    ) -> Path:
        """Replace the stored series with ``df`` (atomically) and return the file path.

        ``source`` defaults to ``df.attrs["source"]``; ``downloaded_at`` (ISO-8601 UTC) to
        ``df.attrs["downloaded_at"]`` or now.

        Raises:
            DataError: when ``df`` is not canonical or its timeframe disagrees with ``timeframe``.
        """
        check_canonical(df, "candles to store")
        tf = df.attrs.get("timeframe")
        if tf and str(tf) != timeframe:
            raise DataError(
                f"cannot store {tf} candles as {timeframe}",
                hint="pass the frame's own timeframe, or resample it first",
            )
        path = self.path(exchange, symbol, timeframe)
        if downloaded_at is None:
            downloaded_at = df.attrs.get("downloaded_at") or datetime.now(UTC)
        if isinstance(downloaded_at, datetime):
            downloaded_at = downloaded_at.astimezone(UTC).isoformat(timespec="seconds")
        meta = {
            "source": source if source is not None else df.attrs.get("source"),
            "downloaded_at": str(downloaded_at),
            "exchange": _check_exchange(exchange),
            "symbol": symbol,
            "timeframe": timeframe,
        }
        frame = pd.DataFrame({c: df[c].to_numpy() for c in OHLCV}, index=df.index)
        table = pa.Table.from_pandas(frame, preserve_index=True)
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[_META_KEY] = json.dumps(meta).encode()
        table = table.replace_schema_metadata(schema_meta)
        _atomic_write_table(table, path)
        return path

    def append(
        self,
        df: pd.DataFrame,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        source: str | None = None,
        downloaded_at: str | datetime | None = None,
        allow_gap: bool = False,
    ) -> pd.DataFrame:
        """Merge ``df`` into the stored series and return the merged frame.

        Bars present in both must be identical (otherwise the data of one of them is wrong and
        the store refuses to choose). New bars that are not contiguous with the stored ones would
        open a hole in the series; that is refused unless ``allow_gap=True`` (the caller has
        checked that the source really has no bars there and reports it).

        Raises:
            DataError: on conflicting values for one timestamp, or a hole without ``allow_gap``.
        """
        check_canonical(df, "candles to append")
        path = self.path(exchange, symbol, timeframe)
        if not path.exists():
            merged = df
        else:
            old = self.read(exchange, symbol, timeframe)
            common = old.index.intersection(df.index)
            if len(common):
                a = old.loc[common, list(OHLCV)].to_numpy()
                b = df.loc[common, list(OHLCV)].to_numpy()
                bad = ~((a == b) | (np.isnan(a) & np.isnan(b)))
                if bad.any():
                    r, c = np.argwhere(bad)[0]
                    ts = common[r]
                    raise DataError(
                        f"conflicting {OHLCV[c]} for the same bar: stored {float(a[r, c])!r}, "
                        f"new {float(b[r, c])!r} ({int(bad.any(axis=1).sum())} conflicting bar(s))",
                        source=str(path),
                        timestamp=ts,
                        hint="one of the two sources is wrong; store them under different "
                        "exchange names or delete the stored file",
                    )
            new = df.loc[~df.index.isin(old.index)]
            if len(new) and not allow_gap and timeframe != "1M":
                hole = _join_hole(old.index, df.index, parse_timeframe(timeframe))
                if hole is not None:
                    first, last, n = hole
                    raise DataError(
                        f"appending would leave {n} missing {timeframe} bar(s) from "
                        f"{first.isoformat()} to {last.isoformat()}",
                        source=str(path),
                        hint="supply the missing bars too, or check the source for a hole",
                    )
            merged = pd.concat([old, new]).sort_index()
            merged.attrs = {"timeframe": timeframe}
            if source is None:
                source = df.attrs.get("source") or old.attrs.get("source")
        merged = merged.copy()
        merged.attrs["timeframe"] = timeframe
        self.write(merged, exchange, symbol, timeframe, source=source, downloaded_at=downloaded_at)
        merged.attrs.update(
            source=source or df.attrs.get("source"),
            exchange=_check_exchange(exchange),
            symbol=symbol,
            path=str(path),
        )
        return merged

    def delete(self, exchange: str, symbol: str, timeframe: str) -> bool:
        """Remove a stored series; return whether there was one."""
        path = self.path(exchange, symbol, timeframe)
        if path.exists():
            path.unlink()
            return True
        return False

    # ------------------------------------------------------------------ funding rates
    def funding_path(self, exchange: str, symbol: str) -> Path:
        """File of a perpetual's funding-rate history (below the candle files, so
        :meth:`list` never takes it for candles)."""
        return self.root / _check_exchange(exchange) / symbol_dirname(symbol) / "funding" / \
            "rates.parquet"

    def read_funding(self, exchange: str, symbol: str) -> pd.Series:
        """The stored funding rates (fraction of notional per funding event, indexed by the
        event time, UTC); ``attrs`` hold ``source``, ``downloaded_at`` and ``path``.

        Raises:
            DataError: nothing stored for the key, or the file is unreadable.
        """
        path = self.funding_path(exchange, symbol)
        if not path.exists():
            raise DataError(f"no {exchange} {symbol} funding rates in the store {self.root}",
                            hint=f"btc-backtest data download --funding --exchange {exchange}")
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"cannot read stored funding rates: {exc}", source=str(path),
                            hint="delete the file and download the rates again") from exc
        meta = _read_meta(table.schema)
        frame = table.to_pandas()
        if "timestamp" in frame.columns:
            frame = frame.set_index("timestamp")
        idx = pd.DatetimeIndex(frame.index)
        idx = (idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")).as_unit("ns")
        out = pd.Series(frame["funding_rate"].to_numpy(np.float64), index=idx,
                        name="funding_rate")
        out.index.name = "timestamp"
        out.attrs = {"source": meta.get("source") or str(path),
                     "downloaded_at": meta.get("downloaded_at"), "path": str(path)}
        return out

    def write_funding(self, rates: pd.Series, exchange: str, symbol: str, *,
                      source: str | None = None) -> Path:
        """Replace the stored funding rates with ``rates`` (atomically); returns the path."""
        meta = {"source": source or rates.attrs.get("source"), "exchange": exchange,
                "symbol": symbol, "kind": "funding",
                "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds")}
        frame = pd.DataFrame({"funding_rate": rates.to_numpy(np.float64)},
                             index=pd.DatetimeIndex(rates.index, name="timestamp"))
        table = pa.Table.from_pandas(frame, preserve_index=True)
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[_META_KEY] = json.dumps(meta).encode()
        path = self.funding_path(exchange, symbol)
        _atomic_write_table(table.replace_schema_metadata(schema_meta), path)
        return path

    # ------------------------------------------------------------------ list
    def list(self) -> list[StoreEntry]:
        """Every stored series, sorted by exchange, symbol and timeframe."""
        entries: list[StoreEntry] = []
        if not self.root.is_dir():
            return entries
        for path in sorted(self.root.glob("*/*/*.parquet")):
            exchange, symbol_dir, timeframe = path.parent.parent.name, path.parent.name, path.stem
            try:
                meta = _read_meta(pq.read_schema(path))
                idx = _read_index(path)
            except (OSError, pa.ArrowException):
                continue  # not ours or unreadable; read() reports it when asked for
            gaps = find_gaps(idx, timeframe) if len(idx) else []
            entries.append(
                StoreEntry(
                    exchange=exchange,
                    symbol=meta.get("symbol") or dirname_symbol(symbol_dir),
                    timeframe=timeframe,
                    start=idx[0] if len(idx) else None,
                    end=idx[-1] if len(idx) else None,
                    rows=len(idx),
                    gaps=len(gaps),
                    largest_gap=max((g[2] for g in gaps), default=0),
                    path=path,
                    size=path.stat().st_size,
                    source=meta.get("source"),
                    downloaded_at=meta.get("downloaded_at"),
                )
            )
        return entries


def _join_hole(
    old: pd.DatetimeIndex, new: pd.DatetimeIndex, step: pd.Timedelta
) -> Gap | None:
    """The hole that joining two bar spans would open between them, if any.

    Bars missing *inside* either span were already missing in that data; only the stretch between
    two disjoint spans is new.
    """
    if new[0] > old[-1] + step:
        first, last = old[-1] + step, new[0] - step
    elif new[-1] < old[0] - step:
        first, last = new[-1] + step, old[0] - step
    else:
        return None
    return first, last, int((last - first) // step) + 1


def _read_meta(schema: pa.Schema) -> dict[str, str]:
    raw = (schema.metadata or {}).get(_META_KEY)
    if not raw:
        return {}
    try:
        return dict(json.loads(raw))
    except ValueError:
        return {}


def _read_index(path: Path) -> pd.DatetimeIndex:
    table = pq.read_table(path, columns=["timestamp"])
    col = table.column("timestamp").to_pandas()
    idx = pd.DatetimeIndex(col)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return idx.as_unit("ns")


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so that readers only ever see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory as the target: os.replace is only atomic within one file system.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    # Persist the rename itself (directory entry); not possible on every platform.
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
