"""Loss streak: fires after ``losses`` consecutive bars on which equity fell.

>>> import jax.numpy as jnp
>>> t = make(Settings(losses=2, action="halt"))
>>> s = t.init(None)
>>> for r in (-0.01, -0.02):
...     out, _, s = t.update({"r_eq": jnp.asarray(r)}, s, None)
>>> bool(out["fired"]), int(s["losses"])
(True, 2)
"""
from __future__ import annotations

from crowe.dsl.fields import positive_int
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Transform
from crowe.stdlib.limits.common import Acting


class Settings(Acting):
    losses: positive_int("`losses`", 10_000)


def make(s: Settings):
    def init(ctx):
        return {"losses": jnp.asarray(0, jnp.int64)}

    def update(inputs, state, ctx):
        losses = jnp.where(inputs["r_eq"] < 0, state["losses"] + 1, 0)
        return {"fired": losses >= s.losses}, {}, {"losses": losses}
    return Transform(init, update)


COMPONENT = Component("loss_streak", "detector", ("stand_down", "loss_streak"), Settings, make,
                      __doc__, per_instrument=False)
