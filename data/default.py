"""Which candles to use when the user names none: the default-data resolution.

Order, each step announced to the user:

1. an explicit file (``--data FILE``), loaded and validated by :func:`data.loaders.load`;
2. an explicit bundled series (``--dataset binance|bitstamp``, see :mod:`data.bundled`);
3. the local store: the longest stored daily BTC/USD or BTC/USDT series;
4. when the store has none: download daily BTC/USD from Bitstamp (the longest public BTC/USD daily
   history, since 2011) into the store, with a progress bar and a short timeout when offline;
5. offline (or when the download fails): the real daily candles shipped with the package,
   Binance BTC/USDT 2017-08-17 -> 2026-07-03 (:func:`data.bundled.load_bundled`, hash-checked).

No step ever invents data, and the first line a run prints names what it uses.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from data.bundled import dataset, load_bundled
from data.frame import DataError
from data.store import DataStore

DAILY_SYMBOLS = ("BTC/USD", "BTC/USDT")
DOWNLOAD_EXCHANGE = "bitstamp"
DOWNLOAD_SYMBOL = "BTC/USD"
OFFLINE_TIMEOUT_S = 10.0
#: The host of the exchange's API: looked up before the download, so that an offline run does not
#: first import ccxt (0.8-1.2 s of every offline ``btc-backtest run``, python -X importtime).
DOWNLOAD_HOST = "www.bitstamp.net"


def host_resolves(host: str) -> bool:
    """True when ``host`` has an address (DNS works and knows it)."""
    try:
        socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return True


@dataclass(frozen=True)
class DataOrigin:
    """Where the default data came from.

    ``kind`` is ``"file"``, ``"store"``, ``"download"`` or ``"bundled"``; ``description`` is one
    line for reports; ``path`` the file read.
    """

    kind: str
    description: str
    path: str | None = None


def _default_echo(msg: str) -> None:
    import click

    click.echo(msg, err=True)


def _bundled(key: str | None, say: Callable[[str], None], why: str) -> tuple[pd.DataFrame,
                                                                               DataOrigin]:
    df = load_bundled(key)
    ds = dataset(key)
    say(f"data: {ds.label()}{why}")
    return df, DataOrigin("bundled", ds.label(), str(ds.path))


def best_stored_daily(store: DataStore) -> tuple[pd.DataFrame, str] | None:
    """The longest stored daily BTC/USD or BTC/USDT series and a one-line description.

    Raises:
        DataError: when one of the candidate files is damaged (named, with the repair).
    """
    entries = [e for e in store.list() if e.timeframe == "1d" and e.symbol in DAILY_SYMBOLS]
    damaged = [e for e in entries if e.error]
    if damaged:
        # Never fall back past a damaged candidate silently: it may be the longest series.
        e = damaged[0]
        raise DataError(f"damaged store file, cannot be read ({e.error})", source=str(e.path),
                        hint=e.repair + "; or pass --data FILE")
    if not entries:
        return None
    # Longest first; on a tie prefer USD over USDT (the asset is quoted in dollars).
    best = max(entries, key=lambda e: (e.rows, e.symbol == "BTC/USD"))
    df = store.read(best.exchange, best.symbol, best.timeframe)
    desc = (
        f"{best.exchange} {best.symbol} 1d, {best.start:%Y-%m-%d} -> {best.end:%Y-%m-%d}, "
        f"{best.rows} candles (local store {best.path})"
    )
    if best.gaps:
        desc += f", {best.gaps} gap(s)"
    return df, desc


def resolve_default_data(
    data_file: str | Path | None = None,
    store: DataStore | None = None,
    allow_download: bool = True,
    echo: Callable[[str], None] | None = None,
    *,
    progress: bool = True,
    bundled: str | None = None,
    allow_dates: bool = False,
) -> tuple[pd.DataFrame, DataOrigin]:
    """Return the candles to use and where they came from, announcing each step via ``echo``.

    See the module docstring for the order. ``allow_download=False`` skips the download;
    ``bundled`` ("binance" or "bitstamp") picks a shipped series directly; ``allow_dates`` is
    passed to :func:`data.loaders.load` for ``data_file``.

    Raises:
        DataError: when an explicit file is missing or invalid, or both a file and a bundled
            series are named (never falls back silently).
    """
    say = echo or _default_echo
    if data_file is not None and bundled is not None:
        raise DataError("both a data file and a bundled dataset were given",
                        hint="use either --data FILE or --dataset NAME")
    if bundled is not None:
        return _bundled(bundled, say, " [--dataset]")
    if data_file is not None:
        from data.loaders import load

        df = load(data_file, allow_dates=allow_dates)
        desc = f"{data_file} ({len(df)} candles, {df.attrs.get('timeframe', '?')})"
        say(f"data: {desc} [--data]")
        return df, DataOrigin("file", desc, str(data_file))

    store = store if store is not None else DataStore()
    found = best_stored_daily(store)
    if found is not None:
        df, desc = found
        say(f"data: {desc}")
        return df, DataOrigin("store", desc, df.attrs.get("path"))

    if allow_download:
        say(
            f"data: no daily BTC candles in the local store {store.root}; downloading daily "
            f"{DOWNLOAD_SYMBOL} from {DOWNLOAD_EXCHANGE} (one time, later runs resume)"
        )
        from data.download import OFFLINE_HINT, DownloadError, ExchangeUnreachableError, download

        try:
            if not host_resolves(DOWNLOAD_HOST):
                raise ExchangeUnreachableError(
                    f"could not reach {DOWNLOAD_EXCHANGE} ({DOWNLOAD_HOST}): no internet "
                    "connection or DNS failure", hint=OFFLINE_HINT)
            # One attempt, short timeout: offline users should not wait long for the bundled data.
            download(DOWNLOAD_EXCHANGE, DOWNLOAD_SYMBOL, "1d", store=store, progress=progress,
                     retries=1, timeout=OFFLINE_TIMEOUT_S)
        except DownloadError as exc:
            say(f"data: download failed: {exc}")
        found = best_stored_daily(store)
        if found is not None:
            df, desc = found
            say(f"data: {desc}")
            return df, DataOrigin("download", desc, df.attrs.get("path"))

    why = " (offline: no download tried)" if not allow_download else " (download failed)"
    return _bundled(None, say, why)


def describe_default(store: DataStore | None = None) -> str:
    """One line saying what :func:`resolve_default_data` would use, without downloading."""
    store = store if store is not None else DataStore()
    found = best_stored_daily(store)
    if found is not None:
        return f"default data: {found[1]}"
    return (
        f"default data: none stored yet; the first run downloads daily {DOWNLOAD_SYMBOL} from "
        f"{DOWNLOAD_EXCHANGE} into {store.root}, or, offline, uses the {dataset().label()}"
    )
