"""Keys, signatures, the trust store, approvals per stage, rollback, and the whole flow through
the installed commands."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization as ser

import artifactkit as kit
from crowe.compiler.artifact import container as ct
from crowe.compiler.artifact import keys as ks
from crowe.compiler.artifact import verify as v
from crowe.compiler.artifact.signatures import pae
from crowe.compiler.artifact.trust import TrustStoreError, add, load
from crowe.runtime.cli import main

NAME = "ts_trend_v1"
BIN = Path(sys.executable).parent


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.output


@pytest.fixture
def team(tmp_path):
    keys = {n: kit.new_key(tmp_path, n) for n in ("alice", "bob", "carol")}
    trust = str(tmp_path / "trust")
    add(trust, keys["alice"].public, ["author", "risk"])   # alice may do both, alone
    add(trust, keys["bob"].public, ["risk"])
    add(trust, keys["carol"].public, ["author", "compliance"])
    return keys, trust


def test_pae_is_dsse():
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_keygen_files(tmp_path):
    code, out = cli("keygen", "--out", tmp_path / "k", "--name", "Risk Officer")
    assert code == 0, out
    priv, pub = tmp_path / "k", tmp_path / "k.pub"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert ser.load_pem_private_key(priv.read_bytes(), None)      # standard PEM underneath
    key = ks.load_signing_key(str(priv))
    assert key.name == "Risk Officer"
    assert ks.load_public_key(str(pub)).keyid == key.public.keyid in out
    code, out = cli("keygen", "--out", tmp_path / "k")
    assert code == 2 and "already exists" in out


def test_key_file_errors(tmp_path):
    (tmp_path / "junk").write_text("not a key")
    assert cli("sign", "x.cpol", "--key", tmp_path / "junk", "--role", "author")[0] == 2
    ks.generate(str(tmp_path / "k"))
    code, out = cli("trust", "add", tmp_path / "k", "--role", "author", "--trust", tmp_path)
    assert code == 2 and "give the `.pub` file" in out


def test_approval_flow(tmp_path, team):
    keys, trust = team
    path = kit.write(tmp_path, kit.compiled(NAME))
    for stage, ok in (("sim", True), ("paper", False), ("live", False)):
        assert (cli("verify", path, "--trust", trust, "--stage", stage)[0] == 0) == ok, stage
    assert cli("sign", path, "--key", tmp_path / "alice.key", "--role", "author")[0] == 0
    assert cli("verify", path, "--trust", trust, "--stage", "paper")[0] == 0
    code, out = cli("verify", path, "--trust", trust, "--stage", "live")
    assert code == 1 and "other than the author's" in out
    # the same key signing again, now as risk, does not make a second approver
    assert cli("sign", path, "--key", tmp_path / "alice.key", "--role", "risk")[0] == 0
    assert cli("verify", path, "--trust", trust, "--stage", "live")[0] == 1
    # a different key with risk does
    assert cli("sign", path, "--key", tmp_path / "bob.key", "--role", "risk")[0] == 0
    code, out = cli("verify", path, "--trust", trust, "--stage", "live")
    assert code == 0 and "verified for live" in out


def test_same_signature_twice_counts_once(tmp_path, team):
    keys, trust = team
    blob = kit.sign(kit.compiled(NAME), keys["carol"], "author")
    blob = kit.with_entries(blob, kit.entries(blob) * 2)
    path = kit.write(tmp_path, blob)
    assert v.verify(path, trust, "paper")
    with pytest.raises(v.ApprovalMissing):
        v.verify(path, trust, "live")
    code, out = cli("sign", path, "--key", tmp_path / "carol.key", "--role", "author")
    assert code == 2 and "already signed by carol as author" in out


def test_sign_rewrites_only_the_signatures(tmp_path, team):
    path = kit.write(tmp_path, kit.compiled(NAME))
    before = kit.members(Path(path).read_bytes())
    assert cli("sign", path, "--key", tmp_path / "bob.key", "--role", "risk")[0] == 0
    after = kit.members(Path(path).read_bytes())
    assert {k: x for k, x in after.items() if k != ct.SIGNATURES} == \
        {k: x for k, x in before.items() if k != ct.SIGNATURES}
    (entry,) = json.loads(after[ct.SIGNATURES])["signatures"]
    assert entry["name"] == "bob" and entry["role"] == "risk"
    assert entry["keyid"] == team[0]["bob"].public.keyid
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_sign_refuses_a_damaged_artifact(tmp_path):
    kit.new_key(tmp_path, "bob")
    blob = bytearray(kit.compiled(NAME))
    blob[kit.data_offset(bytes(blob), "ir.txt")] ^= 1
    path = kit.write(tmp_path, bytes(blob))
    code, out = cli("sign", path, "--key", tmp_path / "bob.key", "--role", "risk")
    assert code == 1 and "was altered" in out


def test_trust_store(tmp_path, team):
    keys, trust = team
    code, out = cli("trust", "list", "--trust", trust, "--format", "json")
    listed = json.loads(out)
    assert code == 0 and [(k["name"], k["roles"]) for k in listed] == [
        ("alice", ["author", "risk"]), ("bob", ["risk"]), ("carol", ["author", "compliance"])]
    code, out = cli("trust", "add", tmp_path / "bob.key.pub", "--role", "risk", "--role",
                    "compliance", "--trust", trust)
    assert code == 0 and out.startswith("updated bob")
    assert load(trust)[keys["bob"].public.keyid].roles == ("risk", "compliance")
    # an entry whose key id does not match its key makes the store unusable (fail closed)
    first = sorted(Path(trust).glob("*.json"))[0]
    first.rename(first.with_name("0" * 64 + ".json"))
    with pytest.raises(TrustStoreError, match="does not match"):
        load(trust)
    path = kit.write(tmp_path, kit.compiled(NAME))
    assert cli("verify", path, "--trust", trust)[0] == 2
    assert cli("verify", path, "--trust", tmp_path / "absent")[0] == 2
    assert cli("verify", path, "--stage", "paper")[0] == 2        # paper needs --trust


def test_rollback(tmp_path, team):
    keys, trust = team
    state = str(tmp_path / "state")

    def version(ver):
        blob = kit.rewrite_manifest(kit.compiled(NAME),
                                    lambda m: m["policy"].update(version=ver),
                                    [(keys["carol"], "author")])
        return kit.write(tmp_path, blob, f"v{ver}.cpol")

    assert cli("verify", version("1.1.0"), "--trust", trust, "--stage", "paper",
               "--state-dir", state, "--record")[0] == 0
    code, out = cli("verify", version("1.0.0"), "--trust", trust, "--stage", "paper",
                    "--state-dir", state)
    assert code == 1 and "lower than version 1.1.0 already run" in out
    assert cli("verify", version("1.0.0"), "--trust", trust, "--stage", "paper",
               "--state-dir", state, "--allow-rollback")[0] == 0
    assert cli("verify", version("1.1.0-rc.1"), "--stage", "sim", "--state-dir", state)[0] == 1
    for ok in ("1.1.0", "1.1.1", "2.0.0"):
        assert cli("verify", version(ok), "--state-dir", state, "--record")[0] == 0, ok
    assert json.loads((Path(state) / "versions.json").read_text())[NAME]["version"] == "2.0.0"
    assert v.version_key("1.0.0-alpha") < v.version_key("1.0.0-alpha.1") < \
        v.version_key("1.0.0-beta") < v.version_key("1.0.0") < v.version_key("1.0.10")


def test_inspect(tmp_path, team):
    keys, trust = team
    blob = kit.sign(kit.sign(kit.compiled(NAME), keys["alice"], "author"), keys["bob"],
                    "author")
    path = kit.write(tmp_path, blob)
    code, out = cli("inspect", path, "--trust", trust, "--format", "json")
    info = json.loads(out)
    assert code == 0 and info["policy"]["name"] == NAME and info["warmup"] == 99
    assert [(s["name"], s["role"], s["status"]) for s in info["signatures"]] == [
        ("alice", "author", "verified"), ("bob", "author", "refused")]
    assert {m["name"] for m in info["members"]} >= {"source.policy", "ir.txt"}
    code, text = cli("inspect", path)
    assert code == 0
    for needle in ("ts_trend_v1 1.0.0", "owner CR-008", "jax ", "warm-up    99 bars",
                   "fast", "[5, 60]", "sha256", "alice as author", "intact"):
        assert needle in text, needle


def run(*args, cwd):
    return subprocess.run([str(BIN / args[0]), *map(str, args[1:])], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})


def test_end_to_end_through_the_installed_commands(tmp_path):
    pol = kit.policy_path(NAME)
    steps = [("crowe", "keygen", "--out", "alice.key", "--name", "alice"),
             ("crowe", "keygen", "--out", "bob.key", "--name", "bob"),
             ("crowe", "trust", "add", "alice.key.pub", "--role", "author", "--trust", "trust"),
             ("crowe", "trust", "add", "bob.key.pub", "--role", "risk", "--trust", "trust"),
             ("crowe-compile", pol, "-o", "ts.cpol", "--sign-key", "alice.key"),
             ("crowe", "verify", "ts.cpol", "--trust", "trust", "--stage", "paper")]
    for args in steps:
        r = run(*args, cwd=tmp_path)
        assert r.returncode == 0, (args, r.stderr)
    r = run("crowe", "verify", "ts.cpol", "--trust", "trust", "--stage", "live", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert run("crowe", "sign", "ts.cpol", "--key", "bob.key", "--role", "risk",
               cwd=tmp_path).returncode == 0
    assert run("crowe", "verify", "ts.cpol", "--trust", "trust", "--stage", "live",
               cwd=tmp_path).returncode == 0
    window = ("--start", "2011-01-01", "--end", "2012-12-31", "--format", "json")
    a = run("crowe", "backtest", "ts.cpol", "--trust", "trust", "--out", "oa", *window,
            cwd=tmp_path)
    b = run("crowe", "backtest", pol, "--out", "ob", *window, cwd=tmp_path)
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    assert ja["metrics"] == jb["metrics"] and ja["bars"] == jb["bars"] > 400
    assert (ja["policy"], ja["version"], ja["data"]) == (jb["policy"], jb["version"], jb["data"])
    assert (tmp_path / "oa" / "metrics.json").read_bytes() == \
        (tmp_path / "ob" / "metrics.json").read_bytes()
