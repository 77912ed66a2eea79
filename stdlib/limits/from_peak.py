"""Drawdown from peak: fires when equity is ``max`` or more below its highest close so far.

The peak is the true peak of the run: a breach does not reset it, so the limit is a hard stop.
Its action stays in force for the cooldown and for as long as equity is ``max`` or more below
the peak; with `flatten`, a flat book cannot recover, so it stops the policy for the rest of the
run. ``reset_peak_after_cooldown: true`` restarts the peak at the equity of the breach instead,
so that after the cooldown the policy trades again and the limit measures from that level
(the drawdown from the run's true peak is then no longer bounded by ``max``).

>>> import jax.numpy as jnp
>>> t = make(Settings(max=0.1, action="halt"))
>>> s = t.init(None)
>>> for e in (100.0, 120.0, 107.0):
...     out, _, s = t.update({"E": jnp.asarray(e)}, s, None)
>>> bool(out["fired"]), round(float(out["drawdown"]), 6)
(True, 0.108333)
"""
from __future__ import annotations

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Transform

from .common import Acting


class Settings(Acting):
    max: frac(0.0, 1.0, lo_open=True, hi_open=True, what="limit")
    action: str = "flatten"
    reset_peak_after_cooldown: bool = False


def make(s: Settings):
    def init(ctx):
        return {"peak": jnp.asarray(-jnp.inf, jnp.float64)}

    def update(inputs, state, ctx):
        E = inputs["E"]
        peak = jnp.maximum(state["peak"], E)
        dd = 1.0 - E / peak
        fired = dd >= s.max
        if s.reset_peak_after_cooldown:
            peak = jnp.where(fired, E, peak)
        return {"fired": fired, "drawdown": dd}, {}, {"peak": peak}
    return Transform(init, update)


COMPONENT = Component("from_peak", "limit", ("risk", "drawdown", "from_peak"), Settings, make,
                      __doc__, per_instrument=False)
