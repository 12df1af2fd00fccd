"""Build the recorded exchange responses replayed by tests/test_download.py.

We have no internet, so these are not live captures: each exchange's OHLCV endpoint is simulated
from its API documentation (and ccxt's comments on the response shape), serving a small synthetic
candle series in that exchange's exact wire format:

* binance   GET /api/v3/klines ?symbol&interval&startTime&limit -> up to ``limit`` candles opening
  at or after startTime, as 12-field arrays with string prices (the forming candle included);
* bitstamp  GET /api/v2/ohlc/{pair}/ ?step&start&end&limit -> ``{"data": {"pair", "ohlc": [...]}}``,
  candles with start <= timestamp <= end, string fields, unix seconds;
* coinbase  GET /api/v3/brokerage/market/products/{id}/candles ?granularity&start&end ->
  ``{"candles": [...]}`` newest first, start <= candle start <= end;
* kraken    GET /0/public/OHLC ?pair&interval&since -> ``{"error": [], "result": {pair: [...],
  "last": t}}``: candles opening after ``since``, only the 720 most recent exist.

The values are synthetic (never real BTC prices). Each scenario runs the real client
(:func:`data.download.download`) against the simulated server, recording every request and
response to ``<scenario>.json`` together with the complete candles the server holds (what a
correct download must end up storing). Run: ``python tests/data/recorded/make_recordings.py``.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests
import responses

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

DAY_S = 86400
T0 = 1704067200  # 2024-01-01 00:00 UTC
FORMING_AGE_S = 10 * 3600  # "now" is 10 hours into the forming candle


def series(n: int, missing: tuple[int, ...] = ()) -> list[dict]:
    """n complete daily candles from T0, then one still-forming candle; some may be missing."""
    out = []
    for i in range(n + 1):
        if i in missing:
            continue
        o = 100.0 + 3 * i + (i % 3)
        out.append(
            {
                "t": T0 + i * DAY_S,
                "open": o,
                "high": o + 4.5,
                "low": o - 2.25,
                "close": o + 1.5 if i % 2 else o - 1.0,
                "volume": 10.0 + i / 8,
                "forming": i == n,
            }
        )
    return out


def s(x: float) -> str:
    return f"{x:.8f}"


def binance(candles: list[dict], q: dict) -> object:
    start = int(q.get("startTime", 0)) // 1000
    limit = int(q.get("limit", 500))
    rows = [c for c in candles if c["t"] >= start][:limit]
    return [
        [c["t"] * 1000, s(c["open"]), s(c["high"]), s(c["low"]), s(c["close"]), s(c["volume"]),
         (c["t"] + DAY_S) * 1000 - 1, s(c["volume"] * c["close"]), 42, s(c["volume"] / 2),
         s(c["volume"] * c["close"] / 2), "0"]
        for c in rows
    ]


def bitstamp(candles: list[dict], q: dict) -> object:
    start, end, limit = int(q["start"]), int(q["end"]), int(q.get("limit", 1000))
    rows = [c for c in candles if start <= c["t"] <= end][:limit]
    return {
        "data": {
            "pair": "BTC/USD",
            "ohlc": [
                {"high": s(c["high"]), "timestamp": str(c["t"]), "volume": s(c["volume"]),
                 "low": s(c["low"]), "close": s(c["close"]), "open": s(c["open"])}
                for c in rows
            ],
        }
    }


def coinbase(candles: list[dict], q: dict) -> object:
    start, end = int(q["start"]), int(q["end"])
    rows = [c for c in candles if start <= c["t"] <= end]
    return {
        "candles": [
            {"start": str(c["t"]), "low": s(c["low"]), "high": s(c["high"]), "open": s(c["open"]),
             "close": s(c["close"]), "volume": s(c["volume"])}
            for c in reversed(rows)
        ]
    }


def kraken(candles: list[dict], q: dict) -> object:
    since = int(q.get("since", 0))
    rows = [c for c in candles[-720:] if c["t"] > since]
    return {
        "error": [],
        "result": {
            "XXBTZUSD": [
                [c["t"], s(c["open"]), s(c["high"]), s(c["low"]), s(c["close"]),
                 s((c["high"] + c["low"]) / 2), s(c["volume"]), 17]
                for c in rows
            ],
            "last": candles[-2]["t"],
        },
    }


SERVERS = {
    "binance": (re.compile(r"https://api\.binance\.com/api/v3/klines"), binance),
    "bitstamp": (re.compile(r"https://www\.bitstamp\.net/api/v2/ohlc/btcusd/"), bitstamp),
    "coinbase": (
        re.compile(r"https://api\.coinbase\.com/api/v3/brokerage/market/products/BTC-USD/candles"),
        coinbase,
    ),
    "kraken": (re.compile(r"https://api\.kraken\.com/0/public/OHLC"), kraken),
}
SYMBOLS = {"binance": "BTC/USDT", "bitstamp": "BTC/USD", "coinbase": "BTC/USD", "kraken": "BTC/USD"}


def record(name: str, exchange: str, candles: list[dict], runs: list[dict]) -> None:
    """Run ``download`` once per entry of ``runs`` against the simulated server and save it all.

    A run may carry ``faults``: {request_number (1-based, counted over the run): (kind, detail)}
    with kind "status" (HTTP status + body), "timeout" or "unreachable".
    """
    import time

    from data.download import download
    from data.store import DataStore

    pattern, server = SERVERS[exchange]
    now_s = candles[-1]["t"] + FORMING_AGE_S
    out_runs = []
    time.sleep = lambda _s: None  # the generator does not need to be polite to itself
    with tempfile.TemporaryDirectory() as tmp:
        store = DataStore(tmp)
        for run in runs:
            log: list[dict] = []
            count = {"n": 0}

            def callback(req, run=run, log=log, count=count):
                count["n"] += 1
                q = dict(parse_qsl(urlsplit(req.url).query))
                entry = {"method": req.method, "url": req.url}
                fault = run.get("faults", {}).get(count["n"])
                if fault and fault[0] == "timeout":
                    entry["error"] = {"type": "ReadTimeout", "message": "Read timed out."}
                    log.append(entry)
                    raise requests.exceptions.ReadTimeout("Read timed out.")
                if fault and fault[0] == "unreachable":
                    msg = f"Failed to resolve '{urlsplit(req.url).hostname}'"
                    entry["error"] = {"type": "ConnectionError", "message": msg}
                    log.append(entry)
                    raise requests.exceptions.ConnectionError(msg)
                if fault and fault[0] == "status":
                    status, body = fault[1]
                else:
                    status, body = 200, json.dumps(server(candles, q))
                entry.update(status=status, content_type="application/json", body=body)
                log.append(entry)
                return status, {"Content-Type": "application/json"}, body

            kwargs = {k: v for k, v in run.items() if k != "faults"}
            outcome = "ok"
            with responses.RequestsMock() as rs:
                rs.add_callback(responses.GET, pattern, callback=callback)
                try:
                    download(exchange, SYMBOLS[exchange], "1d", store=store, progress=False,
                             now=now_s * 10**9, **kwargs)
                except Exception as exc:  # the failure is part of the recording
                    outcome = f"{type(exc).__name__}"
            out_runs.append({"kwargs": kwargs, "outcome": outcome, "interactions": log})
    complete = [
        [c["t"] * 1000, c["open"], c["high"], c["low"], c["close"], c["volume"]]
        for c in candles
        if not c["forming"]
    ]
    doc = {
        "exchange": exchange,
        "symbol": SYMBOLS[exchange],
        "timeframe": "1d",
        "now_ms": now_s * 1000,
        "note": "synthetic candles in the exchange's wire format; see make_recordings.py",
        "complete_candles": complete,
        "runs": out_runs,
    }
    (HERE / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(name, [(r["outcome"], len(r["interactions"])) for r in out_runs])


def main() -> None:
    since = "2024-01-01"
    for ex in SERVERS:
        # Multi-page: 10 complete candles in pages of 4, then the forming one (dropped).
        record(f"{ex}_full", ex, series(10), [{"since": since, "page_size": 4}])
    # 502 on page 3 until retries are exhausted, then a re-run that resumes (default page size).
    bad_gateway = (502, "<html><body><h1>502 Bad Gateway</h1></body></html>")
    record(
        "binance_502_then_resume",
        "binance",
        series(12),
        [
            {"since": since, "page_size": 4, "retries": 2,
             "faults": {3: ("status", bad_gateway), 4: ("status", bad_gateway),
                        5: ("status", bad_gateway)}},
            {},
        ],
    )
    # Read timeouts on page 2 until retries are exhausted, then a resume.
    record(
        "bitstamp_timeout_then_resume",
        "bitstamp",
        series(9),
        [
            {"since": since, "page_size": 3, "retries": 1,
             "faults": {2: ("timeout", None), 3: ("timeout", None)}},
            {"page_size": 3},
        ],
    )
    # 429 (rate limited) once, then success.
    too_many = (429, json.dumps({"code": -1003, "msg": "Too many requests; current limit is "
                                 "6000 request weight per 1 MINUTE."}))
    record("binance_429", "binance", series(6),
           [{"since": since, "page_size": 4, "faults": {2: ("status", too_many)}}])
    # The exchange really has no candles on days 5 and 6: reported, not filled.
    record("binance_hole", "binance", series(10, missing=(5, 6)),
           [{"since": since, "page_size": 4}])
    # Offline: the very first request cannot connect.
    record("coinbase_offline", "coinbase", series(3),
           [{"since": since, "faults": {1: ("unreachable", None)}}])


if __name__ == "__main__":
    main()
