"""Gross cap: ``sum |w| <= gross_max``, by scaling the tradable part of the book (locked
positions count at their last mark).

>>> import jax.numpy as jnp
>>> out, _, _ = make(1.0).update({"w": jnp.array([0.9, -0.5]), "w_cur": jnp.array([0.0, -0.5]),
...                               "locked": jnp.array([False, True])}, (), None)
>>> [round(float(x), 6) for x in out["w"]]
[0.5, -0.5]
"""
from __future__ import annotations

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless
from crowe.stdlib.risk import changed, shrink, split

Settings = frac(0.0, 10.0, lo_open=True, what="gross limit")


def make(cap: float):
    def update(inputs, ctx):
        free, fixed, locked = split(inputs)
        scale = shrink(jnp.maximum(cap - jnp.abs(fixed).sum(), 0.0), jnp.abs(free).sum())
        out = jnp.where(locked, inputs["w"], free * scale)
        return {"w": out}, {"gross_cap": changed(inputs["w"], out)}
    return stateless(update)


COMPONENT = Component("gross_max", "overlay", ("risk", "gross_max"), Settings, make, __doc__,
                      reasons=("gross_cap",))
