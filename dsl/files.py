"""Reading a user's file with one clear message for each way it can fail."""
from __future__ import annotations

from pathlib import Path


def read_limited(path: str, limit: int, what: str, error: type[Exception]) -> bytes:
    """At most `limit + 1` bytes of `path` (one more than allowed, so callers can tell an
    oversized file); raises `error` with a user-facing message when it cannot be read."""
    p = Path(path)
    try:
        if p.is_dir():
            raise error(f"`{path}` is a directory, not {what}")
        with p.open("rb") as f:
            return f.read(limit + 1)
    except FileNotFoundError:
        raise error(f"`{path}` does not exist") from None
    except PermissionError:
        raise error(f"`{path}` cannot be read: permission denied") from None
    except OSError as e:
        raise error(f"`{path}` cannot be read: {e.strerror or e}") from None
