"""Lookback analysis: how many past bars each node reads, buffer sizes and the warm-up.

A node's lookback is the number of bars before the current one that its value depends on:
`Lag(x, n)` adds n to x's, a rolling window of n adds n - 1, a turbulence index over n adds n,
an EMA or Wilder's smoothing of span n is counted as n - 1, and so is a moment (`corr`, `skew`,
`acf`, ...) over n bars, which reads the ring buffer of each series it takes, and so is
`regime_prob` over n values, which keeps its window in its own state. Windows given by
parameters are counted at the parameter's default (the warm-up) and at its range maximum (the
buffer sizes), so a sweep never overflows a buffer.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import ir
from .rewrite import flat


@dataclass(frozen=True)
class Lookback:
    per_node: dict            # node -> (default, max) lookback
    buffers: dict             # series node -> rows its shared ring buffer needs
    warmup: int               # bars before the roots' values are all defined (defaults)
    max_warmup: int           # the same with every window parameter at its maximum
    windows: dict = None      # (series node, n) -> n: a ring of exactly n rows for each
                              # rolling statistic over a constant window (reading only the
                              # window, not the longest history of the series, is what makes
                              # a 63-bar stdev cheap next to a 252-bar lag of the same series)


def _extra(node: ir.Node, defaults: dict) -> tuple[int, int]:
    if isinstance(node, (ir.Lag, ir.Turbulence)):
        return _n(node.n, defaults), node.n_max
    if isinstance(node, (ir.Rolling, ir.Ema, ir.Wilder, ir.Moments)):
        return _n(node.n, defaults) - 1, node.n_max - 1
    if isinstance(node, ir.History):
        return node.n_max - 1, node.n_max - 1
    if isinstance(node, ir.Regime):
        return node.n - 1, node.n - 1
    return 0, 0


def _n(n: ir.Node, defaults: dict) -> int:
    return int(n.value) if isinstance(n, ir.Const) else int(defaults[n.name])


def _rows(node: ir.Node) -> int:
    return node.n_max + 1 if isinstance(node, (ir.Lag, ir.Turbulence)) else node.n_max


def lookback(roots: dict, defaults: dict | None = None) -> Lookback:
    defaults = defaults or {}
    per: dict[ir.Node, tuple[int, int]] = {}
    buffers: dict[ir.Node, int] = {}
    windows: dict[tuple[ir.Node, int], int] = {}
    for node in ir.topo_order(flat(roots)):
        kids = [per[c] for c in node.children()]
        base = (max((k[0] for k in kids), default=0), max((k[1] for k in kids), default=0))
        extra = _extra(node, defaults)
        per[node] = (base[0] + extra[0], base[1] + extra[1])
        if isinstance(node, (ir.Lag, ir.Rolling, ir.Turbulence, ir.History)):
            buffers[node.x] = max(buffers.get(node.x, 1), _rows(node))
        if isinstance(node, ir.Moments):
            for x in node.xs:
                buffers[x] = max(buffers.get(x, 1), node.n_max)
        if isinstance(node, ir.Rolling) and isinstance(node.n, ir.Const):
            windows[(node.x, int(node.n.value))] = int(node.n.value)
    tops = [per[n] for n in flat(roots)]
    return Lookback(per, buffers, max((t[0] for t in tops), default=0),
                    max((t[1] for t in tops), default=0), windows)


def warmup_at(roots: dict, window_of, maximum=max):
    """The warm-up with windows valued by `window_of(node)` (a number, or a traced value inside
    the step, so that a run's warm-up follows the parameters it actually uses)."""
    per: dict[ir.Node, object] = {}

    def extra(node):
        if isinstance(node, (ir.Lag, ir.Turbulence)):
            return window_of(node.n)
        if isinstance(node, (ir.Rolling, ir.Ema, ir.Wilder, ir.Moments)):
            return window_of(node.n) - 1
        if isinstance(node, ir.History):
            return node.n_max - 1
        if isinstance(node, ir.Regime):
            return node.n - 1
        return 0

    for node in ir.topo_order(flat(roots)):
        base = 0
        for c in node.children():
            base = maximum(base, per[c])
        per[node] = base + extra(node)
    out = 0
    for n in flat(roots):
        out = maximum(out, per[n])
    return out
