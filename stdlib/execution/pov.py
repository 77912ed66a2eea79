"""``pov``: percentage of volume. Each child is ``participation`` times the volume expected for
the bar it fills on (the market model's average volume of the last 20 bars), in whole shares,
until the parent is done::

    child_k = sign(remaining_k) * min(|remaining_k|, floor(participation * adv))

``participation`` (default 5%) may not exceed ``participation_cap``, the share of the *actual*
volume the market model fills at most, so a child is never planned above the cap.

>>> import jax.numpy as jnp
>>> out, _, _ = make(Settings(algo="pov", participation=0.05)).update(
...     {"remaining": jnp.array([-7000.0, 300.0]), "adv": jnp.array([100_000.0, 100_000.0])},
...     (), None)
>>> [float(x) for x in out["child"]]
[-5000.0, 300.0]
"""
from __future__ import annotations

from typing import Literal

from pydantic import ValidationInfo, field_validator

from crowe.dsl.fields import fail, frac
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless

from .common import Execution, market


class Settings(Execution):
    algo: Literal["pov"]
    participation: frac(0.0, 1.0, lo_open=True, what="participation") = 0.05

    @field_validator("participation")
    @classmethod
    def _below_cap(cls, v: float, info: ValidationInfo) -> float:
        cap = info.data.get("participation_cap", 0.1)
        if v > cap:
            raise fail("range", f"participation `{v:g}` is above the participation cap "
                       f"`{cap:g}`", "lower `participation`, or raise `participation_cap`")
        return v


def make(s: Settings):
    def update(inputs, ctx):
        rem, adv = inputs["remaining"], inputs["adv"]
        most = s.participation * jnp.where(jnp.isfinite(adv), adv, 0.0)
        most = most if s.lot == "fractional" else jnp.floor(most)
        return market(jnp.sign(rem) * jnp.minimum(jnp.abs(rem), most)), {}
    return stateless(update)


COMPONENT = Component("pov", "execution", ("execution",), Settings, make, __doc__)
