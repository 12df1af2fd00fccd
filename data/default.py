"""Which candles to use when the user names none: the default-data resolution.

Order, each step announced to the user:

1. an explicit file (``--data FILE``), loaded and validated by :func:`data.loaders.load`;
2. the local store: the longest stored daily BTC/USD or BTC/USDT series;
3. when the store has none: download daily BTC/USD from Bitstamp (the longest public BTC/USD daily
   history, since 2011) into the store, with a progress bar and a short timeout when offline;
4. offline: the real BTC/USD **monthly** sample that the ``backtesting`` package (a runtime
   dependency) ships as ``backtesting/test/BTCUSD.csv`` (2012-01 to 2024-12, 156 bars), with a
   prominent notice of what it is and how to get full daily data.

No step ever invents data: the sample is real exchange-derived BTC/USD, labelled as a sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from data.frame import MONTHLY, DataError, check_canonical, to_canonical
from data.store import DataStore

DAILY_SYMBOLS = ("BTC/USD", "BTC/USDT")
DOWNLOAD_EXCHANGE = "bitstamp"
DOWNLOAD_SYMBOL = "BTC/USD"
OFFLINE_TIMEOUT_S = 10.0

SAMPLE_NOTICE = (
    "NOTICE: using a small SAMPLE, not full data: real BTC/USD MONTHLY candles 2012-01 to 2024-12 "
    "(156 bars) shipped by the 'backtesting' package (backtesting/test/BTCUSD.csv). Monthly bars "
    "are too coarse for most strategies. For full daily data run "
    "'btc-backtest data download' when online, or 'btc-backtest data import FILE' with a daily "
    "BTC CSV (e.g. Binance klines from https://data.binance.vision or Yahoo Finance BTC-USD "
    "history)."
)


@dataclass(frozen=True)
class DataOrigin:
    """Where the default data came from.

    ``kind`` is ``"file"``, ``"store"``, ``"download"`` or ``"sample"``; ``description`` is one
    line for reports; ``path`` the file read; ``notice`` a warning the user must see (set for the
    sample), else None.
    """

    kind: str
    description: str
    path: str | None = None
    notice: str | None = None


def _default_echo(msg: str) -> None:
    import click

    click.echo(msg, err=True)


def sample_path() -> Path:
    """Path of the BTC/USD monthly sample shipped by the ``backtesting`` package."""
    import backtesting

    return Path(backtesting.__file__).resolve().parent / "test" / "BTCUSD.csv"


def load_sample() -> pd.DataFrame:
    """The ``backtesting`` package's BTC/USD monthly candles as a canonical frame.

    The file labels each month by its **last** day (``2012-01-31`` holds January 2012); the
    canonical index is the bar *open* time, so each bar is relabelled to the 1st of its month.

    Raises:
        DataError: when the package or file is missing or not what we expect.
    """
    path = sample_path()
    if not path.exists():
        raise DataError(
            "the BTC/USD sample of the 'backtesting' package is missing",
            source=str(path),
            hint="pip install 'backtesting>=0.6.4,<0.7', or import a file",
        )
    raw = pd.read_csv(path, index_col=0, parse_dates=[0])
    month_end = pd.DatetimeIndex(raw.index)
    if not (month_end == month_end + pd.offsets.MonthEnd(0)).all():
        raise DataError("expected month-end dates in the sample", source=str(path))
    raw.index = month_end.to_period("M").to_timestamp(how="start")
    df = to_canonical(raw)
    check_canonical(df, "sample")
    df.attrs.update(
        source=f"backtesting package sample {path.name} (BTC/USD monthly)",
        timeframe=MONTHLY,
        incomplete_last=False,
    )
    return df


def best_stored_daily(store: DataStore) -> tuple[pd.DataFrame, str] | None:
    """The longest stored daily BTC/USD or BTC/USDT series and a one-line description."""
    entries = [e for e in store.list() if e.timeframe == "1d" and e.symbol in DAILY_SYMBOLS]
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
) -> tuple[pd.DataFrame, DataOrigin]:
    """Return the candles to use and where they came from, announcing each step via ``echo``.

    See the module docstring for the order. ``allow_download=False`` skips step 3.

    Raises:
        DataError: when an explicit file is missing or invalid (never falls back silently).
    """
    say = echo or _default_echo
    if data_file is not None:
        from data.loaders import load

        df = load(data_file)
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
        from data.download import DownloadError, download

        try:
            # One attempt, short timeout: offline users should not wait long for the sample.
            download(DOWNLOAD_EXCHANGE, DOWNLOAD_SYMBOL, "1d", store=store, progress=progress,
                     retries=1, timeout=OFFLINE_TIMEOUT_S)
        except DownloadError as exc:
            say(f"data: download failed: {exc}")
        found = best_stored_daily(store)
        if found is not None:
            df, desc = found
            say(f"data: {desc}")
            return df, DataOrigin("download", desc, df.attrs.get("path"))

    df = load_sample()
    path = str(sample_path())
    desc = "BTC/USD monthly sample 2012-01 -> 2024-12 from the backtesting package"
    say(SAMPLE_NOTICE)
    return df, DataOrigin("sample", desc, path, notice=SAMPLE_NOTICE)


def describe_default(store: DataStore | None = None) -> str:
    """One line saying what :func:`resolve_default_data` would use, without downloading."""
    store = store if store is not None else DataStore()
    found = best_stored_daily(store)
    if found is not None:
        return f"default data: {found[1]}"
    return (
        f"default data: none stored yet; the first run downloads daily {DOWNLOAD_SYMBOL} from "
        f"{DOWNLOAD_EXCHANGE} into {store.root}, or, offline, uses the BTC/USD monthly sample "
        "of the backtesting package (2012-01 -> 2024-12, 156 bars)"
    )
