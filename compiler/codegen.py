"""How XLA generates float code for every compiled policy: the same way in any context.

XLA on CPU fuses the operations of one bar differently when the bar is a loop body (the
backtest's `scan`) and when it is a function of its own (paper trading, one call per bar), and
the float code it emits depends on the fusion: a multiply feeding an add becomes one FMA (one
rounding) inside a fusion and two roundings across fusions; a sum runs in SIMD lanes (pairwise)
in one kernel and in index order in another. The same bar then gives decisions that differ in
the last bits, and they drift apart from there. With scalar float code and no FMA every
operation rounds once, in program order, however it is fused, so the backtest and the bar-by-bar
runtime agree bit for bit (DESIGN, invariant 1).

The flags are read once, when JAX creates its CPU client, so they are set when `crowe.compiler`
is imported, before anything is compiled, and so is the persistent compilation cache (`cache`).
A flag the user set explicitly is left alone. The price is speed: no SIMD in the float code of a
step.
"""
from __future__ import annotations

import os
import platform
import sys
import warnings

from . import cache

VECTOR = "--xla_cpu_prefer_vector_width=64"      # one float64 per vector: sums run in order
NO_FMA = "--xla_cpu_max_isa=AVX"                 # x86: FMA3 and AVX2 come after AVX


def flags() -> tuple[str, ...]:
    """The XLA flags that fix float code generation on this machine."""
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
    return (VECTOR, NO_FMA) if x86 else (VECTOR,)


def pin() -> None:
    """Add `flags()` to `XLA_FLAGS` unless the user chose those settings already, and turn on
    the persistent compilation cache (`cache`), whose keys include those flags."""
    _pin_flags()
    cache.enable()


def _pin_flags() -> None:
    current = os.environ.get("XLA_FLAGS", "")
    chosen = {f.split("=", 1)[0] for f in current.split()}
    missing = [f for f in flags() if f.split("=", 1)[0] not in chosen]
    if not missing:
        return
    if _backend_started():      # too late to take effect: say so, and record nothing false
        warnings.warn("JAX started before `crowe.compiler` was imported, so XLA compiles without "
                      f"{' '.join(missing)}: bar-by-bar and backtest results may differ in the "
                      "last bits; import crowe first or set XLA_FLAGS", RuntimeWarning,
                      stacklevel=4)
        return
    os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()


def _backend_started() -> bool:
    if "jax" not in sys.modules:        # not even imported (and not imported here)
        return False
    try:
        from jax._src import xla_bridge
        return xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):   # a JAX without this internal: cannot tell
        return False
