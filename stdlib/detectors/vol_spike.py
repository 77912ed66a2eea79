"""Volatility spike: fires for an instrument whose one-bar return is larger in size than
``sigma`` times the standard deviation of its one-bar returns over the ``window`` bars before
this one.

>>> import jax.numpy as jnp
>>> from crowe.stdlib.component import Ctx
>>> t = make(Settings(sigma=4, window=20, action="exclude"))
>>> s = t.init(Ctx(1, 252.0, 1, (False,), (True,), (0,), 1, 1.0, 1.0))
>>> _, _, s = t.update({"est": {"r1": jnp.array([0.0]), "vol20": jnp.array([0.01])}}, s, None)
>>> out, _, s = t.update({"est": {"r1": jnp.array([0.05]), "vol20": jnp.array([0.02])}}, s, None)
>>> bool(out["fired"][0])
True
"""
from __future__ import annotations

from crowe.dsl.fields import frac, window
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Need, Transform
from crowe.stdlib.limits.common import Acting


Window = window("`window`", least=2)

class Settings(Acting):
    sigma: frac(0.0, 100.0, lo_open=True, what="spike threshold")
    window: Window = 63


def make(s: Settings):
    key = Need("vol", s.window).key

    def init(ctx):
        return {"prior": jnp.full((ctx.n,), jnp.nan, jnp.float64)}

    def update(inputs, state, ctx):
        r1, vol = inputs["est"]["r1"], inputs["est"][key]
        fired = jnp.abs(r1) > s.sigma * state["prior"]
        return {"fired": fired}, {}, {"prior": vol}
    return Transform(init, update)


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("vol", s.window, lag=1),)


COMPONENT = Component("vol_spike", "detector", ("stand_down", "vol_spike"), Settings, make,
                      __doc__, needs=needs, per_instrument=True)
