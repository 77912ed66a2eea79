"""From a checked policy to the IR the lowering consumes: expression roots plus settings.

`to_ir` builds every root the step evaluates (signal, gates, stand-down conditions, and the
estimators the components need: one-bar returns, volatilities, average volume, the return history
for VaR/ES and covariances), then runs the passes in order.
"""
from __future__ import annotations

from dataclasses import dataclass

from crowe.dsl.check import CheckedPolicy, needs
from crowe.stdlib.components import IMPACT_WINDOW
from crowe.dsl.types import DIMENSIONLESS, PRICE, SHARES, DType, Kind, Type
from crowe.stdlib.registry import BAR_FIELDS

from . import ir
from .build import BOOL, FLOAT, Builder
from .passes import causality, cse, fold, lookback
from .passes.cse import count_duplicates
from .passes.lookback import Lookback

_INT = Type(Kind.CONST, DType.INT, None)
_NUM = Type(Kind.CONST, DType.FLOAT, DIMENSIONLESS)


@dataclass(frozen=True)
class ParamSpec:
    name: str
    dtype: str          # "int" or "float"
    default: float
    lo: float
    hi: float


@dataclass
class PolicyIR:
    policy: CheckedPolicy
    params: tuple[ParamSpec, ...]
    roots: dict                      # {"signal": {...}, "gates": {...}, "rules": {...}, "aux": {...}}
    look: Lookback
    warmup: int
    max_warmup: int
    merged: int                      # duplicates removed by CSE

    @property
    def spec(self):
        return self.policy.spec


def _c(v) -> ir.Const:
    return ir.Const(_INT if isinstance(v, int) else _NUM, v)


def _field(name: str) -> ir.Field:
    """A bar field typed as the checker types it, so that the built-in estimators and the
    policy's own expressions over the same field are one node (one ring buffer)."""
    unit = {"price": PRICE, "shares": SHARES}[BAR_FIELDS[name]]
    return ir.Field(Type(Kind.SERIES, DType.FLOAT, unit), name)


def _r1() -> ir.Node:
    close = _field("close")
    lag = ir.Lag(close.type, close, _c(1), 1)
    return ir.Binary(FLOAT, "sub", ir.Binary(FLOAT, "div", close, lag), _c(1))


def _stdev(x: ir.Node, n: int) -> ir.Node:
    return ir.Rolling(FLOAT, "stdev", x, _c(n), n)


def builtin_roots(p: CheckedPolicy) -> dict:
    """The estimators that the components and the market model read: one-bar returns, the
    volatilities the components need (`vol{window}`), the market model's impact estimates
    (`impact_vol`, `adv`) and one return history as long as the longest that any component
    reads."""
    r1 = _r1()
    volume = _field("volume")
    aux = {"r1": r1, "impact_vol": _stdev(r1, IMPACT_WINDOW),
           "adv": ir.Rolling(FLOAT, "mean", volume, _c(IMPACT_WINDOW), IMPACT_WINDOW)}
    history = 0
    for need in needs(p.spec):
        if need.series == "vol":
            aux[need.key] = _stdev(r1, need.window)
        else:
            history = max(history, need.window)
    if history:
        aux["history"] = ir.History(FLOAT, r1, history)
    return aux


def to_ir(p: CheckedPolicy) -> PolicyIR:
    b = Builder(p)
    sig = {k: b.build(e) for k, e in p.signal.items()}
    if p.spec.signal is None:        # weights given directly: no forecast, NaN in the results
        nan = ir.Const(_NUM, float("nan"))
        sig = {"mu": nan, "sigma": nan}
    cost = float(p.spec.signal.cost) if p.spec.signal is not None else 0.0
    sig["prob_edge"] = ir.ProbEdge(FLOAT, sig["mu"], sig["sigma"], cost)
    b.signal = sig
    gates = {k: b.build(e) for k, e in p.gates.items()}
    aux = builtin_roots(p)
    rules = {k: b.build(r.when) for k, r in p.rules.items() if r.when is not None}
    if p.sizing_weight is not None:
        aux["weight"] = b.build(p.sizing_weight)
    roots = {"signal": sig, "gates": gates, "rules": rules, "aux": aux}
    roots = cse(fold(roots))
    defaults = {k: v.default for k, v in p.params.items()}
    look = lookback(roots, defaults)
    causality(roots, {k: (v.lo, v.hi) for k, v in p.params.items()})
    params = tuple(ParamSpec(k, "int" if v.dtype is DType.INT else "float", v.default, v.lo,
                             v.hi) for k, v in p.params.items())
    return PolicyIR(p, params, roots, look, max(look.warmup, p.warmup),
                    max(look.max_warmup, p.max_warmup), count_duplicates(roots))
