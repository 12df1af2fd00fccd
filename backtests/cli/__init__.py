"""The ``btc-backtest`` command line (a click group).

Sub-commands live in their own modules and are attached here, so that each stays small:
``data`` (:mod:`backtests.cli.data`); ``run``, ``outlook``, ``strategies``, ``report``
(:mod:`backtests.cli.run`); ``sweep``, ``audit`` (:mod:`backtests.cli.tuning`); ``squeeze``
(:mod:`backtests.cli.squeeze`).

Errors are one clear line plus a hint; ``--verbose`` shows the traceback. Exit codes: 0 ok,
2 usage or bad input, 1 failure.
"""

from __future__ import annotations

import sys
import traceback

import click

from data.frame import DataError


class _Group(click.Group):
    """A click group that turns known errors into one line and the right exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DataError as exc:
            _fail(ctx, exc, code=2)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            _fail(ctx, exc, code=1)
        return None


def _fail(ctx: click.Context, exc: BaseException, code: int) -> None:
    verbose = bool(ctx.find_root().params.get("verbose"))
    if verbose:
        traceback.print_exception(exc)
    click.secho(f"error: {exc}", fg="red", err=True)
    if not verbose and code == 1:
        click.echo("hint: run again with --verbose to see the traceback", err=True)
    sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks and debug messages.")
@click.version_option(package_name="btc-backtest")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Bitcoin technical analysis and backtesting."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


# Each command-group module exposes ``COMMANDS: list[click.Command]``; imported here, after
# ``main`` exists, so that the group is complete when ``main`` is called.
from backtests.cli import data as _data_cmds  # noqa: E402
from backtests.cli import run as _run_cmds  # noqa: E402
from backtests.cli import squeeze as _squeeze_cmds  # noqa: E402
from backtests.cli import tuning as _tuning_cmds  # noqa: E402

for _module in (_data_cmds, _run_cmds, _squeeze_cmds, _tuning_cmds):
    for _command in _module.COMMANDS:
        main.add_command(_command)
