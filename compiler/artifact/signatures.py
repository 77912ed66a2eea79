"""Signatures over an artifact's manifest: Ed25519 under DSSE, bound to a payload type and a role.

What a signature covers is the statement `{"manifest_sha256": ..., "role": ...}` (canonical
JSON) under DSSE's pre-authentication encoding with the payload type `PAYLOAD_TYPE`:

    PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP body

so a signature over the same bytes for any other purpose (another payload type) never verifies
here, and the claimed role is part of what was signed: a signature made as `author` cannot be
relabelled `risk`. Each signature is one record of `signatures.json` with the fields `FIELDS`.
"""
from __future__ import annotations

from .container import canonical_json
from .keys import PublicKey, SigningKey, b64, unb64

PAYLOAD_TYPE = "application/vnd.crowe.policy-manifest+json"
ROLES = ("author", "risk", "compliance")
# The role of the key a paper runtime signs its journal records with (`crowe paper
# --journal-key`): a trust store may grant it, an artifact signature can never claim it.
JOURNAL_ROLE = "journal"
TRUST_ROLES = ROLES + (JOURNAL_ROLE,)
FIELDS = frozenset({"keyid", "name", "role", "payload_type", "public_key", "sig"})


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE's pre-authentication encoding of `body` under `payload_type`."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def statement(manifest_sha256: str, role: str) -> bytes:
    """The body a signer signs: which manifest, in which role."""
    return canonical_json({"manifest_sha256": manifest_sha256, "role": role})


def sign(key: SigningKey, manifest_sha256: str, role: str,
         payload_type: str = PAYLOAD_TYPE) -> dict:
    """One record of `signatures.json`."""
    sig = key.private.sign(pae(payload_type, statement(manifest_sha256, role)))
    pub = key.public
    return {"keyid": pub.keyid, "name": key.name, "role": role, "payload_type": payload_type,
            "public_key": b64(pub.raw), "sig": b64(sig)}


def signature_verifies(entry: dict, key: PublicKey, manifest_sha256: str) -> bool:
    sig = unb64(entry.get("sig"))
    if sig is None:
        return False
    message = pae(entry["payload_type"], statement(manifest_sha256, entry["role"]))
    return key.verifies(sig, message)
