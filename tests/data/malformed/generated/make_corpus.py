"""Write the generated malformed-input corpus: one problem per file, and CASES.json saying which
message each must produce (``tests/test_malformed_corpus.py`` asserts every one).

    python tests/data/malformed/generated/make_corpus.py          # rewrite the files here
    python tests/data/malformed/generated/make_corpus.py OUT_DIR  # write elsewhere (the test
                                                                  # checks the committed files
                                                                  # equal a fresh run)

Each case: file name, content (bytes), ``load()`` options, the 1-based line the message must cite
(or None) and fragments the message must contain. Deterministic: no randomness, no timestamps.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import sys
import zipfile
from pathlib import Path

import pandas as pd

HEADER = "timestamp,open,high,low,close,volume"
ROWS = [  # five consistent daily bars
    ("2024-01-01T00:00:00Z", 42000.0, 42500.0, 41800.0, 42300.0, 1234.5),
    ("2024-01-02T00:00:00Z", 42300.0, 42800.0, 42100.0, 42600.0, 1100.0),
    ("2024-01-03T00:00:00Z", 42600.0, 43000.0, 42400.0, 42900.0, 990.25),
    ("2024-01-04T00:00:00Z", 42900.0, 43100.0, 42500.0, 42700.0, 1010.0),
    ("2024-01-05T00:00:00Z", 42700.0, 42900.0, 42200.0, 42800.0, 1300.0),
]
DAY = 86400


def row(ts: object, *vals: object) -> str:
    return ",".join(str(v) for v in (ts, *vals))


def canonical(stamps: list[object] | None = None, header: str = HEADER,
              tweak: dict[int, str] | None = None, n: int = 5) -> str:
    """A canonical CSV of the first ``n`` bars with other timestamps and/or replaced lines
    (``tweak``: data-row index -> the whole line)."""
    lines = [header]
    for i, (ts, *vals) in enumerate(ROWS[:n]):
        stamp = stamps[i] if stamps is not None else ts
        lines.append(tweak[i] if tweak and i in tweak else row(stamp, *vals))
    return "\n".join(lines) + "\n"


def epochs(first: float, step: float, n: int = 5, fmt: str = "{:.0f}") -> list[str]:
    return [fmt.format(first + i * step) for i in range(n)]


def isos(first: str, n: int = 5, freq: str = "1D", suffix: str = "Z") -> list[str]:
    idx = pd.date_range(pd.Timestamp(first), periods=n, freq=freq, unit="s")
    return [t.strftime("%Y-%m-%dT%H:%M:%S") + suffix for t in idx]


def binance_line(open_time: object) -> str:
    return f"{open_time},42000.0,42500.0,41800.0,42300.0,12.5,0,525000.0,10,6.0,250000.0,0"


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)  # mtime=0: the same bytes on every run


def cases() -> list[tuple[str, bytes, dict, int | None, list[str]]]:
    """(file name, content, load options, cited line or None, message fragments)."""
    good = canonical().encode()
    out: list[tuple[str, bytes, dict, int | None, list[str]]] = []

    def add(name: str, data: str | bytes, fragments: list[str], line: int | None = None,
            **options: object) -> None:
        out.append((name, data.encode() if isinstance(data, str) else data, options, line,
                    fragments))

    # --- time scale and ranges ----------------------------------------------------------------
    oor = "is out of range"
    add("epoch_s_2286.csv", canonical(epochs(1e10, DAY)), [oor, "year 2286", "read as seconds"], 2)
    add("epoch_s_at_2262.csv", canonical(epochs(9.3e9, DAY)), [oor, "year 2264"], 2)
    add("epoch_ms_2286.csv", canonical(epochs(1e13, DAY * 1000)), [oor, "milliseconds"], 2)
    add("epoch_us_2286.csv", canonical(epochs(1e16, DAY * 1e6)), [oor, "microseconds"], 2)
    add("epoch_float_s_2300.csv", canonical(epochs(1.0413e10, DAY, fmt="{:.1f}")), [oor], 2)
    add("epoch_20_digits.csv", canonical(epochs(12345678901234567890, 0, fmt="{:.0f}")[:1]
                                         + epochs(1704067200 + DAY, DAY, 4)), [oor], 2)
    later = epochs(1704067200 + DAY, DAY, 4)
    add("epoch_25_digits.csv", canonical(["1234567890123456789012345", *later]),
        [oor, "1234567890123456789012345"], 2)
    add("epoch_negative_huge.csv", canonical(["-99999999999999999999", *later]), [oor], 2)
    add("epoch_excel_serial.csv", canonical(epochs(45292, 1)),
        ["outside the accepted dates", "Excel serial dates (days since 1899-12-30)"], 2)
    add("epoch_days_since_1970.csv", canonical(epochs(19723, 1)),
        ["outside the accepted dates", "days since 1970-01-01"], 2)
    add("epoch_s_1985.csv", canonical(epochs(473385600, DAY)),
        ["outside the accepted dates 1990-01-01 to 2100-01-01", "--allow-dates"], 2)
    add("epoch_s_2150.csv", canonical(epochs(5680281600, DAY)),
        ["outside the accepted dates", "--allow-dates"], 2)
    add("epoch_ms_1980.csv", canonical(epochs(315532800000, DAY * 1000)),
        ["outside the accepted dates"], 2)
    add("epoch_tiny_counter.csv", canonical(epochs(1, 1)), ["outside the accepted dates"], 2)
    add("iso_1980.csv", canonical(isos("1980-01-01")), ["outside the accepted dates"], 2)
    add("iso_2150.csv", canonical(isos("2150-01-01")), ["outside the accepted dates"], 2)
    beyond = "is beyond the dates a timestamp can hold"
    add("iso_2300.csv", canonical(isos("2300-01-01")), [beyond, "'2300-01-01T00:00:00Z'"], 2)
    add("iso_9999.csv", canonical(["9999-12-27T00:00:00Z", "9999-12-28T00:00:00Z",
                                   "9999-12-29T00:00:00Z", "9999-12-30T00:00:00Z",
                                   "9999-12-31T00:00:00Z"]), [beyond], 2)
    add("iso_year_1.csv", canonical(["0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z",
                                     "0001-01-03T00:00:00Z", "0001-01-04T00:00:00Z",
                                     "0001-01-05T00:00:00Z"]), [beyond], 2)
    add("iso_2300_offset.csv", canonical(isos("2300-01-01", suffix="+02:00")), [beyond], 2)
    add("iso_2300_date_only.csv",
        canonical([t[:10] for t in isos("2300-01-01")]), [beyond, "'2300-01-01'"], 2)
    add("iso_2300_in_last_row.csv", canonical([*isos("2024-01-01", 4), "2300-01-01T00:00:00Z"]),
        [beyond], 6)
    add("binance_ms_beyond_2262.csv",
        "\n".join(binance_line(int(9.5e12) + i * DAY * 1000) for i in range(5)) + "\n",
        [oor, "milliseconds"], 1)
    add("binance_excel_serial.csv",
        "\n".join(binance_line(45292 + i) for i in range(5)) + "\n", ["Excel serial dates"], 1)
    add("tradingview_s_beyond_2262.csv",
        "time,open,high,low,close,Volume\n" + "\n".join(
            row(int(1e10) + i * DAY, 1, 2, 0.5, 1.5, 3) for i in range(5)) + "\n", [oor], 2)
    add("bitstamp_days_since_1970.csv",
        "Timestamp,Open,High,Low,Close,Volume\n" + "\n".join(
            row(19723 + i, 1, 2, 0.5, 1.5, 3) for i in range(5)) + "\n",
        ["days since 1970-01-01"], 2)
    add("cdd_unix_beyond_2262.csv",
        "https://www.CryptoDataDownload.com\nunix,date,symbol,open,high,low,close,Volume BTC,"
        "Volume USD\n" + "\n".join(
            row(int(1.2e10) - i * DAY, "x", "BTC/USD", 1, 2, 0.5, 1.5, 3, 4) for i in range(5))
        + "\n", [oor], None)
    add("allow_dates_epoch_counter.csv", canonical(epochs(1, 1)),
        ["put every bar in the first days of 1970"], 2, allow_dates=True)
    add("allow_dates_iso_2300.csv", canonical(isos("2300-01-01")), [beyond], 2,
        allow_dates=True)
    add("allow_dates_epoch_2286.csv", canonical(epochs(1e10, DAY)), [oor], 2, allow_dates=True)
    add("gzip_excel_serial.csv.gz", gz(canonical(epochs(45292, 1)).encode()),
        ["Excel serial dates"], 2)

    # --- ragged rows and columns --------------------------------------------------------------
    add("extra_field_first_row.csv", canonical(tweak={0: row(*ROWS[0], 234.5)}),
        ["row has 7 fields, expected 6"], 2)
    add("trailing_comma_first_row.csv", canonical(tweak={0: row(*ROWS[0]) + ","}),
        ["row has 7 fields, expected 6"], 2)
    add("extra_field_middle_row.csv", canonical(tweak={2: row(*ROWS[2], 1)}),
        ["row has 7 fields, expected 6"], 4)
    add("extra_field_last_row.csv", canonical(tweak={4: row(*ROWS[4], 1)}),
        ["row has 7 fields, expected 6"], 6)
    add("missing_field_first_row.csv", canonical(tweak={0: row(*ROWS[0][:5])}),
        ["row has 5 fields, expected 6"], 2)
    add("missing_field_middle_row.csv", canonical(tweak={2: row(*ROWS[2][:4])}),
        ["row has 4 fields, expected 6"], 4)
    add("cut_last_line.csv", canonical().rstrip("\n")[:-12], ["truncated last line"], 6)
    add("header_short_of_every_row.csv",
        "timestamp,open,high,low,close\n" + "\n".join(row(*r) for r in ROWS) + "\n",
        ["row has 6 fields, expected 5"], 2)
    add("crlf_extra_field_first_row.csv",
        canonical(tweak={0: row(*ROWS[0], 7)}).replace("\n", "\r\n"),
        ["row has 7 fields, expected 6"], 2)
    add("bom_extra_field_first_row.csv", b"\xef\xbb\xbf" + canonical(
        tweak={0: row(*ROWS[0], 7)}).encode(), ["row has 7 fields, expected 6"], 2)
    add("binance_13_fields_first_row.csv",
        "\n".join([binance_line(1704067200000) + ",9"] + [
            binance_line(1704067200000 + i * DAY * 1000) for i in range(1, 5)]) + "\n",
        ["headerless CSV with 13 columns"], 1)
    add("tradingview_time_and_timestamp.csv",
        "time,timestamp,open,high,low,close,Volume\n" + "\n".join(
            row(1704067200 + i * DAY, i, 1, 2, 0.5, 1.5, 3) for i in range(5)) + "\n",
        ["columns 'time' and 'timestamp' would both be the 'timestamp' column"], 1)
    add("yahoo_date_and_timestamp.csv",
        "Date,timestamp,Open,High,Low,Close,Adj Close,Volume\n" + "\n".join(
            row(f"2024-01-0{i + 1}", i, 1, 2, 0.5, 1.5, 1.5, 3) for i in range(5)) + "\n",
        ["would both be the 'timestamp' column"], 1)
    add("close_twice_in_header.csv", canonical(header=HEADER.replace("volume", "close")),
        ["'close' appears 2 times in the header"], 1)
    add("timestamp_twice_case.csv", canonical(header=HEADER.replace("volume", "Timestamp")),
        ["'timestamp' appears 2 times in the header"], 1)
    add("quoted_thousands_separator.csv",
        canonical(tweak={1: '2024-01-02T00:00:00Z,"42,300",42800,42100,42600,1100'}),
        ["non-numeric value '42,300' in column 'open'"], 3)

    # --- encodings and containers ------------------------------------------------------------
    add("utf16_odd_length.csv", b"\xff\xfe" + good.decode().encode("utf-16-le") + b"x",
        ["looks like UTF-16-LE text but cannot be decoded"], None)
    add("utf16_bad_surrogate.csv", b"\xff\xfe" + "timestamp".encode("utf-16-le")
        + b"\x00\xdc\x41\x00" + "\n".encode("utf-16-le"),
        ["UTF-16-LE text but cannot be decoded"], None)
    add("utf32_truncated.csv", b"\xff\xfe\x00\x00" + good.decode().encode("utf-32-le")[:-2],
        ["UTF-32-LE text but cannot be decoded"], None)
    add("utf16_extra_field_first_row.csv", b"\xff\xfe" + canonical(
        tweak={0: row(*ROWS[0], 7)}).encode("utf-16-le"), ["row has 7 fields, expected 6"], 2)
    add("utf16be_no_bom_excel_serial.csv", canonical(epochs(45292, 1)).encode("utf-16-be"),
        ["Excel serial dates"], 2)
    add("binary_with_nul.csv", b"timestamp,open\n\x00\x01\x02\x03garbage\xff\x00\n",
        ["binary data, not text"], 2)
    add("latin1_text.csv", canonical(header=HEADER + ",note",
                                     tweak={i: row(*ROWS[i], "caf\xe9") for i in range(5)}
                                     ).encode("latin-1"), ["not UTF-8"], 2)
    add("gzip_in_gzip.csv.gz", gz(gz(good)), ["compressed twice: gzip inside gzip"], None)
    add("gzip_in_zip.zip", zipped({"candles.csv.gz": gz(good)}),
        ["compressed twice: gzip inside zip"], None)
    add("bzip2_in_gzip.csv.gz", gz(bz2.compress(good)), ["compressed twice: bzip2 inside gzip"],
        None)
    add("xz_in_bzip2.csv.bz2", bz2.compress(lzma.compress(good)),
        ["compressed twice: xz inside bzip2"], None)
    add("zip_in_xz.csv.xz", lzma.compress(zipped({"a.csv": good})),
        ["compressed twice: zip inside xz"], None)
    add("truncated_gzip.csv.gz", gz(good * 20)[:60], ["corrupt or truncated compressed file"],
        None)
    add("truncated_bzip2.csv.bz2", bz2.compress(good * 20)[:60],
        ["corrupt or truncated compressed file"], None)
    add("truncated_xz.csv.xz", lzma.compress(good * 20)[:60],
        ["corrupt or truncated compressed file"], None)
    add("zip_two_members.zip", zipped({"a.csv": good, "b.csv": good}),
        ["zip archive must hold exactly one file, found 2"], None)
    add("empty_zip.zip", zipped({}), ["empty zip archives are not supported"], None)
    add("zstd_magic.csv.zst", b"\x28\xb5\x2f\xfd" + b"\x00" * 20,
        ["zstd archives are not supported"], None)
    add("sevenzip_magic.7z", b"7z\xbc\xaf\x27\x1c" + b"\x00" * 20,
        ["7-Zip archives are not supported"], None)
    add("rar_magic.rar", b"Rar!\x1a\x07\x00" + b"\x00" * 20, ["RAR archives are not supported"],
        None)
    add("gzip_of_nothing.csv.gz", gz(b""), ["file is empty"], None)
    add("whitespace_only.csv", "   \n\n  \n", ["file is empty"], None)

    # --- Parquet -------------------------------------------------------------------------------
    frame = pd.DataFrame([r[1:] for r in ROWS], columns=HEADER.split(",")[1:])
    stamps = pd.to_datetime([r[0] for r in ROWS], utc=True)
    add("parquet_truncated.parquet", parquet(frame.assign(timestamp=stamps))[:-40],
        ["cannot read Parquet"], None)
    add("parquet_garbage.parquet", b"PAR1" + b"\x07" * 64, ["cannot read Parquet"], None)
    add("parquet_timedelta_timestamp.parquet",
        parquet(frame.assign(timestamp=pd.to_timedelta(range(5), unit="D"))),
        ["holds durations"], None)
    add("parquet_epoch_s_2286.parquet",
        parquet(frame.assign(timestamp=[int(1e10) + i * DAY for i in range(5)])), [oor], 1)
    add("parquet_dates_1980.parquet",
        parquet(frame.assign(timestamp=pd.date_range("1980-01-01", periods=5, tz="UTC"))),
        ["outside the accepted dates"], 1)
    add("parquet_dates_2300.parquet",
        parquet(frame.assign(timestamp=pd.date_range("2300-01-01", periods=5, tz="UTC",
                                                     unit="s"))), [beyond], 1)
    add("parquet_excel_serial_float.parquet",
        parquet(frame.assign(timestamp=[45292.0 + i for i in range(5)])),
        ["Excel serial dates"], 1)

    # --- values ---------------------------------------------------------------------------------
    def bad_value(col: int, value: object) -> str:
        vals = list(ROWS[2])
        vals[col] = value
        return canonical(tweak={2: row(*vals)})

    add("value_nan_close.csv", bad_value(4, "nan"), ["missing value (NaN) in 'close'"], 4)
    add("value_inf_open.csv", bad_value(1, "inf"), ["infinite value in 'open'"], 4)
    add("value_negative_inf_low.csv", bad_value(3, "-inf"), ["infinite value in 'low'"], 4)
    add("value_negative_close.csv", bad_value(4, -1), ["non-positive price: close = -1"], 4)
    add("value_zero_open.csv", bad_value(1, 0), ["non-positive price: open = 0"], 4)
    add("value_text_volume.csv", bad_value(5, "lots"),
        ["non-numeric value 'lots' in column 'volume'"], 4)
    add("value_negative_volume.csv", bad_value(5, -5), ["negative volume -5"], 4)
    add("value_high_below_low.csv", bad_value(2, 42000), ["high 42000 is below max(open, close)"],
        4)
    add("value_low_above_close.csv", bad_value(3, 43000), ["low 43000 is above min(open, close)"],
        4)
    add("value_empty_prices.csv", canonical(tweak={2: "2024-01-03T00:00:00Z,,,,,5"}),
        ["bar has no prices"], 4)
    add("value_1e400_high.csv", bad_value(2, "1e400"), ["infinite value in 'high'"], 4)
    add("value_hex_price.csv", bad_value(1, "0x10"), ["non-numeric value '0x10'"], 4)

    # --- time ---------------------------------------------------------------------------------
    add("time_month_13.csv", canonical(tweak={2: row("2024-13-03T00:00:00Z", *ROWS[2][1:])}),
        ["unparsable timestamp '2024-13-03T00:00:00Z'"], 4)
    add("time_missing.csv", canonical(tweak={2: row("", *ROWS[2][1:])}), ["missing timestamp"],
        4)
    add("time_mixed_offsets.csv", canonical(isos("2024-01-01", 3, suffix="+01:00")
                                            + isos("2024-01-04", 2, suffix="+02:00")),
        ["mixed UTC offsets"], 5)
    add("time_naive_and_aware.csv", canonical(isos("2024-01-01", 3)
                                              + isos("2024-01-04", 2, suffix="")),
        ["mix time-zone-aware and naive"], 5)
    add("time_unsorted.csv", canonical([ROWS[i][0] for i in (0, 2, 1, 3, 4)]),
        ["rows out of time order"], 4)
    add("time_newest_first.csv", canonical([r[0] for r in reversed(ROWS)]),
        ["the file is newest-first"], 3)
    add("time_conflicting_duplicate.csv", canonical(tweak={2: row(ROWS[1][0], *ROWS[2][1:])}),
        ["conflicting duplicate timestamp"], 4)
    add("time_daily_at_noon.csv", canonical(isos("2024-01-01T12:00:00")),
        ["1d bars must open at 00:00 UTC, but this bar opens 12h later"], 2)
    add("time_hourly_at_half_past.csv", canonical(isos("2024-01-01T00:30:00", freq="1h")),
        ["1h bars must open at multiples of 1h from 00:00 UTC"], 2)
    add("time_weekly_on_sunday.csv", canonical(isos("2023-12-31", freq="7D")),
        ["1w bars must open at Monday 00:00 UTC"], 2)
    add("time_one_bar.csv", canonical(n=1), ["only one bar", "--timeframe 1d"], 2)
    add("time_one_bar_binance.csv", binance_line(1704067200000) + "\n", ["only one bar"], 1)
    add("time_irregular.csv",
        canonical([*isos("2024-01-01", 4, freq="1h"), "2024-01-01T03:30:00Z"]),
        ["irregular spacing: this bar opens 30m after the previous one"], 6)
    add("time_wrong_timeframe_given.csv", good, ["timeframe '1h' was given"], None,
        timeframe="1h")
    add("time_gap_as_error.csv", canonical(isos("2024-01-01", 3) + isos("2024-01-06", 2)),
        ["1 gap(s) in the 1d bars"], 5, gaps="error")

    # --- layout ---------------------------------------------------------------------------------
    add("layout_semicolons.csv", good.decode().replace(",", ";"),
        ["uses ';' as the delimiter"], 1)
    add("layout_tabs.csv", good.decode().replace(",", "\t"), ["uses tab as the delimiter"], 1)
    add("layout_pipes.csv", good.decode().replace(",", "|"), ["uses '|' as the delimiter"], 1)
    add("layout_unknown_header.csv", "when,what,how much\n1,2,3\n",
        ["cannot tell the format from the header"], 1)
    add("layout_headerless_5_columns.csv", "\n".join(row(*r[:5]) for r in ROWS) + "\n",
        ["cannot tell the format"], 1)
    add("layout_missing_volume.csv", "\n".join(
        [",".join(HEADER.split(",")[:5])] + [row(*r[:5]) for r in ROWS]) + "\n",
        ["missing column 'volume'"], 1)
    add("layout_header_only.csv", HEADER + "\n", ["no data rows"], None)
    add("layout_renamed_low.csv", canonical(header=HEADER.replace("low", "minimum")),
        ["missing column 'low'"], 1)
    return out


def write(folder: Path) -> list[str]:
    """Write every case and CASES.json into ``folder``; return the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name, data, options, line, fragments in cases():
        (folder / name).write_bytes(data)
        manifest[name] = {"options": options, "row": line, "fragments": fragments}
    (folder / "CASES.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return sorted(manifest)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    names = write(target)
    print(f"{len(names)} files written to {target}")
