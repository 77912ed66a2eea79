"""The expression AST: small frozen nodes produced by `dsl.expr.parse_expr`.

Spans ride along (`span`) but take no part in equality or hashing, so two expressions that read
the same compare equal wherever they were written.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .source import Span

_SPAN = dict(default=None, compare=False, hash=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Expr:
    span: Span | None = field(**_SPAN)


@dataclass(frozen=True, slots=True)
class Number(Expr):
    """A numeric literal. `text` is the digits as written (`1.5e6`, `20`), `suffix` the unit
    written right after them (`%`, `bps`, `d`, `m`, `h`, ...) or None."""

    text: str
    suffix: str | None = None

    @property
    def is_int(self) -> bool:
        return not any(c in self.text for c in ".eE")

    @property
    def magnitude(self) -> float:
        return float(self.text)


@dataclass(frozen=True, slots=True)
class Bool(Expr):
    value: bool


@dataclass(frozen=True, slots=True)
class Name(Expr):
    id: str


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: str  # "-", "+", "not"
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    op: str  # "+", "-", "*", "/", "^"
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Compare(Expr):
    op: str  # "<", "<=", ">", ">=", "==", "!="
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class BoolOp(Expr):
    op: str  # "and", "or"
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class IfElse(Expr):
    cond: Expr
    then: Expr
    orelse: Expr


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str
    value: Expr
    span: Span | None = field(**_SPAN)  # the span of the keyword's name


@dataclass(frozen=True, slots=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Keyword, ...] = ()
    func_span: Span | None = field(**_SPAN)


def children(e: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of `e`, in source order."""
    if isinstance(e, Unary):
        return (e.operand,)
    if isinstance(e, (Binary, Compare, BoolOp)):
        return (e.left, e.right)
    if isinstance(e, IfElse):
        return (e.cond, e.then, e.orelse)
    if isinstance(e, Call):
        return e.args + tuple(k.value for k in e.kwargs)
    return ()


def walk(e: Expr):
    """Every node of the tree, parents before children, without recursion."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def names(e: Expr) -> list[Name]:
    return [n for n in walk(e) if isinstance(n, Name)]
