"""Volatility-target sizing: ``w_i = sign(mu_i) * target_bar / (vol_i * sqrt(n))``.

Each of the ``n`` tradable instruments runs at ``target_bar / sqrt(n)``, so that with
uncorrelated returns the book runs at the target (blueprint 16.2, ``s_t = sigma* / max(sigma_t,
eps)``); ``target_bar`` is the annual ``vol_target`` over ``sqrt(bars per year)`` and ``vol_i``
the standard deviation of one-bar returns over ``vol_window`` bars (default 63).

>>> import jax.numpy as jnp
>>> from crowe.stdlib.component import Ctx
>>> ctx = Ctx(2, 4.0, 1, (False,) * 2, (True,) * 2, (0, 0), 1, 1.0, 1.0)
>>> t = make(Settings(method="vol_target", vol_target=0.2, vol_window=20))
>>> out, _, _ = t.update({"mu": jnp.array([1.0, -1.0]), "tradable": jnp.array([True, True]),
...                       "est": {"vol20": jnp.array([0.1, 0.05])}}, (), ctx)
>>> [round(float(x), 6) for x in out["w"]]
[0.707107, -1.414214]
"""
from __future__ import annotations

from typing import Literal

from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless

from .common import EPS, Sizing, VolTarget, active, finish, vol_needs, vol_of


class Settings(Sizing):
    method: Literal["vol_target"]
    vol_target: VolTarget

    def reads_vol(self) -> bool:
        return True


def make(s: Settings):
    target_bar = s.vol_target

    def update(inputs, ctx):
        ok = inputs["tradable"]
        vol = vol_of(inputs, s)
        n = active(ok & jnp.isfinite(vol) & (vol > 0))
        w = jnp.sign(inputs["mu"]) * (target_bar / ctx.bars_per_year ** 0.5) / (
            jnp.maximum(vol, EPS) * jnp.sqrt(n))
        return finish(w, inputs, s, ctx, ok)
    return stateless(update)


COMPONENT = Component("vol_target", "sizing", ("sizing",), Settings, make, __doc__,
                      needs=vol_needs, reasons=("no_vol",))
