"""The strict YAML reader: values, positions and every diagnostic it can give.

Every test runs with both PyYAML parsers (libyaml when it is installed, and the pure-Python one),
because the reader must give the same tree and the same positions with either.
"""
from __future__ import annotations

import doctest
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowe.dsl import yamlload
from crowe.dsl.diagnostics import Diagnostics
from crowe.dsl.source import SourceFile
from crowe.dsl.yamlload import (MAX_BYTES, MAX_DEPTH, MapNode, ScalarNode, SeqNode,
                                decode_source, load_yaml, to_plain)

PARSERS = {"python": yaml.SafeLoader}
if hasattr(yaml, "CSafeLoader"):
    PARSERS["libyaml"] = yaml.CSafeLoader


@pytest.fixture(autouse=True, params=sorted(PARSERS))
def parser(request, monkeypatch):
    monkeypatch.setattr(yamlload, "_LOADER", PARSERS[request.param])
    return request.param


def load(text: str):
    diags = Diagnostics()
    source = SourceFile("p.policy", text)
    return load_yaml(source, diags), diags, source


def found(diags: Diagnostics) -> list[tuple[str, int, int]]:
    return [(d.code, d.span.line, d.span.column) for d in diags]


def walk(root):
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, MapNode):
            stack.extend(n for pair in node.items for n in pair)
        elif isinstance(node, SeqNode):
            stack.extend(node.items)


# ---------------------------------------------------------------------------------------------
# A realistic policy

POLICY = """\
policy: cs_momentum
version: 1.0.0
owner: CR-008
universe: {symbols: from_data, bar: 1d}
params:
  lookback: {default: 252, range: [63, 504]}
  theta:    {default: 0.55, range: [0.50, 0.70]}
features:
  r1:  ret(close, 1)   # one-bar return
  mom: ret(close, lookback) - ret(close, 21)
signal:
  horizon: 5d
  mu: "0.1 * zscore(mom)"
  note: 'it''s fine'
  doc: |
    line one
    line two
  folded: >
    a
    b
risk:
  gross: 150%
  numbers: [1.5, -2., .5, 1e6, 1.5e-3, .inf, -.inf, +7, -0]
  flags: {a: true, b: False, c: null, d: ~, f: TRUE}
  empty:
"""


def test_policy_values():
    root, diags, _ = load(POLICY)
    assert list(diags) == []
    plain = to_plain(root)
    assert plain["version"] == "1.0.0" and plain["owner"] == "CR-008"
    assert plain["universe"] == {"symbols": "from_data", "bar": "1d"}
    assert plain["params"] == {"lookback": {"default": 252, "range": [63, 504]},
                               "theta": {"default": 0.55, "range": [0.5, 0.7]}}
    assert plain["features"] == {"r1": "ret(close, 1)",
                                 "mom": "ret(close, lookback) - ret(close, 21)"}
    assert plain["signal"] == {"horizon": "5d", "mu": "0.1 * zscore(mom)", "note": "it's fine",
                               "doc": "line one\nline two\n", "folded": "a b\n"}
    assert plain["risk"]["gross"] == "150%"
    assert plain["risk"]["numbers"] == [1.5, -2.0, 0.5, 1e6, 1.5e-3, math.inf, -math.inf, 7, 0]
    assert plain["risk"]["flags"] == {"a": True, "b": False, "c": None, "d": None, "f": True}
    assert plain["risk"]["empty"] is None
    assert root.keys() == ["policy", "version", "owner", "universe", "params", "features",
                           "signal", "risk"]
    assert root.get("nope") is None


def test_policy_spans():
    root, _, source = load(POLICY)

    def at(node):
        s = node.span
        return (s.line, s.column, s.end_line, s.end_column)

    key, value = root.items[0]
    assert at(key) == (1, 1, 1, 7) and at(value) == (1, 9, 1, 20)
    assert at(root.get("universe")) == (4, 11, 4, 40)  # the whole `{...}`
    params = root.get("params")
    assert at(params) == (6, 3, 7, 49)  # a block mapping: first key to last value
    assert at(params.get("lookback").get("range")) == (6, 35, 6, 44)  # `[63, 504]`
    assert at(params.get("theta").get("default")) == (7, 23, 7, 27)
    assert at(root.get("features").get("r1")) == (9, 8, 9, 21)  # the comment is left out
    signal = root.get("signal")
    mu, note, doc = signal.get("mu"), signal.get("note"), signal.get("doc")
    assert (mu.raw, mu.style, at(mu)) == ('"0.1 * zscore(mom)"', '"', (13, 7, 13, 26))
    assert (note.raw, note.style) == ("'it''s fine'", "'")
    assert doc.style == "|" and doc.raw.startswith("|\n    line one") and doc.span.line == 15
    assert signal.get("folded").style == ">"
    assert isinstance(root, MapNode) and isinstance(params.get("lookback").get("range"), SeqNode)
    for node in walk(root):
        if isinstance(node, ScalarNode):
            assert source.text[node.span.start:node.span.end] == node.raw


@pytest.mark.parametrize("text, value, offset", [
    ("k: ret(close, 1)\n", "ret(close, 1)", 3),
    ("k:   spaced out   # comment\n", "spaced out", 5),
    ('k: "a + b"\n', "a + b", 4),
    ("k: 'a + b'\n", "a + b", 4),
    ("k: [x, 'y z']\n", "y z", 8),
    ('k: "a\\tb"\n', "a\tb", None),           # escape: the value is not in the source
    ("k: 'it''s'\n", "it's", None),           # doubled quote
    ("k: a\n  b\n", "a b", None),             # folded plain scalar
    ('k: "a\n  b"\n', "a b", None),           # folded quoted scalar
    ("k: |\n  abc\n", "abc\n", None),         # block scalar
])
def test_text_offset(text, value, offset):
    root, diags, source = load(text)
    node = root.get("k")
    node = node.items[-1] if isinstance(node, SeqNode) else node
    assert list(diags) == [] and node.value == value and node.text_offset == offset
    if offset is not None:
        assert source.text[offset:offset + len(value)] == value


@pytest.mark.parametrize("text, value", [
    ("true", True), ("True", True), ("TRUE", True), ("false", False), ("FALSE", False),
    ("null", None), ("Null", None), ("NULL", None), ("~", None), ("", None),
    ("0", 0), ("-0", 0), ("42", 42), ("+42", 42), ("-17", -17),
    ("1.5", 1.5), ("-2.", -2.0), (".5", 0.5), ("1e6", 1e6), ("1.5e-3", 1.5e-3), ("0.5", 0.5),
    (".inf", math.inf), ("-.Inf", -math.inf), ("+.INF", math.inf),
    ("5%", "5%"), ("3bps", "3bps"), ("20d", "20d"), ("1.0.0", "1.0.0"),
    ("2020-01-01", "2020-01-01"), ("CR-008", "CR-008"), ("0x1F", "0x1F"), ("0o17", "0o17"),
    ("1_000", "1_000"), ("tRUE", "tRUE"), ("09:30", "09:30"), ("12:75", "12:75"),
    ("'yes'", "yes"), ('"12:30"', "12:30"), ("'017'", "017"), ("'true'", "true"),
    ("'1'", "1"), ('"null"', "null"), ("''", ""),
])
def test_core_schema(text, value):
    root, diags, _ = load(f"k: {text}\n")
    assert list(diags) == []
    assert root.get("k").value == value and type(root.get("k").value) is type(value)


def test_nan():
    root, _, _ = load("k: .nan\nj: .NaN\n")
    assert math.isnan(root.get("k").value) and math.isnan(root.get("j").value)


# ---------------------------------------------------------------------------------------------
# Bytes: E0002, E0003, E0004, BOM, CRLF


def decode(data: bytes):
    diags = Diagnostics()
    return decode_source("p.policy", data, diags), diags


def test_too_large():
    source, diags = decode(b"a: 1\n" + b"#" * MAX_BYTES)
    assert source is None and found(diags) == [("E0002", 1, 1)]
    assert "1,048,576" in diags.items[0].message and diags.items[0].help


def test_largest_allowed_file_loads():
    data = b"a: " + b"x" * (MAX_BYTES - 4) + b"\n"
    source, diags = decode(data)
    assert source is not None and list(diags) == []
    root, diags, _ = load(source.text)
    assert list(diags) == [] and len(root.get("a").value) == MAX_BYTES - 4


def test_not_utf8():
    source, diags = decode(b"a: 1\nb: caf\xe9\n")
    assert source is None and found(diags) == [("E0003", 2, 7)]
    assert diags.items[0].label == "byte `0xe9`" and "UTF-8" in diags.items[0].help


def test_not_utf8_counts_characters_not_bytes():
    _, diags = decode("x: é😀".encode() + b"\xff")
    assert found(diags) == [("E0003", 1, 6)]


def test_utf16_gets_a_hint():
    _, diags = decode("a: 1\n".encode("utf-16"))
    assert found(diags) == [("E0003", 1, 1)] and "UTF-16" in diags.items[0].help


def test_nul_byte():
    source, diags = decode(b"a: 1\nb: x\x00y\n")
    assert source is None and found(diags) == [("E0004", 2, 5)]


def test_the_first_bad_byte_wins():
    assert found(decode(b"a: \x00 \xff")[1]) == [("E0004", 1, 4)]
    assert found(decode(b"a: \xff \x00")[1]) == [("E0003", 1, 4)]


def test_bom_is_dropped():
    source, diags = decode(b"\xef\xbb\xbfa: 1\n")
    assert source.text == "a: 1\n" and list(diags) == []
    root, _, _ = load(source.text)
    assert root.items[0][0].span.column == 1


def test_crlf():
    source, diags = decode(b"a: 1\r\nb:\r\n  c: 'x y'\r\n  d: yes\r\n")
    assert "\r" not in source.text
    diags = Diagnostics()
    root = load_yaml(source, diags)
    assert to_plain(root) == {"a": 1, "b": {"c": "x y", "d": "yes"}}
    c = root.get("b").get("c")
    assert (c.span.line, c.span.column, c.text_offset) == (3, 6, source.text.index("x y"))
    assert found(diags) == [("E0105", 4, 6)]


def test_lone_cr_ends_a_line():
    source, _ = decode(b"a: 1\rb: 2\r")
    root, diags, _ = load(source.text)
    assert to_plain(root) == {"a": 1, "b": 2} and root.items[1][0].span.line == 2


def test_unicode_line_separators():
    # YAML 1.1 parsers end a line at U+2028; positions must still point at the right text
    root, diags, source = load("a: x\u2028b: 7\nc: [é, 😀, z]\n")
    assert to_plain(root) == {"a": "x", "b": 7, "c": ["é", "😀", "z"]} and list(diags) == []
    for node in walk(root):
        if isinstance(node, ScalarNode):
            assert source.text[node.span.start:node.span.end] == node.raw


# ---------------------------------------------------------------------------------------------
# E0101 syntax errors


@pytest.mark.parametrize("text, line, column, message, help", [
    ("a: b: c\n", 1, 5, "mapping values are not allowed here", "quote the value"),
    ("a:\n\tb: 1\n", 2, 1, "a tab cannot be used for indentation", "indent with spaces"),
    ("a:\n  b: 1\n\tc: 2\n", 3, 1, "a tab cannot be used for indentation", "spaces"),
    ('a: "abc\nb: 1\n', 3, 1, "the file ends inside a quoted value", "closing quote"),
    ("a: 'abc\n", 2, 1, "the file ends inside a quoted value", "closing quote"),
    ("a: [1, 2\nb: 3\n", 2, 2, "expected `,` or `]`", "close the list with `]`"),
    ("a: {x: 1\n", 2, 1, "expected `,` or `}`", "close the mapping with `}`"),
    ("a:\n  b: 1\n c: 2\n", 3, 2, "expected a `key: value` entry here", "indentation"),
    ("a: 1\n- b\n", 2, 1, "expected a `key: value` entry here", "indentation"),
    ("a:\n  - b\n  c: 1\n", 3, 3, "expected a `- ` list item here", "indentation"),
    ("a: @x\n", 1, 4, "`@` cannot start a value", "quote the value"),
    ("a: `x`\n", 1, 4, "`` ` `` cannot start a value", "quote the value"),
    ("a: ]\n", 1, 4, "expected a value here", "quote the value"),
    ("a: *\n", 1, 5, "`&` and `*` must be followed by a name", "quote the value"),
    ("a: |x\n", 1, 5, "unexpected text after `|` or `>`", "following lines"),
    ("a: !<x 1\n", 1, 7, "invalid tag", "tags"),
    ("a: 1\n...\nb: 2\n", 3, 1, "unexpected text after the end of the document", "remove"),
    ("a: \x01\n", 1, 4, "character U+0001 is not allowed in a policy file", "remove it"),
    ("a: x\ufeff\n", 1, 5, "character U+FEFF is not allowed in a policy file", "remove it"),
])
def test_syntax_errors(text, line, column, message, help):
    root, diags, _ = load(text)
    assert root is None and found(diags) == [("E0101", line, column)]
    assert diags.items[0].message == message and help in diags.items[0].help


def test_unclosed_quote_points_back_at_the_opening_quote():
    _, diags, _ = load('a: 1\nb: "abc\nc: 2\n')
    (label,) = diags.items[0].secondary
    assert (label.span.line, label.span.column, label.message) == (
        2, 4, "the quoted value starts here")


def test_unclosed_list_points_back_at_the_bracket():
    _, diags, _ = load("a: [1, 2\nb: 3\n")
    (label,) = diags.items[0].secondary
    assert (label.span.line, label.span.column, label.message) == (1, 4, "the list starts here")


def test_nul_in_text_is_e0004():
    root, diags, _ = load("a: 1\nb: \x00\n")
    assert root is None and found(diags) == [("E0004", 2, 4)]


def test_text_over_the_limit():
    root, diags, _ = load("a: " + "é" * (MAX_BYTES // 2))
    assert root is None and found(diags) == [("E0002", 1, 1)]


# ---------------------------------------------------------------------------------------------
# E0102 .. E0111


def test_duplicate_key():
    root, diags, _ = load("a: 1\nb: 2\na: 3\n")
    assert found(diags) == [("E0102", 3, 1)]
    (first,) = diags.items[0].secondary
    assert (first.span.line, first.span.column, first.message) == (1, 1, "first defined here")
    assert diags.items[0].message == "duplicate key `a`"
    assert root.keys() == ["a", "b"] and root.get("a").value == 1 and to_plain(root)["a"] == 1


def test_duplicate_keys_in_flow_and_nested_mappings():
    root, diags, _ = load("p:\n  q: {x: 1, 'x': 2}\n  q: 3\n")
    assert found(diags) == [("E0102", 2, 13), ("E0102", 3, 3)]
    assert to_plain(root) == {"p": {"q": {"x": 1}}}


def test_same_key_in_different_mappings_is_fine():
    root, diags, _ = load("a: {x: 1}\nb: {x: 2}\n")
    assert list(diags) == []


def test_anchor_and_alias():
    root, diags, _ = load("a: &base 1\nb: *base\nc: &m {x: 1}\n")
    assert found(diags) == [("E0103", 1, 4), ("E0103", 2, 4), ("E0103", 3, 4)]
    assert [d.message for d in diags] == ["anchor `&base` is not allowed",
                                          "alias `*base` is not allowed",
                                          "anchor `&m` is not allowed"]
    assert (diags.items[0].span.end_column, diags.items[1].span.end_column) == (9, 9)
    a, b, c = root.get("a"), root.get("b"), root.get("c")
    assert (a.value, a.raw, a.span.column) == (1, "1", 10)   # the node starts after its anchor
    assert (b.value, b.raw) == (None, "*base") and c.span.column == 7


def test_alias_as_key_is_reported_once():
    root, diags, _ = load("*x : 1\nz: 2\n")
    assert found(diags) == [("E0103", 1, 1)] and to_plain(root) == {"z": 2}


@pytest.mark.parametrize("text, column, tag", [
    ("a: !!str 5\n", 4, "!!str"),
    ("a: !foo x\n", 4, "!foo"),
    ("a: ! x\n", 4, "!"),
    ("a: !<tag:x> x\n", 4, "!<tag:x>"),
    ("a: !!map {b: 1}\n", 4, "!!map"),
    ("a: [!!int 3]\n", 5, "!!int"),
    ("a: &n !!str x\n", 7, "!!str"),
])
def test_tags(text, column, tag):
    root, diags, _ = load(text)
    tags = [d for d in diags if d.code == "E0104"]
    assert [(d.span.line, d.span.column) for d in tags] == [(1, column)]
    assert tags[0].message == f"tag `{tag}` is not allowed"
    assert tags[0].span.end_column == column + len(tag)


def test_tagged_nodes_start_at_their_content():
    root, _, _ = load("a: !foo x\nb: !!map {c: 1}\n")
    assert (root.get("a").raw, root.get("a").span.column) == ("x", 9)
    assert root.get("b").span.column == 10


@pytest.mark.parametrize("word, meant", [
    ("yes", "true"), ("Yes", "true"), ("YES", "true"), ("yEs", "true"), ("no", "false"),
    ("No", "false"), ("on", "true"), ("On", "true"), ("ON", "true"), ("off", "false"),
    ("OFF", "false"), ("y", "true"), ("Y", "true"), ("n", "false"), ("N", "false"),
])
def test_boolean_trap(word, meant):
    root, diags, _ = load(f"flag: {word}\n")
    assert found(diags) == [("E0105", 1, 7)]
    d = diags.items[0]
    assert d.message == f"`{word}` is ambiguous: YAML 1.1 reads it as a boolean"
    assert f'(`"{word}"`)' in d.help and "`true`" in d.help and meant in d.label
    assert root.get("flag").value == word


def test_boolean_trap_on_a_key():
    root, diags, _ = load("on: 1\nsizing:\n  Off: 2\n")
    assert found(diags) == [("E0105", 1, 1), ("E0105", 3, 3)]
    assert root.keys() == ["on", "sizing"] and root.get("sizing").keys() == ["Off"]


@pytest.mark.parametrize("text, number", [
    ("12:30", "750"), ("1:20:00", "4800"), ("190:20:30.15", "685230.15"), ("-1:30", "-90"),
    ("1_0:00", "600"),
])
def test_base60_trap(text, number):
    root, diags, _ = load(f"at: {text}\n")
    assert found(diags) == [("E0106", 1, 5)]
    assert diags.items[0].message.endswith(f"base-60 number {number}")
    assert f'quote it (`"{text}"`)' in diags.items[0].help
    assert root.get("at").value == text


def test_nesting_at_the_limit():
    depth = MAX_DEPTH - 1  # the top-level mapping is the first level
    root, diags, _ = load("a: " + "[" * depth + "]" * depth + "\n")
    assert list(diags) == []
    node = root.get("a")
    for _ in range(depth - 1):
        node = node.items[0]
    assert node.items == [] and to_plain(root)["a"] == to_plain(root.get("a"))


@pytest.mark.parametrize("text, line, column", [
    ("a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH, 1, 4 + MAX_DEPTH - 1),
    ("a: " + "{b: " * MAX_DEPTH + "1" + "}" * MAX_DEPTH, 1, 4 + 4 * (MAX_DEPTH - 1)),
    ("a:\n" + "- " * MAX_DEPTH + "x\n", 2, 2 * MAX_DEPTH - 1),
    # far past libyaml's own limit of 1000 levels, which it reaches before giving any event
    ("a: " + "[" * 100_000, 1, 4 + MAX_DEPTH - 1),
    ("a: " + "[" * 2_000 + "]" * 2_000, 1, 4 + MAX_DEPTH - 1),
])
def test_nesting_past_the_limit(text, line, column):
    root, diags, _ = load(text)
    assert root is None and found(diags) == [("E0107", line, column)]
    assert diags.items[0].message == "nesting is deeper than 32 levels"


def test_nesting_past_both_limits_reports_each_problem_once():
    root, diags, _ = load("policy: p\nb: 017\nc: " + "[" * 1_500)
    assert root is None and found(diags) == [("E0110", 2, 4), ("E0107", 3, 4 + MAX_DEPTH - 1)]


@pytest.mark.parametrize("text", [
    "a: " + "[" * 100_000,
    "a: " + "[" * 100_000 + "]" * 100_000,
    "a: " + "{a: " * 100_000,
    "- " * 100_000 + "x\n",
    "? " * 100_000 + "x\n",
])
def test_deep_nesting_stops_early(text, monkeypatch):
    """Reading stops at the first level past the limit: the events read are counted, not
    timed (a parser that read on would take 100,000 levels' worth)."""
    read = []
    parse = yamlload.yaml.parse

    def counted(*args, **kwargs):
        for event in parse(*args, **kwargs):
            read.append(event)
            yield event
    monkeypatch.setattr(yamlload.yaml, "parse", counted)
    root, diags, _ = load(text)
    assert root is None and [d.code for d in diags] == ["E0107"]
    assert len(read) <= 2 * (2 * MAX_DEPTH + 4)     # at most two parsers, each to the limit


@pytest.mark.parametrize("text, message", [
    ("", "the document is empty"),
    ("# only a comment\n", "the document is empty"),
    ("---\n", "the document is empty"),
    ("- a\n- b\n", "the top level is a list, not a mapping of sections"),
    ("just text\n", "the top level is a single value, not a mapping of sections"),
    ("~\n", "the top level is a single value, not a mapping of sections"),
])
def test_not_a_mapping(text, message):
    root, diags, _ = load(text)
    assert root is None and found(diags) == [("E0108", 1, 1)]
    assert diags.items[0].message == message and "`policy:`" in diags.items[0].help


def test_more_than_one_document():
    root, diags, _ = load("a: 1\n---\nb: 2\n")
    assert found(diags) == [("E0109", 2, 1)] and diags.items[0].span.end_column == 4
    assert to_plain(root) == {"a": 1}


@pytest.mark.parametrize("text, message, fix", [
    ("017", "`017` has a leading zero: YAML 1.1 reads it as the octal number 15", "17"),
    ("-007", "`-007` has a leading zero: YAML 1.1 reads it as the octal number -7", "-7"),
    ("00", "`00` has a leading zero: YAML 1.1 reads it as the octal number 0", "0"),
    ("019", "`019` has a leading zero: YAML 1.1 reads it as text, YAML 1.2 as a number", "19"),
])
def test_leading_zero(text, message, fix):
    root, diags, _ = load(f"n_days: {text}\n")
    assert found(diags) == [("E0110", 1, 9)] and diags.items[0].message == message
    assert diags.items[0].help == f'quote it (`"{text}"`) to mean the text, or write `{fix}` ' \
                                  "for the number"
    assert root.get("n_days").value == text


@pytest.mark.parametrize("text, line, column, message", [
    ("1: x\n", 1, 1, "mapping key `1` is a number, not a name"),
    ("1.5: x\n", 1, 1, "mapping key `1.5` is a number, not a name"),
    ("null: x\n", 1, 1, "mapping key `null` is null, not a name"),
    ("~: x\n", 1, 1, "mapping key `~` is null, not a name"),
    ("true: x\n", 1, 1, "mapping key `true` is a boolean, not a name"),
    ("[a]: x\n", 1, 1, "a mapping key must be a name, not a list"),
    ("{a: 1}: x\n", 1, 1, "a mapping key must be a name, not a mapping"),
    ("? [a, b]\n: x\n", 1, 3, "a mapping key must be a name, not a list"),
    ("s:\n  ? \n  : x\n", 2, 4, "a mapping key is missing"),
    ("s:\n  params: {3: x}\n", 2, 12, "mapping key `3` is a number, not a name"),
])
def test_bad_keys(text, line, column, message):
    root, diags, _ = load(text + "ok: 1\n")
    assert found(diags) == [("E0111", line, column)] and diags.items[0].message == message
    assert "ok" in root.keys()


def test_quoted_keys_are_names():
    root, diags, _ = load("'1': x\n\"null\": z\n")
    assert list(diags) == [] and root.keys() == ["1", "null"]


def test_every_problem_is_reported_at_once():
    text = "a: yes\nb: 12:30\nc: 017\nd: &x 1\ne: !!str 2\n3: f\na: 4\n"
    root, diags, _ = load(text)
    assert found(diags) == [("E0105", 1, 4), ("E0106", 2, 4), ("E0110", 3, 4), ("E0103", 4, 4),
                            ("E0104", 5, 4), ("E0111", 6, 1), ("E0102", 7, 1)]
    assert root.keys() == ["a", "b", "c", "d", "e"]


BAD_DOCUMENTS = [
    "a: b: c\n", "a:\n\tb: 1\n", 'a: "x\n', "a: [1\n", "a: {b\n", "a: @\n", "a: |x\n",
    "a: yes\n", "a: 1:30\n", "a: 08\n", "a: &x 1\nb: *x\n", "a: !t 1\n", "1: a\n", "a: 1\na: 2\n",
    "", "- a\n", "a: 1\n---\nb: 1\n", "a: " + "[" * 40, "a: \x07\n",
    "a: '\\q'\nb: \"\\q\"\n", "a: ]\n", "a:\n  - b\n  c: 1\n",
]


@pytest.mark.parametrize("text", BAD_DOCUMENTS)
def test_messages_follow_the_style(text):
    _, diags, _ = load(text)
    assert len(diags) > 0
    for d in diags:
        assert d.message[:1].islower() or d.message[:1] == "`", d.message
        assert not d.message.endswith(".") and d.help and not d.help.endswith(".")
        assert not any(word in d.message for word in ("Error", "Event", "Node", "<", "'"))


# ---------------------------------------------------------------------------------------------
# Sizes, random input, and the module's own example


def test_a_large_policy_loads(parser):
    entries = 10_000 if parser == "libyaml" else 2_000  # the pure-Python parser is slow
    text = "".join(f"k{i}: {{default: {i}, range: [1, 2]}}\n" for i in range(entries))
    root, diags, _ = load(text)
    assert list(diags) == [] and len(root.items) == entries
    assert root.items[-1][1].get("default").span.line == entries


def test_to_plain_of_a_scalar():
    assert to_plain(ScalarNode(SourceFile("f", "x").span(0, 1), "x", "x")) == "x"


def check_invariants(data: bytes) -> None:
    """Only diagnostics come out, and every node's span and text agree with the source."""
    diags = Diagnostics()
    source = decode_source("p.policy", data, diags)
    root = load_yaml(source, diags) if source is not None else None
    assert all(d.code.startswith("E") for d in diags)
    if root is None:
        assert diags.has_errors
        return
    to_plain(root)
    for node in walk(root):
        assert 0 <= node.span.start <= node.span.end <= len(source.text)
        if isinstance(node, ScalarNode):
            assert source.text[node.span.start:node.span.end] == node.raw
            if node.text_offset is not None:
                shown = node.value if isinstance(node.value, str) else node.raw
                assert source.text[node.text_offset:][:len(shown)] == shown


@settings(max_examples=150, deadline=500,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_any_bytes_give_only_diagnostics(data):
    check_invariants(data)


YAMLISH = st.lists(st.sampled_from(list("ab1 :-?[]{},'\"!&*#|>%@`\t\n\\.")
                                   + ["\n  ", "\r\n", "x: ", "- ", "yes", "12:30", "017", "é",
                                      "\u2028", "---", "null", "1.5", '"\\t"']),
                   max_size=40).map("".join)


@settings(max_examples=300, deadline=500,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(YAMLISH)
def test_yaml_like_text_keeps_the_invariants(text):
    check_invariants(text.encode())


def test_module_example():
    assert doctest.testmod(yamlload).failed == 0
