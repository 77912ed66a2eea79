"""Atomic checkpoints of the paper runtime's state.

A checkpoint holds the simulation carry (the compiled step's state and the working orders) as
named arrays plus a small JSON header: how many bars were processed, the last bar's time, the
hash of the last journal record and the operator's override in force at that bar. It is written
to a temporary file and renamed over the previous one, so a crash leaves either the old
checkpoint or the new one, never half.

The paper loop writes it without flushing it to disk (`save(..., durable=False)`, the default):
the bar's journal record, written and fsynced before it, is the one durable write of a bar.
A killed process loses nothing the operating system has accepted, so after a kill the
checkpoint is the last one written; after a power loss it may be an older one, or the one
before a rename the disk never saw, and the runtime redoes the bars journaled since, checking
each against its record (`loop.PaperRunner.recover`). The checkpoint is never ahead of the
journal, since a bar is checkpointed only once its record is on disk.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAME = "checkpoint.npz"


class CheckpointError(Exception):
    """The checkpoint cannot be read, or does not fit the policy being run."""


@dataclass(frozen=True)
class Meta:
    seq: int              # bars processed (journal records committed)
    last_ts: int | None
    head: str             # hash of the last journal record ("" before the first)
    artifact: str
    # the operator's override in force at that bar (None in checkpoints written before it was
    # kept); the next bar cancels the working orders when the override changes
    override: str | None = None


def _leaves(tree) -> dict[str, np.ndarray]:
    import jax                  # here, not at the top: `crowe journal verify` needs no JAX
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat}


def state_digest(tree) -> str:
    """SHA-256 over every leaf's name, dtype, shape and bytes, in a fixed order."""
    return _digest(_leaves(tree))


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name, arr in sorted(arrays.items()):
        arr = np.ascontiguousarray(arr)
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace `path` with `data` all at once (write a temporary file, rename it over). With
    `durable`, flush both to disk first, so that the new content survives a power loss."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def save(state_dir: Path, carry, meta: Meta, durable: bool = False) -> None:
    """Write the checkpoint atomically; with `durable`, flushed to disk too (see the module
    docstring for why the paper loop does not need that)."""
    buf = io.BytesIO()
    arrays = _leaves(carry)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta.__dict__, sort_keys=True).encode(),
                                       np.uint8)
    np.savez(buf, **arrays)
    atomic_write(state_dir / NAME, buf.getvalue(), durable)


def _read(path: Path) -> tuple[dict[str, np.ndarray], Meta]:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        meta = Meta(**json.loads(bytes(data.pop("__meta__")).decode()))
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is one user-facing error
        raise CheckpointError(f"the checkpoint `{path}` cannot be read ({e})") from None
    return data, meta


def read_digest(state_dir: Path) -> tuple[Meta, str] | None:
    """The checkpoint's header and the digest of the state it holds (`state_digest` of the
    carry it was saved from), or None when there is none."""
    path = Path(state_dir) / NAME
    if not path.exists():
        return None
    data, meta = _read(path)
    return meta, _digest(data)


def load(state_dir: Path, template) -> tuple[object, Meta] | None:
    """The saved carry, rebuilt on the structure of `template`, or None when there is none."""
    path = state_dir / NAME
    if not path.exists():
        return None
    data, meta = _read(path)
    import jax
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for p, leaf in flat:
        key = jax.tree_util.keystr(p)
        arr = data.get(key)
        leaf = np.asarray(leaf)
        if arr is None or arr.shape != leaf.shape or arr.dtype != leaf.dtype:
            raise CheckpointError(f"the checkpoint `{path}` does not fit this policy "
                                  f"(state `{key}` differs); use a new --state-dir")
        leaves.append(arr)
    return jax.tree_util.tree_unflatten(treedef, leaves), meta
