"""Weight sizing: the target weight of each instrument is an expression of the policy language,
``w_i = weight_i``, with no forecast in between.

``weight`` is a dimensionless expression (a number, a per-bar scalar or a cross-section), for
example an SMA crossover ``where(mean(close, fast) > mean(close, slow), 20%, 0)``. It is then
treated like any other sizing method's output: gates (a closed gate allows holding or
reducing, never opening or adding), stand-down exclusions, compliance, every risk cap and the
trading state still apply, in that order. An instrument whose weight is missing (NaN, e.g. in
its own warm-up or across a data gap) gets 0 and the reason ``no_weight``. With ``vol_target``
the book is then scaled to that annualised volatility, like the other methods. The policy's
`signal` section is optional with this method.

>>> import jax.numpy as jnp
>>> t = make(Settings(method="weight", weight="where(close > open, 10%, 0)"))
>>> out, hits, _ = t.update({"est": {"weight": jnp.array([0.1, 0.0, jnp.nan])},
...                          "tradable": jnp.array([True, True, True])}, (), None)
>>> [float(x) for x in out["w"]], [bool(x) for x in hits["no_weight"]]
([0.1, 0.0, 0.0], [False, False, True])
"""
from __future__ import annotations

from typing import Literal

from crowe.dsl.fields import Expr
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless

from .common import Sizing, finish, vol_needs


class Settings(Sizing):
    method: Literal["weight"]
    weight: Expr


def make(s: Settings):
    def update(inputs, ctx):
        tradable = inputs["tradable"]
        w = jnp.broadcast_to(jnp.asarray(inputs["est"]["weight"], jnp.float64),
                             tradable.shape)
        known = jnp.isfinite(w)
        out, hits = finish(jnp.where(known, w, 0.0), inputs, s, ctx, tradable & known)
        return out, dict(hits, no_weight=tradable & ~known)
    return stateless(update)


COMPONENT = Component("weight", "sizing", ("sizing",), Settings, make, __doc__,
                      needs=vol_needs, reasons=("no_vol", "no_weight"))
