"""Expression strings of a policy: text -> AST (`parse_expr`) and AST -> text (`format_expr`).

    >>> from crowe.dsl.diagnostics import Diagnostics
    >>> from crowe.dsl.source import SourceFile
    >>> src = SourceFile("p.policy", "mom: ret(close, lookback) - ret(close, 21)")
    >>> e = parse_expr(src.text[5:], span_in(src, 5), Diagnostics())
    >>> format_expr(e)
    'ret(close, lookback) - ret(close, 21)'
    >>> e.left.func_span.column
    6

The grammar is `grammar.lark` (LALR). Lark builds its tree without recursion but its Transformer
recurses, so the tree is turned into the AST with an explicit stack, and the AST's nesting is
bounded (`MAX_DEPTH`) before any consumer (the checker, lowering) sees it. Nesting counts
parentheses around operators, calls, unary and `^` chains; a flat left-associative chain such
as `a + b + ... + z` is one level however long it is (`MAX_LENGTH` bounds its length).
"""
from __future__ import annotations

import re
import sys
from importlib import resources
from typing import Callable, Iterator

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from .ast import Bool, BoolOp, Call, Compare, Expr, IfElse, Keyword, Name, Number, Unary
from .ast import Binary, children
from .diagnostics import Diagnostics, Label, did_you_mean
from .quantity import describe_char, foreign_digit_help
from .source import SourceFile, Span

MAX_LENGTH = 4000
MAX_DEPTH = 48
UNIT_SUFFIXES = ("%", "bps")
DURATION_SUFFIXES = ("s", "m", "h", "d", "w")
KEYWORDS = ("if", "then", "else", "and", "or", "not", "true", "false")

Spanner = Callable[[int, int], Span]

# A flat chain is one level of nesting but its AST is as deep as the chain is long: up to about
# MAX_LENGTH / 2 nodes (`a+a+...`), which the checker and the lowering walk recursively, a few
# Python frames a node. Python 3.11 calls Python functions without growing the C stack, so the
# room they need is only a higher frame limit.
_FRAMES_NEEDED = 10 * MAX_LENGTH
if sys.getrecursionlimit() < _FRAMES_NEEDED:
    sys.setrecursionlimit(_FRAMES_NEEDED)

_LARK = Lark(resources.files(__package__).joinpath("grammar.lark").read_text("utf-8"),
             parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=False)


def span_in(source: SourceFile, offset: int) -> Spanner:
    """A spanner for an expression whose first character is at `offset` in `source`."""
    return lambda start, end: source.span(offset + start, offset + end)


def parse_expr(text: str, spanner: Spanner, diags: Diagnostics) -> Expr | None:
    """The AST of `text`, or None after adding diagnostics to `diags`. Never raises."""
    if not _fits(text, spanner, diags) or not _balanced(text, spanner, diags):
        return None
    try:
        tree = _LARK.parse(text)
    except UnexpectedInput as err:
        _syntax_error(err, text, spanner, diags)
        return None
    before = len(diags)
    expr = _Builder(text, spanner, diags).build(tree)
    return expr if len(diags) == before else None


def _fits(text: str, spanner: Spanner, diags: Diagnostics) -> bool:
    if len(text) > MAX_LENGTH:
        diags.add("E0204", f"expression is too long ({len(text)} characters, at most {MAX_LENGTH})",
                  spanner(0, len(text)), help="split it into named features")
        return False
    if not text.strip():
        diags.add("E0205", "empty expression", spanner(0, len(text)),
                  help="write an expression such as `ret(close, 1)`")
        return False
    return True


def _balanced(text: str, spanner: Spanner, diags: Diagnostics) -> bool:
    # Checked before parsing: a parser sees a missing `)` only where the text ends, far from the
    # `(` that the author has to fix.
    opened: list[int] = []
    for i, ch in enumerate(text):
        if ch == "(":
            opened.append(i)
        elif ch == ")" and opened:
            opened.pop()
        elif ch == ")":
            diags.add("E0207", "unmatched `)`", spanner(i, i + 1), label="no `(` to close",
                      help="remove it or add the `(` it closes")
            return False
    if opened:
        end = len(text.rstrip())
        diags.add("E0207", "unclosed `(`", spanner(opened[-1], opened[-1] + 1),
                  label="never closed", help="add the missing `)`",
                  secondary=[Label(spanner(end, end), "expression ends here")])
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Syntax errors, in words: never a lark terminal name such as `RPAR` or `$END`.

_STRINGS = {t.name: t.pattern.value for t in _LARK.terminals if t.pattern.type == "str"}
_KEYWORD_TERMS = {name for name, value in _STRINGS.items() if value in KEYWORDS}
_OPERAND_START = {"NAME", "NUMBER"} | {n for n, v in _STRINGS.items()
                                       if v in ("(", "-", "+", "not", "if", "true", "false")}
_OPERATOR = {"COMP_OP"} | {n for n, v in _STRINGS.items()
                           if v in ("+", "-", "*", "/", "^", "and", "or")}
_AFTER_OPERAND = _OPERATOR | {n for n, v in _STRINGS.items() if v in (")", ",", "=", "(")}
_WORDS = {"NAME": "a name", "NUMBER": "a number", "COMP_OP": "a comparison",
          "$END": "end of expression"}
_CHAR_HELP = {
    "&": "write `and`", "|": "write `or`", "!": "write `not`, or `!=` to compare",
    "%": "`%` only follows a number, as in `5%`; there is no remainder operator",
    "[": "group with `(` and `)`", "{": "group with `(` and `)`",
    "'": "expressions have no strings: write names without quotes",
    '"': "expressions have no strings: write names without quotes",
    "\u2212": "write a plain `-`", "\u00d7": "write `*`", "\u00f7": "write `/`",
    "\u2264": "write `<=`", "\u2265": "write `>=`", "\u2260": "write `!=`",
    "\u00a0": "replace the non-breaking space with a plain space",
}
_DEFAULT_CHAR_HELP = ("expressions are made of numbers, names, calls `f(x, k=v)`, parentheses and "
                      "the operators `+ - * / ^ < <= > >= == != and or not`")


def _syntax_error(err: UnexpectedInput, text: str, spanner: Spanner, diags: Diagnostics) -> None:
    if isinstance(err, UnexpectedCharacters):
        _bad_character(text, err.pos_in_stream, spanner, diags)
    elif isinstance(err, UnexpectedToken) and err.token.type != "$END":
        _unexpected_token(err.token, _expected(err), _tokens(text), spanner, diags)
    else:
        _unexpected_end(_expected(err), text, _tokens(text), spanner, diags)


def _expected(err: UnexpectedInput) -> set[str]:
    # LALR merges look-ahead sets, so the state's own `expected` lists tokens that would fail a
    # few reductions later (`a b` would "expect" `then`); trying each token is exact.
    parser = getattr(err, "interactive_parser", None)
    return set(parser.accepts()) if parser is not None else set(getattr(err, "expected", ()))


def _tokens(text: str) -> list[Token]:
    out: list[Token] = []
    try:
        out.extend(_LARK.lex(text))
    except UnexpectedInput:
        pass  # the tokens before a bad character still give the context
    return out


def _bad_character(text: str, pos: int, spanner: Spanner, diags: Diagnostics) -> None:
    ch = text[pos]
    if not ch.isascii() and ch.isnumeric():  # the same report as the YAML reader's
        diags.add("E0005", f"{describe_char(ch)} is not one of the digits 0-9", spanner(pos, pos + 1),
                  label="not 0-9", help=foreign_digit_help(text))
        return
    shown = ch if ch.isprintable() and not ch.isspace() else ascii(ch)[1:-1]
    diags.add("E0201", f"unexpected character `{shown}`", spanner(pos, pos + 1),
              help=_CHAR_HELP.get(ch, _DEFAULT_CHAR_HELP))


def _unexpected_token(tok: Token, expected: set[str], tokens: list[Token], spanner: Spanner,
                      diags: Diagnostics) -> None:
    i = next((k for k, t in enumerate(tokens) if t.start_pos == tok.start_pos), len(tokens))
    prev = tokens[i - 1] if i > 0 else None
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    if prev is not None and prev.type in _KEYWORD_TERMS and _STRINGS.get(tok.type) in ("=", "("):
        _keyword_as_name(prev, spanner, diags)
    elif tok.type in _KEYWORD_TERMS and "NAME" in expected and _looks_like_name(tok, after):
        _keyword_as_name(tok, spanner, diags)
    else:
        diags.add("E0201", f"unexpected {_describe(tok)}", spanner(tok.start_pos, tok.end_pos),
                  help=_token_help(tok, prev, expected))


def _looks_like_name(tok: Token, after: Token | None) -> bool:
    # `if` and `not` start an expression, so before an operand they are a precedence problem
    # (`a + not b`), not a name.
    if after is None:
        return True
    starts_operand = tok.value in ("if", "not") and after.type in _OPERAND_START
    return after.type in _AFTER_OPERAND and not starts_operand


def _keyword_as_name(tok: Token, spanner: Spanner, diags: Diagnostics) -> None:
    diags.add("E0208", f"`{tok.value}` is a reserved keyword and cannot be used as a name",
              spanner(tok.start_pos, tok.end_pos), label="reserved keyword",
              help="choose another name; reserved keywords are "
                   + ", ".join(f"`{k}`" for k in KEYWORDS))


def _unexpected_end(expected: set[str], text: str, tokens: list[Token], spanner: Spanner,
                    diags: Diagnostics) -> None:
    end = len(text.rstrip())
    if "NAME" in expected and tokens:
        message = f"expected an expression after `{tokens[-1].value}`"
        help_ = "write a number, a name, a call or a parenthesised expression"
    else:
        message, help_ = "unexpected end of expression", f"expected {_expected_words(expected)}"
    diags.add("E0201", message, spanner(end, end), label="expression ends here", help=help_)


def _describe(tok: Token) -> str:
    if tok.type == "NAME":
        return f"name `{tok.value}`"
    if tok.type == "NUMBER":
        return f"number `{tok.value}`"
    if tok.type in _KEYWORD_TERMS:
        return f"keyword `{tok.value}`"
    return f"`{tok.value}`"


def _token_help(tok: Token, prev: Token | None, expected: set[str]) -> str:
    if tok.value == "=":
        return "to compare, write `==`"
    if tok.value == "*" and prev is not None and prev.value == "*":
        return "for powers, write `^`"
    if tok.value in ("if", "not") and "NAME" in expected:
        return f"put the `{tok.value} ...` expression in parentheses"
    return f"expected {_expected_words(expected)}"


def _expected_words(expected: set[str]) -> str:
    words, rest = [], set(expected)
    if "NAME" in expected:
        words.append("an expression")
        rest -= _OPERAND_START
    if expected & (_OPERATOR - _OPERAND_START):
        words.append("an operator")
        rest -= _OPERATOR
    rest = sorted(rest, key=lambda n: (n == "$END", _STRINGS.get(n, "").isalpha(), n))
    words += [_WORDS.get(n) or f"`{_STRINGS.get(n, n.lower())}`" for n in rest]
    words = words[:4] or ["something else"]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


# ---------------------------------------------------------------------------------------------
# Lark tree -> AST, post-order with an explicit stack.

_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "^"}
_UNARY = {"neg": "-", "pos": "+", "not_": "not"}
_BOOL = {"and_": "and", "or_": "or"}
_NUMBER_PART = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SUFFIX_ALIASES = {
    "bp": "bps", "pct": "%", "percent": "%", "sec": "s", "secs": "s", "second": "s",
    "seconds": "s", "min": "m", "mins": "m", "minute": "m", "minutes": "m", "hr": "h",
    "hrs": "h", "hour": "h", "hours": "h", "day": "d", "days": "d", "wk": "w", "week": "w",
    "weeks": "w",
}


class _Args(list):
    """The items of a call's argument list, before they are split into positional and keyword."""


class _Builder:
    """Builds the AST of one expression; semantic errors are added to `diags` as found."""

    def __init__(self, text: str, spanner: Spanner, diags: Diagnostics) -> None:
        self.text, self.spanner, self.diags = text, spanner, diags

    def build(self, root: Tree) -> Expr | None:
        values: list[tuple[object, int]] = []  # (node, depth), children before parents
        for node in _postorder(root):
            if isinstance(node, Token):
                values.append((node, 0))
                continue
            kids = _pop(values, len(node.children))
            value, depth = self._node(node, [k for k, _ in kids], [d for _, d in kids])
            if depth > MAX_DEPTH:
                self._too_deep(node)
                return None
            values.append((value, depth))
        return values[0][0]

    def _too_deep(self, node: Tree) -> None:
        self.diags.add("E0203", f"expression nested too deeply (more than {MAX_DEPTH} levels)",
                       self._span(node), label="too deep here",
                       help="split it into named features")

    def _span(self, node: Tree | Token) -> Span:
        if isinstance(node, Token):
            return self.spanner(node.start_pos, node.end_pos)
        return self.spanner(node.meta.start_pos, node.meta.end_pos)

    def _node(self, node: Tree, kids: list, depths: list[int]) -> tuple[object, int]:
        """The AST node and its depth: how deeply it is nested, where a left-associative chain
        of one kind of operator (`a + b - c + d`, `a * b / c`, `p and q and r`) is one level
        however long it is, since it is written flat."""
        kind = str(node.data)
        depth = max(depths, default=0)
        if kind == "paren":
            return kids[0], depth  # keeps its own span; enclosing spans include the `(`
        if kind == "arguments":
            return _Args(kids), depth
        if kind == "kwarg":
            return Keyword(kids[0].value, kids[1], span=self._span(kids[0])), depth
        value = self._expr(kind, node, kids)
        if _chain(value) is not None and _chain(value) == _chain(kids[0]):
            return value, max(depths[0], depths[1] + 1)  # one more link of the chain
        return value, depth + 1

    def _expr(self, kind: str, node: Tree, kids: list) -> Expr:
        span = self._span(node)
        if kind in _BINARY:
            return Binary(_BINARY[kind], kids[0], kids[1], span=span)
        if kind in _UNARY:
            return Unary(_UNARY[kind], kids[0], span=span)
        if kind in _BOOL:
            return BoolOp(_BOOL[kind], kids[0], kids[1], span=span)
        if kind == "if_expr":
            return IfElse(*kids, span=span)
        if kind == "compare":
            return self._compare(node, kids, span)
        return getattr(self, "_" + kind)(kids, span)

    def _name(self, kids: list, span: Span) -> Expr:
        return Name(kids[0].value, span=span)

    def _true(self, kids: list, span: Span) -> Expr:
        return Bool(True, span=span)

    def _false(self, kids: list, span: Span) -> Expr:
        return Bool(False, span=span)

    def _number(self, kids: list, span: Span) -> Expr:
        tok = kids[0]
        digits = _NUMBER_PART.match(tok.value).group(0)
        suffix = tok.value[len(digits):] or None
        if suffix is not None and suffix not in UNIT_SUFFIXES + DURATION_SUFFIXES:
            self._unknown_suffix(suffix, tok.start_pos + len(digits), tok.end_pos)
        return Number(digits, suffix, span=span)

    def _unknown_suffix(self, suffix: str, start: int, end: int) -> None:
        allowed = UNIT_SUFFIXES + DURATION_SUFFIXES
        best = _SUFFIX_ALIASES.get(suffix.lower()) or did_you_mean(suffix, allowed)
        help_ = (f"did you mean `{best}`?" if best else
                 "fractions take `%` or `bps`; durations take `s`, `m`, `h`, `d` or `w`")
        self.diags.add("E0202", f"unknown unit suffix `{suffix}`", self.spanner(start, end),
                       label="unknown unit", help=help_)

    def _compare(self, node: Tree, kids: list, span: Span) -> Expr:
        if len(kids) > 3:
            self._chained(node)
        expr = kids[0]
        for op, right in zip(kids[1::2], kids[2::2]):
            expr = Compare(str(op), expr, right, span=span)
        return expr

    def _chained(self, node: Tree) -> None:
        operands = [" ".join(self.text[c.meta.start_pos:c.meta.end_pos].split())
                    for c in node.children[::2]]
        ops = node.children[1::2]
        links = [f"{a} {op} {b}" for a, op, b in zip(operands, ops, operands[1:])]
        self.diags.add("E0206", "comparisons cannot be chained", self._span(ops[1]),
                       label="second comparison", help=f"write `{' and '.join(links)}`",
                       secondary=[Label(self._span(ops[0]), "first comparison")])

    def _call(self, kids: list, span: Span) -> Expr:
        args, kwargs = [], []
        for item in (kids[1] if len(kids) > 1 else ()):
            if isinstance(item, Keyword):
                kwargs.append(item)
            elif kwargs:
                self._positional_after_keyword(item, kwargs[0])
            else:
                args.append(item)
        return Call(kids[0].value, tuple(args), tuple(kwargs), span=span,
                    func_span=self._span(kids[0]))

    def _positional_after_keyword(self, arg: Expr, first_kw: Keyword) -> None:
        self.diags.add("E0208", "positional argument after a keyword argument", arg.span,
                       label="positional argument",
                       help="move it before the keyword arguments, or name it `name=value`",
                       secondary=[Label(first_kw.span, "first keyword argument")])


_CHAINS = {"+": "+", "-": "+", "*": "*", "/": "*", "and": "and", "or": "or"}


def _chain(e: object) -> str | None:
    """Which left-associative chain `e` is a link of, if any (`^` is right-associative and
    nests; comparisons do not chain)."""
    if isinstance(e, (Binary, BoolOp)):
        return _CHAINS.get(e.op)
    return None


def _pop(values: list, n: int) -> list:
    # not `values[-n:]`, which is the whole list when n == 0 (`true` keeps no children)
    kids = values[len(values) - n:]
    del values[len(values) - n:]
    return kids


def _postorder(root: Tree) -> Iterator[Tree | Token]:
    stack: list[tuple[Tree | Token, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, Token) or expanded:
            yield node
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(node.children))


# ---------------------------------------------------------------------------------------------
# AST -> text. Iterative, so it is safe on any AST, not only on depth-limited ones.

_IF, _OR, _AND, _NOT, _CMP, _ADD, _MUL, _UNARY_LEVEL, _POW, _ATOM = range(10)
_LEVEL = {"or": _OR, "and": _AND, "+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL, "^": _POW}


def format_expr(e: Expr) -> str:
    """Canonical text with the fewest parentheses: `parse_expr(format_expr(e)) == e`."""
    done: list[tuple[str, int]] = []  # (text, precedence level), children before parents
    stack: list[tuple[Expr, bool]] = [(e, False)]
    while stack:
        node, expanded = stack.pop()
        kids = children(node)
        if kids and not expanded:
            stack.append((node, True))
            stack.extend((k, False) for k in reversed(kids))
            continue
        parts = done[len(done) - len(kids):]
        del done[len(done) - len(kids):]
        done.append(_format_node(node, parts))
    return done[0][0]


def _wrap(part: tuple[str, int], level: int) -> str:
    text, own = part
    return text if own >= level else f"({text})"


def _format_node(node: Expr, parts: list[tuple[str, int]]) -> tuple[str, int]:
    if isinstance(node, Number):
        return node.text + (node.suffix or ""), _ATOM
    if isinstance(node, Bool):
        return ("true" if node.value else "false"), _ATOM
    if isinstance(node, Name):
        return node.id, _ATOM
    if isinstance(node, Call):
        return _format_call(node, [text for text, _ in parts]), _ATOM
    if isinstance(node, IfElse):
        return "if {} then {} else {}".format(*(text for text, _ in parts)), _IF
    if isinstance(node, Unary):
        return _format_unary(node.op, parts[0])
    return _format_binary(node, parts[0], parts[1])


def _format_call(node: Call, parts: list[str]) -> str:
    n = len(node.args)
    kwargs = [f"{k.name}={text}" for k, text in zip(node.kwargs, parts[n:])]
    return f"{node.func}({', '.join(parts[:n] + kwargs)})"


def _format_unary(op: str, operand: tuple[str, int]) -> tuple[str, int]:
    if op == "not":
        return f"not {_wrap(operand, _NOT)}", _NOT
    return f"{op}{_wrap(operand, _UNARY_LEVEL)}", _UNARY_LEVEL


def _format_binary(node: Expr, left: tuple[str, int], right: tuple[str, int]) -> tuple[str, int]:
    if isinstance(node, Compare):
        # non-associative: a comparison on either side needs parentheses
        return f"{_wrap(left, _ADD)} {node.op} {_wrap(right, _ADD)}", _CMP
    level = _LEVEL[node.op]
    if node.op == "^":
        # right-associative, and only an atom may stand on its left (`(-x)^2`)
        return f"{_wrap(left, _ATOM)}^{_wrap(right, _UNARY_LEVEL)}", _POW
    return f"{_wrap(left, level)} {node.op} {_wrap(right, level + 1)}", level
