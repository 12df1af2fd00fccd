"""``btc-backtest sweep | walkforward | audit``: honest tuning from the command line.

Examples::

    btc-backtest sweep oversold_bounce --grid rsi_period=7:21:1 --grid oversold=20,25,30,35
    btc-backtest sweep my_rules.py:MyRules --random 500 --metric sortino --workers 2
    btc-backtest sweep oversold_bounce --random 10000 --scheduler tcp://10.0.0.5:8786
    btc-backtest walkforward oversold_bounce --grid rsi_period=7:21:7 --grid oversold=25,30 \\
        --train 730D --test 180D
    btc-backtest audit oversold_bounce --cuts 40
    btc-backtest audit path/to/file.py:ClassName --data candles.csv

Strategies are resolved by :func:`strategies.loader.load_strategy` and candles by
:func:`data.select.select_candles`, and the options are those of ``btc-backtest run``
(:mod:`backtests.cli.options`), with the same defaults as the API's ``BacktestConfig``. Sweeps,
walk-forward and the audit's trade comparison run on the fast engine.

Imports: the sweep, walk-forward, audit and report modules (numba kernels, plotting) are imported
inside the commands that use them, because ``backtests.cli`` loads every command group at start-up:
importing them up front measured +2.2 s on a 6 s start (``import backtests.cli``, loaded 2-core
machine, 2026-11-26) for every command, ``--help`` included.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from backtests._files import check_output_folder, replace_directory
from backtests.cli.options import (
    announce,
    config_from_options,
    config_options,
    data_options,
    force_option,
    option_group,
    param_option,
    strategy_params,
    warn_capped_size,
)
from backtests.reports.format import terminal
from data.resample import WEEK_TIMEFRAMES
from data.select import select_candles
from strategies.base import Strategy, did_you_mean
from strategies.loader import StrategyLoadError, load_strategy

Params = dict[str, Any]

# --- strategy, parameter space, engine settings ----------------------------------------------


def strategy_class(spec: str) -> type[Strategy]:
    """The Strategy subclass for a built-in name or ``path/to/file.py:ClassName``.

    Raises:
        click.BadParameter: the loader's message (unknown name, missing file or class).
    """
    try:
        return load_strategy(spec)
    except StrategyLoadError as exc:
        raise click.BadParameter(str(exc), param_hint="STRATEGY") from None


def _random_ranges(cls: type[Strategy], axes: dict[str, list[Any]]
                   ) -> tuple[dict[str, Any], list[str]]:
    """Ranges for --random: given axes (as their value lists / spans), else every declared
    parameter with bounds or choices."""
    ranges: dict[str, Any] = {}
    integer: list[str] = []
    for k, vals in axes.items():
        spec = cls.params.get(k)
        if spec is not None and spec.type in (int, float) and len(vals) > 1 and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            ranges[k] = (min(vals), max(vals))
            if spec.type is int:
                integer.append(k)
        else:
            ranges[k] = vals
    if not axes:
        for k, spec in cls.params.items():
            if spec.choices:
                ranges[k] = list(spec.choices)
            elif spec.type is bool:
                ranges[k] = [False, True]
            elif spec.type in (int, float) and spec.min is not None and spec.max is not None:
                ranges[k] = (spec.min, spec.max)
                if spec.type is int:
                    integer.append(k)
        if not ranges:
            raise click.UsageError(f"strategy {cls.name!r} declares no bounded parameter: give "
                                   "the ranges to sample with --grid key=low:high:step")
    return ranges, integer


def parameter_space(cls: type[Strategy], grid_specs: tuple[str, ...], n_random: int | None,
                    seed: int, fixed: tuple[str, ...]) -> list[Params]:
    """The parameter sets of ``--grid``/``--random``/``--param``, each validated against the
    strategy's declared parameters before any data is loaded.

    Raises:
        click.UsageError / click.BadParameter: no axis, bad spec, unknown key, invalid value.
    """
    from backtests.tuning.space import check_params, grid, parse_grid, random_space

    if not grid_specs and n_random is None:
        raise click.UsageError("give at least one --grid axis or --random N")
    try:
        axes = parse_grid(grid_specs)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--grid") from None
    base = strategy_params(fixed, [cls])[cls.name]
    unknown = sorted(set(axes) - set(cls.params))
    if unknown:
        raise click.BadParameter(
            f"unknown parameter {unknown[0]!r} for {cls.name!r}"
            + did_you_mean(unknown[0], cls.params, "parameters")
            + " (fix: `btc-backtest strategies` lists the parameters)",
            param_hint="--grid/--param")
    if n_random is not None:
        ranges, integer = _random_ranges(cls, axes)
        try:
            space = random_space(n_random, ranges, seed=seed, integer=integer)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--random") from None
    else:
        space = grid(axes)
    try:
        # Declared types (a grid of "20,25" is ints; oversold is a float parameter).
        space = [{k: cls.params[k].coerce(k, v) for k, v in {**base, **p}.items()}
                 for p in space]
        check_params(cls, space)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--grid/--param") from None
    return space


def _metric(metric: str) -> str:
    from backtests.tuning.evaluate import SWEEP_METRICS

    if metric not in SWEEP_METRICS:
        raise click.BadParameter(f"{metric!r}; choose one of {', '.join(SWEEP_METRICS)}",
                                 param_hint="--metric")
    return metric


def _out_dir(out_dir: str | None, kind: str, name: str, force: bool) -> Path:
    """The output folder, checked before any work (a folder of the user's is refused)."""
    # A user's strategy name may hold anything ("<b>toy</b>"): keep the folder name plain.
    out = Path(out_dir) if out_dir else Path(kind) / (re.sub(r"[^\w.-]+", "_", name) or "x")
    check_output_folder(out, force=force)
    return out


def _tuning_inputs(kind: str, strategy: str, metric: str, grid_specs: tuple[str, ...],
                   n_random: int | None, seed: int, params: tuple[str, ...],
                   config: dict[str, Any], out_dir: str | None, force: bool,
                   data_file: str | None, data_dir: str | None, timeframe: str | None,
                   start: str | None, end: str | None, offline: bool, dataset: str | None,
                   allow_dates: bool) -> tuple:
    """What sweep and walkforward both start from, checked in the order a user's mistakes are
    cheapest to report (strategy, metric, space, config, output folder, then the data):
    ``(strategy class, metric, parameter sets, BacktestConfig, output folder, candles, origin)``.
    """
    cls = strategy_class(strategy)
    metric = _metric(metric)
    space = parameter_space(cls, grid_specs, n_random, seed, params)
    cfg = config_from_options(config)
    out = _out_dir(out_dir, kind, cls.name, force)
    df, origin = select_candles(data_file, data_dir, timeframe, start, end, offline=offline,
                                dataset=dataset, allow_dates=allow_dates, echo=announce,
                                suggest=WEEK_TIMEFRAMES)
    warn_capped_size(cfg, float(df["close"].max()))
    return cls, metric, space, cfg, out, df, origin


def _publish(out: Path, res: Any, force: bool, write_html: Callable[[Path], Any]) -> Path:
    """Save ``res`` and its report.html into ``out`` as one whole run (replace_directory);
    return the report's path."""

    def fill(tmp: Path) -> None:
        res.save(tmp)
        write_html(tmp / "report.html")

    replace_directory(out, fill, force=force, command=" ".join(sys.argv[1:]))
    return out / "report.html"


def _progress_bar(total: int, unit: str) -> tuple[Any, Callable[[int, int], None]]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, file=sys.stderr, disable=None, leave=False)

    def progress(done: int, total_now: int) -> None:
        bar.total = total_now  # fewer than announced when conflicting sets were skipped
        bar.n = done
        bar.refresh()

    return bar, progress


# --- shared options --------------------------------------------------------------------------

_space_options = [
    click.option("--grid", "grid_specs", multiple=True,
                 metavar="KEY=START:STOP:STEP|KEY=A,B,C",
                 help="A parameter axis (stop inclusive). Repeat for each parameter."),
    click.option("--random", "n_random", type=click.IntRange(min=1), default=None, metavar="N",
                 help="Sample N distinct random sets (from the --grid axes' ranges, else from "
                      "the declared parameter bounds) instead of the full grid."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of --random."),
    param_option("A parameter held fixed in every set (repeatable)."),
    click.option("--metric", default="sharpe", show_default=True,
                 help="Metric to rank by (highest first)."),
    click.option("--workers", type=click.IntRange(min=1), default=None,
                 help="Local worker processes (default: all cores; 1 runs in this process)."),
    click.option("--scheduler", default=None, metavar="ADDRESS",
                 help="Run on a Dask distributed cluster (e.g. tcp://host:8786)."),
]

# --- sweep -----------------------------------------------------------------------------------


@click.command("sweep")
@click.argument("strategy")
@option_group(_space_options)
@data_options(weekly_ema=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the saved sweep and report.html (default: "
                   "sweeps/<strategy>).")
@force_option()
@click.option("--top", type=int, default=10, show_default=True, help="Rows to print.")
@click.option("--x", "x_param", default=None, help="Heatmap x parameter.")
@click.option("--y", "y_param", default=None, help="Heatmap y parameter.")
@config_options(exclude=("engine",))
def sweep(strategy: str, grid_specs: tuple[str, ...], n_random: int | None, seed: int,
          params: tuple[str, ...], metric: str, workers: int | None, scheduler: str | None,
          data_file: str | None, data_dir: str | None, timeframe: str | None, offline: bool,
          dataset: str | None, allow_dates: bool,
          start: str | None, end: str | None, out_dir: str | None, force: bool, top: int,
          x_param: str | None, y_param: str | None, **config: Any) -> None:
    """Backtest STRATEGY over a parameter grid or random sets; rank, judge (DSR, PBO), save."""
    from backtests.reports.sweep_page import write_sweep_report
    from backtests.tuning.sweep import run_sweep

    cls, metric, space, cfg, out, df, _origin = _tuning_inputs(
        "sweeps", strategy, metric, grid_specs, n_random, seed, params, config, out_dir, force,
        data_file, data_dir, timeframe, start, end, offline, dataset, allow_dates)
    where = f"dask {scheduler}" if scheduler else f"{workers or 'all'} worker(s)"
    click.echo(f"sweep: {cls.name}, {len(space)} parameter sets, {len(df)} bars, {where}",
               err=True)
    bar, progress = _progress_bar(len(space), "set")
    try:
        res = run_sweep(df, cls, space, cfg, metric=metric, workers=workers,
                        scheduler=scheduler, progress=progress)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    finally:
        bar.close()
    report = _publish(out, res, force,
                      lambda path: write_sweep_report(res, path, x=x_param, y=y_param))
    cols = [*res.param_names, "sharpe", "total_return_pct", "max_drawdown_pct", "n_trades"]
    if metric not in cols:
        cols.append(metric)
    types = {k: cls.params[k].type for k in res.param_names if k in cls.params}
    click.echo(table_text(res.table.head(top)[cols], types))
    if res.skipped:
        first = res.skipped[0]
        click.echo(f"skipped {len(res.skipped)} of {len(space)} sets that the strategy rejects "
                   f"(not counted as trials), e.g. {first['params']}: {first['reason']}")
    o = res.overfit
    if "note" in o:
        click.echo(o["note"])
    if "dsr" in o:
        click.echo(f"deflated Sharpe ratio of the best: {o['dsr']:.3f} over {o['n_trials']} "
                   f"trials (PSR {o['psr']:.3f}): {dsr_verdict(o['dsr'])}")
    if "pbo" in o:
        click.echo(f"probability of backtest overfitting: {o['pbo']:.2f} "
                   f"({o['pbo_splits']} CSCV blocks): {pbo_verdict(o['pbo'])}")
    click.echo(f"{len(space) - len(res.skipped)} sets in {res.elapsed_s:.2f} s; saved {out}; "
               f"report {report}")


#: Thresholds of the verdicts, the same as the sweep and walk-forward HTML reports colour by.
DSR_LUCK = 0.95
PBO_HIGH = 0.2


def dsr_verdict(dsr: float) -> str:
    """What a deflated Sharpe ratio says (below 0.95: not distinguishable from luck)."""
    if not math.isfinite(dsr):
        return "no verdict (undefined)"
    if dsr < DSR_LUCK:
        return f"not distinguishable from luck (below {DSR_LUCK})"
    return f"distinguishable from luck ({DSR_LUCK} or more)"


def pbo_verdict(pbo: float) -> str:
    """What a probability of backtest overfitting says (0.2 or more: likely overfit)."""
    if not math.isfinite(pbo):
        return "no verdict (undefined)"
    if pbo >= PBO_HIGH:
        return (f"the in-sample winner often disappoints out of sample: likely overfit "
                f"({PBO_HIGH} or more)")
    return f"low risk of overfitting (below {PBO_HIGH})"


# --- walkforward -----------------------------------------------------------------------------


class WindowLength(click.ParamType):
    """A window length: a whole number of bars (>= 2) or a positive duration (730D, 26W, 72h)."""

    name = "BARS|DURATION"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        else:
            text = str(value).strip()
        if re.fullmatch(r"[+-]?\d+", text):
            n = int(text)
            if n < 2:
                self.fail(f"{n} bars: a window needs at least 2 bars (or give a duration like "
                          "180D)", param, ctx)
            return n
        try:
            td = pd.Timedelta(text)
        except (ValueError, TypeError):
            self.fail(f"{text!r} is neither a number of bars nor a duration like 730D, 26W or "
                      "72h", param, ctx)
        if td <= pd.Timedelta(0):
            self.fail(f"{text!r}: a window must be longer than zero", param, ctx)
        return text


def _param(value: Any) -> str:
    """A parameter value as the user wrote it: ints as ints (14, not 14.0), floats short."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    return terminal(value, "g")


def table_text(table: pd.DataFrame, param_types: dict[str, type]) -> str:
    """A results table for the terminal: parameters as declared (ints as ints), counts as
    integers, percentages and money with thousands separators, ratios to 3 decimals."""
    formatters: dict[str, Callable[[Any], str]] = {}
    for col in table.columns:
        if col in param_types:
            kind = param_types[col]
            formatters[col] = (lambda v, k=kind: terminal(v, "d") if k is int else _param(v))
        elif col.startswith("n_"):
            formatters[col] = lambda v: terminal(v, "d")
        elif col.endswith("_pct") or col in ("final_equity",):
            formatters[col] = lambda v: terminal(v, ",.2f")
        else:
            formatters[col] = lambda v: terminal(v, ".3f")
    return table.to_string(index=False, formatters=formatters)


def window_table(result: Any) -> str:
    """The per-window text table: spans, chosen parameters, in-sample and out-of-sample
    selection metric, out-of-sample return and trades (and DSR/PBO when computed)."""
    from backtests.tuning.walkforward import format_span

    w, m = result.windows, result.metric
    table = pd.DataFrame({
        "#": w["window"].astype(int),
        "train": [format_span(a, b, " -> ") for a, b in zip(w["train_start"], w["train_end"],
                                                            strict=True)],
        "test": [format_span(a, b, " -> ") for a, b in zip(w["test_start"], w["test_end"],
                                                           strict=True)],
        # Column by column: iterrows would turn an int parameter into a float (14.0).
        "params": [", ".join(f"{k}={_param(w[k].iloc[i])}" for k in result.param_names)
                   for i in range(len(w))],
        f"IS {m}": [terminal(v) for v in w[f"is_{m}"]],
        f"OOS {m}": [terminal(v) for v in w[f"oos_{m}"]],
        "OOS ret %": [terminal(v, ",.2f") for v in w["oos_total_return_pct"]],
        "OOS trades": [terminal(v, "d") for v in w["oos_n_trades"]],
    })
    for col, name in (("dsr", "DSR"), ("pbo", "PBO")):
        if col in w and w[col].notna().any():
            table[name] = [terminal(v) for v in w[col]]
    return table.to_string(index=False)


_COUNT_ROWS = ("n_trades", "windows", "windows_without_trades")


def comparison_table(result: Any) -> str:
    """In-sample vs out-of-sample metrics (means over windows, trades summed) and the stitched
    out-of-sample curve's own metrics; counts print as integers, money and % with separators."""
    c = result.comparison.rename(columns={"in_sample": "in sample", "out_of_sample":
                                          "out of sample", "stitched_oos": "stitched OOS"})
    rows = {}
    for name, row in c.iterrows():
        fmt = "d" if name in _COUNT_ROWS else (",.2f" if str(name).endswith("_pct") else ".3f")
        rows[name] = [terminal(v, fmt) if not (fmt == "d" and pd.isna(v)) else "" for v in row]
    return pd.DataFrame.from_dict(rows, orient="index", columns=c.columns).to_string()


def no_trade_note(result: Any) -> str | None:
    """One line on the out-of-sample windows that made no trade, or None when all traded."""
    c = result.comparison
    if "windows_without_trades" not in c.index:
        return None
    idle = int(c.loc["windows_without_trades", "out_of_sample"])
    if not idle:
        return None
    n = int(c.loc["windows", "out_of_sample"])
    return (f"{idle} of {n} test windows made no trade: they count as 0 % in the return means; "
            f"their Sharpe, Sortino, win rate and profit factor do not exist, so those means are "
            f"over the {n - idle} windows that traded")


@click.command("walkforward")
@click.argument("strategy")
@option_group(_space_options)
@click.option("--train", required=True, type=WindowLength(),
              help="Training window: bars (e.g. 730) or a duration (730D, 104W, 72h).")
@click.option("--test", required=True, type=WindowLength(),
              help="Test (out-of-sample) window after each training window: bars or duration.")
@click.option("--step", type=WindowLength(), default=None,
              help="How far windows move (default: the test length, so test windows tile).")
@click.option("--anchored", is_flag=True,
              help="Training windows all start at the first bar and grow (else they roll).")
@data_options(weekly_ema=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the saved walk-forward and report.html (default: "
                   "walkforward/<strategy>).")
@force_option()
@config_options(exclude=("engine",))
def walkforward(strategy: str, grid_specs: tuple[str, ...], n_random: int | None, seed: int,
                params: tuple[str, ...], metric: str, workers: int | None,
                scheduler: str | None, train: int | str, test: int | str,
                step: int | str | None, anchored: bool, data_file: str | None,
                data_dir: str | None, timeframe: str | None, offline: bool,
                dataset: str | None, allow_dates: bool, start: str | None,
                end: str | None, out_dir: str | None, force: bool, **config: Any) -> None:
    """Walk-forward STRATEGY: on each training window pick the best parameter set (of --grid or
    --random) by --metric, trade it on the following test window, and stitch the
    out-of-sample results; compare them with in-sample and buy and hold, save, write HTML."""
    from backtests.reports.walkforward_page import write_walkforward_report
    from backtests.results import data_fingerprint
    from backtests.tuning.walkforward import make_windows, walk_forward

    cls, metric, space, cfg, out, df, origin = _tuning_inputs(
        "walkforward", strategy, metric, grid_specs, n_random, seed, params, config, out_dir,
        force, data_file, data_dir, timeframe, start, end, offline, dataset, allow_dates)
    try:
        wins = make_windows(df.index, train, test, anchored, step)
    except ValueError as exc:
        raise click.BadParameter(
            f"{exc} (the data runs {df.index[0]:%Y-%m-%d} to {df.index[-1]:%Y-%m-%d})",
            param_hint="--train/--test/--step") from None
    where = f"dask {scheduler}" if scheduler else f"{workers or 'all'} worker(s)"
    click.echo(f"walkforward: {cls.name}, {len(wins)} windows x {len(space)} parameter sets, "
               f"{len(df)} bars, {where}", err=True)
    bar, progress = _progress_bar(len(wins), "window")
    try:
        res = walk_forward(df, cls, space, train, test, cfg, metric=metric,
                           anchored=anchored, step=step, workers=workers, scheduler=scheduler,
                           progress=progress)
    finally:
        bar.close()
    res.settings["data"] = data_fingerprint(df, origin)
    report = _publish(out, res, force, lambda path: write_walkforward_report(res, path))

    click.echo(window_table(res))
    click.echo("\nin sample vs out of sample (means over windows; trades summed):")
    click.echo(comparison_table(res))
    note = no_trade_note(res)
    if note:
        click.echo(note)
    eq = res.oos_equity
    line = (f"\nstitched out of sample {eq.index[0]:%Y-%m-%d} -> {eq.index[-1]:%Y-%m-%d}: "
            f"{100 * (eq.iloc[-1] / eq.iloc[0] - 1):+.2f} %")
    if res.benchmark is not None and len(res.benchmark):
        bh = res.benchmark
        line += f" vs buy and hold {100 * (bh.iloc[-1] / bh.iloc[0] - 1):+.2f} %"
    click.echo(line)
    s = res.settings
    if math.isfinite(s.get("mean_dsr", math.nan)) or math.isfinite(s.get("mean_pbo", math.nan)):
        click.echo(f"selection over {s['n_sets']} trials per window: mean deflated Sharpe "
                   f"ratio {terminal(s['mean_dsr'])}: {dsr_verdict(s['mean_dsr'])}; mean "
                   f"probability of backtest overfitting {terminal(s['mean_pbo'], '.2f')}: "
                   f"{pbo_verdict(s['mean_pbo'])}")
    click.echo(f"saved {out}; report {report}")


# --- audit -----------------------------------------------------------------------------------


@click.command("audit")
@click.argument("strategy")
@data_options(weekly_ema=True)
@click.option("--cuts", type=click.IntRange(1, 10_000), default=25, show_default=True,
              help="Number of cut points (truncations) to compare.")
@param_option("A strategy parameter (repeatable; default values otherwise).")
@config_options(exclude=("engine",))
@click.option("--no-trades", is_flag=True, help="Compare signals and indicators only.")
def audit(strategy: str, data_file: str | None, data_dir: str | None, timeframe: str | None,
          offline: bool, dataset: str | None, allow_dates: bool, start: str | None,
          end: str | None, cuts: int,
          params: tuple[str, ...], no_trades: bool, **config: Any) -> None:
    """Check STRATEGY for look-ahead: re-run it on truncated data and report every signal,
    indicator value or trade that changes when the future is removed (exit 1 if any)."""
    from backtests.tuning.audit import audit as run_audit

    cls = strategy_class(strategy)
    try:
        strat = cls(**strategy_params(params, [cls])[cls.name])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--param") from None
    cfg = config_from_options(config)
    df, _origin = select_candles(data_file, data_dir, timeframe, start, end,
                                 offline=offline, dataset=dataset, allow_dates=allow_dates,
                                 echo=announce, min_bars=3, suggest=WEEK_TIMEFRAMES)
    rep = run_audit(df, strat, cut_points=cuts, config=cfg,
                    check_trades=not no_trades)
    click.echo(rep.summary())
    if not rep.passed:
        sys.exit(1)


COMMANDS = [sweep, walkforward, audit]
