"""`crowe-compile`: check policies, and compile them into artifacts.

    crowe-compile --check policies/*.policy
    crowe-compile --check --format json broken.policy

Exit status: 0 when no file has errors (warnings allowed), 1 when any has, 2 for a usage error or
a file that cannot be read.
"""
from __future__ import annotations

import json
import sys

import click

from .diagnostics import render_text
from .policy import CheckResult, UnreadableFile, check_path


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def run_check(files: tuple[str, ...], fmt: str) -> int:
    results: list[CheckResult] = []
    unreadable = 0
    for path in files:
        try:
            results.append(check_path(path))
        except UnreadableFile as e:
            click.echo(f"error: {e}", err=True)
            unreadable += 1
    diags = [d for r in results for d in r.diagnostics]
    if fmt == "json":
        click.echo(json.dumps([d.to_json() for d in diags], indent=2))
    else:
        for r in results:
            for d in r.diagnostics:
                click.echo(render_text(d, r.source) + "\n")
        errors = sum(d.is_error for d in diags)
        warnings = len(diags) - errors
        failed = sum(1 for r in results if r.errors)
        status = "ok" if not errors else f"{_plural(failed, 'file')} with errors"
        click.echo(f"checked {_plural(len(results), 'file')}: {status} "
                   f"({_plural(errors, 'error')}, {_plural(warnings, 'warning')})")
    if unreadable:
        return 2
    return 1 if any(r.errors for r in results) else 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--check", "check_only", is_flag=True,
              help="Only check the policies: report every problem, write nothing.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="How to print diagnostics.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
def compile_cli(check_only: bool, fmt: str, files: tuple[str, ...]) -> None:
    """Check (and compile) Crowe Logic policy files."""
    if not check_only:
        raise click.UsageError("compiling to an artifact is not available yet; use --check")
    sys.exit(run_check(files, fmt))


def compile_main() -> None:
    try:
        compile_cli.main(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as e:  # a bug of ours: say so in one line, never a traceback
        click.echo(f"error: internal error: {e}", err=True)
        sys.exit(2)
