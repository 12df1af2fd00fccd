"""Loaders for the candle files BTC traders actually have, auto-detected from content.

Supported formats (:data:`FORMATS`):

``canonical``
    Our CSV: ``timestamp,open,high,low,close,volume`` with ISO 8601 UTC timestamps.
``parquet``
    Our Parquet: the same columns (``timestamp`` as a column or as the index).
``binance``
    Binance kline CSV (data.binance.vision): no header, 12 columns ``open_time, open, high, low,
    close, volume, close_time, quote_volume, trades, taker_buy_base, taker_buy_quote, ignore``.
    ``open_time`` is epoch milliseconds, or microseconds (spot files since 2025): told apart by
    magnitude, row by row. Files with an ``open_time,...`` header (futures) are read too.
``bitstamp``
    Bitstamp / Kaggle minute CSV: ``Timestamp,Open,High,Low,Close,Volume`` or Kaggle's
    ``Timestamp,Open,High,Low,Close,Volume_(BTC),Volume_(Currency),Weighted_Price``, unix seconds.
``yahoo``
    Yahoo Finance CSV ``Date,Open,High,Low,Close,Adj Close,Volume`` (and the newer yfinance
    export with ``Price``/``Ticker``/``Date`` header lines). Yahoo's BTC-USD volume is in
    **US dollars**; the canonical volume is in BTC, so it is converted as ``volume / close``
    (an estimate: the true BTC volume would need the bar's VWAP). ``attrs["volume_note"]`` says
    so. ``Adj Close`` is ignored (it equals Close for crypto).
``cryptodatadownload``
    CryptoDataDownload CSV: a URL banner line, then ``unix,date,symbol,open,high,low,close,
    Volume BTC,Volume USD[,tradecount]``, newest row first (reversed to oldest first; a file
    that is not strictly newest-first is reported as unsorted, not silently sorted). ``unix`` is
    seconds or milliseconds (CryptoDataDownload changed it over time): told apart per row.
``tradingview``
    TradingView "Export chart data" CSV: ``time,open,high,low,close[,Volume][,indicators...]``,
    ``time`` in unix seconds or ISO 8601 with an offset. Indicator columns are ignored and listed
    in ``attrs["ignored_columns"]``. Without a Volume column, volume is NaN and
    ``attrs["volume_missing"]`` is ``True`` (a warning says so).

Gzip (``.gz``), bzip2, xz and zip (one member) files are decompressed transparently, recognised
by their magic bytes rather than their names; compression inside compression (a ``.gz`` in a
``.zip``) and other archives (zstd, 7-Zip, RAR) are refused by name. Text in UTF-16 or UTF-32
(with or without a byte-order mark) is decoded; other binary data is refused. Detection looks at
the first lines; force a format with ``load(path, fmt="binance")`` (CLI ``--format binance``).

The input is read once, from the start: ``"-"`` is standard input, and pipes (``<(cat f)``,
``/dev/stdin``, a FIFO) work like files. A FIFO that no program opens for writing within
:data:`PIPE_WAIT_S` seconds is an error, not a hang.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import re
import select
import stat
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from data.frame import INDEX_NAME, OHLCV, DataError
from data.validate import DuplicatePolicy, GapPolicy, ValidationReport, clean

FORMATS: tuple[str, ...] = (
    "canonical",
    "parquet",
    "binance",
    "bitstamp",
    "yahoo",
    "cryptodatadownload",
    "tradingview",
)

BINANCE_COLUMNS: tuple[str, ...] = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
    "ignore",
)

_HEAD_BYTES = 64 * 1024
_FORCE_HINT = (
    "supported formats: " + ", ".join(FORMATS) + "; force one with fmt='binance' "
    "(CLI --format binance)"
)
_NUMBER = re.compile(r"^\s*[+-]?\d+(\.\d*)?([eE][+-]?\d+)?\s*$")
PIPE_WAIT_S = 30.0
"""How long to wait for a program to open a FIFO for writing before giving up."""
STDIN = "-"

# Containers by magic bytes: those opened transparently, and those only named.
_OPENED = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_NAMED = {b"\x28\xb5\x2f\xfd": "zstd", b"7z\xbc\xaf\x27\x1c": "7-Zip", b"Rar!\x1a\x07": "RAR",
          b"PK\x05\x06": "empty zip"}
# Byte-order marks, UTF-32 before UTF-16 (FF FE 00 00 starts with FF FE).
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


# --- reading bytes ---------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    """The input's bytes, decompressed and as UTF-8 text (Parquet as is). Read exactly once,
    so pipes and standard input work.

    Raises:
        DataError: not found, a directory, unreadable, a pipe nobody writes, a damaged or
            nested archive, an unsupported archive or encoding.
    """
    raw = _read_raw(path)
    return _decode(_decompress(raw, _name(path)), _name(path))


def _name(path: Path) -> str:
    return "<stdin>" if str(path) == STDIN else path.name


def _read_raw(path: Path) -> bytes:
    if str(path) == STDIN:
        return sys.stdin.buffer.read()
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise DataError("is a directory, not a file", source=str(path))
        if stat.S_ISFIFO(mode):
            return _read_pipe(path)
        with path.open("rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise DataError(
            "file not found", source=str(path), hint="check the path and the file name"
        ) from None
    except PermissionError:
        raise DataError(
            "permission denied", source=str(path), hint="make the file readable (chmod +r)"
        ) from None
    except IsADirectoryError:
        raise DataError("is a directory, not a file", source=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", source=str(path)) from None


def _read_pipe(path: Path) -> bytes:
    """A FIFO's whole content. Opening one blocks until a writer appears, so open it without
    blocking and wait at most PIPE_WAIT_S for data or the end of input."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        if not poller.poll(PIPE_WAIT_S * 1000):
            raise DataError(
                f"nothing was written to the pipe within {PIPE_WAIT_S:.0f} s",
                source=str(path),
                hint="start the program that writes to it first, or pass a regular file",
            )
        os.set_blocking(fd, True)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _container(data: bytes) -> tuple[str | None, bool]:
    """``(kind, opened)`` of compressed data by its magic bytes; ``(None, False)`` for none."""
    for magic, kind in _OPENED.items():
        if data.startswith(magic):
            return kind, True
    for magic, kind in _NAMED.items():
        if data.startswith(magic):
            return kind, False
    return None, False


def _decompress(data: bytes, name: str) -> bytes:
    kind, opened = _container(data)
    if kind is None:
        return data
    if not opened:
        raise DataError(
            f"{kind} archives are not supported",
            source=name,
            hint="extract the CSV or Parquet file and load it directly (gzip, bzip2, xz and "
            "single-file zip are read as they are)",
        )
    try:
        if kind == "gzip":
            inner = gzip.decompress(data)
        elif kind == "bzip2":
            inner = bz2.decompress(data)
        elif kind == "xz":
            inner = lzma.decompress(data)
        else:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) != 1:
                    names = ", ".join(m.filename for m in members) or "none"
                    raise DataError(
                        f"zip archive must hold exactly one file, found {len(members)} ({names})",
                        source=name,
                        hint="extract the file you want and load it directly",
                    )
                inner = zf.read(members[0])
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, lzma.LZMAError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise DataError(
            f"corrupt or truncated compressed file ({kind}: {exc})",
            source=name,
            hint="the download was probably interrupted; fetch the file again",
        ) from None
    nested, _ = _container(inner)
    if nested is not None:
        raise DataError(
            f"compressed twice: {nested} inside {kind}",
            source=name,
            hint=f"decompress the outer {kind} layer and load the {nested} file inside, or "
            "decompress both",
        )
    return inner


def _decode(data: bytes, name: str) -> bytes:
    """UTF-8 bytes of the text (UTF-16/32 decoded); Parquet untouched.

    Raises:
        DataError: for other binary data (NUL bytes in what should be text).
    """
    if data.startswith(b"PAR1"):
        return data
    bom, encoding = next(((b, e) for b, e in _BOMS if data.startswith(b)), (b"", None))
    head = data[:4096]
    if encoding is None and b"\x00" in head:
        encoding = _guess_wide(head)
        if encoding is None:
            at = head.index(b"\x00")
            raise DataError(
                f"binary data, not text (a NUL byte at byte {at})",
                source=name,
                row=head.count(b"\n", 0, at) + 1,
                hint="is this really a CSV or Parquet file? export the candles as CSV (UTF-8) "
                "or Parquet",
            )
    if encoding is None:
        return data
    try:
        text = data[len(bom):].decode(encoding)
    except UnicodeDecodeError:
        raise DataError(
            f"looks like {encoding.upper()} text but cannot be decoded",
            source=name,
            hint="save the file as UTF-8 (Excel: 'CSV UTF-8')",
        ) from None
    return text.encode("utf-8")


def _guess_wide(head: bytes) -> str | None:
    """UTF-16/32 without a byte-order mark, told by where the NUL bytes of ASCII text fall."""
    n = len(head) - len(head) % 4
    if n < 8:
        return None
    h = head[:n]
    zeros = [h[i::4].count(0) / (n // 4) for i in range(4)]
    if zeros[1] > 0.9 and zeros[2] > 0.9 and zeros[3] > 0.9:
        return "utf-32-le"
    if zeros[0] > 0.9 and zeros[1] > 0.9 and zeros[2] > 0.9:
        return "utf-32-be"
    even, odd = h[0::2].count(0) / (n // 2), h[1::2].count(0) / (n // 2)
    if odd > 0.9 and even < 0.1:
        return "utf-16-le"
    if even > 0.9 and odd < 0.1:
        return "utf-16-be"
    return None


def _first_lines(data: bytes, n: int) -> list[str]:
    text = data[:_HEAD_BYTES].decode("utf-8", errors="replace").lstrip("\ufeff")
    return [ln.rstrip("\r") for ln in text.split("\n")[:n]]


# --- detection -------------------------------------------------------------------------------


def detect_format(path: str | Path) -> str:
    """Tell a file's format from its content (first lines; gzip/zip looked into).

    Returns:
        One of :data:`FORMATS`.

    Raises:
        DataError: the file is empty, uses another delimiter, or matches no supported format
            (the message lists the supported formats and how to force one).
    """
    path = Path(path)
    return _detect(_read(path), _name(path))


def _detect(data: bytes, name: str) -> str:
    if data[:4] == b"PAR1":
        return "parquet"
    if not data[:_HEAD_BYTES].strip() and not data.strip():
        raise DataError(
            "file is empty",
            source=name,
            hint="the download or export failed; fetch or export the file again",
        )
    lines = [ln for ln in _first_lines(data, 6)]
    first = lines[0].strip()
    if first.lower().startswith(("http", "www.")) or "cryptodatadownload" in first.lower():
        return "cryptodatadownload"
    fields = [f.strip().strip('"').strip() for f in first.split(",")]
    if len(fields) < 3:
        for delim, label in ((";", "';'"), ("\t", "tab"), ("|", "'|'")):
            if len(first.split(delim)) >= 5:
                raise DataError(
                    f"the file uses {label} as the delimiter, expected ','",
                    source=name,
                    row=1,
                    hint="save it as comma-separated CSV (decimal point '.'), e.g. "
                    f"pd.read_csv(path, sep={delim!r}).to_csv(new_path, index=False)",
                )
        raise DataError(
            f"cannot tell the format: the first line {first[:80]!r} is not a CSV header",
            source=name,
            row=1,
            hint=_FORCE_HINT,
        )
    low = [f.lower() for f in fields]
    if all(_NUMBER.match(f) for f in fields if f):
        if len(fields) == len(BINANCE_COLUMNS):
            return "binance"
        raise DataError(
            f"headerless CSV with {len(fields)} columns: only Binance klines (12 columns) are "
            "read without a header",
            source=name,
            row=1,
            hint="add the header timestamp,open,high,low,close,volume, or " + _FORCE_HINT,
        )
    second = lines[1].split(",") if len(lines) > 1 else []
    sample = second[0].strip().strip('"') if second else ""
    if low[0] in ("open_time", "open time"):
        return "binance"
    if low[:3] == ["unix", "date", "symbol"]:
        return "cryptodatadownload"
    if low[0] == "price" and len(lines) > 1 and lines[1].lower().startswith("ticker"):
        return "yahoo"  # yfinance >= 0.2.51 export: Price/Ticker/Date header lines
    if "adj close" in low:
        return "yahoo"
    if low[0] == "time" and {"open", "high", "low", "close"} <= set(low):
        return "tradingview"
    if "volume_(btc)" in low or (low[0] == "timestamp" and _NUMBER.match(sample)):
        return "bitstamp"
    if low[0] == "timestamp":
        return "canonical"
    # A header close to ours ("date,open,high,low,Closing,volume"): read it as canonical so
    # that validation can name the renamed column.
    if sum(c in low for c in OHLCV) >= 3:
        return "canonical"
    raise DataError(
        f"cannot tell the format from the header {first[:80]!r}",
        source=name,
        row=1,
        hint=_FORCE_HINT,
    )


# --- parsing ---------------------------------------------------------------------------------


class _Parsed:
    """A raw frame plus where its rows came from and what the format adds to attrs."""

    def __init__(
        self, raw: pd.DataFrame, rows: np.ndarray, header_row: int | None, **attrs: object
    ):
        self.raw = raw
        self.rows = rows
        self.header_row = header_row
        self.attrs = attrs


def _read_csv(
    data: bytes, name: str, skip: int = 0, header: bool = True, names: list[str] | None = None,
    skiprows: list[int] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read CSV bytes; return the frame and each row's 1-based line number in the file.

    Blank lines are kept by the parser (so line numbers stay exact) and then removed with a
    note: a blank line is not a candle.
    """
    rows_skipped = list(range(skip)) + (skiprows or [])
    try:
        with warnings.catch_warnings():
            # pandas only warns when the first data row has more fields than the header (it
            # drops them); _check_first_row below turns that into a DataError naming the row.
            warnings.filterwarnings("ignore", "Length of header or names does not match",
                                    pd.errors.ParserWarning)
            df = pd.read_csv(
                io.BytesIO(data),
                skiprows=rows_skipped or None,
                header=0 if header else None,
                names=names,
                index_col=False,
                skip_blank_lines=False,
                encoding="utf-8-sig",
            )
    except pd.errors.EmptyDataError:
        raise DataError(
            "file is empty", source=name, hint="fetch or export the file again"
        ) from None
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m:
            raise DataError(
                f"row has {m.group(3)} fields, expected {m.group(1)}",
                source=name,
                row=int(m.group(2)),
                hint="a cell probably contains an unquoted ',' (thousands separator or decimal "
                "comma?); correct the row",
            ) from None
        raise DataError(f"cannot parse the CSV ({exc})".strip(), source=name) from None
    except UnicodeDecodeError:
        # Locate the bad byte ourselves: the parser's offset is not a line number.
        try:
            data.decode("utf-8")
            row, byte = None, None
        except UnicodeDecodeError as exc:
            row, byte = data.count(b"\n", 0, exc.start) + 1, data[exc.start : exc.start + 1]
        raise DataError(
            f"not UTF-8 text (byte {byte!r} cannot be decoded)",
            source=name,
            row=row,
            hint="is this really a CSV? save it as UTF-8 (Excel: 'CSV UTF-8'), with plain "
            "numbers only",
        ) from None
    # Line numbers: one row per line after the header and the skipped lines (all of which
    # precede the data: a banner before the header, yfinance's lines after it).
    first_data_line = len(rows_skipped) + (2 if header else 1)
    rows = np.arange(first_data_line, first_data_line + len(df), dtype=np.int64)
    # A blank line is NaN in every column, so the first column screens cheaply.
    first_na = df.iloc[:, 0].isna().to_numpy() if df.shape[1] else np.zeros(len(df), bool)
    blank = df.isna().all(axis=1).to_numpy() if first_na.any() else first_na
    if blank.any():
        df = df.loc[~blank].reset_index(drop=True)
        blank_rows = rows[blank]
        rows = rows[~blank]
        # Not a candle, so not data loss; load() still reports them as a warning.
        df.attrs["blank_lines"] = blank_rows.tolist()
    _check_short_rows(data, df, rows, name)
    if header:
        _check_header(data, first_data_line - 1, name)
    if len(df):
        _check_first_row(data, first_data_line, df.shape[1], name)
    return df, rows


def _line(data: bytes, line_no: int) -> str | None:
    """Line ``line_no`` (1-based) of the text, without its line end; None past the head."""
    lines = data[:_HEAD_BYTES].split(b"\n", line_no)
    if len(lines) < line_no:
        return None
    return lines[line_no - 1].decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r")


def _check_header(data: bytes, line_no: int, name: str) -> None:
    """Refuse a header naming one of our columns twice: the parser would rename the second
    ('close.1') and the first would be used silently."""
    text = _line(data, line_no)
    if not text:
        return
    names = [c.strip().lower() for c in next(csv.reader([text]))]
    for col in (INDEX_NAME, *OHLCV):
        if names.count(col) > 1:
            where = ", ".join(str(i + 1) for i, c in enumerate(names) if c == col)
            raise DataError(
                f"column {col!r} appears {names.count(col)} times in the header (columns "
                f"{where})",
                source=name,
                row=line_no,
                hint="keep one of them: delete or rename the others",
            )


def _check_first_row(data: bytes, line_no: int, want: int, name: str) -> None:
    """Refuse extra fields on the first data row: with ``index_col=False`` the parser drops
    them silently there (on later rows it raises, and short rows are checked separately)."""
    text = _line(data, line_no)
    if text is None or not text.strip():
        return
    got = len(next(csv.reader([text])))
    if got > want:
        raise DataError(
            f"row has {got} fields, expected {want} ({text.strip()[:60]!r})",
            source=name,
            row=line_no,
            hint="a cell probably contains an unquoted ',' (thousands separator or decimal "
            "comma?), or the header lacks a column; correct the row or the header",
        )


def _check_short_rows(data: bytes, df: pd.DataFrame, rows: np.ndarray, name: str) -> None:
    """Report rows with fewer fields than the header (the parser pads them with NaN silently).

    Only rows whose last cell is empty are inspected, so a clean file costs nothing here.
    """
    if df.empty:
        return
    suspects = np.flatnonzero(df.iloc[:, -1].isna().to_numpy())
    if not len(suspects):
        return
    # Bounded work: the first suspects and always the last row (where truncation happens).
    suspects = np.unique(np.r_[suspects[:1000], suspects[-1:]])
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == ord("\n"))
    starts = np.r_[0, ends + 1]
    ends = np.r_[ends, len(buf)]
    want = df.shape[1]
    for pos in suspects:
        line_no = int(rows[pos])
        if line_no - 1 >= len(starts):
            continue
        text = bytes(buf[starts[line_no - 1] : ends[line_no - 1]]).decode("utf-8", "replace")
        got = len(text.rstrip("\r").split(","))
        if got < want:
            if line_no == len(starts) and not data.endswith(b"\n"):
                raise DataError(
                    f"truncated last line: {got} of {want} fields and no line end "
                    f"({text.strip()[:60]!r})",
                    source=name,
                    row=line_no,
                    hint="the file was cut off (interrupted download?); fetch it again or "
                    "delete the incomplete last line",
                )
            raise DataError(
                f"row has {got} fields, expected {want} ({text.strip()[:60]!r})",
                source=name,
                row=line_no,
                hint="complete the row or delete it",
            )


def _rename(df: pd.DataFrame, name: str, mapping: dict[str, str]) -> pd.DataFrame:
    """Rename columns by case-insensitive name; unknown names are left alone.

    Raises:
        DataError: when a renamed column would take the name of a column already there
            (a TradingView export with both ``time`` and ``timestamp``).
    """
    lower = {str(c).strip().lower(): c for c in df.columns}
    renames = {lower[k]: v for k, v in mapping.items() if k in lower}
    for old, new in renames.items():
        if new in lower and lower[new] != old:
            raise DataError(
                f"columns {str(old)!r} and {str(lower[new])!r} would both be the {new!r} column",
                source=name,
                row=1,
                hint=f"delete one of them (or rename it) so that one column is the {new}",
            )
    return df.rename(columns=renames)


def _parse_canonical(data: bytes, name: str) -> _Parsed:
    df, rows = _read_csv(data, name)
    extra = [str(c) for c in df.columns if str(c).strip().lower() not in (INDEX_NAME, *OHLCV)]
    attrs: dict[str, object] = {}
    if extra and len(df.columns) - len(extra) == 6:
        attrs["ignored_columns"] = extra
    return _Parsed(df, rows, 1, **attrs)


def _parse_parquet(data: bytes, name: str) -> _Parsed:
    try:
        df = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(
            f"cannot read Parquet ({type(exc).__name__}: {exc})",
            source=name,
            hint="the file is damaged or not Parquet; write it again",
        ) from None
    if isinstance(df.index, pd.DatetimeIndex):
        df = df.reset_index(names=INDEX_NAME if df.index.name is None else df.index.name)
    # Parquet has no lines: cite 1-based record numbers.
    return _Parsed(df, np.arange(1, len(df) + 1, dtype=np.int64), None)


def _parse_binance(data: bytes, name: str) -> _Parsed:
    has_header = not _NUMBER.match(_first_lines(data, 1)[0].split(",")[0].strip() or "x")
    if has_header:
        df, rows = _read_csv(data, name)
        df = _rename(df, name, {"open_time": "timestamp", "open time": "timestamp"})
    else:
        df, rows = _read_csv(data, name, header=False, names=list(BINANCE_COLUMNS))
        df = df.rename(columns={"open_time": INDEX_NAME})
    raw = df[[c for c in df.columns if str(c).lower() in (INDEX_NAME, *OHLCV)]]
    return _Parsed(raw, rows, 1 if has_header else None)


def _parse_bitstamp(data: bytes, name: str) -> _Parsed:
    df, rows = _read_csv(data, name)
    lower = [str(c).strip().lower() for c in df.columns]
    attrs: dict[str, object] = {}
    if "volume_(btc)" in lower:
        df = _rename(df, name, {"volume_(btc)": "volume"})
        attrs["ignored_columns"] = [
            c for c in df.columns if str(c).lower() in ("volume_(currency)", "weighted_price")
        ]
    return _Parsed(df, rows, 1, **attrs)


def _parse_yahoo(data: bytes, name: str) -> _Parsed:
    lines = _first_lines(data, 3)
    if lines[0].lower().startswith("price"):
        # yfinance: "Price,Close,..." / "Ticker,BTC-USD,..." / "Date,,,," then data.
        df, rows = _read_csv(data, name, skiprows=[1, 2])
        df = df.rename(columns={df.columns[0]: "Date"})
    else:
        df, rows = _read_csv(data, name)
    df = _rename(df, name, {"date": INDEX_NAME, "datetime": INDEX_NAME})
    ignored = [c for c in df.columns if str(c).strip().lower() == "adj close"]
    attrs = {
        "volume_unit": "BTC",
        "volume_note": "Yahoo reports BTC-USD volume in USD; converted to BTC as volume / close "
        "(an estimate)",
        "ignored_columns": ignored,
    }
    return _Parsed(df.drop(columns=ignored), rows, 1, **attrs)


def _parse_cdd(data: bytes, name: str) -> _Parsed:
    first = _first_lines(data, 1)[0].strip().lower()
    banner = first.startswith(("http", "www.")) or "cryptodatadownload" in first
    df, rows = _read_csv(data, name, skip=1 if banner else 0)
    header_row = 2 if banner else 1
    lower = {str(c).strip().lower(): c for c in df.columns}
    symbol = ""
    if "symbol" in lower and len(df):
        symbol = str(df[lower["symbol"]].iloc[0]).upper().replace("/", "").replace("-", "")
    # "Volume BTC" is the base volume; pick the volume column named after the symbol's base.
    vols = [c for k, c in lower.items() if k.startswith("volume ")]
    base = [c for c in vols if symbol.startswith(str(c).split(" ", 1)[1].strip().upper())]
    attrs: dict[str, object] = {}
    if base:
        df = df.rename(columns={base[0]: "volume"})
    elif vols:
        raise DataError(
            f"cannot tell which volume column is the base asset for symbol {symbol!r} "
            f"(columns {', '.join(map(str, vols))})",
            source=name,
            row=header_row,
            hint="rename the base-asset volume column to 'volume'",
        )
    df = _rename(df, name, {"unix": INDEX_NAME})
    if "date" in lower:
        df = df.drop(columns=[lower["date"]])
    if INDEX_NAME in df.columns and len(df) > 1:
        t = pd.to_numeric(df[INDEX_NAME], errors="coerce").to_numpy(dtype=np.float64)
        # Compare in seconds: the unit may change within the file (s vs ms).
        secs = np.where(np.abs(t) >= 1e11, t / 1000.0, t)
        if np.all(np.diff(secs) < 0):
            # The format is newest-first: reverse it, keeping each row's line number.
            df = df.iloc[::-1].reset_index(drop=True)
            rows = rows[::-1].copy()
            attrs["reversed"] = True
    return _Parsed(df, rows, header_row, **attrs)


def _parse_tradingview(data: bytes, name: str) -> _Parsed:
    df, rows = _read_csv(data, name)
    df = _rename(df, name, {"time": INDEX_NAME})
    keep = {INDEX_NAME, *OHLCV}
    ignored = [str(c) for c in df.columns if str(c).strip().lower() not in keep]
    df = df.drop(columns=ignored)
    attrs: dict[str, object] = {"ignored_columns": ignored}
    if "volume" not in [str(c).strip().lower() for c in df.columns]:
        attrs["volume_missing"] = True
    return _Parsed(df, rows, 1, **attrs)


_PARSERS = {
    "canonical": _parse_canonical,
    "parquet": _parse_parquet,
    "binance": _parse_binance,
    "bitstamp": _parse_bitstamp,
    "yahoo": _parse_yahoo,
    "cryptodatadownload": _parse_cdd,
    "tradingview": _parse_tradingview,
}


# --- public ----------------------------------------------------------------------------------


def load(
    path: str | Path,
    fmt: str | None = None,
    *,
    gaps: GapPolicy = "warn",
    timeframe: str | None = None,
    duplicates: DuplicatePolicy = "error",
    sort: bool = False,
    allow_dates: bool = False,
) -> pd.DataFrame:
    """Read a candle file in any supported format, validate it, return the canonical frame.

    Args:
        path: the file (plain, gzip, bzip2, xz or single-member zip; ``"-"`` for standard
            input; a pipe works too).
        fmt: one of :data:`FORMATS` to skip detection; ``None`` detects from the content.
        gaps: gap policy: ``"error"``, ``"warn"`` (default) or ``"keep"``. Gaps are never
            filled.
        timeframe: expected timeframe (``"1h"``); inferred from the bar spacing if ``None``.
        duplicates: ``"error"`` (default) or ``"drop-identical"`` (drop exact repeats, with a
            warning).
        sort: sort rows by time instead of failing on unsorted rows (with a warning).
        allow_dates: accept bars before 1990 or from 2100 on (see :mod:`data.validate`).

    Returns:
        The canonical frame (see :mod:`data.frame`) with ``attrs``: ``source`` (file name),
        ``format``, ``timeframe``, ``validation`` (the :class:`~data.validate.ValidationReport`)
        and, when they apply, ``ignored_columns``, ``volume_unit``/``volume_note`` (Yahoo),
        ``volume_missing`` (TradingView without volume), ``reversed`` (newest-first file),
        ``time_unit``.

    Raises:
        DataError: the first problem found (file, row, timestamp, fix), saying how many more
            there are.
    """
    frame, report = _load(path, fmt, gaps, timeframe, duplicates, sort, allow_dates)
    report.raise_for_errors()
    assert frame is not None  # clean() returns a frame whenever the report is ok
    return frame


def validate_file(
    path: str | Path,
    fmt: str | None = None,
    *,
    gaps: GapPolicy = "warn",
    timeframe: str | None = None,
    duplicates: DuplicatePolicy = "error",
    sort: bool = False,
    allow_dates: bool = False,
) -> ValidationReport:
    """Read and validate a file like :func:`load`, returning the report with *every* problem.

    This is what ``btc-backtest data validate FILE`` prints. Arguments are those of
    :func:`load`.

    Raises:
        DataError: only when the file cannot be parsed at all: not found, empty, corrupt
            archive, unknown format or delimiter, not UTF-8, ragged or truncated rows.
    """
    return _load(path, fmt, gaps, timeframe, duplicates, sort, allow_dates)[1]


def _load(
    path: str | Path,
    fmt: str | None,
    gaps: GapPolicy,
    timeframe: str | None,
    duplicates: DuplicatePolicy,
    sort: bool,
    allow_dates: bool = False,
) -> tuple[pd.DataFrame | None, ValidationReport]:
    path = Path(path)
    return parse_bytes(_read(path), _name(path), fmt, gaps=gaps, timeframe=timeframe,
                       duplicates=duplicates, sort=sort, allow_dates=allow_dates)


def parse_bytes(
    data: bytes,
    name: str,
    fmt: str | None = None,
    *,
    gaps: GapPolicy = "warn",
    timeframe: str | None = None,
    duplicates: DuplicatePolicy = "error",
    sort: bool = False,
    allow_dates: bool = False,
) -> tuple[pd.DataFrame | None, ValidationReport]:
    """Parse and validate a candle file's (decompressed) ``data``, named ``name`` in messages.

    For bytes already in memory (e.g. bundled data whose hash was just checked); arguments are
    those of :func:`load`. Returns the canonical frame (None when the report has errors) and the
    :class:`~data.validate.ValidationReport`.
    """
    if fmt is None:
        fmt = _detect(data, name)
    elif fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}", source=name, hint=_FORCE_HINT)
    elif not data[:_HEAD_BYTES].strip():
        _detect(data, name)  # raises the "file is empty" error
    parsed = _PARSERS[fmt](data, name)
    raw = parsed.raw
    blank = raw.attrs.get("blank_lines")
    raw.attrs = {"source": name}
    if parsed.attrs.get("volume_missing"):
        raw.attrs["volume_missing"] = True
    frame, report = clean(
        raw,
        source=name,
        gaps=gaps,
        rows=parsed.rows,
        timeframe=timeframe,
        duplicates=duplicates,
        sort=sort,
        header_row=parsed.header_row,
        allow_dates=allow_dates,
    )
    report.format = fmt
    if parsed.attrs.get("volume_missing"):
        report.warnings.append(
            DataError(
                "no volume column; volume is NaN",
                source=name,
                row=parsed.header_row,
                hint="export again with the Volume column to use volume-based indicators",
            )
        )
    if blank is not None and len(blank):
        report.warnings.append(
            DataError(
                f"{len(blank):,} blank line(s) ignored (lines {', '.join(map(str, blank[:5]))}"
                + (" ...)" if len(blank) > 5 else ")"),
                source=name,
                row=int(blank[0]),
                hint="blank lines are not candles; delete them to silence this warning",
            )
        )
    if frame is None or not report.ok:
        return None, report
    if fmt == "yahoo":
        # Quote-currency (USD) volume -> base (BTC) volume.
        frame["volume"] = frame["volume"] / frame["close"]
    frame.attrs.update(parsed.attrs)
    frame.attrs.update(
        source=name,
        format=fmt,
        timeframe=report.timeframe,
        validation=report,
        time_unit=report.time_unit,
    )
    return frame, report
