"""Common-subexpression elimination.

IR nodes compare by value (spans excluded), so equal computations are equal nodes; this pass
makes them one object, and counts how many duplicates it merged. The lowering then computes each
distinct node once and shares ring buffers between every reader of the same series.
"""
from __future__ import annotations

from .. import ir
from .rewrite import flat, rewrite


def cse(roots: dict) -> dict:
    table: dict[ir.Node, ir.Node] = {}
    return rewrite(roots, lambda n: table.setdefault(n, n))


def count_duplicates(roots: dict) -> int:
    """How many tree nodes the DAG saves: tree size minus distinct nodes. The tree size is summed
    over the DAG (it can be exponential in the depth, so it is never walked)."""
    order = ir.topo_order(flat(roots))
    size: dict[ir.Node, int] = {}
    for node in order:
        size[node] = 1 + sum(size[c] for c in node.children())
    return sum(size[r] for r in flat(roots)) - len(order)
