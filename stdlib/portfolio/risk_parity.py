"""Risk parity (equal risk contribution), with optional risk budgets; long only.

On the instruments that may trade and have a full window of returns, with ``S`` the covariance
of that window (`covariance`), finds ``w > 0`` whose risk contributions are in proportion to
the budgets ``b`` (all 1 by default: equal risk contribution, blueprint 16.3)::

    w_i (S w)_i = b_i / sum(b) * w' S w        for every i,        sum(w) = budget

by Spinu's convex formulation: ``x* = argmin_{x > 0} x' S x / 2 - sum_i b_i log x_i`` satisfies
``x_i (S x)_i = b_i``, and ``w = budget * x* / sum(x*)``. It is solved on the correlation
matrix (``x`` scaled by the standard deviations) by damped Newton steps from the best point
on the ray of ``sqrt(b)`` (``x <- x - dx / (1 + lambda)`` while the Newton decrement ``lambda``
is above 1/4, full steps after, never leaving ``x > 0``) until the largest relative error of
the risk contributions is below 1e-12, at most ``iterations`` of them (4 to 6 on 20 to 500
correlated instruments). When it is still above after them, the weights are the last
iterate's and the reason ``not_converged`` marks the instruments held.

``budgets`` maps symbols to positive numbers (relative: ``{AAPL: 2}`` gives AAPL twice the risk
of each other instrument, whose budget is 1). The weights sum to ``budget`` (default
``risk.gross_max``); other instruments get 0 (``no_history`` for tradable ones without a full
window) and do not enter the problem. The forecast is not read. Reference: Spinu (2013), "An
algorithm for computing risk parity weights"; Maillard, Roncalli and Teiletche (2010), "The
properties of equally weighted risk contribution portfolios"; the tests compare with cvxpy on
Spinu's formulation.

>>> import jax
>>> jax.config.update("jax_enable_x64", True)   # as the compiled step runs
>>> import jax.numpy as jnp
>>> cov = jnp.array([[0.04, 0.0], [0.0, 0.01]])
>>> x, ok = solve(cov, jnp.ones(2), jnp.array([True, True]), 30)
>>> [round(float(v), 4) for v in x / x.sum()], bool(ok)
([0.3333, 0.6667], True)
"""
from __future__ import annotations

from typing import ClassVar, Literal

from crowe.dsl.fields import Section, frac, positive_int
from crowe.stdlib._jax import jnp, lax
from crowe.stdlib.component import Component, Need, stateless
from crowe.stdlib.sizing.common import Budget

from . import covariance as cv
from .common import EPS, budget_of, usable_cov

TOL = 1e-12

RiskBudget = frac(0.0, 1e6, lo_open=True, what="risk budget")


class Settings(Section):
    method: Literal["risk_parity"]
    reads_horizon: ClassVar[bool] = False     # `signal.horizon` changes nothing here
    budget: Budget | None = None
    budgets: dict[str, RiskBudget] = {}
    covariance: cv.Covariance = cv.Covariance()
    iterations: positive_int("`iterations`", 1_000) = 30


def solve(cov, b, ok, iterations: int):
    """(x [n], converged): Spinu's problem on the instruments in ``ok`` (x = 0 elsewhere)."""
    n = cov.shape[0]
    sd = jnp.sqrt(jnp.maximum(jnp.diag(cov), EPS))
    both = ok[:, None] & ok[None, :]
    r = jnp.where(both, cov / (sd[:, None] * sd[None, :]), jnp.eye(n))
    b = jnp.where(ok, b, 1.0)
    b = b / jnp.min(b)                      # b_i >= 1: the barrier is self-concordant

    def error(y):
        return jnp.max(jnp.where(ok, jnp.abs(y * (r @ y) - b) / b, 0.0))

    def body(carry):
        k, y, _ = carry
        g = r @ y - b / y
        h = r + jnp.diag(b / (y * y))
        dy = jnp.linalg.solve(h, g)
        lam = jnp.sqrt(jnp.maximum(g @ dy, 0.0))
        t = jnp.where(lam > 0.25, 1.0 / (1.0 + lam), 1.0)
        shrink = jnp.min(jnp.where(dy > 0, y / jnp.where(dy > 0, dy, 1.0), jnp.inf))
        y = y - jnp.minimum(t, 0.99 * shrink) * dy
        return k + 1, y, error(y) < TOL

    def more(carry):
        k, _, done = carry
        return (k < iterations) & ~done

    y0 = jnp.sqrt(b)
    y0 = y0 * jnp.sqrt(b.sum() / (y0 @ r @ y0))       # the best start on the ray of sqrt(b)
    _, y, _ = lax.while_loop(more, body, (jnp.asarray(0), y0, error(y0) < TOL))
    converged = error(y) < TOL
    return jnp.where(ok, y / sd, 0.0), converged & jnp.all(jnp.isfinite(y))


def make(s: Settings):
    def update(inputs, ctx):
        usable, cov, hits = usable_cov(s.covariance, inputs)
        if s.budgets and len(ctx.symbols) != ctx.n:
            raise ValueError("risk budgets need the universe's symbols in the context")
        b = jnp.asarray([s.budgets.get(sym, 1.0) for sym in ctx.symbols] or [1.0] * ctx.n)
        x, converged = solve(cov, b, usable, s.iterations)
        x = jnp.where(jnp.isfinite(x), x, 0.0)
        w = budget_of(s.budget, ctx) * x / jnp.maximum(x.sum(), EPS)
        return {"w": w}, dict(hits, not_converged=usable & ~converged)
    return stateless(update)


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("history", s.covariance.window),)


COMPONENT = Component("risk_parity", "portfolio", ("portfolio",), Settings, make, __doc__,
                      needs=needs, reasons=("no_history", "not_converged"))
