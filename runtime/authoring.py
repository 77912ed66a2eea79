"""The authoring commands behind `crowe fmt` (and `crowe test`): files in, a report out."""
from __future__ import annotations

from pathlib import Path

import click

from crowe.dsl.diagnostics import render_text
from crowe.dsl.fmt import FormatError, format_bytes
from crowe.dsl.policy import UnreadableFile, read_bytes
from crowe.dsl.source import SourceFile


def policy_files(paths: tuple[str, ...], pattern: str = "*.policy") -> list[str]:
    """The files named, with a directory standing for the matching files under it."""
    out = []
    for p in paths:
        path = Path(p)
        out.extend(sorted(map(str, path.rglob(pattern))) if path.is_dir() else [p])
    return out


def run_fmt(paths: tuple[str, ...], check: bool) -> int:
    """Format each file in place (or, with `check`, only say which would change). Exit status:
    0 nothing to do or all written, 1 with `check` when a file would change, 2 when a file
    cannot be read or formatted."""
    changed, same, failed = [], 0, 0
    for path in policy_files(paths):
        try:
            result = format_bytes(read_bytes(path), path)
        except UnreadableFile as e:
            click.echo(f"error: {e}", err=True)
            failed += 1
            continue
        except FormatError as e:
            click.echo(f"error: `{path}` cannot be formatted safely: {e}", err=True)
            failed += 1
            continue
        if result.text is None:
            source = SourceFile(path, result.original) if result.original is not None else None
            for d in result.diagnostics:
                click.echo(render_text(d, source) + "\n", err=True)
            click.echo(f"error: `{path}` is not well-formed YAML: fix it before formatting",
                       err=True)
            failed += 1
        elif result.changed:
            changed.append(path)
            if check:
                click.echo(f"would reformat {path}")
            else:
                _write(path, result.text)
                click.echo(f"reformatted {path}")
        else:
            same += 1
    verb = "would be reformatted" if check else "reformatted"
    click.echo(f"{_n(len(changed))} {verb}, {_n(same)} left unchanged" +
               (f", {_n(failed)} failed" if failed else ""))
    if failed:
        return 2
    return 1 if check and changed else 0


def _n(count: int) -> str:
    return f"{count} file{'' if count == 1 else 's'}"


def _write(path: str, text: str) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.fmt-tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(f"`{path}` cannot be written: {e.strerror or e}") from None


def run_tests(paths: tuple[str, ...]) -> int:
    """Run policy test files. Exit status: 0 every expectation holds, 1 some fail, 2 a test
    file cannot be run (or none is found)."""
    from .policytest import PolicyTestError, run_test_file, find_test_files
    files = find_test_files(paths)
    if not files:
        click.echo(f"error: no `*.test.yaml` file under {', '.join(paths) or '.'}", err=True)
        return 2
    passed = failed = broken = 0
    for path in files:
        try:
            result = run_test_file(path)
        except PolicyTestError as e:
            click.echo(f"error: {e}", err=True)
            broken += 1
            continue
        passed += result.passed
        failed += len(result.failures)
        if not result.failures:
            click.echo(f"ok    {path} ({_count(result.passed, 'expectation')})")
        for f in result.failures:
            click.echo(f"FAIL  {path}:{f.line}: {f.expectation}")
            for line in f.details:
                click.echo(f"    {line}")
    click.echo(f"{passed} passed, {failed} failed" +
               (f", {_count(broken, 'file')} could not run" if broken else ""))
    if broken:
        return 2
    return 1 if failed else 0


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
