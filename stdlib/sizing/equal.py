"""Equal sizing: ``w_i = sign(mu_i) * budget / n`` over the ``n`` tradable instruments.

``budget`` defaults to ``risk.gross_max``.

>>> import jax.numpy as jnp
>>> t = make(Settings(method="equal", budget=1.0))
>>> out, _, _ = t.update({"mu": jnp.array([0.1, -0.1, 0.2]),
...                       "tradable": jnp.array([True, True, False])}, (), None)
>>> [float(x) for x in out["w"]]
[0.5, -0.5, 0.0]
"""
from __future__ import annotations

from typing import Literal

from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless

from .common import Budget, Sizing, active, finish, vol_needs


class Settings(Sizing):
    method: Literal["equal"]
    budget: Budget | None = None


def make(s: Settings):
    def update(inputs, ctx):
        ok = inputs["tradable"]
        budget = s.budget if s.budget is not None else ctx.gross_max
        return finish(jnp.sign(inputs["mu"]) * budget / active(ok), inputs, s, ctx, ok)
    return stateless(update)


COMPONENT = Component("equal", "sizing", ("sizing",), Settings, make, __doc__,
                      needs=vol_needs, reasons=("no_vol",))
