"""How XLA generates float code for every compiled policy: the same way in any context.

XLA on CPU fuses the operations of one bar differently when the bar is a loop body and when it
is a function of its own, and the float code it emits depends on the fusion: a multiply feeding
an add becomes one FMA (one rounding) inside a fusion and two roundings across fusions; a sum
runs in SIMD lanes (pairwise) in one kernel and in index order in another. Two different
programs of the same bar can then give decisions that differ in the last bits. With scalar
float code and no FMA every operation rounds once, in program order, however it is fused.

What relies on it (measured with XLA's own float code, SIMD and FMA, instead): the backtest
and paper trading run one executable (`crowe.runtime.backtest.Runner.chunk`), and they, the
artifact's exported step and the sweep members against single backtests all still agree bit
for bit without the pin; but `jax.jit(bar_update)` called bar by bar no longer matches the
backtest's loop for 6 of the 7 example policies
(`tests/test_examples_backtest.py::test_bar_by_bar_is_the_scan_bit_for_bit`), nor are two
chunk sizes guaranteed to agree. So the pin stays, at its price: about 1.5x on the backtest
(2.2 against 1.4 M instrument-bars per CPU second at N = 500 on the 2-core benchmark machine).

The flags are read once, when JAX creates its CPU client, so they are set when `crowe.compiler`
is imported, before anything is compiled, and so is the persistent compilation cache (`cache`).
A flag the user set explicitly is left alone; neither step imports JAX.
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
