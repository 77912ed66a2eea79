"""Inverse-volatility sizing: ``w_i = sign(mu_i) * budget * (1 / vol_i) / sum_j (1 / vol_j)``.

``vol_i`` is the standard deviation of one-bar returns over ``vol_window`` bars (default 63);
``budget`` defaults to ``risk.gross_max``.

>>> import jax.numpy as jnp
>>> t = make(Settings(method="inverse_vol", budget=1.0, vol_window=20))
>>> out, _, _ = t.update({"mu": jnp.array([1.0, -1.0]), "tradable": jnp.array([True, True]),
...                       "est": {"vol20": jnp.array([0.01, 0.03])}}, (), None)
>>> [round(float(x), 6) for x in out["w"]]
[0.75, -0.25]
"""
from __future__ import annotations

from typing import Literal

from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless

from .common import EPS, Budget, Sizing, finish, usable_vol, vol_needs, vol_of


class Settings(Sizing):
    method: Literal["inverse_vol"]
    budget: Budget | None = None

    def reads_vol(self) -> bool:
        return True


def make(s: Settings):
    def update(inputs, ctx):
        ok = inputs["tradable"]
        vol = vol_of(inputs, s)
        inv = jnp.where(ok & usable_vol(vol), 1.0 / jnp.maximum(vol, EPS), 0.0)
        budget = s.budget if s.budget is not None else ctx.gross_max
        w = jnp.sign(inputs["mu"]) * budget * inv / jnp.maximum(inv.sum(), EPS)
        return finish(w, inputs, s, ctx, ok)
    return stateless(update)


COMPONENT = Component("inverse_vol", "sizing", ("sizing",), Settings, make, __doc__,
                      needs=vol_needs, reasons=("no_vol",))
