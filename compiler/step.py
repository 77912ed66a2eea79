"""The compiled step: `step(params, state, bar) -> (state, decision)`, pure and jittable.

One bar, in order:

1. Guard the raw inputs: an instrument whose bar is missing, non-finite or non-positive is
   invalid this bar (its fields become NaN, it is not traded, it keeps its position).
2. Book the fills the broker reports for the orders decided at the previous bar, accrue borrow
   on shorts, and mark the book to the close.
3. Evaluate the policy's expressions (features, forecast, gates, stand-down conditions).
4. Portfolio monitors: intraday drawdown (from the equity at the last close of the previous day),
   drawdown from peak, trailing stop, loss streak, data gaps; each limit or rule that fires holds
   its action for its cooldown.
5. Target weights: sizing (or the portfolio optimizer) on the instruments that may trade, gates
   (a closed gate allows holding or reducing, never opening or adding), stand-down exclusions,
   then the overlays in `crowe.stdlib.risk` order (compliance, position, sector, net, gross,
   VaR/ES), then the trading state (REDUCING scales, HALTED keeps positions, FLATTENING goes to
   zero).
6. Orders: whole shares toward the targets, never on an invalid instrument, clipped to the
   maximum order size and notional, throttled, with a limit price when the policy sets an offset.

Every instrument's decision carries reason flags (`REASONS` plus one per gate and rule) that say
why it is what it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from crowe.runtime import market as mk
from crowe.stdlib import indicators as ind
from crowe.stdlib import portfolio as pf
from crowe.stdlib import risk as rk
from crowe.stdlib import sizing as sz

from .lower import Lowering
from .program import PolicyIR

ACTIVE, REDUCING, HALTED, FLATTENING = 0, 1, 2, 3
STATES = ("ACTIVE", "REDUCING", "HALTED", "FLATTENING")
ALGOS = ("market", "twap", "vwap", "pov", "is", "limit_ladder")
DAY_NS = 86_400 * 10**9
MINUTE_NS = 60 * 10**9
SEVERITY = {"reduce": REDUCING, "halt": HALTED, "flatten": FLATTENING}
REASONS = ("invalid_data", "warmup", "no_forecast", "restricted", "no_short", "position_cap",
           "sector_cap", "net_cap", "gross_cap", "tail_cap", "reduced", "halted", "flattening",
           "order_clipped", "throttled", "excluded")
LIMITS = ("intraday", "from_peak", "trailing_stop")


def bars_per_year(bar_seconds: int) -> float:
    """252 trading days; intraday bars count 6.5 trading hours a day."""
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
        return cls(symbols, restricted, can_short, ids, len(names) + 1)


def market_config(pir: PolicyIR) -> mk.MarketConfig:
    ex = pir.spec.execution
    price = ex.price or ("vwap" if ex.algo in ("vwap", "twap") else "open")
    return mk.MarketConfig(
        price=price, commission_bps=ex.costs.commission * 1e4,
        half_spread_bps=ex.costs.half_spread * 1e4, impact_coef=ex.costs.impact,
        participation_cap=ex.participation_cap, carry_remainder=ex.remainder == "carry",
        borrow_bps_annual=ex.costs.borrow * 1e4,
        bars_per_year=bars_per_year(pir.policy.bar_seconds))


class StepBuilder:
    """Builds the pure `init` and `step` functions of one policy for one universe."""

    def __init__(self, pir: PolicyIR, universe: Universe, initial_cash: float = 1e6) -> None:
        self.pir, self.u, self.cash0 = pir, universe, float(initial_cash)
        self.N = len(universe.symbols)
        self.low = Lowering(pir, self.N)
        self.cfg = market_config(pir)
        self.bpy = bars_per_year(pir.policy.bar_seconds)
        self.rule_names = tuple(pir.policy.rules)
        self.gate_names = tuple(pir.roots["gates"])
        self.reasons = REASONS + tuple(f"gate:{g}" for g in self.gate_names) + \
            tuple(f"rule:{r}" for r in self.rule_names) + tuple(f"limit:{x}" for x in LIMITS)
        if len(self.reasons) > 63:
            raise ValueError("too many gates and rules to explain in one 64-bit flag word")
        ts = pir.spec.risk.trailing_stop
        self.trail_window = ts.window if ts is not None else 1

    def bit(self, name: str) -> int:
        return 1 << self.reasons.index(name)

    # -- parameters and state -------------------------------------------------------------

    def default_params(self) -> dict:
        return {p.name: jnp.asarray(int(p.default) if p.dtype == "int" else float(p.default),
                                    jnp.int64 if p.dtype == "int" else jnp.float64)
                for p in self.pir.params}

    def init_state(self) -> dict:
        N, R = self.N, len(self.rule_names)
        f = lambda v: jnp.asarray(v, jnp.float64)   # noqa: E731
        i = lambda v: jnp.asarray(v, jnp.int64)     # noqa: E731
        return {
            "x": self.low.init_state(), "t": i(0), "seen": jnp.zeros(N, bool),
            "cash": f(self.cash0), "positions": jnp.zeros(N),
            "last_close": jnp.full(N, jnp.nan, jnp.float64),
            "equity": f(self.cash0), "peak": f(self.cash0), "day": i(-1),
            "day_start": f(self.cash0), "trail_peak": f(self.cash0),
            "eq_ring": jnp.full((self.trail_window,), jnp.nan, jnp.float64), "losses": i(0),
            "rule_cd": jnp.zeros((R, N), jnp.int64), "limit_cd": jnp.zeros(3, jnp.int64),
            "override": i(ACTIVE), "minute": i(-1), "orders_in_minute": i(0),
            "weights": jnp.zeros(N),
        }

    # -- the step -------------------------------------------------------------------------

    def step(self, params: dict, state: dict, bar: dict):
        ok = _valid(bar)
        fields = {k: jnp.where(ok, bar[k], jnp.nan) for k in ("open", "high", "low", "close",
                                                              "volume")}
        seen = state["seen"] | ok
        book, last_close, borrow, E, costs, traded = self.book(state, bar, ok)
        vals, xstate = self.low.evaluate(params, state["x"], fields, state["t"], ok)
        mon = self.monitors(state, bar, ok, seen, E, vals)
        w, reasons = self.targets(params, state, vals, ok, E, book, last_close, mon)
        qty, limit, reasons, om = self.orders(state, bar, w, ok, E, book, last_close, mon,
                                              reasons)
        new = dict(state, x=xstate, t=state["t"] + 1, seen=seen, cash=book.cash,
                   positions=book.positions, last_close=last_close, equity=E, weights=w,
                   **mon["state"], **om)
        value = book.positions * jnp.where(jnp.isfinite(last_close), last_close, 0.0)
        gross, net = jnp.abs(value).sum(), value.sum()
        decision = {
            "weights": w, "order_qty": qty, "limit_price": limit,
            "algo": jnp.asarray(ALGOS.index(self.pir.spec.execution.algo), jnp.int64),
            "trading_state": mon["trading_state"], "reasons": reasons,
            "portfolio_reasons": mon["portfolio_reasons"],
            "equity": E, "cash": book.cash, "positions": book.positions,
            "gross": jnp.where(E > 0, gross / E, jnp.nan), "net": jnp.where(E > 0, net / E,
                                                                            jnp.nan),
            "mu": vals["signal"]["mu"] * jnp.ones(self.N),
            "sigma": vals["signal"]["sigma"] * jnp.ones(self.N),
            "prob_edge": vals["signal"]["prob_edge"] * jnp.ones(self.N),
            "adv": vals["aux"]["adv"], "vol": vals["aux"]["vol"], "tail_loss": mon["tail"],
            "borrow": borrow, "costs": costs, "traded_notional": traded,
        }
        return new, decision

    def book(self, state, bar, ok):
        fq = jnp.where(jnp.isfinite(bar["fill_qty"]), bar["fill_qty"], 0.0)
        fp = jnp.where(fq != 0, bar["fill_price"], 0.0)
        fc = jnp.where(fq != 0, bar["fill_cost"], 0.0)
        zero = jnp.zeros(self.N)
        book = mk.apply_fills(mk.Book(state["cash"], state["positions"]),
                              mk.Fills(fq, fp, fc, zero, zero, zero))
        last_close = mk.mark_price(bar["close"], state["last_close"], ok)
        book, borrow = mk.accrue_borrow(self.cfg, book, bar["close"], last_close, ok)
        E = mk.equity(book, bar["close"], last_close, ok)
        return book, last_close, borrow, E, fc.sum(), jnp.abs(fq * fp).sum()

    # -- monitors: limits, rules, trading state -------------------------------------------

    def monitors(self, state, bar, ok, seen, E, vals) -> dict:
        spec = self.pir.spec
        prev_E = state["equity"]
        day = bar["ts"] // DAY_NS
        day_start = jnp.where(day != state["day"], prev_E, state["day_start"])
        peak = jnp.maximum(state["peak"], E)
        r_eq = E / prev_E - 1.0
        losses = jnp.where(r_eq < 0, state["losses"] + 1, 0)
        eq_ring = ind.ring_write(state["eq_ring"][:, None], state["t"], r_eq)[:, 0]
        trail_peak = jnp.maximum(state["trail_peak"], E)
        fired = {}
        dd = spec.risk.drawdown
        if dd is not None and dd.intraday is not None:
            fired["intraday"] = 1.0 - E / day_start >= dd.intraday.max
        if dd is not None and dd.from_peak is not None:
            fired["from_peak"] = 1.0 - E / peak >= dd.from_peak.max
        if spec.risk.trailing_stop is not None:
            ts = spec.risk.trailing_stop
            band = ts.multiple * _nanstd(eq_ring, self.trail_window) * self.trail_window ** 0.5
            fired["trailing_stop"] = E < trail_peak * (1.0 - band)
        lim_fired = jnp.stack([jnp.asarray(fired.get(k, False)) for k in LIMITS])
        cds = jnp.asarray([self.pir.policy.limit_cooldowns.get(k, 0) for k in LIMITS], jnp.int64)
        lim_active = lim_fired | (state["limit_cd"] > 0)
        limit_cd = jnp.where(lim_fired, cds, jnp.maximum(state["limit_cd"] - 1, 0))
        peak = jnp.where(lim_fired[1], E, peak)
        trail_peak = jnp.where(lim_fired[2], E, trail_peak)
        rule_fired = self.rule_conditions(vals, ok, seen, losses)
        rcds = jnp.asarray([self.pir.policy.rules[r].cooldown for r in self.rule_names],
                           jnp.int64).reshape(-1, 1)
        rule_active = rule_fired | (state["rule_cd"] > 0)
        rule_cd = jnp.where(rule_fired, rcds, jnp.maximum(state["rule_cd"] - 1, 0))
        ts_state, scale, exclude, port_bits = self.trading_state(state, lim_active, rule_active,
                                                                 E)
        return {"state": dict(day=day, day_start=day_start, peak=peak, trail_peak=trail_peak,
                              eq_ring=eq_ring, losses=losses, limit_cd=limit_cd,
                              rule_cd=rule_cd),
                "trading_state": ts_state, "scale": scale, "exclude": exclude,
                "rule_active": rule_active, "portfolio_reasons": port_bits, "tail": jnp.nan}

    def rule_conditions(self, vals, ok, seen, losses):
        rows = []
        for name in self.rule_names:
            rule = self.pir.policy.rules[name]
            if name in vals["rules"]:
                c = vals["rules"][name]
            elif name == "data_gap":
                missing = (seen & ~ok).sum() / jnp.maximum(seen.sum(), 1)
                c = (missing > rule.settings["max_missing"]) | (seen.sum() == 0)
            elif name == "loss_streak":
                c = losses >= rule.settings["losses"]
            else:
                raise ValueError(f"rule `{name}` has no condition")
            rows.append(jnp.broadcast_to(jnp.asarray(c, bool), (self.N,)))
        if not rows:
            return jnp.zeros((0, self.N), bool)
        return jnp.stack(rows)

    def trading_state(self, state, lim_active, rule_active, E):
        level = jnp.maximum(state["override"], jnp.where(E > 0, ACTIVE, FLATTENING))
        scale = jnp.ones(self.N)
        exclude = jnp.zeros(self.N, bool)
        bits = jnp.asarray(0, jnp.int64)
        acts = self.pir.policy.limit_actions
        for i, name in enumerate(LIMITS):
            if name in acts:
                level, scale = _apply(acts[name], lim_active[i], level, scale)
                bits = bits | jnp.where(lim_active[i], self.bit(f"limit:{name}"), 0)
        for i, name in enumerate(self.rule_names):
            act = self.pir.policy.rules[name].action
            fired = rule_active[i]
            bits = bits | jnp.where(fired.any(), self.bit(f"rule:{name}"), 0)
            if act.kind == "exclude":
                exclude = exclude | fired
            elif act.kind == "reduce":
                scale = scale * jnp.where(fired, 1.0 - act.amount, 1.0)
                level = jnp.maximum(level, jnp.where(fired.any(), REDUCING, ACTIVE))
            else:
                level = jnp.maximum(level, jnp.where(fired.any(), SEVERITY[act.kind], ACTIVE))
        return level, scale, exclude, bits

    # -- targets --------------------------------------------------------------------------

    def targets(self, params, state, vals, ok, E, book, last_close, mon):
        bit = self.bit
        mu = vals["signal"]["mu"] * jnp.ones(self.N)
        sigma = vals["signal"]["sigma"] * jnp.ones(self.N)
        vol = vals["aux"]["vol"]
        warm = state["t"] >= self.pir.warmup
        forecast = jnp.isfinite(mu) & jnp.isfinite(sigma) & (sigma > 0) & jnp.isfinite(vol) & \
            (vol > 0)
        tradable = ok & warm & forecast
        gates = jnp.ones(self.N, bool)
        reasons = jnp.where(ok, 0, bit("invalid_data")) | jnp.where(warm, 0, bit("warmup")) | \
            jnp.where(forecast, 0, bit("no_forecast"))
        for g in self.gate_names:
            open_ = jnp.broadcast_to(jnp.asarray(vals["gates"][g], bool), (self.N,))
            gates = gates & open_
            reasons = reasons | jnp.where(open_, 0, bit(f"gate:{g}"))
        for i, r in enumerate(self.rule_names):
            reasons = reasons | jnp.where(mon["rule_active"][i], bit(f"rule:{r}"), 0)
        price = jnp.where(jnp.isfinite(last_close), last_close, 0.0)
        w_cur = jnp.where(E > 0, book.positions * price / E, 0.0)
        w = self.size(params, mu, sigma, vol, tradable, vals, state)
        w = jnp.where(gates, w, _reduce_only(w, w_cur))
        w = jnp.where(mon["exclude"], 0.0, w)
        reasons = reasons | jnp.where(mon["exclude"], bit("excluded"), 0)
        w = jnp.where(tradable | mon["exclude"], w, jnp.where(ok, 0.0, w_cur))
        w, reasons, tail = self.overlays(w, vals, reasons)
        mon["tail"] = tail
        level = mon["trading_state"]
        w = w * mon["scale"]
        reasons = reasons | jnp.where(mon["scale"] < 1.0, bit("reduced"), 0)
        w = jnp.where(level == HALTED, w_cur, jnp.where(level == FLATTENING, 0.0, w))
        reasons = reasons | jnp.where(level == HALTED, bit("halted"), 0) | \
            jnp.where(level == FLATTENING, bit("flattening"), 0)
        return w, reasons

    def size(self, params, mu, sigma, vol, ok, vals, state):
        sp = self.pir.spec.sizing
        budget = sp.budget if sp.budget is not None else self.pir.spec.risk.gross_max
        if self.pir.spec.portfolio is not None:
            hist, age, last_bad, pos = vals["aux"]["history"]
            window = self.pir.spec.portfolio.covariance.window
            return pf.optimize(self.pir.spec.portfolio, self.pir.spec.risk, mu, hist, age,
                               last_bad <= pos - window, ok, state["weights"])
        if sp.method == "kelly_tempered":
            w = sz.kelly_tempered(mu, sigma, ok, sp.lambda_)
        elif sp.method == "vol_target":
            w = sz.vol_target(mu, vol, ok, sp.vol_target / jnp.sqrt(self.bpy))
        elif sp.method == "equal":
            w = sz.equal(mu, ok, budget)
        else:
            w = sz.inverse_vol(mu, vol, ok, budget)
        if sp.vol_target is not None and sp.method != "vol_target":
            w = sz.scale_to_vol(w, vol, sp.vol_target / jnp.sqrt(self.bpy))
        return w

    def overlays(self, w, vals, reasons):
        spec, bit, u = self.pir.spec, self.bit, self.u
        risk = spec.risk
        restricted = jnp.asarray(u.restricted, bool)
        reasons = reasons | jnp.where(restricted, bit("restricted"), 0)
        w = jnp.where(restricted, 0.0, w)
        no_short = ~jnp.asarray(u.can_short, bool) & (w < 0)
        reasons = reasons | jnp.where(no_short, bit("no_short"), 0)
        w = jnp.where(no_short, 0.0, w)
        w, hit = rk.position_cap(w, risk.position_max)
        reasons = reasons | jnp.where(hit, bit("position_cap"), 0)
        if risk.sector_max is not None:
            w, hit = rk.sector_cap(w, jnp.asarray(u.sector_ids), u.n_sectors, risk.sector_max)
            reasons = reasons | jnp.where(hit, bit("sector_cap"), 0)
        if risk.net_max is not None:
            w, hit = rk.net_cap(w, risk.net_max)
            reasons = reasons | jnp.where(hit, bit("net_cap"), 0)
        w, hit = rk.gross_cap(w, risk.gross_max)
        reasons = reasons | jnp.where(hit, bit("gross_cap"), 0)
        tail = jnp.asarray(jnp.nan)
        for limit, es in ((risk.var, False), (risk.es, True)):
            if limit is not None:
                hist, age, last_bad, pos = vals["aux"]["history"]
                w, hit, tail = rk.tail_cap(w, hist, age, last_bad <= pos - limit.window,
                                           limit.window, limit.confidence, limit.max, es)
                reasons = reasons | jnp.where(hit, bit("tail_cap"), 0)
        return w, reasons, tail

    # -- orders ---------------------------------------------------------------------------

    def orders(self, state, bar, w, ok, E, book, last_close, mon, reasons):
        ex, comp, bit = self.pir.spec.execution, self.pir.spec.compliance, self.bit
        price = jnp.where(ok, last_close, jnp.nan)
        target = jnp.trunc(w * E / price)
        qty = jnp.where(ok & jnp.isfinite(target), target - book.positions, 0.0)
        qty = jnp.where(mon["trading_state"] == FLATTENING,
                        jnp.where(ok, -book.positions, 0.0), qty)
        qty = jnp.where(mon["trading_state"] == HALTED, 0.0, qty)
        clipped = jnp.zeros(self.N, bool)
        if comp.max_order_shares is not None:
            m = float(comp.max_order_shares)
            clipped |= jnp.abs(qty) > m
            qty = jnp.clip(qty, -m, m)
        if comp.max_order_notional is not None:
            m = jnp.floor(comp.max_order_notional / jnp.where(ok, price, 1.0))
            clipped |= jnp.abs(qty) > m
            qty = jnp.clip(qty, -m, m)
        reasons = reasons | jnp.where(clipped, bit("order_clipped"), 0)
        minute = bar["ts"] // MINUTE_NS
        used = jnp.where(minute == state["minute"], state["orders_in_minute"], 0)
        qty, throttled = self.throttle(qty, price, used)
        reasons = reasons | jnp.where(throttled, bit("throttled"), 0)
        used = used + (qty != 0).sum()
        if ex.limit_offset is not None:
            limit = jnp.where(qty > 0, price * (1 + ex.limit_offset),
                              price * (1 - ex.limit_offset))
            limit = jnp.where(qty != 0, limit, jnp.nan)
        else:
            limit = jnp.full(self.N, jnp.nan, jnp.float64)
        return qty, limit, reasons, {"minute": minute, "orders_in_minute": used}

    def throttle(self, qty, price, used):
        ex = self.pir.spec.execution
        caps = [c for c in (ex.max_orders_per_bar,) if c is not None]
        k = jnp.asarray(min(caps) if caps else self.N, jnp.int64)
        if ex.max_orders_per_minute is not None:
            k = jnp.minimum(k, jnp.maximum(ex.max_orders_per_minute - used, 0))
        if not caps and ex.max_orders_per_minute is None:
            return qty, jnp.zeros(self.N, bool)
        size = jnp.where(qty != 0, jnp.abs(qty) * jnp.where(jnp.isfinite(price), price, 0.0),
                         -1.0)
        rank = jnp.argsort(jnp.argsort(-size, stable=True), stable=True)
        keep = rank < k
        return jnp.where(keep, qty, 0.0), (qty != 0) & ~keep


def _valid(bar):
    ok = bar["valid"]
    for k in ("open", "high", "low", "close"):
        ok = ok & jnp.isfinite(bar[k]) & (bar[k] > 0)
    return ok & jnp.isfinite(bar["volume"]) & (bar["volume"] >= 0)


def _reduce_only(w, w_cur):
    same = jnp.sign(w) == jnp.sign(w_cur)
    return jnp.where(same, jnp.sign(w_cur) * jnp.minimum(jnp.abs(w), jnp.abs(w_cur)), 0.0)


def _apply(action, active, level, scale):
    if action.kind == "reduce":
        return (jnp.maximum(level, jnp.where(active, REDUCING, ACTIVE)),
                scale * jnp.where(active, 1.0 - action.amount, 1.0))
    return jnp.maximum(level, jnp.where(active, SEVERITY[action.kind], ACTIVE)), scale


def _nanstd(x, n: int):
    ok = jnp.isfinite(x)
    cnt = ok.sum()
    mean = jnp.where(ok, x, 0.0).sum() / jnp.maximum(cnt, 1)
    var = jnp.where(ok, (x - mean) ** 2, 0.0).sum() / jnp.maximum(cnt - 1, 1)
    return jnp.where(cnt >= n, jnp.sqrt(var), jnp.inf)
