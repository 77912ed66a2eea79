"""Intraday drawdown: fires when equity is ``max`` or more below the equity at the last close of
the previous day (days are UTC calendar days; blueprint 6.4: "maximum intraday drawdown D_max; if
breached, flatten").

>>> import jax.numpy as jnp
>>> t = make(Settings(max=0.02, action="flatten"))
>>> s = t.init(None)
>>> DAY = 86_400 * 10**9
>>> out, _, s = t.update({"E": jnp.asarray(100.0), "prev_E": jnp.asarray(100.0),
...                       "ts": jnp.asarray(DAY)}, s, None)
>>> out, _, s = t.update({"E": jnp.asarray(97.0), "prev_E": jnp.asarray(100.0),
...                       "ts": jnp.asarray(DAY + 1)}, s, None)
>>> bool(out["fired"]), round(float(out["drawdown"]), 6)
(True, 0.03)
"""
from __future__ import annotations

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Transform

from .common import Acting

DAY_NS = 86_400 * 10**9


class Settings(Acting):
    max: frac(0.0, 1.0, lo_open=True, hi_open=True, what="limit")
    action: str = "flatten"


def make(s: Settings):
    def init(ctx):
        return {"day": jnp.asarray(-1, jnp.int64), "day_start": jnp.asarray(jnp.nan, jnp.float64)}

    def update(inputs, state, ctx):
        day = inputs["ts"] // DAY_NS
        start = jnp.where(day != state["day"], inputs["prev_E"], state["day_start"])
        dd = 1.0 - inputs["E"] / start
        return {"fired": dd >= s.max, "drawdown": dd}, {}, {"day": day, "day_start": start}
    return Transform(init, update)


COMPONENT = Component("intraday", "limit", ("risk", "drawdown", "intraday"), Settings, make,
                      __doc__, per_instrument=False)
