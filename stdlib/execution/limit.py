"""``limit``: each bar, a limit order for the whole remainder of the parent, at ``limit_offset``
through the decision bar's close (buy at ``close * (1 + offset)``, sell at
``close * (1 - offset)``); it fills at the next bar only if that bar trades through the limit,
at the better of the reference price and the limit.

>>> import jax.numpy as jnp
>>> out, _, _ = make(Settings(algo="limit", limit_offset=0.01)).update(
...     {"remaining": jnp.array([10.0, -5.0, 0.0]), "price": jnp.array([100.0, 50.0, 20.0])},
...     (), None)
>>> [round(float(x), 6) for x in out["limit"][:2]], bool(jnp.isnan(out["limit"][2]))
([101.0, 49.5], True)
"""
from __future__ import annotations

from typing import Literal

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless

from .common import Execution


class Settings(Execution):
    algo: Literal["limit"]
    limit_offset: frac(0.0, 0.1, what="limit offset")


def make(s: Settings):
    def update(inputs, ctx):
        qty, price = inputs["remaining"], inputs["price"]
        limit = jnp.where(qty > 0, price * (1 + s.limit_offset), price * (1 - s.limit_offset))
        return {"child": qty, "limit": jnp.where(qty != 0, limit, jnp.nan)}, {}
    return stateless(update)


COMPONENT = Component("limit", "execution", ("execution",), Settings, make, __doc__)
