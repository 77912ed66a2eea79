"""The artifact's container: a plain zip file, written byte for byte the same way every time.

Members are stored uncompressed (deflate output depends on the zlib version), with the zip
epoch as their time, mode 0644, no extra fields and no comments, in a fixed order: the
manifest first, the signatures last, everything else by name. `pack` writes that form itself
rather than through `zipfile`, so the bytes do not depend on the Python version; `unpack` parses
strictly and accepts only that form, so a changed header, a reordered, duplicated or smuggled
entry, or bytes appended or prepended are all refused. Any zip tool can still list and extract
an artifact (`unzip -l policy.cpol`).

`canonical_json` is the one JSON encoding used inside an artifact and by the trust store:
sorted keys, no whitespace, ASCII only, no NaN.
"""
from __future__ import annotations

import json
import re
import struct
import zlib
from dataclasses import dataclass

MANIFEST = "manifest.json"
SIGNATURES = "signatures.json"
MAX_BYTES = 512 * 2**20
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_LOCAL_SIG, _CENTRAL_SIG, _END_SIG = 0x04034B50, 0x02014B50, 0x06054B50
_VERSION, _MADE_BY = 20, (3 << 8) | 20       # zip 2.0, made on Unix
_DATE = (0 << 9) | (1 << 5) | 1              # 1980-01-01, the zip epoch
_MODE = 0o100644 << 16


class ContainerError(Exception):
    """The bytes are not a well-formed artifact container (see the subclasses)."""


class NotAContainer(ContainerError):
    """The bytes are not an artifact container: not a zip, or a zip without a manifest."""


class Truncated(ContainerError):
    """The bytes start like a container but end before its directory does."""


class NonCanonical(ContainerError):
    """A well-formed zip whose structure differs from the one `pack` writes."""


class CrcMismatch(ContainerError):
    """A member's bytes do not match the checksum its zip header records."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def canonical_order(names) -> list[str]:
    def key(n: str):
        return (0 if n == MANIFEST else 2 if n == SIGNATURES else 1, n)
    return sorted(names, key=key)


def pack(members: dict[str, bytes]) -> bytes:
    """The container holding `members` (name -> bytes), in canonical form."""
    out, central = bytearray(), bytearray()
    for name in canonical_order(members):
        if not NAME.match(name):
            raise ValueError(f"bad member name {name!r}")
        data, raw = bytes(members[name]), name.encode("ascii")
        crc, offset = zlib.crc32(data), len(out)
        out += _LOCAL.pack(_LOCAL_SIG, _VERSION, 0, 0, 0, _DATE, crc, len(data), len(data),
                           len(raw), 0) + raw + data
        central += _CENTRAL.pack(_CENTRAL_SIG, _MADE_BY, _VERSION, 0, 0, 0, _DATE, crc,
                                 len(data), len(data), len(raw), 0, 0, 0, 0, _MODE,
                                 offset) + raw
    n = len(members)
    end = _END.pack(_END_SIG, 0, 0, n, n, len(central), len(out), 0)
    return bytes(out + central + end)


@dataclass(frozen=True)
class _Entry:
    name: str
    crc: int
    size: int
    offset: int


def unpack(blob: bytes) -> dict[str, bytes]:
    """The members of a container, in canonical order. Raises a `ContainerError` subclass for
    anything but exactly what `pack` writes."""
    blob = bytes(blob)
    if not blob.startswith(struct.pack("<I", _LOCAL_SIG)):
        raise NotAContainer("it is not a zip container")
    end_at = len(blob) - _END.size
    if end_at < 0 or struct.unpack_from("<I", blob, end_at)[0] != _END_SIG:
        end_at = _find_end(blob)
        if end_at is None:
            raise Truncated("the file ends before the container's directory")
        raise NonCanonical(f"{len(blob) - end_at - _END.size} bytes follow the container's end")
    entries = _directory(blob, end_at)
    if MANIFEST not in {e.name for e in entries}:
        raise NotAContainer(f"it has no {MANIFEST}")
    for e in entries:
        if not NAME.match(e.name):
            raise NonCanonical(f"member name {e.name!r} is not allowed")
    members = {}
    for e in entries:
        if e.name in members:
            raise NonCanonical(f"member `{e.name}` appears twice")
        data = blob[e.offset + _LOCAL.size + len(e.name): e.offset + _LOCAL.size +
                    len(e.name) + e.size]
        if len(data) != e.size:
            raise Truncated(f"member `{e.name}` ends early")
        if zlib.crc32(data) != e.crc:
            raise CrcMismatch(e.name)
        members[e.name] = data
    if pack(members) != blob:
        raise NonCanonical("its zip headers or member order differ from the canonical form")
    return {name: members[name] for name in canonical_order(members)}


def _find_end(blob: bytes) -> int | None:
    """Where a complete end record sits before the end of the file, if one does."""
    at = blob.rfind(struct.pack("<I", _END_SIG))
    while at >= 0:
        if at + _END.size <= len(blob):
            _, _, _, _, _, size, offset, _ = _END.unpack_from(blob, at)
            if offset + size == at:
                return at
        at = blob.rfind(struct.pack("<I", _END_SIG), 0, at)
    return None


def _directory(blob: bytes, end_at: int) -> list[_Entry]:
    sig, _, _, n, total, size, offset, comment = _END.unpack_from(blob, end_at)
    if n != total or offset + size != end_at or comment:
        raise NonCanonical("its zip directory is inconsistent")
    entries, at = [], offset
    for _ in range(n):
        if at + _CENTRAL.size > end_at or struct.unpack_from("<I", blob, at)[0] != _CENTRAL_SIG:
            raise NonCanonical("its zip directory is damaged")
        f = _CENTRAL.unpack_from(blob, at)
        method, crc, packed, size, name_len, local = f[4], f[7], f[8], f[9], f[10], f[16]
        raw = blob[at + _CENTRAL.size: at + _CENTRAL.size + name_len]
        name = raw.decode("utf-8", "replace")
        if method != 0 or packed != size:
            # a compressed member (a zip bomb among them): never inflated
            raise NonCanonical(f"member `{name}` is compressed ({packed:,} bytes said to hold "
                               f"{size:,}); an artifact stores its members uncompressed, so "
                               "this one was not written by crowe-compile")
        entries.append(_Entry(name, crc, size, local))
        at += _CENTRAL.size + name_len + f[11] + f[12]
    return entries
