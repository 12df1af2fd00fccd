"""Build the recorded funding-rate responses replayed by tests/test_funding.py.

No internet here, so, like make_recordings.py, each endpoint is simulated from the exchange's API
documentation (and the response shapes quoted in ccxt's source) and serves a synthetic series of
8-hourly funding events; the real client (:func:`data.funding.download_funding`) runs against it
and every request/response is saved with the events the server holds.

* binance  GET https://fapi.binance.com/fapi/v1/fundingRate ?symbol&startTime&limit -> up to
  ``limit`` events with fundingTime >= startTime, oldest first:
  ``[{"symbol", "fundingTime", "fundingRate": "0.00010000", "markPrice"}]``;
* bybit    GET https://api.bybit.com/v5/market/funding/history ?category&symbol&startTime&endTime
  &limit -> ``{"retCode": 0, "result": {"category": "linear", "list": [{"symbol",
  "fundingRate", "fundingRateTimestamp"}]}}``, events in [startTime, endTime], newest first.

Values are synthetic, not real rates.
Run: ``python tests/data/recorded/make_funding_recordings.py``.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import responses

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

H8_MS = 8 * 3600 * 1000
T0_MS = 1704067200000  # 2024-01-01 00:00 UTC


def events(n: int) -> list[tuple[int, float]]:
    """n funding events every 8 h from T0; rates around +0.01 %, some negative."""
    return [(T0_MS + i * H8_MS, round(0.0001 + 0.00007 * ((i * 7) % 5 - 2), 8)) for i in range(n)]


def binance(ev: list[tuple[int, float]], q: dict) -> object:
    start, limit = int(q.get("startTime", 0)), int(q.get("limit", 100))
    rows = [e for e in ev if e[0] >= start][:limit]
    return [{"symbol": "BTCUSDT", "fundingTime": t, "fundingRate": f"{r:.8f}",
             "markPrice": "42000.00000000"} for t, r in rows]


def bybit(ev: list[tuple[int, float]], q: dict) -> object:
    start, end, limit = int(q["startTime"]), int(q["endTime"]), int(q.get("limit", 200))
    rows = [e for e in ev if start <= e[0] <= end][-limit:][::-1]
    return {"retCode": 0, "retMsg": "OK",
            "result": {"category": "linear", "list": [
                {"symbol": "BTCUSDT", "fundingRate": f"{r:.8f}", "fundingRateTimestamp": str(t)}
                for t, r in rows]},
            "retExtInfo": {}, "time": ev[-1][0] + 1000}


SERVERS = {
    "binance": (re.compile(r"https://fapi\.binance\.com/fapi/v1/fundingRate"), binance),
    "bybit": (re.compile(r"https://api\.bybit\.com/v5/market/funding/history"), bybit),
}


def record(name: str, exchange: str, ev: list[tuple[int, float]], runs: list[dict]) -> None:
    """Run ``download_funding`` per entry of ``runs`` against the simulated server; save it.

    ``faults``: {request number (1-based, per run): (status, body)}."""
    import time

    from data.funding import download_funding
    from data.store import DataStore

    pattern, server = SERVERS[exchange]
    now_ms = ev[-1][0] + 3 * 3600 * 1000
    out_runs = []
    time.sleep = lambda _s: None
    with tempfile.TemporaryDirectory() as tmp:
        store = DataStore(tmp)
        for run in runs:
            log: list[dict] = []
            count = {"n": 0}

            def callback(req, run=run, log=log, count=count):
                count["n"] += 1
                q = dict(parse_qsl(urlsplit(req.url).query))
                fault = run.get("faults", {}).get(count["n"])
                status, body = fault if fault else (200, json.dumps(server(ev, q)))
                log.append({"method": req.method, "url": req.url, "status": status,
                            "content_type": "application/json", "body": body})
                return status, {"Content-Type": "application/json"}, body

            kwargs = {k: v for k, v in run.items() if k != "faults"}
            outcome = "ok"
            with responses.RequestsMock() as rs:
                rs.add_callback(responses.GET, pattern, callback=callback)
                try:
                    download_funding(exchange, store=store, progress=False,
                                     now=now_ms * 10**6, **kwargs)
                except Exception as exc:  # the failure is part of the recording
                    outcome = type(exc).__name__
            out_runs.append({"kwargs": kwargs, "outcome": outcome, "interactions": log})
    doc = {"exchange": exchange, "symbol": "BTC/USDT:USDT", "now_ms": now_ms,
           "note": "synthetic funding events in the exchange's wire format; see "
                   "make_funding_recordings.py",
           "events": [[t, r] for t, r in ev], "runs": out_runs}
    (HERE / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(name, [(r["outcome"], len(r["interactions"])) for r in out_runs])


def main() -> None:
    since = "2024-01-01"
    record("binance_funding", "binance", events(10), [{"since": since, "page_size": 4}])
    record("bybit_funding", "bybit", events(10), [{"since": since, "page_size": 4}])
    bad_gateway = (502, "<html><body><h1>502 Bad Gateway</h1></body></html>")
    record("binance_funding_502_then_resume", "binance", events(9), [
        {"since": since, "page_size": 3, "retries": 1,
         "faults": {2: bad_gateway, 3: bad_gateway}},
        {"page_size": 3},
    ])


if __name__ == "__main__":
    main()
