"""Shared helpers for the artifact tests: each example policy compiled once per test session,
keys, and ways to take an artifact apart and put it back together (to tamper with it)."""
from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from pathlib import Path

from crowe.compiler.artifact import container as ct
from crowe.compiler.artifact import keys as ks
from crowe.compiler.artifact import signatures as sg
from crowe.compiler.export import build
from crowe.runtime.bundled import universe_symbols
from crowe.dsl.policy import check_bytes
from crowe.runtime.bundled import default_data
from crowe.runtime.data import load_bars

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ("cs_mom_v1", "xs_reversal_v1", "ts_trend_v1", "mv_sector_v1", "hrp_sleeve_v1",
            "rp_book_v1", "intraday_twap_v1")


def policy_path(name: str) -> Path:
    return ROOT / "policies" / f"{name}.policy"


@lru_cache(maxsize=None)
def checked(name: str):
    source = policy_path(name).read_bytes()
    result = check_bytes(source, str(policy_path(name)))
    assert result.ok, result.diagnostics
    return result.policy, source


@lru_cache(maxsize=None)
def compiled(name: str) -> bytes:
    """The unsigned artifact of an example policy, built in this process."""
    policy, source = checked(name)
    symbols, origin = universe_symbols(policy, None)
    return build(policy, source, symbols, origin)


@lru_cache(maxsize=None)
def panel(name: str):
    policy, _ = checked(name)
    listed = policy.spec.universe.symbols
    p, _ = load_bars(default_data(listed, int(policy.bar_seconds)))
    return p if listed == "from_data" else p.select(listed)


def write(tmp_path: Path, blob: bytes, name: str = "a.cpol") -> str:
    path = tmp_path / name
    path.write_bytes(blob)
    return str(path)


def new_key(tmp_path: Path, name: str) -> ks.SigningKey:
    out = tmp_path / f"{name}.key"
    ks.generate(str(out), name)
    return ks.load_signing_key(str(out))


def members(blob: bytes) -> dict[str, bytes]:
    return ct.unpack(blob)


def manifest(blob: bytes) -> dict:
    return json.loads(members(blob)[ct.MANIFEST])


def entries(blob: bytes) -> list[dict]:
    return json.loads(members(blob)[ct.SIGNATURES])["signatures"]


def with_entries(blob: bytes, new: list[dict]) -> bytes:
    m = members(blob)
    m[ct.SIGNATURES] = ct.canonical_json({"signatures": new})
    return ct.pack(m)


def sign(blob: bytes, key: ks.SigningKey, role: str, payload_type: str = sg.PAYLOAD_TYPE
         ) -> bytes:
    digest = hashlib.sha256(members(blob)[ct.MANIFEST]).hexdigest()
    return with_entries(blob, entries(blob) + [sg.sign(key, digest, role, payload_type)])


def rewrite_manifest(blob: bytes, edit, signers=()) -> bytes:
    """The artifact with its manifest edited by `edit(dict)` and signed afresh by `signers`
    (key, role) pairs: a well-formed artifact whose manifest says something else."""
    m = members(blob)
    data = json.loads(m[ct.MANIFEST])
    edit(data)
    m[ct.MANIFEST] = ct.canonical_json(data)
    m[ct.SIGNATURES] = ct.canonical_json({"signatures": []})
    out = ct.pack(m)
    for key, role in signers:
        out = sign(out, key, role)
    return out


def flip_sig(entry: dict, at: int = 0) -> dict:
    raw = bytearray(base64.b64decode(entry["sig"]))
    raw[at] ^= 0x01
    return dict(entry, sig=base64.b64encode(bytes(raw)).decode())


def data_offset(blob: bytes, name: str) -> int:
    """Where a member's bytes start in the container (stored, no extra fields)."""
    at = blob.index(b"PK\x03\x04" + blob[4:4])  # noqa: the first local header
    while True:
        n = int.from_bytes(blob[at + 26: at + 28], "little")
        size = int.from_bytes(blob[at + 18: at + 22], "little")
        if blob[at + 30: at + 30 + n].decode() == name:
            return at + 30 + n
        at += 30 + n + size
