"""Dependence on parameters: which IR nodes change with the swept parameters.

A sweep runs one program for a batch of parameter sets. A node that reads no swept parameter,
directly or through its inputs, has the same value in every member of the batch, and so has its
state (ring buffer, running sums, EMA): it is computed once per bar and shared by the whole
batch; the others are computed per member. `Lowering.shared_state` names the expression state
of the shared nodes. The runtime's batch program (`crowe.runtime.sweep.batched_state`) finds
the same split on the whole compiled step, book and components included, and keeps the state
of these nodes shared.
"""
from __future__ import annotations

from .. import ir
from .rewrite import flat


def dependence(roots: dict, swept=None) -> set[ir.Node]:
    """The nodes that depend on a parameter of `swept` (every parameter when None). The views
    of the book (`Holding`: position, weight, ...) count as dependent: the book is the
    decisions' result, which the parameters change."""
    dep: set[ir.Node] = set()
    for node in ir.topo_order(flat(roots)):
        if isinstance(node, ir.Param):
            if swept is None or node.name in swept:
                dep.add(node)
        elif isinstance(node, ir.Holding) or any(c in dep for c in node.children()):
            dep.add(node)
    return dep
