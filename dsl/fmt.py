"""`crowe fmt`: the canonical layout of a policy file, every comment kept.

The layout:

* sections in the schema's order (`policy`, `version`, `owner`, `description`, `universe`,
  `params`, `features`, `signal`, `gates`, `sizing`, `portfolio`, `risk`, `execution`,
  `stand_down`, `compliance`), a blank line between sections, none between the identity keys;
* inside a section, settings in the order of their model (the chosen method's settings after
  `method`), names the author chooses (features, parameters, gates, rules, sectors) in the
  author's order; values of one mapping aligned; a blank line the author left between two
  entries kept (one at most);
* a mapping or list below a section on one line (`{default: 126, range: [63, 252]}`) when it
  fits in 99 columns and holds no comment, otherwise one entry per line;
* every expression printed by `format_expr` (one space around binary operators, the fewest
  parentheses);
* fractions (limits, caps, rates, costs) as percentages, or basis points below 1%: `1.5`
  becomes `150%`, `0.0003` becomes `3bps`; multipliers (risk aversion, impact coefficient,
  spike threshold) stay numbers. A value is restyled only when it reads back as the same
  float.

Comments stay with what they describe: a comment on its own lines with the entry after it, a
comment at the end of a line with the entry on that line. Formatting never changes what the
policy means: the result is checked to read back as the same data (same settings, same
expressions, same values) before it is returned, and `crowe fmt` refuses a file it cannot
format that way.

    >>> print(format_source("risk: {position_max: 0.05, gross_max: 1.5}\\n", "p.policy").text)
    risk:
      position_max: 5%
      gross_max:    150%
    <BLANKLINE>
"""
from __future__ import annotations

import functools
import json
import re
import types as pytypes
import typing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel

from crowe.stdlib.detectors import condition

from .diagnostics import Diagnostic, Diagnostics
from .expr import format_expr, parse_expr
from .quantity import QuantityError, fraction
from .schema import PolicySpec, Rules
from .source import SourceFile, Span
from .yamlload import MapNode, Node, ScalarNode, SeqNode, decode_source, load_yaml

WIDTH = 99
INDENT = "  "
IDENTITY = ("policy", "version", "owner", "description")


class FormatError(Exception):
    """The file could not be formatted without changing what it means (a bug of ours)."""


@dataclass
class Formatted:
    path: str
    original: str | None
    text: str | None                       # None when the file cannot be formatted
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.text is not None and self.text != self.original


def format_bytes(data: bytes, path: str) -> Formatted:
    """The canonical text of a policy file; `text` is None (with the YAML diagnostics that say
    why) when the file is not well-formed YAML."""
    diags = Diagnostics()
    source = decode_source(path, data, diags)
    if source is None:
        return Formatted(path, None, None, diags.sorted())
    root = load_yaml(source, diags)
    if root is None or diags.has_errors:
        return Formatted(path, source.text, None, diags.sorted())
    text = _Writer(source, root).document()
    _same_meaning(source, root, text)
    return Formatted(path, source.text, text)


def format_source(text: str, path: str = "<policy>") -> Formatted:
    return format_bytes(text.encode("utf-8"), path)


# ---------------------------------------------------------------------------------------------
# Types: what each place in the document holds, from the schema models

EXPR, FRACTION = "expr", "fraction"


def _reader(tp) -> str | None:
    """`expr` or `fraction` when `tp` is read by one of those setting types (dsl/fields.py)."""
    for meta in getattr(tp, "__metadata__", ()):
        name = getattr(getattr(meta, "func", None), "__qualname__", "")
        if name == "_expr":
            return EXPR
        if name == "frac.<locals>.check":
            cells = dict(zip(meta.func.__code__.co_freevars,
                             (c.cell_contents for c in meta.func.__closure__)))
            what = str(cells.get("what", ""))
            if cells.get("hi", 0) <= 10 and not re.search("coefficient|multiple|threshold",
                                                          what):
                return FRACTION
    return None


def _field_type(f) -> object:
    if f.metadata:
        return typing.Annotated[(f.annotation, *f.metadata)]
    return f.annotation


def _options(tp) -> list:
    """The alternatives of a (possibly optional, annotated) type, None left out."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        inner = typing.get_args(tp)[0]
        if _reader(tp):
            return [tp]
        return _options(inner)
    if origin in (typing.Union, pytypes.UnionType):
        return [o for a in typing.get_args(tp) if a is not type(None) for o in _options(a)]
    return [tp]


def _model_for(tp, node: MapNode):
    """The model a mapping is read with: the union member its `method`/`algo` chooses."""
    models = [o for o in _options(tp) if isinstance(o, type) and issubclass(o, BaseModel)]
    if len(models) == 1:
        return models[0]
    for key in ("method", "algo"):
        tag = node.get(key)
        for m in models:
            f = m.model_fields.get(key)
            if isinstance(tag, ScalarNode) and f is not None and \
                    typing.get_args(f.annotation) == (tag.value,):
                return m
    return None


def _dict_value(tp):
    for o in _options(tp):
        if typing.get_origin(o) is dict:
            return typing.get_args(o)[1]
    return None


def _list_item(tp):
    for o in _options(tp):
        if typing.get_origin(o) is list:
            return typing.get_args(o)[0]
    return None


def scalar_kind(tp) -> str | None:
    for o in _options(tp):
        kind = _reader(o)
        if kind:
            return kind
    return None


_FIRST = ("method", "algo")       # the choice of component, before its settings
_LAST = ("action", "cooldown")    # what a rule or limit does, after what it watches


class Shape:
    """How a mapping's children are ordered and typed."""

    def __init__(self, tp, node: MapNode) -> None:
        self.model = _model_for(tp, node)
        self.value = _dict_value(tp) if self.model is None else None
        self.rules = isinstance(self.model, type) and issubclass(self.model, Rules)
        self.fields = {}
        if self.model is not None:
            for name, f in self.model.model_fields.items():
                self.fields[f.alias or name] = _field_type(f)

    def ordered(self, keys: list[str]) -> list[str]:
        if self.model is None or self.rules:
            return keys
        names = list(self.fields)
        names = [k for k in _FIRST if k in names] + \
            [k for k in names if k not in _FIRST + _LAST] + [k for k in _LAST if k in names]
        rank = {k: i for i, k in enumerate(names)}
        return sorted(keys, key=lambda k: (rank.get(k, len(rank)), keys.index(k)))

    def child(self, key: str):
        if self.rules:
            return self.fields.get(key, condition.Settings)
        if self.model is not None:
            return self.fields.get(key)
        return self.value


# ---------------------------------------------------------------------------------------------
# Comments


@dataclass
class _Notes:
    header: list[str] = field(default_factory=list)     # before the first key
    footer: list[str] = field(default_factory=list)     # after everything
    before: dict[int, list[str]] = field(default_factory=dict)   # key offset -> own lines
    after: dict[int, list[str]] = field(default_factory=dict)    # key offset -> end of line
    blank: set[int] = field(default_factory=set)        # key offsets with a blank line before


def _scalars(root: Node) -> list[ScalarNode]:
    out, todo = [], [root]
    while todo:
        n = todo.pop()
        if isinstance(n, ScalarNode):
            out.append(n)
        elif isinstance(n, SeqNode):
            todo.extend(n.items)
        elif isinstance(n, MapNode):
            for k, v in n.items:
                out.append(k)
                todo.append(v)
    return out


def _entries(root: MapNode) -> list[tuple[int, ScalarNode, Node]]:
    """(depth, key, value) of every mapping entry, in document order."""
    out, todo = [], [(root, 0)]
    while todo:
        n, depth = todo.pop()
        kids = []
        if isinstance(n, MapNode):
            for k, v in n.items:
                out.append((depth, k, v))
                kids.append((v, depth + 1))
        elif isinstance(n, SeqNode):
            kids = [(item, depth + 1) for item in n.items]
        todo.extend(reversed(kids))
    return sorted(out, key=lambda e: e[1].span.start)


def _comments(source: SourceFile, root: MapNode) -> _Notes:
    """Where each comment and blank line goes. A comment on its own line goes before the first
    key after it (before the first key: the header; after the last: the footer); a comment at
    the end of a line goes with the outermost entry whose key is on that line."""
    text = source.text
    inside = sorted((s.span.start, s.span.end) for s in _scalars(root))
    entries = _entries(root)
    keys = [k.span.start for _, k, _ in entries]
    notes = _Notes()
    for line_no in range(1, text.count("\n") + 2):
        line = source.line_text(line_no)
        begin = source.offset(line_no, 1)
        nxt = next((k for k in keys if k >= begin), None)
        at = _comment_at(line, begin, inside)
        if at is None:
            if not line.strip() and nxt is not None:
                notes.blank.add(nxt)
            continue
        comment = line[at:].rstrip()
        if line[:at].strip():
            _trailing(notes, entries, line_no, begin + at, comment)
        elif nxt is None:
            notes.footer.append(comment)
        elif nxt == keys[0]:
            notes.header.append(comment)
        else:
            notes.before.setdefault(nxt, []).append(comment)
    return notes


def _comment_at(line: str, begin: int, inside: list[tuple[int, int]]) -> int | None:
    for m in re.finditer("#", line):
        i = m.start()
        if i > 0 and line[i - 1] not in " \t":
            continue
        pos = begin + i
        if any(a <= pos < b for a, b in inside):
            continue
        return i
    return None


def _trailing(notes: _Notes, entries, line_no: int, pos: int, comment: str) -> None:
    on_line = [(d, k) for d, k, v in entries if k.span.line == line_no]
    if not on_line:   # a line that closes a value: `}  # ...`
        on_line = [(d, k) for d, k, v in entries if v.span.end_line == line_no]
    if not on_line:   # a line inside a value: `- AAPL  # ...`
        on_line = [(-d, k) for d, k, v in entries if v.span.start <= pos and
                   v.span.line <= line_no <= v.span.end_line]
    if not on_line:
        notes.footer.append(comment)
        return
    key = min(on_line, key=lambda e: e[0])[1]
    notes.after.setdefault(key.span.start, []).append(comment)


class _Writer:
    def __init__(self, source: SourceFile, root: MapNode) -> None:
        self.src, self.root = source, root
        self.notes = _comments(source, root)
        self.commented = self._commented_spans()
        self.cache: dict[int, str | None] = {}

    # -- the document ---------------------------------------------------------------------

    def document(self) -> str:
        out = list(self.notes.header)
        if out and self.root.items and self.root.items[0][0].span.start in self.notes.blank:
            out.append("")
        shape = Shape(PolicySpec, self.root)
        keys = shape.ordered(self.root.keys())
        previous = None
        for key in keys:
            k, v = self.root.entry(key)
            if previous is not None and not (previous in IDENTITY and key in IDENTITY):
                out.append("")
            out.extend(self.entry(k, v, shape.child(key), 0, None))
            previous = key
        if self.notes.footer:
            out.append("")
            out.extend(self.notes.footer)
        return "\n".join(out).rstrip("\n") + "\n"

    # -- entries --------------------------------------------------------------------------

    def entry(self, k: ScalarNode, v: Node, tp, depth: int, pad: int | None) -> list[str]:
        indent = INDENT * depth
        lead = [indent + c for c in self.notes.before.get(k.span.start, [])]
        tail = self.notes.after.get(k.span.start, [])
        key = self.key(k) + ":"
        section = isinstance(v, MapNode) and depth == 0 and v.items   # always on its lines
        one = None if section else self.inline(v, tp)
        if one is not None:
            head = key.ljust(pad) if pad else key
            line = f"{indent}{head} {one}".rstrip() if one else f"{indent}{key}"
            line = self.with_tail(line, tail)
            if len(line) <= WIDTH or not isinstance(v, (MapNode, SeqNode)):
                return lead + [line]
            if isinstance(v, SeqNode):
                return lead + self.wrapped(f"{indent}{head} ", v, tp, tail, indent + INDENT)
        block = self.block(v, tp, depth + 1)
        first = self.with_tail(f"{indent}{key}" + (" " + block[0] if block and
                                                     not block[0].startswith(" ") else ""),
                               tail)
        rest = block[1:] if block and not block[0].startswith(" ") else block
        return lead + [first] + rest

    def wrapped(self, head: str, v: SeqNode, tp, tail: list[str], indent: str) -> list[str]:
        """A long `[a, b, ...]` of scalars over several lines, filled to the width."""
        words = [self.inline(item, _list_item(tp)) for item in v.items]
        lines, line = [], head + "["
        for i, word in enumerate(words):
            piece = word + ("," if i < len(words) - 1 else "]")
            fresh = line.endswith("[") or line == indent
            if not fresh and len(line) + 1 + len(piece) > WIDTH:
                lines.append(line)
                line, fresh = indent, True
            line += piece if fresh else " " + piece
        lines.append(self.with_tail(line, tail))
        return lines

    def with_tail(self, line: str, tail: list[str]) -> str:
        return line + ("  " + " ".join(tail) if tail else "")

    def key(self, k: ScalarNode) -> str:
        return k.raw if k.raw else str(k.value)

    def block(self, v: Node, tp, depth: int) -> list[str]:
        """A value on the lines after its key; a first line not starting with a space goes
        on the key's line (a block scalar's header)."""
        indent = INDENT * depth
        if isinstance(v, MapNode):
            shape = Shape(tp, v)
            keys = shape.ordered(v.keys())
            inline = {key: self.inline(v.get(key), shape.child(key)) for key in keys}
            width = max((len(self.key(v.entry(key)[0])) + 1 for key in keys
                         if inline[key] is not None), default=0)
            out = []
            for i, key in enumerate(keys):
                k, child = v.entry(key)
                if i and k.span.start in self.notes.blank:
                    out.append("")
                out.extend(self.entry(k, child, shape.child(key), depth, width or None))
            return out
        if isinstance(v, SeqNode):
            item_tp = _list_item(tp)
            out = []
            for item in v.items:
                text = self.inline(item, item_tp)
                if text is None:   # a mapping or list in a list: not used by policies
                    raise FormatError("a nested collection in a list")
                out.append(f"{indent}- {text}")
            return out
        return self.block_scalar(v, indent)

    def block_scalar(self, v: ScalarNode, indent: str) -> list[str]:
        lines = v.raw.rstrip("\n").split("\n")
        body = [line for line in lines[1:] if line.strip()]
        cut = min((len(line) - len(line.lstrip(" ")) for line in body), default=0)
        return [lines[0]] + [indent + line[cut:] if line.strip() else "" for line in lines[1:]]

    # -- values on one line ---------------------------------------------------------------

    def inline(self, v: Node | None, tp) -> str | None:
        """The value on one line, or None when it cannot or must not be."""
        key = id(v)
        if key not in self.cache:
            self.cache[key] = self._inline(v, tp)
        return self.cache[key]

    def _inline(self, v: Node | None, tp) -> str | None:
        if v is None:
            return ""
        if isinstance(v, ScalarNode):
            if v.style in ("|", ">"):
                return None
            return self.scalar(v, tp)
        if self.has_comments(v):
            return None
        if isinstance(v, SeqNode):
            item_tp = _list_item(tp)
            parts = [self.inline(item, item_tp) for item in v.items]
            if any(p is None or isinstance(item, ScalarNode) and not _flow_safe(p)
                   for p, item in zip(parts, v.items)):
                return None
            return "[" + ", ".join(parts) + "]"
        shape = Shape(tp, v)
        parts = []
        for key in shape.ordered(v.keys()):
            k, child = v.entry(key)
            if isinstance(child, MapNode) or not _flow_safe(self.key(k)) or \
                    isinstance(child, ScalarNode) and child.value is None:
                return None   # one level of `{...}` at most, and only `key: value` in it
            text = self.inline(child, shape.child(key))
            if text is None or isinstance(child, ScalarNode) and not _flow_safe(text):
                return None
            parts.append(f"{self.key(k)}: {text}".rstrip())
        return "{" + ", ".join(parts) + "}"

    def has_comments(self, v: Node) -> bool:
        return any(v.span.start <= pos < v.span.end for pos in self.commented)

    def _commented_spans(self) -> list[int]:
        return sorted(set(self.notes.before) | set(self.notes.after))

    def scalar(self, v: ScalarNode, tp) -> str:
        kind = scalar_kind(tp)
        if kind == EXPR:
            return _expression(v)
        if kind == FRACTION:
            return _fraction_text(v)
        if v.style is None and "\n" in v.raw:   # plain text folded over lines
            return _plain_or_quoted(str(v.value) if v.value is not None else "")
        if v.style in ("'", '"') and "\n" in v.raw:
            return json.dumps(v.value, ensure_ascii=False)
        return v.raw


_FLOW_UNSAFE = re.compile(r"[,\[\]{}]|: | #")


def _flow_safe(text: str) -> bool:
    return text.startswith('"') or not _FLOW_UNSAFE.search(text)


def _expression(v: ScalarNode) -> str:
    text = v.value if isinstance(v.value, str) else v.raw
    if v.value is None or not isinstance(text, str):
        return v.raw
    canonical = _canonical(text)
    return v.raw if canonical is None else _plain_or_quoted(canonical, expression=True)


@functools.lru_cache(maxsize=4096)
def _canonical(text: str) -> str | None:
    """The expression printed by `format_expr`, or None when it does not parse."""
    e = parse_expr(text, lambda a, b: Span("", a, b, 1, a + 1, 1, b + 1), Diagnostics())
    return None if e is None else format_expr(e)


@functools.lru_cache(maxsize=4096)
def _plain_or_quoted(text: str, expression: bool = False) -> str:
    """`text` as a plain scalar when YAML reads it back as the same text, else double-quoted."""
    diags = Diagnostics()
    root = load_yaml(SourceFile("<fmt>", f"k: {text}\n"), diags)
    node = root.get("k") if isinstance(root, MapNode) else None
    if not diags.items and isinstance(node, ScalarNode) and node.style is None and \
            node.raw == text and (expression or node.value == text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _decimal(v: ScalarNode) -> Decimal | None:
    text = v.raw if v.style is None else str(v.value)
    m = re.fullmatch(r"\s*([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)\s*(%|bps)?\s*", text)
    if not m:
        return None
    try:
        d = Decimal(m.group(1))
    except InvalidOperation:
        return None
    return d / {None: 1, "%": 100, "bps": 10000}[m.group(2)]


def _fraction_text(v: ScalarNode) -> str:
    d = _decimal(v)
    if d is None or v.style is not None:
        return v.raw
    if d == 0:
        shown = "0%"
    elif abs(d) < Decimal("0.01"):
        shown = _number(d * 10000) + "bps"
    else:
        shown = _number(d * 100) + "%"
    try:
        same = fraction(shown) == fraction(v.value)
    except QuantityError:
        same = False
    return shown if same else v.raw


def _number(d: Decimal) -> str:
    text = format(d.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# ---------------------------------------------------------------------------------------------
# The guarantee: the formatted text reads back as the same policy


def _same_meaning(source: SourceFile, root: MapNode, text: str) -> None:
    diags = Diagnostics()
    again = load_yaml(SourceFile(source.path, text), diags)
    if diags.items or not isinstance(again, MapNode):
        raise FormatError("the formatted text does not read back: " +
                          "; ".join(d.message for d in diags.items))
    if _meaning(root, PolicySpec) != _meaning(again, PolicySpec):
        raise FormatError("the formatted text reads back as another policy")
    if _comment_count(source.text, root) != _comment_count(text, again):
        raise FormatError("a comment would be lost")


def _meaning(node: Node | None, tp):
    """What a node says, as the checker reads it: expressions by their syntax tree, fractions
    by their value, model settings in any order, the author's names in their order."""
    if isinstance(node, MapNode):
        shape = Shape(tp, node)
        items = [(k, _meaning(node.get(k), shape.child(k))) for k in node.keys()]
        return ("map", tuple(sorted(items) if shape.model is not None and not shape.rules
                             else items))
    if isinstance(node, SeqNode):
        item = _list_item(tp)
        return ("list", tuple(_meaning(i, item) for i in node.items))
    if node is None:
        return None
    kind = scalar_kind(tp)
    if kind == EXPR and node.value is not None:
        text = node.value if isinstance(node.value, str) else node.raw
        return ("expr", _canonical(text) or text)
    if kind == FRACTION:
        try:
            return ("fraction", fraction(node.value))
        except QuantityError:
            pass
    return ("value", repr(node.value), type(node.value).__name__)


def _comment_count(text: str, root: MapNode) -> int:
    source = SourceFile("<fmt>", text)
    inside = sorted((s.span.start, s.span.end) for s in _scalars(root))
    return sum(_comment_at(source.line_text(i), source.offset(i, 1), inside) is not None
               for i in range(1, text.count("\n") + 2))
