"""A box-constrained quadratic program with one budget equality, by a primal-dual interior-point
method with a bounded number of iterations (so that it runs inside the compiled step)::

    minimize   w' Q w / 2
    subject to sum_{i in ok} w_i = b,   lo_i <= w_i <= hi_i   (i in ok),   w_i = 0 elsewhere

Each iteration solves the Newton system of the perturbed KKT conditions (complementarity
``(w - lo) z_lo = (hi - w) z_hi = sigma mu``, ``sigma = 0.1``) reduced to ``(Q + D) dw + 1 dy =
r``, and steps 0.99 of the way to the boundary, until the duality gap and the residuals are
below 1e-10 (at most ``iterations`` steps). ``Q`` is scaled to a unit mean diagonal first
(the solution does not depend on its scale). Reference: Nocedal and Wright (2006), "Numerical
optimization", 16.6; the tests compare with cvxpy.

>>> import jax
>>> jax.config.update("jax_enable_x64", True)   # as the compiled step runs
>>> import jax.numpy as jnp
>>> w, ok = solve(jnp.diag(jnp.array([1.0, 4.0])), 1.0, jnp.zeros(2), jnp.ones(2),
...               jnp.array([True, True]), 40)
>>> [round(float(x), 6) for x in w], bool(ok)
([0.8, 0.2], True)
"""
from __future__ import annotations

from crowe.stdlib._jax import jnp, lax

SIGMA = 0.1
TOL = 1e-10


def _to_boundary(x, dx):
    """The largest step in (0, 1] that keeps ``x + t dx`` positive, times 0.99."""
    ratio = jnp.where(dx < 0, -x / jnp.where(dx < 0, dx, -1.0), jnp.inf)
    return jnp.minimum(1.0, 0.99 * jnp.min(ratio))


def solve(q, b, lo, hi, ok, iterations: int):
    """(w [n], converged). When the bounds cannot hold the budget (``sum(hi) <= b``), every
    instrument in ``ok`` is at ``hi``."""
    n = q.shape[0]
    e = ok.astype(q.dtype)
    scale = jnp.sum(jnp.diag(q) * e) / jnp.maximum(e.sum(), 1.0)
    q = jnp.where(ok[:, None] & ok[None, :], q / jnp.maximum(scale, 1e-300), jnp.eye(n))
    lo, hi = jnp.where(ok, lo, -1.0), jnp.where(ok, hi, 1.0)

    def body(carry):
        w, y, zl, zu, k, _ = carry
        sl, su = w - lo, hi - w
        mu = (sl @ zl + su @ zu) / (2 * n)
        rd = q @ w + y * e - zl + zu
        rp = e @ w - b
        rhs = -rd + SIGMA * mu / sl - zl - SIGMA * mu / su + zu
        kkt = q + jnp.diag(zl / sl + zu / su)
        sol = jnp.linalg.solve(kkt, jnp.stack([rhs, e], axis=1))
        dy = (e @ sol[:, 0] + rp) / jnp.maximum(e @ sol[:, 1], 1e-300)
        dw = sol[:, 0] - dy * sol[:, 1]
        dzl = (SIGMA * mu - sl * zl - zl * dw) / sl
        dzu = (SIGMA * mu - su * zu + zu * dw) / su
        t = jnp.min(jnp.stack([_to_boundary(sl, dw), _to_boundary(su, -dw),
                               _to_boundary(zl, dzl), _to_boundary(zu, dzu)]))
        new = (w + t * dw, y + t * dy, zl + t * dzl, zu + t * dzu)
        # once converged, further steps divide by vanishing slacks: keep the iterate and stop
        done = (mu < TOL * 1e-3) & (jnp.max(jnp.abs(rd)) < TOL) & (jnp.abs(rp) < TOL)
        bad = ~jnp.all(jnp.isfinite(jnp.concatenate([x.ravel() for x in new])))
        new = tuple(jnp.where(done | bad, old, x) for old, x in zip(carry[:4], new))
        return (*new, k + 1, done | bad)

    def more(carry):
        return (carry[4] < iterations) & ~carry[5]

    start = (0.5 * (lo + hi), jnp.asarray(0.0), jnp.ones(n), jnp.ones(n), jnp.asarray(0),
             jnp.asarray(False))
    w, y, zl, zu, _, _ = lax.while_loop(more, body, start)
    gap = ((w - lo) @ zl + (hi - w) @ zu) / n
    resid = jnp.max(jnp.abs(q @ w + y * e - zl + zu))
    converged = (gap < TOL) & (resid < TOL) & (jnp.abs(e @ w - b) < TOL)
    room = jnp.sum(jnp.where(ok, hi, 0.0)) > b
    w = jnp.where(room, w, hi)
    return jnp.where(ok, w, 0.0), (converged | ~room) & jnp.all(jnp.isfinite(w))
