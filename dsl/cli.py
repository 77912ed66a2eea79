"""`crowe-compile`: check policies, and compile them into artifacts.

    crowe-compile --check policies/*.policy
    crowe-compile --check --format json broken.policy
    crowe-compile --check --strict policies/*.policy     (warnings fail too)
    crowe-compile --explain E0401                         (what a code means, with an example)
    crowe-compile policies/cs_mom_v1.policy -o cs_mom_v1.cpol [--data BARS] [--sign-key KEY]

Exit status: 0 when no file has errors (warnings allowed), 1 when any has, 2 for a usage error or
a file that cannot be read. Compiling exits 0 when the artifact was written, 1 when the policy
does not check, 2 when it cannot be compiled (data, key, output).

The checker never imports JAX; the compiler is imported only when an artifact is written.
"""
from __future__ import annotations

import json
import sys

import click

from .diagnostics import render_text
from .policy import CheckResult, UnreadableFile, check_bytes, check_path, read_bytes


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def run_check(files: tuple[str, ...], fmt: str, strict: bool = False) -> int:
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
        if strict and warnings and not errors:
            status = "warnings fail under --strict"
        click.echo(f"checked {_plural(len(results), 'file')}: {status} "
                   f"({_plural(errors, 'error')}, {_plural(warnings, 'warning')})")
    if unreadable:
        return 2
    return 1 if any(r.errors or strict and r.warnings for r in results) else 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crowe-policy", prog_name="crowe-compile",
                      message="%(prog)s %(version)s")
@click.option("--check", "check_only", is_flag=True,
              help="Only check the policies: report every problem, write nothing.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="How to print diagnostics.")
@click.option("-o", "--output", default=None, metavar="OUT.cpol",
              help="Artifact to write (default: POLICY's name with .cpol, here).")
@click.option("--data", default=None, metavar="BARS",
              help="For `symbols: from_data`: the bar file whose symbols form the universe "
                   "(default: the bundled data).")
@click.option("--sign-key", default=None, metavar="KEY",
              help="Sign the artifact as `author` with this private key.")
@click.option("--strict", is_flag=True,
              help="Warnings fail too: exit 1 (and write no artifact) when there is any.")
@click.option("--explain", "explain_code", default=None, metavar="CODE",
              help="Explain a diagnostic code (e.g. E0401) with an example and the fix.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=True))
def compile_cli(check_only: bool, fmt: str, output: str | None, data: str | None,
                sign_key: str | None, strict: bool, explain_code: str | None,
                files: tuple[str, ...]) -> None:
    """Check (and compile) Crowe Logic policy files."""
    if explain_code is not None:
        if files:
            raise click.UsageError("--explain takes a code, not files")
        sys.exit(run_explain(explain_code))
    if not files:
        raise click.UsageError("give a policy file (or --explain CODE)")
    if check_only:
        if output or data or sign_key:
            raise click.UsageError("--check writes nothing; drop -o, --data and --sign-key")
        sys.exit(run_check(files, fmt, strict))
    if len(files) != 1:
        raise click.UsageError("compile one policy at a time (or use --check for several)")
    sys.exit(run_compile(files[0], output, data, sign_key, fmt, strict))


def run_explain(code: str) -> int:
    from .codes import CODES
    from .diagnostics import suggestion
    from .explain import explain
    key = code.strip().upper()
    if key not in CODES:
        hint = suggestion(key, CODES) or "the codes are listed in the README"
        click.echo(f"error: `{code}` is not a diagnostic code; {hint}", err=True)
        return 2
    click.echo(explain(key), nl=False)
    return 0


def run_compile(path: str, output: str | None, data: str | None, sign_key: str | None,
                fmt: str, strict: bool = False) -> int:
    try:
        source = read_bytes(path)
    except UnreadableFile as e:
        click.echo(f"error: {e}", err=True)
        return 2
    result = check_bytes(source, path)
    if not result.ok or strict and result.warnings:
        run_check((path,), fmt, strict)
        return 1
    from crowe.compiler.export import CompileError, compile_file   # JAX only from here on
    from crowe.runtime.bundled import UniverseError, universe_symbols
    try:
        universe = universe_symbols(result.policy, data)
        written = compile_file(result, source, output, universe, sign_key)
    except (CompileError, UniverseError) as e:
        click.echo(f"error: {e}", err=True)
        return 2
    click.echo(written)
    return 0


def compile_main() -> None:
    try:
        compile_cli.main(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as e:  # a bug of ours: say so in one line, never a traceback
        click.echo(f"error: internal error: {e}", err=True)
        sys.exit(2)
