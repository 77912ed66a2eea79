"""The strict YAML reader: policy text to a tree of nodes that know where they were written.

A policy uses YAML for structure only, so this reader accepts the small safe part of YAML that a
policy needs and reports everything else instead of guessing what was meant:

* plain scalars resolve by the YAML 1.2 core schema (`true`, `null`, `12`, `1.5`, `.inf`);
  anything else (`5%`, `20d`, `1.0.0`, `2020-01-01`, `CR-008`) stays text;
* spellings that a YAML 1.1 reader turns into something else are errors unless quoted:
  `yes`/`no`/`on`/`off`/`y`/`n` (booleans), `12:30` (base 60) and `017` (octal);
* duplicate keys, anchors and aliases, tags, keys that are not strings, more than one document,
  a top level that is not a mapping and nesting deeper than `MAX_DEPTH` are errors.

The tree is built from parser events with an explicit stack, never the composer, so no input can
exhaust the Python stack, and reading stops at the first level past `MAX_DEPTH`.

    >>> from crowe.dsl.diagnostics import Diagnostics
    >>> from crowe.dsl.source import SourceFile
    >>> diags = Diagnostics()
    >>> root = load_yaml(SourceFile("p.policy", "policy: demo\\nparams: {lookback: 252}\\n"), diags)
    >>> to_plain(root), len(diags)
    ({'policy': 'demo', 'params': {'lookback': 252}}, 0)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal

import yaml

from .diagnostics import Diagnostics, Label
from .quantity import describe_char, foreign_digit, foreign_digit_help
from .source import SourceFile, Span

MAX_BYTES = 1 << 20
MAX_DEPTH = 32

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ---------------------------------------------------------------------------------------------
# The tree


@dataclass(eq=False)
class Node:
    """A node of the tree; `span` covers its text, not the anchors or tags written before it."""

    span: Span


@dataclass(eq=False)
class ScalarNode(Node):
    """A scalar. `raw` is the text as written (quotes included); `style` is None for plain,
    `'` or `"` for quoted and `|` or `>` for block scalars; `text_offset` is the offset in the
    source where the value's text appears verbatim, or None when it does not (folded lines,
    escapes, block scalars)."""

    value: str | int | float | bool | None
    raw: str
    style: str | None = None
    text_offset: int | None = None


@dataclass(eq=False)
class SeqNode(Node):
    """A sequence (`[a, b]` or `- a` lines)."""

    items: list[Node] = field(default_factory=list)


@dataclass(eq=False)
class MapNode(Node):
    """A mapping with string keys, unique and in source order (a repeated key is reported and
    left out, so `get` and `to_plain` agree on the first one)."""

    items: list[tuple[ScalarNode, Node]] = field(default_factory=list)
    # key -> (key node, value) of its first entry: built once, so that a lookup costs the same
    # whatever the size of the mapping (a check looks up every one of thousands of features)
    _index: dict[object, tuple[ScalarNode, Node]] = field(default_factory=dict, init=False,
                                                          repr=False, compare=False)
    _indexed: int = field(default=0, init=False, repr=False, compare=False)

    def entry(self, key: object) -> tuple[ScalarNode, Node] | None:
        """The key node and the value of the first entry under `key`, or None."""
        if self._indexed != len(self.items):  # entries appended since: index the new ones
            for k, value in self.items[self._indexed:]:
                try:
                    self._index.setdefault(k.value, (k, value))
                except TypeError:  # an unhashable key value: not a name, never looked up
                    pass
            self._indexed = len(self.items)
        try:
            return self._index.get(key)
        except TypeError:
            return None

    def get(self, key: str) -> Node | None:
        """The value under `key`, or None."""
        found = self.entry(key)
        return None if found is None else found[1]

    def keys(self) -> list[str]:
        return [k.value for k, _ in self.items]


def document_start(root: Node | None, source: SourceFile) -> Span:
    """Where the document starts: its first key, past the comments and blank lines above it
    (what a diagnostic about the whole document, such as a missing section, points at)."""
    if isinstance(root, MapNode) and root.items:
        return root.items[0][0].span
    return source.whole_file()


def to_plain(node: Node) -> object:
    """The tree as dicts, lists and scalars (for schema validation)."""
    out = _shell(node)
    stack = [(node, out)] if isinstance(node, (MapNode, SeqNode)) else []
    while stack:
        parent, box = stack.pop()
        for key, child in _entries(parent):
            value = _shell(child)
            if isinstance(box, dict):
                box[key] = value
            else:
                box.append(value)
            if isinstance(child, (MapNode, SeqNode)):
                stack.append((child, value))
    return out


def _shell(node: Node) -> object:
    """What a node becomes: an empty container to fill in, or the scalar's value."""
    if isinstance(node, MapNode):
        return {}
    return [] if isinstance(node, SeqNode) else node.value


def _entries(node: MapNode | SeqNode) -> list[tuple[object, Node]]:
    if isinstance(node, MapNode):
        return [(key.value, value) for key, value in node.items]
    return [(None, item) for item in node.items]


# ---------------------------------------------------------------------------------------------
# Bytes to text

_UTF8_BOM = b"\xef\xbb\xbf"


def decode_source(path: str, data: bytes, diags: Diagnostics) -> SourceFile | None:
    """The text of a policy file, or None (with a diagnostic) when the bytes cannot be one.

    A UTF-8 byte order mark is dropped and line endings become `\\n`, so that lines and columns
    are the same whichever editor saved the file.
    """
    if len(data) > MAX_BYTES:
        diags.add("E0002", f"the file is too large ({len(data):,} bytes, the limit is "
                  f"{MAX_BYTES:,})", SourceFile(path, "").span(0, 0),
                  help="a policy file holds at most 1 MiB: keep long tables in data files")
        return None
    data = data.removeprefix(_UTF8_BOM)
    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        if nul < 0 or err.start < nul:
            return _not_utf8(path, data, err.start, diags)
    if nul >= 0:  # also reached when the bad UTF-8 comes after the NUL: report what comes first
        return _nul_byte(path, data, nul, diags)
    return SourceFile(path, _normalize_newlines(text))


def _not_utf8(path: str, data: bytes, index: int, diags: Diagnostics) -> None:
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    diags.add("E0003", "the file is not valid UTF-8", _span_at_byte(path, data, index),
              label=f"byte `0x{data[index]:02x}`",
              help="the file looks like UTF-16: save it as UTF-8" if utf16
              else "save the file as UTF-8 text")


def _nul_byte(path: str, data: bytes, index: int, diags: Diagnostics) -> None:
    diags.add("E0004", "the file contains a NUL byte", _span_at_byte(path, data, index),
              help="a policy is plain text: is this a binary file, or one saved as UTF-16? "
                   "save it as UTF-8")


def _span_at_byte(path: str, data: bytes, index: int) -> Span:
    """Where byte `index` is, counted in characters of the valid text before it."""
    prefix = SourceFile(path, _normalize_newlines(data[:index].decode("utf-8", "replace")))
    return prefix.span(len(prefix.text))


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------------------------------------
# Text to tree


def load_yaml(source: SourceFile, diags: Diagnostics) -> Node | None:
    """The root mapping of a policy, or None when there is no usable document.

    Every problem goes to `diags`. After recoverable errors (duplicate keys, traps, anchors,
    tags...) the tree is still returned so that checking can go on and report more; a syntax
    error, an empty document, a top level that is not a mapping or too deep a nesting give None.
    """
    if not _text_ok(source, diags):
        return None
    found = Diagnostics()
    root = _read(source, found, _LOADER)
    if root is _PARSER_TOO_DEEP:
        # libyaml stops at its own nesting limit (1000 levels) while it still looks ahead for a
        # key, before our limit is reached: the pure-Python parser gives the same events and
        # stops at ours, so it finds where the nesting goes past `MAX_DEPTH`.
        found = Diagnostics()
        root = _read(source, found, yaml.SafeLoader)
        if root is _PARSER_TOO_DEEP:  # not reached: the pure-Python parser has no such limit
            found.add("E0107", f"nesting is deeper than {MAX_DEPTH} levels", source.span(0),
                      help=_DEPTH_HELP)
            root = None
    diags.extend(found)
    return root


_PARSER_TOO_DEEP = object()
_DEPTH_HELP = "flatten the structure: a policy needs only a few levels of nesting"


def _read(source: SourceFile, diags: Diagnostics, loader) -> Node | None | object:
    """`load_yaml` with one parser; `_PARSER_TOO_DEEP` when the parser's own nesting limit
    stopped it first."""
    builder = _Builder(source, diags)
    events = yaml.parse(source.text, Loader=loader)
    try:
        builder.run(events)
    except yaml.MarkedYAMLError as err:
        if "maximum nesting depth" in (err.problem or "") and not builder.too_deep:
            return _PARSER_TOO_DEEP
        _syntax_error(source, builder.marks, err, diags)
        return None
    except yaml.YAMLError:  # unmarked: nothing in a checked text should get here
        diags.add("E0101", "cannot read the file as YAML", source.span(0),
                  help="save the policy as plain UTF-8 text")
        return None
    finally:
        events.close()
    return builder.result()


# Exactly what YAML readers accept, less U+FEFF: a byte order mark inside the text is invisible
# and the two parsers disagree about its column.
_FORBIDDEN_CHAR = re.compile(
    "[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")


def _text_ok(source: SourceFile, diags: Diagnostics) -> bool:
    text = source.text
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        diags.add("E0002", f"the file is too large (the limit is {MAX_BYTES:,} bytes)",
                  source.span(0, 0), help="a policy file holds at most 1 MiB")
        return False
    bad = _FORBIDDEN_CHAR.search(text)
    if bad is None:
        return True
    if bad.group() == "\0":
        diags.add("E0004", "the file contains a NUL byte", source.span(bad.start()),
                  help="a policy is plain text: save it as UTF-8")
    else:
        diags.add("E0101", f"character U+{ord(bad.group()):04X} is not allowed in a policy file",
                  source.span(bad.start()), help="remove it: it is invisible in most editors")
    return False


class _Marks:
    """Character offsets of parser marks.

    The parsers end a line at `\\r\\n`, `\\r`, `\\n`, NEL, LS and PS while `SourceFile` ends one
    at `\\n` only, so marks go through a line table of their own.
    """

    _BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self.starts = [0] + [m.end() for m in self._BREAK.finditer(text)]

    def offset(self, mark: yaml.Mark) -> int:
        if mark.line >= len(self.starts):  # libyaml puts the end of the stream past the last line
            return self.length
        return min(self.starts[mark.line] + mark.column, self.length)


@dataclass(eq=False)
class _Open:
    """A collection whose end event has not come yet."""

    node: MapNode | SeqNode
    start: int
    flow: bool
    end: int
    key: Node | None = None
    seen: dict[str, ScalarNode] = field(default_factory=dict)


class _Builder:
    """Turns parser events into nodes, with an explicit stack of open collections."""

    def __init__(self, source: SourceFile, diags: Diagnostics) -> None:
        self.source, self.diags = source, diags
        self.marks = _Marks(source.text)
        self.stack: list[_Open] = []
        self.root: Node | None = None
        self.documents = 0
        self.too_deep = False
        self.aliases: set[Node] = set()

    def run(self, events) -> None:
        for event in events:
            handler = self._HANDLERS.get(type(event))
            if handler is not None and not handler(self, event):
                return

    def result(self) -> MapNode | None:
        if self.too_deep:
            return None
        root = self.root
        if root is None or isinstance(root, ScalarNode) and root.raw == "":
            self.diags.add("E0108", "the document is empty", self.source.span(0, 0),
                           help=_SECTIONS_HELP)
            return None
        if not isinstance(root, MapNode):
            what = "a list" if isinstance(root, SeqNode) else "a single value"
            self.diags.add("E0108", f"the top level is {what}, not a mapping of sections",
                           root.span, help=_SECTIONS_HELP)
            return None
        return root

    # -- events: each handler returns False to stop reading ---------------------------------

    def _document_start(self, event: yaml.DocumentStartEvent) -> bool:
        self.documents += 1
        if self.documents == 1:
            return True
        start = self.marks.offset(event.start_mark)
        self.diags.add("E0109", "the file holds more than one YAML document",
                       self.source.span(start, start + (3 if event.explicit else 1)),
                       label="a second document starts here",
                       help="a policy is one document: remove the `---` line or split the file")
        return False

    def _scalar(self, event: yaml.ScalarEvent) -> bool:
        end = self.marks.offset(event.end_mark)
        start = min(self._properties(event), end)  # an empty value may follow its tag
        node = _make_scalar(self.source, event, start, end, self.diags)
        return self._attach(node)

    def _alias(self, event: yaml.AliasEvent) -> bool:
        start, end = self.marks.offset(event.start_mark), self.marks.offset(event.end_mark)
        raw = self.source.text[start:end]
        node = ScalarNode(self.source.span(start, end), None, raw)
        self.aliases.add(node)
        self.diags.add("E0103", f"alias `{raw}` is not allowed", node.span, help=_ANCHOR_HELP
                       + f", or quote it (`\"{raw}\"`) if it is text")
        return self._attach(node)

    def _collection_start(self, event: yaml.CollectionStartEvent) -> bool:
        end = self.marks.offset(event.end_mark)
        start = max(0, end - 1) if event.flow_style else end  # at `[`, `{`, `-` or the first key
        if len(self.stack) == MAX_DEPTH:
            self.diags.add("E0107", f"nesting is deeper than {MAX_DEPTH} levels",
                           self.source.span(start), help=_DEPTH_HELP)
            self.too_deep = True
            return False
        self._properties(event)
        kind = MapNode if isinstance(event, yaml.MappingStartEvent) else SeqNode
        node = kind(self.source.span(start, start))
        self.stack.append(_Open(node, start, bool(event.flow_style), start))
        return True

    def _collection_end(self, event: yaml.CollectionEndEvent) -> bool:
        frame = self.stack.pop()
        end = self.marks.offset(event.end_mark) if frame.flow else frame.end
        frame.node.span = self.source.span(frame.start, max(end, frame.start))
        return self._attach(frame.node)

    _HANDLERS = {
        yaml.DocumentStartEvent: _document_start,
        yaml.ScalarEvent: _scalar,
        yaml.AliasEvent: _alias,
        yaml.MappingStartEvent: _collection_start,
        yaml.SequenceStartEvent: _collection_start,
        yaml.MappingEndEvent: _collection_end,
        yaml.SequenceEndEvent: _collection_end,
    }

    # -- building ---------------------------------------------------------------------------

    def _properties(self, event: yaml.NodeEvent) -> int:
        """Report the anchor and tag of a node; return where its content starts."""
        start = self.marks.offset(event.start_mark)
        if not (event.anchor or event.tag):
            return start
        found, content = _scan_properties(self.source.text, start)
        if event.anchor:
            span = self.source.span(*found.get("&", (start, start + 1)))
            self.diags.add("E0103", f"anchor `{_text(self.source, span)}` is not allowed", span,
                           help=_ANCHOR_HELP)
        if event.tag:
            span = self.source.span(*found.get("!", (start, start + 1)))
            tag = _text(self.source, span)
            self.diags.add("E0104", f"tag `{tag}` is not allowed", span, help="policy files "
                           f"do not use YAML tags: remove `{tag}`, and quote the value if it is "
                           "text")
        return content

    def _attach(self, node: Node) -> bool:
        if not self.stack:
            self.root = node
            return True
        frame = self.stack[-1]
        frame.end = max(frame.end, node.span.end)
        if isinstance(frame.node, SeqNode):
            frame.node.items.append(node)
        elif frame.key is None:
            frame.key = node
        else:
            self._add_entry(frame, frame.key, node)
            frame.key = None
        return True

    def _add_entry(self, frame: _Open, key: Node, value: Node) -> None:
        if not (isinstance(key, ScalarNode) and isinstance(key.value, str)):
            if key not in self.aliases:  # already reported
                _bad_key(key, self.diags)
            return
        first = frame.seen.get(key.value)
        if first is not None:  # the first one stays: it is the one `first defined here` names
            self.diags.add("E0102", f"duplicate key `{key.value}`", key.span,
                           label="defined again here",
                           secondary=[Label(first.span, "first defined here")],
                           help="a mapping holds each key once: merge the two or rename one")
            return
        frame.seen[key.value] = key
        frame.node.items.append((key, value))


_SECTIONS_HELP = ("a policy file is a mapping of sections such as `policy:`, `universe:` and "
                  "`features:`")
_ANCHOR_HELP = "policy files do not use YAML anchors and aliases: write the value out in full"


def _text(source: SourceFile, span: Span) -> str:
    return source.text[span.start:span.end]


_PROPERTY_END = re.compile(r"[\s,\[\]{}]|\Z")
_BLANKS = re.compile(r"(?:\s|#[^\n]*)*")


def _scan_properties(text: str, pos: int) -> tuple[dict[str, tuple[int, int]], int]:
    """The `&anchor` and `!tag` written at `pos`, as {"&" or "!": (start, end)}, and where the
    content after them starts."""
    found: dict[str, tuple[int, int]] = {}
    while pos < len(text) and text[pos] in "&!":
        if text.startswith("!<", pos):
            close = text.find(">", pos)
            end = len(text) if close < 0 else close + 1
        else:
            end = _PROPERTY_END.search(text, pos + 1).start()
        found.setdefault(text[pos], (pos, end))
        pos = _BLANKS.match(text, end).end()
    return found, pos


def _bad_key(key: Node, diags: Diagnostics) -> None:
    help = "keys are names such as `lookback`"
    if isinstance(key, (MapNode, SeqNode)):
        what = "a mapping" if isinstance(key, MapNode) else "a list"
        diags.add("E0111", f"a mapping key must be a name, not {what}", key.span, help=help)
    elif key.raw == "":
        diags.add("E0111", "a mapping key is missing", key.span,
                  help="write a name before the `:`")
    else:
        diags.add("E0111", f"mapping key `{key.raw}` is {_kind(key.value)}, not a name",
                  key.span, help=f"{help}; quote it (`\"{key.raw}\"`) to use it as text")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


# ---------------------------------------------------------------------------------------------
# Scalars


def _make_scalar(source: SourceFile, event: yaml.ScalarEvent, start: int, end: int,
                 diags: Diagnostics) -> ScalarNode:
    style = event.style or None  # the C parser says "" for plain
    raw = source.text[start:end]
    span = source.span(start, end)
    if style is None:
        value = _resolve_plain(event.value, span, diags, traps=event.tag is None)
        offset = start if raw == event.value else None
    else:
        value = event.value
        verbatim = style in "'\"" and raw[1:-1] == event.value
        offset = start + 1 if verbatim else None
    if style is None or style in "'\"":
        _foreign_digit(source, event.value, raw, start, diags)
    return ScalarNode(span, value, raw, style, offset)


def _foreign_digit(source: SourceFile, text: str, raw: str, start: int,
                   diags: Diagnostics) -> None:
    """Report a digit of another script (`1৪%`, `２５０`) in a value that is otherwise ASCII: it
    looks like a number a reviewer can read, but is not the number they read. Text in another
    script (a description) is left alone."""
    i = foreign_digit(text)
    if i is None or not all(c.isascii() or c.isnumeric() for c in text):
        return
    at = raw.find(text[i])
    where = source.span(start + at, start + at + 1) if at >= 0 else source.span(start)
    diags.add("E0005", f"{describe_char(text[i])} is not one of the digits 0-9", where,
              label="not 0-9", help=foreign_digit_help(text))


_NULLS = {"", "~", "null", "Null", "NULL"}
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False,
          "FALSE": False}
_SPECIAL_FLOATS = {
    **{sign + inf: (-math.inf if sign == "-" else math.inf)
       for sign in ("", "+", "-") for inf in (".inf", ".Inf", ".INF")},
    **{nan: math.nan for nan in (".nan", ".NaN", ".NAN")},
}
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


def _resolve_plain(text: str, span: Span, diags: Diagnostics, traps: bool) -> object:
    """The YAML 1.2 core schema, except that YAML 1.1 traps are reported and stay text."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    trap = _trap(text) if traps else None
    if trap is not None:
        code, message, help, label = trap
        diags.add(code, message, span, help=help, label=label)
        return text
    if _INT.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # more digits than Python converts: no policy number is that long
            return text
    if _FLOAT.fullmatch(text):
        return float(text)
    return _SPECIAL_FLOATS.get(text, text)


_YAML11_BOOLS = {"yes": "true", "y": "true", "on": "true", "no": "false", "n": "false",
                 "off": "false"}
_LEADING_ZERO = re.compile(r"([-+]?)0+([0-9]+)")
_BASE60 = re.compile(r"[-+]?(?:[1-9][0-9_]*(?::[0-5]?[0-9])+"
                     r"|[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*)")


def _trap(text: str) -> tuple[str, str, str, str] | None:
    """(code, message, help, label) when a YAML 1.1 reader reads `text` as something else."""
    quote = f"quote it (`\"{text}\"`) to mean the text"
    if text.lower() in _YAML11_BOOLS:
        meant = _YAML11_BOOLS[text.lower()]
        return ("E0105", f"`{text}` is ambiguous: YAML 1.1 reads it as a boolean",
                f"write `true` or `false` for a boolean, or {quote}", f"YAML 1.1 reads `{meant}`")
    zero = _LEADING_ZERO.fullmatch(text)
    if zero:
        digits = zero.group(1) + zero.group(2)
        return ("E0110", f"`{text}` has a leading zero: {_octal(text)}",
                f"{quote}, or write `{digits}` for the number", "leading zero")
    if _BASE60.fullmatch(text):
        return ("E0106", f"`{text}` is ambiguous: YAML 1.1 reads it as the base-60 number "
                f"{_base60(text)}", quote, "YAML 1.1 reads a number")
    return None


def _octal(text: str) -> str:
    if not set(text.lstrip("+-")) <= set("01234567"):
        return "YAML 1.1 reads it as text, YAML 1.2 as a number"
    if len(text) > 20:
        return "YAML 1.1 reads it as an octal number"
    return f"YAML 1.1 reads it as the octal number {int(text, 8)}"


def _base60(text: str) -> str:
    total = Decimal(0)
    for part in text.lstrip("+-").replace("_", "").split(":"):
        total = total * 60 + Decimal(part)
    return str(-total if text.startswith("-") else total)


# ---------------------------------------------------------------------------------------------
# Syntax errors

# (what the parser says, in either parser's words; what it was in the middle of; our message; help)
_SYNTAX_RULES = (
    (r"mapping values", "", "mapping values are not allowed here",
     "a `: ` starts a key: quote the value if it contains `: `, or check the indentation"),
    (r"sequence entries", "", "a `-` list item is not allowed here",
     "start the list on a new line, indented under its key"),
    (r"mapping keys", "", "a `?` key is not allowed here", "quote the value if it starts with `?`"),
    (r"end of stream", "quoted", "the file ends inside a quoted value",
     "add the closing quote, or quote the value again from the start"),
    (r"end of stream", "", "unexpected end of the file",
     "something is left open: a quote, a `[` or a `{`"),
    (r"',' or '\]'", "", "expected `,` or `]`",
     "close the list with `]`, or separate its items with `,`"),
    (r"',' or '}'", "", "expected `,` or `}`",
     "close the mapping with `}`, or separate its entries with `,`"),
    (r"expected key|block end", "block mapping", "expected a `key: value` entry here",
     "check the indentation: the keys of one mapping start in the same column, and text after "
     "a closing quote must be inside the quotes"),
    (r"'-' indicator|block end", "block collection", "expected a `- ` list item here",
     "check the indentation: a list holds only `- ` items, all in the same column"),
    (r"node content", "", "expected a value here",
     "quote the value (`\"...\"`) if it starts with a YAML symbol such as `]`, `}` or `,`"),
    (r"expected ':'", "", "expected `:` after this key", "a key and its `:` must be on one line"),
    (r"escape|hexa?decimal", "", "invalid escape sequence in double-quoted text",
     "write `\\\\` for a backslash, or use single quotes, where `\\` is an ordinary character"),
    (r"unexpected document", "", "unexpected `---` or `...` inside a value",
     "a line that starts with `---` or `...` separates YAML documents: indent or quote it"),
    (r"document start", "", "unexpected text after the end of the document",
     "remove it, or quote the whole value if the text goes on after a closing quote"),
    (r"directive|incompatible", "", "unsupported YAML directive",
     "a line that starts with `%` is a YAML directive: remove it, or quote the value"),
    (r"", "directive", "unsupported YAML directive",
     "a line that starts with `%` is a YAML directive: remove it, or quote the value"),
    (r"", "anchor|alias", "`&` and `*` must be followed by a name",
     "`&` and `*` start YAML anchors and aliases, which policies do not use: quote the value"),
    (r"", "block scalar", "unexpected text after `|` or `>`",
     "`|` and `>` start a block of text on the following lines: move the text there, or quote "
     "the value"),
    (r"URI|tag|'>'", "", "invalid tag", "policy files do not use YAML tags: quote the value"),
    (r"", "tag", "invalid tag", "policy files do not use YAML tags: quote the value"),
    (r"comment or (a )?line break", "", "expected the end of the line",
     "remove the extra text, or quote the value"),
)

# What the parser was in the middle of, as a label at the place it started.
_CONTEXT_LABELS = (("quoted scalar", "the quoted value starts here"),
                   ("flow sequence", "the list starts here"),
                   ("flow mapping", "the mapping starts here"),
                   ("block mapping", "the mapping starts here"),
                   ("block collection", "the list starts here"),
                   ("block scalar", "the text block starts here"),
                   ("simple key", "the key starts here"))


def _syntax_error(source: SourceFile, marks: _Marks, err: yaml.MarkedYAMLError,
                  diags: Diagnostics) -> None:
    mark = err.problem_mark or err.context_mark
    at = marks.offset(mark) if mark is not None else 0
    message, help = _explain(err.problem or "", err.context or "", source.text, at)
    secondary = []
    label = next((text for key, text in _CONTEXT_LABELS if key in (err.context or "")), None)
    if label and err.context_mark is not None:
        start = marks.offset(err.context_mark)
        if start != at:
            secondary.append(Label(source.span(start), label))
    diags.add("E0101", message, source.span(at), help=help, secondary=secondary)


def _explain(problem: str, context: str, text: str, at: int) -> tuple[str, str]:
    """Our message and help line for what the parser reported at offset `at`."""
    found = text[at:at + 1]
    if found == "\t" and re.search("token|tab|indentation", problem):
        return _tab(text, at)
    if "cannot start any token" in problem:
        shown = "`` ` ``" if found == "`" else f"`{found}`" if found.strip() else "this character"
        return (f"{shown} cannot start a value", "it is reserved in YAML: quote the value "
                "(`\"...\"`) so that it reads as text")
    for pattern, where, message, help in _SYNTAX_RULES:
        if re.search(pattern, problem) and (not where or re.search(where, context)):
            return message, help
    return _clean(problem), "quote the value if it is meant as text"


def _tab(text: str, at: int) -> tuple[str, str]:
    # The pure-Python parser also refuses tabs between tokens, where libyaml accepts them.
    if text[text.rfind("\n", 0, at) + 1:at].strip():
        return "a tab is not allowed here", "replace it with spaces"
    return ("a tab cannot be used for indentation",
            "indent with spaces: YAML does not accept tabs there")


def _clean(problem: str) -> str:
    """A parser message in our style, for the few that have no rule."""
    text = re.sub(r"'([^']*)'", r"`\1`", problem).replace("<stream end>", "the end of the file")
    text = re.sub(r"\b(did|could) not find expected\b", "expected", text).strip().rstrip(".")
    return (text[:1].lower() + text[1:]) or "invalid YAML"
