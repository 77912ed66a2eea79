"""The compiler's passes on hand-built IR and on the example policies: constant folding, common
subexpressions, lookbacks and buffer sizes, causality."""
from __future__ import annotations

import math
import operator
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import simkit
from crowe.compiler import ir
from crowe.compiler.lower import Lowering
from crowe.compiler.passes import causality, cse, fold, lookback
from crowe.compiler.passes.causality import CausalityError
from crowe.compiler.passes.cse import count_duplicates
from crowe.compiler.program import to_ir
from crowe.dsl.policy import check_path
from crowe.dsl.source import Span
from crowe.dsl.types import DType, Kind, Type

POLICIES = sorted((Path(__file__).parent.parent / "policies").glob("*.policy"))
FC = Type(Kind.CONST, DType.FLOAT, None)
IC = Type(Kind.CONST, DType.INT, None)
BC = Type(Kind.CONST, DType.BOOL, None)
FS = Type(Kind.SERIES, DType.FLOAT, None)
BS = Type(Kind.SERIES, DType.BOOL, None)
CLOSE = ir.Field(FS, "close")


def c(v):
    return ir.Const(BC if isinstance(v, bool) else IC if isinstance(v, int) else FC, v)


def folded(node):
    return fold({"x": node})["x"]


def r1():
    return ir.Binary(FS, "sub", ir.Binary(FS, "div", CLOSE, ir.Lag(FS, CLOSE, c(1), 1)), c(1))


# -- constant folding ------------------------------------------------------------------------------

BINARY = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "div": jnp.divide,
          "lt": jnp.less, "le": jnp.less_equal, "gt": jnp.greater, "ge": jnp.greater_equal,
          "eq": jnp.equal, "ne": jnp.not_equal}
PYTHON = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "lt": operator.lt,
          "le": operator.le, "gt": operator.gt, "ge": operator.ge, "eq": operator.eq,
          "ne": operator.ne}
_jitted = {}


def runtime(f, *args):
    """What the compiled step computes: the operation under jit on runtime arrays (so that XLA
    cannot fold it itself)."""
    if f not in _jitted:
        _jitted[f] = jax.jit(f)
    return _jitted[f](*(jnp.asarray(a, jnp.float64) for a in args)).item()


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@settings(max_examples=60, deadline=None)
@given(a=finite, b=finite, op=st.sampled_from(sorted(BINARY)))
@example(a=-0.0, b=0.0, op="add")   # signed zeros: once merged into one constant by CSE
@example(a=-0.0, b=0.0, op="sub")
def test_fold_is_bit_identical_to_the_compiled_operation(a, b, op):
    node = folded(ir.Binary(FC, op, c(a), c(b)))
    expect = runtime(BINARY[op], a, b)
    python = a / b if op == "div" and b else math.inf if op == "div" else PYTHON[op](a, b)
    left = (not math.isfinite(python) or any(map(subnormal, (a, b, python))))
    if left:    # division by zero, overflow, subnormals (flushed to zero by XLA on CPU)
        assert isinstance(node, ir.Binary)
        return
    assert isinstance(node, ir.Const)
    assert node.value == expect and math.copysign(1, node.value) == math.copysign(1, expect)


def subnormal(v) -> bool:
    return isinstance(v, float) and v != 0 and abs(v) < 2.2250738585072014e-308


def test_fold_leaves_subnormals_to_the_runtime():
    """XLA on CPU flushes subnormals to zero: `0 + 5e-324` is 0 and `5e-324 > 0` false there."""
    assert runtime(jnp.add, 0.0, 5e-324) == 0.0
    for node in (ir.Binary(FC, "add", c(0.0), c(5e-324)), ir.Binary(BC, "gt", c(5e-324), c(0.0)),
                 ir.Binary(FC, "mul", c(1e-300), c(1e-10)), ir.Map(FC, "abs", (c(-5e-324),))):
        assert folded(node) == node


@settings(max_examples=40, deadline=None)
@given(a=st.floats(min_value=0, max_value=1e300), b=finite)
def test_fold_unary_sqrt_abs_neg_bit_for_bit(a, b):
    for node, f, x, python in ((ir.Map(FC, "sqrt", (c(a),)), jnp.sqrt, a, math.sqrt(a)),
                               (ir.Map(FC, "abs", (c(b),)), jnp.abs, b, abs(b)),
                               (ir.Unary(FC, "neg", c(b)), jnp.negative, b, -b)):
        out = folded(node)
        if subnormal(x) or subnormal(python):
            assert out == node
        else:
            expect = runtime(f, x)
            assert out.value == expect and math.copysign(1, out.value) == math.copysign(1, expect)


def test_fold_logic_and_select():
    assert folded(ir.Binary(BC, "and", c(True), c(False))).value is False
    assert folded(ir.Binary(BC, "or", c(True), c(False))).value is True
    assert folded(ir.Unary(BC, "not", c(False))).value is True
    assert folded(ir.Select(FC, c(True), c(1.5), c(2.5))).value == 1.5
    assert folded(ir.Select(FC, c(False), c(1.5), c(2.5))).value == 2.5


@pytest.mark.parametrize("node", [
    ir.Map(FC, "exp", (c(1.0),)), ir.Map(FC, "log", (c(2.0),)),
    ir.Binary(FC, "pow", c(2.0), c(0.5)), ir.Binary(FC, "pow", c(2), c(3)),
    ir.Map(FC, "normcdf", (c(0.3),)),
], ids=["exp", "log", "pow", "int_pow", "normcdf"])
def test_fold_leaves_inexact_functions_to_xla(node):
    assert folded(node) == node


@pytest.mark.parametrize("node", [
    ir.Binary(FC, "div", c(1.0), c(0.0)), ir.Binary(FC, "div", c(1), c(0)),
    ir.Map(FC, "sqrt", (c(-1.0),)), ir.Binary(FC, "mul", c(1e308), c(10.0)),
], ids=["div0", "int_div0", "sqrt_neg", "overflow"])
def test_fold_leaves_errors_to_the_runtime(node):
    assert folded(node) == node


def test_fold_keeps_integers_whole_and_folds_bottom_up():
    five = folded(ir.Binary(IC, "add", c(2), c(3)))
    assert five.value == 5 and isinstance(five.value, int)
    assert folded(ir.Binary(FC, "div", c(7), c(2))).value == 3.5
    expr = ir.Binary(FS, "mul", CLOSE, ir.Binary(FC, "add", ir.Binary(FC, "mul", c(2.0), c(3.0)),
                                                  ir.Unary(FC, "neg", c(0.5))))
    assert folded(expr) == ir.Binary(FS, "mul", CLOSE, c(5.5))
    kept = ir.Binary(FS, "mul", CLOSE, ir.Map(FC, "exp", (ir.Binary(FC, "mul", c(2.0), c(0.5)),)))
    assert folded(kept) == ir.Binary(FS, "mul", CLOSE, ir.Map(FC, "exp", (c(1.0),)))


def test_fold_in_a_compiled_policy():
    p = simkit.check(simkit.policy_dict(signal={
        "horizon": "1d", "mu": "r1 * (0.5 * 4) + 0 * exp(1)", "sigma": "1% * sqrt(4)"}))
    sig = to_ir(p).roots["signal"]
    consts = {n.value for n in simkit.nodes_of({"mu": sig["mu"]}) if isinstance(n, ir.Const)}
    assert 2.0 in consts and 0.5 not in consts and 4 not in consts
    assert any(isinstance(n, ir.Map) and n.func == "exp" for n in simkit.nodes_of({"m": sig["mu"]}))
    assert isinstance(sig["sigma"], ir.Const) and sig["sigma"].value == 0.02


# -- common subexpressions -------------------------------------------------------------------------

def test_spans_never_decide_equality():
    a = ir.Const(FC, 1.0, span=Span("a.policy", 0, 3, 1, 1, 1, 4))
    b = ir.Const(FC, 1.0, span=Span("b.policy", 9, 12, 5, 7, 5, 10))
    assert a == b and hash(a) == hash(b)
    assert ir.Const(FC, 1.0) != ir.Const(FS, 1.0) and ir.Const(FC, 1.0) != ir.Const(FC, 2.0)


def test_cse_makes_equal_subtrees_one_object():
    def mean20():   # a fresh object graph every call
        return ir.Rolling(FS, "mean", ir.Binary(FS, "mul", ir.Field(FS, "close"),
                                                ir.Field(FS, "volume")), c(20), 20)
    roots = {"a": ir.Binary(FS, "div", mean20(), mean20()),
             "b": ir.Binary(FS, "sub", mean20(), ir.Field(FS, "close"))}
    out = cse(roots)
    a, b = out["a"], out["b"]
    assert a.a is a.b is b.a
    assert b.b is a.a.x.a                     # the close field, wherever it was written
    # tree: a = 1 + 2 * 5, b = 1 + 5 + 1 = 18 nodes; distinct: field x2, mul, const, rolling,
    # div, sub = 7
    assert count_duplicates(roots) == count_duplicates(out) == 18 - 7
    assert len(simkit.nodes_of(out)) == 7


def test_count_duplicates_of_a_deep_dag():
    # sub(div(close, lag(close, 1)), 1): 7 tree nodes, 5 distinct (close and the 1 twice)
    x, size = r1(), 7
    for _ in range(40):
        x, size = ir.Binary(FS, "add", x, x), 1 + 2 * size
    merged = count_duplicates({"x": x})      # (never repr a deep DAG: it expands the tree)
    assert merged == size - (5 + 40)


def test_cse_in_a_compiled_policy():
    p = simkit.check(simkit.policy_dict(
        features={"r1": "ret(close, 1)", "a": "mean(r1, 20) / stdev(r1, 5)",
                  "b": "mean(r1, 20) - stdev(r1, 5)"},
        signal={"horizon": "1d", "mu": "a * 0.01", "sigma": "stdev(r1, 20)"},
        gates={"g": "b > 0"}))
    pir = to_ir(p)
    means = [n for n in simkit.nodes_of(pir.roots) if isinstance(n, ir.Rolling)
             and n.stat == "mean" and not isinstance(n.x, ir.Field)]
    assert len(means) == 1
    mu, g = pir.roots["signal"]["mu"], pir.roots["gates"]["g"]
    assert mu.a.a is g.a.a is means[0]
    # the policy's r1 and the built-in one-bar return are one node; so are the policy's
    # stdev(r1, 20) and the market model's impact volatility (20 bars)
    assert pir.roots["aux"]["r1"] is means[0].x
    assert pir.roots["aux"]["impact_vol"] is pir.roots["signal"]["sigma"]
    fields = [n for n in simkit.nodes_of(pir.roots) if isinstance(n, ir.Field)]
    assert sorted(f.name for f in fields) == ["close", "volume"]
    assert pir.merged == count_duplicates(pir.roots) > 0
    assert len(pir.look.buffers) == 3                       # close, volume, r1
    rings = Lowering(pir, 3).init_state()["ring"]
    assert len(rings) == len(pir.look.buffers) + len(pir.look.windows or {})


def test_deep_shared_features_compile_in_linear_time():
    """`f_k = f_(k-1) + f_(k-1)` thirty levels deep is a 2^30-node tree but a 35-node DAG: every
    pass must work on the DAG (a hash or walk over the tree would never finish)."""
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, TESTS)
        import simkit
        from crowe.compiler.program import to_ir
        feats = {"f0": "ret(close, 1)"}
        feats.update({f"f{i}": f"f{i-1} + f{i-1}" for i in range(1, 31)})
        p = simkit.check(simkit.policy_dict(features=feats, signal={
            "horizon": "1d", "mu": "f30 * 1e-9", "sigma": "1%"}))
        print(to_ir(p).merged)
    """).replace("TESTS", repr(str(Path(__file__).parent)))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 2**30


# -- lookback --------------------------------------------------------------------------------------

def test_lookbacks_buffers_and_warmup_of_hand_built_ir():
    w, p = ir.Param(IC, "w"), ir.Param(IC, "p")
    lag3 = ir.Lag(FS, CLOSE, c(3), 3)
    mean_of_lag = ir.Rolling(FS, "mean", lag3, c(5), 5)
    sum_w = ir.Rolling(FS, "sum", CLOSE, w, 12)
    ema = ir.Ema(FS, CLOSE, c(10), 10)
    ret1 = r1()
    turb = ir.Turbulence(FS, ret1, c(8), 8)
    hist = ir.History(FS, ret1, 50)
    lag_p = ir.Lag(FS, CLOSE, p, 20)
    roots = {"a": mean_of_lag, "b": sum_w, "c": ema, "d": turb, "e": lag_p, "f": {"g": hist}}
    look = lookback(roots, {"w": 5, "p": 7})
    per = look.per_node
    assert per[lag3] == (3, 3)
    assert per[mean_of_lag] == (3 + 4, 3 + 4)
    assert per[sum_w] == (4, 11)                  # default 5, range max 12
    assert per[ema] == (9, 9)
    assert per[ret1] == (1, 1)
    assert per[turb] == (1 + 8, 1 + 8)
    assert per[hist] == (1 + 49, 1 + 49)
    assert per[lag_p] == (7, 20)
    # rows: a lag of n needs n + 1 (the current value too), a window of n needs n
    assert look.buffers == {CLOSE: max(3 + 1, 12, 20 + 1), lag3: 5, ret1: max(8 + 1, 50)}
    assert (look.warmup, look.max_warmup) == (50, 50)
    assert lookback({"b": sum_w, "e": lag_p}, {"w": 5, "p": 7}).warmup == 7
    assert lookback({"b": sum_w, "e": lag_p}, {"w": 5, "p": 7}).max_warmup == 20


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_lookback_agrees_with_the_checker(path):
    p = check_path(str(path)).policy
    pir = to_ir(p)
    # the expressions' lookback, and the program's warm-up, which adds the windows that
    # components keep for themselves (a detector's fitting window, say)
    assert pir.look.warmup <= pir.warmup and pir.look.max_warmup <= pir.max_warmup
    assert (pir.warmup, pir.max_warmup) == (p.warmup, p.max_warmup)
    from crowe.dsl.check import active_components
    if not any(n.series == "own" for c, s in active_components(p.spec) for n in c.needs(s)):
        assert (pir.look.warmup, pir.look.max_warmup) == (p.warmup, p.max_warmup)


def test_buffers_are_sized_at_the_range_maximum():
    p = check_path(str(next(p for p in POLICIES if p.stem == "cs_mom_v1"))).policy
    assert p.spec.policy == "cs_mom_v1" and p.params["lookback"].hi == 252
    pir = to_ir(p)
    rows = [(n.name, r) for n, r in pir.look.buffers.items() if isinstance(n, ir.Field)]
    assert sorted(rows) == [("close", 253), ("volume", 20)]
    # the lowering allocates the close ring that `ret(close, lookback)` reads at its maximum
    low = Lowering(pir, 4)
    close = next(n for n in pir.look.buffers if isinstance(n, ir.Field) and n.name == "close")
    assert low.init_state()["ring"][low.key[close]].shape == (253, 4)


# -- causality -------------------------------------------------------------------------------------

@pytest.mark.parametrize("node", [
    ir.Lag(FS, CLOSE, c(-1), 1),
    ir.Rolling(FS, "mean", CLOSE, c(0), 5), ir.Rolling(FS, "sum", CLOSE, c(-3), 5),
    ir.Ema(FS, CLOSE, c(0), 5), ir.Ema(FS, CLOSE, c(-2), 5),
    ir.Turbulence(FS, CLOSE, c(0), 5), ir.Turbulence(FS, CLOSE, c(-1), 5),
    ir.Rolling(FS, "mean", CLOSE, c(5), 0),
], ids=["lag-1", "mean0", "sum-3", "ema0", "ema-2", "turb0", "turb-1", "nmax0"])
def test_causality_rejects_non_positive_windows(node):
    with pytest.raises(CausalityError):
        causality({"x": ir.Binary(FS, "add", node, CLOSE)})


def test_causality_checks_window_parameters_against_their_range():
    w = ir.Param(IC, "w")
    node = {"x": ir.Rolling(FS, "mean", CLOSE, w, 10)}
    causality(node, {"w": (1, 10)})
    with pytest.raises(CausalityError):
        causality(node, {"w": (0, 10)})
    with pytest.raises(CausalityError):
        causality({"x": ir.Lag(FS, CLOSE, w, 10)}, {"w": (-1, 10)})
    with pytest.raises(CausalityError):
        causality(node, {})                    # a window of unknown range is not proven safe


def test_causality_accepts_the_current_bar_and_the_examples():
    causality({"x": ir.Lag(FS, CLOSE, c(0), 0)})   # lag 0 reads the current bar, not the future
    for path in POLICIES:
        p = check_path(str(path)).policy
        causality(to_ir(p).roots, {k: (v.lo, v.hi) for k, v in p.params.items()})
