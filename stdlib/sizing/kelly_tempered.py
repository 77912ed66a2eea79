"""Kelly-tempered sizing: ``w = lambda * mu / sigma^2``.

The Kelly fraction for a normal forecast of the return over the horizon (mean ``mu``, standard
deviation ``sigma``), tempered by ``lambda`` in (0, 1] (blueprint 6.2 and 16.3: maximise
``w'mu - w'Sigma w / 2``, then ``w <- lambda w``). Reference: Thorp (2006), "The Kelly criterion in
blackjack, sports betting and the stock market".

>>> import jax.numpy as jnp
>>> t = make(Settings(method="kelly_tempered", **{"lambda": 0.5}))
>>> out, hits, _ = t.update({"mu": jnp.array([0.01, -0.02]), "sigma": jnp.array([0.1, 0.2]),
...                          "tradable": jnp.array([True, True])}, (), None)
>>> [round(float(x), 6) for x in out["w"]]
[0.5, -0.25]
"""
from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from crowe.dsl.fields import Fraction01
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless

from .common import EPS, Sizing, finish, vol_needs


class Settings(Sizing):
    method: Literal["kelly_tempered"]
    lambda_: Fraction01 = Field(alias="lambda")
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


def make(s: Settings):
    def update(inputs, ctx):
        mu, sigma, ok = inputs["mu"], inputs["sigma"], inputs["tradable"]
        return finish(s.lambda_ * mu / jnp.maximum(sigma * sigma, EPS), inputs, s, ctx, ok)
    return stateless(update)


COMPONENT = Component("kelly_tempered", "sizing", ("sizing",), Settings, make, __doc__,
                      needs=vol_needs, reasons=("no_vol",))
