"""``market``: each bar, a market order for the whole difference between the target and the
position, filled at the next bar's price (``price``: its open, or the VWAP proxy
``(high + low + close) / 3``) up to the participation cap.

>>> import jax.numpy as jnp
>>> out, _, _ = make(Settings(algo="market")).update(
...     {"qty": jnp.array([10.0, -5.0]), "price": jnp.array([100.0, 50.0])}, (), None)
>>> [float(x) for x in out["qty"]], [bool(jnp.isnan(x)) for x in out["limit"]]
([10.0, -5.0], [True, True])
"""
from __future__ import annotations

from typing import Literal

from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless

from .common import Execution


class Settings(Execution):
    algo: Literal["market"]


def make(s: Settings):
    def update(inputs, ctx):
        qty = inputs["qty"]
        return {"qty": qty, "limit": jnp.full(qty.shape, jnp.nan, jnp.float64)}, {}
    return stateless(update)


COMPONENT = Component("market", "execution", ("execution",), Settings, make, __doc__)
