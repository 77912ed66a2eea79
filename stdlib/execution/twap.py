"""``twap``: time-weighted slices, equal child orders over ``horizon`` bars (a duration such as
``5d`` or a number of bars; default 5). At bar ``k`` of the parent (``k = 0`` on the bar it
opens), with ``n = horizon - k`` bars left::

    child_k = remaining_k / n          (whole shares toward zero; the last slice takes the rest)

With every child filled this is ``X / horizon`` each bar; with ``remainder: carry`` a shortfall
is spread over the bars left, and after the horizon the whole remainder is sent each bar.

Example: 10 shares over 3 bars are sent as 3, 3 and 4:

>>> import jax.numpy as jnp
>>> t, sent, rem = make(Settings(algo="twap", horizon=3)), [], 10.0
>>> for k in range(3):
...     out, _, _ = t.update({"remaining": jnp.array([rem]), "k": jnp.array([k]),
...                           "horizon": jnp.array([3])}, (), None)
...     c = float(jnp.trunc(out["child"][0])); sent.append(c); rem -= c
>>> sent
[3.0, 3.0, 4.0]
"""
from __future__ import annotations

from typing import Literal

from crowe.stdlib.component import Component, stateless

from .common import Sliced, left, market


class Settings(Sliced):
    algo: Literal["twap"]


def make(s: Settings):
    return stateless(lambda inputs, ctx: (market(inputs["remaining"] / left(inputs)), {}))


COMPONENT = Component("twap", "execution", ("execution",), Settings, make, __doc__)
