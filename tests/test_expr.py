"""Expression parsing and formatting: ASTs, spans, precedence, diagnostics, round trips, abuse."""
from __future__ import annotations

import doctest
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crowe.dsl import expr as expr_module
from crowe.dsl.ast import (Binary, Bool, BoolOp, Call, Compare, IfElse, Keyword, Name, Number,
                           Unary, walk)
from crowe.dsl.diagnostics import Diagnostics
from crowe.dsl.expr import (DURATION_SUFFIXES, KEYWORDS, MAX_DEPTH, MAX_LENGTH, UNIT_SUFFIXES,
                            format_expr, parse_expr, span_in)
from crowe.dsl.source import SourceFile


def parse(text: str, prefix: str = ""):
    """Parse `text` as if it followed `prefix` on the first line of a file."""
    source = SourceFile("t.policy", prefix + text)
    diags = Diagnostics()
    return parse_expr(text, span_in(source, len(prefix)), diags), diags.items


def ok(text: str):
    e, diags = parse(text)
    assert diags == [] and e is not None, [d.message for d in diags]
    return e


def only(text: str, prefix: str = ""):
    e, diags = parse(text, prefix)
    assert e is None and len(diags) == 1, [d.message for d in diags]
    return diags[0]


n, x, y, z = Name, Name("x"), Name("y"), Name("z")


# ---------------------------------------------------------------------------------------------
# constructs

@pytest.mark.parametrize("text, expected", [
    ("12", Number("12")),
    ("1.5", Number("1.5")),
    (".5", Number(".5")),
    ("1e6", Number("1e6")),
    ("1.5e-3", Number("1.5e-3")),
    ("3bps", Number("3", "bps")),
    ("2%", Number("2", "%")),
    ("20d", Number("20", "d")),
    ("30m", Number("30", "m")),
    ("1h", Number("1", "h")),
    ("1.5e-3bps", Number("1.5e-3", "bps")),
    ("true", Bool(True)),
    ("false", Bool(False)),
    ("close_2", n("close_2")),
    ("_x", n("_x")),
    ("iffy", n("iffy")),
    ("-x", Unary("-", x)),
    ("+x", Unary("+", x)),
    ("not x", Unary("not", x)),
    ("x ^ y", Binary("^", x, y)),
    ("x <= y", Compare("<=", x, y)),
    ("x != y", Compare("!=", x, y)),
    ("x or y", BoolOp("or", x, y)),
    ("f()", Call("f")),
    ("f(x, y,)", Call("f", (x, y))),
    ("f(x, k=y)", Call("f", (x,), (Keyword("k", y),))),
    ("f(k=if x then y else z)", Call("f", (), (Keyword("k", IfElse(x, y, z)),))),
    ("ret(close, lookback) - ret(close, 21)",
     Binary("-", Call("ret", (n("close"), n("lookback"))),
            Call("ret", (n("close"), Number("21"))))),
    ("prob_edge > theta and sigma < 3%",
     BoolOp("and", Compare(">", n("prob_edge"), n("theta")),
            Compare("<", n("sigma"), Number("3", "%")))),
    ("if vol > 2% then 0.5 else 1",
     IfElse(Compare(">", n("vol"), Number("2", "%")), Number("0.5"), Number("1"))),
    ("mean(close * volume, 20) > 5e6",
     Compare(">", Call("mean", (Binary("*", n("close"), n("volume")), Number("20"))),
             Number("5e6"))),
    ("reduce(50%)", Call("reduce", (Number("50", "%"),))),
    ("  x\n  + y ", Binary("+", x, y)),
    ("1e400", Number("1e400")),
])
def test_constructs(text, expected):
    assert ok(text) == expected


def test_spans_point_into_the_file():
    e, _ = parse("ret(clsoe, 1)", prefix="  r1: ")
    assert (e.span.column, e.span.end_column) == (7, 20)
    assert (e.func_span.column, e.func_span.end_column) == (7, 10)
    assert (e.args[0].span.column, e.args[0].span.end_column) == (11, 16)
    assert e.args[1].span.start == 17


def test_spans_cover_whole_text_including_parentheses():
    text = "(a + b) * f(x, k=-y)"
    e = ok(text)
    cut = lambda span: text[span.start:span.end]  # noqa: E731
    assert cut(e.span) == text
    assert cut(e.left.span) == "a + b"
    assert cut(e.right.span) == "f(x, k=-y)"
    assert cut(e.right.func_span) == "f"
    assert cut(e.right.kwargs[0].span) == "k"
    assert cut(e.right.kwargs[0].value.span) == "-y"


def test_span_of_if_and_suffix_number():
    text = "if a then 3bps else b or c"
    e = ok(text)
    assert text[e.then.span.start:e.then.span.end] == "3bps"
    assert text[e.orelse.span.start:e.orelse.span.end] == "b or c"


# ---------------------------------------------------------------------------------------------
# precedence: each text parses like its fully parenthesised reading

@pytest.mark.parametrize("text, reading", [
    ("a or b and c", "a or (b and c)"),
    ("a and b or c", "(a and b) or c"),
    ("a or b or c", "(a or b) or c"),
    ("not a and b", "(not a) and b"),
    ("not a < b", "not (a < b)"),
    ("not not a", "not (not a)"),
    ("a < b + c", "a < (b + c)"),
    ("a == b and c != d", "(a == b) and (c != d)"),
    ("a + b * c", "a + (b * c)"),
    ("a - b - c", "(a - b) - c"),
    ("a / b / c", "(a / b) / c"),
    ("a * b / c", "(a * b) / c"),
    ("-a * b", "(-a) * b"),
    ("a * -b", "a * (-b)"),
    ("-x^2", "-(x^2)"),
    ("a^b^c", "a^(b^c)"),
    ("2^-1", "2^(-1)"),
    ("2^-x^2", "2^(-(x^2))"),
    ("- - x", "-(-x)"),
    ("-----x", "-(-(-(-(-x))))"),
    ("f(a)^2", "(f(a))^2"),
    ("if a then b else c or d", "if a then b else (c or d)"),
    ("if a then b else if c then d else e", "if a then b else (if c then d else e)"),
    ("if a or b then c + 1 else d", "if (a or b) then (c + 1) else d"),
])
def test_precedence(text, reading):
    assert ok(text) == ok(reading)


@pytest.mark.parametrize("text, canonical", [
    ("((a + b)) * (c)", "(a + b) * c"),
    ("a + (b + c)", "a + (b + c)"),
    ("(a + b) + c", "a + b + c"),
    ("(-x)^2", "(-x)^2"),
    ("-(x^2)", "-x^2"),
    ("a^(b^c)", "a^b^c"),
    ("(a^b)^c", "(a^b)^c"),
    ("(a < b) < c", "(a < b) < c"),
    ("not (a and b)", "not (a and b)"),
    ("(not a) < b", "(not a) < b"),
    ("(if a then b else c) + 1", "(if a then b else c) + 1"),
    ("f( x ,k = 2% , )", "f(x, k=2%)"),
])
def test_format_is_minimal_and_canonical(text, canonical):
    assert format_expr(ok(text)) == canonical


# ---------------------------------------------------------------------------------------------
# diagnostics: code, position (column in `t.policy`, expression at column 4) and wording

PREFIX = "x: "


@pytest.mark.parametrize("text, code, column, message", [
    ("a +", "E0201", 7, "expected an expression after `+`"),
    ("(a + )", "E0201", 9, "unexpected `)`"),
    ("a b", "E0201", 6, "unexpected name `b`"),
    ("if a then b", "E0201", 15, "unexpected end of expression"),
    ("a && b", "E0201", 6, "unexpected character `&`"),
    ("a = b", "E0201", 6, "unexpected `=`"),
    ("a + not b", "E0201", 8, "unexpected keyword `not`"),
    ("x\u00a0+ 1", "E0201", 5, "unexpected character `\\xa0`"),
    ("3bp", "E0202", 5, "unknown unit suffix `bp`"),
    ("1 + 5days", "E0202", 9, "unknown unit suffix `days`"),
    ("-" * MAX_DEPTH + "x", "E0203", 4,
     f"expression nested too deeply (more than {MAX_DEPTH} levels)"),
    ("a" * (MAX_LENGTH + 1), "E0204", 4,
     f"expression is too long ({MAX_LENGTH + 1} characters, at most {MAX_LENGTH})"),
    ("", "E0205", 4, "empty expression"),
    (" \n ", "E0205", 4, "empty expression"),
    ("0 < x < 1", "E0206", 10, "comparisons cannot be chained"),
    ("mean(close * volume, 20 > 5e6", "E0207", 8, "unclosed `(`"),
    ("a + b)", "E0207", 9, "unmatched `)`"),
    ("ret(close, and)", "E0208", 15, "`and` is a reserved keyword and cannot be used as a name"),
    ("f(if=1)", "E0208", 6, "`if` is a reserved keyword and cannot be used as a name"),
    ("true(1)", "E0208", 4, "`true` is a reserved keyword and cannot be used as a name"),
    ("f(k=1, x)", "E0208", 11, "positional argument after a keyword argument"),
])
def test_diagnostic(text, code, column, message):
    d = only(text, PREFIX)
    assert (d.code, d.span.column, d.message) == (code, column, message)


@pytest.mark.parametrize("text, help_", [
    ("a +", "write a number, a name, a call or a parenthesised expression"),
    ("a b", "expected an operator, `(` or end of expression"),
    ("f(x y)", "expected an operator, `,`, `=` or `(`"),
    ("if a then b", "expected `else`"),
    ("a = b", "to compare, write `==`"),
    ("a ** 2", "for powers, write `^`"),
    ("3bp", "did you mean `bps`?"),
    ("5days", "did you mean `d`?"),
    ("5D", "did you mean `d`?"),
    ("a < b < c", "write `a < b and b < c`"),
    ("0 < f(x) <= 1 < y", "write `0 < f(x) and f(x) <= 1 and 1 < y`"),
])
def test_help_lines(text, help_):
    assert only(text).help == help_


def test_unclosed_paren_points_at_the_opening_and_the_end():
    d = only("ret(close, 1  ", PREFIX)
    assert (d.code, d.span.column, d.label) == ("E0207", 7, "never closed")
    (end,) = d.secondary
    assert (end.span.column, end.message) == (16, "expression ends here")


def test_innermost_unclosed_paren_is_reported():
    assert only("f(g(x", PREFIX).span.column == 7


def test_chained_comparison_marks_both_operators():
    d = only("a < b >= c", PREFIX)
    assert d.span.column == 10 and d.secondary[0].span.column == 6


def test_positional_after_keyword_marks_the_keyword():
    d = only("f(k=1, x)", PREFIX)
    assert d.secondary[0].span.column == 6 and d.secondary[0].message == "first keyword argument"


def test_depth_limit_is_inclusive_and_reported_at_the_innermost_node():
    assert ok("-" * (MAX_DEPTH - 1) + "x") is not None
    d = only("f(" + "-" * MAX_DEPTH + "x)", PREFIX)
    assert d.code == "E0203" and (d.span.column, d.span.end_column) == (6, 6 + MAX_DEPTH + 1)


def test_parentheses_do_not_count_as_depth():
    depth = (MAX_LENGTH - 1) // 2
    assert ok("(" * depth + "x" + ")" * depth) == x


def left_chain(ops: list[str], leaf: str = "a") -> Binary | BoolOp:
    """`a op a op a ...` as the parser builds it: left-associative."""
    e = Name(leaf)
    for op in ops:
        e = (BoolOp if op in ("and", "or") else Binary)(op, e, Name(leaf))
    return e


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "and", "or"])
def test_a_flat_chain_is_one_level_however_long(op):
    terms = 500
    assert ok(f" {op} ".join(["a"] * terms)) == left_chain([op] * (terms - 1))


def test_a_flat_chain_of_mixed_operators_of_one_precedence_is_flat():
    ops = ["+", "-"] * 300
    text = "a" + "".join(f" {o} a" for o in ops)
    assert ok(text) == left_chain(ops)


def test_a_flat_sum_of_products_and_calls_is_flat():
    e = ok("+".join(["w*f(x,2)/3"] * 300))
    assert sum(isinstance(node, Call) for node in walk(e)) == 300


def test_the_longest_flat_sum_that_fits_parses_without_recursion():
    terms = (MAX_LENGTH + 1) // 2
    text = "+".join(["a"] * terms)
    assert len(text) <= MAX_LENGTH
    e = ok(text)
    assert e == left_chain(["+"] * (terms - 1)) and hash(e) == hash(ok(text))
    assert format_expr(e) == " + ".join(["a"] * terms)
    assert only("+".join(["a"] * (terms + 1))).code == "E0204"


@pytest.mark.parametrize("make", [
    lambda k: "a + (" * k + "a" + ")" * k,      # each sum nested on the right of the last one
    lambda k: "(a + " * k + "a" + ")" * k,
    lambda k: "a * (" * k + "a" + ")" * k,
    lambda k: "a - (" * k + "a" + ")" * k,
    lambda k: "(a * " * k + "a" + ")" * k,
    lambda k: "f(" * k + "a" + ")" * k,         # calls
    lambda k: "-" * k + "a",                    # a unary chain
    lambda k: "not " * k + "a",
    lambda k: "2^" * k + "2",                   # right-associative: it nests
])
def test_real_nesting_is_still_limited(make):
    assert ok(make(MAX_DEPTH - 1)) is not None
    d = only(make(MAX_DEPTH + 1))
    assert d.code == "E0203"
    assert d.message == f"expression nested too deeply (more than {MAX_DEPTH} levels)"


def test_parentheses_around_the_left_of_a_chain_keep_it_flat():
    # `((a + a) + a) + a` is the same tree as `a + a + a + a`
    k = 4 * MAX_DEPTH
    assert ok("(" * k + "a" + " + a)" * k) == left_chain(["+"] * k)


def test_chains_inside_nesting_count_one_level_each():
    # every level is a long flat sum whose last term nests the next level
    k = MAX_DEPTH - 1
    assert ok("a + a + a + (" * k + "a" + ")" * k) is not None
    assert only("a + a + a + (" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1)).code == "E0203"


def test_length_limit_is_inclusive():
    assert ok("a" * MAX_LENGTH) == Name("a" * MAX_LENGTH)


def test_every_suffix_error_is_reported():
    e, diags = parse("1bp + 2days")
    assert e is None and [d.code for d in diags] == ["E0202", "E0202"]


def test_module_doctest():
    assert doctest.testmod(expr_module).failed == 0


# ---------------------------------------------------------------------------------------------
# properties

NUMBER_TEXT = r"(?:[0-9]{1,4}(?:\.[0-9]{0,3})?|\.[0-9]{1,3})(?:[eE][+-]?[0-9]{1,3})?"
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True).filter(
    lambda s: s not in KEYWORDS)
LEAVES = st.one_of(
    st.builds(Number, st.from_regex(NUMBER_TEXT, fullmatch=True),
              st.sampled_from((None,) + UNIT_SUFFIXES + DURATION_SUFFIXES)),
    st.builds(Bool, st.booleans()),
    st.builds(Name, NAMES),
)


def _extend(kids):
    return st.one_of(
        st.builds(Unary, st.sampled_from(["-", "+", "not"]), kids),
        st.builds(Binary, st.sampled_from(["+", "-", "*", "/", "^"]), kids, kids),
        st.builds(Compare, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), kids, kids),
        st.builds(BoolOp, st.sampled_from(["and", "or"]), kids, kids),
        st.builds(IfElse, kids, kids, kids),
        st.builds(Call, NAMES, st.lists(kids, max_size=3).map(tuple),
                  st.lists(st.builds(Keyword, NAMES, kids), max_size=2).map(tuple)),
    )


ASTS = st.recursive(LEAVES, _extend, max_leaves=25)


@settings(max_examples=300)
@given(ASTS)
def test_format_then_parse_is_identity(tree):
    text = format_expr(tree)
    assert ok(text) == tree


@settings(max_examples=60)
@given(ASTS)
def test_every_span_reparses_to_its_node(tree):
    text = format_expr(tree)
    for node in walk(ok(text)):
        assert ok(text[node.span.start:node.span.end]) == node


PIECES = ["a", "x1", "f", "(", ")", ",", "=", "+", "-", "*", "/", "^", "<", "<=", "==", "!=",
          ">", "!", "%", "3", ".5", "1e400", "2e", "bps", "d", "if", "then", "else", "and", "or",
          "not", "true", "false", " ", "\n", "\u00e9", "\u2212", "\x00", "[", "&"]
TEXTS = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
    st.text(alphabet="ab1.e%()+-*/^<>=!, ", max_size=60),
    st.text(max_size=40),
)


def assert_robust(text: str) -> None:
    """An AST and no diagnostic, or diagnostics in the house style and no AST."""
    e, diags = parse(text)
    assert (e is None) == bool(diags)
    if e is not None and len(format_expr(e)) <= MAX_LENGTH:  # spaces may make it too long
        assert ok(format_expr(e)) == e
    for d in diags:
        assert re.fullmatch(r"E020[1-8]|E0005", d.code)  # E0005: a digit such as `６`
        assert_house_style(d.message)
        assert_house_style(d.help or "x")


def assert_house_style(line: str) -> None:
    prose = re.sub(r"`[^`]*`", "", line)
    assert not line.endswith(".") and not prose[:1].isupper(), line
    assert not re.search(r"[A-Z_$]{3,}|__ANON|Token|Tree", prose), line


@settings(max_examples=400)
@given(TEXTS)
def test_random_text_never_raises(text):
    assert_robust(text)


@st.composite
def near_misses(draw):
    """A valid expression with a few characters deleted, inserted or repeated."""
    text = format_expr(draw(ASTS))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["delete", "insert", "repeat"]))
        if edit == "delete":
            text = text[:i] + text[i + 1:]
        elif edit == "insert":
            text = text[:i] + draw(st.sampled_from(PIECES)) + text[i:]
        else:
            text = text[:i] + text[i:i + 3] + text[i:]
    return text


@settings(max_examples=200)
@given(near_misses())
def test_near_misses_never_raise(text):
    assert_robust(text)


@pytest.mark.parametrize("text", [
    "(" * 5000,
    ")" * 5000,
    "(" * 1999 + "x" + ")" * 1999,
    "(" * 1999 + "x" + ")" * 1998,
    "-" * (MAX_LENGTH - 1) + "x",
    "not " * 999 + "x",
    "2^" * 1999 + "2",
    "f(" * 1333 + ")" * 1333,
    "f(" * 1000 + "x" + ")" * 1000,
    "+".join(["a"] * 10_000),
    "+".join(["a"] * 2000),
    "1e400 * 1e-400",
    "9" * MAX_LENGTH,
    "if " * 1000,
    "a < " * 1000 + "a",
    "\U0001F600 + \u202e",
])
def test_pathological_text(text):
    assert_robust(text)


def test_format_does_not_recurse():
    deep = Name("x")
    for _ in range(20_000):
        deep = Unary("-", Binary("^", deep, Number("2")))
    assert format_expr(deep).startswith("-(" * 3)
