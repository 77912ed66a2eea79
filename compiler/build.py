"""Lower a checked policy's expression trees into the IR.

Features are inlined where they are used (the IR is a DAG, so a feature used twice is one node),
`ret`, `logret` and `delta` become arithmetic over `Lag`, and literals are converted to plain
numbers: `5%` is 0.05, `3bps` is 0.0003, a duration is a whole number of bars.
"""
from __future__ import annotations

from crowe.dsl import ast as A
from crowe.dsl.check import CheckedPolicy
from crowe.dsl.quantity import Duration
from crowe.dsl.types import DIMENSIONLESS, PRICE, DType, Kind, Type
from crowe.stdlib import bars
from crowe.stdlib.registry import HOLDINGS

from . import ir

_BINOPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "^": "pow", "<": "lt", "<=": "le",
           ">": "gt", ">=": "ge", "==": "eq", "!=": "ne", "and": "and", "or": "or"}
_ROLLING = ("mean", "sum", "stdev", "var", "min", "max")
_MAPS = ("abs", "sqrt", "log", "exp", "sign", "normcdf", "clip", "minimum", "maximum")
_REDUCE = ("quantile", "cs_mean", "any", "all", "share")
FLOAT = Type(Kind.SERIES, DType.FLOAT, DIMENSIONLESS)
BOOL = Type(Kind.SERIES, DType.BOOL, DIMENSIONLESS)


class Builder:
    def __init__(self, policy: CheckedPolicy) -> None:
        self.p = policy
        self.memo: dict[A.Expr, ir.Node] = {}
        self.features: dict[str, ir.Node] = {}
        self.signal: dict[str, ir.Node] = {}

    def feature(self, name: str) -> ir.Node:
        if name not in self.features:
            self.features[name] = self.build(self.p.features[name])
        return self.features[name]

    def build(self, e: A.Expr) -> ir.Node:
        if e not in self.memo:
            self.memo[e] = self._build(e)
        return self.memo[e]

    def type_of(self, e: A.Expr) -> Type:
        return self.p.types.get(e, FLOAT)

    def _build(self, e: A.Expr) -> ir.Node:
        t, span = self.type_of(e), e.span
        if isinstance(e, A.Number):
            return ir.Const(t, self.number(e), span=span)
        if isinstance(e, A.Bool):
            return ir.Const(t, e.value, span=span)
        if isinstance(e, A.Name):
            return self.name(e)
        if isinstance(e, A.Unary):
            x = self.build(e.operand)
            return x if e.op == "+" else ir.Unary(t, "neg" if e.op == "-" else "not", x, span=span)
        if isinstance(e, (A.Binary, A.Compare, A.BoolOp)):
            return ir.Binary(t, _BINOPS[e.op], self.build(e.left), self.build(e.right), span=span)
        if isinstance(e, A.IfElse):
            return ir.Select(t, self.build(e.cond), self.build(e.then), self.build(e.orelse),
                             span=span)
        if isinstance(e, A.Call):
            return self.call(e, t)
        raise TypeError(f"no IR rule for {type(e).__name__}")

    def number(self, e: A.Number):
        v = e.magnitude
        if e.suffix == "%":
            return v / 100.0
        if e.suffix == "bps":
            return v / 1e4
        if e.suffix is not None:
            return Duration(int(v), e.suffix).bars(self.p.bar_seconds)
        return int(e.text) if e.is_int else v

    def name(self, e: A.Name) -> ir.Node:
        n = e.id
        if n in bars.FIELDS:
            return ir.Field(self.type_of(e), n, span=e.span)
        if n in self.p.params:
            return ir.Param(self.type_of(e), n, span=e.span)
        if n in HOLDINGS:
            return ir.Holding(self.type_of(e), n, span=e.span)
        if n in self.p.features:
            return self.feature(n)
        return self.signal[n]

    def window(self, e: A.Expr) -> tuple[ir.Node, int]:
        if isinstance(e, A.Name):
            p = self.p.params[e.id]
            return ir.Param(Type(Kind.PARAM, DType.INT, None), e.id, span=e.span), int(p.hi)
        n = int(self.number(e))
        return ir.Const(Type(Kind.CONST, DType.INT, None), n, span=e.span), n

    def call(self, e: A.Call, t: Type) -> ir.Node:
        f, span = e.func, e.span
        named = dict(zip(_ARGNAMES[f], e.args)) | {k.name: k.value for k in e.kwargs}
        x = self.build(named[_ARGNAMES[f][0]]) if f in _ARGNAMES and _ARGNAMES[f] else None
        if f in ("ret", "logret", "lag", "delta"):
            n, n_max = self.window(named["n"]) if "n" in named else self.one()
            lag = ir.Lag(x.type, x, n, n_max, span=span)
            if f == "lag":
                return lag
            if f == "delta":
                return ir.Binary(t, "sub", x, lag, span=span)
            ratio = ir.Binary(FLOAT, "div", x, lag, span=span)
            if f == "logret":
                return ir.Map(t, "log", (ratio,), span=span)
            return ir.Binary(t, "sub", ratio, ir.Const(_INT, 1), span=span)
        if f in _ROLLING or (f == "zscore" and "n" in named):
            n, n_max = self.window(named["n"])
            return ir.Rolling(t, f, x, n, n_max, span=span)
        if f == "ema":
            n, n_max = self.window(named["n"])
            return ir.Ema(t, x, n, n_max, span=span)
        if f == "turbulence":
            n, n_max = self.window(named["n"])
            return ir.Turbulence(t, x, n, n_max, span=span)
        if f in ("zscore", "rank", "demean"):
            return ir.CrossSection(t, f, x, span=span)
        if f in _REDUCE:
            q = self.build(named["q"]) if "q" in named else None
            key = named.get("cond", named.get("x"))
            return ir.Reduce(t, f, self.build(key), q, span=span)
        if f in _MOMENTS:
            n, n_max = self.window(named["n"])
            lag = self.window(named["lag"])[0] if f == "acf" else None
            xs = (x, self.build(named["y"])) if f in ("corr", "beta") else (x,)
            return ir.Moments(t, f, xs, n, n_max, lag, span=span)
        if f == "regime_prob":
            ratio = self.build(named["min_ratio"]) if "min_ratio" in named else \
                ir.Const(_NUM, 5.0)
            return ir.Regime(t, x, self.window(named["n"])[1], self.window(named["refit"])[1],
                             ratio, span=span)
        if f == "rsi":
            return self.rsi(x, named["n"], t, span)
        if f == "atr":
            return self.atr(named["n"], t, span)
        if f in ("crossed_above", "crossed_below"):
            return self.crossed(f, x, self.build(named["b"]), t, span)
        if f == "where":
            return ir.Select(t, self.build(named["cond"]), self.build(named["a"]),
                             self.build(named["b"]), span=span)
        if f in _MAPS:
            order = _ARGNAMES[f]
            return ir.Map(t, f, tuple(self.build(named[a]) for a in order), span=span)
        raise TypeError(f"no IR rule for function `{f}`")

    def rsi(self, x: ir.Node, n: A.Expr, t: Type, span) -> ir.Node:
        """100 * G / (G + L), G and L Wilder's averages of max(d, 0) and max(-d, 0) with d the
        one-bar change of x (NaN-propagating `maximum`, so a missing change stays missing); 50
        when both are 0."""
        d = ir.Binary(x.type, "sub", x, ir.Lag(x.type, x, *self.one(), span=span), span=span)
        zero = ir.Const(_INT, 0)
        up = ir.Map(d.type, "maximum", (d, zero), span=span)
        down = ir.Map(d.type, "maximum", (ir.Unary(d.type, "neg", d, span=span), zero), span=span)
        w, w_max = self.window(n)
        g, loss = (ir.Wilder(d.type, v, w, w_max, span=span) for v in (up, down))
        total = ir.Binary(d.type, "add", g, loss, span=span)
        ratio = ir.Binary(t, "mul", ir.Const(_INT, 100),
                          ir.Binary(t, "div", g, total, span=span), span=span)
        flat = ir.Binary(BOOL, "eq", total, zero, span=span)
        return ir.Select(t, flat, ir.Const(_NUM, 50.0), ratio, span=span)

    def atr(self, n: A.Expr, t: Type, span) -> ir.Node:
        price = Type(Kind.SERIES, DType.FLOAT, PRICE)
        hi, lo, c = (ir.Field(price, k) for k in ("high", "low", "close"))
        prev = ir.Lag(price, c, *self.one(), span=span)
        gaps = [ir.Binary(price, "sub", hi, lo, span=span)] + [
            ir.Map(price, "abs", (ir.Binary(price, "sub", v, prev, span=span),), span=span)
            for v in (hi, lo)]
        tr = ir.Map(price, "maximum", (ir.Map(price, "maximum", tuple(gaps[:2]), span=span),
                                       gaps[2]), span=span)
        w, w_max = self.window(n)
        return ir.Wilder(t, tr, w, w_max, span=span)

    def crossed(self, f: str, a: ir.Node, b: ir.Node, t: Type, span) -> ir.Node:
        d = ir.Binary(Type(t.kind, DType.FLOAT, a.type.unit), "sub", a, b, span=span)
        before = ir.Lag(d.type, d, *self.one(), span=span)
        zero = ir.Const(_INT, 0)
        now_op, then_op = ("gt", "le") if f == "crossed_above" else ("lt", "ge")
        return ir.Binary(t, "and", ir.Binary(t, now_op, d, zero, span=span),
                         ir.Binary(t, then_op, before, zero, span=span), span=span)

    def one(self) -> tuple[ir.Node, int]:
        return ir.Const(_INT, 1), 1


_INT = Type(Kind.CONST, DType.INT, None)
_NUM = Type(Kind.CONST, DType.FLOAT, DIMENSIONLESS)
_MOMENTS = ("corr", "beta", "skew", "kurt", "acf")


def _argnames() -> dict[str, tuple[str, ...]]:
    from crowe.stdlib.registry import FUNCTIONS
    return {name: tuple(a.name for a in sig.args) for name, sig in FUNCTIONS.items()}


_ARGNAMES = _argnames()
