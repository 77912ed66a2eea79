"""Golden diagnostics: every file under `tests/golden/` is a broken policy that says, in its first
comment lines, exactly what the checker must report.

    # expect: E0401 27:17        one line per diagnostic (warnings included): code line:column
    # help: E0401 did you mean   optional: a diagnostic with that code has a help line containing
                                 the text

The multiset of (code, line, column) reported must equal the expected one. Every diagnostic must
also follow the message style (STYLE.md item 5). A few files are snapshot-tested in full, as the
CLI prints them, against `<name>.expected`; run with `UPDATE_GOLDEN=1` to rewrite those.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from crowe.dsl.cli import compile_cli
from crowe.dsl.diagnostics import Diagnostic, render_text
from crowe.dsl.policy import check_bytes
from crowe.dsl.yamlload import MAX_BYTES

from diagstyle import check_style

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.policy"))
SNAPSHOTS = ["e0312_net_above_gross", "e0401_unknown_name", "many_mistakes"]
MIN_FILES = 45

_EXPECT = re.compile(rb"# expect: ([EW]\d{4}) (\d+):(\d+)\s*$")
_HELP = re.compile(rb"# help: ([EW]\d{4}) (.+?)\s*$")


def expectations(data: bytes) -> tuple[Counter, list[tuple[str, str]]]:
    expected, helps = Counter(), []
    for line in data.split(b"\n"):
        if not line.startswith(b"#"):
            break
        if m := _EXPECT.match(line):
            expected[(m[1].decode(), int(m[2]), int(m[3]))] += 1
        elif m := _HELP.match(line):
            helps.append((m[1].decode(), m[2].decode()))
    return expected, helps


def _rendered(result) -> str:
    return "\n".join(render_text(d, result.source) for d in result.diagnostics) or "(nothing)"


def test_enough_golden_files():
    assert len(FILES) >= MIN_FILES


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_golden(path: Path):
    data = path.read_bytes()
    expected, helps = expectations(data)
    assert expected, f"{path.name} has no `# expect:` line"
    result = check_bytes(data, path.name)
    got = Counter((d.code, d.span.line, d.span.column) for d in result.diagnostics)
    assert got == expected, (
        f"missing {sorted((expected - got).elements())}, unexpected "
        f"{sorted((got - expected).elements())}\n{_rendered(result)}")
    for code, text in helps:
        found = [d.help for d in result.diagnostics if d.code == code]
        assert any(text in (h or "") for h in found), f"{code}: no help with {text!r} in {found}"
    for d in result.diagnostics:
        assert not check_style(d), (d.code, check_style(d))
    assert result.ok == (not any(code.startswith("E") for code, _, _ in expected))


@pytest.mark.parametrize("code, message, help", [
    ("E0304", "Input should be a valid integer", None),
    ("E0304", "invalid value.", None),
    ("E0304", "", None),
    ("E0304", "could not convert: ValueError", None),
    ("E0201", "unexpected RPAR", None),
    ("E0401", "unknown name `x`", None),
])
def test_style_check_catches_bad_wording(code, message, help):
    span = check_bytes(b"policy: x\n", "x.policy").source.span(0, 1)
    assert check_style(Diagnostic(code, message, span, help))


def test_style_check_leaves_user_text_alone():
    span = check_bytes(b"policy: x\n", "x.policy").source.span(0, 1)
    assert not check_style(Diagnostic("E0303", "expected text, found the text `VaR 1.5%.`",
                                      span))


def test_every_family_is_covered():
    codes = {code for path in FILES for code, _, _ in expectations(path.read_bytes())[0]}
    wanted = {"E0003", "E0004", *(f"E01{i:02}" for i in range(1, 11)),
              *(f"E02{i:02}" for i in range(1, 9)), *(f"E030{i}" for i in range(1, 6)),
              "E0310", "E0311", "E0312", "E0313", *(f"E040{i}" for i in range(1, 6)),
              "E0501", "E0502", "E0503", "E0504", "E0506", "E0507", "E0508", "E0509",
              "E0601", "E0602", "E0603", "E0701", "E0702",
              "W0101", "W0102", "W0301", "W0302", "W0303"}
    assert wanted <= codes, sorted(wanted - codes)


def test_many_mistakes_are_all_reported_at_once():
    """One policy with a mistake in almost every section: one run reports every one of them,
    each once, and nothing else."""
    path = GOLDEN / "many_mistakes.policy"
    lines = path.read_text("utf-8").split("\n")
    result = check_bytes(path.read_bytes(), path.name)
    assert len(result.errors) >= 10 and not result.warnings

    def section(line: int) -> str:
        return next(text.split(":")[0] for text in reversed(lines[:line])
                    if text[:1].isalpha())

    sections = {section(d.span.line) for d in result.errors}
    assert len(sections) >= 10, sections
    assert len({(d.span.line, d.span.column) for d in result.errors}) == len(result.errors)


def test_file_too_large():
    data = (GOLDEN / "e0401_unknown_name.policy").read_bytes()
    data += b"# padding\n" * (MAX_BYTES // 10 + 1)
    result = check_bytes(data, "big.policy")
    assert [(d.code, d.span.line, d.span.column) for d in result.diagnostics] == [
        ("E0002", 1, 1)]
    assert "1,048,576" in result.diagnostics[0].message


def test_utf16_file_gets_a_utf16_hint():
    text = (GOLDEN / "e0401_unknown_name.policy").read_text("utf-8")
    result = check_bytes(text.encode("utf-16"), "wide.policy")
    assert [d.code for d in result.diagnostics] == ["E0003"]
    assert "UTF-16" in result.diagnostics[0].help


# ---------------------------------------------------------------------------------------------
# Snapshots of the full text rendering, as `crowe-compile --check` prints it


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_text_snapshot(name: str, monkeypatch):
    monkeypatch.chdir(GOLDEN)
    out = CliRunner().invoke(compile_cli, ["--check", f"{name}.policy"])
    assert out.exit_code == 1, out.output
    snapshot = GOLDEN / f"{name}.expected"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        snapshot.write_text(out.output, "utf-8")
    assert snapshot.exists(), f"run with UPDATE_GOLDEN=1 to create {snapshot.name}"
    assert out.output == snapshot.read_text("utf-8")
