"""Net cap: ``|sum w| <= net_max``, by scaling down the side that is too large (tradable
instruments only; locked positions count as they are).

>>> import jax.numpy as jnp
>>> out, _, _ = make(0.2).update({"w": jnp.array([0.6, -0.2]), "w_cur": jnp.zeros(2),
...                               "locked": jnp.zeros(2, bool)}, (), None)
>>> [round(float(x), 6) for x in out["w"]]
[0.4, -0.2]
"""
from __future__ import annotations

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless
from crowe.stdlib.risk import changed, shrink, split

Settings = frac(0.0, 10.0, what="net limit")


def make(cap: float):
    def update(inputs, ctx):
        free, fixed, locked = split(inputs)
        base = fixed.sum()
        longs = jnp.where(free > 0, free, 0.0).sum()
        shorts = jnp.where(free < 0, free, 0.0).sum()
        long_scale = shrink(jnp.maximum(cap - base - shorts, 0.0), longs)
        short_scale = shrink(jnp.maximum(cap + base + longs, 0.0), -shorts)
        net = base + longs + shorts
        scaled = jnp.where(net > cap, jnp.where(free > 0, free * long_scale, free),
                           jnp.where(net < -cap, jnp.where(free < 0, free * short_scale, free),
                                     free))
        out = jnp.where(locked, inputs["w"], scaled)
        return {"w": out}, {"net_cap": changed(inputs["w"], out)}
    return stateless(update)


COMPONENT = Component("net_max", "overlay", ("risk", "net_max"), Settings, make, __doc__,
                      reasons=("net_cap",))
