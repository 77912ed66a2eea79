"""The registries of the standard library: one per slot, in the order the step applies them.

Adding a component is one file in its slot's folder plus one line here. The schema
(`crowe.dsl.schema`), the checker and the compiled step all read these registries.
"""
from __future__ import annotations

from .component import Registry
from .exits import protective
from .detectors import (change_point, condition, crash_sentinel, data_gap, drift, loss_streak,
                        regime, vol_spike)
from .detectors import fragility
from .execution import implementation_shortfall, limit, limit_ladder, market, order_size, pov, \
    throttle, twap, vwap
from .execution import flip_guard, price_collar
from .limits import from_peak, intraday, trailing_stop
from .overlays import gross_cap, net_cap, position_cap, sector_cap, stress, tail_risk
from .portfolio import hrp, kelly, mean_variance, min_variance, risk_parity
from .sizing import equal, inverse_vol, kelly_tempered, vol_target, weight


def _registry(slot: str, *components) -> Registry:
    r = Registry(slot)
    for c in components:
        r.add(c)
    return r


SIZING = _registry("sizing", kelly_tempered.COMPONENT, vol_target.COMPONENT, equal.COMPONENT,
                   inverse_vol.COMPONENT, weight.COMPONENT)
PORTFOLIO = _registry("portfolio", mean_variance.COMPONENT, hrp.COMPONENT, risk_parity.COMPONENT,
                      min_variance.COMPONENT, kelly.COMPONENT)
OVERLAYS = _registry("overlay", position_cap.COMPONENT, sector_cap.COMPONENT, net_cap.COMPONENT,
                     gross_cap.COMPONENT, tail_risk.VAR, tail_risk.ES, stress.COMPONENT)
LIMITS = _registry("limit", intraday.COMPONENT, from_peak.COMPONENT, trailing_stop.COMPONENT)
DETECTORS = _registry("detector", data_gap.COMPONENT, vol_spike.COMPONENT,
                      loss_streak.COMPONENT, regime.COMPONENT, change_point.COMPONENT,
                      drift.COMPONENT, crash_sentinel.COMPONENT, fragility.COMPONENT,
                      condition.COMPONENT)
EXECUTION = _registry("execution", market.COMPONENT, limit.COMPONENT, twap.COMPONENT,
                      vwap.COMPONENT, pov.COMPONENT, implementation_shortfall.COMPONENT,
                      limit_ladder.COMPONENT)
ORDER_RULES = _registry("order_rule", order_size.SHARES, order_size.NOTIONAL, throttle.PER_BAR,
                        throttle.PER_MINUTE, price_collar.COMPONENT, flip_guard.COMPONENT)

EXITS = _registry("exit", protective.COMPONENT)

REGISTRIES = (SIZING, PORTFOLIO, OVERLAYS, LIMITS, DETECTORS, EXECUTION, ORDER_RULES, EXITS)

# The market model's own estimators (`crowe.stdlib.market`): its square-root impact reads the
# volatility of one-bar returns and the average volume over this many bars.
IMPACT_WINDOW = 20

# Names a user may know from the documentation or other tools that have no component yet: the
# checker refuses them with this advice (they are not in the schema).
NOT_AVAILABLE = {
    ("compliance", "wash_trade_prevention"): "the step sends at most one order per instrument "
                                             "and bar, so it cannot trade with itself: remove it",
}


def by_path() -> dict[tuple[str, ...], object]:
    """Every component whose settings sit at a fixed path of the policy."""
    return {c.path: c for r in REGISTRIES for c in r if "*" not in c.path and
            c.slot not in ("sizing", "portfolio", "execution")}
