"""Sector cap: the gross weight of each sector (``universe.sectors``) is at most
``sector_max``, by scaling the sector's tradable members (locked members count as they are).

>>> import jax.numpy as jnp
>>> from crowe.stdlib.component import Ctx
>>> ctx = Ctx(3, 252.0, 1, (False,) * 3, (True,) * 3, (0, 0, 1), 2, 1.0, 1.0)
>>> out, _, _ = make(0.3).update({"w": jnp.array([0.2, 0.4, 0.5]), "w_cur": jnp.zeros(3),
...                               "locked": jnp.zeros(3, bool)}, (), ctx)
>>> [round(float(x), 6) for x in out["w"]]
[0.1, 0.2, 0.3]
"""
from __future__ import annotations

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jax, jnp
from crowe.stdlib.component import Component, stateless
from crowe.stdlib.risk import changed, shrink, split

Settings = frac(0.0, 10.0, lo_open=True, what="sector limit")


def make(cap: float):
    def update(inputs, ctx):
        free, fixed, locked = split(inputs)
        ids = jnp.asarray(ctx.sector_ids)
        per = lambda x: jax.ops.segment_sum(jnp.abs(x), ids, num_segments=ctx.n_sectors)  # noqa
        scale = shrink(jnp.maximum(cap - per(fixed), 0.0), per(free))
        out = jnp.where(locked, inputs["w"], free * scale[ids])
        return {"w": out}, {"sector_cap": changed(inputs["w"], out)}
    return stateless(update)


COMPONENT = Component("sector_max", "overlay", ("risk", "sector_max"), Settings, make,
                      __doc__, reasons=("sector_cap",))
