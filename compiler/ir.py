"""The typed IR: a small closed set of frozen nodes forming a DAG.

Every node knows its static `Type` (kind, dtype, unit). Spans ride along for error messages but
take no part in equality or hashing, so two nodes that compute the same thing are equal wherever
they were written; that is what common-subexpression elimination and buffer sharing rely on.

Windows are IR nodes too (`Const` or `Param`) with a static upper bound `n_max` that sizes the
ring buffers; a window given as a parameter stays a runtime value so that a sweep can `vmap` over
it.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields

from crowe.dsl.source import Span
from crowe.dsl.types import Type

_SPAN = dict(default=None, compare=False, hash=False, repr=False, kw_only=True)


class _CachedHash:
    """Keeps each node's hash once computed. A generated dataclass hash recomputes the children's
    hashes, so over a DAG it costs the size of the expanded tree: exponential in the depth of
    shared subexpressions (`f2 = f1 + f1`, `f3 = f2 + f2`, ...), and every pass keys dicts and
    sets by node. The cache is a slot outside the dataclass fields, so it is invisible to
    equality, `fields()` and the canonical IR text."""

    __slots__ = ("_hash",)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.__hash__ = _CachedHash.__hash__   # an explicit hash, which @dataclass keeps

    def _key(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self) if f.compare)

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:
            h = hash((type(self).__name__, self._key()))
            object.__setattr__(self, "_hash", h)
            return h


def _bits(v) -> tuple:
    """A literal's identity: its kind and, for a float, its IEEE bit pattern."""
    if isinstance(v, float):
        return ("f", struct.pack("<d", v))
    return (type(v).__name__, v)


@dataclass(frozen=True, slots=True)
class Node(_CachedHash):
    type: Type
    span: Span | None = field(**_SPAN)

    def children(self) -> tuple["Node", ...]:
        out = []
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Node):
                out.append(v)
            elif isinstance(v, tuple):
                out.extend(x for x in v if isinstance(x, Node))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Const(Node):
    """A literal. Two constants are equal when their types are and their values have the same
    bits, not by `==`: -0.0 and 0.0 stay apart (so common-subexpression elimination and the
    passes' memos never merge a signed zero into an unsigned one) and a NaN equals itself."""
    value: float | int | bool

    def _key(self) -> tuple:
        return (self.type, _bits(self.value))

    def __eq__(self, other):
        return self._key() == other._key() if type(other) is Const else NotImplemented


@dataclass(frozen=True, slots=True)
class Param(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Field(Node):
    """A bar field at the current bar: open, high, low, close, volume."""
    name: str


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str                   # neg, not
    x: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str                   # add sub mul div pow lt le gt ge eq ne and or
    a: Node
    b: Node


@dataclass(frozen=True, slots=True)
class Select(Node):
    cond: Node
    a: Node
    b: Node


@dataclass(frozen=True, slots=True)
class Map(Node):
    """An elementwise function: abs sqrt log exp sign normcdf clip minimum maximum."""
    func: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Lag(Node):
    """x[t - n]: reads the ring buffer of x."""
    x: Node
    n: Node
    n_max: int


@dataclass(frozen=True, slots=True)
class Rolling(Node):
    """A statistic of the last n values of x (the current one included): mean sum stdev var min
    max zscore."""
    stat: str
    x: Node
    n: Node
    n_max: int


@dataclass(frozen=True, slots=True)
class Ema(Node):
    x: Node
    n: Node
    n_max: int


@dataclass(frozen=True, slots=True)
class CrossSection(Node):
    """Across instruments at one bar, result per instrument: zscore rank demean."""
    op: str
    x: Node


@dataclass(frozen=True, slots=True)
class Reduce(Node):
    """Across instruments at one bar, one result: quantile cs_mean any all share."""
    op: str
    x: Node
    q: Node | None = None


@dataclass(frozen=True, slots=True)
class Turbulence(Node):
    x: Node
    n: Node
    n_max: int


@dataclass(frozen=True, slots=True)
class ProbEdge(Node):
    """P(edge > 0) = Phi((|mu| - cost) / sigma)."""
    mu: Node
    sigma: Node
    cost: float


@dataclass(frozen=True, slots=True)
class History(Node):
    """The last `n_max` values of x as rows of its ring buffer (in ring order, with their
    ages), for estimators over a window: VaR and ES scenarios, covariances."""
    x: Node
    n_max: int


@dataclass(frozen=True, slots=True)
class Wilder(Node):
    """Wilder's smoothing of x: the mean of the first n valid values, then
    avg += (x - avg) / n (an EMA with alpha = 1 / n); the state of `rsi` and `atr`."""
    x: Node
    n: Node
    n_max: int


@dataclass(frozen=True, slots=True)
class Moments(Node):
    """A statistic of the last n values of one or two series (the current one included), from
    their ring buffers: corr beta skew kurt acf (`lag`, the autocorrelation's lag)."""
    stat: str
    xs: tuple[Node, ...]
    n: Node
    n_max: int
    lag: Node | None = None


@dataclass(frozen=True, slots=True)
class Holding(Node):
    """The book at the decision, per instrument: position weight bars_held entry_price."""
    name: str


@dataclass(frozen=True, slots=True)
class Regime(Node):
    """P(risk-off) of a two-state Gaussian HMM of x (`crowe.stdlib.detectors.regime`), over a
    window of n values refitted every `refit` bars; its state (the window and the filter) is
    its own, sized by the constant n."""
    x: Node
    n: int
    refit: int
    min_ratio: Node


STATEFUL = (Lag, Rolling, Ema, Turbulence, Wilder, Moments)


def topo_order(roots) -> list[Node]:
    """Every node reachable from `roots`, children before parents, each once (iterative)."""
    seen: set[Node] = set()
    order: list[Node] = []
    stack: list[tuple[Node, bool]] = [(r, False) for r in reversed(list(roots))]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            if node not in seen:
                seen.add(node)
                order.append(node)
            continue
        if node in seen:
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(node.children()) if c not in seen)
    return order
