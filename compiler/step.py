"""The compiled step: `step(params, state, bar) -> (state, decision)`, pure and jittable.

The step keeps the input guard, the book, the policy's expressions and the trading-state machine;
everything else is a chain of registered components (`crowe.stdlib.components`). One bar, in
order:

1. Guard the raw inputs: an instrument whose bar is missing, non-finite or non-positive is
   invalid this bar (its fields become NaN, it is not traded, it keeps its position).
2. Book the fills the broker reports for the orders decided at the previous bar, accrue borrow
   on shorts and financing on negative cash, and mark the book to the close.
3. Evaluate the policy's expressions (features, forecast, gates, stand-down conditions, a
   weight sizing's weight) and the estimators the components read; expressions also see the
   book after this bar's fills (`crowe.stdlib.holdings`: position, weight, bars held, entry
   price).
4. Monitors: the limits (drawdowns, trailing stop) and the stand-down rules; each that fires
   holds its action for its cooldown and for as long as it fires. The most severe action in force
   sets the trading state. A detector's statistics are decision outputs (`detector:RULE.NAME`),
   and a detector's kill level flattens and sets the decision's `kill_switch`. A detector that
   reads the targets (`fragility`) gets step 5 as a pure function of a bar (`weights_of`), which
   it calls on corrupted copies of this bar; the step stays a chain of registered components.
5. Targets: the sizing method or the portfolio optimizer on the instruments that may trade,
   gates (a closed gate allows holding or reducing, never opening or adding), exclusions,
   compliance (restricted symbols, shorts without a locate), then the overlays in registry order
   (position, sector, net, gross, VaR, ES), with positions that cannot trade held at their last
   mark in every cap; then the trading state (REDUCING scales, HALTED keeps the book, FLATTENING
   targets zero).
6. Orders: between rebalances (`execution.rebalance`) the targets hold the shares of the last
   rebalance; a target that changes (in whole shares) opens a parent order, which the execution
   algorithm works by one child order a bar, through the order rules (size, notional,
   throttles), never on an invalid instrument; HALTED and FLATTENING cancel every parent.
   The protective exits (`execution.exits`) set the stop and take-profit prices that rest with
   the broker for the next bar; an exit the broker reports cancels its instrument's parent and
   holds it flat until the next rebalance. Quantities are whole shares unless `lot: fractional`.

Every instrument's decision carries reason flags (`reasons`) that say why it is what it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from crowe.dsl.check import active_components, needs
from crowe.stdlib import bars
from crowe.stdlib import components as reg
from crowe.stdlib import market as mk
from crowe.stdlib.component import Ctx, chain
from crowe.stdlib.execution import parent, rebalance
from crowe.stdlib.sessions import utc_clock
from crowe.stdlib.holdings import holdings_init, holdings_update, holdings_view
from crowe.stdlib.states import ACTIVE, FLATTENING, HALTED, REDUCING, SEVERITY

from . import ir
from .lower import Lowering
from .passes.lookback import warmup_at
from .program import PolicyIR

BASE_REASONS = ("invalid_data", "warmup", "no_forecast", "restricted", "no_short", "excluded",
                "reduced", "halted", "flattening")
ALGOS = tuple(reg.EXECUTION.names())


def bars_per_year(bar_seconds: int) -> float:
    """The trading calendar's bars a year (`universe.calendar`); without one, 252 trading
    days, and intraday bars count 6.5 trading hours a day."""
    if getattr(bar_seconds, "bars_per_year", None) is not None:
        return float(bar_seconds.bars_per_year)
    if bar_seconds >= 86_400:
        return 252.0 * 86_400 / bar_seconds
    return 252.0 * 23_400 / bar_seconds


@dataclass(frozen=True)
class Universe:
    """What the compiled step knows about its instruments, fixed at bind time."""

    symbols: tuple[str, ...]
    restricted: tuple[bool, ...]
    can_short: tuple[bool, ...]
    sector_ids: tuple[int, ...]
    n_sectors: int
    sector_names: tuple[str, ...] = ()

    @classmethod
    def bind(cls, pir: PolicyIR, symbols) -> "Universe":
        spec = pir.spec
        comp = spec.compliance
        symbols = tuple(symbols)
        restricted = tuple(s in comp.restricted for s in symbols)
        sh = comp.shorting
        can_short = tuple(sh.allowed and (not sh.locate_required or s in sh.locates)
                          for s in symbols)
        names = sorted(set((spec.universe.sectors or {}).values()))
        # symbols with no sector share one "unknown" sector, capped like the others
        ids = tuple(names.index(spec.universe.sectors[s]) if spec.universe.sectors and
                    s in spec.universe.sectors else len(names) for s in symbols)
        return cls(symbols, restricted, can_short, ids, len(names) + 1, tuple(names) + ("",))


def market_config(pir: PolicyIR) -> mk.MarketConfig:
    ex, risk = pir.spec.execution, pir.spec.risk
    return mk.MarketConfig(
        price=ex.price, commission_bps=ex.costs.commission * 1e4,
        half_spread_bps=ex.costs.half_spread * 1e4, impact_coef=ex.costs.impact,
        participation_cap=ex.participation_cap, carry_remainder=False,
        borrow_bps_annual=ex.costs.borrow * 1e4,
        bars_per_year=bars_per_year(pir.policy.bar_seconds),
        financing_bps_annual=ex.costs.financing * 1e4, gross_max=risk.gross_max,
        net_max=risk.net_max, position_max=risk.position_max, lot=ex.lot)


class StepBuilder:
    """Builds the pure `init` and `step` functions of one policy for one universe."""

    def __init__(self, pir: PolicyIR, universe: Universe, initial_cash: float = 1e6) -> None:
        self.pir, self.u, self.cash0 = pir, universe, float(initial_cash)
        spec, policy = pir.spec, pir.policy
        self.N = len(universe.symbols)
        self.low = Lowering(pir, self.N)
        self.cfg = market_config(pir)
        self.bpy = bars_per_year(policy.bar_seconds)
        self.ctx = Ctx(self.N, self.bpy, policy.horizon, universe.restricted, universe.can_short,
                       universe.sector_ids, universe.n_sectors, spec.risk.gross_max,
                       spec.risk.position_max, universe.sector_names, universe.symbols,
                       bar_seconds=policy.bar_seconds,
                       fractional=spec.execution.lot == "fractional")
        self.fractional = self.ctx.fractional
        used = active_components(spec)
        self.exits = next((c.factory(s) for c, s in used if c.slot == "exit"), None)
        self.target = next((c.name, c.factory(s)) for c, s in used
                           if c.slot in ("sizing", "portfolio"))
        self.overlays = chain(*[(c.name, c.factory(s)) for c, s in used if c.slot == "overlay"])
        self.order_rules = chain(*[(c.name, c.factory(s)) for c, s in used
                                   if c.slot == "order_rule"])
        self.algo_name = spec.execution.algo
        self.algo = reg.EXECUTION[self.algo_name].factory(spec.execution)
        self.horizon = spec.execution.horizon_bars(policy.bar_seconds)
        # the calendar reaches the step as bar fields only (`crowe.stdlib.sessions`)
        self.session_inputs = bars.SESSION if spec.universe.calendar is not None else ()
        self.rest_of_session = spec.execution.rest_of_session(policy.bar_seconds)
        self.limits = {n: i.component.factory(i.settings) for n, i in policy.limits.items()}
        self.rules = {n: i.component.factory(i.settings) for n, i in policy.rules.items()}
        self.component_warmup = max([n.lookback for n in needs(spec)] + [0])
        self.gate_names = tuple(pir.roots["gates"])
        found = [r for c, _ in used for r in c.reasons]
        self.reasons = BASE_REASONS + tuple(dict.fromkeys(r for r in found
                                                          if r not in BASE_REASONS)) + \
            tuple(f"gate:{g}" for g in self.gate_names) + \
            tuple(f"rule:{r}" for r in self.rules) + tuple(f"limit:{x}" for x in self.limits)
        if len(self.reasons) > 63:
            raise ValueError("too many gates and rules to explain in one 64-bit flag word")

    def session(self, bar):
        """(the bar's session, the bars left in the session its orders fill in): bar fields
        from the calendar, or UTC calendar days without one."""
        if self.session_inputs:
            return bar["session"], bar["session_left"]
        return utc_clock(bar["ts"], self.pir.policy.bar_seconds)

    def bit(self, name: str) -> int:
        return 1 << self.reasons.index(name)

    def flags(self, hits: dict):
        out = jnp.zeros(self.N, jnp.int64)
        for name, mask in hits.items():
            out = out | jnp.where(mask, self.bit(name), 0)
        return out

    # -- parameters and state -------------------------------------------------------------

    def default_params(self) -> dict:
        return {p.name: jnp.asarray(int(p.default) if p.dtype == "int" else float(p.default),
                                    jnp.int64 if p.dtype == "int" else jnp.float64)
                for p in self.pir.params}

    def init_state(self) -> dict:
        N, ctx = self.N, self.ctx
        f = lambda v: jnp.asarray(v, jnp.float64)   # noqa: E731
        i = lambda v: jnp.asarray(v, jnp.int64)     # noqa: E731
        nan = jnp.full(N, jnp.nan, jnp.float64)
        return {
            "x": self.low.init_state(), "t": i(0), "seen": jnp.zeros(N, bool),
            "cash": f(self.cash0), "positions": jnp.zeros(N), "last_close": nan,
            "equity": f(self.cash0), "override": i(ACTIVE), "weights": jnp.zeros(N),
            "impact": {"vol": nan, "adv": nan},
            "target": self.target[1].init(ctx), "overlays": self.overlays.init(ctx),
            "orders": self.order_rules.init(ctx), "algo": self.algo.init(ctx),
            "parent": parent.init(N),
            "rebalance": dict(rebalance.init(), target=jnp.zeros(N), scale=jnp.ones(N),
                              pending=jnp.zeros(N, bool), out=jnp.zeros(N, bool)),
            "exits": self.exits.init(ctx) if self.exits else {},
            "limits": {n: t.init(ctx) for n, t in self.limits.items()},
            "rules": {n: t.init(ctx) for n, t in self.rules.items()},
            "limit_cd": {n: i(0) for n in self.limits},
            "rule_cd": {n: jnp.zeros(N, jnp.int64) for n in self.rules},
            "holding": holdings_init(N),
        }

    # -- the step -------------------------------------------------------------------------

    def step(self, params: dict, state: dict, bar: dict):
        ok = _valid(bar)
        fields = {k: jnp.where(ok, bar[k], jnp.nan) for k in bars.FIELDS}
        seen = state["seen"] | ok
        book, last_close, borrow, E, costs, traded = self.book(state, bar, ok)
        holding = holdings_update(state["holding"], state["positions"],
                                  book.positions - state["positions"], bar["fill_price"])
        fields = dict(fields, **holdings_view(holding, book.positions, last_close, E))
        vals, xstate = self.low.evaluate(params, state["x"], fields, state["t"], ok)
        impact = {"vol": _last_finite(vals["aux"]["impact_vol"], state["impact"]["vol"]),
                  "adv": _last_finite(vals["aux"]["adv"], state["impact"]["adv"])}
        weights_of = self.weights_of(params, state, fields, E, book, last_close)
        mon = self.monitors(state, bar, ok, seen, E, vals, weights_of)
        w, reasons, seen_by_caps, tstate = self.targets(params, state, vals, ok, E, book,
                                                        last_close, mon)
        ex, ex_hits, ex_state = self.protective_exits(state, bar, fields, book, holding)
        reasons = reasons | self.flags(ex_hits)
        qty, limit, reasons, ostate = self.orders(state, bar, w, ok, E, book, last_close, mon,
                                                  reasons, params, vals, impact, ex)
        new = dict(state, x=xstate, t=state["t"] + 1, seen=seen, cash=book.cash,
                   positions=book.positions, last_close=last_close, equity=E, weights=w,
                   impact=impact, holding=holding, exits=ex_state, **mon["state"], **tstate,
                   **ostate)
        value = book.positions * jnp.where(jnp.isfinite(last_close), last_close, 0.0)
        gross, net = jnp.abs(value).sum(), value.sum()
        ones = jnp.ones(self.N)
        decision = {
            "weights": w, "order_qty": qty, "limit_price": limit,
            "algo": jnp.asarray(ALGOS.index(self.algo_name), jnp.int64),
            "trading_state": mon["trading_state"], "reasons": reasons,
            "portfolio_reasons": mon["portfolio_reasons"],
            "equity": E, "cash": book.cash, "positions": book.positions,
            "gross": jnp.where(E > 0, gross / E, jnp.nan),
            "net": jnp.where(E > 0, net / E, jnp.nan),
            "mu": vals["signal"]["mu"] * ones, "sigma": vals["signal"]["sigma"] * ones,
            "prob_edge": vals["signal"]["prob_edge"] * ones,
            "adv": impact["adv"], "vol": impact["vol"], **seen_by_caps,
            "borrow": borrow, "costs": costs, "traded_notional": traded,
            "kill_switch": mon["kill"], **mon["stats"],
            "parent_qty": ostate["parent"]["qty"], "parent_start": ostate["parent"]["start"],
            "arrival": ostate["parent"]["arrival"],
            "stop_price": ex["stop"], "take_price": ex["take"],
        }
        return new, decision

    def protective_exits(self, state, bar, fields, book, holding):
        """The protective exits (`execution.exits`, `crowe.stdlib.exits`): the stop and take
        prices resting for the next bar, and the exit the broker reports for this one."""
        nan = jnp.full(self.N, jnp.nan, jnp.float64)
        hit = jnp.where(jnp.isfinite(bar["exit_hit"]), bar["exit_hit"], 0.0)
        if self.exits is None:
            no = jnp.zeros(self.N, bool)
            return {"stop": nan, "take": nan, "exited": no, "closing": no}, {}, {}
        inputs = {"pos": book.positions, "prev_pos": state["positions"],
                  "entry": holding["entry"], "hit": hit, "bar": fields}
        return self.exits.update(inputs, state["exits"], self.ctx)

    def book(self, state, bar, ok):
        fq = jnp.where(jnp.isfinite(bar["fill_qty"]), bar["fill_qty"], 0.0)
        fp = jnp.where(fq != 0, bar["fill_price"], 0.0)
        fc = jnp.where(fq != 0, bar["fill_cost"], 0.0)
        zero = jnp.zeros(self.N)
        book = mk.apply_fills(mk.Book(state["cash"], state["positions"]),
                              mk.Fills(fq, fp, fc, zero, zero, zero))
        last_close = mk.mark_price(bar["close"], state["last_close"], ok)
        book, borrow = mk.accrue_borrow(self.cfg, book, bar["close"], last_close, ok)
        book, financing = mk.accrue_financing(self.cfg, book)
        E = mk.equity(book, bar["close"], last_close, ok)
        return book, last_close, borrow + financing, E, fc.sum(), jnp.abs(fq * fp).sum()

    # -- monitors: limits, rules, trading state -------------------------------------------

    def weights_of(self, params, state, fields, E, book, last_close):
        """The target chain as a pure function of one bar's fields and validity, for a detector
        that recomputes the targets under corrupted data (`Component.reads_targets`): the
        expressions from the state before this bar, then `targets` with no stand-down action in
        force (the detectors are what decides those)."""
        calm = {"exclude": jnp.zeros(self.N, bool), "rule_active": {},
                "scale": jnp.ones(self.N), "trading_state": jnp.asarray(ACTIVE, jnp.int64)}

        def weights(bar_fields, ok):
            vals, _ = self.low.evaluate(params, state["x"], dict(fields, **bar_fields),
                                        state["t"], ok)
            return self.targets(params, state, vals, ok, E, book, last_close, calm)[0]
        return weights

    def monitors(self, state, bar, ok, seen, E, vals, weights_of=None) -> dict:
        policy = self.pir.policy
        prev_E = state["equity"]
        inputs = {"E": E, "prev_E": prev_E, "ts": bar["ts"], "ok": ok, "seen": seen,
                  "session": self.session(bar)[0],
                  "est": vals["aux"], "r_eq": E / prev_E - 1.0,
                  "bar": {k: jnp.where(ok, bar[k], jnp.nan) for k in bars.FIELDS}}
        out = {"limits": {}, "rules": {}, "limit_cd": {}, "rule_cd": {}}
        stats, kill = {}, jnp.asarray(False)
        level = jnp.maximum(state["override"], jnp.where(E > 0, ACTIVE, FLATTENING))
        scale, exclude = jnp.ones(self.N), jnp.zeros(self.N, bool)
        bits = jnp.asarray(0, jnp.int64)
        rule_active = {}
        for kind, infos, transforms in (("limit", policy.limits, self.limits),
                                        ("rule", policy.rules, self.rules)):
            for name, info in infos.items():
                ins = dict(inputs)
                if kind == "rule" and name in vals["rules"]:
                    ins["condition"] = jnp.broadcast_to(vals["rules"][name], (self.N,))
                if kind == "rule":
                    ins["series"] = _series(vals["series"].get(name, vals["aux"]["r1"]))
                    ins["cooldown"] = info.cooldown
                    if info.component.reads_targets:
                        ins.update(targets=weights_of, prev_close=state["last_close"])
                res, _, out[kind + "s"][name] = transforms[name].update(
                    ins, state[kind + "s"][name], self.ctx)
                fired = jnp.asarray(res["fired"], bool)
                if kind == "rule":   # a detector's statistics, and its kill switch
                    stats.update({f"detector:{name}.{k}": jnp.asarray(v, jnp.float64)
                                  for k, v in res.items() if k not in
                                  ("fired", "kill", "kill_held") and jnp.ndim(v) == 0})
                    if "kill" in res:
                        kill = kill | res["kill"]
                        level = jnp.maximum(level, jnp.where(res["kill_held"], FLATTENING,
                                                             ACTIVE))
                if kind == "rule":
                    fired = jnp.broadcast_to(fired, (self.N,))
                cd_prev = state[kind + "_cd"][name]
                active = fired | (cd_prev > 0)
                out[kind + "_cd"][name] = jnp.where(fired, info.cooldown,
                                                    jnp.maximum(cd_prev - 1, 0))
                if kind == "rule":
                    rule_active[name] = active
                bits = bits | jnp.where(active.any(), self.bit(f"{kind}:{name}"), 0)
                act = info.action
                if act.kind == "exclude":
                    exclude = exclude | active
                elif act.kind == "reduce":
                    scale = scale * jnp.where(active, 1.0 - act.amount, 1.0)
                    level = jnp.maximum(level, jnp.where(active.any(), REDUCING, ACTIVE))
                else:
                    level = jnp.maximum(level, jnp.where(active.any(), SEVERITY[act.kind],
                                                         ACTIVE))
        return {"state": out, "trading_state": level, "scale": scale, "exclude": exclude,
                "rule_active": rule_active, "portfolio_reasons": bits, "stats": stats,
                "kill": kill}

    # -- targets --------------------------------------------------------------------------

    def targets(self, params, state, vals, ok, E, book, last_close, mon):
        bit = self.bit
        mu = vals["signal"]["mu"] * jnp.ones(self.N)
        sigma = vals["signal"]["sigma"] * jnp.ones(self.N)
        warm = state["t"] >= self.warmup(params)
        forecast = jnp.isfinite(mu) & jnp.isfinite(sigma) & (sigma > 0)
        if self.pir.spec.signal is None:   # weights given directly (`sizing: {method: weight}`)
            forecast = jnp.ones(self.N, bool)
        tradable = ok & warm & forecast
        reasons = jnp.where(ok, 0, bit("invalid_data")) | jnp.where(warm, 0, bit("warmup")) | \
            jnp.where(forecast, 0, bit("no_forecast"))
        gates = jnp.ones(self.N, bool)
        for g in self.gate_names:
            open_ = jnp.broadcast_to(jnp.asarray(vals["gates"][g], bool), (self.N,))
            gates = gates & open_
            reasons = reasons | jnp.where(open_, 0, bit(f"gate:{g}"))
        for r, active in mon["rule_active"].items():
            reasons = reasons | jnp.where(active, bit(f"rule:{r}"), 0)
        price = jnp.where(jnp.isfinite(last_close), last_close, 0.0)
        w_cur = jnp.where(E > 0, book.positions * price / E, 0.0)
        inputs = {"mu": mu, "sigma": sigma, "tradable": tradable, "est": vals["aux"],
                  "w_prev": state["weights"]}
        # what the step does after the target, for an optimizer that keeps its constraints
        inputs.update(w_cur=w_cur, locked=~ok, gates=gates, exclude=mon["exclude"],
                      exposures=vals.get("exposures", {}))
        out, hits, target_state = self.target[1].update(inputs, state["target"], self.ctx)
        reasons = reasons | self.flags(hits)
        w = jnp.where(gates, out["w"], _reduce_only(out["w"], w_cur))
        w = jnp.where(mon["exclude"], 0.0, w)
        reasons = reasons | jnp.where(mon["exclude"], bit("excluded"), 0)
        w = jnp.where(tradable | mon["exclude"], w, jnp.where(ok, 0.0, w_cur))
        w, reasons = self.compliance(w, reasons)
        locked = ~ok
        w = jnp.where(locked, w_cur, w)
        res, hits, ov_state = self.overlays.update({"w": w, "w_cur": w_cur, "locked": locked,
                                                    "est": vals["aux"]},
                                                   state["overlays"], self.ctx)
        w = res.get("w", w)
        reasons = reasons | self.flags(hits)
        level = mon["trading_state"]
        w = jnp.where(locked, w, w * mon["scale"])
        reasons = reasons | jnp.where(mon["scale"] < 1.0, bit("reduced"), 0)
        w = jnp.where(level == HALTED, w_cur, jnp.where(level == FLATTENING, 0.0, w))
        reasons = reasons | jnp.where(level == HALTED, bit("halted"), 0) | \
            jnp.where(level == FLATTENING, bit("flattening"), 0)
        # what the loss limits saw: the VaR/ES of the book, and the stress loss when limited
        seen = {"tail_loss": res.get("tail_loss", jnp.asarray(jnp.nan))}
        if "stress_loss" in res:
            seen["overlay:stress.loss"] = res["stress_loss"]
        return w, reasons, seen, {"target": target_state, "overlays": ov_state}

    def warmup(self, params):
        """Bars before the first trade, at the parameters of this run."""
        def window_of(n):
            return params[n.name] if isinstance(n, ir.Param) else \
                int(n.value)
        expr = warmup_at(self.pir.roots, window_of, jnp.maximum)
        return jnp.maximum(expr, self.component_warmup)

    def compliance(self, w, reasons):
        bit, u = self.bit, self.u
        restricted = jnp.asarray(u.restricted, bool)
        reasons = reasons | jnp.where(restricted, bit("restricted"), 0)
        w = jnp.where(restricted, 0.0, w)
        no_short = ~jnp.asarray(u.can_short, bool) & (w < 0)
        reasons = reasons | jnp.where(no_short, bit("no_short"), 0)
        return jnp.where(no_short, 0.0, w), reasons

    # -- orders ---------------------------------------------------------------------------

    def rebalance(self, state, params, w, ok, E, price, mon, ts, exited):
        """The target of each instrument in whole shares, and the new rebalance state. At a
        rebalance the target is the one just computed; in between, it is the target of the last
        rebalance, scaled when a `reduce` action's scale has changed since and zero when a
        stand-down rule excludes the instrument (limits and rules act at every bar; HALTED and
        FLATTENING cancel the parents, and a rebalance that falls while they are in force is
        taken at the first bar after them). An instrument closed by a protective exit is held
        at zero until the next rebalance: with a schedule (`every`) the drift test does not
        reopen it before then."""
        s = self.pir.spec.execution.rebalance
        rs = state["rebalance"]
        warm = state["t"] >= self.warmup(params)
        scheduled, new = rebalance.due(s, self.pir.policy.bar_seconds, rs, ts, warm)
        fresh = mk.lots(w * E / price, self.fractional)
        rb = jnp.broadcast_to(scheduled, (self.N,))
        out = rs["out"] | exited
        if s.drift is not None:
            held_w = jnp.where(E > 0, jnp.where(out, 0.0, rs["target"]) * price / E, 0.0)
            drifted = jnp.abs(w - held_w) > s.drift
            rb = rb | (drifted & ~out if s.every is not None else drifted)
        level = mon["trading_state"]
        stopped = (level == HALTED) | (level == FLATTENING)
        rb, pending = (rb | rs["pending"]) & ~stopped, (rb | rs["pending"]) & stopped
        scale = mon["scale"]
        rescaled = mk.lots(jnp.where(rs["scale"] > 0, rs["target"] / rs["scale"], 0.0) * scale,
                           self.fractional)
        held = jnp.where(scale == rs["scale"], rs["target"], rescaled)
        held = jnp.where(mon["exclude"] | out, 0.0, held)
        take = rb & ok & jnp.isfinite(fresh)
        target = jnp.where(take, fresh, held)
        kept = jnp.where(out, 0.0, rs["target"])
        return target, dict(new, target=jnp.where(take, fresh, kept),
                            scale=jnp.where(take, scale, rs["scale"]), pending=pending,
                            out=out & ~take)

    def orders(self, state, bar, w, ok, E, book, last_close, mon, reasons, params, vals, impact,
               exits):
        """Parent orders toward the targets, worked by the execution algorithm's child orders
        (`crowe.stdlib.execution.parent`), then the order rules (size, notional, throttles). A
        protective exit cancels its instrument's parent; the shares an exit left (the
        participation cap bound it) are sent as market orders until flat."""
        ex, level, pos = self.pir.spec.execution, mon["trading_state"], book.positions
        fq = jnp.where(jnp.isfinite(bar["fill_qty"]), bar["fill_qty"], 0.0)
        sent = jnp.where(jnp.isfinite(bar["sent_qty"]), bar["sent_qty"], 0.0)
        P = parent.book(state["parent"], fq, sent, ex.remainder == "carry")
        P = parent.cancel(P, exits["exited"], jnp.zeros(self.N))
        price = jnp.where(ok, last_close, jnp.nan)
        target, rstate = self.rebalance(state, params, w, ok, E, price, mon, bar["ts"],
                                        exits["exited"])
        target = jnp.where(ok & jnp.isfinite(target), target, P["target"])
        horizon = self.session(bar)[1] if self.rest_of_session else self.horizon
        P = parent.open_new(P, target, pos, state["t"], price, horizon, ok)
        flat, halted = level == FLATTENING, level == HALTED
        P = parent.cancel(P, flat | halted, jnp.where(flat, 0.0, pos))
        ones = jnp.ones(self.N)
        inputs = {"remaining": P["remaining"], "k": state["t"] - P["start"],
                  "horizon": P["horizon"], "opened": P["start"] == state["t"], "qty": P["qty"],
                  "price": price, "adv": impact["adv"], "vol": impact["vol"],
                  "volume": jnp.where(ok, bar["volume"], jnp.nan), "ts": bar["ts"],
                  **{k: vals["signal"][k] * ones for k in ("mu", "sigma", "prob_edge")}}
        res, hits, algo_state = self.algo.update(inputs, state["algo"], self.ctx)
        reasons = reasons | self.flags(hits)
        qty = jnp.where(ok, parent.clip_child(res["child"], P["remaining"], self.fractional),
                        0.0)
        limit = res["limit"]
        close_out = flat | exits["closing"]
        qty = jnp.where(close_out, jnp.where(ok, -pos, 0.0), qty)
        limit = jnp.where(close_out, jnp.nan, limit)
        qty = jnp.where(halted, 0.0, qty)
        res, hits, rules_state = self.order_rules.update(
            {"qty": qty, "price": price, "ok": ok, "ts": bar["ts"], "limit": limit,
             "last_trade": state["last_close"], "flattening": flat}, state["orders"], self.ctx)
        reasons = reasons | self.flags(hits)
        qty = res.get("qty", qty)
        if "refused" in res and ex.remainder == "cancel":   # pre-trade controls' refusals
            P = parent.book(P, jnp.zeros(self.N), res["refused"], carry=False)
        limit = jnp.where(qty != 0, limit, jnp.nan)
        return qty, limit, reasons, {"orders": rules_state, "algo": algo_state,
                                     "parent": dict(P, child=qty), "rebalance": rstate}


def _valid(bar):
    ok = bar["valid"]
    for k in bars.PRICES:
        ok = ok & jnp.isfinite(bar[k]) & (bar[k] > 0)
    return ok & jnp.isfinite(bar["volume"]) & (bar["volume"] >= 0)


def _series(x):
    """The series a detector reads at this bar: a per-bar number, or the mean across the
    instruments with a value (NaN when none has one)."""
    if jnp.ndim(x) == 0:
        return jnp.asarray(x, jnp.float64)
    ok = jnp.isfinite(x)
    return jnp.where(ok.any(), jnp.where(ok, x, 0.0).sum() / jnp.maximum(ok.sum(), 1), jnp.nan)


def _last_finite(x, prev):
    x = jnp.broadcast_to(x, prev.shape)
    return jnp.where(jnp.isfinite(x) & (x > 0), x, prev)


def _reduce_only(w, w_cur):
    same = jnp.sign(w) == jnp.sign(w_cur)
    return jnp.where(same, jnp.sign(w_cur) * jnp.minimum(jnp.abs(w), jnp.abs(w_cur)), 0.0)
