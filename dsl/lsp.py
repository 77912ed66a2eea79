"""`crowe lsp`: a language server for policy files, over stdio.

What an editor gets: the checker's diagnostics as the author types (with ranges, codes, help
and secondary labels), hover (a function's signature and doc, a feature's inferred kind, dtype,
unit and lookback, a parameter's default and range, a setting's meaning), completion (sections,
the settings of a section or of the chosen method, the choices of `method`, `algo` and
`action`, and inside expressions the functions, bar fields, features, parameters and signal
values in scope), go to definition of features and parameters, and formatting (`crowe fmt`).

The analysis (`Document`) is plain Python over the text, so it works on a file that does not
check or does not even parse as YAML (completion reads the structure from indentation); the
pygls wiring (`serve`) is a thin layer over it. Positions follow LSP: 0-based lines, columns in
UTF-16 code units.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from crowe.stdlib import components as reg
from crowe.stdlib import registry as functions
from crowe.stdlib.registry import ACTIONS, BAR_FIELDS, FUNCTIONS, SIGNAL_NAMES

from .check import Checker, _sig_text
from .diagnostics import Diagnostic, Diagnostics
from .fmt import EXPR, Shape, scalar_kind
from .json_schema import policy_schema
from .policy import _once_per_digit, validate
from .schema import PolicySpec
from .source import SourceFile, Span
from .yamlload import MapNode, ScalarNode, decode_source, load_yaml

SIGNAL_DOCS = {"mu": "the expected return of each instrument over the horizon",
               "sigma": "the predictive standard deviation of that return",
               "prob_edge": "P(edge > 0): the probability that the return beats the cost "
                            "hurdle, from `mu` and `sigma` (normal)"}
BAR_DOCS = {"open": "the bar's first price", "high": "the bar's highest price",
            "low": "the bar's lowest price", "close": "the bar's last price",
            "volume": "the shares traded in the bar"}
# The views of the book that expressions read (`position`, `weight`...), when the registry has
# them: name -> (type, doc).
HOLDINGS: dict = getattr(functions, "HOLDINGS", {})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY = re.compile(r"^(\s*)(-\s+)?([A-Za-z_][\w]*)\s*:(?:\s|$)")


# ---------------------------------------------------------------------------------------------
# Positions


def utf16_column(line: str, column: int) -> int:
    """The UTF-16 offset of the 1-based character column `column` of `line`."""
    return len(line[:column - 1].encode("utf-16-le")) // 2


def char_column(line: str, utf16: int) -> int:
    """The 0-based character index of a UTF-16 offset into `line`."""
    count = 0
    for i, ch in enumerate(line):
        if count >= utf16:
            return i
        count += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


# ---------------------------------------------------------------------------------------------
# One document


@dataclass
class Context:
    """Where the cursor is: the keys above it, and whether it is at a key or in a value."""

    path: tuple[str, ...]       # the mapping the cursor is in (keys of its ancestors)
    key: str | None             # the key whose value the cursor is in, or None at a key
    word: str                   # the word being typed (up to the cursor)
    siblings: dict[str, str]    # the other `key: value` entries of that mapping


class Document:
    def __init__(self, uri: str, text: str) -> None:
        self.uri, self.text = uri, text
        self.lines = text.split("\n")

    # -- checking -------------------------------------------------------------------------

    @cached_property
    def _checked(self) -> tuple[SourceFile | None, MapNode | None, Checker | None,
                                list[Diagnostic]]:
        diags = Diagnostics()
        source = decode_source(self.uri, self.text.encode("utf-8", "surrogatepass"), diags)
        root = checker = None
        if source is not None:
            root = load_yaml(source, diags)
            if isinstance(root, MapNode):
                spec = validate(root, source, diags)
                if spec is not None:
                    checker = Checker(source, root, spec, diags)
                    checker.run()
        return source, root if isinstance(root, MapNode) else None, checker, \
            _once_per_digit(diags.sorted())

    def diagnostics(self) -> list[dict]:
        """The checker's diagnostics as LSP `Diagnostic` objects (JSON-ready dicts)."""
        return [self._lsp_diagnostic(d) for d in self._checked[3]]

    def _range(self, span: Span) -> dict:
        def pos(line: int, column: int) -> dict:
            text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
            return {"line": max(line - 1, 0), "character": utf16_column(text, column)}
        return {"start": pos(span.line, span.column), "end": pos(span.end_line, span.end_column)}

    def _lsp_diagnostic(self, d: Diagnostic) -> dict:
        message = d.message + (f" ({d.label})" if d.label else "")
        if d.help:
            message += f"\nhelp: {d.help}"
        out = {"range": self._range(d.span), "severity": 1 if d.is_error else 2,
               "code": d.code, "source": "crowe", "message": message}
        if d.secondary:
            out["relatedInformation"] = [
                {"location": {"uri": self.uri, "range": self._range(lb.span)},
                 "message": lb.message} for lb in d.secondary]
        return out

    # -- where the cursor is --------------------------------------------------------------

    def context(self, line: int, character: int) -> Context:
        text = self.lines[line] if line < len(self.lines) else ""
        before = text[:char_column(text, character)]
        indent = len(text) - len(text.lstrip(" "))
        path, parent_indent = self._parents(line, indent)
        tail = re.search(r"[A-Za-z_][\w]*$", before)
        word = tail.group() if tail else ""
        siblings = self._siblings(line, indent, parent_indent)
        m = _KEY.match(before)
        if not (m and m.end() <= len(before)):
            return Context(path, None, word, siblings)      # at a key
        key, value = m.group(3), before[m.end():]
        if "{" not in value:
            return Context(path, key, word, siblings)
        inner = value[value.rindex("{") + 1:]           # inside `key: {a: 1, b`
        pairs = dict(re.findall(r"(\w+)\s*:\s*([^,{}]*)", value))
        last = re.search(r"(\w+)\s*:\s*[^,{}:]*$", inner)
        if last:
            return Context(path + (key,), last.group(1), word, pairs)
        return Context(path + (key,), None, word, pairs)

    def _parents(self, line: int, indent: int) -> tuple[tuple[str, ...], int]:
        path, want, parent_indent = [], indent, -1
        for i in range(line - 1, -1, -1):
            m = _KEY.match(self.lines[i])
            if not m or self.lines[i].lstrip().startswith("#"):
                continue
            own = len(m.group(1))
            if own < want:
                if parent_indent < 0:
                    parent_indent = own
                path.append(m.group(3))
                want = own
                if own == 0:
                    break
        return tuple(reversed(path)), parent_indent

    def _siblings(self, line: int, indent: int, parent_indent: int) -> dict[str, str]:
        out = {}
        for step in (-1, 1):
            i = line + step
            while 0 <= i < len(self.lines):
                raw = self.lines[i]
                own = len(raw) - len(raw.lstrip(" "))
                if raw.strip() and not raw.lstrip().startswith("#") and own <= parent_indent:
                    break
                m = _KEY.match(raw)
                if m and len(m.group(1)) == indent:
                    out[m.group(3)] = raw[m.end():].split("#")[0].strip()
                i += step
        return out

    # -- the schema at a path -------------------------------------------------------------

    def _shape(self, path: tuple[str, ...], siblings: dict[str, str]):
        """(shape of the mapping at `path`, its type) from the schema models; the sections
        that choose a component by name are read with the one chosen."""
        tp, shape = PolicySpec, Shape(PolicySpec, _fake_map({}))
        for depth, key in enumerate(path):
            tp = shape.child(key)
            if tp is None:
                return None, None
            last = depth == len(path) - 1
            entries = siblings if last else self._tag(key) if depth == 0 else {}
            if last and depth == 0:
                entries = {**self._tag(key), **siblings}
            shape = Shape(tp, _fake_map(entries))
        return shape, tp

    def _tag(self, section: str) -> dict[str, str]:
        """`method` or `algo` of a section, read from the text."""
        inside = False
        for raw in self.lines:
            m = _KEY.match(raw)
            if m and not m.group(1):
                inside = m.group(3) == section
                found = re.search(r"\b(method|algo)\s*:\s*(\w+)", raw)
                if inside and found:
                    return {found.group(1): found.group(2)}
            elif m and inside and m.group(3) in ("method", "algo"):
                return {m.group(3): raw[m.end():].split("#")[0].strip()}
        return {}

    # -- completion -----------------------------------------------------------------------

    def completion(self, line: int, character: int) -> list[dict]:
        ctx = self.context(line, character)
        if ctx.key is None:
            return self._key_items(ctx)
        return self._value_items(ctx)

    def _key_items(self, ctx: Context) -> list[dict]:
        shape, _ = self._shape(ctx.path, ctx.siblings)
        if shape is None:
            return []
        if shape.rules:
            names = [c.name for c in reg.DETECTORS if c.name != "when"]
        elif shape.model is not None:
            names = list(shape.fields)
        else:
            return []
        taken = set(ctx.siblings)
        return [{"label": n, "kind": 10, "detail": self._setting_detail(ctx.path + (n,), ctx),
                 "insertText": n + ": "} for n in names if n not in taken]

    def _value_items(self, ctx: Context) -> list[dict]:
        path = ctx.path + (ctx.key,)
        shape, _ = self._shape(ctx.path, ctx.siblings)
        if ctx.key in ("method", "algo") and ctx.path and ctx.path[0] in _UNION_SECTIONS:
            registry = _UNION_SECTIONS[ctx.path[0]]
            return [{"label": c.name, "kind": 12, "detail": _first_line(c.doc)}
                    for c in registry]
        if ctx.key == "action":
            return [{"label": a, "kind": 12} for a in ACTIONS]
        tp = shape.child(ctx.key) if shape is not None else None
        if scalar_kind(tp) != EXPR and not _is_expression_place(path):
            return []
        return [i for i in self._names(path) if i["label"].startswith(ctx.word)]

    def _names(self, path: tuple[str, ...]) -> list[dict]:
        items = [{"label": n, "kind": 3, "detail": _sig_text(sig),
                  "documentation": sig.doc} for n, sig in sorted(FUNCTIONS.items())]
        items += [{"label": n, "kind": 5, "detail": f"bar field ({u})"}
                  for n, u in BAR_FIELDS.items()]
        items += [{"label": n, "kind": 6, "detail": f"the book: {doc}"}
                  for n, (_, doc) in HOLDINGS.items()]
        items += [{"label": n, "kind": 6, "detail": "feature"} for n in self._defined("features")
                  if not (path[:1] == ("features",) and path[1:2] == (n,))]
        items += [{"label": n, "kind": 21, "detail": "parameter"}
                  for n in self._defined("params")]
        if path[:1] in (("gates",), ("stand_down",)):
            items += [{"label": n, "kind": 6, "detail": SIGNAL_DOCS[n]} for n in SIGNAL_NAMES]
        return items

    def _defined(self, section: str) -> list[str]:
        root = self._checked[1]
        if root is not None and isinstance(root.get(section), MapNode):
            return root.get(section).keys()
        out, inside = [], False
        for raw in self.lines:      # a document that is not YAML: read the section's keys
            m = _KEY.match(raw)
            if m and not m.group(1):
                inside = m.group(3) == section
            elif m and inside and len(m.group(1)) == 2:
                out.append(m.group(3))
        return out

    # -- hover ----------------------------------------------------------------------------

    def hover(self, line: int, character: int) -> dict | None:
        text = self.lines[line] if line < len(self.lines) else ""
        word, start, end = _word_at(text, char_column(text, character))
        if not word:
            return None
        m = _KEY.match(text)
        if m and m.start(3) == start:
            indent = len(m.group(1))
            path, parent_indent = self._parents(line, indent)
            ctx = Context(path, None, word, self._siblings(line, indent, parent_indent))
            body = self._key_hover(ctx, word)
        else:
            body = self._name_hover(word, text, end)
        if body is None:
            return None
        return {"contents": {"kind": "markdown", "value": body},
                "range": {"start": {"line": line, "character": utf16_column(text, start + 1)},
                          "end": {"line": line, "character": utf16_column(text, end + 1)}}}

    def _name_hover(self, word: str, text: str, end: int) -> str | None:
        calling = text[end:].lstrip().startswith("(")
        if calling and word in FUNCTIONS:
            sig = FUNCTIONS[word]
            return f"```\n{_sig_text(sig)}\n```\n{sig.doc}"
        checker = self._checked[2]
        if word in self._defined("features"):
            return self._feature_hover(word, checker)
        if word in self._defined("params"):
            return self._param_hover(word, checker)
        if word in BAR_FIELDS:
            return f"**{word}**: bar field, a {BAR_FIELDS[word]}: {BAR_DOCS.get(word, '')}"
        if word in SIGNAL_NAMES:
            return f"**{word}**: signal value, {SIGNAL_DOCS[word]}"
        if word in HOLDINGS:
            t, doc = HOLDINGS[word]
            unit = "no unit" if t.unit is None else str(t.unit)
            return f"**{word}**: the book at the decision, {t.dtype.label}, {unit}: {doc}"
        if word in FUNCTIONS:
            sig = FUNCTIONS[word]
            return f"```\n{_sig_text(sig)}\n```\n{sig.doc}"
        for section, choices in _UNION_SECTIONS.items():
            if word in choices.names():
                return f"**{word}** ({section}): {_first_line(choices[word].doc)}"
        return None

    def _feature_hover(self, name: str, checker: Checker | None) -> str:
        out = f"**{name}**: feature"
        t = checker.feature_types.get(name) if checker is not None else None
        if t is not None:
            unit = "no unit" if t.unit is None else str(t.unit)
            lb = checker.feature_lb.get(name, (0, 0))[0]
            out += f"\n\n{t.kind.label}, {t.dtype.label}, {unit}; reads {lb} past bars"
        e = checker.feature_src.get(name) if checker is not None else None
        if e is not None:
            from .expr import format_expr
            out += f"\n\n```\n{name} = {format_expr(e)}\n```"
        return out

    def _param_hover(self, name: str, checker: Checker | None) -> str:
        p = checker.params.get(name) if checker is not None else None
        if p is None:
            return f"**{name}**: parameter"
        doc = f"\n\n{p.doc}" if p.doc else ""
        return (f"**{name}**: parameter, {p.dtype.label}, default {p.default:g}, range "
                f"[{p.lo:g}, {p.hi:g}] (a sweep axis){doc}")

    def _key_hover(self, ctx: Context, word: str) -> str | None:
        path = ctx.path + (word,)
        if len(path) == 2 and path[0] == "features":
            return self._feature_hover(word, self._checked[2])
        if len(path) == 2 and path[0] == "params":
            return self._param_hover(word, self._checked[2])
        if word in ("method", "algo") and len(path) == 2 and path[0] in _UNION_SECTIONS:
            names = ", ".join(f"`{n}`" for n in _UNION_SECTIONS[path[0]].names())
            return f"**{'.'.join(path)}**: the component that `{path[0]}` uses: one of {names}"
        detail = self._setting_detail(path, ctx)
        return f"**{'.'.join(path)}**" + (f": {detail}" if detail else "") if detail else None

    def _setting_detail(self, path: tuple[str, ...], ctx: Context) -> str | None:
        """What a setting means: its component's doc and its schema description."""
        parts = []
        component = reg.by_path().get(path)
        if component is None and path[:1] == ("stand_down",) and len(path) == 2 and \
                path[1] in reg.DETECTORS:
            component = reg.DETECTORS[path[1]]
        if component is not None:
            parts.append(_first_line(component.doc))
        elif len(path) == 2 and path[0] in _UNION_SECTIONS:
            chosen = ctx.siblings.get("method") or ctx.siblings.get("algo")
            registry = _UNION_SECTIONS[path[0]]
            if chosen in registry.names():
                parts.append(f"a setting of `{chosen}`: " + _first_line(registry[chosen].doc))
        schema = _schema_description(path)
        if schema:
            parts.append(schema)
        return "; ".join(parts) or None

    # -- formatting -----------------------------------------------------------------------

    def formatting(self) -> list[dict]:
        """`crowe fmt` as one edit of the whole document; none when it is already canonical
        or cannot be formatted (not YAML)."""
        from .fmt import FormatError, format_source
        try:
            result = format_source(self.text, self.uri)
        except FormatError:
            return []
        if not result.changed:
            return []
        end = {"line": len(self.lines) - 1,
               "character": utf16_column(self.lines[-1], len(self.lines[-1]) + 1)}
        return [{"range": {"start": {"line": 0, "character": 0}, "end": end},
                 "newText": result.text}]

    # -- definition -----------------------------------------------------------------------

    def definition(self, line: int, character: int) -> dict | None:
        text = self.lines[line] if line < len(self.lines) else ""
        word, _, _ = _word_at(text, char_column(text, character))
        root = self._checked[1]
        if not word or root is None:
            return None
        for section in ("features", "params"):
            node = root.get(section)
            if isinstance(node, MapNode) and (found := node.entry(word)) is not None:
                return {"uri": self.uri, "range": self._range(found[0].span)}
        return None


_UNION_SECTIONS = {"sizing": reg.SIZING, "portfolio": reg.PORTFOLIO, "execution": reg.EXECUTION}


def _is_expression_place(path: tuple[str, ...]) -> bool:
    return (len(path) == 2 and path[0] in ("features", "gates")) or \
        path in (("signal", "mu"), ("signal", "sigma")) or \
        (len(path) == 3 and path[0] == "stand_down" and path[2] == "when")


def _fake_map(entries: dict[str, str]) -> MapNode:
    span = Span("", 0, 0, 1, 1, 1, 1)
    node = MapNode(span)
    for k, v in entries.items():
        node.items.append((ScalarNode(span, k, k), ScalarNode(span, v, v)))
    return node


def _word_at(text: str, col: int) -> tuple[str, int, int]:
    for m in _WORD.finditer(text):
        if m.start() <= col <= m.end():
            return m.group(), m.start(), m.end()
    return "", col, col


def _first_line(doc: str) -> str:
    para = (doc or "").strip().split("\n\n")[0]
    return " ".join(para.split())


def _schema_description(path: tuple[str, ...]) -> str | None:
    schema = _SCHEMA()
    node = schema
    for key in path:
        node = _property(schema, node, key)
        if node is None:
            return None
    todo = [node]
    while todo:         # the first description, through references and alternatives
        n = _resolve(schema, todo.pop(0))
        if n.get("description"):
            return n["description"]
        todo.extend(n.get("anyOf", []) + n.get("oneOf", []))
    return None


def _SCHEMA(cache: list = []) -> dict:  # noqa: B006 - one schema for the process
    if not cache:
        cache.append(policy_schema())
    return cache[0]


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].split("/")[-1]]
    return node


def _property(schema: dict, node: dict, key: str) -> dict | None:
    todo = [node]
    while todo:
        n = _resolve(schema, todo.pop())
        props = n.get("properties", {})
        if key in props:
            return props[key]
        if isinstance(n.get("additionalProperties"), dict):
            return n["additionalProperties"]
        for alt in ("anyOf", "oneOf", "allOf"):
            todo.extend(n.get(alt, []))
    return None


# ---------------------------------------------------------------------------------------------
# The server


def serve() -> None:
    """Run the language server on stdin/stdout until the client exits."""
    try:
        from lsprotocol import types as t
        from pygls.lsp.server import LanguageServer
    except ImportError:
        raise SystemExit("error: the language server needs pygls: "
                         "pip install 'crowe-policy[lsp]'") from None
    server = LanguageServer("crowe-lsp", "1", text_document_sync_kind=t.TextDocumentSyncKind.Full)
    converter = server.protocol._converter

    def document(uri: str) -> Document:
        return Document(uri, server.workspace.get_text_document(uri).source)

    def publish(uri: str) -> None:
        diags = [converter.structure(d, t.Diagnostic) for d in document(uri).diagnostics()]
        server.text_document_publish_diagnostics(
            t.PublishDiagnosticsParams(uri=uri, diagnostics=diags))

    @server.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls, params: t.DidOpenTextDocumentParams):
        publish(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls, params: t.DidChangeTextDocumentParams):
        publish(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls, params: t.DidSaveTextDocumentParams):
        publish(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls, params: t.DidCloseTextDocumentParams):
        server.text_document_publish_diagnostics(
            t.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))

    @server.feature(t.TEXT_DOCUMENT_HOVER)
    def hover(ls, params: t.HoverParams):
        found = document(params.text_document.uri).hover(params.position.line,
                                                          params.position.character)
        return converter.structure(found, t.Hover) if found else None

    @server.feature(t.TEXT_DOCUMENT_COMPLETION,
                    t.CompletionOptions(trigger_characters=[" ", "(", ":"]))
    def completion(ls, params: t.CompletionParams):
        items = document(params.text_document.uri).completion(params.position.line,
                                                               params.position.character)
        return t.CompletionList(is_incomplete=False,
                                items=[converter.structure(i, t.CompletionItem)
                                       for i in items])

    @server.feature(t.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls, params: t.DocumentFormattingParams):
        edits = document(params.text_document.uri).formatting()
        return [converter.structure(e, t.TextEdit) for e in edits]

    @server.feature(t.TEXT_DOCUMENT_DEFINITION)
    def definition(ls, params: t.DefinitionParams):
        found = document(params.text_document.uri).definition(params.position.line,
                                                               params.position.character)
        return converter.structure(found, t.Location) if found else None

    server.start_io()


if __name__ == "__main__":
    serve()
