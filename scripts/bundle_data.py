"""Rebuild the package's bundled daily BTC candles and their provenance from ``../shared/data``.

Usage: ``python scripts/bundle_data.py [SHARED_DATA_DIR]``. Writes ``data/bundled/*.csv.gz``
(gzip of the original CSV bytes, no timestamp in the header, so the output is reproducible) and
``data/bundled/PROVENANCE.json`` (origin, span, rows, SHA-256 of the original CSV and of the
shipped file, licence and terms notes taken from ``SOURCES.md``). ``data.bundled`` verifies both
hashes whenever it loads a file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "data" / "bundled"

# Transcribed from ../shared/data/SOURCES.md (sections 1 and 2).
DATASETS = {
    "binance": {
        "source_file": "btc_usd_1d_binance.csv",
        "description": "Binance spot BTC/USDT daily candles (quoted in USDT, not USD)",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1d",
        "origin": {
            "repository": "https://github.com/btctree/btc-power",
            "path": "data/btc_daily.csv",
            "blob": "c49c3cbfe44839c4dea7fb8ddc323c415e4b25ee",
            "commit": "47d950fcfd98aa33ae38125b2a5565cb99315b19",
            "original_source": "Binance spot BTCUSDT daily klines (data-api.binance.vision "
                               "/api/v3/klines), closed candles only",
        },
        "licence": "The origin repository has no LICENSE file and no licence statement. The "
                   "underlying data is Binance market data, subject to Binance's terms of use.",
        "notes": [
            "No missing days; the first day (2017-08-17) is partial (market opened ~04:00 UTC).",
            "Identical on every day to two independent downloads of the same Binance data.",
        ],
    },
    "bitstamp": {
        "source_file": "btc_usd_1d_bitstamp.csv",
        "description": "Bitstamp BTC/USD daily candles (resampled from 2-hour bars)",
        "exchange": "bitstamp",
        "symbol": "BTC/USD",
        "timeframe": "1d",
        "origin": {
            "repository": "https://github.com/sky1241/HSBC-algo-genetic",
            "path": "data/BTC_USD_2h.csv",
            "blob": "a293e439913995a52e27ff70ba05a2f3f0261a7e",
            "commit": "50a7de7655670eb351cb187c745067953192d331",
            "original_source": "Bitstamp BTC/USD OHLC downloaded via CCXT by the repository "
                               "author; UTC calendar days with all 12 two-hour bars",
        },
        "licence": "Repository licence MIT (Copyright (c) 2024 HSBC algo genetic contributors). "
                   "Its data/README.md adds: data downloaded via CCXT from public exchange APIs; "
                   "usage is subject to the providers' terms of service; provided for research "
                   "and educational purposes; redistribution may be restricted by the exchanges.",
        "notes": [
            "33 zero-volume flat fill days (30 in 2011, 2015-01-06..08 during Bitstamp's "
            "trading suspension).",
            "Thin early market: 2011-11-25 high 15.00; April 2013 crash wicks down to 45.00.",
        ],
    },
}


def main(shared: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    provenance = {}
    for key, meta in DATASETS.items():
        raw = (shared / meta["source_file"]).read_bytes()
        packed = gzip.compress(raw, compresslevel=9, mtime=0)
        name = meta["source_file"] + ".gz"
        (OUT / name).write_bytes(packed)
        lines = raw.decode("utf-8").strip().splitlines()
        provenance[key] = {
            **meta,
            "file": name,
            "start": lines[1].split(",")[0][:10],
            "end": lines[-1].split(",")[0][:10],
            "rows": len(lines) - 1,
            "source_sha256": hashlib.sha256(raw).hexdigest(),
            "source_bytes": len(raw),
            "sha256": hashlib.sha256(packed).hexdigest(),
            "bytes": len(packed),
        }
    text = json.dumps({"default": "binance", "datasets": provenance}, indent=2) + "\n"
    (OUT / "PROVENANCE.json").write_text(text, encoding="utf-8")
    for key, p in provenance.items():
        print(f"{key}: {p['file']} {p['bytes']:,} B, {p['rows']:,} rows {p['start']} -> {p['end']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data")
