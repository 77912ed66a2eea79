"""`crowe test`: the shipped policy tests pass, failures say where and why, bad files are
reported. One compiled engine per example policy, shared by every test here (and, through
JAX's persistent cache, with tests/test_examples_backtest.py: the same universes)."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crowe.runtime.cli import main
from crowe.runtime.data import write_bars
from crowe.runtime.policytest import (PolicyTestError, generated_bars, read_test_file,
                                      run_test_file, find_test_files)

ROOT = Path(__file__).parent.parent
TESTS = ROOT / "policies" / "tests"
US_TECH = ["AAPL", "FB", "GOOG", "IBM", "MSFT"]


def run(path: Path):
    return run_test_file(str(path))   # engines shared by the process


def test_every_example_policy_has_a_test_file():
    policies = {p.stem for p in (ROOT / "policies").glob("*.policy")}
    tested = {read_test_file(str(f))[0].policy.removeprefix("../").removesuffix(".policy")
              for f in TESTS.glob("*.test.yaml")}
    assert policies <= tested, policies - tested


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.test.yaml")), ids=lambda p: p.stem)
def test_the_shipped_tests_pass(path):
    result = run(path)
    assert result.failures == [] and result.passed >= 5


def write(tmp_path: Path, text: str) -> Path:
    target = tmp_path / "t.test.yaml"
    target.write_text(text.replace("POLICY", str(ROOT / "policies" / "xs_reversal_v1.policy")))
    return target


GENERATED = """\
policy: POLICY
bars:
  generate:
    bars: 60
    symbols: [AAPL, FB, GOOG, IBM, MSFT]
    walk: {vol: 1.5%}
expect:
"""


def test_a_failure_names_the_bar_the_instrument_expected_actual_and_reasons(tmp_path):
    path = write(tmp_path, GENERATED + """\
  - name: warm-up
    bars: [0, 19]
    reasons: [warmup]
  - name: a wrong expectation
    bar: 5
    symbol: IBM
    weight: ">0"
    not_reasons: [warmup]
""")
    result = run(path)
    assert result.passed == 1 and len(result.failures) == 1
    [f] = result.failures
    assert f.expectation == "a wrong expectation" and f.line == 11
    assert f.details[0].startswith("bar 5 (2020-01-06), IBM: weight expected >0, found 0; "
                                   "reasons expected without warmup")
    assert "reasons: warmup" in f.details[0]


def test_inline_rows_and_parquet_files_give_the_same_decisions(tmp_path):
    from crowe.runtime.policytest import Generate
    g = Generate.model_validate({"bars": 30, "symbols": US_TECH, "walk": {"vol": "1.5%"}})
    table = generated_bars(g, "t")
    write_bars(tmp_path / "bars.parquet", table["ts"], table["symbol"], table["open"],
               table["high"], table["low"], table["close"], table["volume"])
    rows = "\n".join(f"    - [{str(t)[:10]}, {s}, " + ", ".join(repr(float(x)) for x in xs) + "]"
                     for t, s, *xs in zip(*table.values()))
    expect = """\
expect:
  - {bars: [0, 19], weight: 0, order: 0, reasons: [warmup], state: ACTIVE}
  - {bars: [20, -1], weight: "<= 5%", not_reasons: [warmup]}
"""
    inline = write(tmp_path, f"policy: POLICY\nbars:\n  rows:\n{rows}\n{expect}")
    assert run(inline).failures == []
    from_file = tmp_path / "f.test.yaml"
    from_file.write_text(inline.read_text().split("bars:\n")[0] +
                         "bars: {file: bars.parquet}\n" + expect)
    assert run(from_file).failures == []


@pytest.mark.parametrize("body, message", [
    ("policy: POLICY\nbars: {generate: {bars: 60, symbols: [AAPL]}}\nexpect:\n"
     "  - {bar: 1, wieght: 0}\n", "t.test.yaml:4:14: `expect.0.wieght`: extra inputs"),
    (GENERATED + "  - {bar: 1, reasons: [warmpu]}\n", "did you mean `warmup`?"),
    (GENERATED + "  - {bar: 1, symbol: TSLA, weight: 0}\n", "`TSLA` is not an instrument"),
    (GENERATED + "  - {bar: 100, weight: 0}\n", "bar 100 is outside the 60 bars"),
    (GENERATED + "  - {bar: 1, weight: lots}\n", "`lots` is not a number or a comparison"),
    ("policy: nowhere.policy\nbars: {generate: {bars: 9, symbols: [A]}}\nexpect: [{bar: 1}]\n",
     "does not exist"),
])
def test_a_test_file_that_cannot_run_says_why(tmp_path, body, message):
    with pytest.raises(PolicyTestError, match=None) as err:
        run(write(tmp_path, body))
    assert message in str(err.value), str(err.value)


def test_the_command_exit_codes(tmp_path):
    cli = CliRunner()
    good = write(tmp_path, GENERATED + "  - {bars: [0, 19], weight: 0}\n")
    out = cli.invoke(main, ["test", str(good)])
    assert out.exit_code == 0 and out.output.endswith("1 passed, 0 failed\n")
    bad = tmp_path / "sub" / "bad.test.yaml"
    bad.parent.mkdir()
    bad.write_text(good.read_text().replace("weight: 0}", "weight: 1}"))
    out = cli.invoke(main, ["test", str(tmp_path)])
    assert out.exit_code == 1 and "FAIL  " in out.output and "1 passed, 1 failed" in out.output
    assert find_test_files((str(tmp_path),)) == [str(bad), str(good)]
    assert cli.invoke(main, ["test", str(tmp_path / "none")]).exit_code == 2
