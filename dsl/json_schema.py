"""The JSON Schema of a policy file, for YAML editors (`crowe schema`).

Generated from the pydantic models of `dsl.schema`, which are themselves generated from the
standard library's registries, so a new component's settings appear here with no edit. The
setting types that read what authors write (`5%`, `3bps`, `20d`, an expression that YAML reads
as a number) validate in pydantic through a function; here each is given the JSON shape it
accepts. The schema checks structure (sections, settings, choices, kinds of value); ranges that
depend on the text (`150%` against a limit) and everything about expressions are the checker's.

    >>> s = policy_schema()
    >>> s["additionalProperties"], "risk" in s["required"]
    (False, True)
"""
from __future__ import annotations

import json
import re
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from .quantity import Duration
from .schema import PolicySpec

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"

_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
FRACTION_TEXT = rf"^\s*{_NUMBER}\s*(%|bps)?\s*$"
DURATION_TEXT = r"^\s*[0-9]+\s*(s|m|h|d|w)\s*$"


def _closure(func) -> dict[str, Any]:
    names = func.__code__.co_freevars
    return {n: c.cell_contents for n, c in zip(names, func.__closure__ or ())}


def _fraction(func) -> dict:
    c = _closure(func)
    lo, hi = c.get("lo"), c.get("hi")
    number: dict = {"type": "number"}
    if lo is not None and hi is not None:
        number["exclusiveMinimum" if c.get("lo_open") else "minimum"] = lo
        number["exclusiveMaximum" if c.get("hi_open") else "maximum"] = hi
    where = f" between {lo:g} and {hi:g}" if lo is not None and hi is not None else ""
    return {"anyOf": [number, {"type": "string", "pattern": FRACTION_TEXT}],
            "description": f"a fraction{where}: `0.05`, `5%` or `500bps`"}


def _positive_int(func) -> dict:
    c = _closure(func)
    return {"type": "integer", "minimum": c.get("least", 1), "maximum": c.get("most", 2**53),
            "description": str(c.get("what", "a count"))}


# The setting types, by the name of the function that reads them (dsl/fields.py).
_READERS = {
    "frac.<locals>.check": _fraction,
    "positive_int.<locals>.check": _positive_int,
    "_dur": lambda f: {"anyOf": [{"type": "integer", "minimum": 1},
                                 {"type": "string", "pattern": DURATION_TEXT}],
                       "description": "a duration such as `5d`, `30m`, `1h`, or a whole "
                                      "number of bars"},
    "_every": lambda f: {"anyOf": [{"type": "integer", "minimum": 1},
                                   {"type": "string",
                                    "pattern": r"^\s*(bar|[0-9]+\s*(s|m|h|d|w|mo))\s*$"}],
                         "description": "a rebalance period: `bar`, a duration such as `5d`, "
                                        "a number of bars, `1w` or `1mo`"},
    "_range.<locals>.check": lambda f: {
        "type": "array", "minItems": 2, "maxItems": 2,
        "items": {"anyOf": [{"type": "number"}, {"type": "string", "pattern": FRACTION_TEXT}]},
        "description": "`[low, high]`, two fractions such as `[-10%, 10%]`"},
    "_distance": lambda f: {"anyOf": [{"type": "number", "exclusiveMinimum": 0,
                                       "exclusiveMaximum": 1},
                                      {"type": "string", "pattern": FRACTION_TEXT},
                                      {"type": "string", "pattern":
                                       r"^\s*[0-9.eE+-]+\s*atr\s*(\(\s*[0-9]+\s*\))?\s*$"}],
                            "description": "an exit distance: a fraction such as `5%`, or a "
                                           "multiple of the average true range such as `3 atr` "
                                           "or `3 atr(20)`"},
    "_money": lambda f: {"type": "number", "exclusiveMinimum": 0,
                         "description": "a positive amount such as `1e6`"},
    "_expr": lambda f: {"type": ["string", "number", "boolean"],
                        "description": "an expression, e.g. `ret(close, 1)`"},
}


class _Generator(GenerateJsonSchema):
    def function_before_schema(self, schema):
        func = schema["function"]["function"]
        name = getattr(func, "__qualname__", "")
        reader = _READERS.get(name)
        if reader is None:
            # a setting read by a function the schema does not know: its JSON type would be
            # the model's type after reading, not what a policy writes, so refuse to guess
            raise TypeError(f"no JSON schema for settings read by `{name}`: add it to "
                            "`_READERS` in crowe/dsl/json_schema.py")
        return reader(func)

    def encode_default(self, dft):
        if isinstance(dft, Duration):
            return dft.count if dft.unit == "bar" else str(dft)
        return super().encode_default(dft)


_DOC_LINE = re.compile(r"\s+")


def policy_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a `.policy` file."""
    schema = PolicySpec.model_json_schema(schema_generator=_Generator)
    schema = {"$schema": SCHEMA_URI, **schema, "title": "Crowe Logic policy"}
    return _tidy(schema)


def _tidy(node):
    """Docstrings as one-line descriptions (an editor shows them on hover)."""
    if isinstance(node, dict):
        out = {k: _tidy(v) for k, v in node.items()}
        if isinstance(out.get("description"), str):
            out["description"] = _DOC_LINE.sub(" ", out["description"]).strip()
        return out
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    return node


def schema_text() -> str:
    return json.dumps(policy_schema(), indent=2, sort_keys=True) + "\n"
