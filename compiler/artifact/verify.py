"""Verification of policy artifacts: integrity, signatures, approvals, toolchain, rollback.

    artifact = verify("cs_mom_v1.cpol", trust_dir="trust", stage="live", state_dir="state")

`verify` returns a `VerifiedArtifact` or raises an `ArtifactError`, and checks, in this order:

1. the file is a canonical artifact container and every member is intact (each one listed in the
   manifest with its SHA-256 and size, none missing, none unlisted);
2. the manifest is canonical JSON of a format this runtime reads, and the toolchain it records
   is this one (jax and jaxlib versions, this backend among the exported platforms, x64 on:
   verification turns x64 on, as running a policy does, so it gives the same answer whatever
   the program imported before);
3. every signature present verifies, is over the policy-manifest payload type, and, given a
   trust store, is by a trusted key that holds the role it claims;
4. the signatures meet the stage: `sim` needs none, `paper` an `author`, `live` an `author`
   plus a `risk` signature by a different key (a key counts once however often it signs);
5. with a state directory, the version is not lower than the highest one run from it.

Errors fall in two families with their exit codes: `UnusableInput` (2: the input could not be
examined at all) and `VerificationFailed` (1: it was examined and must not run). Each message is
one line that names what was found.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from crowe.dsl.files import read_limited

from . import container as ct
from . import trust as ts
from .keys import PublicKey, key_id, unb64, write_atomic
from .manifest import FORMAT, FORMAT_VERSION, REQUIRED, this_platform
from .signatures import FIELDS, PAYLOAD_TYPE, ROLES, signature_verifies

STAGES = ("sim", "paper", "live")
STATE_FILE = "versions.json"
EXIT_FAILED, EXIT_UNUSABLE = 1, 2


class ArtifactError(Exception):
    """An artifact that must not run. `exit_code` is what the command line exits with."""

    exit_code = EXIT_FAILED


class UnusableInput(ArtifactError):
    """The input could not be examined (exit 2)."""

    exit_code = EXIT_UNUSABLE


class ArtifactUnreadable(UnusableInput):
    """The artifact file is missing, a directory, or cannot be read."""


class NotAnArtifact(UnusableInput):
    """The file is not a policy artifact at all (not a zip container, or no manifest)."""


class ArtifactTruncated(UnusableInput):
    """The file starts like an artifact but ends early."""


class TrustStoreUnusable(UnusableInput):
    """The trust directory is missing or holds an inconsistent entry."""


class StateDirUnusable(UnusableInput):
    """The state directory's version record cannot be read or written."""


class VerificationFailed(ArtifactError):
    """The artifact was examined and is refused (exit 1)."""


class ContainerAltered(VerificationFailed):
    """The container's structure differs from the canonical one: headers changed, bytes added,
    members reordered or duplicated."""


class MemberAltered(VerificationFailed):
    """A member's bytes differ from what the manifest (or the container's checksum) records."""


class MemberMissing(VerificationFailed):
    """A member that the manifest lists is not in the container."""


class UnlistedMember(VerificationFailed):
    """The container holds a member that the manifest does not list."""


class ManifestInvalid(VerificationFailed):
    """The manifest is not canonical JSON of a known format, or lacks what a runtime needs."""


class SignaturesInvalid(VerificationFailed):
    """`signatures.json` is not a well-formed list of signatures."""


class WrongPayloadType(VerificationFailed):
    """A signature was made over another payload type than a policy manifest."""


class BadSignature(VerificationFailed):
    """A signature does not verify over this manifest (altered, or made for other bytes)."""


class UntrustedKey(VerificationFailed):
    """A signature is by a key that the trust store does not hold."""


class RoleNotAllowed(VerificationFailed):
    """A signature claims a role that the trust store does not grant its key."""


class ApprovalMissing(VerificationFailed):
    """The valid signatures do not meet what the stage requires."""


class ToolchainMismatch(VerificationFailed):
    """The artifact was built by a toolchain this runtime cannot reproduce (jax or jaxlib
    version, backend not exported, x64 off)."""


class RollbackRefused(VerificationFailed):
    """The policy version is lower than one already run from the same state directory."""


@dataclass(frozen=True)
class Signature:
    """One entry of `signatures.json` and what verification found about it."""

    index: int
    keyid: str
    name: str               # the trust store's name when trusted, else the one claimed
    role: str
    trusted: bool | None    # None: no trust store was given
    entry: dict = field(repr=False, compare=False)


@dataclass(frozen=True)
class Artifact:
    """An artifact whose container and members are intact (signatures not yet judged)."""

    path: str
    members: dict[str, bytes] = field(repr=False)
    manifest: dict = field(repr=False)
    digest: str                              # SHA-256 of manifest.json: what signatures cover
    entries: tuple[dict, ...] = field(repr=False)

    @property
    def name(self) -> str:
        return self.manifest["policy"]["name"]

    @property
    def version(self) -> str:
        return self.manifest["policy"]["version"]


@dataclass(frozen=True)
class VerifiedArtifact:
    artifact: Artifact
    stage: str
    signatures: tuple[Signature, ...]

    @property
    def digest(self) -> str:
        return self.artifact.digest

    @property
    def manifest(self) -> dict:
        return self.artifact.manifest


def verify(path: str, trust_dir: str | None = None, stage: str = "sim",
           state_dir: str | None = None, allow_rollback: bool = False,
           record: bool = False) -> VerifiedArtifact:
    """Verify the artifact at `path` for `stage`; see the module docstring. With `record`, the
    version is written to `state_dir` as run (what a runtime does when it starts the policy)."""
    if stage not in STAGES:
        raise UnusableInput(f"unknown stage `{stage}`; the stages are sim, paper, live")
    if stage != "sim" and trust_dir is None:
        raise UnusableInput(f"stage `{stage}` needs signatures checked against a trust store: "
                            "pass --trust DIR")
    art = open_artifact(path)
    check_toolchain(art)
    keys = _trust(trust_dir) if trust_dir is not None else None
    sigs = check_signatures(art, keys)
    check_stage(art, sigs, stage)
    if state_dir is not None:
        check_rollback(art, state_dir, allow_rollback)
        if record:
            record_run(art, state_dir)
    return VerifiedArtifact(art, stage, sigs)


# -- 1. container and members -------------------------------------------------------------------

def open_artifact(path: str) -> Artifact:
    """Read the artifact and check its integrity: container, manifest, every member's hash."""
    blob = _read(path)
    members = _unpack(path, blob)
    raw = members[ct.MANIFEST]
    manifest = _manifest(path, raw)
    _check_members(path, members, manifest)
    entries = _entries(path, members[ct.SIGNATURES])
    return Artifact(path, members, manifest, hashlib.sha256(raw).hexdigest(), entries)


def _read(path: str) -> bytes:
    blob = read_limited(path, ct.MAX_BYTES, "an artifact", ArtifactUnreadable)
    if len(blob) > ct.MAX_BYTES:
        raise NotAnArtifact(f"`{path}` is not a policy artifact: it is larger than "
                            f"{ct.MAX_BYTES // 2**20} MiB")
    return blob


def _unpack(path: str, blob: bytes) -> dict[str, bytes]:
    try:
        return ct.unpack(blob)
    except ct.NotAContainer as e:
        raise NotAnArtifact(f"`{path}` is not a policy artifact: {e}") from None
    except ct.Truncated as e:
        raise ArtifactTruncated(f"`{path}` is truncated: {e}") from None
    except ct.CrcMismatch as e:
        raise MemberAltered(f"`{path}`: member `{e.name}` was altered: its bytes do not match "
                            "the container's checksum") from None
    except ct.NonCanonical as e:
        raise ContainerAltered(f"`{path}`: the container was altered: {e}") from None


def _manifest(path: str, raw: bytes) -> dict:
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise ManifestInvalid(f"`{path}`: {ct.MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotAnArtifact(f"`{path}` is not a policy artifact: its manifest is not a "
                            f"`{FORMAT}` manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ManifestInvalid(f"`{path}`: manifest format version "
                              f"{manifest.get('format_version')!r} is not supported (this "
                              f"runtime reads version {FORMAT_VERSION})")
    if ct.canonical_json(manifest) != raw:
        raise ManifestInvalid(f"`{path}`: {ct.MANIFEST} is not in canonical form")
    missing = [k for k in REQUIRED if not isinstance(manifest.get(k), REQUIRED[k])]
    if missing:
        raise ManifestInvalid(f"`{path}`: the manifest lacks `{missing[0]}`")
    return manifest


def _check_members(path: str, members: dict[str, bytes], manifest: dict) -> None:
    listed = manifest["members"]
    present = set(members) - {ct.MANIFEST, ct.SIGNATURES}
    for name in sorted(set(listed) | {ct.SIGNATURES}):
        if name not in members:
            raise MemberMissing(f"`{path}`: member `{name}` is missing")
    for name in sorted(present - set(listed)):
        raise UnlistedMember(f"`{path}`: member `{name}` is not listed in the manifest")
    for name in sorted(listed):
        want, data = listed[name], members[name]
        if not isinstance(want, dict) or want.get("size") != len(data) or \
                want.get("sha256") != hashlib.sha256(data).hexdigest():
            raise MemberAltered(f"`{path}`: member `{name}` was altered: its SHA-256 or size "
                                "does not match the manifest")


def _entries(path: str, raw: bytes) -> tuple[dict, ...]:
    where = f"`{path}`: {ct.SIGNATURES}"
    try:
        data = json.loads(raw)
    except ValueError:
        raise SignaturesInvalid(f"{where} is not valid JSON") from None
    if not isinstance(data, dict) or set(data) != {"signatures"} or \
            not isinstance(data["signatures"], list) or ct.canonical_json(data) != raw:
        raise SignaturesInvalid(f"{where} is not a canonical list of signatures")
    for i, e in enumerate(data["signatures"], 1):
        if not isinstance(e, dict) or set(e) != FIELDS or \
                not all(isinstance(v, str) for v in e.values()):
            raise SignaturesInvalid(f"{where}: signature {i} is not a signature record")
    return tuple(data["signatures"])


# -- 2. toolchain ---------------------------------------------------------------------------------

def check_toolchain(art: Artifact) -> None:
    import jax
    import jaxlib

    jax.config.update("jax_enable_x64", True)      # what importing the runtime's engine does
    tc, where = art.manifest["toolchain"], f"`{art.path}`"
    for name, have in (("jax", jax.__version__), ("jaxlib", jaxlib.__version__)):
        if tc.get(name) != have:
            raise ToolchainMismatch(f"{where} was built with {name} {tc.get(name)}, this "
                                    f"runtime has {name} {have}; recompile it with this "
                                    "toolchain")
    if tc.get("x64") is not True:
        raise ToolchainMismatch(f"{where} was built with x64 off; policies run in float64")
    if not jax.config.read("jax_enable_x64"):
        raise ToolchainMismatch(f"{where} needs x64 (float64), which is off in this runtime")
    built, here = xla_flags(tc.get("xla_flags", "")), xla_flags(os.environ.get("XLA_FLAGS", ""))
    if built != here:
        raise ToolchainMismatch(
            f"{where} was compiled with XLA_FLAGS `{' '.join(built) or '(none)'}` and this "
            f"runtime has `{' '.join(here) or '(none)'}`: XLA would generate other float code "
            f"and the decisions could differ; run it with XLA_FLAGS=\"{' '.join(built)}\"")
    backend = this_platform()
    platforms, modules = tuple(tc.get("platforms", ())), art.manifest["modules"]
    if backend not in platforms:
        raise ToolchainMismatch(f"{where} was exported for {', '.join(platforms) or 'no platform'}"
                                f", not for this backend ({backend}); recompile it on a machine "
                                f"with this backend")
    if backend not in modules:
        have = ", ".join(sorted(modules)) or "none"
        raise ToolchainMismatch(f"{where} lists {backend} among its platforms but has no "
                                f"{backend} modules (its manifest has modules for: {have}); the "
                                "artifact is inconsistent: recompile it")


def xla_flags(text: str) -> tuple[str, ...]:
    """XLA flags as a set (their order does not matter to XLA), sorted."""
    return tuple(sorted(set(text.split())))


# -- 3. signatures --------------------------------------------------------------------------------

def check_signatures(art: Artifact, keys: dict | None) -> tuple[Signature, ...]:
    """Judge every signature; raise on the first that fails."""
    return tuple(_signature(art, i, e, keys) for i, e in enumerate(art.entries, 1))


def judge_signatures(art: Artifact, keys: dict | None) -> list[tuple[dict, str | None]]:
    """Every signature with the reason it fails (None when it verifies), without raising."""
    out = []
    for i, e in enumerate(art.entries, 1):
        try:
            _signature(art, i, e, keys)
            out.append((e, None))
        except VerificationFailed as err:
            out.append((e, str(err).split(": ", 1)[-1]))
    return out


def load_trust(trust_dir: str) -> dict:
    """The trust store's keys, or `TrustStoreUnusable`."""
    return _trust(trust_dir)


def _signature(art: Artifact, i: int, e: dict, keys: dict | None) -> Signature:
    who = f"`{art.path}`: signature {i} ({e['name']}, {e['role']})"
    if e["payload_type"] != PAYLOAD_TYPE:
        raise WrongPayloadType(f"{who} was made over payload type `{e['payload_type']}`, "
                               f"not `{PAYLOAD_TYPE}`")
    if e["role"] not in ROLES:
        raise RoleNotAllowed(f"{who} claims unknown role `{e['role']}`")
    raw = unb64(e["public_key"])
    if raw is None or len(raw) != 32 or key_id(raw) != e["keyid"]:
        raise BadSignature(f"{who}: its key id does not match its public key")
    if not signature_verifies(e, PublicKey(e["name"], raw), art.digest):
        raise BadSignature(f"{who} does not verify over this manifest")
    if keys is None:
        return Signature(i, e["keyid"], e["name"], e["role"], None, e)
    trusted = keys.get(e["keyid"])
    if trusted is None:
        raise UntrustedKey(f"{who} is by key {e['keyid'][:16]}..., which the trust store "
                           "does not hold")
    if e["role"] not in trusted.roles:
        raise RoleNotAllowed(f"{who}: the trust store grants key `{trusted.name}` only "
                             f"{', '.join(trusted.roles)}, not {e['role']}")
    return Signature(i, e["keyid"], trusted.name, e["role"], True, e)


def _trust(trust_dir: str) -> dict:
    try:
        return ts.load(trust_dir)
    except ts.TrustStoreError as e:
        raise TrustStoreUnusable(str(e)) from None


# -- 4. stage -------------------------------------------------------------------------------------

def check_stage(art: Artifact, sigs: tuple[Signature, ...], stage: str) -> None:
    if stage == "sim":
        return
    authors = {s.keyid for s in sigs if s.trusted and s.role == "author"}
    risks = {s.keyid for s in sigs if s.trusted and s.role == "risk"}
    where = f"`{art.path}`"
    if not authors:
        raise ApprovalMissing(f"{where} is not approved for {stage}: it needs an `author` "
                              "signature by a trusted key, and has none")
    if stage == "live" and not any(r != a for r in risks for a in authors):
        raise ApprovalMissing(f"{where} is not approved for live: it needs a `risk` signature "
                              "by a trusted key other than the author's, and has none")


# -- 5. rollback ----------------------------------------------------------------------------------

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def version_key(version: str) -> tuple:
    """Semantic-version precedence: a pre-release sorts before its release; build metadata is
    ignored."""
    m = _SEMVER.match(version)
    if m is None:
        raise ValueError(f"`{version}` is not a semantic version")
    pre = m.group(4)
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) \
        if pre else ()
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if pre else 1, ids)


def highest_run(state_dir: str) -> dict:
    path = Path(state_dir) / STATE_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or not all(isinstance(v, dict) and "version" in v
                                                 for v in data.values()):
            raise ValueError("not a version record")
        return data
    except (OSError, ValueError) as e:
        raise StateDirUnusable(f"`{path}` cannot be read: {e}") from None


def check_rollback(art: Artifact, state_dir: str, allow: bool) -> None:
    seen = highest_run(state_dir).get(art.name)
    if seen is None or allow:
        return
    try:
        lower = version_key(art.version) < version_key(seen["version"])
    except ValueError as e:
        raise ManifestInvalid(f"`{art.path}`: {e}") from None
    if lower:
        raise RollbackRefused(f"`{art.path}` is {art.name} {art.version}, lower than version "
                              f"{seen['version']} already run from `{state_dir}`; pass "
                              "--allow-rollback to run it anyway")


def record_run(art: Artifact, state_dir: str) -> None:
    """Record the artifact's version as run from `state_dir`, if it is the highest so far."""
    runs = highest_run(state_dir)
    seen = runs.get(art.name)
    if seen is not None and version_key(art.version) <= version_key(seen["version"]):
        return
    runs[art.name] = {"version": art.version, "manifest_sha256": art.digest}
    try:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        write_atomic(Path(state_dir) / STATE_FILE, ct.canonical_json(runs) + b"\n")
    except OSError as e:
        raise StateDirUnusable(f"`{state_dir}` cannot be written: {e.strerror or e}") from None
