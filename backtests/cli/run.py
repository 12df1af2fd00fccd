"""``btc-backtest run | outlook | strategies | report``: the main job and its companions.

``btc-backtest run`` with no arguments is the main job: both built-in strategies with default
parameters on the default BTC data (see :mod:`data.default`), written as a report folder
(``report.html``, PNG charts, one saved result per strategy) plus a summary table on the terminal.

The report modules are imported inside the commands that write reports: a measured start-up
cost, see :mod:`backtests.cli.tuning`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import webbrowser
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pandas as pd

import backtests
from backtests._files import check_output_folder
from backtests.cli.options import (
    announce,
    config_from_options,
    config_options,
    data_options,
    force_option,
    param_option,
    strategy_params,
    warn_capped_size,
)
from backtests.config import BacktestConfig
from backtests.job import Timings, run_job
from backtests.reports import PNG_DEFAULT
from backtests.reports.format import terminal
from backtests.story import move_lines
from data.frame import DataError, parse_timeframe, timeframe_of
from data.funding import funding_schedule, read_funding_csv, stored_funding
from data.resample import WEEK_TIMEFRAMES
from data.select import parse_time, select_candles
from data.store import DataStore
from strategies.base import ParamError, Strategy
from strategies.loader import StrategyLoadError, builtin_strategies, load_strategy

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


def build_strategies(specs: tuple[str, ...], pairs: tuple[str, ...]) -> list[Strategy]:
    """Instantiate the selected strategies with their ``--param`` values (validated)."""
    classes = resolve_strategies(specs)
    if not classes:  # e.g. --strategy ",,,": say so before any data is loaded
        raise click.BadParameter(f"{', '.join(map(repr, specs))} names no strategy; use a name "
                                 "(see 'btc-backtest strategies'), path/to/file.py:ClassName or "
                                 "'all'", param_hint="--strategy")
    params = strategy_params(pairs, classes)
    strategies = []
    for cls in classes:
        try:
            strategies.append(cls(**params[cls.name]))
        except ParamError as exc:
            raise click.BadParameter(str(exc), param_hint="--param") from None
    return strategies


# --- terminal output -------------------------------------------------------------------------


def native_notes(results: list) -> list[str]:
    """Lines about the users' backtrader strategies among ``results``: the engine they ran on
    and the orders backtrader refused (sized at the signal close, short of cash at the fill)."""
    lines = []
    for res in results:
        if not res.config.get("native_backtrader"):
            continue
        lines.append(f"{res.strategy}: a backtrader strategy, run on the backtrader engine only "
                     f"(no second engine to agree with)")
        rejected = int(res.config.get("rejected_orders", 0))
        if rejected:
            lines.append(f"warning: backtrader refused {rejected} order(s) of {res.strategy} for "
                         f"lack of cash at the fill (sized at the signal bar's close, filled at "
                         f"the next open); fix: --size 0.95 leaves room for the next bar's move")
    return lines


def audit_reuse_line(results: list) -> str | None:
    """One line naming the strategies whose look-ahead verdict was reused from an earlier
    audit of identical inputs (:func:`backtests.job.lookahead_check`), else None."""
    reused = [(r.strategy, r.checks["lookahead"].get("audited_at", "?")) for r in results
              if (r.checks or {}).get("lookahead", {}).get("reused")]
    if not reused:
        return None
    return ("look-ahead audit: verdict reused (same strategy code, parameters, data and "
            "settings) for " + ", ".join(f"{name} (audited {when})" for name, when in reused)
            + "; --reaudit runs it again")


def warmup_warnings(results: list) -> list[str]:
    """The warm-up warnings of the results (:mod:`backtests.warmup`), each once, in order."""
    seen: dict[str, None] = {}
    for r in results:
        for w in r.data.get("warmup", {}).get("warnings", []):
            seen.setdefault(w, None)
    return list(seen)


def wiped_out_warnings(results: list) -> list[str]:
    """One line per strategy whose account was wiped out (``BacktestResult.wiped_out``): its
    trade count and return stop there, the bars after it test nothing."""
    lines = []
    for r in results:
        when = r.wiped_out
        if when is None:
            continue
        after = int((r.equity.index > when).sum())
        lines.append(f"{r.strategy} ({r.engine}) wiped out the account on {when:%Y-%m-%d %H:%M} "
                     f"UTC: equity {float(r.equity.iloc[-1]):.4g} is below a millionth of the "
                     f"starting cash, so no trade opens in the {after:,} bars after it")
    return lines


def summary_table(results: list) -> str:
    """A fixed-width table: return, max drawdown, Sharpe, trades, win rate, liquidations and
    final equity (money and % with thousands separators), and the net funding paid (negative =
    received; quote currency) when any strategy paid some; then buy and hold once per span (the
    same for every strategy on the same bars, so not repeated on each row)."""
    funded = any(r.metrics.get("funding_paid") for r in results)
    head = (f"{'strategy':<18} {'return %':>12} {'max DD %':>9} {'Sharpe':>7} {'trades':>7} "
            f"{'win %':>6} {'liq.':>5} {'final equity':>14}"
            + (f" {'funding':>12}" if funded else ""))
    lines = [head, "-" * len(head)]
    spans: dict[tuple, list[str]] = {}
    for r in results:
        m = r.metrics
        lines.append(
            f"{r.strategy:<18.18} {terminal(m.get('total_return_pct'), '12,.2f')} "
            f"{terminal(m.get('max_drawdown_pct'), '9,.2f')} {terminal(m.get('sharpe'), '7.2f')} "
            f"{int(m.get('n_trades', 0)):>7,d} {terminal(m.get('win_rate_pct'), '6.1f')} "
            f"{int(m.get('n_liquidations', 0)):>5,d} "
            f"{terminal(m.get('final_equity'), '14,.2f')}"
            + (f" {terminal(m.get('funding_paid'), '12,.2f')}" if funded else "")
        )
        data = getattr(r, "data", None) or {}
        key = (data.get("start"), data.get("end"), m.get("buy_hold_return_pct"))
        spans.setdefault(key, []).append(r.strategy)
    for (start, end, bh), names in spans.items():
        whose = "" if len(spans) == 1 else f" (for {', '.join(names)})"
        when = f" {str(start)[:10]} -> {str(end)[:10]}" if start and end else ""
        lines.append(f"buy and hold{when}: {terminal(bh, '+,.2f')} %{whose}")
    if funded:
        lines.append("funding: net paid by each strategy, quote currency (negative = received)")
    return "\n".join(lines)


def liquidation_lines(results: list) -> list[str]:
    """Per strategy traded with leverage above 1x: how close its trades
    came to liquidation (``liq_distance_pct``: the worst price's gap to the liquidation price,
    % of entry) and the closest trade, with its liquidation price."""
    lines = []
    for r in results:
        t = r.trades
        if "liq_distance_pct" not in t or t["liquidation_price"].isna().all():
            continue
        if float(r.config.get("leverage", 1.0)) <= 1.0:  # unlevered: only a short's 2x line
            continue
        d = t["liq_distance_pct"]
        if d.notna().sum() == 0:
            continue
        c = t.loc[d.idxmin()]
        side = "long" if c["side"] > 0 else "short"
        lines.append(
            f"{r.strategy}: {int((t['exit_reason'] == 'liquidation').sum())} of {len(t)} trades "
            f"liquidated at {c['leverage']:g}x; closest: {side} {c['entry_time']:%Y-%m-%d} at "
            f"{c['entry_price']:,.2f}, liquidation {c['liquidation_price']:,.2f}, its worst price "
            f"{max(d.min(), 0.0):.1f} % of entry away from it; median trade "
            f"{d.median():.1f} % away")
    return lines


def with_funding_series(cfg: BacktestConfig, df: pd.DataFrame, funding_data: str | None,
                        data_dir: str | None) -> BacktestConfig:
    """``cfg`` charging a real funding series: ``funding_data`` (a CSV), else the store's
    (:func:`data.funding.stored_funding`); the constant rate stays the fallback outside the
    series' span. Unchanged when there is no series. Says on stderr which one is used."""
    if funding_data is not None:
        rates = read_funding_csv(funding_data)
    else:
        rates = stored_funding(DataStore(data_dir) if data_dir else DataStore())
    if rates is None or rates.empty:
        return cfg
    sched = funding_schedule(rates, df.index, parse_timeframe(timeframe_of(df)),
                             fallback=float(cfg.funding_rate))
    click.echo(f"funding: {rates.attrs.get('source')}: {len(rates):,} rates "
               f"{rates.index[0]:%Y-%m-%d} -> {rates.index[-1]:%Y-%m-%d}; outside that "
               f"{float(cfg.funding_rate):g} per 8 h", err=True)
    return dataclasses.replace(cfg, funding_rate=sched)


def _default_out() -> Path:
    return Path("reports") / datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S")


# --- commands --------------------------------------------------------------------------------

_started = False


@click.command("run")
@click.option("--strategy", "-s", "strategy_specs", multiple=True, default=("all",),
              show_default=True,
              help="Strategy name, path/to/file.py:ClassName, or 'all' (repeat or comma-separate).")
@param_option()
@data_options(weekly_ema=True)
@config_options()
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Report folder. Default: reports/run-<UTC time>.")
@force_option()
@click.option("--png/--no-png", default=PNG_DEFAULT, show_default=True,
              help="Also write price/RSI/equity PNG charts per strategy (~0.5 s each).")
@click.option("--open", "open_report", is_flag=True, help="Open the HTML report when done.")
@click.option("--reaudit", is_flag=True,
              help="Run the look-ahead audit again even when the verdict of an audit of the "
                   "same strategy code, parameters, data and settings is saved (user cache); "
                   "the new verdict replaces it.")
@click.option("--funding-data", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Funding-rate CSV (timestamp,funding_rate) charged at its own times. "
                   "Default: the funding series in the store if there is one; --funding RATE "
                   "applies outside the series' span.")
def run_command(strategy_specs: tuple[str, ...], params: tuple[str, ...], data_file: str | None,
                data_dir: str | None, timeframe: str | None, offline: bool,
                dataset: str | None, allow_dates: bool, start: str | None,
                end: str | None, out_dir: str | None, force: bool, png: bool, open_report: bool,
                reaudit: bool, funding_data: str | None, **config: Any) -> None:
    """Backtest strategies on BTC data and write an HTML report (+ PNGs with --png): the main
    job."""
    from backtests.reports.write import write_report

    timings = Timings()
    strategies = build_strategies(strategy_specs, params)
    cfg = config_from_options(config)
    out = Path(out_dir) if out_dir else _default_out()
    check_output_folder(out, force=force)  # before the work, not after it

    t0 = time.perf_counter()
    global _started
    if not _started:  # a process's first command pays the imports; later ones do not
        timings.startup = t0 - backtests.IMPORTED_AT
        _started = True
    df, origin = select_candles(data_file, data_dir, timeframe, start, end,
                                offline=offline, dataset=dataset, allow_dates=allow_dates,
                                echo=announce, keep_history=True, suggest=WEEK_TIMEFRAMES)
    timings.load = time.perf_counter() - t0
    warn_capped_size(cfg, float(df["close"].max()))
    click.echo(f"data: {origin}: {len(df):,} bars {df.index[0]:%Y-%m-%d} -> "
               f"{df.index[-1]:%Y-%m-%d}", err=True)
    cfg = with_funding_series(cfg, df, funding_data, data_dir)

    steps = ["analysis"] + [s.name for s in strategies] + ["look-ahead audit"]
    label = f"backtesting {len(strategies)} strateg{'y' if len(strategies) == 1 else 'ies'}"
    with click.progressbar(length=len(steps), label=label, file=sys.stderr,
                           show_pos=True, item_show_func=lambda s: s) as bar:
        done: list[str] = []

        def on_step(label: str) -> None:
            if done:
                bar.update(1, done[-1])
            done.append(label)

        results = run_job(df, strategies, cfg, origin=origin, timings=timings,
                          on_step=on_step, start=parse_time(start, "--start"),
                          reuse_audit=not reaudit)
        bar.update(1, done[-1] if done else None)

    t0 = time.perf_counter()
    paths = write_report(results, out, png=png, force=force,
                         command=" ".join(sys.argv[1:]))
    timings.rendering = time.perf_counter() - t0

    click.echo(summary_table(results))
    for line in liquidation_lines(results):
        click.echo(line)
    told = results[0].story if results else {}
    now = told.get("market_now", {})
    click.echo("\nMarket now: " + " ".join(now.get("lines", [now.get("note", "n/a")])))
    for line in move_lines(told.get("biggest_moves", [])):
        click.echo(line)
    for note in warmup_warnings(results) + wiped_out_warnings(results):
        click.secho(f"WARNING: {note}", fg="yellow", bold=True, err=True)
    reused = audit_reuse_line(results)
    if reused:
        click.echo(reused, err=True)
    for note in native_notes(results):
        click.secho(note, fg="yellow" if note.startswith("warning") else None, err=True)
    click.echo(f"\nreport: {paths['html']}")
    click.echo(f"timing: {timings.line()}", err=True)
    if open_report:
        webbrowser.open(Path(paths["html"]).resolve().as_uri())


@click.command("outlook")
@click.option("--at", "at", default=None,
              help="The state after the last bar that closed at or before this UTC time "
                   "(YYYY-MM-DD or YYYY-MM-DDTHH:MM); on daily bars --at 2026-02-05 is after the "
                   "2026-02-04 close. Default: the last bar.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@data_options(dates=False, weekly_ema=True)
def outlook_command(at: str | None, as_json: bool, data_file: str | None, data_dir: str | None,
                    timeframe: str | None, offline: bool, dataset: str | None,
                    allow_dates: bool) -> None:
    """The technical outlook (levels, RSI, 200-week EMA, trend) as of a date."""
    import json

    from indicators.outlook import outlook

    df, _origin = select_candles(data_file, data_dir, timeframe, offline=offline, dataset=dataset,
                                 allow_dates=allow_dates, echo=announce,
                                 suggest=WEEK_TIMEFRAMES)
    when = parse_time(at, "--at")
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
@force_option()
@click.option("--png/--no-png", default=PNG_DEFAULT, show_default=True,
              help="Also write the PNG charts.")
def report_command(results: tuple[str, ...], out_dir: str | None, force: bool,
                   png: bool) -> None:
    """Re-render a report from saved results (a run's folder or result folders, a saved sweep
    or walk-forward folder).

    A run's folder is checked against its run record first: one whole run, or refused."""
    from backtests.reports.write import load_results, rerender_tuning, tuning_kind, write_report

    tuning = [item for item in results if tuning_kind(item)]
    for item in tuning:
        out = Path(out_dir) / Path(item).name if out_dir and len(tuning) > 1 else (
            Path(out_dir) if out_dir else Path(item) / "rerendered")
        click.echo(f"{tuning_kind(item)} report: {rerender_tuning(item, out / 'report.html')}")
    runs = [item for item in results if not tuning_kind(item)]
    if not runs:
        return
    loaded = [r for item in runs for r in load_results(item)]
    out = Path(out_dir) if out_dir else Path(runs[0]) / "rerendered"
    check_output_folder(out, force=force)
    paths = write_report(loaded, out, png=png, save_results=False, force=force,
                         command=" ".join(sys.argv[1:]))
    click.echo(summary_table(loaded))
    click.echo(f"\nreport: {paths['html']}")


COMMANDS = [run_command, outlook_command, strategies_command, report_command]
