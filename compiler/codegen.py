"""How XLA generates float code for every compiled policy, and why nothing is pinned.

XLA on CPU fuses the operations of one bar differently when the bar is a loop body and when it
is a function of its own, and the float code it emits depends on the fusion: a multiply feeding
an add becomes one FMA (one rounding) inside a fusion and two roundings across fusions; a sum
runs in SIMD lanes (pairwise) in one kernel and in index order in another. Two *different*
programs of the same bar can then give decisions that differ in the last bits.

The runtime never relies on two different programs agreeing: the backtest and paper trading
run one executable (`crowe.runtime.backtest.Runner.chunk`, a loop with a runtime trip count),
an artifact's exported step is the same StableHLO as the source's step, and a sweep member
re-run alone gives the sweep's decisions (`tests/test_sweep.py`). So XLA's own float code is
used, SIMD and FMA included. Scalar float code without FMA
(`XLA_FLAGS="--xla_cpu_prefer_vector_width=64 --xla_cpu_max_isa=AVX"`, pinned here before)
made every program agree with every other but cost about 1.5-1.8x on every kernel; the parity
tests (backtest vs paper vs artifact bit for bit, sweep members vs single backtests) pass
without it. An artifact records the `XLA_FLAGS` it was exported under and is refused by a
runtime with others (`crowe.compiler.artifact.verify.check_toolchain`): that is the part of
code generation that reproducibility needs, and it is kept.

`pin()` is called when `crowe.compiler` is imported: it turns on the persistent compilation
cache (`cache`), whose keys include `XLA_FLAGS`, and adds `flags()` (none by default) to them
before JAX starts.
"""
from __future__ import annotations

import os
import platform
import sys
import warnings

from . import cache

VECTOR = "--xla_cpu_prefer_vector_width=64"      # one float64 per vector: sums run in order
NO_FMA = "--xla_cpu_max_isa=AVX"                 # x86: FMA3 and AVX2 come after AVX


def scalar_flags() -> tuple[str, ...]:
    """The XLA flags of scalar float code without FMA on this machine (not pinned: see the
    module docstring; set them in `XLA_FLAGS` to compare two different programs bit for
    bit)."""
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
    return (VECTOR, NO_FMA) if x86 else (VECTOR,)


def flags() -> tuple[str, ...]:
    """The XLA flags that `pin` adds: none, since one executable serves the backtest and
    paper trading."""
    return ()


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
