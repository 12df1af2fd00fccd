"""The ``btc-backtest`` command line (a click group).

Sub-commands live in their own modules and are attached here, so that each stays small:
``data`` (:mod:`backtests.cli.data`); ``run``, ``outlook``, ``strategies``, ``report``
(:mod:`backtests.cli.run`); ``sweep``, ``audit`` (:mod:`backtests.cli.tuning`); ``squeeze``
(:mod:`backtests.cli.squeeze`).

Every error, click's own usage errors included, is one line ``error: WHAT (fix: HOW)`` on
stderr; ``--verbose`` adds the traceback. Exit codes: 0 ok, 2 usage or bad input, 1 failure.
"""

from __future__ import annotations

import gc
import importlib
import sys
import traceback
from typing import Any

import click

from data.memory import keep_freed_memory

#: Every sub-command: name -> (module defining it in its ``COMMANDS`` list, its one-line help).
#: A module is imported only when one of its commands runs or shows its own help, so that
#: ``btc-backtest --help`` lists them without importing pandas, numba or plotting (measured:
#: 1.2 s -> 0.1 s of imports on a quiet machine). tests/test_startup.py checks each line equals
#: the command's own help.
COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("backtests.cli.tuning", "Check STRATEGY for look-ahead: re-run it on truncated "
              "data and report every signal, indicator value or trade that changes when the "
              "future is removed (exit 1 if any)."),
    "data": ("backtests.cli.data", "Download, import, inspect, validate and resample BTC "
             "candles."),
    "outlook": ("backtests.cli.run", "The technical outlook (levels, RSI, 200-week EMA, trend) "
                "as of a date."),
    "report": ("backtests.cli.run", "Re-render a report from saved results (a run's folder or "
               "result folders, a saved sweep or walk-forward folder)."),
    "run": ("backtests.cli.run", "Backtest strategies on BTC data and write an HTML report (+ "
            "PNGs with --png): the main job."),
    "squeeze": ("backtests.cli.squeeze", "Maximum leverage that survived, per entry bar, with "
                "the path BTC actually took."),
    "strategies": ("backtests.cli.run", "List the built-in strategies and their parameters "
                   "(default and meaning)."),
    "sweep": ("backtests.cli.tuning", "Backtest STRATEGY over a parameter grid or random sets; "
              "rank, judge (DSR, PBO), save."),
    "walkforward": ("backtests.cli.tuning", "Walk-forward STRATEGY: on each training window "
                    "pick the best parameter set (of --grid or --random) by --metric, trade it "
                    "on the following test window, and stitch the out-of-sample results; compare "
                    "them with in-sample and buy and hold, save, write HTML."),
}


def load_command(name: str) -> click.Command:
    """The click command ``name`` from its module (imported now)."""
    module = importlib.import_module(COMMANDS[name][0])
    return {cmd.name: cmd for cmd in module.COMMANDS}[name]


def error_line(message: str, fix: str | None = None) -> str:
    """``error: message (fix: ...)`` on one line; a message that already says its fix keeps it."""
    text = " ".join(str(message).split())  # one line, whatever the message held
    if text[:1].isupper() and text[1:2].islower():
        text = text[0].lower() + text[1:]  # click's "No such option" reads like ours
    text = text.rstrip(".")
    if fix and "(fix:" not in text:
        text += f" (fix: {fix})"
    return f"error: {text}"


def _help_of(ctx: click.Context | None) -> str:
    """``see `btc-backtest sweep --help``` (the program's name, whatever click was called as)."""
    sub = ctx.command_path.split()[1:] if ctx is not None else []
    return f"see `{' '.join(['btc-backtest', *sub])} --help`"


def _usage_fix(exc: click.ClickException) -> str:
    return _help_of(getattr(exc, "ctx", None))


class _Group(click.Group):
    """A click group that turns known errors into one line and the right exit code, and loads
    its sub-commands from :data:`COMMANDS` on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The listing from the table: no command module is imported to print it.
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, click.utils.make_default_short_help(help_line, limit))
                for name, (_module, help_line) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        """click's entry point, with its usage errors printed in our one-line style."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        if args is None:  # the process's own command line: its memory ends with it
            # freed arrays stay warm for the next ones (10M-bar runs: 4x less system time);
            # not for main(args) callers, whose process goes on (data.memory)
            keep_freed_memory()
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:  # usage errors, bad option values (exit 2)
            click.secho(error_line(exc.format_message(), _usage_fix(exc)), fg="red", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo(error_line("aborted"), err=True)
            sys.exit(1)
        finally:
            if args is None:  # the process's own command line: it ends now
                _skip_exit_collection()
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> object:
        # Imported here, not at the top: pandas is not needed to print the help.
        from data.frame import DataError

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


def _skip_exit_collection() -> None:
    """Spare the interpreter's exit the garbage collection of everything the command built.

    At exit CPython collects cyclic garbage over every live object (~230,000 after ``run``:
    pandas, numba, the report modules); each full pass cost ~0.2 s of CPU here, and the exit of
    ``btc-backtest run`` took 0.7-2 s of wall time at load 3 (0.8 s with this, against 8 s
    without, at load 10). ``gc.freeze()`` moves the objects out of the collector's reach; the
    operating system frees the memory when the process ends, as it would anyway. Only for the
    process's own command line: a caller that invokes ``main`` with arguments (tests,
    CliRunner) keeps collecting.
    """
    gc.freeze()


def _fail(ctx: click.Context, exc: BaseException, code: int) -> None:
    verbose = bool(ctx.find_root().params.get("verbose"))
    if verbose:
        traceback.print_exception(exc)
    if code == 1:
        fix = getattr(exc, "fix", None) or ("this is a failure, not your input: run again with "
                                            "--verbose for the traceback")
    else:
        sub = ctx.invoked_subcommand  # ctx is the group's: name the command that failed
        fix = f"see `btc-backtest {sub} --help`" if sub else _help_of(ctx)
    click.secho(error_line(str(exc), None if verbose and code == 1 else fix), fg="red",
                err=True)
    sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks and debug messages.")
@click.version_option(package_name="btc-backtest")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Bitcoin technical analysis and backtesting."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


