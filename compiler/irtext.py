"""The canonical text of a policy's IR: what an auditor reads, and what the artifact hashes.

One line per node, children before parents, each node once (the IR is a DAG), numbered in
topological order from the roots in the order the policy declares them:

    %0 = field close : series float price
    %1 = const 1 : const int
    %2 = lag %0, n=%1, n_max=1 : series float price
    root signal.mu = %17

followed by the parameters, the ring buffers and the warm-up, then one `enforce` line per
component the step applies (sizing or portfolio, every overlay, limit, stand-down rule, the
execution algorithm and every order rule) with all its settings, and the compliance lists, so
that a reviewer of an artifact reads every enforced value and action:

    enforce overlay risk.position_max value=0.05
    enforce limit risk.drawdown.from_peak action="flatten" cooldown="5d" max=0.25 ...

Numbers are written exactly
(`repr` of a float round-trips), spans are left out, so the text depends only on what the policy
computes: the same IR always gives the same bytes.
"""
from __future__ import annotations

import dataclasses
import json

from pydantic import BaseModel

from crowe.dsl.check import active_components
from crowe.dsl.types import Type

from . import ir
from .passes.rewrite import flat
from .program import PolicyIR

HEADER = "# crowe policy IR, format 1"


def ir_text(pir: PolicyIR) -> str:
    """The canonical, deterministic text of the policy's IR (ends with a newline)."""
    order = ir.topo_order(flat(pir.roots))
    ids = {node: f"%{i}" for i, node in enumerate(order)}
    lines = [HEADER, f"policy {pir.spec.policy} {pir.spec.version}"]
    lines += [_node_line(node, ids) for node in order]
    lines += [f"root {path} = {ids[node]}" for path, node in _roots(pir.roots)]
    lines += [_param_line(p) for p in pir.params]
    lines += [f"buffer {ids[node]} rows={rows}"
              for node, rows in sorted(pir.look.buffers.items(), key=lambda kv: _index(ids, kv))]
    lines.append(f"warmup {pir.warmup} max={pir.max_warmup}")
    lines += enforced_lines(pir.spec)
    return "\n".join(lines) + "\n"


def enforced_lines(spec) -> list[str]:
    """One line per component the step applies, with every setting (defaults included), and
    the compliance lists: what the artifact enforces, in a fixed order."""
    out = []
    for component, settings in active_components(spec):
        path = ".".join(p for p in component.path if p != "*")
        if component.slot == "detector":
            path = f"stand_down.{_rule_name(spec, settings)}"
        out.append(f"enforce {component.slot} {path} {component.name} "
                   f"{_settings_text(settings)}".rstrip())
    comp = spec.compliance
    if comp is not None:
        out.append(f"enforce compliance restricted={_value(list(comp.restricted))} "
                   f"shorting={_value(comp.shorting.model_dump(mode='json'))}")
    return out


def _rule_name(spec, settings) -> str:
    return next(name for name, rule in spec.stand_down.items() if rule is settings)


def _settings_text(settings) -> str:
    if isinstance(settings, BaseModel):
        dumped = settings.model_dump(mode="json")
        return " ".join(f"{k}={_value(v)}" for k, v in sorted(dumped.items()))
    return f"value={_value(settings)}"


def _value(v) -> str:
    if isinstance(v, float):
        return repr(v)
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def _node_line(node: ir.Node, ids: dict) -> str:
    args = []
    for f in dataclasses.fields(node):
        if f.name in ("type", "span"):
            continue
        args.append(_arg(f.name, getattr(node, f.name), ids))
    op = type(node).__name__.lower()
    return f"{ids[node]} = {op} {', '.join(args)} : {_type(node.type)}".replace("  :", " :")


def _param_line(p) -> str:
    num = (lambda v: str(int(v))) if p.dtype == "int" else (lambda v: repr(float(v)))
    return f"param {p.name} {p.dtype} default={num(p.default)} range=[{num(p.lo)}, {num(p.hi)}]"


def _arg(name: str, value, ids: dict) -> str:
    if isinstance(value, ir.Node):
        return f"{name}={ids[value]}"
    if isinstance(value, tuple):
        return f"{name}=[{', '.join(ids[v] if isinstance(v, ir.Node) else _num(v) for v in value)}]"
    return f"{name}={_num(value)}"


def _num(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _type(t: Type) -> str:
    unit = "-" if t.unit is None else str(t.unit).replace(" ", "")
    return f"{t.kind.name.lower()} {t.dtype.name.lower()} {unit}"


def _roots(roots: dict, prefix: str = ""):
    for key, value in roots.items():
        path = f"{prefix}{key}"
        if isinstance(value, ir.Node):
            yield path, value
        elif isinstance(value, dict):
            yield from _roots(value, path + ".")


def _index(ids: dict, kv) -> int:
    return int(ids[kv[0]][1:])
