"""Causality: prove that no node reads a bar after the current one.

The only operators that reach across bars are `Lag`, `Rolling`, `Ema`, `Turbulence`, `Wilder`
and `Moments`, and they read the past only when their window is positive. Constant windows are
checked here; a window parameter is checked against its declared range. The checker already rejects look-ahead in the
source; this pass re-proves it on the IR that is actually lowered, so that no rewrite can
introduce it.
"""
from __future__ import annotations

from .. import ir
from .rewrite import flat


class CausalityError(Exception):
    """A node would read data from after the current bar."""


def causality(roots: dict, param_ranges: dict | None = None) -> None:
    param_ranges = param_ranges or {}
    for node in ir.topo_order(flat(roots)):
        if not isinstance(node, ir.STATEFUL):
            continue
        n = node.n
        low = n.value if isinstance(n, ir.Const) else param_ranges.get(n.name, (None,))[0]
        least = 0 if isinstance(node, ir.Lag) else 1
        if low is None or low < least or node.n_max < least:
            raise CausalityError(f"{type(node).__name__.lower()} with window {low} at "
                                 f"{node.span.line if node.span else '?'} reads future bars")
