"""Settings every algorithm shares: the market model's participation cap, fill price and costs,
what happens to the unfilled part of a child order (``remainder``) and when the targets are
recomputed (``rebalance``); and the helpers the algorithms share.

An algorithm works one parent order per instrument (`crowe.stdlib.execution.parent`): each bar
it reads the parent's signed ``remaining`` shares, ``k`` (bars since the parent opened, 0 on its
first bar), the parent's ``horizon`` in bars and the market estimates, and returns the next
child order (``child``, signed shares) and its limit price (``limit``, NaN for a market order).
The step rounds the child to whole shares toward zero (not with ``lot: fractional``)
and never lets it exceed the remainder.
"""
from __future__ import annotations

from typing import Literal

from crowe.dsl.fields import Bps, Dur, Section, frac
from crowe.dsl.quantity import Duration
from crowe.stdlib._jax import jnp

from .rebalance import Rebalance


class Costs(Section):
    """What a fill costs: commission and half-spread on traded notional, the square-root impact
    coefficient, the annual borrow fee on shorts and the annual financing rate on negative
    cash."""

    commission: Bps = 1e-4
    half_spread: Bps = 2e-4
    impact: frac(0.0, 10.0, what="impact coefficient") = 0.1
    borrow: frac(0.0, 1.0, what="borrow rate") = 0.005
    financing: frac(0.0, 1.0, what="financing rate") = 0.05


class Execution(Section):
    algo: Literal[""] = ""
    participation_cap: frac(0.0, 1.0, lo_open=True, what="participation cap") = 0.1
    price: Literal["open", "vwap"] = "open"
    costs: Costs = Costs()
    remainder: Literal["carry", "cancel"] = "carry"
    rebalance: Rebalance = Rebalance()
    lot: Literal["whole", "fractional"] = "whole"

    def horizon_bars(self, bar_seconds: int) -> int:
        """The bars a parent order is worked over (1 for the algorithms without a horizon)."""
        h = getattr(self, "horizon", None)
        return 1 if h is None else (h.bars(bar_seconds) or 1)

    def rest_of_session(self, bar_seconds: int) -> bool:
        """Whether each parent is worked over the rest of its session instead of a fixed
        horizon (`twap` without a `horizon` on intraday bars)."""
        return False


class Sliced(Execution):
    """An algorithm that works each parent over ``horizon`` (a duration or a number of bars)."""

    horizon: Dur = Duration(5, "bar")


def left(inputs):
    """Bars left in the parent's horizon, this one included (at least 1)."""
    return jnp.maximum(inputs["horizon"] - inputs["k"], 1)


def market(child):
    """A market child: no limit price."""
    return {"child": child, "limit": jnp.full(child.shape, jnp.nan, jnp.float64)}
