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
    """How many tree nodes the DAG saves: tree size minus distinct nodes."""
    distinct = len(ir.topo_order(flat(roots)))
    total, stack = 0, list(flat(roots))
    while stack:
        node = stack.pop()
        total += 1
        stack.extend(node.children())
    return total - distinct
