"""A local candle store: one Parquet file per (exchange, symbol, timeframe).

Layout: ``<root>/<exchange>/<BASE-QUOTE>/<timeframe>.parquet``, e.g.
``~/.local/share/btc-backtest/binance/BTC-USDT/1d.parquet``. The root is, in order of precedence,
the ``root`` argument, the ``BTC_BACKTEST_DATA`` environment variable, or the platform's user data
directory for ``btc-backtest``.

Every write is atomic: the new file is written to a temporary file in the same directory, flushed
to disk (fsync) and moved over the old one with :func:`os.replace`. A process killed at any moment
leaves either the old file or the new one, never a partial file; the temporary files such a kill
leaves behind are removed by the next write of that series. Files get the permissions the umask
gives (usually 0644), like any file the user creates.

Writers of one series are serialised by a file lock (``<timeframe>.parquet.lock`` beside the
file, :mod:`filelock`): two imports or downloads into the same series at once run one after the
other, so the second merges into what the first stored and no row is lost.

A stored file that cannot be read is never skipped: :meth:`DataStore.list` returns it with
:attr:`StoreEntry.error` set, and :meth:`DataStore.read` raises a :class:`DataError` naming the
file and how to repair it. Provenance (``source``, ``downloaded_at``, exchange, symbol, timeframe)
travels in the Parquet schema metadata.
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
from filelock import FileLock, Timeout

from data.frame import OHLCV, DataError, check_canonical, parse_timeframe, to_canonical

ENV_VAR = "BTC_BACKTEST_DATA"
APP_NAME = "btc-backtest"
_META_KEY = b"btc_backtest"
_TMP_SUFFIX = ".tmp"
_LOCK_SUFFIX = ".lock"
# How long a writer waits for another writer of the same series (merging a large page takes
# seconds; ten minutes means something is stuck).
LOCK_TIMEOUT_S = 600.0


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
    error: str | None = None
    """Why the file cannot be read (damaged, truncated, not Parquet); ``None`` when readable.
    Such an entry has no rows and no span."""

    @property
    def repair(self) -> str:
        """How to repair a damaged entry (commands to run)."""
        return repair_hint(self.path, self.exchange, self.symbol, self.timeframe)


def repair_hint(path: Path, exchange: str, symbol: str, timeframe: str) -> str:
    """The fix for a damaged stored file: delete it, then fetch or import the series again."""
    return (
        f"delete the damaged file (rm '{path}') and fetch the series again: btc-backtest data "
        f"download --exchange {exchange} --symbol {symbol} --timeframe {timeframe}, or "
        "btc-backtest data import FILE"
    )


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
            meta = _read_meta(table.schema)
            df = to_canonical(table.to_pandas())
        except _UNREADABLE as exc:
            raise DataError(
                f"damaged store file, cannot be read ({type(exc).__name__}: {exc})",
                source=str(path),
                hint=repair_hint(path, exchange, symbol, timeframe),
            ) from None
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
        locked: bool = False,
    ) -> Path:
        """Replace the stored series with ``df`` (atomically) and return the file path.

        ``source`` defaults to ``df.attrs["source"]``; ``downloaded_at`` (ISO-8601 UTC) to
        ``df.attrs["downloaded_at"]`` or now. ``locked=True``: the caller already holds
        :meth:`lock` of this series (the lock is taken otherwise).

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
        if locked:
            _atomic_write_table(table, path)
        else:
            with self.lock(exchange, symbol, timeframe):
                _atomic_write_table(table, path)
        return path

    def lock(self, exchange: str, symbol: str, timeframe: str) -> FileLock:
        """The file lock of one series (re-entrant within a process); hold it to read, merge and
        write the series without losing another writer's rows.

        Raises (on entering):
            DataError: when the store folder cannot be written, or another process holds the
                lock for more than :data:`LOCK_TIMEOUT_S` seconds.
        """
        path = self.path(exchange, symbol, timeframe)
        _make_dir(path.parent)
        return _SeriesLock(str(path) + _LOCK_SUFFIX, timeout=LOCK_TIMEOUT_S, mode=_file_mode())

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

        The read-merge-write runs under the series' file lock (:meth:`lock`): concurrent
        appends into one series serialise and none loses rows. ``attrs["added"]`` of the returned
        frame is the number of bars this call added to the store.

        Raises:
            DataError: on conflicting values for one timestamp, or a hole without ``allow_gap``.
        """
        check_canonical(df, "candles to append")
        with self.lock(exchange, symbol, timeframe):
            return self._append_locked(df, exchange, symbol, timeframe, source=source,
                                       downloaded_at=downloaded_at, allow_gap=allow_gap)

    def _append_locked(
        self,
        df: pd.DataFrame,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        source: str | None,
        downloaded_at: str | datetime | None,
        allow_gap: bool,
    ) -> pd.DataFrame:
        path = self.path(exchange, symbol, timeframe)
        before = 0
        if not path.exists():
            merged = df
        else:
            old = self.read(exchange, symbol, timeframe)
            before = len(old)
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
        self.write(merged, exchange, symbol, timeframe, source=source, downloaded_at=downloaded_at,
                   locked=True)
        merged.attrs.update(
            source=source or df.attrs.get("source"),
            exchange=_check_exchange(exchange),
            symbol=symbol,
            path=str(path),
            added=len(merged) - before,
        )
        return merged

    def delete(self, exchange: str, symbol: str, timeframe: str) -> bool:
        """Remove a stored series; return whether there was one."""
        path = self.path(exchange, symbol, timeframe)
        if not path.exists():
            return False
        with self.lock(exchange, symbol, timeframe):
            path.unlink(missing_ok=True)
        return True

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

    def funding_lock(self, exchange: str, symbol: str) -> FileLock:
        """The file lock of a funding-rate series (see :meth:`lock`)."""
        path = self.funding_path(exchange, symbol)
        _make_dir(path.parent)
        return _SeriesLock(str(path) + _LOCK_SUFFIX, timeout=LOCK_TIMEOUT_S, mode=_file_mode())

    def write_funding(self, rates: pd.Series, exchange: str, symbol: str, *,
                      source: str | None = None, locked: bool = False) -> Path:
        """Replace the stored funding rates with ``rates`` (atomically); returns the path.
        ``locked=True``: the caller holds :meth:`funding_lock` (it is taken otherwise)."""
        meta = {"source": source or rates.attrs.get("source"), "exchange": exchange,
                "symbol": symbol, "kind": "funding",
                "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds")}
        frame = pd.DataFrame({"funding_rate": rates.to_numpy(np.float64)},
                             index=pd.DatetimeIndex(rates.index, name="timestamp"))
        table = pa.Table.from_pandas(frame, preserve_index=True)
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[_META_KEY] = json.dumps(meta).encode()
        path = self.funding_path(exchange, symbol)
        table = table.replace_schema_metadata(schema_meta)
        if locked:
            _atomic_write_table(table, path)
        else:
            with self.funding_lock(exchange, symbol):
                _atomic_write_table(table, path)
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
            except _UNREADABLE as exc:
                # Never skipped: a damaged file is listed with the reason, so that `data info`
                # and the default-data choice name it.
                entries.append(
                    StoreEntry(
                        exchange=exchange, symbol=dirname_symbol(symbol_dir),
                        timeframe=timeframe, start=None, end=None, rows=0, gaps=0,
                        largest_gap=0, path=path, size=_size_of(path),
                        error=f"{type(exc).__name__}: {exc}",
                    )
                )
                continue
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


# What reading a damaged or foreign Parquet file can raise (pyarrow, then the frame checks).
_UNREADABLE = (OSError, pa.ArrowException, ValueError, KeyError, TypeError)


class _SeriesLock(FileLock):
    """A :class:`filelock.FileLock` whose failures are :class:`DataError` s naming the series."""

    def __enter__(self) -> _SeriesLock:
        try:
            super().__enter__()
        except Timeout:
            raise DataError(
                f"another btc-backtest process has been writing this series for over "
                f"{LOCK_TIMEOUT_S:.0f} s",
                source=self.lock_file.removesuffix(_LOCK_SUFFIX),
                hint="wait for the other import/download to finish and try again; if none is "
                f"running, delete {self.lock_file}",
            ) from None
        except OSError as exc:
            raise _unwritable(Path(self.lock_file).parent, exc) from None
        return self


def _unwritable(folder: Path, exc: OSError) -> DataError:
    return DataError(
        f"cannot write to the candle store folder {folder} ({exc.strerror or exc})",
        hint="choose a writable store with --data-dir DIR (or the BTC_BACKTEST_DATA variable)",
    )


def _make_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(folder, exc) from None


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # elsewhere: set and restore (briefly process-wide)
    os.umask(old)
    return old


def _file_mode() -> int:
    """Mode for new store files: what ``open()`` gives (0o666 less the umask, usually 0644).
    ``mkstemp`` alone makes 0600 files that another user (a backup, a web server) cannot read."""
    return 0o666 & ~_umask()


def _remove_stale_tmp(path: Path) -> None:
    """Delete temporary files of ``path`` left by killed writers. Only called under the series
    lock, so no live writer of this series owns one."""
    for tmp in path.parent.glob(f".{path.name}.*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so that readers only ever see the old or the new file.
    The caller holds the series lock."""
    _make_dir(path.parent)
    _remove_stale_tmp(path)
    # Same directory as the target: os.replace is only atomic within one file system.
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX,
                                        dir=path.parent)
    except OSError as exc:
        raise _unwritable(path.parent, exc) from None
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, _file_mode())
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
