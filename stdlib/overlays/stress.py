"""Stress limit: the loss of the book under each named scenario is at most ``max``, checked on
the targets before any order is sent.

A scenario combines shocks; its loss is the sum of their losses, for a book ``w`` (fractions of
equity):

* ``market: m``: the market moves by ``m`` and each instrument by ``beta_i m``, its beta on the
  equal-weighted mean return of the instruments:
  ``beta = S u / (u' S u)`` with ``u = 1 / n`` and ``S`` the Ledoit-Wolf covariance of the last
  ``window`` one-bar returns; the loss is ``-m sum_i beta_i w_i``;
* ``sector: {name: x, ...}``: every member of each named sector (``universe.sectors``) moves by
  its ``x``; the loss is ``-sum_i x_i w_i``;
* ``vol: k``: volatilities are ``k`` times their estimate; the loss is the normal value at risk
  of the book at ``confidence`` with the covariance ``k^2 S``: ``k z sqrt(w' S w)``,
  ``z = Phi^-1(confidence)``.

The stressed loss is the largest over the scenarios (at least 0); the loss of the book as it
reaches the limit (before any scaling) is a column of the backtest's equity table,
`stress.loss` (NaN where it cannot be estimated). It is positively homogeneous,
so scaling the book by ``max / loss`` meets the limit exactly; with locked positions (which
cannot be scaled) the largest feasible scale of the rest is found by bisection (the loss is
convex in the scale). A book whose loss cannot be estimated (a held instrument without a complete
window) is scaled to zero (fail closed). Reference: the stress tests of Jorion, "Value at
Risk", 3rd ed., ch. 14; the beta of Sharpe's single-index model.

>>> import jax, jax.numpy as jnp
>>> jax.config.update("jax_enable_x64", True)   # as in the compiled step
>>> from crowe.stdlib.component import Ctx
>>> ctx = Ctx(2, 252.0, 1, (False,) * 2, (True,) * 2, (0, 1), 3, 1.0, 1.0, ("energy", "tech", ""))
>>> s = Settings(max=0.05, window=3, scenarios={"tech_crash": {"sector": {"tech": -0.25}}})
>>> hist = (jnp.zeros((3, 2)), jnp.arange(3), jnp.array([-1, -1]), jnp.asarray(10))
>>> out, hits, _ = COMPONENT.factory(s).update(
...     {"w": jnp.array([0.5, 0.4]), "w_cur": jnp.zeros(2), "locked": jnp.zeros(2, bool),
...      "est": {"history": hist}}, (), ctx)
>>> [round(float(x), 6) for x in out["w"]]      # the tech loss 0.25 * 0.4 = 0.1 halved
[0.25, 0.2]
"""
from __future__ import annotations

from pydantic import Field, model_validator
from typing import Annotated

from crowe.dsl.fields import Section, fail, frac, window
from crowe.stdlib._jax import jnp, lax
from crowe.stdlib.component import Component, Need, stateless
from crowe.stdlib.risk import TOL, changed, largest_scale, normal_tail, split, window_covariance

Move = frac(-1.0, 10.0, what="move")


class Scenario(Section):
    market: Move | None = None
    sector: dict[str, Move] = {}
    vol: frac(0.0, 100.0, lo_open=True, what="volatility multiple") | None = None

    @model_validator(mode="after")
    def _some_shock(self):
        if self.market is None and not self.sector and self.vol is None:
            raise fail("empty", "a scenario needs a shock",
                       "write `market: -20%`, `sector: {technology: -30%}` or `vol: 3`")
        return self


class Settings(Section):
    max: frac(0.0, 1.0, lo_open=True, hi_open=True, what="stress loss limit")
    window: window("`window`", least=2)
    confidence: frac(0.5, 1.0, lo_open=True, hi_open=True, what="confidence") = 0.99
    scenarios: Annotated[dict[str, Scenario], Field(min_length=1)]


def _moves(s: Settings, ctx):
    """Each scenario's (market move, per-instrument sector moves [N], vol multiple)."""
    ids = ctx.sector_ids
    out = []
    for sc in s.scenarios.values():
        by_id = {ctx.sector_names.index(k): v for k, v in sc.sector.items()
                 if k in ctx.sector_names}
        out.append((sc.market or 0.0, jnp.asarray([by_id.get(i, 0.0) for i in ids]),
                    sc.vol or 0.0))
    return out


def estimates(history, window: int):
    """What the losses read from the window: (complete [N], covariance [N, N], beta [N])."""
    complete, cov = window_covariance(history, window)
    u = jnp.where(complete, 1.0, 0.0) / jnp.maximum(complete.sum(), 1)
    return complete, cov, cov @ u / jnp.maximum(u @ cov @ u, TOL)


def stress_loss(w, history, s: Settings, ctx, est=None):
    """The largest loss of the book ``w`` over the scenarios (NaN when a held instrument's
    window is not complete); ``est`` from `estimates`, computed when not given."""
    complete, cov, beta = estimates(history, s.window) if est is None else est
    incomplete = jnp.any((w != 0) & ~complete)
    wc = jnp.where(complete, w, 0.0)
    sd = jnp.sqrt(jnp.maximum(wc @ cov @ wc, 0.0))
    z = normal_tail(s.confidence, False)
    losses = [-m * (beta @ wc) - x @ w + k * z * sd for m, x, k in _moves(s, ctx)]
    worst = jnp.maximum(jnp.max(jnp.stack(losses)), 0.0)
    return jnp.where(incomplete, jnp.nan, worst)


def make(s: Settings):
    def update(inputs, ctx):
        history = inputs["est"]["history"]
        free, fixed, locked = split(inputs)
        est = estimates(history, s.window)
        loss = lambda x: stress_loss(x, history, s, ctx, est)  # noqa: E731
        whole = loss(free + fixed)

        def homogeneous(_):
            return jnp.where(jnp.isfinite(whole), jnp.where(
                whole > s.max, s.max / jnp.maximum(whole, TOL), 1.0), 0.0)

        def searched(_):
            return largest_scale(lambda k: jnp.nan_to_num(loss(fixed + k * free), nan=jnp.inf),
                                 s.max)

        scale = lax.cond(jnp.any(locked & (fixed != 0)), searched, homogeneous, None)
        out = jnp.where(locked, inputs["w"], free * scale)
        return {"w": out, "stress_loss": whole}, {"stress_cap": changed(inputs["w"], out)}
    return stateless(update)


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("history", s.window),)


COMPONENT = Component("stress", "overlay", ("risk", "stress"), Settings, make, __doc__,
                      needs=needs, reasons=("stress_cap",))
