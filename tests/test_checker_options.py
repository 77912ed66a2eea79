"""The checker's options and presentation: `--strict`, `--explain`, order, long lines."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from crowe.dsl.cli import compile_cli
from crowe.dsl.codes import CODES
from crowe.dsl.diagnostics import MAX_SHOWN, render_text
from crowe.dsl.explain import EXPLANATIONS, explain
from crowe.dsl.policy import check_text

ROOT = Path(__file__).parent.parent
GOLDEN = ROOT / "tests" / "golden"
EXAMPLE = (ROOT / "policies" / "cs_mom_v1.policy").read_text("utf-8")


def cli(*args: str):
    return CliRunner().invoke(compile_cli, list(args))


def test_every_code_has_an_explanation():
    assert set(CODES) <= set(EXPLANATIONS), sorted(set(CODES) - set(EXPLANATIONS))


@pytest.mark.parametrize("code", sorted(CODES))
def test_explain_walks_every_code(code):
    text = explain(code)
    assert text.startswith(f"{code}: {CODES[code]}\n")
    why, rest = text.split("\nExample:\n", 1)
    example, fix = rest.split("\nFix:\n", 1)
    assert len(why.split()) >= 12 and example.strip() and fix.strip()
    assert example.strip() != fix.strip()


def test_the_explain_option_prints_one_and_refuses_an_unknown_code():
    out = cli("--explain", "e0401")
    assert out.exit_code == 0 and out.output == explain("E0401")
    assert "clsoe" in out.output and "close" in out.output
    out = cli("--explain", "E0499")
    assert out.exit_code == 2 and "`E0499` is not a diagnostic code" in out.output
    assert cli("--explain", "E0401", "x.policy").exit_code == 2


def test_strict_makes_warnings_fail(tmp_path):
    warns = str(GOLDEN / "w0101_unused_feature.policy")
    assert cli("--check", warns).exit_code == 0
    out = cli("--check", "--strict", warns)
    assert out.exit_code == 1 and "warnings fail under --strict" in out.output
    assert cli("--check", "--strict", str(ROOT / "policies" / "cs_mom_v1.policy")).exit_code == 0
    # compiling under --strict writes no artifact for a policy with a warning
    target = tmp_path / "w.cpol"
    out = cli("--strict", warns, "-o", str(target))
    assert out.exit_code == 1 and not target.exists() and "W0101" in out.output


def positions(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(r"--> [^\n]*:(\d+):(\d+)\n", text)]


def test_diagnostics_come_in_source_order():
    path = str(GOLDEN / "many_mistakes.policy")
    text = cli("--check", path).output
    found = positions(text)
    assert len(found) >= 5 and found == sorted(found)
    rows = json.loads(cli("--check", "--format", "json", path).output)
    assert [(r["line"], r["column"]) for r in rows] == found


def test_a_missing_section_points_at_the_first_line_of_the_document():
    text = "# a comment\n\n# another\n" + EXAMPLE.replace("stand_down:", "old_stand_down:", 1)
    text = text.replace("old_stand_down:", "x_stand_down:")
    result = check_text(re.sub(r"\nx_stand_down:\n(  .*\n)+", "\n", text), "p.policy")
    missing = [d for d in result.diagnostics if d.code == "E0302"]
    assert len(missing) == 1 and "stand_down" in missing[0].message
    first = next(i for i, line in enumerate(result.source.text.splitlines(), 1)
                 if line and not line.startswith("#"))
    assert (missing[0].span.line, missing[0].span.column) == (first, 1)
    assert result.source.line_text(first).startswith("policy:")


def test_an_unknown_function_lists_the_closest_names():
    result = check_text(EXAMPLE.replace("stdev(r1, 63)", "mena(r1, 63)"), "p.policy")
    [d] = [d for d in result.diagnostics if d.code == "E0405"]
    assert d.help == "did you mean `mean` or `demean`?"
    result = check_text(EXAMPLE.replace("stdev(r1, 63)", "qqqq(r1, 63)"), "p.policy")
    [d] = [d for d in result.diagnostics if d.code == "E0405"]
    assert "README" in d.help


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_a_very_long_line_is_shown_around_the_span(where):
    filler = " + 0 * vol" * 60
    expr = {"start": "clsoe" + filler, "middle": "vol" + filler + " + clsoe" + filler,
            "end": "vol" + filler + " + clsoe"}[where]
    result = check_text(EXAMPLE.replace("ic * score * vol * sqrt(5)", expr), "p.policy")
    [d] = [d for d in result.diagnostics if d.code == "E0401"]
    shown = render_text(d, result.source).splitlines()
    source_line, caret_line = next((a, b) for a, b in zip(shown, shown[1:]) if "^" in b)
    assert len(source_line) <= MAX_SHOWN + 20
    assert ("..." in source_line[:12]) == (where != "start")
    assert source_line.endswith("...") == (where != "end")
    at = caret_line.index("^")
    assert source_line[at:at + 5] == "clsoe" and caret_line[at:].startswith("^~~~~ ")


# Codes whose example cannot be shown by merging a fragment into a valid policy: YAML-level
# problems (the merge reads the YAML), limits on size, things that are missing, and risk budgets
# (a portfolio method in place of the example's sizing, which the merge keeps).
NOT_BY_MERGING = {"E0203", "E0204", "E0302", "E0310", "E0311", "W0301", "W0303", "E0315"}


def _merged(fragment: str) -> str | None:
    """The example policy with the fragment's sections merged in, as YAML text."""
    import yaml
    try:
        frag = yaml.safe_load(fragment)
    except yaml.YAMLError:
        return None
    base = yaml.safe_load(EXAMPLE)
    if not isinstance(frag, dict) or not set(frag) <= set(base) | {"portfolio"}:
        return None
    for key, value in frag.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key].update(value)
        else:
            base[key] = value
    return yaml.safe_dump(base, sort_keys=False)


@pytest.mark.parametrize("code", sorted(c for c in CODES if c[:3] not in ("E00", "E01")
                                        and c not in NOT_BY_MERGING))
def test_an_explanation_example_gives_its_code_and_its_fix_does_not(code):
    example, fix = _merged(EXPLANATIONS[code].example), _merged(EXPLANATIONS[code].fix)
    assert example is not None, "the example is a fragment of a policy"
    assert code in {d.code for d in check_text(example, "p.policy").diagnostics}
    if fix is not None:
        assert code not in {d.code for d in check_text(fix, "p.policy").diagnostics}


def test_doctests():
    import doctest

    import crowe.dsl.diagnostics
    import crowe.dsl.explain
    import crowe.dsl.json_schema
    for module in (crowe.dsl.diagnostics, crowe.dsl.explain, crowe.dsl.json_schema):
        assert doctest.testmod(module).failed == 0, module.__name__
