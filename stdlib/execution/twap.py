"""``twap``: time-weighted slices, equal child orders over ``horizon`` bars (a duration such as
``5d`` or a number of bars). Without a ``horizon``, on intraday bars a parent is worked over the
rest of its session: ``horizon`` is the bar field ``session_left`` when it opens (the bars of the
session still to come, so that its last child fills at the session's last bar; a parent opened
at a session's last bar is worked over the whole next session; sessions are those of
`universe.calendar`, or UTC calendar days without one); on daily bars it is 5 bars. At bar ``k``
of the parent (``k = 0`` on the bar it opens), with ``n = horizon - k`` bars left::

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

from crowe.dsl.fields import Dur
from crowe.stdlib.component import Component, stateless

from .common import Sliced, left, market


DAILY_HORIZON = 5       # bars, on daily bars without a horizon


class Settings(Sliced):
    algo: Literal["twap"]
    horizon: Dur | None = None

    def horizon_bars(self, bar_seconds: int) -> int:
        if self.horizon is None:
            return DAILY_HORIZON
        return super().horizon_bars(bar_seconds)

    def rest_of_session(self, bar_seconds: int) -> bool:
        return self.horizon is None and bar_seconds < 86_400


def make(s: Settings):
    return stateless(lambda inputs, ctx: (market(inputs["remaining"] / left(inputs)), {}))


COMPONENT = Component("twap", "execution", ("execution",), Settings, make, __doc__)
