"""Constant folding.

Only operations that IEEE 754 arithmetic rounds exactly (add, sub, mul, div, sqrt, neg, abs,
comparisons, logic) are folded, so a folded constant is bit-identical to what the compiled step
would have computed. `exp`, `log` and `pow` are left to XLA, and so is anything with a subnormal
operand or result: XLA on CPU flushes subnormals to zero (`5e-324 > 0` is false there), Python
does not.

>>> from crowe.compiler import ir
>>> from crowe.dsl.types import Type, Kind, DType
>>> t = Type(Kind.CONST, DType.FLOAT, None)
>>> fold({"x": ir.Binary(t, "mul", ir.Const(t, 0.5), ir.Const(t, 4.0))})["x"].value
2.0
"""
from __future__ import annotations

import math
import operator
import sys

from .. import ir
from .rewrite import rewrite

_BIN = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "lt": operator.lt,
        "le": operator.le, "gt": operator.gt, "ge": operator.ge, "eq": operator.eq,
        "ne": operator.ne, "and": lambda a, b: bool(a and b), "or": lambda a, b: bool(a or b)}


def _div(a, b):
    if b == 0:
        raise ZeroDivisionError
    return float(a) / float(b)


def fold(roots: dict) -> dict:
    return rewrite(roots, _fold_node)


def _fold_node(node: ir.Node) -> ir.Node:
    kids = node.children()
    if not kids or not all(isinstance(k, ir.Const) for k in kids):
        return node
    vals = [k.value for k in kids]
    try:
        value = _evaluate(node, vals)
    except (ZeroDivisionError, ValueError, OverflowError):
        return node  # leave it for the runtime, which yields inf or NaN like XLA
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return node
    if any(_subnormal(v) for v in vals + [value]):
        return node
    return ir.Const(node.type, value, span=node.span)


def _subnormal(v) -> bool:
    return isinstance(v, float) and v != 0 and abs(v) < sys.float_info.min


def _evaluate(node, vals):
    if isinstance(node, ir.Binary) and node.op in _BIN:
        out = _BIN[node.op](*vals)
        return out if isinstance(out, bool) else _num(out, vals)
    if isinstance(node, ir.Binary) and node.op == "div":
        return _div(*vals)
    if isinstance(node, ir.Unary):
        return -vals[0] if node.op == "neg" else (not vals[0])
    if isinstance(node, ir.Map) and node.func == "sqrt" and vals[0] >= 0:
        return math.sqrt(vals[0])
    if isinstance(node, ir.Map) and node.func == "abs":
        return abs(vals[0])
    if isinstance(node, ir.Select):
        return vals[1] if vals[0] else vals[2]
    return None


def _num(out, vals):
    return out if all(isinstance(v, int) and not isinstance(v, bool) for v in vals) \
        else float(out)
