"""Command-line options shared by ``run``, ``sweep``, ``walkforward`` and ``audit``, declared once.

* :func:`config_options` generates one option per :class:`~backtests.config.BacktestConfig` field,
  with the dataclass default as the option default: the command line and the API cannot drift
  (``tests/test_cli_options.py`` checks every one).
* :func:`data_options` declares where candles come from (``--data``, ``--data-dir``,
  ``--timeframe``, ``--dataset``, ``--offline``, and ``--start``/``--end`` unless
  ``dates=False``); the data themselves are chosen by :func:`data.select.select_candles`.
* :func:`strategy_params` is the one ``--param KEY=VALUE`` parser, built on
  :meth:`strategies.base.Param.coerce`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import click
import pandas as pd

from backtests.config import ENGINES, MODES, SIZINGS, BacktestConfig, ConfigError
from data.frame import DataError, parse_timeframe
from data.resample import WEEK_TIMEFRAMES
from data.select import parse_time
from strategies.base import ParamError, Strategy, did_you_mean

Decorator = Callable[[Any], Any]

#: Command-line spelling, click type and help of each BacktestConfig field. The default is not
#: here: it is read from the dataclass.
CONFIG_OPTIONS: dict[str, tuple[tuple[str, ...], Any, str]] = {
    "engine": (("--engine",), click.Choice(ENGINES),
               "fast (numba) or backtrader; both follow the same execution rules."),
    "cash": (("--cash",), float, "Starting equity, quote currency."),
    "commission": (("--commission",), float,
                   "Fee per side, fraction of notional (0.001 = 0.1 %)."),
    "slippage_bps": (("--slippage", "--slippage-bps"), float, "Adverse slippage, basis points."),
    "leverage": (("--leverage",), float,
                 "Notional / margin (isolated margin; liquidation is simulated)."),
    "maintenance_margin": (("--maintenance-margin",), float,
                           "Maintenance-margin rate, fraction of notional."),
    "liquidation_fee": (("--liquidation-fee",), float,
                        "Fee on a liquidation, fraction of notional."),
    "funding_rate": (("--funding",), float,
                     "Funding rate per 8 h, fraction of notional, paid by longs when positive."),
    "mode": (("--mode",), click.Choice(MODES),
             "long (long-only), short (short-only) or both: the strategy's short entries open "
             "shorts. The same default as the API's BacktestConfig."),
    "sizing": (("--sizing",), click.Choice(SIZINGS),
               "percent/risk: --size is a fraction of equity; fixed: --size is BTC."),
    "size": (("--size",), float, "percent/risk: fraction of equity; fixed: BTC."),
}


def config_defaults() -> dict[str, Any]:
    """``{field: default}`` of :class:`BacktestConfig` (the defaults every option shows)."""
    return {f.name: f.default for f in dataclasses.fields(BacktestConfig)
            if f.default is not dataclasses.MISSING}


def config_options(*, exclude: Iterable[str] = ()) -> Decorator:
    """Add one option per :class:`BacktestConfig` field (but ``exclude``) to a command; each
    is passed to the command under the field's name. Turn them into a config with
    :func:`config_from_options`."""
    defaults = config_defaults()
    skip = set(exclude)
    missing = set(defaults) - set(CONFIG_OPTIONS)
    if missing:  # a new config field must get a command-line spelling here
        raise RuntimeError(f"BacktestConfig field(s) without an option: {sorted(missing)}")
    options = [
        click.option(*flags, name, type=kind, default=defaults[name], show_default=True,
                     help=text)
        for name, (flags, kind, text) in CONFIG_OPTIONS.items() if name not in skip
    ]
    return option_group(options)


def config_from_options(options: dict[str, Any]) -> BacktestConfig:
    """The :class:`BacktestConfig` of a command's keyword arguments (the config fields among
    them; the rest ignored).

    Raises:
        click.UsageError: an out-of-range value (the config's own message).
    """
    given = {k: v for k, v in options.items() if k in CONFIG_OPTIONS}
    try:
        return BacktestConfig(**given)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _weekly_timeframe(ctx: click.Context, param: click.Parameter, value: str | None
                      ) -> str | None:
    """``--timeframe`` for commands that use the weekly EMA: bars must fit whole into weeks."""
    if value is None:
        return None
    try:
        td = parse_timeframe(value)
    except DataError as exc:
        raise click.BadParameter(f"{value!r}: {exc.what} (fix: {exc.hint})") from None
    week = pd.Timedelta(weeks=1)
    if week % td != pd.Timedelta(0) and td % week != pd.Timedelta(0):
        ok = list(WEEK_TIMEFRAMES)
        raise click.BadParameter(
            f"{value!r}: the 200-week EMA (strategies, outlook) needs bars that fit whole into "
            f"weeks (fix: use {', '.join(ok[:-1])} or {ok[-1]}; bars can only get coarser than "
            "the data's)")
    return value


def data_options(*, dates: bool = True, weekly_ema: bool = False) -> Decorator:
    """Add the options that choose the candles: ``data_file``, ``data_dir``, ``timeframe``,
    ``dataset``, ``offline``, ``allow_dates`` (and ``start``, ``end`` when ``dates``), the
    arguments of :func:`data.select.select_candles`. ``weekly_ema``: the command computes the
    weekly EMA, so ``--timeframe`` must fit whole into weeks (checked before any loading)."""
    options = [
        click.option("--data", "data_file", type=click.Path(dir_okay=False), default=None,
                     help="Candle file (any supported format). Default: the default BTC data."),
        click.option("--data-dir", envvar="BTC_BACKTEST_DATA", default=None,
                     type=click.Path(file_okay=False),
                     help="Local candle store (env BTC_BACKTEST_DATA)."),
        click.option("--timeframe", default=None,
                     callback=_weekly_timeframe if weekly_ema else _checked(parse_timeframe),
                     help="Resample to this timeframe first (e.g. 4h, 1d, 1w)."),
        click.option("--dataset", type=click.Choice(("binance", "bitstamp")), default=None,
                     help="A real daily series shipped with the package: binance (BTC/USDT "
                          "2017-08-17 -> 2026-07-03) or bitstamp (BTC/USD 2011-08-19 -> "
                          "2025-08-25)."),
        click.option("--offline", is_flag=True,
                     help="Never download; use the store or the bundled real daily data."),
        click.option("--allow-dates", is_flag=True,
                     help="Accept a --data file with bars before 1990 or from 2100 on (refused "
                          "by default: usually a wrong time scale)."),
    ]
    if dates:
        options += [
            click.option("--start", default=None, callback=_checked(parse_time),
                         help="First bar to use (YYYY-MM-DD, UTC)."),
            click.option("--end", default=None, callback=_checked(parse_time),
                         help="Last bar to use (YYYY-MM-DD, UTC)."),
        ]
    return option_group(options)


def _checked(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, Any],
                                                       Any]:
    """A click callback that runs ``parse`` on the value (kept as given) so that a bad value
    is a usage error naming its option (exit 2) before any data is loaded."""

    def callback(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None:
            try:
                parse(value)
            except DataError as exc:
                raise click.BadParameter(exc.what + (f" ({exc.hint})" if exc.hint else ""),
                                         param=param) from None
        return value

    return callback


def warn_capped_size(cfg: BacktestConfig, close_max: float) -> None:
    """Warn (stderr) when a fixed ``--size`` is more BTC than the account can ever buy: the
    engine caps every entry at what equity x leverage affords, so the size given is not the
    size traded."""
    if cfg.sizing == "fixed" and cfg.size * close_max > cfg.cash * cfg.leverage:
        afford = cfg.cash * cfg.leverage / close_max
        click.secho(f"warning: --size {cfg.size:g} BTC is more than --cash {cfg.cash:g} x "
                    f"--leverage {cfg.leverage:g} buys at the highest close ({afford:.6g} BTC); "
                    "entries are capped at what the equity affords", fg="yellow", err=True)


def force_option() -> Decorator:
    """``--force`` (passed as ``force``): write results into a non-empty folder btc-backtest did
    not write, beside the files there (see :func:`backtests._files.replace_directory`)."""
    return click.option("--force", is_flag=True,
                        help="Write into a non-empty --out folder that btc-backtest did not "
                             "write, beside its files (they are never touched).")


def param_option(help_text: str = "Strategy parameter (repeatable); 'name.key=value' "
                                  "targets one strategy.") -> Decorator:
    """The ``--param/-p KEY=VALUE`` option (passed as ``params``), read by
    :func:`strategy_params`."""
    return click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
                        help=help_text)


def strategy_params(pairs: Iterable[str], classes: list[type[Strategy]]
                    ) -> dict[str, dict[str, Any]]:
    """``--param`` values per selected strategy, each coerced by its declared
    :class:`~strategies.base.Param` (``"20"`` becomes 20.0 for a float parameter).

    ``key=value`` goes to every selected strategy that declares ``key``; ``name.key=value`` to
    strategy ``name`` only.

    Raises:
        click.BadParameter: not ``key=value``, an unknown strategy or key (the valid keys are
            listed), a value that does not fit its declaration.
    """
    out: dict[str, dict[str, Any]] = {cls.name: {} for cls in classes}
    by_name = {cls.name: cls for cls in classes}

    def put(cls: type[Strategy], key: str, value: str) -> None:
        try:
            out[cls.name][key] = cls.params[key].coerce(key, value)
        except ParamError as exc:
            raise click.BadParameter(str(exc), param_hint="--param") from None

    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--param")
        value = value.strip()
        target, dot, short = key.rpartition(".")
        if dot:
            target = target.replace("-", "_")
            if target not in by_name:
                raise click.BadParameter(
                    f"{pair!r} names strategy {target!r}, which is not selected"
                    + did_you_mean(target, by_name, "selected strategies")
                    + " (fix: select it with --strategy)", param_hint="--param")
            if short not in by_name[target].params:
                raise click.BadParameter(
                    f"unknown parameter {short!r} for strategy {target!r}"
                    + did_you_mean(short, by_name[target].params, "parameters")
                    + " (fix: `btc-backtest strategies` lists the parameters)",
                    param_hint="--param")
            put(by_name[target], short, value)
            continue
        owners = [cls for cls in classes if key in cls.params]
        if not owners:
            known = sorted({k for cls in classes for k in cls.params})
            raise click.BadParameter(
                f"unknown parameter {key!r}" + did_you_mean(key, known, "parameters")
                + " (fix: `btc-backtest strategies` lists the parameters)",
                param_hint="--param")
        for cls in owners:
            put(cls, key, value)
    return out


def announce(message: str) -> None:
    """Print a data step on stderr; notices (the sample-data warning) stand out."""
    notice = message.startswith("NOTICE")
    click.secho(message, fg="yellow" if notice else None, bold=notice, err=True)


def option_group(options: list[Decorator]) -> Decorator:
    """One decorator applying ``options`` in the order listed (as in ``--help``)."""

    def apply(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return apply
