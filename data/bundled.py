"""Real daily BTC candles shipped inside the package: the offline default data.

Two series from ``../shared/data`` (see ``data/bundled/PROVENANCE.json`` and the README's data
section), each stored as the gzip of the original CSV bytes:

* ``binance``: Binance spot BTC/USDT daily, 2017-08-17 -> 2026-07-03 (3,243 bars; reaches the
  February 2026 crash; the default);
* ``bitstamp``: Bitstamp BTC/USD daily, 2011-08-19 -> 2025-08-25 (5,121 bars; the long history).

Every load checks the SHA-256 of the shipped file and of the decompressed CSV against the
provenance record, then parses and validates the CSV with the normal loader.
``scripts/bundle_data.py`` rebuilds the files and the record.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from data.frame import DataError
from data.loaders import parse_bytes

BUNDLE_DIR = Path(__file__).resolve().parent / "bundled"
PROVENANCE_FILE = BUNDLE_DIR / "PROVENANCE.json"


@dataclass(frozen=True)
class BundledDataset:
    """One shipped series and its provenance (fields of ``PROVENANCE.json``).

    ``start``/``end`` are the first/last bar open dates (UTC), ``rows`` the bar count,
    ``sha256`` the hash of the shipped ``.csv.gz``, ``source_sha256`` that of the original CSV.
    """

    key: str
    file: str
    description: str
    exchange: str
    symbol: str
    timeframe: str
    start: str
    end: str
    rows: int
    sha256: str
    source_sha256: str
    licence: str
    origin: dict[str, str]
    record: dict[str, Any]

    @property
    def path(self) -> Path:
        """Where the shipped file is."""
        return BUNDLE_DIR / self.file

    def label(self) -> str:
        """One line naming the data for the run's first line and reports."""
        return (f"bundled real data: {self.description}, {self.start} -> {self.end}, "
                f"{self.rows:,} candles (shipped with btc-backtest: {self.file})")


@cache
def _provenance() -> dict[str, Any]:
    try:
        return json.loads(PROVENANCE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the bundled data's provenance ({exc})",
                        source=str(PROVENANCE_FILE),
                        hint="reinstall btc-backtest; the package is incomplete") from None


def default_key() -> str:
    """The bundled series used when nothing else is available ("binance")."""
    return str(_provenance()["default"])


def datasets() -> dict[str, BundledDataset]:
    """Every shipped series by key ("binance", "bitstamp"), default first."""
    prov = _provenance()
    items = sorted(prov["datasets"].items(), key=lambda kv: kv[0] != prov["default"])
    fields = BundledDataset.__dataclass_fields__
    return {key: BundledDataset(key=key, record=rec,
                                **{k: rec[k] for k in fields if k not in ("key", "record")})
            for key, rec in items}


def dataset(key: str | None = None) -> BundledDataset:
    """The shipped series ``key`` (default: :func:`default_key`).

    Raises:
        DataError: an unknown key, naming the valid ones.
    """
    key = key or default_key()
    known = datasets()
    if key not in known:
        raise DataError(f"no bundled dataset {key!r}", hint=f"use one of {', '.join(known)}")
    return known[key]


def _check_hash(data: bytes, expected: str, what: str, source: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise DataError(
            f"SHA-256 of the {what} is {got}, expected {expected} (PROVENANCE.json): the "
            "bundled data was modified or corrupted",
            source=source, hint="reinstall btc-backtest, or rebuild with scripts/bundle_data.py")


def load_bundled(key: str | None = None) -> pd.DataFrame:
    """Load a shipped series as the canonical frame, after checking both SHA-256 hashes.

    Returns:
        The validated canonical frame; ``attrs`` carry ``source`` (the label), ``exchange``,
        ``symbol``, ``timeframe``, ``bundled`` (the key) and ``sha256``.

    Raises:
        DataError: unknown key, a missing file, or a hash that does not match the provenance.
    """
    ds = dataset(key)
    try:
        packed = ds.path.read_bytes()
    except OSError as exc:
        raise DataError(f"bundled data file missing ({exc.strerror})", source=str(ds.path),
                        hint="reinstall btc-backtest; the package is incomplete") from None
    _check_hash(packed, ds.sha256, "shipped file", str(ds.path))
    raw = gzip.decompress(packed)
    _check_hash(raw, ds.source_sha256, "decompressed CSV", str(ds.path))
    frame, report = parse_bytes(raw, ds.file, timeframe=ds.timeframe)
    report.raise_for_errors()
    assert frame is not None  # a clean report always comes with a frame
    if len(frame) != ds.rows:
        raise DataError(f"{len(frame)} candles, provenance says {ds.rows}", source=ds.file)
    frame.attrs.update(source=ds.label(), exchange=ds.exchange, symbol=ds.symbol,
                       bundled=ds.key, sha256=ds.sha256, incomplete_last=False)
    return frame
