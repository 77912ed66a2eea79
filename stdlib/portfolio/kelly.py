"""Multi-asset Kelly, tempered: ``w = lambda * S_h^-1 mu``.

The growth-optimal weights under the quadratic approximation ``E[log(1 + w'r)] ~ w'mu - w' S_h w
/ 2`` (blueprint 16.3), tempered by ``lambda`` in (0, 1]: ``mu`` is the forecast over the
horizon and ``S_h = h S`` the covariance of one-bar returns over the window (`covariance`)
scaled to the horizon of ``h`` bars (``signal.horizon``). Only the instruments that may trade
and have a full window of returns enter ``S`` and ``mu``; the others get 0 (``no_history``
for tradable ones without a full window). When the system is singular (a sample covariance of
fewer returns than instruments, say) every weight is 0 and the reason ``singular_covariance``
marks the instruments. The weights are capped after, as for every method: ``position_max``,
``sector_max``, ``net_max``, ``gross_max`` (which scales the whole book down) and the tail
limits. Reference: Thorp (2006), "The Kelly criterion in blackjack, sports betting and the
stock market", 7; the tests compare with numpy's ``solve``.

>>> import jax.numpy as jnp
>>> [round(float(x), 6) for x in solve(jnp.array([0.01, 0.02]), jnp.diag(jnp.array([0.04, 0.01])),
...                                    jnp.array([True, True]), 0.5)[0]]
[0.125, 1.0]
"""
from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from crowe.dsl.fields import Fraction01, Section
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Need, stateless

from . import covariance as cv
from .common import usable_cov


class Settings(Section):
    method: Literal["kelly"]
    lambda_: Fraction01 = Field(alias="lambda")
    covariance: cv.Covariance = cv.Covariance()
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


def solve(mu, cov, ok, fraction):
    """(w, solved): ``fraction * cov^-1 mu`` on ``ok`` (0 elsewhere); all 0 when singular."""
    mu = jnp.where(ok, mu, 0.0)
    w = fraction * jnp.linalg.solve(cov, mu)
    solved = jnp.all(jnp.isfinite(w)) & (jnp.max(jnp.abs(cov @ w - fraction * mu)) <=
                                         1e-8 * jnp.maximum(jnp.max(jnp.abs(mu)), 1e-300))
    return jnp.where(ok & solved, w, 0.0), solved


def make(s: Settings):
    def update(inputs, ctx):
        usable, cov, hits = usable_cov(s.covariance, inputs)
        w, solved = solve(inputs["mu"], cov * ctx.horizon, usable, s.lambda_)
        return {"w": w}, dict(hits, singular_covariance=usable & ~solved)
    return stateless(update)


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("history", s.covariance.window),)


COMPONENT = Component("kelly", "portfolio", ("portfolio",), Settings, make, __doc__,
                      needs=needs, reasons=("no_history", "singular_covariance"))
