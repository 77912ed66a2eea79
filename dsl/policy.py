"""Check a policy file end to end: bytes -> YAML nodes -> sections -> typed policy.

`check_path` and `check_text` never raise on anything a user can write; every problem comes back
as a diagnostic with a position.
"""
from __future__ import annotations

import dataclasses
import re
import types as pytypes
import typing
from dataclasses import dataclass

from pydantic import BaseModel, TypeAdapter, ValidationError

from crowe.stdlib import components as reg

from .check import CheckedPolicy, Checker
from .diagnostics import Diagnostic, Diagnostics, suggestion
from .files import read_limited
from .quantity import NOT_ASCII_DIGIT
from .schema import PolicySpec, Rules
from .source import SourceFile, Span
from .yamlload import (MAX_BYTES, MapNode, Node, ScalarNode, SeqNode, decode_source,
                       document_start, load_yaml, to_plain)


@dataclass
class CheckResult:
    path: str
    source: SourceFile | None
    policy: CheckedPolicy | None
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool:
        return self.policy is not None and not any(d.is_error for d in self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]


class UnreadableFile(Exception):
    """The file could not be opened or read at all (missing, a directory, no permission)."""


def read_bytes(path: str) -> bytes:
    return read_limited(path, MAX_BYTES, "a policy file", UnreadableFile)


def check_path(path: str) -> CheckResult:
    """Check one policy file. Raises `UnreadableFile` only when there is nothing to check."""
    return check_bytes(read_bytes(path), path)


def check_text(text: str, path: str = "<policy>") -> CheckResult:
    return check_bytes(text.encode("utf-8", "surrogatepass"), path)


def check_bytes(data: bytes, path: str) -> CheckResult:
    diags = Diagnostics()
    source = decode_source(path, data, diags)
    if source is None:
        return CheckResult(path, None, None, diags.sorted())
    root = load_yaml(source, diags)
    policy = None
    if isinstance(root, MapNode):
        spec = validate(root, source, diags)
        if spec is not None:
            policy = Checker(source, root, spec, diags).run()
    return CheckResult(path, source, policy if not diags.has_errors else None,
                       _once_per_digit(diags.sorted()))


def _once_per_digit(found: list[Diagnostic]) -> list[Diagnostic]:
    """A digit such as `৪` reported by the YAML reader (`E0005`, at the character) is not
    reported again by a reader of the value it is in (`E0304`, at the whole value)."""
    digits = [d.span for d in found if d.code == "E0005"]
    return [d for d in found if d.code == "E0005" or NOT_ASCII_DIGIT not in d.message or
            not any(d.span.file == s.file and d.span.start <= s.start < d.span.end
                    for s in digits)]


# ---------------------------------------------------------------------------------------------
# Schema validation with positions


def validate(root: MapNode, source: SourceFile, diags: Diagnostics) -> PolicySpec | None:
    """Validate the sections; report every schema error at its node. Returns the spec only when
    the whole document is structurally valid."""
    data = to_plain(root)
    try:
        return PolicySpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    # A value the YAML reader already reported (`yes`, `0250`, `12:30`, an alias) is not
    # reported again for what it became.
    read_wrong = {(d.span.start, d.span.end) for d in diags.errors}
    foreign = [d.span.start for d in diags.errors if d.code == "E0005"]  # a digit such as `৪`
    seen: set[tuple] = set()
    broken = {err["loc"][0] for err in errors if err["loc"]}
    errors = [_untag(err) for err in errors]
    resolved = [(err, *_resolve(root, err["loc"])) for err in errors]
    places = {tuple(path) for _, path, _ in resolved}
    for err, path, node in resolved:
        key = (tuple(path), err["type"] in ("missing", "extra_forbidden"))
        if key in seen or _outdone(err, path, places):
            continue  # one report per place: a union reports each alternative
        if node is not None and ((node.span.start, node.span.end) in read_wrong or
                                 any(node.span.start <= f < node.span.end for f in foreign)):
            continue
        seen.add(key)
        before = len(diags.items)
        _report(err, path, node, root, source, diags)
        diags.items[before:] = [_as_written(d, err.get("input"), node)
                                for d in diags.items[before:]]
    return _partial(data, broken)


# The sections that choose a component by name; with two or more registered, pydantic puts the
# chosen name in an error's location.
_UNIONS = {"sizing": reg.SIZING, "portfolio": reg.PORTFOLIO, "execution": reg.EXECUTION}


def _untag(err: dict) -> dict:
    """Take the union tag (`sizing.kelly_tempered.lambda`) out of an error's location: the
    location as the author wrote it, with the tag kept apart."""
    loc = err["loc"]
    if len(loc) > 1 and loc[0] in _UNIONS and loc[1] in _UNIONS[loc[0]]:
        return dict(err, loc=(loc[0],) + tuple(loc[2:]), tag=loc[1], raw_loc=loc)
    return err


def _outdone(err: dict, path: list, places: set[tuple]) -> bool:
    """Whether `err` comes from one alternative of a union (`symbols: from_data` or a list) that
    failed at the value itself while another got inside it: the author wrote the other one."""
    here = tuple(path)
    return len(err["loc"]) > len(here) and any(
        len(p) > len(here) and p[:len(here)] == here for p in places)


def _partial(data: dict, broken: set) -> PolicySpec:
    """The sections that did validate, so the checker can still report expression errors.
    Broken or missing sections are None; the checker skips them (they were reported). Of a
    broken `name: entry` section (features, gates, rules...) the valid entries are kept, so
    that one bad entry does not hide the mistakes of its siblings."""
    values = {}
    for name, field in PolicySpec.model_fields.items():
        if name not in data:
            values[name] = None if field.is_required() else field.default
        elif name in broken:
            values[name] = _valid_entries(field.annotation, data[name])
        else:
            values[name] = _valid(field.annotation, data[name])
    return PolicySpec.model_construct(**values)


def _valid(annotation, value):
    try:
        return _adapter(annotation).validate_python(value)
    except ValidationError:
        return None


_ADAPTERS: dict = {}


def _adapter(annotation) -> TypeAdapter:
    """One adapter per annotation: building one costs more than validating an entry, and a
    broken section of thousands of entries validates each with the same annotation."""
    try:
        found = _ADAPTERS.get(annotation)
    except TypeError:  # unhashable: not cached
        return TypeAdapter(annotation)
    if found is None:
        found = _ADAPTERS[annotation] = TypeAdapter(annotation)
    return found


def _valid_entries(annotation, value) -> dict | None:
    if isinstance(annotation, type) and issubclass(annotation, Rules) and \
            isinstance(value, dict):
        return _valid_rules(annotation, value)
    if typing.get_origin(annotation) is not dict or not isinstance(value, dict):
        return None
    entry = typing.get_args(annotation)[1]
    valid = {key: _valid(entry, item) for key, item in value.items()}
    return {key: item for key, item in valid.items() if item is not None}


def _valid_rules(model: type[Rules], value: dict) -> Rules:
    """The stand-down rules that validate on their own, so that one bad rule does not hide the
    others."""
    fields, extra = {}, {}
    for key, item in value.items():
        if key in model.model_fields:
            fields[key] = _valid(model.model_fields[key].annotation, item)
        else:
            ok = _valid(model.extra_model(), item)
            if ok is not None:
                extra[key] = ok
    made = model.model_construct(**{k: v for k, v in fields.items()})
    object.__setattr__(made, "__pydantic_extra__", extra)
    return made


def _resolve(root: Node, loc: tuple) -> tuple[list, Node | None]:
    """Follow a pydantic location through the node tree, skipping union tags."""
    path, node = [], root
    for part in loc:
        nxt = None
        if isinstance(node, MapNode) and isinstance(part, str):
            nxt = node.get(part)
        elif isinstance(node, SeqNode) and isinstance(part, int) and 0 <= part < len(node.items):
            nxt = node.items[part]
        if nxt is None:
            if isinstance(node, MapNode) and isinstance(part, str) and part in _FIELD_NAMES:
                path.append(part)   # a missing key: stop at its parent
                return path, None
            continue
        path.append(part)
        node = nxt
    return path, node


def _key_span(root: Node, path: list, source: SourceFile) -> Span:
    node, span = root, source.whole_file()
    for part in path:
        if isinstance(node, MapNode):
            match = node.entry(part)
            if match is None:
                return span
            span, node = match[0].span, match[1]
        elif isinstance(node, SeqNode) and isinstance(part, int):
            node = node.items[part]
            span = node.span
    return span


def _as_written(d: Diagnostic, given, node: Node | None) -> Diagnostic:
    """`d` with the number it quotes as the file has it: `1.10`, not the `1.1` it reads as, and
    `1e30`, not `1e+30`."""
    if isinstance(given, bool) or not isinstance(given, (int, float)) or \
            not isinstance(node, ScalarNode) or node.style is not None or node.raw == str(given):
        return d
    quoted = re.compile("`" + re.escape(str(given)) + "(%?)`")
    fix = lambda text: text and quoted.sub(lambda m: f"`{node.raw}{m.group(1)}`", text)  # noqa: E731
    return dataclasses.replace(d, message=fix(d.message), help=fix(d.help))


def _where(path: list) -> str:
    return "the top level" if not path else "`" + ".".join(str(p) for p in path) + "`"


def _report(err: dict, path: list, node: Node | None, root: MapNode, source: SourceFile,
            diags: Diagnostics) -> None:
    kind, ctx = err["type"], err.get("ctx") or {}
    given = err.get("input")
    if kind == "missing":
        field, parent = path[-1] if path else str(err["loc"][-1]), path[:-1]
        if not path or path[-1] != err["loc"][-1]:
            field, parent = str(err["loc"][-1]), path
        span = _key_span(root, parent, source) if parent else document_start(root, source)
        what = f"section `{field}`" if not parent else f"`{field}` in {_where(parent)}"
        help = _MISSING_HELP.get(field) if field not in ("mu", "sigma") or \
            parent == ["signal"] else None
        diags.add("E0302", f"missing {what}", span, help=help)
        return
    if kind == "extra_forbidden":
        field = path[-1] if path else err["loc"][-1]
        if _not_available(err, path, root, source, diags) or \
                _other_owner(err, path, root, source, diags):
            return
        allowed = _fields_at(err.get("raw_loc", err["loc"])[:-1])
        where = "unknown section" if len(path) == 1 else f"unknown key in {_where(path[:-1])}:"
        help = suggestion(str(field), allowed) or \
            (f"the keys here are {_list(allowed)}" if allowed else None)
        if any(c in str(field) for c in "()<>=+*/ "):
            help = ("inside `{...}` a comma separates entries, so an expression with a comma "
                    "was cut in two: quote the expression, or write the entries on their own "
                    "lines")
        diags.add("E0301", f"{where} `{field}`", _key_span(root, path, source), help=help)
        return
    span = node.span if node is not None else _key_span(root, path, source)
    if kind in ("union_tag_invalid", "literal_error") and isinstance(given, str) or \
            kind == "union_tag_invalid":
        tag = ctx.get("tag", given)
        where = tuple(path) if kind == "literal_error" else \
            tuple(path) + (str(ctx.get("discriminator", "")).strip("'"),)
        if _unknown_choice(where, tag, ctx, span, root, source, diags):
            return
    code, message, help = _message(kind, err, given, ctx)
    if kind == "string_type" and isinstance(node, ScalarNode) and node.raw:
        help = _TEXT_HELP.get(path[-1]) or f"quote it (`\"{node.raw}\"`) to make it text"
    diags.add(code, message, span, help=help)


def _message(kind: str, err: dict, given, ctx: dict) -> tuple[str, str, str | None]:
    found = _describe(given)
    if kind == "empty_expression":
        return "E0205", str(err["msg"]), ctx.get("help")
    if "help" in ctx or kind in ("quantity", "range", "duration", "int", "number", "semver",
                                 "identifier", "owner", "empty", "duplicate") or \
            kind.startswith("missing_"):
        return "E0304", str(err["msg"]), ctx.get("help")
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "`")
        if not isinstance(given, str):
            return "E0303", f"expected {expected}, found {found}", None
        options = [o.strip(" `") for o in expected.replace(" or ", ",").split(",")]
        best = suggestion(given, options)
        return "E0305", f"`{given}` is not one of {expected}", best or f"choose one of {expected}"
    if kind in ("string_type", "str_type"):
        return "E0303", f"expected text, found {found}", None
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "E0303", f"expected a mapping of `key: value` entries, found {found}", None
    if kind in ("list_type", "tuple_type"):
        return "E0303", f"expected a list such as `[a, b]`, found {found}", None
    if kind in ("too_short", "too_long"):
        return "E0303", "expected a list of two values `[low, high]`", None
    if kind in ("int_type", "float_type", "bool_type", "int_from_float"):
        want = {"int_type": "a whole number", "int_from_float": "a whole number",
                "float_type": "a number", "bool_type": "`true` or `false`"}[kind]
        return "E0303", f"expected {want}, found {found}", None
    msg = str(err["msg"])
    msg = msg[0].lower() + msg[1:] if msg else "invalid value"
    return "E0304", msg.removeprefix("value error, "), None


def _describe(v) -> str:
    if isinstance(v, bool):
        return f"`{str(v).lower()}`"
    if isinstance(v, (int, float)):
        return f"the number `{v}`"
    if isinstance(v, str):
        return f"the text `{v}`"
    if v is None:
        return "nothing"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return "a value"


def _list(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _fields_at(loc: tuple) -> list[str]:
    """The keys allowed at a location, by walking the model classes."""
    tp: object = PolicySpec
    for part in loc:
        member = _member(tp, part)
        if member is not None:      # a union tag in the location: step into that member
            tp = member
            continue
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = _field(tp, part)
            if field is None:
                return []
            tp = field.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _member(tp, tag):
    """The member of the discriminated union `tp` that `tag` selects, or None."""
    members = _members(tp)
    if len(members) < 2:
        return None
    for m in members:
        for key in ("method", "algo"):
            f = m.model_fields.get(key)
            if f is not None and typing.get_args(f.annotation) == (tag,):
                return m
    return None


def _members(tp) -> list:
    """The models of a (possibly optional, annotated) union."""
    if typing.get_origin(tp) is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (typing.Union, pytypes.UnionType):
        return [m for a in typing.get_args(tp) for m in _members(a)]
    return [tp] if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _field(model: type[BaseModel], name):
    for n, f in model.model_fields.items():
        if name in (n, f.alias):
            return f
    return None


def _unwrap(tp):
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, pytypes.UnionType):
            models = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = next((a for a in models if isinstance(a, type) and issubclass(a, BaseModel)
                       or typing.get_origin(a) is dict), models[0])
        else:
            return tp


def _all_field_names() -> set[str]:
    names, todo, seen = set(), [PolicySpec], set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for n, f in m.model_fields.items():
            names.update({n, f.alias} - {None})
            tp = _unwrap(f.annotation)
            if typing.get_origin(tp) is dict:
                tp = _unwrap(typing.get_args(tp)[1])
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                todo.append(tp)
    return names


_FIELD_NAMES = _all_field_names()
_TEXT_HELP = {"version": "write three numbers as text, such as `1.0.0`"}
_MISSING_HELP = {
    "signal": "add `signal:` with `mu` (expected return) and `sigma` (its predictive std)",
    "sizing": "add e.g. `sizing: {method: kelly_tempered, lambda: 0.3}`",
    "risk": "add `risk:` with at least `gross_max` and `position_max`",
    "execution": "add e.g. `execution: {algo: market, participation_cap: 10%}`",
    "stand_down": "add `stand_down:` with at least `data_gap: {max_missing: 5%, action: halt}`",
    "policy": "add `policy: <name>` (lowercase identifier)",
    "version": "add `version: 1.0.0`",
    "owner": "add `owner: CR-008` (the research pod)",
    "mu": "the expected return of each instrument over the horizon",
    "sigma": "the predictive standard deviation of that return",
    "action": "add e.g. `action: halt` (`exclude`, `halt`, `flatten` or `reduce(50%)`)",
}


_SECTION_WORD = {"sizing": "sizing method", "portfolio": "portfolio method",
                 "execution": "execution algorithm"}


def _unknown_choice(where: tuple, tag, ctx: dict, span: Span, root: MapNode,
                    source: SourceFile, diags: Diagnostics) -> bool:
    """An unknown method or algorithm: say whether it is planned, and what to use."""
    if not where or where[0] not in _SECTION_WORD:
        return False
    registry = _UNIONS[where[0]]
    if isinstance(tag, str) and where + (tag,) in reg.NOT_AVAILABLE:
        diags.add("E0306", f"the {_SECTION_WORD[where[0]]} `{tag}` is not available",
                  _tag_span(root, where, span), help=reg.NOT_AVAILABLE[where + (tag,)])
        return True
    names = registry.names()
    if not isinstance(tag, str):
        return False
    best = suggestion(tag, names)
    diags.add("E0305", f"`{tag}` is not a {_SECTION_WORD[where[0]]}",
              _tag_span(root, where, span),
              help=best or "choose one of " + ", ".join(f"`{n}`" for n in names))
    return True


def _tag_span(root: MapNode, where: tuple, default: Span) -> Span:
    node = root
    for part in where:
        node = node.get(part) if isinstance(node, MapNode) else None
    return node.span if node is not None else default


def _not_available(err: dict, path: list, root, source, diags) -> bool:
    where = tuple(str(p) for p in path)
    if where not in reg.NOT_AVAILABLE:
        return False
    diags.add("E0306", f"`{where[-1]}` is not available", _key_span(root, path, source),
              help=reg.NOT_AVAILABLE[where])
    return True


def _other_owner(err: dict, path: list, root, source, diags) -> bool:
    """A setting of another method (or rule) than the one chosen: name the ones it belongs to."""
    if len(path) < 2 or path[0] not in (*_UNIONS, "stand_down"):
        return False
    key = str(path[-1])
    if path[0] == "stand_down":
        name = str(path[1])
        builtin = name in reg.DETECTORS and name != "when"
        owners = [c.name for c in reg.DETECTORS if c.name != "when" and
                  key in c.settings.model_fields]
        if builtin:
            mine = [k for k in reg.DETECTORS[name].settings.model_fields]
            help = ("its settings are " + ", ".join(f"`{k}`" for k in mine) +
                    ("; to write your own condition, give the rule another name"
                     if key == "when" else ""))
            message = f"`{key}` is not a setting of the built-in rule `{name}`"
        else:
            message = f"`{key}` is not a setting of rule `{name}`, which is a `when` rule"
            help = (f"`{key}` belongs to the built-in rule " +
                    ", ".join(f"`{o}`" for o in owners)) if owners else \
                "a rule that is not built in takes `when`, `action` and `cooldown`"
        diags.add("E0301", message, _key_span(root, path, source), help=help)
        return True
    chosen = err.get("tag")
    if chosen is None or len(path) != 2:
        return False
    registry = _UNIONS[path[0]]
    owners = [c.name for c in registry if c.name != chosen and key in _aliases(c.settings)]
    if not owners:
        return False
    word = _SECTION_WORD[path[0]]
    diags.add("E0301", f"`{key}` is not a setting of the {word} `{chosen}`",
              _key_span(root, path, source),
              help=f"`{key}` belongs to " + ", ".join(f"`{o}`" for o in owners) +
              f"; the settings of `{chosen}` are " +
              ", ".join(f"`{k}`" for k in _aliases(registry[chosen].settings)))
    return True


def _aliases(model) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items() if n not in ("method", "algo")]
