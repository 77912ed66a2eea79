"""The hash-chained journal: one JSON record per processed bar, append-only.

Each record carries the SHA-256 of the previous record (`prev`), the artifact digest and its own
hash over its canonical JSON (sorted keys, no spaces, no NaN), so that any edit, deletion,
reordering or truncation is found by `verify`, which names the first bad record. Appends are
flushed and fsynced before the runtime goes on; a failed append raises `JournalWriteError`, and
the runtime halts rather than trade without its record.

The chain proves order; signatures prove origin. A runtime given a journal key (`crowe paper
--journal-key`) puts the key's id in every record (inside what the hash covers) and signs the
record's hash: `sig` is Ed25519 over DSSE's pre-authentication encoding of the hash under the
payload type `PAYLOAD_TYPE`. `verify` with a trust store accepts a record only when its key is
trusted in the role `journal` and the signature verifies, so a record edited and the chain
rebuilt from there is found without the key. The checkpoint is anchored to the journal: the
record of a bar holds the digest of the state after it, and the checkpoint must hold exactly
that state and name that record's hash as its head. The journal append is the one fsync of a
bar: the checkpoint after it is renamed into place without one, so it may lag the journal after
a power loss (never lead it), and the bars after it are redone and checked against their
records.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowe.compiler.artifact.keys import SigningKey, b64, unb64
from crowe.compiler.artifact.signatures import JOURNAL_ROLE, pae

from .checkpoint import fsync_dir

NAME = "journal.jsonl"
GENESIS = "0" * 64
PAYLOAD_TYPE = "application/vnd.crowe.journal-record+json"


class JournalError(Exception):
    """The journal cannot be read or its chain is broken."""


class JournalWriteError(JournalError):
    """A record could not be written to disk (disk full, I/O error)."""


class JournalReplaced(JournalWriteError):
    """The journal on disk is not the file the runtime has been appending to (deleted,
    replaced, truncated or appended to by someone else)."""


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def record_hash(record: dict) -> str:
    """SHA-256 over the record's canonical JSON without its `hash` and `sig`."""
    return hashlib.sha256(canonical({k: v for k, v in record.items()
                                     if k not in ("hash", "sig")})).hexdigest()


def sign_hash(key: SigningKey, digest: str) -> str:
    return b64(key.private.sign(pae(PAYLOAD_TYPE, digest.encode())))


def signature_problem(i: int, record: dict, keys: dict) -> str | None:
    """Why record `i` is not signed by a key that `keys` (a trust store) holds in the role
    `journal`, or None when it is."""
    keyid, sig = record.get("keyid"), unb64(record.get("sig"))
    if keyid is None or record.get("sig") is None:
        return f"record {i} is not signed: it was not written by a runtime with a journal key"
    trusted = keys.get(keyid) if isinstance(keyid, str) else None
    if trusted is None:
        return (f"record {i} is signed by key {str(keyid)[:16]}..., which the trust store "
                "does not hold")
    if JOURNAL_ROLE not in trusted.roles:
        return (f"record {i} is signed by `{trusted.name}`, whom the trust store does not "
                f"trust in the role `{JOURNAL_ROLE}`")
    if sig is None or not trusted.public.verifies(
            sig, pae(PAYLOAD_TYPE, str(record.get("hash")).encode())):
        return (f"record {i}'s signature does not verify: the record was altered or written "
                "without the runtime's key")
    return None


def finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def decision_digest(out: dict) -> str:
    """SHA-256 of one bar's decision arrays (names, dtypes, shapes and bytes, sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(out):
        arr = np.ascontiguousarray(np.asarray(out[name]))
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Check:
    ok: bool
    records: int
    first_bad: int | None = None     # 0-based index of the first bad record
    reason: str = ""


class Journal:
    def __init__(self, state_dir: Path, opener=open, signer: SigningKey | None = None) -> None:
        self.path = Path(state_dir) / NAME
        self.opener, self.signer = opener, signer
        # what the journal must be before the next append, once `pin` was called: None (not
        # checked), () (no file yet) or (device, inode, length)
        self.expected: tuple | None = None
        self._held: int | None = None

    def pin(self) -> None:
        """Remember the journal as it is now: each later append first checks that the file is
        still this one (same device and inode) with the length the runtime left it at. The
        file is held open meanwhile, so that its inode cannot be reused by a replacement."""
        self.expected = ()
        self._hold()

    def _hold(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        if self._held is not None:
            os.close(self._held)
        self._held = fd
        st = os.fstat(fd)
        self.expected = (st.st_dev, st.st_ino, st.st_size)

    def close(self) -> None:
        if self._held is not None:
            os.close(self._held)
            self._held = None

    __del__ = close

    def _check_identity(self, st: os.stat_result | None) -> None:
        if self.expected is None:
            return
        where = f"the journal `{self.path}`"
        if not self.expected:
            if st is not None and st.st_size:
                raise JournalReplaced(f"{where} appeared during the run, written by something "
                                      "else")
            return
        if st is None:
            raise JournalReplaced(f"{where} was deleted during the run")
        if (st.st_dev, st.st_ino) != self.expected[:2]:
            raise JournalReplaced(f"{where} was replaced by another file during the run")
        if st.st_size != self.expected[2]:
            raise JournalReplaced(f"{where} is {st.st_size} bytes long where the runtime left "
                                  f"it at {self.expected[2]}: something else changed it")

    def read(self) -> tuple[list[dict], bytes]:
        """The complete records, and any torn tail (bytes after the last newline)."""
        if not self.path.exists():
            return [], b""
        data = self.path.read_bytes()
        body, _, tail = data.rpartition(b"\n")
        lines = body.split(b"\n") if body else []
        out = []
        for i, line in enumerate(lines):
            try:
                rec = json.loads(line)
            except ValueError:
                raise JournalError(f"record {i} is not valid JSON") from None
            if not isinstance(rec, dict):
                raise JournalError(f"record {i} is not a JSON object")
            out.append(rec)
        return out, tail

    def append(self, record: dict, prev: str) -> dict:
        record = dict(record, prev=prev)
        if self.signer is not None:
            record["keyid"] = self.signer.public.keyid
        record["hash"] = record_hash(record)
        if self.signer is not None:
            record["sig"] = sign_hash(self.signer, record["hash"])
        line = canonical(record) + b"\n"
        try:
            before = _stat(self.path)
            self._check_identity(before)
            with self.opener(self.path, "ab") as f:
                if self.expected is not None:     # the file opened is the one checked
                    self._check_identity(os.fstat(f.fileno()))
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
                if self.expected is not None:
                    st = os.fstat(f.fileno())
                    if not self.expected:
                        self._hold()            # the first record created the file
                    self.expected = (st.st_dev, st.st_ino, st.st_size)
            if before is None:          # the first record created the file: its name too
                fsync_dir(self.path.parent)
        except OSError as e:
            raise JournalWriteError(f"cannot write the journal `{self.path}`: "
                                    f"{e.strerror or e}") from None
        return record

    def drop_torn_tail(self, tail: bytes) -> None:
        """Remove an append that a crash cut short (it was never committed)."""
        size = self.path.stat().st_size
        with open(self.path, "r+b") as f:
            f.truncate(size - len(tail))
            f.flush()
            os.fsync(f.fileno())


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def check_chain(records: list[dict], tail: bytes = b"", keys: dict | None = None) -> Check:
    """The chain's order and integrity; with `keys` (a trust store), every record's signature
    too."""
    prev, artifact = GENESIS, None
    for i, rec in enumerate(records):
        if rec.get("seq") != i:
            return Check(False, len(records), i, f"record {i} has sequence number "
                         f"{rec.get('seq')!r}: a record is missing, duplicated or moved")
        if rec.get("prev") != prev:
            return Check(False, len(records), i, f"record {i} does not follow record {i - 1}: "
                         "the chain is broken (a record was removed, reordered or edited)")
        if rec.get("hash") != record_hash(rec):
            return Check(False, len(records), i, f"record {i} was altered: its hash does not "
                         "match its content")
        if artifact is not None and rec.get("artifact") != artifact:
            return Check(False, len(records), i, f"record {i} names another artifact")
        problem = signature_problem(i, rec, keys) if keys is not None else None
        if problem:
            return Check(False, len(records), i, problem)
        prev, artifact = rec["hash"], rec.get("artifact")
    if tail:
        return Check(False, len(records), len(records),
                     f"record {len(records)} is incomplete (cut off mid-write)")
    return Check(True, len(records))


def verify(state_dir: Path, keys: dict | None = None) -> Check:
    """Check the journal's chain (and, with `keys`, its signatures), and that the checkpoint
    holds the state recorded at the record it names as its head."""
    from . import checkpoint as ck
    j = Journal(state_dir)
    if not j.path.is_file():
        d = Path(state_dir)
        return Check(False, 0, None, f"there is no journal `{j.path}`" + (
            "" if d.is_dir() else f": `{d}` is not a directory" if d.exists() else
            f": `{d}` does not exist"))
    try:
        records, tail = j.read()
    except JournalError as e:
        bad = int(str(e).split()[1]) if str(e).startswith("record ") else 0
        return Check(False, 0, bad, str(e))
    check = check_chain(records, tail, keys)
    if not check.ok:
        return check
    try:
        saved = ck.read_digest(Path(state_dir))
    except ck.CheckpointError as e:
        return Check(False, len(records), None, str(e))
    if saved is None:
        return check
    meta, digest = saved
    n = len(records)
    if meta.seq > n:
        return Check(False, n, n, f"the journal ends at record {n - 1} but the checkpoint has "
                     f"processed {meta.seq} bars: records were removed from the end")
    # a checkpoint behind the journal is one that was not flushed before a crash or power loss
    # (the journal record is a bar's durable write): the runtime redoes those bars from it
    if meta.seq:
        at = records[meta.seq - 1]
        if meta.head != at["hash"] or digest != at.get("state"):
            return Check(False, n, meta.seq - 1, "the checkpoint does not hold the state "
                         f"journaled at record {meta.seq - 1}: it was altered or replaced")
    return check


def export(state_dir: Path, out: Path) -> int:
    """Write the journal as a Parquet table (one row per record); returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    j = Journal(state_dir)
    if not j.path.is_file():
        raise JournalError(f"there is no journal `{j.path}`: nothing to export")
    records, _ = j.read()
    cols = ("seq", "ts", "time", "trading_state", "override", "equity", "cash", "gross", "net",
            "decision", "state", "artifact", "prev", "hash")
    table = {c: [r.get(c) for r in records] for c in cols}
    table["cancelled"] = [json.dumps(r.get("cancelled", [])) for r in records]
    table["orders"] = [json.dumps(r.get("orders", [])) for r in records]
    table["fills"] = [json.dumps(r.get("fills", [])) for r in records]
    pq.write_table(pa.table(table), out, write_page_checksum=True)
    return len(records)
