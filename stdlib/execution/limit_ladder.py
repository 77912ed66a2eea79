"""``limit_ladder``: TWAP-sized children over ``horizon`` bars (default 5), each a limit order at
the offset of a ladder of rungs that has the best expected value given the spread, the
volatility and the forecast's uncertainty (blueprint 9.3 and 16.4).

The rungs are offsets ``delta = g * sigma_b`` through the decision close (a buy at
``close * (1 - delta)``, a sell at ``close * (1 + delta)``), ``g`` in ``RUNGS``, where
``sigma_b`` is the per-bar volatility the market model reads. A rung fills at the next bar only
if the bar trades through it; for a driftless path over one bar the chance is
``P(g) = min(1, 2 Phi(-g))`` (reflection principle). A fill saves ``delta`` against the close
and pays the fees ``f`` (commission plus half-spread); a miss gives up the edge the forecast
expects over the bar, weighted by how sure the forecast is::

    alpha = max(sign(child) * mu, 0) / horizon_signal * max(2 prob_edge - 1, 0)
    EV(g) = P(g) (g sigma_b - f) - (1 - P(g)) alpha          g* = argmax EV (smallest on ties)

A wide prediction interval (``prob_edge`` near 1/2) or no edge leaves ``alpha`` near 0 and the
order rests passively, about ``0.75 sigma_b`` away; a narrow interval around a large edge makes
missing costly and the order joins the close (``g = 0``), which fills whenever the bar trades
at or through it.

>>> import jax.numpy as jnp
>>> g = rung({"vol": jnp.array([0.02, 0.02]), "mu": jnp.array([0.0, 0.2]),
...           "prob_edge": jnp.array([0.5, 0.999]), "remaining": jnp.array([10.0, 10.0])},
...          fees=3e-4, horizon=1)
>>> [float(x) for x in g]
[0.75, 0.0]
"""
from __future__ import annotations

from typing import Literal

from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless

from .common import Sliced, left

RUNGS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


class Settings(Sliced):
    algo: Literal["limit_ladder"]


def fill_chance(g):
    from jax.scipy.stats import norm
    return jnp.minimum(1.0, 2.0 * norm.cdf(-g))


def rung(inputs, fees: float, horizon: int):
    """The rung ``g*`` of each instrument (in units of ``sigma_b``)."""
    sig = jnp.where(jnp.isfinite(inputs["vol"]), inputs["vol"], 0.0)
    mu = jnp.where(jnp.isfinite(inputs["mu"]), inputs["mu"], 0.0)
    pe = jnp.where(jnp.isfinite(inputs["prob_edge"]), inputs["prob_edge"], 0.5)
    alpha = jnp.maximum(jnp.sign(inputs["remaining"]) * mu, 0.0) / horizon * \
        jnp.maximum(2.0 * pe - 1.0, 0.0)
    g = jnp.asarray(RUNGS)[:, None]
    p = fill_chance(g)
    ev = p * (g * sig - fees) - (1.0 - p) * alpha
    return jnp.asarray(RUNGS)[jnp.argmax(ev, axis=0)]


def make(s: Settings):
    fees = s.costs.commission + s.costs.half_spread

    def update(inputs, ctx):
        rem, price = inputs["remaining"], inputs["price"]
        delta = rung(inputs, fees, ctx.horizon) * jnp.where(jnp.isfinite(inputs["vol"]),
                                                            inputs["vol"], 0.0)
        limit = jnp.where(rem > 0, price * (1.0 - delta), price * (1.0 + delta))
        return {"child": rem / left(inputs), "limit": jnp.where(rem != 0, limit, jnp.nan)}, {}
    return stateless(update)


COMPONENT = Component("limit_ladder", "execution", ("execution",), Settings, make, __doc__)
