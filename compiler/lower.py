"""JAX lowering of the IR: one rule per node type, evaluated once per bar.

`Lowering` is built once per policy and universe size. `init_state` gives the expression state
(ring buffers full of NaN, EMA states), and `evaluate` computes every root for one bar, returning
the values and the new expression state. Each node is computed once per bar (the IR is a DAG);
each series that some operator reads history of has one ring buffer, sized by the lookback pass,
written before it is read.
"""
from __future__ import annotations

import math

import jax.numpy as jnp

from crowe.dsl.types import DType
from crowe.stdlib import indicators as ind
from crowe.stdlib.detectors import regime as hmm

from . import ir
from .passes.dependence import dependence
from .passes.rewrite import flat
from .program import PolicyIR


SUMS = ("mean", "sum", "stdev", "var", "zscore")   # rolling statistics kept as running sums


class MissingRule(Exception):
    """The IR holds a node type that has no lowering rule (a compiler bug, not a user error)."""


_BIN = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "div": jnp.divide,
        "pow": jnp.power, "lt": jnp.less, "le": jnp.less_equal, "gt": jnp.greater,
        "ge": jnp.greater_equal, "eq": jnp.equal, "ne": jnp.not_equal,
        "and": jnp.logical_and, "or": jnp.logical_or}
_MAP = {"abs": jnp.abs, "sqrt": jnp.sqrt, "log": jnp.log, "exp": jnp.exp, "sign": jnp.sign,
        "normcdf": ind.normcdf, "clip": jnp.clip, "minimum": jnp.minimum,
        "maximum": jnp.maximum}


class Lowering:
    def __init__(self, pir: PolicyIR, n_instruments: int) -> None:
        self.pir = pir
        self.N = n_instruments
        self.order = ir.topo_order(flat(pir.roots))
        self.key = {node: f"n{i}" for i, node in enumerate(self.order)}
        self.buffers = {self.key[x]: rows for x, rows in pir.look.buffers.items()}
        self.windows = {f"{self.key[x]}w{n}": n for (x, n) in (pir.look.windows or {})}
        self.buffers.update(self.windows)
        self.rings_of: dict[str, list[str]] = {}
        for x in pir.look.buffers:
            self.rings_of.setdefault(self.key[x], []).append(self.key[x])
        for (x, n) in (pir.look.windows or {}):
            self.rings_of.setdefault(self.key[x], []).append(f"{self.key[x]}w{n}")
        self.emas = [self.key[n] for n in self.order if isinstance(n, (ir.Ema, ir.Wilder))]
        self.regimes = {self.key[n]: n.n for n in self.order if isinstance(n, ir.Regime)}
        # Rolling sums, means, variances and z-scores are running sums, updated in O(N) per bar
        # with x[t] in and x[t - n] out: their ring holds n + 1 rows.
        self.sums = [self.key[n] for n in self.order
                     if isinstance(n, ir.Rolling) and n.stat in SUMS]
        for n in self.order:
            if isinstance(n, ir.Rolling) and n.stat in SUMS:
                if isinstance(n.n, ir.Const):
                    k = f"{self.key[n.x]}w{int(n.n.value)}"
                    self.buffers[k] = max(self.buffers[k], int(n.n.value) + 1)
                else:
                    k = self.key[n.x]
                    self.buffers[k] = max(self.buffers[k], n.n_max + 1)
        # VaR/ES and the covariance read a History: a ring of its own, NaN-free (a missing
        # value is stored as 0) so that they need one matmul and no masks, with the last bar at
        # which the series was missing (`bad`) to say which instruments have a complete window.
        # The series ring keeps only the rows its other readers need.
        self.hist = {}
        for n in self.order:
            if isinstance(n, ir.History):
                k = self.key[n.x]
                self.hist[k] = max(self.hist.get(k, 1), n.n_max)
        others = {}
        for n in self.order:
            if isinstance(n, (ir.Lag, ir.Turbulence)):
                rows = n.n_max + 1
            elif isinstance(n, ir.Rolling) and not isinstance(n.n, ir.Const):
                rows = n.n_max + 1 if n.stat in SUMS else n.n_max
            elif isinstance(n, ir.Moments):
                for x in n.xs:
                    others[self.key[x]] = max(others.get(self.key[x], 1), n.n_max)
                continue
            else:
                continue
            others[self.key[n.x]] = max(others.get(self.key[n.x], 1), rows)
        for k in self.hist:
            if k in others:
                self.buffers[k] = others[k]
            else:
                self.buffers.pop(k, None)
                self.rings_of[k] = [r for r in self.rings_of.get(k, []) if r != k]

    def shared_state(self, swept=None) -> dict:
        """The entries of the expression state (`init_state`) that do not depend on the
        parameters of `swept` (all parameters when None), by part: the same for every member
        of a sweep's batch (`passes.dependence`). A ring belongs to the series it holds, the
        running sums and EMA states to their node."""
        dep = {self.key[n] for n in dependence(self.pir.roots, swept)}
        owner = {k: k for k in self.key.values()}
        owner.update({r: k for k, rs in self.rings_of.items() for r in rs})
        state = self.init_state()
        out = {}
        for part, entries in state.items():
            keys = []
            for k in entries:
                node = k[1:] if part == "ring" and k.startswith("h") and k not in owner else k
                if owner.get(node, node) not in dep:
                    keys.append(k)
            out[part] = sorted(keys)
        return out

    def init_state(self) -> dict:
        shape = lambda node: (self.N,)   # noqa: E731  every buffered series is per instrument
        rings = {k: jnp.full((rows,) + shape(None), jnp.nan, jnp.float64)
                 for k, rows in self.buffers.items()}
        emas = {k: (jnp.zeros(self.N), jnp.zeros(self.N, jnp.int64)) for k in self.emas}
        rings.update({"h" + k: jnp.zeros((rows, self.N), jnp.float64)
                      for k, rows in self.hist.items()})
        bad = {k: jnp.full(self.N, -1, jnp.int64) for k in sorted(set(self.hist) | set(self.rings_of))}
        sums = {k: (jnp.zeros(self.N), jnp.zeros(self.N), jnp.zeros(self.N)) for k in self.sums}
        out = {"ring": rings, "ema": emas, "bad": bad, "sum": sums}
        if self.regimes:     # the HMM filters of `regime_prob`
            out["regime"] = {k: hmm.init(n) for k, n in self.regimes.items()}
        return out

    def evaluate(self, params: dict, xstate: dict, fields: dict, pos, valid):
        """All roots at this bar: (values by root path, new expression state)."""
        env = _Env(self, params, fields, pos, valid, dict(xstate["ring"]), dict(xstate["ema"]))
        env.bad, env.sums = dict(xstate["bad"]), dict(xstate["sum"])
        env.regimes = dict(xstate.get("regime", {}))
        for node in self.order:
            env.values[node] = env.lower(node)
        out = _map(self.pir.roots, lambda n: env.values[n])
        new = {"ring": env.rings, "ema": env.emas, "bad": env.bad, "sum": env.sums}
        if self.regimes:
            new["regime"] = env.regimes
        return out, new


class _Env:
    def __init__(self, low: Lowering, params, fields, pos, valid, rings, emas) -> None:
        self.low, self.params, self.fields, self.pos, self.valid = low, params, fields, pos, valid
        self.rings, self.emas = rings, emas
        self.values: dict[ir.Node, object] = {}

    def lower(self, node: ir.Node):
        rule = getattr(self, "lower_" + type(node).__name__, None)
        if rule is None:
            raise MissingRule(f"no lowering rule for {type(node).__name__}")
        value = rule(node, *[self.values[c] for c in node.children()])
        rings = self.low.rings_of.get(self.low.key[node], ())
        if rings:   # write before read: readers of this series come later
            v = jnp.broadcast_to(jnp.asarray(value, jnp.float64), (self.low.N,))
            for key in rings:
                self.rings[key] = ind.ring_write(self.rings[key], self.pos, v)
        key = self.low.key[node]
        if key in self.bad:
            v = jnp.broadcast_to(jnp.asarray(value, jnp.float64), (self.low.N,))
            ok = jnp.isfinite(v)
            if key in self.low.hist:
                self.rings["h" + key] = ind.ring_write(self.rings["h" + key], self.pos,
                                                       jnp.where(ok, v, 0.0))
            self.bad[key] = jnp.where(ok, self.bad[key], self.pos)
        return value

    def ring_of(self, x: ir.Node):
        return self.rings[self.low.key[x]]

    def window(self, n: ir.Node):
        return self.values[n]

    # one rule per node type ------------------------------------------------------------

    def lower_Const(self, node):
        return jnp.asarray(node.value, jnp.float64 if isinstance(node.value, float) else None)

    def lower_Param(self, node):
        return self.params[node.name]

    def lower_Field(self, node):
        return self.fields[node.name]

    def lower_Unary(self, node, x):
        return jnp.negative(x) if node.op == "neg" else jnp.logical_not(x)

    def lower_Binary(self, node, a, b):
        if node.type.dtype is DType.FLOAT:   # `7 / 2`, `10 ^ -4`: whole operands, real result
            a = jnp.asarray(a, jnp.float64)
        return _BIN[node.op](a, b)

    def lower_Select(self, node, c, a, b):
        return jnp.where(c, a, b)

    def lower_Map(self, node, *args):
        if node.type.dtype is DType.FLOAT:   # `normcdf(w)` of an integer parameter
            args = [jnp.asarray(a, jnp.float64) for a in args]
        return _MAP[node.func](*args)

    def lower_Lag(self, node, x, n):
        return ind.ring_lag(self.ring_of(node.x), self.pos, n)

    def lower_Rolling(self, node, x, n):
        xkey = self.low.key[node.x]
        if isinstance(node.n, ir.Const):
            n = int(node.n.value)
            buf = self.rings[f"{xkey}w{n}"]
        else:
            buf = self.ring_of(node.x)
        if node.stat not in SUMS:
            return ind.rolling(node.stat, buf, self.pos, n)
        key = self.low.key[node]
        # a window parameter: recompute exactly every `lo` bars, the smallest window of its
        # range, the same schedule at every value of the parameter (and never rarer than n)
        every = None
        if isinstance(node.n, ir.Param):
            lo = next(p.lo for p in self.low.pir.params if p.name == node.n.name)
            every = max(1, int(math.ceil(lo)))
        self.sums[key], value = ind.rolling_sums(node.stat, self.sums[key], buf, self.bad[xkey],
                                                 self.pos, n, every)
        return value

    def lower_Ema(self, node, x, n):
        key = self.low.key[node]
        prev, count = self.emas[key]
        x = jnp.broadcast_to(jnp.asarray(x, jnp.float64), (self.low.N,))
        ema, count, value = ind.ema_update(prev, count, x, n)
        self.emas[key] = (ema, count)
        return value

    def lower_Wilder(self, node, x, n):
        key = self.low.key[node]
        prev, count = self.emas[key]
        x = jnp.broadcast_to(jnp.asarray(x, jnp.float64), (self.low.N,))
        avg, count, value = ind.wilder_update(prev, count, x, n)
        self.emas[key] = (avg, count)
        return value

    def lower_Moments(self, node, *args):
        const = lambda w, v: int(w.value) if isinstance(w, ir.Const) else v   # noqa: E731
        n = const(node.n, self.values[node.n])
        lag = None if node.lag is None else const(node.lag, self.values[node.lag])
        return ind.moments(node.stat, [self.ring_of(x) for x in node.xs], self.pos, n, lag)

    def lower_Regime(self, node, x, min_ratio):
        key = self.low.key[node]
        if jnp.ndim(x):       # per instrument: the mean of those with a value
            ok = jnp.isfinite(x)
            x = jnp.where(ok.any(), jnp.where(ok, x, 0.0).sum() / jnp.maximum(ok.sum(), 1),
                          jnp.nan)
        self.regimes[key] = st = hmm.observe(self.regimes[key], x, node.refit)
        prob, ratio, _ = hmm.risk_off(st)
        return jnp.where(ratio >= min_ratio, prob, jnp.where(st["fitted"], 0.0, jnp.nan))

    def lower_Holding(self, node):
        return self.fields[node.name]

    def lower_CrossSection(self, node, x):
        x = jnp.where(self.valid, x, jnp.nan)
        return {"zscore": ind.cs_zscore, "rank": ind.cs_rank, "demean": ind.cs_demean}[node.op](x)

    def lower_Reduce(self, node, x, q=None):
        if node.op in ("any", "all", "share"):
            c = x & self.valid
            return {"any": lambda: ind.cs_any(c), "all": lambda: ind.cs_all(c, self.valid),
                    "share": lambda: ind.cs_share(c, self.valid)}[node.op]()
        x = jnp.where(self.valid, x, jnp.nan)
        return ind.cs_quantile(x, q) if node.op == "quantile" else ind.cs_mean(x)

    def lower_Turbulence(self, node, x, n):
        return ind.turbulence(self.ring_of(node.x), self.pos, n)

    def lower_History(self, node, x):
        """(rows [W, N] with missing values as 0, age of each row, last missing bar [N], bar)."""
        key = self.low.key[node.x]
        buf = self.rings["h" + key]
        return buf, ind.ring_age(buf, self.pos), self.bad[key], self.pos

    def lower_ProbEdge(self, node, mu, sigma):
        return ind.prob_edge(mu, sigma, node.cost)


def _map(roots: dict, f) -> dict:
    return {k: f(v) if isinstance(v, ir.Node) else _map(v, f) for k, v in roots.items()}
