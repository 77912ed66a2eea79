"""Minimum variance, fully invested, within the position cap.

On the instruments that may trade and have a full window of returns, with ``S`` the covariance
of that window (`covariance`), solves::

    minimize   w' S w
    subject to sum(w) = budget,   lo <= w <= position_max

with ``lo = -position_max``, or 0 when ``long_only``; the other instruments get 0
(``no_history`` for tradable ones without a full window). The budget (default
``risk.gross_max``), the position cap and ``long_only`` hold inside the optimizer; the sector,
net and gross caps and the tail limits apply after it, as for every method. When the cap cannot
hold the budget (fewer than ``budget / position_max`` instruments), every instrument sits at the
cap. The forecast is not read. Solved by the interior-point method of `budget_qp` (``iterations``
steps; the reason ``not_converged`` marks the instruments held when its duality gap or residuals
are still above 1e-10). Reference: Markowitz (1952), "Portfolio selection"; the tests compare with
cvxpy.

>>> import jax
>>> jax.config.update("jax_enable_x64", True)   # as the compiled step runs
>>> import jax.numpy as jnp
>>> from crowe.stdlib.component import Ctx
>>> ctx = Ctx(3, 252.0, 1, (False,) * 3, (True,) * 3, (0, 0, 0), 1, 1.0, 0.6)
>>> hist = (jnp.array([[0.01, 0.02, -0.01], [-0.01, 0.0, 0.02], [0.02, -0.02, 0.0]]),
...         jnp.arange(3), jnp.full(3, -10), jnp.asarray(10))
>>> t = make(Settings(method="min_variance", long_only=True,
...                   covariance={"estimator": "sample", "window": 3}))
>>> out, hits, _ = t.update({"tradable": jnp.array([True, True, True]),
...                          "est": {"history": hist}}, (), ctx)
>>> round(float(out["w"].sum()), 9), bool(hits["not_converged"].any())
(1.0, False)
"""
from __future__ import annotations

from typing import ClassVar, Literal

from crowe.dsl.fields import Section, positive_int
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Need, stateless
from crowe.stdlib.sizing.common import Budget

from . import covariance as cv
from . import budget_qp
from .common import budget_of, usable_cov


class Settings(Section):
    method: Literal["min_variance"]
    reads_horizon: ClassVar[bool] = False     # `signal.horizon` changes nothing here
    budget: Budget | None = None
    long_only: bool = False
    covariance: cv.Covariance = cv.Covariance()
    iterations: positive_int("`iterations`", 1_000) = 60


def make(s: Settings):
    def update(inputs, ctx):
        usable, cov, hits = usable_cov(s.covariance, inputs)
        cap = jnp.full(ctx.n, ctx.position_max)
        lo = jnp.zeros(ctx.n) if s.long_only else -cap
        w, converged = budget_qp.solve(cov, budget_of(s.budget, ctx), lo, cap, usable,
                                       s.iterations)
        return {"w": w}, dict(hits, not_converged=usable & ~converged)
    return stateless(update)


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("history", s.covariance.window),)


COMPONENT = Component("min_variance", "portfolio", ("portfolio",), Settings, make, __doc__,
                      needs=needs, reasons=("no_history", "not_converged"))
