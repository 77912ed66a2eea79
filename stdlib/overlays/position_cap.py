"""Position cap: ``|w_i| <= position_max`` for every instrument that can trade.

>>> import jax.numpy as jnp
>>> out, hits, _ = make(0.1).update({"w": jnp.array([0.3, -0.05]), "w_cur": jnp.zeros(2),
...                                  "locked": jnp.array([False, False])}, (), None)
>>> [float(x) for x in out["w"]], [bool(h) for h in hits["position_cap"]]
([0.1, -0.05], [True, False])
"""
from __future__ import annotations

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless
from crowe.stdlib.risk import changed

Settings = frac(0.0, 1.0, lo_open=True, what="position limit")


def make(cap: float):
    def update(inputs, ctx):
        w = inputs["w"]
        out = jnp.where(inputs["locked"], w, jnp.clip(w, -cap, cap))
        return {"w": out}, {"position_cap": changed(w, out)}
    return stateless(update)


COMPONENT = Component("position_max", "overlay", ("risk", "position_max"), Settings, make,
                      __doc__, reasons=("position_cap",))
