"""`crowe schema`: the JSON Schema that YAML editors validate a policy against."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from crowe.dsl.diagnostics import Diagnostics
from crowe.dsl.json_schema import policy_schema
from crowe.dsl.source import SourceFile
from crowe.dsl.yamlload import load_yaml, to_plain
from crowe.runtime.cli import main
from crowe.stdlib import components as reg

ROOT = Path(__file__).parent.parent
POLICIES = sorted((ROOT / "policies").glob("*.policy"))
VALIDATOR = jsonschema.Draft202012Validator(policy_schema())


def plain(text: str) -> dict:
    """The document as an editor's YAML 1.2 reader sees it (ours is one)."""
    diags = Diagnostics()
    root = load_yaml(SourceFile("p.policy", text), diags)
    assert not diags.items
    return to_plain(root)


def problems(doc: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(policy_schema())


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_every_example_validates(path):
    assert problems(plain(path.read_text("utf-8"))) == []


def test_a_misspelt_section_does_not_validate():
    doc = plain(POLICIES[0].read_text("utf-8"))
    doc["featurse"] = doc.pop("features")
    found = problems(doc)
    assert len(found) == 1 and "'featurse' was unexpected" in found[0]


def test_wrong_settings_and_choices_do_not_validate():
    doc = plain((ROOT / "policies" / "cs_mom_v1.policy").read_text("utf-8"))
    cases = [("sizing", {"method": "kelly_tempered", "lamda": 0.3}),   # a misspelt setting
             ("sizing", {"method": "kelly"}),                          # an unknown method
             ("execution", {"algo": "limit", "limit_offset": [3]}),    # a list, not a number
             ("risk", dict(doc["risk"], gross_max="lots")),            # not a fraction
             ("signal", {"mu": "mu_5d"})]                              # `sigma` missing
    for section, value in cases:
        assert problems(dict(doc, **{section: value})), (section, value)
    del doc["stand_down"]
    assert problems(doc) == ["[]: 'stand_down' is a required property"]


def test_every_registered_component_has_its_settings_in_the_schema():
    text = json.dumps(policy_schema())
    for registry in (reg.SIZING, reg.PORTFOLIO, reg.EXECUTION):
        for c in registry:
            assert f'"{c.name}"' in text, c.name
            for name, f in c.settings.model_fields.items():
                assert f'"{f.alias or name}"' in text, (c.name, name)


def test_the_command_prints_the_schema_and_writes_a_file(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["schema"])
    assert out.exit_code == 0 and json.loads(out.output) == policy_schema()
    target = tmp_path / "policy.schema.json"
    out = runner.invoke(main, ["schema", "-o", str(target)])
    assert out.exit_code == 0 and json.loads(target.read_text()) == policy_schema()
    out = runner.invoke(main, ["schema", "-o", str(tmp_path / "no" / "x.json")])
    assert out.exit_code == 2 and "cannot be written" in out.output


def test_optimizer_constraints_and_rebalance_periods_validate_as_written():
    doc = plain((ROOT / "policies" / "mv_sector_v1.policy").read_text("utf-8"))
    doc["portfolio"]["constraints"] = {"net": ["-5%", "5%"], "gross": "90%",
                                       "sector_net": [-0.04, "4%"],
                                       "exposure": {"mkt_beta": [-0.05, 0.05]}}
    doc["execution"]["rebalance"] = {"every": "1mo", "drift": "2%"}
    assert problems(doc) == []
    doc["portfolio"]["constraints"]["net"] = ["-5%"]
    doc["execution"]["rebalance"]["every"] = "monthly"
    assert len(problems(doc)) == 2


def test_a_setting_type_without_a_json_schema_is_refused(monkeypatch):
    from crowe.dsl import json_schema
    monkeypatch.delitem(json_schema._READERS, "_every")
    with pytest.raises(TypeError, match="no JSON schema for settings read by `_every`"):
        json_schema.policy_schema()
