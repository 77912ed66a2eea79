"""The trust store: which public keys may sign policy artifacts, and in which roles.

A trust store is a directory holding one canonical JSON file per key, named by its key id:

    TRUST/3d4f....json   {"keyid": "3d4f...", "name": "alice", "public_key": "<base64>",
                          "roles": ["author"]}

The roles are the artifact signing roles (`author`, `risk`, `compliance`) and `journal`, the
role of a paper runtime's key that signs its journal records.

One file per key keeps every write atomic and independent (`crowe trust add` writes a temporary
file and renames it). Loading fails closed: a file that does not parse, whose key id does not
match its key or its file name, or that claims an unknown role makes the whole store unusable,
rather than being skipped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .container import canonical_json
from .keys import PublicKey, b64, key_id, unb64, write_atomic
from .signatures import TRUST_ROLES


class TrustStoreError(Exception):
    """The trust directory is missing, unreadable, or holds an entry that is not consistent."""


@dataclass(frozen=True)
class TrustedKey:
    keyid: str
    name: str
    public: PublicKey
    roles: tuple[str, ...]

    def to_json(self) -> dict:
        return {"keyid": self.keyid, "name": self.name, "public_key": b64(self.public.raw),
                "roles": list(self.roles)}


def check_roles(roles) -> tuple[str, ...]:
    bad = [r for r in roles if r not in TRUST_ROLES]
    if bad or not roles:
        raise TrustStoreError(f"unknown role `{bad[0]}`; the roles are "
                              f"{', '.join(f'`{r}`' for r in TRUST_ROLES)}" if bad else
                              "give at least one --role")
    return tuple(r for r in TRUST_ROLES if r in roles)


def add(trust_dir: str, key: PublicKey, roles) -> tuple[TrustedKey, bool]:
    """Record `key` with `roles` (replacing an earlier entry for the same key); returns the
    entry and whether the key was already in the store."""
    roles = check_roles(roles)
    d = Path(trust_dir)
    if d.exists() and not d.is_dir():
        raise TrustStoreError(f"`{trust_dir}` is not a directory")
    d.mkdir(parents=True, exist_ok=True)
    entry = TrustedKey(key.keyid, key.name, key, roles)
    target = d / f"{key.keyid}.json"
    existed = target.exists()
    write_atomic(target, canonical_json(entry.to_json()) + b"\n")
    return entry, existed


def load(trust_dir: str) -> dict[str, TrustedKey]:
    """Every trusted key by key id. Raises `TrustStoreError` for any inconsistency."""
    d = Path(trust_dir)
    if not d.is_dir():
        raise TrustStoreError(f"trust directory `{trust_dir}` does not exist"
                              if not d.exists() else f"`{trust_dir}` is not a directory")
    keys = {}
    try:
        files = sorted(p for p in d.iterdir() if p.suffix == ".json")
    except OSError as e:
        raise TrustStoreError(f"`{trust_dir}` cannot be read: {e.strerror or e}") from None
    for path in files:
        entry = _entry(path)
        keys[entry.keyid] = entry
    return keys


def _entry(path: Path) -> TrustedKey:
    where = f"trust store entry `{path}`"
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise TrustStoreError(f"{where} cannot be read: {e}") from None
    if not isinstance(data, dict) or set(data) != {"keyid", "name", "public_key", "roles"}:
        raise TrustStoreError(f"{where} is not a trusted-key record")
    raw = unb64(data["public_key"])
    if raw is None or len(raw) != 32:
        raise TrustStoreError(f"{where} holds no valid Ed25519 public key")
    if data["keyid"] != key_id(raw) or path.stem != data["keyid"]:
        raise TrustStoreError(f"{where}: its key id does not match its key")
    if not isinstance(data["roles"], list) or not isinstance(data["name"], str):
        raise TrustStoreError(f"{where} is not a trusted-key record")
    roles = check_roles(data["roles"])
    return TrustedKey(data["keyid"], data["name"], PublicKey(data["name"], raw), roles)
