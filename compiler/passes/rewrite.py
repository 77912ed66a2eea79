"""Bottom-up rewriting of IR roots, shared by the passes that replace nodes."""
from __future__ import annotations

import dataclasses

from .. import ir


def rewrite(roots: dict, fn) -> dict:
    """Apply `fn(node_with_new_children) -> node` to every node, children first, once per node."""
    done: dict[ir.Node, ir.Node] = {}
    for node in ir.topo_order(_flat(roots)):
        changes = {}
        for f in dataclasses.fields(node):
            v = getattr(node, f.name)
            if isinstance(v, ir.Node):
                changes[f.name] = done[v]
            elif isinstance(v, tuple) and any(isinstance(x, ir.Node) for x in v):
                changes[f.name] = tuple(done[x] if isinstance(x, ir.Node) else x for x in v)
        new = dataclasses.replace(node, **changes) if changes else node
        done[node] = fn(new)
    return _map(roots, lambda n: done[n])


def _flat(roots: dict) -> list[ir.Node]:
    out = []
    for v in roots.values():
        if isinstance(v, ir.Node):
            out.append(v)
        elif isinstance(v, dict):
            out.extend(_flat(v))
    return out


def _map(roots: dict, f) -> dict:
    return {k: f(v) if isinstance(v, ir.Node) else _map(v, f) if isinstance(v, dict) else v
            for k, v in roots.items()}


flat = _flat
