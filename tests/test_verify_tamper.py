"""Verification fails closed: every way of altering an artifact is refused with its own one-line
reason, the right exit code, and nothing runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import artifactkit as kit
from crowe.compiler.artifact import container as ct
from crowe.compiler.artifact import verify as v
from crowe.compiler.artifact.manifest import export_platform, this_platform
from crowe.compiler.artifact.signatures import PAYLOAD_TYPE
from crowe.compiler.artifact.trust import add
from crowe.runtime.artifact import load_artifact
from crowe.runtime.cli import main

NAME = "ts_trend_v1"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    alice, bob, eve = (kit.new_key(d, n) for n in ("alice", "bob", "eve"))
    trust = d / "trust"
    add(str(trust), alice.public, ["author"])
    add(str(trust), bob.public, ["risk"])
    return {"alice": alice, "bob": bob, "eve": eve, "trust": str(trust)}


@pytest.fixture(scope="module")
def signed(keys):
    return kit.sign(kit.compiled(NAME), keys["alice"], "author")


def refused(tmp_path, blob, error, *, trust=None, stage="sim", match=None):
    """The artifact is refused by `verify`, by `load_artifact` (no engine is built), and by the
    command line (`verify` and `backtest`, with the error's exit code and no results written)."""
    path = kit.write(tmp_path, blob)
    with pytest.raises(error) as info:
        v.verify(path, trust, stage)
    if match:
        assert match in str(info.value)
    with pytest.raises(error):
        load_artifact(path, trust_dir=trust, stage=stage)
    runner = CliRunner()
    args = ["--trust", trust] if trust else []
    r = runner.invoke(main, ["verify", path, "--stage", stage, *args])
    assert r.exit_code == error.exit_code, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output
    if stage == "sim":
        out = tmp_path / "results"
        r = runner.invoke(main, ["backtest", path, "--out", str(out), *args])
        assert r.exit_code == error.exit_code and not out.exists(), r.output
    return str(info.value)


def test_intact_artifact_verifies(tmp_path, signed, keys):
    assert v.verify(kit.write(tmp_path, signed), keys["trust"], "paper").signatures


@pytest.mark.parametrize("member", ["manifest.json", "source.policy", "ir.txt",
                                    "step.cpu.stablehlo", "init.cpu.stablehlo",
                                    "step.cuda.stablehlo", "signatures.json"])
@pytest.mark.parametrize("where", [0, -1])
def test_flipped_byte_in_a_member(tmp_path, signed, member, where):
    if member not in kit.members(signed):
        pytest.skip(f"this jax exported no {member}")
    start = kit.data_offset(signed, member)
    at = start if where == 0 else start + len(kit.members(signed)[member]) - 1
    blob = bytearray(signed)
    blob[at] ^= 0x01
    msg = refused(tmp_path, bytes(blob), v.MemberAltered)
    assert f"member `{member}` was altered" in msg


@pytest.mark.parametrize("member", ["source.policy", "ir.txt", "step.cpu.stablehlo",
                                    "init.cpu.stablehlo"])
def test_altered_member_with_a_fixed_checksum(tmp_path, signed, member):
    m = kit.members(signed)
    data = bytearray(m[member])
    data[len(data) // 2] ^= 0x20
    m[member] = bytes(data)
    msg = refused(tmp_path, ct.pack(m), v.MemberAltered)
    assert f"member `{member}` was altered: its SHA-256" in msg


def test_manifest_edited_under_a_signature(tmp_path, signed, keys):
    m = kit.members(signed)
    man = json.loads(m["manifest.json"])
    man["policy"]["version"] = "9.0.0"
    m["manifest.json"] = ct.canonical_json(man)
    msg = refused(tmp_path, ct.pack(m), v.BadSignature, trust=keys["trust"])
    assert "does not verify over this manifest" in msg


def test_manifest_not_canonical(tmp_path, signed):
    m = kit.members(signed)
    m["manifest.json"] = json.dumps(json.loads(m["manifest.json"]), indent=1).encode()
    refused(tmp_path, ct.pack(m), v.ManifestInvalid, match="not in canonical form")


@pytest.mark.parametrize("at", [0, 31, 63])
def test_flipped_byte_in_a_signature(tmp_path, signed, keys, at):
    (entry,) = kit.entries(signed)
    blob = kit.with_entries(signed, [kit.flip_sig(entry, at)])
    msg = refused(tmp_path, blob, v.BadSignature, trust=keys["trust"])
    assert "signature 1 (alice, author) does not verify" in msg
    refused(tmp_path, blob, v.BadSignature)          # caught without a trust store too


def test_added_member(tmp_path, signed):
    m = kit.members(signed)
    m["extra.bin"] = b"\x00payload"
    refused(tmp_path, ct.pack(m), v.UnlistedMember, match="member `extra.bin` is not listed")


@pytest.mark.parametrize("member", ["source.policy", "ir.txt", "step.cpu.stablehlo",
                                    "init.cpu.stablehlo", "signatures.json"])
def test_removed_member(tmp_path, signed, member):
    m = kit.members(signed)
    del m[member]
    refused(tmp_path, ct.pack(m), v.MemberMissing, match=f"member `{member}` is missing")


def test_removed_manifest_is_not_an_artifact(tmp_path, signed):
    m = kit.members(signed)
    del m["manifest.json"]
    refused(tmp_path, ct.pack(m), v.NotAnArtifact, match="has no manifest.json")


def test_container_headers_and_trailing_bytes(tmp_path, signed):
    refused(tmp_path, signed + b"\x00" * 7, v.ContainerAltered, match="7 bytes follow")
    blob = bytearray(signed)
    blob[10] ^= 0x01                     # the first member's modification time
    refused(tmp_path, bytes(blob), v.ContainerAltered, match="canonical form")


def test_signature_over_another_payload_type(tmp_path, signed, keys):
    digest = v.open_artifact(kit.write(tmp_path, signed)).digest
    from crowe.compiler.artifact.signatures import sign
    other = sign(keys["alice"], digest, "author", "application/vnd.in-toto+json")
    msg = refused(tmp_path, kit.with_entries(signed, [other]), v.WrongPayloadType,
                  trust=keys["trust"])
    assert "application/vnd.in-toto+json" in msg
    lying = dict(other, payload_type=PAYLOAD_TYPE)       # claims ours, signed over theirs
    refused(tmp_path, kit.with_entries(signed, [lying]), v.BadSignature, trust=keys["trust"])


def test_untrusted_key(tmp_path, keys):
    blob = kit.sign(kit.compiled(NAME), keys["eve"], "author")
    msg = refused(tmp_path, blob, v.UntrustedKey, trust=keys["trust"])
    assert "eve" in msg and "trust store does not hold" in msg


def test_role_the_key_does_not_hold(tmp_path, keys):
    blob = kit.sign(kit.compiled(NAME), keys["alice"], "risk")
    msg = refused(tmp_path, blob, v.RoleNotAllowed, trust=keys["trust"])
    assert "grants key `alice` only author, not risk" in msg


def test_role_is_signed_and_cannot_be_relabelled(tmp_path, keys):
    blob = kit.sign(kit.compiled(NAME), keys["bob"], "risk")
    (entry,) = kit.entries(blob)
    refused(tmp_path, kit.with_entries(blob, [dict(entry, role="author")]), v.BadSignature)


@pytest.mark.parametrize("keep", [0.99, 0.5, 0.1, 40])
def test_truncated_file(tmp_path, signed, keep):
    n = keep if isinstance(keep, int) else int(len(signed) * keep)
    refused(tmp_path, signed[:n], v.ArtifactTruncated, match="truncated")


@pytest.mark.parametrize("content", [b"policy: cs_mom_v1\nversion: 1.0.0\n", b"",
                                     b"\x89PNG\r\n\x1a\n" + b"\x00" * 100])
def test_not_an_artifact(tmp_path, content):
    refused(tmp_path, content, v.NotAnArtifact, match="is not a policy artifact")


def test_foreign_zip_is_not_an_artifact(tmp_path):
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("docs/readme.txt", "hello")
    refused(tmp_path, buf.getvalue(), v.NotAnArtifact, match="no manifest.json")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(v.ArtifactUnreadable, match="does not exist"):
        v.verify(str(tmp_path / "nope.cpol"))
    with pytest.raises(v.ArtifactUnreadable, match="is a directory"):
        v.verify(str(tmp_path))


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["toolchain"].update(jax="0.4.30"), "built with jax 0.4.30"),
    (lambda m: m["toolchain"].update(jaxlib="0.4.30"), "built with jaxlib 0.4.30"),
    (lambda m: m["toolchain"].update(x64=False), "x64 off"),
    (lambda m: m["toolchain"].update(platforms=["tpu"]), "not for this backend (cpu)"),
    (lambda m: m["toolchain"].update(xla_flags=m["toolchain"]["xla_flags"] +
                                     " --xla_cpu_enable_fast_math=true"),
     "compiled with XLA_FLAGS"),
])
def test_toolchain_mismatch_even_when_signed(tmp_path, keys, edit, match):
    blob = kit.rewrite_manifest(kit.compiled(NAME), edit, [(keys["alice"], "author")])
    refused(tmp_path, blob, v.ToolchainMismatch, trust=keys["trust"], stage="paper",
            match=match)


def test_unknown_format_version(tmp_path):
    blob = kit.rewrite_manifest(kit.compiled(NAME), lambda m: m.update(format_version=2))
    refused(tmp_path, blob, v.ManifestInvalid, match="format version 2 is not supported")


def test_every_refusal_has_its_own_message():
    classes = [c for c in vars(v).values() if isinstance(c, type) and
               issubclass(c, v.ArtifactError) and c not in (v.ArtifactError, v.UnusableInput,
                                                             v.VerificationFailed)]
    assert len(classes) >= 18
    for c in classes:
        assert c.__doc__ and c.__doc__ != v.ArtifactError.__doc__, c
        assert c.exit_code == (2 if issubclass(c, v.UnusableInput) else 1), c


FRESH = """
import json, sys
import jax
before = jax.config.read("jax_enable_x64")
from crowe.compiler.artifact.verify import verify
art = verify(sys.argv[1])
print(json.dumps({"x64_before": before, "name": art.artifact.name,
                  "runtime": sorted(m for m in sys.modules if m.startswith("crowe.runtime"))}))
"""


def test_verify_first_in_a_fresh_program(tmp_path):
    """Verification turns x64 on itself: a program that imports nothing of ours but `verify`
    accepts a valid artifact."""
    path = kit.write(tmp_path, kit.compiled(NAME))
    env = {k: val for k, val in os.environ.items() if k != "JAX_ENABLE_X64"}
    r = subprocess.run([sys.executable, "-c", FRESH, path], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"x64_before": False, "name": NAME, "runtime": []}


@pytest.mark.parametrize("backend, version, platform", [
    ("cpu", "cpu", "cpu"),
    ("gpu", "cuda 12080", "cuda"),          # what jax.default_backend() says on a CUDA GPU
    ("cuda", "cuda 12080", "cuda"),
    ("gpu", "rocm 60300", "rocm"),
    ("rocm", "", "rocm"),
    ("tpu", "TFRT TPU v4", "tpu"),
    ("GPU", "CUDA 12.8", "cuda"),
    ("gpu", "", "gpu"),                     # an unknown GPU matches no module: refused
])
def test_backend_names_map_to_export_platforms(backend, version, platform):
    assert export_platform(backend, version) == platform


def test_this_platform_is_the_one_jax_export_uses():
    from jax import export
    assert this_platform() == export.default_export_platform()


def test_a_cuda_runtime_finds_the_cuda_modules(tmp_path, monkeypatch):
    blob = kit.rewrite_manifest(kit.compiled(NAME),
                                lambda m: m["toolchain"].update(platforms=["cpu", "cuda"]) or
                                m["modules"].setdefault("cuda", m["modules"]["cpu"]))
    path = kit.write(tmp_path, blob)
    monkeypatch.setattr(v, "this_platform", lambda: export_platform("gpu", "cuda 12080"))
    assert v.verify(path).manifest["modules"]["cuda"]
    monkeypatch.setattr(v, "this_platform", lambda: "gpu")
    with pytest.raises(v.ToolchainMismatch, match="not for this backend"):
        v.verify(path)


def test_a_runtime_with_other_xla_flags_is_refused(tmp_path, signed):
    """The same artifact under other XLA flags (fast math) would make other decisions: the
    runtime refuses it rather than run it."""
    path = kit.write(tmp_path, signed)
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_enable_fast_math=true").strip()
    code = ("import sys\nfrom crowe.compiler.artifact import verify as v\n"
            "try:\n    v.verify(sys.argv[1])\nexcept v.ToolchainMismatch as e:\n"
            "    print(e)\n    sys.exit(1)\n")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "compiled with XLA_FLAGS" in out.stdout and "fast_math" in out.stdout
    v.verify(path)                     # and this process, with the flags it was built with
