"""``btc-backtest run | outlook | strategies | report``: the main job and its companions.

``btc-backtest run`` with no arguments is the main job: both built-in strategies with default
parameters on the default BTC data (see :mod:`data.default`), written as a report folder
(``report.html``, PNG charts, one saved result per strategy) plus a summary table on the terminal.
"""

from __future__ import annotations

import math
import sys
import time
import webbrowser
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pandas as pd

import backtests
from backtests.config import ENGINES, MODES, SIZINGS, BacktestConfig, ConfigError
from backtests.job import Timings, run_job
from data.frame import DataError, parse_timeframe
from strategies.base import ParamError, Strategy
from strategies.loader import StrategyLoadError, builtin_strategies, load_strategy

# --- data selection --------------------------------------------------------------------------


def _parse_date(value: str | None, option: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise click.BadParameter(
            f"{value!r} is not a date; use YYYY-MM-DD or an ISO timestamp", param_hint=option
        ) from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _announce(message: str) -> None:
    # Notices (the sample-data warning) must stand out; the rest is plain progress.
    notice = message.startswith("NOTICE")
    click.secho(message, fg="yellow" if notice else None, bold=notice, err=True)


def load_data(
    data_file: str | None,
    data_dir: str | None,
    timeframe: str | None,
    start: str | None,
    end: str | None,
    *,
    offline: bool = False,
) -> tuple[pd.DataFrame, str]:
    """Resolve the candles for a command: the file or default data, resampled and sliced.

    Returns the canonical frame and a one-line description of its origin.

    Raises:
        click.BadParameter / click.UsageError: bad dates or options.
        DataError: missing/invalid file, impossible timeframe, empty range.
    """
    from data.default import resolve_default_data
    from data.resample import resample, source_timeframe
    from data.store import DataStore

    t0 = _parse_date(start, "--start")
    t1 = _parse_date(end, "--end")
    if t0 is not None and t1 is not None and t0 > t1:
        raise click.UsageError(f"--start {start} is after --end {end}")
    if timeframe is not None:
        parse_timeframe(timeframe)  # a clear error before any loading

    if data_file is not None and not Path(data_file).exists():
        raise DataError(f"data file {data_file} not found",
                        hint="check the path, or omit --data to use the default data")
    store = DataStore(data_dir) if data_dir else None
    # resolve_default_data announces each step itself (the sample's notice included).
    df, origin = resolve_default_data(data_file, store=store, allow_download=not offline,
                                      echo=_announce)
    desc = origin.description

    if timeframe is not None:
        src = source_timeframe(df)
        if src != timeframe:
            df = resample(df, timeframe, incomplete="drop")
            desc += f", resampled {src} -> {timeframe}"

    if t0 is not None or t1 is not None:
        span = f"{df.index[0]:%Y-%m-%d} to {df.index[-1]:%Y-%m-%d}" if len(df) else "nothing"
        attrs = dict(df.attrs)
        mask = pd.Series(True, index=df.index)
        if t0 is not None:
            mask &= df.index >= t0
        if t1 is not None:
            mask &= df.index <= t1
        df = df[mask.to_numpy()]
        df.attrs = attrs
        if len(df) == 0:
            raise DataError(
                f"no candles between {start or 'the start'} and {end or 'the end'}",
                hint=f"the data spans {span}",
            )
        desc += f", {df.index[0]:%Y-%m-%d} to {df.index[-1]:%Y-%m-%d}"
    if len(df) < 2:
        raise DataError(f"only {len(df)} candle(s) selected: a backtest needs at least 2",
                        hint="widen --start/--end")
    return df, desc


# --- strategies and parameters ---------------------------------------------------------------


def resolve_strategies(specs: tuple[str, ...]) -> list[type[Strategy]]:
    """Strategy classes for ``--strategy`` values (names, ``file.py:Class``, or ``all``)."""
    classes: list[type[Strategy]] = []
    for spec in specs or ("all",):
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            if part == "all":
                classes.extend(builtin_strategies().values())
                continue
            try:
                classes.append(load_strategy(part))
            except StrategyLoadError as exc:
                raise click.BadParameter(str(exc), param_hint="--strategy") from None
    unique: dict[str, type[Strategy]] = {}
    for cls in classes:
        unique.setdefault(cls.name, cls)
    return list(unique.values())


def split_params(
    pairs: tuple[str, ...], classes: list[type[Strategy]]
) -> dict[str, dict[str, str]]:
    """Assign ``--param`` values to strategies.

    ``key=value`` goes to every selected strategy that declares ``key``; ``name.key=value`` to
    strategy ``name`` only. A key no selected strategy declares is an error listing the valid
    keys.
    """
    out: dict[str, dict[str, str]] = {cls.name: {} for cls in classes}
    by_name = {cls.name: cls for cls in classes}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--param")
        target, dot, short = key.rpartition(".")
        if dot:
            if target not in by_name:
                raise click.BadParameter(
                    f"{pair!r} names strategy {target!r}, which is not selected "
                    f"(selected: {', '.join(by_name)})", param_hint="--param")
            if short not in by_name[target].params:
                valid = ", ".join(sorted(by_name[target].params))
                raise click.BadParameter(
                    f"unknown parameter {short!r} for strategy {target!r}; valid: {valid}",
                    param_hint="--param")
            out[target][short] = value
            continue
        owners = [cls.name for cls in classes if key in cls.params]
        if not owners:
            valid = "; ".join(f"{cls.name}: {', '.join(sorted(cls.params))}" for cls in classes)
            raise click.BadParameter(f"unknown parameter {key!r}; valid: {valid}",
                                     param_hint="--param")
        for name in owners:
            out[name][key] = value
    return out


def build_strategies(specs: tuple[str, ...], pairs: tuple[str, ...]) -> list[Strategy]:
    """Instantiate the selected strategies with their ``--param`` values (validated)."""
    classes = resolve_strategies(specs)
    params = split_params(pairs, classes)
    strategies = []
    for cls in classes:
        try:
            strategies.append(cls(**params[cls.name]))
        except ParamError as exc:
            raise click.BadParameter(str(exc), param_hint="--param") from None
    return strategies


# --- terminal output -------------------------------------------------------------------------


def _num(value: Any, fmt: str) -> str:
    """``value`` formatted with ``fmt``; a missing or non-finite value as n/a / inf, padded to
    the same width so that table columns stay aligned."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        text = "n/a" if value is None or math.isnan(value) else ("inf" if value > 0 else "-inf")
        width = fmt.split(".")[0].lstrip("<>^")
        return f"{text:>{width}}" if width.isdigit() else text
    return format(value, fmt)


def summary_table(results: list) -> str:
    """A fixed-width table: return, max drawdown, Sharpe, trades, liquidations, buy & hold."""
    head = (f"{'strategy':<18} {'return %':>10} {'max DD %':>9} {'Sharpe':>7} {'trades':>7} "
            f"{'win %':>6} {'liq.':>5} {'B&H %':>10}")
    lines = [head, "-" * len(head)]
    for r in results:
        m = r.metrics
        lines.append(
            f"{r.strategy:<18.18} {_num(m.get('total_return_pct'), '10.2f')} "
            f"{_num(m.get('max_drawdown_pct'), '9.2f')} {_num(m.get('sharpe'), '7.2f')} "
            f"{int(m.get('n_trades', 0)):>7d} {_num(m.get('win_rate_pct'), '6.1f')} "
            f"{int(m.get('n_liquidations', 0)):>5d} {_num(m.get('buy_hold_return_pct'), '10.2f')}"
        )
    return "\n".join(lines)


def _default_out() -> Path:
    return Path("reports") / datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S")


# --- commands --------------------------------------------------------------------------------

_data_options = [
    click.option("--data", "data_file", type=click.Path(dir_okay=False), default=None,
                 help="Candle file (any supported format). Default: the default BTC data."),
    click.option("--data-dir", envvar="BTC_BACKTEST_DATA", default=None,
                 type=click.Path(file_okay=False),
                 help="Local candle store (env BTC_BACKTEST_DATA)."),
    click.option("--timeframe", default=None,
                 help="Resample to this timeframe first (e.g. 4h, 1d, 1w)."),
    click.option("--offline", is_flag=True,
                 help="Never download; use the store or the bundled sample."),
]


_started = False


def data_options(func: Any) -> Any:
    """Decorate a click command with the shared data options (source, file, store, dates...)."""
    for option in reversed(_data_options):
        func = option(func)
    return func


@click.command("run")
@click.option("--strategy", "-s", "strategy_specs", multiple=True, default=("all",),
              show_default=True,
              help="Strategy name, path/to/file.py:ClassName, or 'all' (repeat or comma-separate).")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Strategy parameter (repeatable); 'name.key=value' targets one strategy.")
@data_options
@click.option("--start", default=None, help="First bar to use (YYYY-MM-DD, UTC).")
@click.option("--end", default=None, help="Last bar to use (YYYY-MM-DD, UTC).")
@click.option("--engine", type=click.Choice(ENGINES), default="fast", show_default=True)
@click.option("--cash", type=float, default=10_000.0, show_default=True,
              help="Starting equity, quote currency.")
@click.option("--commission", type=float, default=0.001, show_default=True,
              help="Fee per side, fraction of notional (0.001 = 0.1 %).")
@click.option("--slippage", "slippage_bps", type=float, default=0.0, show_default=True,
              help="Adverse slippage, basis points.")
@click.option("--leverage", type=float, default=1.0, show_default=True,
              help="Notional / margin (isolated margin; liquidation is simulated).")
@click.option("--mode", type=click.Choice(MODES), default="both", show_default=True,
              help="long (long-only), short (short-only) or both.")
@click.option("--sizing", type=click.Choice(SIZINGS), default="percent", show_default=True)
@click.option("--size", type=float, default=1.0, show_default=True,
              help="percent/risk: fraction of equity; fixed: BTC.")
@click.option("--funding", "funding_rate", type=float, default=0.0, show_default=True,
              help="Funding rate per 8 h, fraction of notional (perpetuals).")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Report folder. Default: reports/run-<UTC time>.")
@click.option("--no-png", is_flag=True, help="Skip the PNG charts.")
@click.option("--open", "open_report", is_flag=True, help="Open the HTML report when done.")
def run_command(
    strategy_specs: tuple[str, ...], params: tuple[str, ...], data_file: str | None,
    data_dir: str | None, timeframe: str | None, offline: bool, start: str | None,
    end: str | None, engine: str, cash: float, commission: float, slippage_bps: float,
    leverage: float, mode: str, sizing: str, size: float, funding_rate: float,
    out_dir: str | None, no_png: bool, open_report: bool,
) -> None:
    """Backtest strategies on BTC data and write an HTML + PNG report (the main job)."""
    from backtests.reports.write import write_report

    timings = Timings()
    strategies = build_strategies(strategy_specs, params)
    try:
        config = BacktestConfig(cash=cash, commission=commission, slippage_bps=slippage_bps,
                                leverage=leverage, mode=mode, sizing=sizing, size=size,
                                funding_rate=funding_rate, engine=engine)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None

    t0 = time.perf_counter()
    global _started
    if not _started:  # a process's first command pays the imports; later ones do not
        timings.startup = t0 - backtests.IMPORTED_AT
        _started = True
    df, origin = load_data(data_file, data_dir, timeframe, start, end, offline=offline)
    timings.load = time.perf_counter() - t0
    click.echo(f"data: {origin}: {len(df):,} bars {df.index[0]:%Y-%m-%d} -> "
               f"{df.index[-1]:%Y-%m-%d}", err=True)

    steps = ["analysis"] + [s.name for s in strategies]
    label = f"backtesting {len(strategies)} strateg{'y' if len(strategies) == 1 else 'ies'}"
    with click.progressbar(length=len(steps), label=label, file=sys.stderr,
                           show_pos=True, item_show_func=lambda s: s) as bar:
        done: list[str] = []

        def on_step(label: str) -> None:
            if done:
                bar.update(1, done[-1])
            done.append(label)

        results = run_job(df, strategies, config, origin=origin, timings=timings,
                          on_step=on_step)
        bar.update(1, done[-1] if done else None)

    out = Path(out_dir) if out_dir else _default_out()
    t0 = time.perf_counter()
    paths = write_report(results, out, png=not no_png)
    timings.rendering = time.perf_counter() - t0

    click.echo(summary_table(results))
    click.echo(f"\nreport: {paths['html']}")
    click.echo(f"timing: {timings.line()}", err=True)
    if open_report:
        webbrowser.open(Path(paths["html"]).resolve().as_uri())


@click.command("outlook")
@click.option("--at", "at", default=None, help="As of this date (YYYY-MM-DD); default: last bar.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@data_options
def outlook_command(at: str | None, as_json: bool, data_file: str | None, data_dir: str | None,
                    timeframe: str | None, offline: bool) -> None:
    """The technical outlook (levels, RSI, 200-week EMA, trend) as of a date."""
    import json

    from indicators.outlook import outlook

    df, _origin = load_data(data_file, data_dir, timeframe, None, None, offline=offline)
    when = _parse_date(at, "--at")
    if when is not None and not (df.index[0] <= when):
        raise DataError(f"--at {at} is before the data starts ({df.index[0]:%Y-%m-%d})",
                        hint="choose a later date")
    if when is not None and when > df.index[-1] + pd.Timedelta(days=1):
        raise DataError(f"--at {at} is after the data ends ({df.index[-1]:%Y-%m-%d})",
                        hint="choose an earlier date or update the data")
    view = outlook(df, at=when)
    if as_json:
        click.echo(json.dumps(view.to_dict(), indent=2, allow_nan=False))
    else:
        click.echo(view.text())


@click.command("strategies")
def strategies_command() -> None:
    """List the built-in strategies and their parameters (default and meaning)."""
    for cls in builtin_strategies().values():
        click.secho(f"{cls.name}", bold=True, nl=False)
        click.echo(f": {cls.description}")
        width = max((len(k) for k in cls.params), default=0)
        for key, spec in cls.params.items():
            extra = f" [{'|'.join(map(str, spec.choices))}]" if spec.choices else ""
            click.echo(f"  {key:<{width}}  {spec.type.__name__:<5} default {spec.default!r:<10}"
                       f" {spec.help}{extra}")
        click.echo()
    click.echo("Your own: --strategy path/to/file.py:ClassName (a strategies.Strategy subclass).")


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Report folder. Default: next to the first result.")
@click.option("--no-png", is_flag=True, help="Skip the PNG charts.")
def report_command(results: tuple[str, ...], out_dir: str | None, no_png: bool) -> None:
    """Re-render a report from saved results (a run's folder or result folders)."""
    from backtests.reports.write import load_results, write_report

    loaded = [r for item in results for r in load_results(item)]
    out = Path(out_dir) if out_dir else Path(results[0]) / "rerendered"
    paths = write_report(loaded, out, png=not no_png, save_results=False)
    click.echo(summary_table(loaded))
    click.echo(f"\nreport: {paths['html']}")


COMMANDS = [run_command, outlook_command, strategies_command, report_command]
