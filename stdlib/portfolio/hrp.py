"""Hierarchical risk parity (Lopez de Prado 2016), long only.

On the instruments that may trade and have a full window of returns, with ``S`` the covariance
of that window (`covariance`, Ledoit-Wolf shrunk by default) and ``rho`` its correlation:

1. distance ``d_ij = sqrt((1 - rho_ij) / 2)``;
2. single-linkage clustering on ``d`` (the minimum spanning tree's edges merged by increasing
   length; of two clusters merged the older one goes first, as `scipy.cluster.hierarchy`
   numbers them);
3. quasi-diagonal order: the leaves of the dendrogram, left to right;
4. recursive bisection: each segment of that order is split in halves (the first ``len // 2``
   and the rest); with ``V_k = u_k' S u_k`` the variance of half ``k`` under inverse-variance
   weights ``u_k`` (``u_i`` proportional to ``1 / S_ii`` within the half, summing to 1), the
   first half's weights are multiplied by ``alpha = 1 - V_1 / (V_1 + V_2)`` and the second's
   by ``1 - alpha``.

The weights sum to ``budget`` (default ``risk.gross_max``); the other instruments get 0 (the
reason ``no_history`` marks tradable ones without a full window) and take no part in the
clustering. The forecast is not read: any instrument whose ``mu`` and ``sigma`` are usable
may hold a position (gates, caps and stand-down rules apply after, as for every method). The
clustering and the bisection run inside the compiled step with fixed shapes: ``n - 1`` merges
and ``ceil(log2 n)`` bisection levels, each segment's variance read from 2-D prefix sums.

Reference: Lopez de Prado (2016), "Building diversified portfolios that outperform out of
sample", Journal of Portfolio Management 42(4); the tests compare with skfolio's
``HierarchicalRiskParity`` (variance, single linkage, no optimal leaf ordering) given the same
covariance.

>>> import jax.numpy as jnp
>>> cov = jnp.array([[0.04, 0.03, 0.0], [0.03, 0.04, 0.0], [0.0, 0.0, 0.01]])
>>> [round(float(x), 4) for x in weights(cov, jnp.array([True, True, True]))]
[0.1111, 0.1111, 0.7778]
"""
from __future__ import annotations

from typing import ClassVar, Literal

from crowe.stdlib._jax import jnp, lax
from crowe.stdlib.component import Component, Need, stateless
from crowe.stdlib.sizing.common import Budget
from crowe.dsl.fields import Section

from . import covariance as cv
from .common import EPS, budget_of, usable_cov


class Settings(Section):
    method: Literal["hrp"]
    reads_horizon: ClassVar[bool] = False     # `signal.horizon` changes nothing here
    budget: Budget | None = None
    covariance: cv.Covariance = cv.Covariance()


def distance(cov):
    """The correlation distance ``sqrt((1 - rho) / 2)`` of a covariance matrix."""
    sd = jnp.sqrt(jnp.maximum(jnp.diag(cov), EPS))
    rho = jnp.clip(cov / (sd[:, None] * sd[None, :]), -1.0, 1.0)
    return jnp.sqrt(jnp.maximum(0.5 * (1.0 - rho), 0.0))


def spanning_tree(dist, ok):
    """Prim's minimum spanning tree over the instruments in ``ok``: ``n - 1`` edges
    (u [n-1], v [n-1], length [n-1]); edges past the tree have length inf."""
    n = dist.shape[0]
    d = jnp.where(ok[:, None] & ok[None, :], dist, jnp.inf)
    start = jnp.argmax(ok)
    tree = jnp.zeros(n, bool).at[start].set(True)
    edges = (jnp.zeros(n - 1, jnp.int64), jnp.zeros(n - 1, jnp.int64), jnp.zeros(n - 1))

    def body(k, carry):
        tree, best, parent, (eu, ev, ew) = carry
        cand = jnp.where(tree, jnp.inf, best)
        j = jnp.argmin(cand)
        edges = (eu.at[k].set(parent[j]), ev.at[k].set(j), ew.at[k].set(cand[j]))
        tree = tree.at[j].set(True)
        closer = d[j] < best
        return tree, jnp.where(closer, d[j], best), jnp.where(closer, j, parent), edges

    carry = (tree, d[start], jnp.full(n, start, jnp.int64), edges)
    return lax.fori_loop(0, n - 1, body, carry)[3]


def leaf_order(dist, ok):
    """The quasi-diagonal order: the indices of the instruments in ``ok`` as the single-linkage
    dendrogram's leaves, left to right, then the others (by index)."""
    n = dist.shape[0]
    idx = jnp.arange(n)
    if n == 1:
        return idx
    eu, ev, ew = spanning_tree(dist, ok)
    by_length = jnp.argsort(ew, stable=True)

    def merge(k, carry):
        root, cid, size, pos = carry
        e = by_length[k]
        live = jnp.isfinite(ew[e])
        ru, rv = root[eu[e]], root[ev[e]]
        u_first = cid[ru] < cid[rv]
        left, right = jnp.where(u_first, ru, rv), jnp.where(u_first, rv, ru)
        moved = live & (root == right)
        pos = jnp.where(moved, pos + size[left], pos)
        root = jnp.where(moved, left, root)
        size = size.at[left].add(jnp.where(live, size[right], 0))
        cid = cid.at[left].set(jnp.where(live, n + k, cid[left]))
        return root, cid, size, pos

    _, _, _, pos = lax.fori_loop(0, n - 1, merge, (idx, idx, jnp.ones(n, jnp.int64),
                                                   jnp.zeros(n, jnp.int64)))
    return jnp.argsort(jnp.where(ok, pos, n + idx))


def bisect(c, m):
    """Recursive bisection on the covariance ``c`` [n, n] in quasi-diagonal order, of which the
    first ``m`` rows are the instruments held: their weights (summing to 1), 0 after."""
    n = c.shape[0]
    p = jnp.arange(n)
    held = p < m
    a = jnp.where(held, 1.0 / jnp.maximum(jnp.diag(c), EPS), 0.0)
    mm = jnp.where(held[:, None] & held[None, :], a[:, None] * a[None, :] * c, 0.0)
    pre = jnp.pad(jnp.cumsum(jnp.cumsum(mm, 0), 1), ((1, 0), (1, 0)))
    ca = jnp.pad(jnp.cumsum(a), (1, 0))

    def var(lo, hi):
        rect = pre[hi, hi] - pre[lo, hi] - pre[hi, lo] + pre[lo, lo]
        return rect / jnp.maximum(ca[hi] - ca[lo], EPS) ** 2

    def level(_, carry):
        w, lo, hi = carry
        split = hi - lo >= 2
        mid = lo + (hi - lo) // 2
        v0, v1 = var(lo, mid), var(mid, hi)
        alpha = jnp.where(v0 + v1 > 0, 1.0 - v0 / jnp.where(v0 + v1 > 0, v0 + v1, 1.0), 0.5)
        first = p < mid
        w = jnp.where(split, w * jnp.where(first, alpha, 1.0 - alpha), w)
        return w, jnp.where(split & ~first, mid, lo), jnp.where(split & first, mid, hi)

    start = (jnp.ones(n), jnp.zeros(n, jnp.int64), jnp.full(n, m, jnp.int64))
    w, _, _ = lax.fori_loop(0, max(1, (n - 1).bit_length()), level, start)
    return jnp.where(held, w, 0.0)


def allocate(cov, ok):
    """(weights, order): the HRP weights (summing to 1 over ``ok``, 0 elsewhere) of the
    covariance ``cov``, and the quasi-diagonal order they were bisected in."""
    order = leaf_order(distance(cov), ok)
    w = bisect(cov[order][:, order], ok.sum())
    return jnp.zeros(cov.shape[0]).at[order].set(w), order


def weights(cov, ok):
    """HRP weights (summing to 1 over ``ok``, 0 elsewhere) of the covariance ``cov``."""
    return allocate(cov, ok)[0]


def make(s: Settings):
    def update(inputs, ctx):
        usable, cov, hits = usable_cov(s.covariance, inputs)
        return {"w": budget_of(s.budget, ctx) * weights(cov, usable)}, hits
    return stateless(update)


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("history", s.covariance.window),)


COMPONENT = Component("hrp", "portfolio", ("portfolio",), Settings, make, __doc__,
                      needs=needs, reasons=("no_history",))
