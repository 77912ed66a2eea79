"""`crowe fmt`: the canonical layout, idempotent, every comment kept, the IR unchanged."""
from __future__ import annotations

import doctest
import random
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import crowe.dsl.fmt as fmt_module
from crowe.compiler.irtext import ir_text
from crowe.compiler.program import to_ir
from crowe.dsl.fmt import format_source
from crowe.dsl.policy import check_text
from crowe.runtime.cli import main

from test_check_properties import MINIMAL, series

ROOT = Path(__file__).parent.parent
POLICIES = sorted((ROOT / "policies").glob("*.policy"))
GOLDEN = sorted((ROOT / "tests" / "golden").glob("*.policy"))


def formatted(text: str) -> str:
    result = format_source(text, "p.policy")
    assert result.text is not None, result.diagnostics
    return result.text


def meaning(text: str):
    """What the compiler sees: the IR text (every expression the policy uses) and every other
    setting."""
    result = check_text(text, "p.policy")
    assert result.ok, [d.message for d in result.diagnostics]
    spec = result.policy.spec.model_dump(exclude={"features", "gates"})
    spec["signal"] = {k: v for k, v in (spec["signal"] or {}).items()   # none: weight sizing
                      if k not in ("mu", "sigma")}
    spec["stand_down"] = {k: {s: v for s, v in rule.items() if s != "when"}
                          for k, rule in spec["stand_down"].items() if rule is not None}
    return ir_text(to_ir(result.policy)), spec


def comments(text: str) -> list[str]:
    return re.findall(r"(?:^|\s)(#.*)$", text, re.M)


def test_doctest():
    assert doctest.testmod(fmt_module).failed == 0


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_examples_format_idempotently_to_the_same_ir(path):
    text = path.read_text("utf-8")
    once = formatted(text)
    assert formatted(once) == once
    assert meaning(once) == meaning(text)
    assert sorted(comments(once)) == sorted(comments(text))
    assert all(len(line) <= 99 for line in once.splitlines() if not line.startswith("#"))


def test_golden_files_keep_their_diagnostics():
    """Broken policies format too (when they are YAML) and report the same problems."""
    done = 0
    for path in GOLDEN[::4]:    # a quarter of them: most families, in little time
        if path.stat().st_size > 20_000:
            continue
        text = path.read_text("utf-8", errors="replace")
        result = format_source(text, "p.policy")
        if result.text is None:
            continue
        before = sorted(d.code for d in check_text(text, "p.policy").diagnostics)
        after = sorted(d.code for d in check_text(result.text, "p.policy").diagnostics)
        assert after == before, path.name
        assert formatted(result.text) == result.text, path.name
        done += 1
    assert done >= 12


MESSY = """\
# header comment

owner: CR-008   # the pod
version: 1.0.0
policy: messy_v1
execution: {participation_cap: 10%, algo: market}
risk:
  net_max: 0.5
  gross_max: 1.5        # leverage
  # the single-name cap
  position_max: 0.05
  drawdown: {from_peak: {action: halt, max: 0.15}}
stand_down:
  data_gap: {action: halt, max_missing: 0.05}
  spike: {when: "abs(r1)>4*stdev(r1,63)", action: exclude}
features:
  r1: ret(close,1)
  vol: stdev( r1 , 63 )

  # momentum over two windows
  mom: ((ret(close, 126))) - (ret(close, 21))
signal: {sigma: vol, mu: 0.1*zscore(mom)*vol}
sizing: {lambda: 0.3, method: kelly_tempered}
portfolio_note_is_not_a_section: 1
# the end
"""


def test_the_canonical_layout():
    out = formatted(MESSY)
    assert out == """\
# header comment

policy: messy_v1
version: 1.0.0
owner: CR-008  # the pod

features:
  r1:  ret(close, 1)
  vol: stdev(r1, 63)

  # momentum over two windows
  mom: ret(close, 126) - ret(close, 21)

signal:
  mu:    0.1 * zscore(mom) * vol
  sigma: vol

sizing:
  method: kelly_tempered
  lambda: 30%

risk:
  # the single-name cap
  position_max: 5%
  net_max:      50%
  gross_max:    150%  # leverage
  drawdown:
    from_peak: {max: 15%, action: halt}

execution:
  algo:              market
  participation_cap: 10%

stand_down:
  data_gap: {max_missing: 5%, action: halt}
  spike:
    when:   abs(r1) > 4 * stdev(r1, 63)
    action: exclude

portfolio_note_is_not_a_section: 1

# the end
"""
    assert formatted(out) == out


def test_fractions_have_one_style_and_multipliers_stay_numbers():
    text = next(p for p in POLICIES if p.stem == "mv_sector_v1").read_text("utf-8")
    out = formatted(text.replace("net_max: 20%", "net_max: 0.2")
                    .replace("l1_penalty: 1bps", "l1_penalty: 0.0001"))
    assert "  net_max:      20%\n" in out and "  l1_penalty:       1bps\n" in out
    assert "  risk_aversion:    5\n" in out
    assert meaning(out) == meaning(text)


def test_check_exits_1_when_a_file_would_change_and_writes_nothing(tmp_path):
    messy, tidy = tmp_path / "messy.policy", tmp_path / "tidy.policy"
    messy.write_text(MESSY)
    tidy.write_text(formatted(MESSY))
    runner = CliRunner()
    out = runner.invoke(main, ["fmt", "--check", str(tmp_path)])
    assert out.exit_code == 1 and f"would reformat {messy}" in out.output
    assert messy.read_text() == MESSY
    out = runner.invoke(main, ["fmt", str(messy), str(tidy)])
    assert out.exit_code == 0 and "1 file reformatted, 1 file left unchanged" in out.output
    assert messy.read_text() == tidy.read_text()
    assert runner.invoke(main, ["fmt", "--check", str(tmp_path)]).exit_code == 0
    broken = tmp_path / "broken.policy"
    broken.write_text("policy: [unclosed\n")
    out = runner.invoke(main, ["fmt", str(broken)])
    assert out.exit_code == 2 and "E0101" in out.output and "not well-formed" in out.output


def _mess(text: str, rng: random.Random) -> str:
    """The same policy laid out badly: spacing in expressions, flow sections, order."""
    def respace(m):
        return m.group(1) + re.sub(r"\s*([+*/,])\s*", lambda o: rng.choice(
            ["", " ", "  "]) + o.group(1) + rng.choice(["", " "]), m.group(2))
    text = re.sub(r"^(  \w+:\s+)(.*\(.*)$", respace, text, flags=re.M)
    blocks = re.split(r"\n(?=[a-z])", text.strip("\n"))
    rng.shuffle(blocks)
    return "\n".join(blocks) + "\n"


@settings(max_examples=12, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow])
@given(unit=st.sampled_from(["1", "price", "shares", "currency"]), data=st.data(),
       seed=st.integers(0, 2**16))
def test_generated_policies_format_to_the_same_ir(unit, data, seed):
    text = MINIMAL.format(expr=data.draw(series(unit, 3), label="expression"))
    messy = _mess(text, random.Random(seed))
    once = formatted(messy)
    assert formatted(once) == once
    assert meaning(once) == meaning(text) == meaning(messy)
