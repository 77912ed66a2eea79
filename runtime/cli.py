"""The ``crowe`` command: one click group, one subgroup or command per area.

Exit codes: 0 success, 1 the command ran and found problems, 2 it could not run (bad input,
unusable file, usage error). A user never sees a traceback: a :class:`UserError` prints
``error: <message>``, and anything unexpected prints ``error: internal error: <message>``; both
exit 2. Add a command with ``@main.command()`` or a group with ``@main.group()``; raise
:class:`UserError` (or an error listed in ``USER_ERRORS``) for anything the user can fix.
"""
from __future__ import annotations

import json

import click

from .data import DataError, load_bars
from .engine import ParamError
from .run import RunError

EXIT_OK, EXIT_PROBLEMS, EXIT_ERROR = 0, 1, 2


class UserError(Exception):
    """Something the user can fix; the message is shown as ``error: <message>``."""


USER_ERRORS: tuple[type[Exception], ...] = (UserError, DataError, RunError, ParamError)


class _Guarded(click.Group):
    """The one place that turns exceptions into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort,
                BrokenPipeError):
            raise
        except USER_ERRORS as e:
            _fail(str(e))
        except Exception as e:  # noqa: BLE001 - the guard exists to catch everything else
            _fail(f"internal error: {e or type(e).__name__}")


def _fail(message: str) -> None:
    click.echo(f"error: {message or 'unknown'}", err=True)
    raise click.exceptions.Exit(EXIT_ERROR)


@click.group(cls=_Guarded, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Crowe Logic policy runtime."""


@main.group()
def data() -> None:
    """Inspect bar files."""


@data.command("check")
@click.argument("path", type=click.Path(dir_okay=True, path_type=str))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
def data_check(path: str, fmt: str) -> None:
    """Validate the bar file PATH and report every problem.

    Exits 0 when the file loads with no issues, 1 when it loads with issues, 2 when it cannot
    be used.
    """
    _, report = load_bars(path)
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(report.render_text())
        if len(report.issues) > 20:
            click.echo("  (use --format json for every issue)")
    raise click.exceptions.Exit(EXIT_OK if report.ok else EXIT_PROBLEMS)


@main.command()
@click.argument("policy", type=click.Path(dir_okay=False, path_type=str))
@click.option("--data", type=click.Path(path_type=str), default=None,
              help="Parquet bar file (default: the bundled data that covers the universe).")
@click.option("--start", default=None, help="First date to simulate, e.g. 2005-01-01.")
@click.option("--end", default=None, help="Last date to simulate (inclusive).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override a policy parameter; repeatable.")
@click.option("--cash", type=float, default=1e6, show_default=True, help="Initial capital.")
@click.option("--out", "out_dir", default=None, help="Results directory (default out/POLICY).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def backtest(policy, data, start, end, params, cash, out_dir, fmt) -> None:
    """Compile POLICY and backtest it on bar data; print its metrics."""
    from .commands import run_backtest
    run_backtest(policy, data, start, end, params, cash, out_dir, fmt)
