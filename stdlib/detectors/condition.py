"""A rule written as a condition: ``when`` is a boolean expression of the policy language, per
instrument or portfolio-wide, evaluated at every bar by the compiled step. Any rule whose name is
not a built-in detector's takes this form.

>>> import jax.numpy as jnp
>>> out, _, _ = make(Settings(when="gap > 8%", action="exclude")).update(
...     {"condition": jnp.array([True, False])}, (), None)
>>> [bool(x) for x in out["fired"]]
[True, False]
"""
from __future__ import annotations

from crowe.dsl.fields import Expr
from crowe.stdlib.component import Component, stateless
from crowe.stdlib.limits.common import Acting


class Settings(Acting):
    when: Expr


def make(s: Settings):
    def update(inputs, ctx):
        return {"fired": inputs["condition"]}, {}
    return stateless(update)


COMPONENT = Component("when", "detector", ("stand_down", "*"), Settings, make, __doc__)
