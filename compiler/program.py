"""From a checked policy to the IR the lowering consumes: expression roots plus settings.

`to_ir` builds every root the step evaluates (signal, gates, stand-down conditions, and the
built-in estimators: one-bar returns, the sizing volatility, average volume, the return history
for VaR/ES and covariance), then runs the passes in order.
"""
from __future__ import annotations

from dataclasses import dataclass

from crowe.dsl.check import CheckedPolicy
from crowe.dsl.types import DIMENSIONLESS, PRICE, SHARES, DType, Kind, Type
from crowe.stdlib.registry import BAR_FIELDS

from . import ir
from .build import BOOL, FLOAT, Builder
from .passes import causality, cse, fold, lookback
from .passes.cse import count_duplicates
from .passes.lookback import Lookback

_INT = Type(Kind.CONST, DType.INT, None)
_NUM = Type(Kind.CONST, DType.FLOAT, DIMENSIONLESS)
ADV_WINDOW = 20


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


def builtin_roots(p: CheckedPolicy) -> tuple[dict, dict]:
    """The estimators every step needs, and the built-in stand-down conditions."""
    spec = p.spec
    r1 = _r1()
    volume = _field("volume")
    aux = {"r1": r1, "vol": _stdev(r1, spec.sizing.vol_window),
           "adv": ir.Rolling(FLOAT, "mean", volume, _c(ADV_WINDOW), ADV_WINDOW)}
    windows = [v.window for v in (spec.risk.var, spec.risk.es) if v is not None]
    if spec.portfolio is not None:
        windows.append(spec.portfolio.covariance.window)
    if windows:
        aux["history"] = ir.History(FLOAT, r1, max(windows))
    rules = {}
    for name, rule in p.rules.items():
        if name == "vol_spike" and rule.when is None:
            w = rule.settings["window"] or 63
            prior = ir.Lag(FLOAT, _stdev(r1, w), _c(1), 1)
            rules[name] = ir.Binary(BOOL, "gt", ir.Map(FLOAT, "abs", (r1,)),
                                    ir.Binary(FLOAT, "mul", _c(float(rule.settings["sigma"])),
                                              prior))
    return aux, rules


def to_ir(p: CheckedPolicy) -> PolicyIR:
    b = Builder(p)
    sig = {k: b.build(e) for k, e in p.signal.items()}
    sig["prob_edge"] = ir.ProbEdge(FLOAT, sig["mu"], sig["sigma"], float(p.spec.signal.cost))
    b.signal = sig
    gates = {k: b.build(e) for k, e in p.gates.items()}
    aux, rules = builtin_roots(p)
    rules |= {k: b.build(r.when) for k, r in p.rules.items() if r.when is not None}
    roots = {"signal": sig, "gates": gates, "rules": rules, "aux": aux}
    roots = cse(fold(roots))
    defaults = {k: v.default for k, v in p.params.items()}
    look = lookback(roots, defaults)
    causality(roots, {k: (v.lo, v.hi) for k, v in p.params.items()})
    params = tuple(ParamSpec(k, "int" if v.dtype is DType.INT else "float", v.default, v.lo,
                             v.hi) for k, v in p.params.items())
    return PolicyIR(p, params, roots, look, max(look.warmup, p.warmup),
                    max(look.max_warmup, p.max_warmup), count_duplicates(roots))
