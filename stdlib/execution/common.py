"""Settings every algorithm shares: the market model's participation cap, fill price and costs."""
from __future__ import annotations

from typing import Literal

from crowe.dsl.fields import Bps, Section, frac


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
