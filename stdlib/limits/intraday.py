"""Intraday drawdown: fires when equity is ``max`` or more below the equity at the last close of
the previous session (blueprint 6.4: "maximum intraday drawdown D_max; if breached, flatten").
A session is one of `universe.calendar` (the bar field ``session``, from
`crowe.stdlib.sessions`), or a UTC calendar day without a calendar.

>>> import jax.numpy as jnp
>>> t = make(Settings(max=0.02, action="flatten"))
>>> s = t.init(None)
>>> out, _, s = t.update({"E": jnp.asarray(100.0), "prev_E": jnp.asarray(100.0),
...                       "session": jnp.asarray(19_000)}, s, None)
>>> out, _, s = t.update({"E": jnp.asarray(97.0), "prev_E": jnp.asarray(100.0),
...                       "session": jnp.asarray(19_000)}, s, None)
>>> bool(out["fired"]), round(float(out["drawdown"]), 6)
(True, 0.03)
"""
from __future__ import annotations

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Transform

from .common import Acting

class Settings(Acting):
    max: frac(0.0, 1.0, lo_open=True, hi_open=True, what="limit")
    action: str = "flatten"


def make(s: Settings):
    def init(ctx):
        return {"day": jnp.asarray(-1, jnp.int64), "day_start": jnp.asarray(jnp.nan, jnp.float64)}

    def update(inputs, state, ctx):
        day = inputs["session"]
        start = jnp.where(day != state["day"], inputs["prev_E"], state["day_start"])
        dd = 1.0 - inputs["E"] / start
        return {"fired": dd >= s.max, "drawdown": dd}, {}, {"day": day, "day_start": start}
    return Transform(init, update)


COMPONENT = Component("intraday", "limit", ("risk", "drawdown", "intraday"), Settings, make,
                      __doc__, per_instrument=False)
