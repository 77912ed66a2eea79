"""One `crowe paper` process per state directory.

The runtime takes an exclusive `flock` on `lock` in the state directory before it writes
anything there, and holds it for the whole run. The operating system releases it when the
process ends, however it ends (a crash or `kill -9` included), so a stale lock never needs
cleaning up. A second process on the same directory is refused at start.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import PaperError

NAME = "lock"


class StateDirLocked(PaperError):
    """Another process holds the state directory."""


class StateDirLock:
    def __init__(self, state_dir) -> None:
        self.dir = Path(state_dir)
        self.fd: int | None = None

    def acquire(self) -> "StateDirLock":
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StateDirLocked(f"cannot lock the state directory `{self.dir}`: "
                                 f"{e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise StateDirLocked(f"`{self.dir}` is in use by another `crowe paper` process"
                                 f"{who}; one state directory takes one runtime at a time"
                                 ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)          # closing the descriptor releases the lock
            self.fd = None

    def __enter__(self) -> "StateDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
