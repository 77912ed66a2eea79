"""``market``: each bar, a market order for the whole remainder of the parent, filled at the next
bar's price (``price``: its open, or the VWAP proxy ``(high + low + close) / 3``) up to the
participation cap. With ``remainder: carry`` the unfilled part is sent again at the next bar;
with ``cancel`` it is dropped.

``child_k = remaining_k``

>>> import jax.numpy as jnp
>>> out, _, _ = make(Settings(algo="market")).update(
...     {"remaining": jnp.array([10.0, -5.0])}, (), None)
>>> [float(x) for x in out["child"]], [bool(jnp.isnan(x)) for x in out["limit"]]
([10.0, -5.0], [True, True])
"""
from __future__ import annotations

from typing import Literal

from crowe.stdlib.component import Component, stateless

from .common import Execution, market


class Settings(Execution):
    algo: Literal["market"]


def make(s: Settings):
    return stateless(lambda inputs, ctx: (market(inputs["remaining"]), {}))


COMPONENT = Component("market", "execution", ("execution",), Settings, make, __doc__)
