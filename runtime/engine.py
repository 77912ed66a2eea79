"""A policy bound to a universe: its compiled step, the market model, and one simulation bar.

`Engine` is what both the backtest and the paper runtime drive. One simulated bar is:

    fills = market.execute(orders decided at the previous bar, this bar)
    state, decision = step(params, state, bar + fills)

`bar_update` is that bar as one pure function; the backtest scans it, and the paper runtime calls
the same function (jitted once) bar by bar, so both produce the same decisions bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from crowe.compiler.program import ParamSpec, to_ir
from crowe.compiler.step import StepBuilder, Universe
from crowe.dsl.check import CheckedPolicy

from crowe.stdlib import market as mk
from crowe.stdlib import bars

jax.config.update("jax_enable_x64", True)

BAR_FIELDS = bars.FIELDS
RECORD = ("equity", "cash", "gross", "net", "trading_state", "portfolio_reasons", "costs",
          "traded_notional", "borrow", "tail_loss")
DETECTOR = "detector:"          # a detector's statistic per bar: `detector:<rule>.<name>`
OVERLAY = "overlay:"            # what a risk overlay saw per bar: `overlay:<limit>.<name>`
RECORD_N = ("weights", "order_qty", "limit_price", "positions", "reasons", "mu", "sigma",
            "prob_edge", "parent_qty", "parent_start", "arrival", "stop_price", "take_price")


class ParamError(ValueError):
    """A `--param NAME=VALUE` that names no parameter or lies outside its range."""


@dataclass
class Engine:
    """Everything a simulation needs from a compiled policy, whether it was just compiled from
    source (`from_policy`) or loaded from a signed artifact."""

    name: str
    version: str
    symbols: tuple[str, ...]
    cfg: mk.MarketConfig          # the market model's settings, from the policy's execution
    bars_per_year: float
    reasons: tuple[str, ...]      # bit i of a reason word is reasons[i]
    param_specs: tuple[ParamSpec, ...]
    warmup: int
    init_state: Callable[[], dict]
    step: Callable                # step(params, state, bar) -> (state, decision), pure
    bar_seconds: int = 86_400
    calendar: str | None = None   # `universe.calendar`: the bars carry its session fields

    @classmethod
    def from_policy(cls, policy: CheckedPolicy, symbols, initial_cash: float = 1e6) -> "Engine":
        pir = to_ir(policy)
        b = StepBuilder(pir, Universe.bind(pir, symbols), initial_cash)
        spec = policy.spec
        return cls(spec.policy, spec.version, b.u.symbols, b.cfg, b.bpy, b.reasons, pir.params,
                   pir.warmup, b.init_state, b.step, int(policy.bar_seconds),
                   spec.universe.calendar)

    def session_fields(self, ts_ns) -> dict:
        """The session fields of bars stamped `ts_ns` (`crowe.stdlib.sessions.clock`; none
        without a calendar). Raises `SessionError` for a bar outside the calendar's sessions."""
        return session_fields(self.calendar, self.bar_seconds, ts_ns)

    def default_params(self) -> dict:
        return {p.name: jnp.asarray(int(p.default) if p.dtype == "int" else float(p.default),
                                    jnp.int64 if p.dtype == "int" else jnp.float64)
                for p in self.param_specs}

    def params(self, overrides: dict[str, float] | None = None) -> dict:
        params = self.default_params()
        specs = {p.name: p for p in self.param_specs}
        for name, value in (overrides or {}).items():
            if name not in specs:
                known = ", ".join(f"`{k}`" for k in specs) or "none"
                raise ParamError(f"the policy has no parameter `{name}` (parameters: {known})")
            p = specs[name]
            if not p.lo <= value <= p.hi:
                raise ParamError(f"`{name}` = {value:g} lies outside its range "
                                 f"[{p.lo:g}, {p.hi:g}]")
            if p.dtype == "int" and value != int(value):
                raise ParamError(f"`{name}` takes a whole number, found {value:g}")
            params[name] = jnp.asarray(int(value) if p.dtype == "int" else float(value),
                                       params[name].dtype)
        return params

    def init_carry(self) -> dict:
        N = len(self.symbols)
        return {"state": self.init_state(), "qty": jnp.zeros(N),
                "limit": jnp.full(N, jnp.nan, jnp.float64),
                "stop": jnp.full(N, jnp.nan, jnp.float64),
                "take": jnp.full(N, jnp.nan, jnp.float64),
                "adv": jnp.full(N, jnp.nan, jnp.float64),
                "vol": jnp.full(N, jnp.nan, jnp.float64)}

    def bar_update(self, params: dict, carry: dict, bar: dict):
        """One simulated bar: fill the previous orders and protective exits on this bar, then
        decide."""
        fills, hit = mk.execute_with_exits(
            self.cfg, mk.Orders(carry["qty"], carry["limit"]), mk.Exits(carry["stop"],
                                                                        carry["take"]),
            bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"], bar["valid"],
            carry["adv"], carry["vol"],
            mk.Book(carry["state"]["cash"], carry["state"]["positions"]),
            carry["state"]["last_close"])
        cost = fills.commission + fills.spread + fills.impact
        full = dict(bar, fill_qty=fills.qty, fill_price=fills.price, fill_cost=cost,
                    sent_qty=carry["qty"], exit_hit=hit.astype(jnp.float64))
        state, d = self.step(params, carry["state"], full)
        carry = {"state": state, "qty": d["order_qty"], "limit": d["limit_price"],
                 "stop": d["stop_price"], "take": d["take_price"],
                 "adv": d["adv"], "vol": d["vol"]}
        out = {k: d[k] for k in RECORD + RECORD_N}
        out.update({k: v for k, v in d.items() if k.startswith((DETECTOR, OVERLAY)) or
                    k == "kill_switch"})
        out.update(fill_qty=fills.qty, fill_price=fills.price, fill_cost=cost,
                   fill_commission=fills.commission, fill_spread=fills.spread,
                   fill_impact=fills.impact)
        return carry, out


def session_fields(calendar: str | None, bar_seconds: int, ts_ns) -> dict:
    if calendar is None:
        return {}
    from crowe.stdlib.sessions import clock
    return clock(calendar, ts_ns, bar_seconds)


def panel_bars(panel, engine: Engine | None = None) -> dict:
    """The panel as scan inputs: a dict of arrays with a leading time axis, with the session
    fields of the engine's calendar when it has one."""
    clock = engine.session_fields(panel.ts) if engine is not None else {}
    return {"ts": jnp.asarray(panel.ts, jnp.int64),
            **{k: jnp.asarray(getattr(panel, k), jnp.float64) for k in BAR_FIELDS},
            "valid": jnp.asarray(panel.valid, bool),
            **{k: jnp.asarray(v, jnp.int64) for k, v in clock.items()}}


def bar_at(bars: dict, t: int) -> dict:
    return {k: v[t] for k, v in bars.items()}


def to_numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)
