"""Portfolio trailing stop with a volatility-adaptive band (blueprint 9.5).

Fires when equity falls below its trailing peak by more than ``multiple * sd * sqrt(window)``,
where ``sd`` is the standard deviation of the equity's one-bar returns over the last ``window``
bars: the band is ``multiple`` typical moves of the equity over the window. When it fires the
trail restarts from the equity of that bar (a trailing stop protects gains from the level it
last stopped at; for a hard limit from the true peak use ``drawdown.from_peak``). No band, and
no firing, until ``window`` returns are known.

>>> import jax.numpy as jnp
>>> t = make(Settings(multiple=1.0, window=2, action="flatten"))
>>> s = t.init(None)
>>> for e, p in ((101.0, 100.0), (100.0, 101.0), (90.0, 100.0)):
...     out, _, s = t.update({"E": jnp.asarray(e), "prev_E": jnp.asarray(p)}, s, None)
>>> bool(out["fired"])
True
"""
from __future__ import annotations

from crowe.dsl.fields import frac, window
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Transform

from .common import Acting


Window = window("`window`", least=2)

class Settings(Acting):
    multiple: frac(0.0, 100.0, lo_open=True, what="multiple")
    window: Window = 20
    action: str = "flatten"


def _nanstd(x, n: int):
    ok = jnp.isfinite(x)
    cnt = ok.sum()
    mean = jnp.where(ok, x, 0.0).sum() / jnp.maximum(cnt, 1)
    var = jnp.where(ok, (x - mean) ** 2, 0.0).sum() / jnp.maximum(cnt - 1, 1)
    return jnp.where(cnt >= n, jnp.sqrt(var), jnp.inf)


def make(s: Settings):
    def init(ctx):
        return {"peak": jnp.asarray(-jnp.inf, jnp.float64),
                "ring": jnp.full((s.window,), jnp.nan, jnp.float64),
                "i": jnp.asarray(0, jnp.int64)}

    def update(inputs, state, ctx):
        E = inputs["E"]
        ring = state["ring"].at[state["i"] % s.window].set(E / inputs["prev_E"] - 1.0)
        peak = jnp.maximum(state["peak"], E)
        band = s.multiple * _nanstd(ring, s.window) * s.window ** 0.5
        fired = E < peak * (1.0 - band)
        new = {"peak": jnp.where(fired, E, peak), "ring": ring, "i": state["i"] + 1}
        return {"fired": fired, "drawdown": 1.0 - E / peak}, {}, new
    return Transform(init, update)


COMPONENT = Component("trailing_stop", "limit", ("risk", "trailing_stop"), Settings, make,
                      __doc__, per_instrument=False)
