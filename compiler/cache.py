"""JAX's persistent compilation cache, so that a second run of a policy does not compile again.

Compiling a policy's program takes seconds; the compiled executable is the same in every process
that compiles the same program with the same toolchain. JAX keys each cache entry on the
program (its HLO), the compile options, `XLA_FLAGS` (so the float code pinned by `codegen`
is part of the key), the jax and jaxlib versions and the backend, so an entry is reused only
where it is the executable that compiling would give, and a cached run decides exactly as a
compiled one.

Where it lives, in order:

* `CROWE_CACHE_DIR=off` (or `0`, `none`, empty): no cache;
* `$CROWE_CACHE_DIR/jax` when `CROWE_CACHE_DIR` names a directory;
* `$XDG_CACHE_HOME/crowe/jax`, else `~/.cache/crowe/jax`.

A directory that cannot be created or written leaves the cache off, without failing the run.
A cache that the user configured for JAX directly (`JAX_COMPILATION_CACHE_DIR`) is left alone.

Like the XLA flags, this is set when `crowe.compiler` is imported, before anything compiles
(the checker never imports `crowe.compiler`, nor JAX). Importing `crowe.compiler` does not
import JAX either (commands such as `crowe trust` or `crowe journal verify` never need it):
when JAX is not loaded yet the settings go to the environment variables that JAX reads when it
is imported (`JAX_COMPILATION_CACHE_DIR` and the two thresholds), so processes started from
this one inherit the same cache.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ENV = "CROWE_CACHE_DIR"
OFF = {"off", "0", "none", "false", "no", ""}
# Cache whatever takes this long to compile: a policy's program takes seconds, the small
# helpers around it a fraction of a second.
MIN_COMPILE_SECS = 0.5
MIN_ENTRY_BYTES = 0

def directory(environ: dict[str, str] | None = None) -> Path | None:
    """The JAX cache directory that the environment asks for, or None when it is off."""
    env = os.environ if environ is None else environ
    chosen = env.get(ENV)
    if chosen is not None:
        if chosen.strip().lower() in OFF:
            return None
        return Path(chosen).expanduser() / "jax"
    xdg = env.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # XDG: relative is unset
    return base / "crowe" / "jax"


def usable(path: Path) -> bool:
    """Whether `path` exists or can be made, and a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
        return True
    except (OSError, ValueError):
        return False


SETTINGS = (("jax_compilation_cache_dir", None),
            ("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECS),
            ("jax_persistent_cache_min_entry_size_bytes", MIN_ENTRY_BYTES))


def enable() -> Path | None:
    """Turn the persistent cache on, in `directory()`; the directory used, or None. Does not
    import JAX: before JAX is loaded the settings are left in the environment for it."""
    jax = sys.modules.get("jax")
    # JAX_COMPILATION_CACHE_DIR (or the config set in code): the user's choice
    own = jax.config.jax_compilation_cache_dir if jax is not None else \
        os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if own:
        return Path(own)
    path = directory()
    if path is None or not usable(path):
        return None
    for name, value in SETTINGS:
        value = str(path) if value is None else value
        if jax is not None:
            jax.config.update(name, value)
        else:
            os.environ[name.upper()] = str(value)
    return path
