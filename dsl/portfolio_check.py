"""Checks of the optimizer's constraints (`portfolio.constraints`) and of the stress scenarios
(`risk.stress`) that need the rest of the policy: the features and sectors they name, and the
bounds that no book can meet.

The value checks (two numbers, low below high) are in the settings models; these run in the
checker, which knows the features' types and the universe.
"""
from __future__ import annotations

from .diagnostics import Label, suggestion
from .types import DType, Kind


def constraints_of(spec):
    """The optimizer's constraints, or None."""
    return getattr(getattr(spec, "portfolio", None), "constraints", None)


def exposure_features(spec) -> list[str]:
    """The features the optimizer's exposure constraints read, as written."""
    c = constraints_of(spec)
    return list(c.exposure) if c is not None else []


def check_constraints(ck) -> None:
    """Diagnostics for `portfolio.constraints` on the checker `ck`."""
    c = constraints_of(ck.spec)
    if c is None:
        return
    path = ("portfolio", "constraints")
    for name in c.exposure:
        _exposure_feature(ck, name, path + ("exposure", name))
    sectors = ck.spec.universe.sectors if ck.spec.universe is not None else None
    for key in ("sector_net", "sector_gross"):
        if getattr(c, key) is not None and not sectors:
            ck.diags.add("E0313", f"`{key}` needs a sector for each symbol",
                         ck.key_span(*path, key),
                         help="add `sectors: {SYMBOL: sector, ...}` under `universe`")
    _infeasible(ck, c, path)
    _empty_book(ck, c, path)


def _exposure_feature(ck, name: str, path: tuple) -> None:
    span = ck.key_span(*path)
    if name not in ck.feature_src:
        declared = ck.declared("features")
        if name in declared:      # declared but broken: reported where it is defined
            return
        ck.diags.add("E0401", f"`{name}` is not a feature", span,
                     help=suggestion(name, declared) or "an exposure bound names a feature of "
                     "the policy, e.g. `features: {mkt_beta: ...}` and `exposure: {mkt_beta: [-0.1, "
                     "0.1]}`")
        return
    t = ck.feature_types.get(name)
    if t is None:
        return
    if t.dtype is DType.BOOL:
        ck.diags.add("E0501", f"feature `{name}` is a condition, not a number", span,
                     help="an exposure is the sum of the feature times the weights: use a "
                     "numeric feature, e.g. `where(cond, 1, 0)`")
    elif t.kind is not Kind.SERIES:
        ck.diags.add("E0507", f"feature `{name}` is the same for every instrument, so its "
                     "exposure is a multiple of the net exposure", span,
                     help="bound the net exposure with `net: [low, high]`, or use a feature "
                     "that differs across instruments (e.g. a beta)")


def _infeasible(ck, c, path: tuple) -> None:
    """Bounds that contradict each other, or the position limit and the universe."""
    def bad(key: str, message: str, help: str, other: tuple | None = None) -> None:
        secondary = [Label(ck.span(*other), "and this")] if other else []
        ck.diags.add("E0330", message, ck.span(*path, key), help=help, secondary=secondary)

    long_only = getattr(ck.spec.portfolio, "long_only", False) is True
    for key, gkey in (("net", "gross"), ("sector_net", "sector_gross")):
        lohi, g = getattr(c, key), getattr(c, gkey)
        if lohi is None:
            continue
        if g is not None and (lohi[0] > g or lohi[1] < -g):
            bad(key, f"`{key}` cannot be met within `{gkey}`: a net exposure is at most the "
                "gross exposure", f"widen `{key}` or raise `{gkey}`", path + (gkey,))
        if long_only and lohi[1] < 0:
            bad(key, f"`{key}` asks for a short book, but the portfolio is long-only",
                "raise the high bound to 0 or more, or remove `long_only`",
                ("portfolio", "long_only"))
    risk, universe = ck.spec.risk, ck.spec.universe
    symbols = universe.symbols if universe is not None else None
    cap = getattr(risk, "position_max", None)
    if c.net is not None and cap is not None and isinstance(symbols, list):
        most = len(symbols) * cap
        if c.net[0] > most + 1e-12 or c.net[1] < -most - 1e-12:
            bad("net", f"`net` cannot be met: {len(symbols)} instruments at `position_max` "
                f"hold at most {most:.4g} either way", "widen `net` or raise `position_max`",
                ("risk", "position_max"))
    sectors = universe.sectors if universe is not None else None
    if c.sector_net is not None and c.net is not None and sectors:
        k = len(set(sectors.values()))
        lo, hi = c.sector_net
        if k * lo > c.net[1] + 1e-12 or k * hi < c.net[0] - 1e-12:
            bad("sector_net", f"`sector_net` cannot be met within `net`: the {k} sectors' net "
                "exposures add up to the net exposure", "widen `sector_net` or `net`",
                path + ("net",))


def _empty_book(ck, c, path: tuple) -> None:
    """A bound that excludes 0 cannot hold while nothing may trade (the warm-up, a halt)."""
    for key, lohi in [("net", c.net), ("sector_net", c.sector_net)] + \
            [(("exposure", k), v) for k, v in c.exposure.items()]:
        if lohi is None or lohi[0] <= 0 <= lohi[1]:
            continue
        where = key if isinstance(key, str) else key[1]
        ck.diags.add("W0330", f"the range of `{where}` excludes 0, so an empty book breaks it",
                     ck.span(*path, *((key,) if isinstance(key, str) else key)),
                     help="while nothing may trade (the warm-up, a gap) the optimizer finds no "
                     "book and targets 0 with the reason `unsolved`; a range such as "
                     "`[0, 10%]` always has a solution")


def check_stress(ck) -> None:
    """Diagnostics for `risk.stress`: the sectors its scenarios name exist."""
    stress = getattr(ck.spec.risk, "stress", None) if ck.spec.risk is not None else None
    if stress is None:
        return
    sectors = ck.spec.universe.sectors if ck.spec.universe is not None else None
    names = sorted(set((sectors or {}).values()))
    for sname, scenario in stress.scenarios.items():
        for sector in scenario.sector:
            path = ("risk", "stress", "scenarios", sname, "sector", sector)
            if not sectors:
                ck.diags.add("E0313", "a sector scenario needs a sector for each symbol",
                             ck.key_span(*path),
                             help="add `sectors: {SYMBOL: sector, ...}` under `universe`")
                return
            if sector not in names:
                ck.diags.add("E0401", f"`{sector}` is not a sector of the universe",
                             ck.key_span(*path), help=suggestion(sector, names) or
                             "the sectors are " + ", ".join(f"`{n}`" for n in names))
