"""Data gap: fires when more than ``max_missing`` of the instruments seen so far have no valid
bar (blueprint 6.4: "stand-down policy on data-integrity failures"), or when none has been seen.

>>> import jax.numpy as jnp
>>> t = make(Settings(max_missing=0.25, action="halt"))
>>> out, _, _ = t.update({"ok": jnp.array([True, False, True]),
...                       "seen": jnp.array([True, True, True])}, (), None)
>>> bool(out["fired"]), round(float(out["missing"]), 6)
(True, 0.333333)
"""
from __future__ import annotations

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless
from crowe.stdlib.limits.common import Acting


class Settings(Acting):
    max_missing: frac(0.0, 1.0, hi_open=True, what="missing share")


def make(s: Settings):
    def update(inputs, ctx):
        seen, ok = inputs["seen"], inputs["ok"]
        missing = (seen & ~ok).sum() / jnp.maximum(seen.sum(), 1)
        return {"fired": (missing > s.max_missing) | (seen.sum() == 0), "missing": missing}, {}
    return stateless(update)


COMPONENT = Component("data_gap", "detector", ("stand_down", "data_gap"), Settings, make,
                      __doc__, per_instrument=False)
