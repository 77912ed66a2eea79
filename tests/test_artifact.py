"""The artifact: reproducible bytes, its members and manifest, and that running it is running the
source: the deserialized step gives the source backtest's results bit for bit."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from artifactkit import POLICIES, ROOT, checked, compiled, manifest, members, panel, write
from crowe.compiler.artifact import container as ct
from crowe.compiler.irtext import ir_text
from crowe.compiler.program import to_ir
from crowe.runtime.artifact import load_artifact
from crowe.runtime.backtest import backtest, make_bar_runner
from crowe.runtime.engine import Engine, panel_bars, to_numpy

BIN = Path(sys.executable).parent


def test_two_processes_compile_identical_bytes(tmp_path):
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}" / "ts.cpol"
        subprocess.run([str(BIN / "crowe-compile"), str(ROOT / "policies/ts_trend_v1.policy"),
                        "-o", str(out)], check=True, capture_output=True, cwd=tmp_path)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] == compiled("ts_trend_v1")     # and the same as an in-process build


def test_no_paths_or_timestamps_inside():
    blob = compiled("cs_mom_v1")
    for needle in (str(ROOT), os.path.expanduser("~"), "/tmp", "site-packages", ".venv"):
        assert needle.encode() not in blob, needle
    with zipfile.ZipFile(__import__("io").BytesIO(blob)) as z:    # any zip tool reads it
        infos = z.infolist()
        assert z.testzip() is None
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_members_are_listed_with_hashes():
    blob = compiled("mv_sector_v1")
    m = members(blob)
    man = json.loads(m["manifest.json"])
    assert list(m)[0] == "manifest.json" and list(m)[-1] == "signatures.json"
    assert set(man["members"]) == set(m) - {"manifest.json", "signatures.json"}
    assert {"source.policy", "ir.txt", "step.cpu.stablehlo", "init.cpu.stablehlo"} <= set(m)
    for name, want in man["members"].items():
        assert want == {"sha256": hashlib.sha256(m[name]).hexdigest(), "size": len(m[name])}
    assert m["manifest.json"] == ct.canonical_json(man)
    assert m["source.policy"] == checked("mv_sector_v1")[1]


def test_manifest_records_what_a_runtime_needs():
    man = manifest(compiled("cs_mom_v1"))
    import jax
    import jaxlib
    tc = man["toolchain"]
    assert (tc["jax"], tc["jaxlib"], tc["x64"]) == (jax.__version__, jaxlib.__version__, True)
    assert "cpu" in tc["platforms"] and set(man["modules"]) == set(tc["platforms"])
    assert tc["xla_flags"] == os.environ.get("XLA_FLAGS", "")
    assert man["policy"] == {"name": "cs_mom_v1", "version": "1.0.0", "owner": "CR-008",
                             "description": man["policy"]["description"]}
    assert man["universe"]["symbols"] == sorted(man["universe"]["symbols"])
    assert man["universe"]["symbols_from"] == "data"
    lookback = next(p for p in man["params"] if p["name"] == "lookback")
    assert lookback == {"name": "lookback", "dtype": "int", "default": 126, "lo": 63, "hi": 252,
                        "doc": "momentum formation window in bars"}
    assert man["warmup"] == to_ir(checked("cs_mom_v1")[0]).warmup
    assert man["bar_schema"]["close"] == {"dtype": "float64", "shape": [5]}
    assert man["bar_schema"]["ts"] == {"dtype": "int64", "shape": []}
    assert man["market"]["participation_cap"] == 0.1
    assert "gate:edge" in man["reasons"]


def test_ir_text_is_canonical():
    pir = to_ir(checked("cs_mom_v1")[0])
    text = ir_text(pir)
    assert text == ir_text(to_ir(checked("cs_mom_v1")[0]))
    assert text.startswith("# crowe policy IR") and text.endswith("\n")
    assert "root signal.mu = %" in text and "param lookback int default=126 range=[63, 252]" \
        in text
    ids = [line.split(" = ")[0] for line in text.splitlines() if line.startswith("%")]
    assert ids == [f"%{i}" for i in range(len(ids))]


@pytest.mark.parametrize("name", ["cs_mom_v1", "mv_sector_v1", "ts_trend_v1", "xs_reversal_v1"])
def test_ir_text_lists_every_enforced_limit_with_its_value(name):
    from crowe.dsl.check import active_components
    policy = checked(name)[0]
    lines = [line for line in ir_text(to_ir(policy)).splitlines() if line.startswith("enforce ")]
    active = active_components(policy.spec)
    assert len(lines) == len(active) + (policy.spec.compliance is not None)
    for (component, _), line in zip(active, lines):
        assert line.split()[1:4:2] == [component.slot, component.name], line
    risk = policy.spec.risk
    assert f"enforce overlay risk.position_max position_max value={risk.position_max!r}" in lines
    if name == "xs_reversal_v1":
        assert 'enforce limit risk.drawdown.from_peak from_peak action="halt" cooldown=' \
               '{"count":10,"unit":"d"} max=0.1 reset_peak_after_cooldown=false' in lines
        assert "enforce order_rule compliance.max_order_notional max_order_notional " \
               "value=500000.0" in lines
        assert 'enforce detector stand_down.news_gap when action="exclude" cooldown=null ' \
               'when="gap > 8%"' in lines
        assert lines[-1].startswith('enforce compliance restricted=["RRC"]')


def test_engine_fields_come_from_the_manifest(tmp_path):
    loaded = load_artifact(write(tmp_path, compiled("xs_reversal_v1")))
    src = Engine.from_policy(checked("xs_reversal_v1")[0], loaded.engine.symbols)
    e = loaded.engine
    for field in ("name", "version", "symbols", "cfg", "bars_per_year", "reasons",
                  "param_specs", "warmup"):
        assert getattr(e, field) == getattr(src, field), field
    assert loaded.verified.digest == hashlib.sha256(
        members(compiled("xs_reversal_v1"))["manifest.json"]).hexdigest()


@pytest.mark.parametrize("name", POLICIES)
def test_artifact_backtest_is_the_source_backtest_bit_for_bit(name, tmp_path):
    p = panel(name)
    art = load_artifact(write(tmp_path, compiled(name)), cash=2e6).engine
    src = Engine.from_policy(checked(name)[0], p.symbols, 2e6)
    assert (art.calendar, art.bar_seconds) == (src.calendar, src.bar_seconds)  # sessions too
    a, b = backtest(art, p), backtest(src, p)
    assert a.out.keys() == b.out.keys()
    for k in a.out:
        np.testing.assert_array_equal(a.out[k], b.out[k], err_msg=k)
    assert a.metrics == b.metrics
    assert np.count_nonzero(a.out["order_qty"]) > 0      # the policy traded


# The bars the bar-by-bar comparison runs (first, count): past each policy's warm-up, with trades.
BARS = {"cs_mom_v1": (2500, 300), "xs_reversal_v1": (0, 120), "ts_trend_v1": (0, 150),
        "mv_sector_v1": (0, 170), "hrp_sleeve_v1": (0, 120), "rp_book_v1": (0, 320),
        "intraday_twap_v1": (0, 120)}


def _window(name):
    first, count = BARS[name]
    return panel(name)._take(slice(first, first + count), slice(None))


def _bar_by_bar(engine, p) -> dict:
    one, carry, params = make_bar_runner(engine), engine.init_carry(), engine.params()
    bars, outs = to_numpy(panel_bars(p, engine)), []
    for t in range(p.T):
        carry, out = one(params, carry, {k: v[t] for k, v in bars.items()})
        outs.append(out)
    return {k: np.stack([o[k] for o in outs]) for k in outs[0]}


@pytest.mark.parametrize("name", POLICIES)
def test_artifact_bar_by_bar_reproduces_the_source_backtest(name, tmp_path):
    p = _window(name)
    art = load_artifact(write(tmp_path, compiled(name))).engine
    ref = backtest(Engine.from_policy(checked(name)[0], p.symbols), p)
    got = _bar_by_bar(art, p)
    assert np.count_nonzero(got["order_qty"]) > 0
    for k in ref.out:
        np.testing.assert_array_equal(got[k], ref.out[k], err_msg=k)
