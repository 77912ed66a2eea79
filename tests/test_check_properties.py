"""Properties of the checker.

(a) Well-typed expressions, generated from the function registry by their unit, check clean as
    a feature of a minimal policy and survive `parse_expr(format_expr(e)) == e`.
(b) Mutations of the example policies (lines deleted, duplicated or swapped, random bytes,
    unbalanced brackets, huge numbers, deep nesting) only ever give diagnostics, quickly.
"""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowe.dsl.diagnostics import Diagnostics, render_json, render_text
from crowe.dsl.expr import format_expr, parse_expr, span_in
from crowe.dsl.policy import check_bytes, check_text
from crowe.dsl.source import SourceFile
from crowe.stdlib.registry import FUNCTIONS

from diagstyle import check_style

POLICIES = sorted((Path(__file__).parent.parent / "policies").glob("*.policy"))

# ---------------------------------------------------------------------------------------------
# (a) type-directed generation
#
# Units: "1" (dimensionless), "price", "shares", "currency". Every generated expression is a
# float cross-section of the unit asked for; constants only ever stand next to a cross-section.

LEAVES = {
    "1": ["r1", "vol", "ret(close, 1)", "weight"],
    "price": ["close", "open", "high", "low", "atr(14)", "entry_price"],
    "shares": ["volume", "position"],
    "currency": ["(close * volume)", "dollar"],
}
SAME_UNIT_WINDOWED = ["lag", "delta", "mean", "sum", "stdev", "min", "max", "ema"]
ANY_TO_DIMENSIONLESS_WINDOWED = ["ret", "logret", "zscore"]
ANY_TO_DIMENSIONLESS = ["zscore", "rank", "sign", "log"]
DIMENSIONLESS_ONLY = ["exp", "normcdf", "sqrt", "abs"]
SAME_UNIT = ["demean", "abs"]
USED = set(SAME_UNIT_WINDOWED + ANY_TO_DIMENSIONLESS_WINDOWED + ANY_TO_DIMENSIONLESS
           + DIMENSIONLESS_ONLY + SAME_UNIT + ["var", "clip", "minimum", "maximum", "where",
                                              "quantile", "cs_mean", "turbulence", "share",
                                              "atr", "rsi", "skew", "kurt", "acf", "corr",
                                              "beta", "crossed_above", "crossed_below",
                                              "regime_prob"])
SHAPE = ["rsi", "skew", "kurt", "acf"]       # any unit to dimensionless, windows of 4 or more

windows = st.one_of(st.integers(1, 250).map(str), st.integers(1, 40).map(lambda n: f"{n}d"),
                    st.just("lookback"), st.just("1w"))
plain_numbers = st.one_of(st.integers(0, 10_000).map(str),
                          st.floats(0.001, 1000, allow_nan=False).map(lambda x: f"{x:.4g}"),
                          st.sampled_from(["1e6", "2.5e-3", ".5", "5e6"]))
fractions = st.one_of(st.integers(1, 99).map(lambda n: f"{n}%"),
                      st.integers(1, 500).map(lambda n: f"{n}bps"))


def constants(unit: str) -> st.SearchStrategy[str]:
    """A constant that may stand next to a value of `unit`: a bare number takes any unit;
    `%` and `bps` are dimensionless; `theta` is a parameter, also without a unit."""
    options = [plain_numbers, st.just("theta")]
    return st.one_of(*options, fractions) if unit == "1" else st.one_of(*options)


def other_unit() -> st.SearchStrategy[str]:
    return st.sampled_from(list(LEAVES))


@st.composite
def series(draw, unit: str, depth: int) -> str:
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(LEAVES[unit]))
    sub = lambda u=unit: series(u, depth - 1)  # noqa: E731
    form = draw(st.sampled_from(
        ["add", "mul", "div", "neg", "windowed", "same", "clip", "pair", "where", "if", "cs"]
        + (["to_dimensionless", "windowed_to_dimensionless", "dimensionless_only", "var",
            "turbulence", "ratio", "shape", "dependence", "regime"] if unit == "1" else [])
        + (["price_times_shares"] if unit == "currency" else [])))
    if form == "add":
        right = draw(st.one_of(sub(), constants(unit)))
        return f"({draw(sub())} {draw(st.sampled_from('+-'))} {right})"
    if form == "mul":
        factor = draw(st.one_of(series("1", depth - 1), constants("1")))
        return f"({factor} * {draw(sub())})" if draw(st.booleans()) else \
            f"({draw(sub())} * {factor})"
    if form == "div":
        return f"({draw(sub())} / {draw(st.one_of(series('1', depth - 1), plain_numbers))})"
    if form == "ratio":
        u = draw(other_unit())
        return f"({draw(series(u, depth - 1))} / {draw(series(u, depth - 1))})"
    if form == "neg":
        return f"-{draw(sub())}"
    if form == "windowed":
        return f"{draw(st.sampled_from(SAME_UNIT_WINDOWED))}({draw(sub())}, {draw(windows)})"
    if form == "same":
        return f"{draw(st.sampled_from(SAME_UNIT))}({draw(sub())})"
    if form == "clip":
        lo, hi = sorted(draw(st.lists(st.integers(-100, 100), min_size=2, max_size=2,
                                      unique=True)))
        return f"clip({draw(sub())}, {lo}, {hi})"
    if form == "pair":
        return f"{draw(st.sampled_from(['minimum', 'maximum']))}({draw(sub())}, {draw(sub())})"
    if form == "where":
        return f"where({draw(conditions(depth - 1))}, {draw(sub())}, {draw(sub())})"
    if form == "if":
        return f"(if {draw(conditions(depth - 1))} then {draw(sub())} else {draw(sub())})"
    if form == "cs":
        reducer = draw(st.sampled_from(["cs_mean({})", "quantile({}, 0.5)", "quantile({}, theta)"]))
        return f"({draw(sub())} - {reducer.format(draw(sub()))})"
    if form == "to_dimensionless":
        inner = draw(series(draw(other_unit()), depth - 1))
        return f"{draw(st.sampled_from(ANY_TO_DIMENSIONLESS))}({inner})"
    if form == "windowed_to_dimensionless":
        inner = draw(series(draw(other_unit()), depth - 1))
        return f"{draw(st.sampled_from(ANY_TO_DIMENSIONLESS_WINDOWED))}({inner}, {draw(windows)})"
    if form == "dimensionless_only":
        return f"{draw(st.sampled_from(DIMENSIONLESS_ONLY))}({draw(sub())})"
    if form == "var":
        return f"var({draw(sub())}, {draw(windows)})"
    if form == "shape":
        inner = draw(series(draw(other_unit()), depth - 1))
        return f"{draw(st.sampled_from(SHAPE))}({inner}, {draw(st.integers(4, 250))})"
    if form == "dependence":
        u = draw(other_unit())
        fn = draw(st.sampled_from(["corr", "beta"]))
        other = draw(series(u if fn == "beta" else draw(other_unit()), depth - 1))
        return f"{fn}({draw(series(u, depth - 1))}, {other}, {draw(st.integers(2, 250))})"
    if form == "turbulence":
        return f"({draw(sub())} + turbulence({draw(sub())}, {draw(windows)}))"
    if form == "regime":
        return f"({draw(sub())} * regime_prob({draw(series(draw(other_unit()), depth - 1))}, " \
            f"{draw(st.integers(10, 250))}))"
    return f"({draw(series('price', depth - 1))} * {draw(series('shares', depth - 1))})"


@st.composite
def conditions(draw, depth: int) -> str:
    """A condition; `share(...)` makes it one per bar (a scalar), which is fine everywhere a
    condition goes except inside another `share`, so `share` takes a comparison only."""
    forms = ["compare", "compare_const", "crossed"] + (["and_or", "not", "share"] if depth > 0
                                                       else [])
    form = draw(st.sampled_from(forms))
    if form == "share":
        return f"share({draw(conditions(0))}) > 10%"
    if form == "compare":
        u = draw(other_unit())
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        return f"{draw(series(u, depth))} {op} {draw(series(u, depth))}"
    if form == "crossed":
        u = draw(other_unit())
        fn = draw(st.sampled_from(["crossed_above", "crossed_below"]))
        return f"{fn}({draw(series(u, depth))}, {draw(series(u, depth))})"
    if form == "compare_const":
        u = draw(other_unit())
        return f"{draw(series(u, depth))} > {draw(constants(u))}"
    if form == "and_or":
        op = draw(st.sampled_from(["and", "or"]))
        return f"({draw(conditions(depth - 1))} {op} {draw(conditions(depth - 1))})"
    return f"not ({draw(conditions(depth - 1))})"


MINIMAL = """\
policy: generated_v1
version: 1.0.0
owner: CR-001
universe: {{symbols: from_data, bar: 1d}}
params:
  lookback: {{default: 20, range: [5, 60]}}
  theta:    {{default: 0.5, range: [0.1, 0.9]}}
features:
  r1:     ret(close, 1)
  vol:    stdev(r1, lookback)
  dollar: mean(close * volume, 20)
  f:      {expr}
signal:
  horizon: 1d
  mu:    0.1 * vol
  sigma: vol
gates:
  uses_f:  f > theta
  liquid:  dollar > 1e6
sizing: {{method: equal}}
risk:
  gross_max: 100%
  net_max: 50%
  position_max: 5%
  drawdown: {{from_peak: {{max: 10%, action: halt}}}}
execution: {{algo: market}}
stand_down:
  data_gap: {{max_missing: 5%, action: halt}}
"""


def test_generator_covers_the_registry():
    assert USED <= set(FUNCTIONS), sorted(USED - set(FUNCTIONS))
    # the rest are booleans over the cross-section, tested through `share`
    assert set(FUNCTIONS) - USED <= {"any", "all"}


@settings(max_examples=120, deadline=timedelta(seconds=2),
          suppress_health_check=[HealthCheck.too_slow])
@given(unit=other_unit(), data=st.data())
def test_well_typed_expressions_check_clean(unit: str, data):
    text = data.draw(series(unit, 4), label="expression")
    result = check_text(MINIMAL.format(expr=text), "generated.policy")
    assert result.diagnostics == [], [render_text(d, result.source) for d in result.diagnostics]
    assert result.ok
    e = result.policy.features["f"]
    assert result.policy.types[e].dtype.label == "float"
    assert result.policy.types[e].kind.label == "per-bar cross-section"
    diags = Diagnostics()
    again = parse_expr(format_expr(e), span_in(SourceFile("f", format_expr(e)), 0), diags)
    assert diags.items == [] and again == e


# ---------------------------------------------------------------------------------------------
# (b) mutations of the example policies

HUGE = ["1e400", "9" * 400, "-1e400", "1" + "0" * 400 + "%", "1e-400", ".inf", "nan"]
BRACKETS = list("([{)]}") + ["((", "]]", "{{", "))"]
NUMBER = re.compile(rb"(?<![\w.])\d+(?:\.\d+)?")


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    path = draw(st.sampled_from(POLICIES))
    lines = path.read_bytes().split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        lines = draw(st.sampled_from(MUTATIONS))(draw, lines)
    return path.name, b"\n".join(lines)


def _at(draw, lines: list[bytes]) -> int:
    return draw(st.integers(0, len(lines) - 1)) if lines else 0


def _delete(draw, lines):
    return lines[:(k := _at(draw, lines))] + lines[k + 1:]


def _duplicate(draw, lines):
    k = _at(draw, lines)
    return lines[:k] + lines[k:k + 1] * 2 + lines[k + 1:]


def _swap(draw, lines):
    lines, i, j = list(lines), _at(draw, lines), _at(draw, lines)
    if lines:
        lines[i], lines[j] = lines[j], lines[i]
    return lines


def _insert(draw, lines, what: bytes):
    if not lines:
        return [what]
    k = _at(draw, lines)
    pos = draw(st.integers(0, len(lines[k])))
    return lines[:k] + [lines[k][:pos] + what + lines[k][pos:]] + lines[k + 1:]


def _bytes(draw, lines):
    return _insert(draw, lines, draw(st.binary(min_size=1, max_size=8)))


def _bracket(draw, lines):
    return _insert(draw, lines, draw(st.sampled_from(BRACKETS)).encode())


def _nesting(draw, lines):
    n = draw(st.integers(20, 3000))
    opener = draw(st.sampled_from(["(", "[", "{", "abs(", "-", "not "]))
    closer = {"(": ")", "[": "]", "{": "}", "abs(": ")"}.get(opener, "")
    inner = (opener * n + "x" + closer * draw(st.sampled_from([0, n, n - 1])))
    return _insert(draw, lines, inner.encode())


def _huge(draw, lines):
    text = b"\n".join(lines)
    found = list(NUMBER.finditer(text))
    if not found:
        return lines
    m = draw(st.sampled_from(found))
    return (text[:m.start()] + draw(st.sampled_from(HUGE)).encode() + text[m.end():]).split(b"\n")


MUTATIONS = [_delete, _duplicate, _swap, _bytes, _bracket, _nesting, _huge]


def test_examples_are_clean():
    assert POLICIES
    for path in POLICIES:
        result = check_bytes(path.read_bytes(), path.name)
        assert result.ok and not result.errors, path.name


@settings(max_examples=250, deadline=timedelta(seconds=2),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=mutated())
def test_mutated_examples_give_only_diagnostics(case):
    name, data = case
    result = check_bytes(data, name)  # any exception fails the test
    for d in result.diagnostics:
        assert re.fullmatch(r"[EW]\d{4}", d.code)
        assert not check_style(d), (d.code, check_style(d))
        assert d.span.line >= 1 and d.span.column >= 1
        render_text(d, result.source)
    render_json(result.diagnostics)
    if result.errors:
        assert result.policy is None and not result.ok
