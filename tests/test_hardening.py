"""Inputs that mean something other than what a reviewer reads, and checks that must stay fast
(issue 13): each test fails without its fix."""
from __future__ import annotations

import dataclasses

import pytest

from crowe.dsl.diagnostics import Diagnostics
from crowe.dsl.expr import parse_expr, span_in
from crowe.dsl.policy import check_text
from crowe.dsl.quantity import QuantityError, duration, fraction
from crowe.dsl.source import SourceFile
from crowe.runtime.run import RunError, parse_params

BASE = """\
policy: harden_v1
version: 1.0.0
owner: CR-001
description: a test policy
universe: {symbols: [AAPL, MSFT, IBM], bar: 1d}
params:
  lookback: {default: 20, range: [5, 60]}
features:
  r1:  ret(close, 1)
  vol: stdev(r1, lookback)
signal:
  horizon: 1d
  mu:    0.1 * vol
  sigma: vol
gates:
  calm: vol < 5%
sizing: {method: equal}
risk:
  gross_max: 100%
  net_max: 50%
  position_max: 5%
  drawdown: {from_peak: {max: 10%, action: halt, cooldown: 5d}}
execution: {algo: market}
stand_down:
  data_gap: {max_missing: 5%, action: halt}
compliance:
  restricted: [IBM]
"""


def check(old: str, new: str):
    assert old in BASE
    return check_text(BASE.replace(old, new, 1), "h.policy")


def test_base_is_clean():
    assert check("", "").diagnostics == []


# -- digits of other scripts --------------------------------------------------------------------

@pytest.mark.parametrize("old, new, char, name, fixed", [
    ("position_max: 5%", "position_max: 1\u09ea%", "\u09ea", "U+09EA BENGALI DIGIT FOUR",
     "14%"),
    ("gross_max: 100%", "gross_max: \uff11\uff10\uff10%", "\uff11",
     "U+FF11 FULLWIDTH DIGIT ONE", "100%"),
    ("cooldown: 5d", "cooldown: \uff15d", "\uff15", "U+FF15 FULLWIDTH DIGIT FIVE", "5d"),
    ("default: 20,", "default: 2\u0660,", "\u0660", "U+0660 ARABIC-INDIC DIGIT ZERO", "20"),
    ("ret(close, 1)", "ret(close, \uff11)", "\uff11", "U+FF11 FULLWIDTH DIGIT ONE",
     "ret(close, 1)"),
    ("mu:    0.1 * vol", "mu:    0.\u0967 * vol", "\u0967", "U+0967 DEVANAGARI DIGIT ONE",
     "0.1 * vol"),
    ("max_missing: 5%", "max_missing: '\u0665%'", "\u0665", "U+0665 ARABIC-INDIC DIGIT FIVE",
     "5%"),
])
def test_a_digit_of_another_script_is_refused_at_the_character(old, new, char, name, fixed):
    result = check(old, new)
    assert [d.code for d in result.diagnostics] == ["E0005"]
    d = result.diagnostics[0]
    assert name in d.message and f"`{char}`" in d.message
    line = BASE.replace(old, new, 1).splitlines()[d.span.line - 1]
    assert line[d.span.column - 1] == char and d.span.end - d.span.start == 1
    assert d.help.endswith(f"write `{fixed}`")


def test_text_in_another_script_keeps_its_digits():
    result = check("description: a test policy",
                   "description: \u09ae\u09cb\u09ae\u09c7\u09a8\u09cd\u099f\u09be\u09ae "
                   "\u09e8\u09e6\u09e8\u09ec")
    assert result.diagnostics == []


def test_the_readers_accept_ascii_digits_only():
    with pytest.raises(QuantityError, match=r"U\+09EA BENGALI DIGIT FOUR.* character 2"):
        fraction("1\u09ea%")
    with pytest.raises(QuantityError, match=r"U\+FF12 FULLWIDTH DIGIT TWO"):
        duration("\uff12d")
    with pytest.raises(QuantityError, match=r"U\+00BD VULGAR FRACTION ONE HALF"):
        fraction("\u00bd")
    assert fraction("14%") == pytest.approx(0.14) and duration("20d").count == 20


def test_an_expression_with_a_full_width_digit():
    text = "ret(close, \uff15)"
    diags = Diagnostics()
    assert parse_expr(text, span_in(SourceFile("p", text), 0), diags) is None
    assert [(d.code, d.span.column) for d in diags] == [("E0005", 12)]
    assert "U+FF15 FULLWIDTH DIGIT FIVE" in diags.items[0].message


def test_a_param_value_with_a_full_width_digit():
    with pytest.raises(RunError, match=r"`--param lookback=1\uff12`.*U\+FF12 FULLWIDTH DIGIT "
                                       r"TWO.*character 2.*write `12`"):
        parse_params(("lookback=1\uff12",))
    assert parse_params(("lookback=12",)) == {"lookback": 12.0}


# -- check time ---------------------------------------------------------------------------------

def big_policy(n: int) -> str:
    """`n` feature lines: unused features (a warning each, at its key) and entries that are not
    expressions (a schema error each, at its value)."""
    lines = [f"  f{i}: ret(close, 1)" if i % 2 else f"  g{i}: [1]" for i in range(n)]
    return BASE.replace("features:\n", "features:\n" + "\n".join(lines) + "\n", 1)


def test_checking_is_linear_in_the_number_of_features(monkeypatch):
    """Every lookup of a key is one dict lookup: the entries of the mappings are walked a
    bounded number of times per entry, not once per lookup (which took 48 s for 20,000 lines)."""
    from crowe.dsl import yamlload

    walked = [0]

    class CountingItems(list):
        def __iter__(self):
            for item in super().__iter__():
                walked[0] += 1
                yield item

    @dataclasses.dataclass(eq=False)
    class CountingMap(yamlload.MapNode):
        def __post_init__(self):
            self.items = CountingItems(self.items)

    monkeypatch.setattr(yamlload, "MapNode", CountingMap)
    n = 20_000
    result = check_text(big_policy(n), "big.policy")
    assert sorted({d.code for d in result.diagnostics}) == ["E0303", "W0101"]
    assert len(result.diagnostics) == n                # each line once
    assert walked[0] < 20 * n, walked[0]               # a scan per lookup walks ~n^2 / 2
    walked[0] = 0
    lines = "".join(f"  f{i}: mean(closx{i}, 5)\n" for i in range(4_000))
    result = check_text(BASE.replace("features:\n", "features:\n" + lines, 1), "big.policy")
    assert [d.code for d in result.diagnostics].count("E0401") == 4_000
    assert walked[0] < 20 * 4_000, walked[0]           # a declared-name scan per unknown name


def test_did_you_mean_over_thousands_of_misspelt_names_is_bounded(monkeypatch):
    """Each suggestion compares the word with every name in scope; a budget per check keeps a
    file of thousands of misspelt names linear: the first ones get their suggestion, later
    ones the plain help."""
    from crowe.dsl import check as chk
    compared = [0]
    real = chk.suggestion

    def counting(word, candidates):
        compared[0] += len(candidates)
        return real(word, candidates)

    monkeypatch.setattr(chk, "suggestion", counting)
    n = 3_000
    lines = "".join(f"  f{i}: mean(clse{i}, 5) + f{i}x\n" for i in range(n))
    result = check_text(BASE.replace("features:\n", "features:\n" + lines, 1), "big.policy")
    unknown = [d for d in result.diagnostics if d.code == "E0401"]
    assert len(unknown) == 2 * n
    assert unknown[1].help == "did you mean `f0`?", unknown[1].help
    assert unknown[-1].help == "define it under `features` or `params`"
    assert compared[0] <= chk.Checker.SUGGESTION_BUDGET, compared[0]


def test_a_mapping_lookup_finds_the_first_entry_and_later_ones():
    from crowe.dsl.yamlload import MapNode, ScalarNode
    span = SourceFile("p", "x").span(0)
    key = lambda k: ScalarNode(span, k, k)  # noqa: E731
    a1, a2, b = ScalarNode(span, 1, "1"), ScalarNode(span, 2, "2"), ScalarNode(span, 3, "3")
    m = MapNode(span, [(key("a"), a1), (key("a"), a2)])
    assert m.get("a") is a1 and m.get("b") is None and m.get(["unhashable"]) is None
    m.items.append((key("b"), b))                    # entries added after a lookup
    assert m.get("b") is b and m.entry("b")[0].value == "b" and m.get("a") is a1


# -- messages that say what is wrong ----------------------------------------------------------

def test_an_artifact_without_modules_for_a_listed_backend_says_so(tmp_path, monkeypatch):
    import artifactkit as kit
    from crowe.compiler.artifact import verify as v

    blob = kit.rewrite_manifest(kit.compiled("ts_trend_v1"), lambda m: m["toolchain"].update(
        platforms=["cpu", "cuda"]) or m.update(modules={"cuda": m["modules"]["cpu"]}))
    path = kit.write(tmp_path, blob)
    monkeypatch.setattr(v, "this_platform", lambda: "cpu")
    with pytest.raises(v.ToolchainMismatch) as info:
        v.verify(path)
    message = str(info.value)
    assert "not for this backend" not in message
    assert "lists cpu among its platforms but has no cpu modules" in message
    assert "modules for: cuda" in message
    monkeypatch.setattr(v, "this_platform", lambda: "rocm")
    with pytest.raises(v.ToolchainMismatch, match=r"exported for cpu, cuda, not for this "
                                                  r"backend \(rocm\)"):
        v.verify(path)


@pytest.mark.parametrize("old, new, message, help", [
    ("owner: CR-001", "owner: 1.10", "expected text, found the number `1.10`",
     'quote it (`"1.10"`) to make it text'),
    ("restricted: [IBM]", "restricted: [IBM]\n  max_order_shares: 1e30",
     "`max_order_shares` must be a whole number, found `1e30`", None),
    ("cooldown: 5d", "cooldown: 1e30", "`1e30` is not a duration", None),
    ("position_max: 5%", "position_max: 5.00", "position limit `5.00` is out of range",
     "did you mean `5.00%`?"),
])
def test_a_number_is_quoted_as_written(old, new, message, help):
    [d] = check(old, new).diagnostics
    assert d.message.startswith(message), d.message
    assert help is None or d.help.startswith(help), d.help


# -- backtest flags -------------------------------------------------------------------------------

POLICY = "policies/cs_mom_v1.policy"


def backtest_cli(*args):
    from pathlib import Path

    from click.testing import CliRunner

    from crowe.runtime.cli import main
    root = Path(__file__).resolve().parent.parent
    return CliRunner().invoke(main, ["backtest", str(root / POLICY), *args])


@pytest.mark.parametrize("cash", ["nan", "-1", "0", "inf", "-inf", "1e6x", "1\uff10"])
def test_backtest_refuses_cash_that_is_not_a_positive_finite_amount(cash, tmp_path):
    result = backtest_cli(f"--cash={cash}", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--cash'" in result.output and f"`{cash}`" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_backtest_refuses_an_out_that_is_a_file(tmp_path):
    target = tmp_path / "results"
    target.write_text("not a directory")
    for out in (target, target / "sub"):
        result = backtest_cli("--out", str(out))
        assert result.exit_code == 2, result.output
        assert "internal error" not in result.output
        assert f"error: --out `{out}`" in result.output and "is a file" in result.output
    assert target.read_text() == "not a directory"


def test_backtest_refuses_an_out_it_cannot_write(tmp_path, monkeypatch):
    import os

    from crowe.runtime import run
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the directory refuse as a read-only one
        def refuse(dir=None, **kw):
            raise PermissionError(13, "Permission denied", dir)
        monkeypatch.setattr(run.tempfile, "TemporaryFile", refuse)
    try:
        result = backtest_cli("--out", str(locked / "out"))
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output
    assert f"--out `{locked / 'out'}`: cannot write in `{locked}` (Permission denied)" in \
        result.output
    assert not (locked / "out").exists()


# -- a notional cap that can never bind -----------------------------------------------------------

@pytest.mark.parametrize("notional, warned", [("1e12", True), ("2e10", True), ("1e9", False),
                                              ("250000", False)])
def test_an_order_notional_cap_that_never_binds_is_a_warning(notional, warned):
    r = check("restricted: [IBM]", f"restricted: [IBM]\n  max_order_notional: {notional}")
    found = [d for d in r.diagnostics if d.code == "W0306"]
    assert bool(found) == warned, r.diagnostics
    if warned:
        [d] = found
        assert "`position_max: 5%`" in d.message and "no order is larger than 10% of" in d.message
        assert d.span.line > 1 and "largest single order" in d.help


# -- a zip bomb is named for what it is -----------------------------------------------------------

def test_a_compressed_member_is_refused_as_not_written_by_the_compiler(tmp_path):
    import io
    import zipfile

    import artifactkit as kit
    from crowe.compiler.artifact import container as ct
    from crowe.compiler.artifact import verify as v
    members = ct.unpack(kit.compiled("ts_trend_v1"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data if name != "ir.txt" else data + b"\0" * 50_000_000)
    path = kit.write(tmp_path, buf.getvalue())
    with pytest.raises(v.ArtifactError) as info:
        v.verify(path)
    message = str(info.value)
    assert "truncated" not in message and "is compressed" in message
    assert "not written by crowe-compile" in message


@pytest.mark.parametrize("flag, value", [("--start", "\uff12009-10-01"), ("--end", "2009-1\u09e6-01")])
def test_backtest_dates_take_ascii_digits_only(flag, value, tmp_path):
    result = backtest_cli(flag, value, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "U+" in result.output and "not one of the digits 0-9" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("speed", ["\uff12", "nan", "0", "-1", "fast"])
def test_paper_speed_is_a_positive_ascii_number(speed, tmp_path):
    from click.testing import CliRunner

    from crowe.runtime.cli import main
    result = CliRunner().invoke(main, ["paper", str(tmp_path / "a.cpol"), "--trust",
                                       str(tmp_path), "--journal-key", str(tmp_path / "k"),
                                       "--state-dir", str(tmp_path / "s"), "--feed", "stdin",
                                       "--speed", speed])
    assert result.exit_code == 2 and "Invalid value for '--speed'" in result.output, \
        result.output
    assert "Traceback" not in result.output and not (tmp_path / "s").exists()
