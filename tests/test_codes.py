"""Diagnostic codes have one definition: the catalogue (`crowe.dsl.codes`). Every code the source
emits is in it, the README's tables say what it says, and `Diagnostics.add` refuses any other."""
from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

from crowe.dsl.codes import CODES, FAMILIES, family
from crowe.dsl.diagnostics import Diagnostics
from crowe.dsl.source import SourceFile

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("dsl", "compiler", "runtime", "stdlib")
CODE = re.compile(r"""["']([EW]\d{4})["']""")           # a code written as a string literal
FAMILY_ROW = re.compile(r"^\| `([EW]\d\d)xx` \| (.+?) \|$", re.M)
CODE_ROW = re.compile(r"^\| `([EW]\d{4})` \| (.+?) \|$", re.M)


def emitted() -> dict[str, list[str]]:
    """Every code written as a string literal in the package source, with where."""
    found: dict[str, list[str]] = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name in ("codes.py", "explain.py") and path.parent.name == "dsl":
                continue   # the catalogue, and the explanations keyed by its codes
            for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
                for code in CODE.findall(line):
                    found.setdefault(code, []).append(f"{path.relative_to(ROOT)}:{n}")
    return found


def readme_section() -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    start = text.index("### Diagnostics")
    return text[start:text.index("\n#", start + 1)]


def test_every_code_emitted_is_in_the_catalogue():
    found = emitted()
    assert len(found) >= 50                              # the scan sees the checker's codes
    unknown = {c: where for c, where in found.items() if c not in CODES}
    assert not unknown, unknown


def test_every_catalogued_code_is_emitted():
    unused = sorted(set(CODES) - set(emitted()))
    assert not unused, f"codes nothing emits any more: {unused}"


def test_codes_are_well_formed_and_in_a_family():
    for code, meaning in CODES.items():
        assert re.fullmatch(r"[EW]0\d{3}", code), code
        assert family(code) in FAMILIES, code
        assert meaning and meaning == meaning.strip() and not meaning.endswith("."), code
    assert list(CODES) == sorted(CODES)
    assert len(set(CODES.values())) == len(CODES)        # no two codes share a meaning


def test_each_code_is_defined_once():
    tree = ast.parse((ROOT / "dsl/codes.py").read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            keys = Counter(k.value for k in node.value.keys)
            assert not [k for k, n in keys.items() if n > 1], keys.most_common(3)


def test_readme_tables_are_the_catalogue():
    section = readme_section()
    families = {f: m for f, m in FAMILY_ROW.findall(section)}
    codes = {c: m for c, m in CODE_ROW.findall(section)}
    table = "\n".join(f"| `{c}` | {m} |" for c, m in CODES.items())
    assert families == FAMILIES, "README families differ from crowe.dsl.codes.FAMILIES"
    assert codes == CODES, f"README codes differ from crowe.dsl.codes.CODES; it should read:\n{table}"
    assert [c for c, _ in CODE_ROW.findall(section)] == list(CODES)


def test_add_refuses_a_code_not_in_the_catalogue():
    diags, span = Diagnostics(), SourceFile("p.policy", "a: 1\n").span(0, 1)
    diags.add("E0401", "unknown name `a`", span)
    for code in ("E0999", "E401", "e0401", "X0401", ""):
        with pytest.raises(ValueError, match="not in the catalogue"):
            diags.add(code, "message", span)
    assert [d.code for d in diags] == ["E0401"]
