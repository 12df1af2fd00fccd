"""``btc-backtest sweep`` and ``btc-backtest audit``: honest tuning from the command line.

Examples::

    btc-backtest sweep oversold_bounce --grid rsi_period=7:21:1 --grid oversold=20,25,30,35
    btc-backtest sweep my_rules.py:MyRules --random 500 --metric sortino --workers 2
    btc-backtest sweep oversold_bounce --random 10000 --scheduler tcp://10.0.0.5:8786
    btc-backtest audit oversold_bounce --cuts 40
    btc-backtest audit path/to/file.py:ClassName --data candles.csv
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import sys
from pathlib import Path
from typing import Any

import click

from data.frame import DataError


def registered_strategies() -> dict[str, type]:
    """Built-in strategies by name: from ``strategies.loader`` when it offers a registry, else
    every :class:`~strategies.base.Strategy` subclass defined in the ``strategies`` package."""
    import strategies
    from strategies.base import Strategy

    if importlib.util.find_spec("strategies.loader") is not None:
        loader = importlib.import_module("strategies.loader")
        for attr in ("builtin_strategies", "registered_strategies", "registry", "REGISTRY"):
            obj = getattr(loader, attr, None)
            reg = obj() if callable(obj) else obj
            if isinstance(reg, dict) and reg:
                return dict(reg)
    found: dict[str, type] = {}
    for mod in pkgutil.iter_modules(strategies.__path__):
        if mod.name in ("base", "loader") or mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"strategies.{mod.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Strategy) and obj is not Strategy and \
                    obj.__module__ == module.__name__:
                found[obj.name] = obj
    return dict(sorted(found.items()))


def _load_from_file(spec: str) -> type:
    from strategies.base import Strategy

    path_s, _, cls_name = spec.rpartition(":")
    path = Path(path_s)
    if not path.is_file():
        raise click.BadParameter(f"strategy file {path} not found", param_hint="STRATEGY")
    mod_name = f"user_strategy_{abs(hash(str(path.resolve())))}"
    mspec = importlib.util.spec_from_file_location(mod_name, path)
    if mspec is None or mspec.loader is None:
        raise click.BadParameter(f"{path} is not a Python file", param_hint="STRATEGY")
    module = importlib.util.module_from_spec(mspec)
    sys.modules[mod_name] = module  # so that worker processes (fork) can unpickle the class
    mspec.loader.exec_module(module)
    cls = getattr(module, cls_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        names = [n for n, o in inspect.getmembers(module, inspect.isclass)
                 if issubclass(o, Strategy) and o is not Strategy]
        raise click.BadParameter(
            f"{path} has no Strategy subclass named {cls_name!r}; found: "
            f"{', '.join(names) or 'none'}", param_hint="STRATEGY")
    return cls


def resolve_strategy(spec: str) -> type:
    """A strategy class from a registered name or ``path/to/file.py:ClassName``."""
    if importlib.util.find_spec("strategies.loader") is not None:
        loader = importlib.import_module("strategies.loader")
        for attr in ("load_strategy", "resolve_strategy", "resolve", "load"):
            fn = getattr(loader, attr, None)
            if callable(fn):
                try:
                    return fn(spec)
                except (LookupError, ValueError, ImportError, OSError) as exc:
                    raise click.BadParameter(str(exc), param_hint="STRATEGY") from None
    if ":" in spec and spec.rpartition(":")[0].endswith(".py"):
        return _load_from_file(spec)
    reg = registered_strategies()
    if spec not in reg:
        raise click.BadParameter(
            f"unknown strategy {spec!r}; registered: {', '.join(reg) or 'none'} "
            "(or give path/to/file.py:ClassName)", param_hint="STRATEGY")
    return reg[spec]


def _load_data(data_file: str | None) -> Any:
    from data.default import resolve_default_data

    df, _ = resolve_default_data(data_file, echo=lambda m: click.echo(m, err=True))
    return df


def _fixed_params(values: tuple[str, ...]) -> dict[str, Any]:
    from backtests.sweep import parse_axis

    out = {}
    for v in values:
        key, vals = parse_axis(v)
        if len(vals) != 1:
            raise click.BadParameter(f"{v!r}: --param takes one value", param_hint="--param")
        out[key] = vals[0]
    return out


def _random_ranges(cls: type, axes: dict[str, list[Any]]) -> tuple[dict[str, Any], list[str]]:
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


@click.command("sweep")
@click.argument("strategy")
@click.option("--grid", "grid_specs", multiple=True, metavar="KEY=START:STOP:STEP|KEY=A,B,C",
              help="A parameter axis (stop inclusive). Repeat for each parameter.")
@click.option("--random", "n_random", type=int, default=None, metavar="N",
              help="Sample N distinct random sets (from the --grid axes' ranges, else from the "
                   "declared parameter bounds) instead of the full grid.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --random.")
@click.option("--param", "fixed", multiple=True, metavar="KEY=VALUE",
              help="A parameter held fixed in every set.")
@click.option("--metric", default="sharpe", show_default=True,
              help="Metric to rank by (highest first).")
@click.option("--workers", type=int, default=None, help="Local worker processes (default: "
              "all cores; 1 runs in this process).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on a Dask distributed cluster (e.g. tcp://host:8786).")
@click.option("--data", "data_file", type=click.Path(dir_okay=False), default=None,
              help="Candle file (any supported format); default: the default data set.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the saved sweep and report.html (default: "
                   "sweeps/<strategy>).")
@click.option("--top", type=int, default=10, show_default=True, help="Rows to print.")
@click.option("--x", "x_param", default=None, help="Heatmap x parameter.")
@click.option("--y", "y_param", default=None, help="Heatmap y parameter.")
@click.option("--cash", type=float, default=10_000.0, show_default=True)
@click.option("--commission", type=float, default=0.001, show_default=True,
              help="Fraction per side (0.001 = 0.1 %).")
@click.option("--slippage-bps", type=float, default=0.0, show_default=True)
@click.option("--leverage", type=float, default=1.0, show_default=True)
@click.option("--mode", type=click.Choice(["long", "short", "both"]), default="long",
              show_default=True)
def sweep(strategy: str, grid_specs: tuple[str, ...], n_random: int | None, seed: int,
          fixed: tuple[str, ...], metric: str, workers: int | None, scheduler: str | None,
          data_file: str | None, out_dir: str | None, top: int, x_param: str | None,
          y_param: str | None, cash: float, commission: float, slippage_bps: float,
          leverage: float, mode: str) -> None:
    """Backtest STRATEGY over a parameter grid or random sets; rank, judge (DSR, PBO), save."""
    from tqdm import tqdm

    from backtests.config import BacktestConfig, ConfigError
    from backtests.sweep import SWEEP_METRICS, grid, parse_grid, random_space, run_sweep
    from backtests.sweep import write_report as write_sweep_report

    cls = resolve_strategy(strategy)
    if metric not in SWEEP_METRICS:
        raise click.BadParameter(f"{metric!r}; choose one of {', '.join(SWEEP_METRICS)}",
                                 param_hint="--metric")
    if not grid_specs and n_random is None:
        raise click.UsageError("give at least one --grid axis or --random N")
    try:
        axes = parse_grid(grid_specs)
        base = _fixed_params(fixed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--grid/--param") from None
    unknown = sorted((set(axes) | set(base)) - set(cls.params))
    if unknown:
        raise click.BadParameter(
            f"unknown parameter(s) {', '.join(unknown)} for {cls.name!r}; valid: "
            f"{', '.join(cls.params)}", param_hint="--grid/--param")
    if n_random is not None:
        ranges, integer = _random_ranges(cls, axes)
        try:
            space = random_space(n_random, ranges, seed=seed, integer=integer)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--random") from None
    else:
        space = grid(axes)
    space = [{**base, **p} for p in space]
    try:
        config = BacktestConfig(cash=cash, commission=commission, slippage_bps=slippage_bps,
                                leverage=leverage, mode=mode)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    df = _load_data(data_file)
    where = f"dask {scheduler}" if scheduler else f"{workers or 'all'} worker(s)"
    click.echo(f"sweep: {cls.name}, {len(space)} parameter sets, {len(df)} bars, {where}",
               err=True)
    bar = tqdm(total=len(space), unit="set", file=sys.stderr, disable=None, leave=False)

    def progress(done: int, total: int) -> None:
        bar.n = done
        bar.refresh()

    try:
        res = run_sweep(df, cls, space, config, metric=metric, workers=workers,
                        scheduler=scheduler, progress=progress)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    finally:
        bar.close()
    out = Path(out_dir) if out_dir else Path("sweeps") / cls.name
    res.save(out)
    report = write_sweep_report(res, out / "report.html", x=x_param, y=y_param)
    cols = [*res.param_names, "sharpe", "total_return_pct", "max_drawdown_pct", "n_trades"]
    if metric not in cols:
        cols.append(metric)
    with_pd_opts = res.table.head(top)[cols].to_string(index=False, float_format="{:.3f}".format)
    click.echo(with_pd_opts)
    o = res.overfit
    if "dsr" in o:
        click.echo(f"deflated Sharpe ratio of the best: {o['dsr']:.3f} over {o['n_trials']} "
                   f"trials (PSR {o['psr']:.3f})")
    if "pbo" in o:
        click.echo(f"probability of backtest overfitting: {o['pbo']:.2f} "
                   f"({o['pbo_splits']} CSCV blocks)")
    click.echo(f"{len(space)} sets in {res.elapsed_s:.2f} s; saved {out}; report {report}")


@click.command("audit")
@click.argument("strategy")
@click.option("--data", "data_file", type=click.Path(dir_okay=False), default=None,
              help="Candle file; default: the default data set.")
@click.option("--cuts", type=click.IntRange(1, 10_000), default=25, show_default=True,
              help="Number of cut points (truncations) to compare.")
@click.option("--param", "fixed", multiple=True, metavar="KEY=VALUE",
              help="A strategy parameter (default values otherwise).")
@click.option("--no-trades", is_flag=True, help="Compare signals and indicators only.")
def audit(strategy: str, data_file: str | None, cuts: int, fixed: tuple[str, ...],
          no_trades: bool) -> None:
    """Check STRATEGY for look-ahead: re-run it on truncated data and report every signal,
    indicator value or trade that changes when the future is removed (exit 1 if any)."""
    from backtests.audit import audit as run_audit

    cls = resolve_strategy(strategy)
    try:
        params = _fixed_params(fixed)
        strat = cls(**params)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--param") from None
    df = _load_data(data_file)
    if len(df) < 3:
        raise DataError(f"only {len(df)} bars: an audit needs at least 3")
    rep = run_audit(df, strat, cut_points=cuts, check_trades=not no_trades)
    click.echo(rep.summary())
    if not rep.passed:
        sys.exit(1)


COMMANDS = [sweep, audit]
