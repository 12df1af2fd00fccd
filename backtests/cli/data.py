"""``btc-backtest data``: download, import, inspect, validate and resample candles.

Every sub-command takes ``--data-dir`` (default: ``$BTC_BACKTEST_DATA`` or the user data
directory). Bad input raises :class:`~data.frame.DataError`, which the root group prints as one
line with a hint and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pandas as pd

from data.frame import DataError, parse_timeframe
from data.loaders import FORMATS
from data.store import ENV_VAR, DataStore

# The exchange an imported file is filed under when --exchange is not given.
_FORMAT_EXCHANGE = {
    "binance": "binance",
    "bitstamp": "bitstamp",
    "yahoo": "yahoo",
    "cryptodatadownload": "cryptodatadownload",
    "tradingview": "tradingview",
}


def _data_dir_option(f):
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=ENV_VAR,
        default=None,
        help=f"Candle store directory (env {ENV_VAR}; default: the user data directory).",
    )(f)


def _store(ctx: click.Context, data_dir: Path | None) -> DataStore:
    # Precedence: the sub-command's --data-dir, the group's (`data --data-dir X info`), then
    # the environment variable (which click already put into both), then the default.
    group_dir = (ctx.obj or {}).get("data_dir")
    from_cli = ctx.get_parameter_source("data_dir") == click.core.ParameterSource.COMMANDLINE
    root = data_dir if from_cli else (group_dir or data_dir)
    return DataStore(root)


def _check_timeframe(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_timeframe(value)
    except DataError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


def _allow_dates_option(f):
    return click.option(
        "--allow-dates", is_flag=True,
        help="Accept bars before 1990 or from 2100 on (refused by default: usually a wrong "
        "time scale).",
    )(f)


def _day(ts: pd.Timestamp | None) -> str:
    if ts is None:
        return "-"
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%d %H:%M")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@click.group("data")
@_data_dir_option
@click.pass_context
def data(ctx: click.Context, data_dir: Path | None) -> None:
    """Download, import, inspect, validate and resample BTC candles."""
    ctx.ensure_object(dict)
    ctx.obj["data_dir"] = data_dir


@data.command("download")
@click.option("--exchange", default="binance", show_default=True,
              help="binance, bitstamp, coinbase or kraken (any ccxt exchange id).")
@click.option("--symbol", default=None,
              help="Pair, e.g. BTC/USD (default: BTC/USDT on binance, BTC/USD elsewhere).")
@click.option("--timeframe", default="1d", show_default=True, callback=_check_timeframe,
              help="Candle length: 1m, 5m, 15m, 1h, 4h, 1d, 1w (as the exchange offers).")
@click.option("--since", default=None, help="First candle (UTC date) for a new series.")
@click.option("--until", default=None, help="Stop before this UTC date (default: now).")
@click.option("--retries", default=5, show_default=True, type=click.IntRange(0, 20),
              help="Retries per request on timeouts, 429 and 5xx.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("--funding", is_flag=True,
              help="Download the funding-rate history of the exchange's BTC perpetual instead "
                   "(binance or bybit; symbol default BTC/USDT:USDT; --timeframe/--until unused).")
@_data_dir_option
@click.pass_context
def download_cmd(ctx: click.Context, exchange: str, symbol: str | None, timeframe: str,
                 since: str | None, until: str | None, retries: int, progress: bool,
                 funding: bool, data_dir: Path | None) -> None:
    """Download candles (or --funding rates) from an exchange's public API into the store
    (resumable)."""
    from data.download import download

    store = _store(ctx, data_dir)
    if funding:
        from data.funding import download_funding

        click.echo(download_funding(exchange, symbol, since=since, store=store,
                                    progress=progress, retries=retries).summary())
        return
    res = download(exchange, symbol, timeframe, since=since, until=until, store=store,
                   progress=progress, retries=retries)
    click.echo(res.summary())


@data.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Force the file format (default: detected from the content).")
@click.option("--exchange", default=None,
              help="File under this exchange name (default: from the format, else 'imported').")
@click.option("--symbol", default=None, help="Pair, e.g. BTC/USD (default: BTC/USDT for "
              "Binance files, else BTC/USD).")
@click.option("--timeframe", default=None, callback=_check_timeframe,
              help="Expected timeframe (default: inferred from the bar spacing).")
@click.option("--allow-gap", is_flag=True,
              help="Allow a hole between the stored candles and the file's.")
@click.option("--funding", is_flag=True,
              help="FILE holds funding rates (timestamp,funding_rate); detected from the header "
                   "too. Stored under --exchange (default 'imported') and --symbol (default "
                   "BTC/USDT:USDT).")
@_allow_dates_option
@_data_dir_option
@click.pass_context
def import_cmd(ctx: click.Context, file: Path, fmt: str | None, exchange: str | None,
               symbol: str | None, timeframe: str | None, allow_gap: bool, funding: bool,
               allow_dates: bool, data_dir: Path | None) -> None:
    """Load and validate FILE (candles or funding rates; '-' for standard input), then merge
    it into the store."""
    from data.funding import looks_like_funding_csv, read_funding_csv, store_funding
    from data.loaders import load

    _require_file(file)
    # Standard input can be read only once: funding rates from it need --funding.
    if funding or (str(file) != "-" and looks_like_funding_csv(file)):
        rates = read_funding_csv(file)
        store = _store(ctx, data_dir)
        exchange, symbol = exchange or "imported", symbol or "BTC/USDT:USDT"
        merged = store_funding(store, rates, exchange, symbol, rates.attrs["source"])
        click.echo(f"imported {file.name} (funding, {len(rates)} rates {_day(rates.index[0])} "
                   f"-> {_day(rates.index[-1])}) as {exchange} {symbol}: {len(merged)} stored in "
                   f"{store.funding_path(exchange, symbol)}")
        return
    df = load(file, fmt, timeframe=timeframe, allow_dates=allow_dates)
    tf = str(df.attrs.get("timeframe") or timeframe or "")
    if not tf:
        raise DataError("cannot tell the timeframe of the file", source=file.name,
                        hint="pass --timeframe, e.g. --timeframe 1d")
    found_fmt = str(df.attrs.get("format") or fmt or "canonical")
    exchange = exchange or _FORMAT_EXCHANGE.get(found_fmt, "imported")
    symbol = symbol or ("BTC/USDT" if found_fmt == "binance" else "BTC/USD")
    report = df.attrs.get("validation")
    for w in getattr(report, "warnings", []):
        click.echo(f"warning: {w}", err=True)
    store = _store(ctx, data_dir)
    # The count of new candles comes from the locked merge: another import may run meanwhile.
    merged = store.append(df, exchange, symbol, tf, source=f"import of {file.name}",
                          allow_gap=allow_gap)
    click.echo(
        f"imported {file.name} ({found_fmt}, {len(df)} candles {_day(df.index[0])} -> "
        f"{_day(df.index[-1])}) as {exchange} {symbol} {tf}: {merged.attrs['added']} new, "
        f"{len(merged)} stored in {store.path(exchange, symbol, tf)}"
    )


@data.command("info")
@_data_dir_option
@click.pass_context
def info_cmd(ctx: click.Context, data_dir: Path | None) -> None:
    """What is stored (span, rows, gaps), and what the default data is."""
    from data.bundled import datasets
    from data.default import describe_default

    store = _store(ctx, data_dir)
    all_entries = store.list()
    entries = [e for e in all_entries if not e.error]
    if not all_entries:
        click.echo(f"store {store.root}: empty")
    elif entries:
        click.echo(f"store {store.root}:")
        header = ("exchange", "symbol", "tf", "start", "end", "rows", "gaps", "size")
        rows = [
            (
                e.exchange, e.symbol, e.timeframe, _day(e.start), _day(e.end), f"{e.rows:,}",
                f"{e.gaps} (largest {e.largest_gap} bars)" if e.gaps else "none",
                _size(e.size),
            )
            for e in entries
        ]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, *rows]:
            click.echo("  " + "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))
    click.echo("bundled with the package (real daily candles, SHA-256 checked on load; "
               "select with --dataset NAME):")
    for key, ds in datasets().items():
        click.echo(f"  {key:<9} {ds.exchange} {ds.symbol} {ds.timeframe}, {ds.start} -> "
                   f"{ds.end}, {ds.rows:,} rows  {ds.path}")
        click.echo(f"            origin {ds.origin['repository']} ({ds.origin['path']}); "
                   f"terms: {ds.licence}")
    damaged = [e for e in all_entries if e.error]
    if damaged and not entries:
        click.echo(f"store {store.root}: no readable series")
    for e in damaged:
        click.secho(f"DAMAGED: {e.path} ({e.exchange} {e.symbol} {e.timeframe}, {_size(e.size)}): "
                    f"{e.error}", fg="red", err=True)
        click.echo(f"  repair: {e.repair}", err=True)
    try:
        click.echo(describe_default(store))
    except DataError as exc:
        click.echo(f"default data: none usable: {exc}")
    if damaged:
        ctx.exit(2)


@data.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Force the file format (default: detected from the content).")
@click.option("--gaps", type=click.Choice(["error", "warn", "keep"]), default="warn",
              show_default=True, help="Whether missing bars are errors, warnings or accepted.")
@click.option("--timeframe", default=None, callback=_check_timeframe,
              help="Expected timeframe (default: inferred).")
@_allow_dates_option
@click.pass_context
def validate_cmd(ctx: click.Context, file: Path, fmt: str | None, gaps: str,
                 timeframe: str | None, allow_dates: bool) -> None:
    """Check FILE ('-' for standard input) and print the validation report (exit 2 when it
    has errors)."""
    _require_file(file)
    report = _full_report(file, fmt, gaps, timeframe, allow_dates)
    click.echo(report.summary())
    if not report.ok:
        ctx.exit(2)


@data.command("resample")
@click.argument("source", metavar="FILE_OR_STORED")
@click.option("--to", "to", required=True, callback=_check_timeframe,
              help="Target timeframe, e.g. 1w (weekly bars open Monday 00:00 UTC).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here (.csv or .parquet); default: CSV on standard output.")
@click.option("--keep-incomplete", is_flag=True,
              help="Keep a still-forming last bar (dropped by default).")
@_data_dir_option
@click.pass_context
def resample_cmd(ctx: click.Context, source: str, to: str, output: Path | None,
                 keep_incomplete: bool, data_dir: Path | None) -> None:
    """Resample a file, or a stored series given as EXCHANGE:SYMBOL:TIMEFRAME
    (e.g. binance:BTC/USDT:1d), to a coarser timeframe."""
    from data.resample import resample

    if output is not None:
        _check_output_file(output)  # before the work, not after it
    df = _load_source(ctx, source, data_dir)
    out = resample(df, to, incomplete="mark" if keep_incomplete else "drop")
    note = " (last bar still forming)" if out.attrs.get("incomplete_last") else ""
    msg = (f"resampled {len(df):,} {df.attrs.get('timeframe')} bars to {len(out):,} {to} "
           f"bars{note}")
    if output is None:
        try:
            _write_csv(out, sys.stdout)
        except BrokenPipeError:  # e.g. piped into `head`: the reader has what it wants
            sys.stderr.close()
            return
        click.echo(msg, err=True)
        return
    if output.suffix.lower() == ".parquet":
        out.to_parquet(output)
    elif output.suffix.lower() in (".csv", ".gz"):
        _write_csv(out, output)
    else:
        raise click.BadParameter(f"unknown output type {output.suffix!r}; use .csv or .parquet",
                                 param_hint="'-o'")
    click.echo(f"{msg}; wrote {output}")


def _check_output_file(output: Path) -> None:
    """Refuse an output path whose folder is missing or not writable (exit 2, naming -o)."""
    import os

    if output.suffix.lower() not in (".csv", ".gz", ".parquet"):
        raise click.BadParameter(f"unknown output type {output.suffix!r}; use .csv or .parquet",
                                 param_hint="'-o'")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise click.BadParameter(f"folder {parent} does not exist; create it first",
                                 param_hint="'-o'")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise click.BadParameter(f"folder {parent} is not writable", param_hint="'-o'")


def _require_file(file: Path) -> None:
    if str(file) == "-":
        return  # standard input
    if not file.exists():
        raise DataError("file not found", source=str(file),
                        hint="check the path; 'btc-backtest data info' lists stored data")
    if file.is_dir():
        raise DataError("is a directory, not a candle file", source=str(file))


def _load_source(ctx: click.Context, source: str, data_dir: Path | None) -> pd.DataFrame:
    path = Path(source)
    if path.exists():
        from data.loaders import load

        return load(path)
    parts = source.split(":")
    if len(parts) == 3 and all(parts):
        exchange, symbol, tf = parts
        return _store(ctx, data_dir).read(exchange, symbol, tf)
    raise DataError(
        f"{source!r} is neither a file nor a stored series",
        hint="give a file path, or EXCHANGE:SYMBOL:TIMEFRAME such as binance:BTC/USDT:1d "
        "(see 'btc-backtest data info')",
    )


def _write_csv(df: pd.DataFrame, where: object) -> None:
    out = df.copy()
    out.index = out.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.index.name = "timestamp"
    out.to_csv(where)  # shortest round-trip repr of each float: no precision lost


def _full_report(file: Path, fmt: str | None, gaps: str, timeframe: str | None,
                 allow_dates: bool = False):
    """The validation report of ``file`` with *every* problem listed (not just the first)."""
    from data.loaders import validate_file

    return validate_file(file, fmt, gaps=gaps, timeframe=timeframe, allow_dates=allow_dates)


COMMANDS: list[click.Command] = [data]
