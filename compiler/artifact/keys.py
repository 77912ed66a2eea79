"""Ed25519 signing keys: generate them, read and write key files, name them by key id.

A key file is a standard PEM key (PKCS#8 private key, or SubjectPublicKeyInfo public key, so
`openssl pkey` reads it) preceded by two lines of explanatory text, which RFC 7468 allows:

    name: alice
    keyid: 3d4f...            # SHA-256 of the raw 32-byte public key, hex

What a key signs, and how, is `signatures`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crowe.dsl.files import read_limited

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,63}$")
_HEADER = re.compile(r"^([a-z]+): ?(.*)$")


class KeyFileError(Exception):
    """A key file that cannot be read, is not an Ed25519 key of ours, or would be overwritten."""


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


@dataclass(frozen=True)
class PublicKey:
    name: str
    raw: bytes                      # the 32-byte Ed25519 public key

    @property
    def keyid(self) -> str:
        return key_id(self.raw)

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
            return True
        except (InvalidSignature, ValueError):
            return False


@dataclass(frozen=True)
class SigningKey:
    name: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> PublicKey:
        raw = self.private.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        return PublicKey(self.name, raw)


# -- key files ----------------------------------------------------------------------------------

def check_name(name: str) -> str:
    if not NAME.match(name):
        raise KeyFileError(f"key name `{name}` is not allowed: use up to 64 letters, digits, "
                           "spaces and `._@+-`, starting with a letter or digit")
    return name


def generate(out: str, name: str | None = None, force: bool = False) -> tuple[Path, Path, str]:
    """Write a new private key to `out` (mode 0600) and its public key to `out.pub`."""
    path, pub_path = Path(out), Path(f"{out}.pub")
    name = check_name(name or path.stem)
    for p in (path, pub_path):
        if p.exists() and not force:
            raise KeyFileError(f"`{p}` already exists; choose another --out (or pass --force)")
    key = SigningKey(name, Ed25519PrivateKey.generate())
    header = _header(name, key.public.keyid)
    pem = key.private.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                    ser.NoEncryption())
    write_atomic(path, header + pem, 0o600)
    pub_pem = key.private.public_key().public_bytes(ser.Encoding.PEM,
                                                    ser.PublicFormat.SubjectPublicKeyInfo)
    write_atomic(pub_path, header + pub_pem, 0o644)
    return path, pub_path, key.public.keyid


def load_signing_key(path: str) -> SigningKey:
    text, name = _read(path)
    try:
        key = ser.load_pem_private_key(text, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"`{path}` is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"`{path}` is not an Ed25519 key")
    return SigningKey(name or Path(path).stem, key)


def load_public_key(path: str) -> PublicKey:
    text, name = _read(path)
    try:
        key = ser.load_pem_public_key(text)
    except ValueError:
        hint = " (give the `.pub` file, not the private key)" if b"PRIVATE KEY" in text else ""
        raise KeyFileError(f"`{path}` is not a PEM public key{hint}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"`{path}` is not an Ed25519 key")
    raw = key.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return PublicKey(name or Path(path).name.split(".")[0], raw)


def _header(name: str, keyid: str) -> bytes:
    return f"name: {name}\nkeyid: {keyid}\n".encode("ascii")


def _read(path: str) -> tuple[bytes, str | None]:
    text = read_limited(path, 64 * 1024 - 1, "a key file", KeyFileError)
    name = None
    for line in text.split(b"\n"):
        if line.startswith(b"-----BEGIN"):
            break
        m = _HEADER.match(line.decode("utf-8", "replace").strip())
        if m and m.group(1) == "name":
            name = check_name(m.group(2).strip())
    return text, name


def write_atomic(path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
