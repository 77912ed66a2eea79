"""``is``: implementation shortfall, the Almgren-Chriss optimal schedule (Almgren and Chriss,
"Optimal execution of portfolio transactions", J. Risk 3, 2000) over ``horizon`` bars.

Selling (or buying) ``X`` shares over ``N`` bars with holdings ``x_0 = X, ..., x_N = 0`` and
children ``v_k = x_{k-1} - x_k``, the schedule minimises ``E[C] + lambda Var[C]`` with the
discrete model::

    E[C]   = eps |X| + eta sum_k v_k^2       Var[C] = (sigma p)^2 sum_{k=1..N} x_k^2

whose solution is ``x_k = X sinh(kappa (N - k)) / sinh(kappa N)`` with
``cosh(kappa) = 1 + lambda (sigma p)^2 / (2 eta)`` (one bar per step, no permanent impact: the
market model has none). The coefficients are those the market model charges: ``eps`` the
commission and half-spread (a constant that does not move the schedule), ``sigma`` the per-bar
volatility of returns it reads for impact, ``p`` the arrival price, and ``eta`` its square-root
impact ``impact * sigma * sqrt(|v| / adv) * |v| * p`` made quadratic at the even child
``v = X / N``: ``eta = impact * sigma * p / sqrt(adv * |X| / N)``. ``risk_aversion`` is
``lambda``, per unit of currency (default 1e-6); as it goes to 0 the schedule becomes TWAP, and
the larger it is the more the schedule is front-loaded. ``kappa`` is fixed when the parent opens;
each bar the child is the schedule re-solved from the remainder over the bars left, which is the
same schedule when every child fills::

    child_k = remaining_k * (1 - sinh(kappa (n - 1)) / sinh(kappa n)),   n = horizon - k

>>> import numpy as np
>>> [round(float(v), 3) for v in -np.diff(trajectory(100.0, 1.0, 3))]
[63.796, 24.473, 11.731]
"""
from __future__ import annotations

from typing import Literal

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Transform

from .common import Sliced, left, market


class Settings(Sliced):
    algo: Literal["is"]
    risk_aversion: frac(0.0, 1.0, what="risk aversion") = 1e-6


def kappa_of(eta, lam, sigma_price):
    """The discrete Almgren-Chriss urgency: ``arccosh(1 + lam sigma_price^2 / (2 eta))``."""
    ratio = lam * sigma_price ** 2 / (2.0 * jnp.maximum(eta, 1e-300))
    return jnp.arccosh(1.0 + jnp.where(jnp.isfinite(ratio), ratio, 0.0))


def left_after(kappa, n):
    """``sinh(kappa (n - 1)) / sinh(kappa n)``, stable for large ``kappa n`` and -> (n-1)/n as
    kappa -> 0."""
    n = jnp.asarray(n, jnp.float64)
    e1, e2 = jnp.exp(-2.0 * kappa * (n - 1.0)), jnp.exp(-2.0 * kappa * n)
    exact = jnp.exp(-kappa) * (1.0 - e1) / jnp.maximum(1.0 - e2, 1e-300)
    return jnp.where(n <= 1, 0.0, jnp.where(kappa * n > 1e-6, exact, (n - 1.0) / n))


def trajectory(X, kappa, N):
    """Holdings ``x_0 .. x_N`` of the closed form (numpy, for reference)."""
    import numpy as np
    k = np.arange(N + 1)
    return X * np.sinh(kappa * (N - k)) / np.sinh(kappa * N)


def make(s: Settings):
    def init(ctx):
        return {"kappa": jnp.zeros(ctx.n, jnp.float64)}

    def update(inputs, state, ctx):
        H = s.horizon_bars(ctx.bar_seconds)
        vol, adv, p = inputs["vol"], inputs["adv"], inputs["price"]
        size = jnp.abs(inputs["remaining"]) / H
        eta = s.costs.impact * vol * p / jnp.sqrt(adv * jnp.maximum(size, 1.0))
        kappa = kappa_of(eta, s.risk_aversion, vol * p)
        good = jnp.isfinite(kappa) & (eta > 0)
        kappa = jnp.where(inputs["opened"], jnp.where(good, kappa, 0.0), state["kappa"])
        child = inputs["remaining"] * (1.0 - left_after(kappa, left(inputs)))
        return market(child), {}, {"kappa": kappa}

    return Transform(init, update)


COMPONENT = Component("is", "execution", ("execution",), Settings, make, __doc__)
