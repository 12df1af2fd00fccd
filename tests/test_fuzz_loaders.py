"""Fuzzing the loaders (hypothesis, bounded: a few hundred examples, well under a minute).

Properties, for any bytes we can make:

* every exception from ``load`` and ``validate_file`` is a :class:`DataError` (no
  OverflowError, OutOfBoundsDatetime, AttributeError, ...);
* an accepted frame is never empty, is canonical, has finite positive prices, opens between
  1990 and 2100, and agrees with ``validate_file`` (same acceptance);
* an accepted frame round-trips through the store exactly.

Inputs: real files of every supported format mutated (bytes flipped, inserted, deleted, lines
dropped or duplicated, cells replaced by odd values, truncated, compressed, re-encoded), and
CSVs built from cells of every kind (epoch numbers of every magnitude, ISO text near the edges
of time, text, ragged rows).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.frame import DataError, check_canonical
from data.loaders import load, validate_file
from data.store import DataStore
from data.validate import MAX_DATE, MIN_DATE

FORMATS = Path(__file__).parent / "data" / "formats"
SEEDS = sorted(p for p in FORMATS.iterdir() if p.is_file())
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

ODD_CELLS = [
    "", " ", "nan", "NaN", "inf", "-inf", "1e400", "-0", "0", "-1", "1e308", "0x10", "1,5",
    "9223372036854775807", "9223372036854775808", "18446744073709551616",
    "1234567890123456789012345", "-99999999999999999999", "9.3e9", "1e10", "9.3e12", "1e13",
    "9.3e15", "1e16", "9.3e18", "1e19", "45292", "19723", "1", "1700000000", "1700000000000",
    "1700000000000000", "1700000000000000000", "2300-01-01T00:00:00Z", "1677-09-21",
    "2262-04-12T00:00:00Z", "9999-12-31", "0001-01-01", "2024-02-30", "2024-01-01T25:00:00Z",
    "2024-01-01T00:00:00+14:00", "2024-01-01T00:00:00-12:00", "1989-12-31T23:59:59Z",
    "2100-01-01T00:00:00Z", "\"a,b\"", "\ufeff", "é", "\x00", "true", "None", "null",
    "1 000", "--", "1e-400", "P1D", "00:00:01",
]


def _check_outcome(path: Path) -> None:
    """The properties of one input file."""
    frame = report = None
    try:
        frame = load(path)
    except DataError:
        pass
    try:
        report = validate_file(path)
    except DataError:
        pass
    if frame is None:
        assert report is None or not report.ok, "validate says OK where load refuses"
        return
    assert report is not None and report.ok, "load accepts what validate refuses"
    assert len(frame) > 0
    check_canonical(frame, "accepted frame")
    assert frame.index[0] >= MIN_DATE and frame.index[-1] < MAX_DATE
    prices = frame[["open", "high", "low", "close"]].to_numpy()
    assert np.isfinite(prices).all() and (prices > 0).all()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    tf = frame.attrs["timeframe"]
    assert tf, "an accepted frame has a known timeframe"
    with tempfile.TemporaryDirectory() as root:
        store = DataStore(root)
        if tf == "1M":
            store.write(frame, "fuzz", "BTC/USD", tf)
        else:
            store.append(frame, "fuzz", "BTC/USD", tf, allow_gap=True)
        back = store.read("fuzz", "BTC/USD", tf)
    pd.testing.assert_frame_equal(back[list(frame.columns)], frame, check_freq=False,
                                  check_exact=True)


def _run(data: bytes, suffix: str = ".csv") -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{suffix}"
        path.write_bytes(data)
        _check_outcome(path)


@st.composite
def mutated_files(draw: st.DrawFn) -> tuple[bytes, str]:
    seed = draw(st.sampled_from(SEEDS))
    data = seed.read_bytes()
    lines = data.split(b"\n")
    # Zero mutations too: a wrapped (compressed, re-encoded) valid file must still be accepted.
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "drop_line", "dup_line",
                                   "cell", "truncate", "extra_field"]))
        if op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data = data[:i] + draw(st.binary(min_size=1, max_size=4)) + data[i:]
        elif op == "delete" and data:
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + data[i + draw(st.integers(1, 8)):]
        elif op in ("drop_line", "dup_line", "cell", "extra_field") and len(lines) > 1:
            lines = data.split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            if op == "drop_line":
                del lines[i]
            elif op == "dup_line":
                lines.insert(i, lines[i])
            elif op == "extra_field":
                lines[i] += b"," + draw(st.sampled_from(ODD_CELLS)).encode()
            else:
                cells = lines[i].split(b",")
                j = draw(st.integers(0, len(cells) - 1))
                cells[j] = draw(st.sampled_from(ODD_CELLS)).encode()
                lines[i] = b",".join(cells)
            data = b"\n".join(lines)
        elif op == "truncate" and data:
            data = data[: draw(st.integers(0, len(data)))]
    wrap = draw(st.sampled_from(["none", "none", "gzip", "bz2", "xz", "utf16", "utf32"]))
    suffix = seed.suffix
    if wrap == "gzip":
        data = gzip.compress(data, mtime=0)
    elif wrap == "bz2":
        data = bz2.compress(data)
    elif wrap == "xz":
        data = lzma.compress(data)
    elif wrap in ("utf16", "utf32"):
        text = data.decode("utf-8", "replace")
        data = text.encode("utf-16" if wrap == "utf16" else "utf-32")  # with a BOM
    return data, suffix


@SETTINGS
@given(mutated_files())
def test_mutated_real_files(case):
    _run(*case)


_cell = st.one_of(
    st.sampled_from(ODD_CELLS),
    st.integers(-(10**26), 10**26).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)


@st.composite
def built_csvs(draw: st.DrawFn) -> bytes:
    """A canonical-looking CSV: a real-looking timestamp column (epoch in some unit from a
    random start and step, or ISO), random rows replaced by odd cells or ragged."""
    n = draw(st.integers(1, 12) if draw(st.booleans()) else st.integers(3, 12))
    unit = draw(st.sampled_from(["s", "ms", "us", "iso", "excel"]))
    step = draw(st.sampled_from([60, 3600, 86400, 604800, 43200, 1]))
    if draw(st.integers(0, 3)) == 0:
        start = draw(st.integers(-(2**40), 2**40))  # anywhere in (and far beyond) time
    else:  # on the grid within the accepted dates, so that many files are accepted
        start = draw(st.integers(631152000, 4102444800 - 13 * step))
        grid = 604800 if step == 604800 else min(step, 86400)
        start = start - (start - (345600 if step == 604800 else 0)) % grid
    secs = [start + i * step for i in range(n)]
    if unit == "iso":
        stamps = []
        for s in secs:
            try:
                stamps.append(pd.Timestamp(s, unit="s").strftime("%Y-%m-%dT%H:%M:%SZ"))
            except (OverflowError, ValueError, NotImplementedError):  # years pandas cannot print
                stamps.append(str(s))
    elif unit == "excel":
        stamps = [str(45000 + i) for i in range(n)]
    else:
        mult = {"s": 1, "ms": 10**3, "us": 10**6}[unit]
        stamps = [str(s * mult) for s in secs]
    lines = ["timestamp,open,high,low,close,volume"]
    for ts in stamps:
        cells = [ts, "100", "110", "90", "105", "1.5"]
        if draw(st.integers(0, 9)) == 0:
            cells[draw(st.integers(0, 5))] = draw(_cell).replace("\n", " ")
        if draw(st.integers(0, 19)) == 0:
            cells.append("7")
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


@SETTINGS
@given(built_csvs())
def test_built_csvs(data):
    _run(data)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.name)
def test_seed_files_are_accepted_and_round_trip(seed):
    # The unmutated files pass every property (so the fuzzing starts from accepted input).
    _check_outcome(seed)
    load(seed)
