"""Pre-trade controls (SEC 15c3-5, MiFID II RTS 6 art. 15): the price collar refuses a child
priced too far from the last trade, and the repeated-order guard halts an instrument that flips
side too often, each with its reason; by hand-checkable cases on the components under jit, and
in one compiled backtest on a panel with a 50% jump and an instrument that flips every bar
(with `remainder: carry` and `cancel`).

Then parent orders through the signed artifact in paper trading: a run stopped while a parent
is half worked resumes as the source backtest, a kill switch that flattens leaves no parent and
a flat book, and on markets drawn by hypothesis children stay within their parent's remainder,
fills within the participation cap, and a flatten cancels every parent and reaches zero."""
from __future__ import annotations

import copy
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simkit
from paperkit import fixture as paperkit
from crowe.stdlib.component import Ctx
from crowe.stdlib.execution import flip_guard, price_collar

CTX = Ctx(1, 252.0, 1, (False,), (True,), (0,), 1, 1.0, 1.0)


# -- the components, by hand --------------------------------------------------------------------

def test_the_collar_refuses_prices_beyond_the_band_and_spares_a_flatten():
    rule = jax.jit(lambda x: price_collar.make(0.2).update(x, (), CTX)[:2])
    nan = np.nan
    x = {"qty": jnp.array([10.0, -10.0, 10.0, 10.0, 10.0, 0.0, 10.0]),
         "price": jnp.array([150.0, 119.0, 100.0, 100.0, 125.0, 150.0, 100.0]),
         # a limit is the child's price; otherwise the decision close is
         "limit": jnp.array([nan, nan, 121.0, 119.0, nan, nan, nan]),
         "last_trade": jnp.array([100.0, 100.0, 100.0, 100.0, 100.0, 100.0, nan])}
    out, hits = rule(x)
    refused = [True, False, True, False, True, False, True]   # 50%, 19%, 21%, 19%, 25%, no order,
    assert [bool(h) for h in hits["price_collar"]] == refused  # no last trade
    np.testing.assert_array_equal(out["qty"], np.where(refused, 0.0, x["qty"]))
    np.testing.assert_array_equal(out["refused"], np.where(refused, x["qty"], 0.0))
    out, hits = rule(dict(x, flattening=jnp.asarray(True)))
    np.testing.assert_array_equal(out["qty"], x["qty"])
    assert not hits["price_collar"].any()


def flip_reference(orders, k: int, n: int):
    """The guard in plain Python: a flip is an order on the other side of the last order sent;
    the order that would be the (k+1)-th flip within n bars is refused and halts."""
    sent, last, flips, halted = [], 0, [], False
    for t, q in enumerate(orders):
        side = int(np.sign(q))
        flip = side != 0 and last != 0 and side != last
        if flip and not halted and sum(t - f < n for f in flips) + 1 > k:
            halted = True
        if halted:
            sent.append(0.0)
            continue
        if flip:
            flips.append(t)
        if side:
            last = side
        sent.append(float(q))
    return sent


_GUARDS: dict = {}


def run_guard(orders, k, n):
    """The guard's orders sent and halt flags over a sequence of one instrument's orders."""
    if (k, n) not in _GUARDS:
        g = flip_guard.make(flip_guard.Settings(max_flips=k, window=n))

        def body(s, q):
            out, hits, s = g.update({"qty": q[None]}, s, CTX)
            return s, (out["qty"][0], hits["flip_halted"][0])
        _GUARDS[k, n] = jax.jit(lambda q: jax.lax.scan(body, g.init(CTX), q)[1])
    sent, halted = _GUARDS[k, n](jnp.asarray(orders, jnp.float64))
    return np.asarray(sent).tolist(), np.asarray(halted)


def test_the_flip_guard_halts_at_the_flip_after_k_within_n_bars_and_not_before():
    # two flips allowed within 5 bars. Flips at bars 1, 2, 7, 12 and 13 (the first order is no
    # flip, bars without an order and orders on the same side do not count): no 5 consecutive
    # bars hold three of them (7 is 5 bars after 2), so nothing is refused
    calm = [5, -5, 5, 0, 0, 0, 3, -5, 0, 0, 0, 0, 4, -4]
    sent, halted = run_guard(calm, 2, 5)
    assert sent == [float(q) for q in calm] and not halted.any()
    # flips at 1 and 2, then a third at 4, within 5 bars of them: refused, the instrument halted,
    # and nothing is sent after it
    busy = [5, -5, 5, 0, -1, 2, 2, -3]
    sent, halted = run_guard(busy, 2, 5)
    assert sent == [5.0, -5.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert halted.tolist() == [False] * 4 + [True] * 4
    # within 3 bars the same orders (flips at 1, 2, 4, 5, 7) never flip three times: no halt
    sent, halted = run_guard(busy, 2, 3)
    assert sent == [float(q) for q in busy] and not halted.any()


def test_the_flip_guard_is_its_plain_python_reference_on_random_orders():
    rng = np.random.default_rng(0)
    halts = 0
    for _ in range(20):
        orders = rng.choice([-2.0, 0.0, 0.0, 3.0], 60)
        sent, halted = run_guard(orders, 3, 8)
        assert sent == flip_reference(orders, 3, 8)
        halts += halted.any()
    assert 0 < halts < 20


# -- in the compiled step -----------------------------------------------------------------------

T, WARM, FLIPS_FROM, JUMP = 44, 20, 24, 34
POLICY = simkit.policy_dict(
    universe={"symbols": ["S0", "S1", "S2"], "bar": "1d"}, signal=None,
    features={"r1": "ret(close, 1)"},
    sizing={"method": "weight", "weight": "where(close < 21, 10%, 30%)"},
    execution={"algo": "market", "participation_cap": 1.0, "rebalance": {"drift": "5%"}},
    compliance={"price_collar": "20%", "flip_guard": {"max_flips": 2, "window": 6}})


@pytest.fixture(scope="module")
def controlled():
    """S0 near 100 jumps 50% to 150 at bar 34; S1 stays near 50; S2 at 20 swings between 22 and
    20 from bar 24: its weight (30% above 21, else 10%) swings with it, and so does its order.
    The first bar after the warm-up (the market model's 20-bar estimates) is bar 20."""
    t = np.arange(T)
    wiggle = 1 + 1e-3 * (-1.0) ** t              # the market model fills on a known volatility
    close = np.stack([np.where(t < JUMP, 100.0, 150.0) * wiggle, 50.0 * wiggle,
                      np.where((t >= FLIPS_FROM) & (t % 2 == 0), 22.0, 20.0 * wiggle)], axis=1)
    sim = simkit.Sim.of(POLICY, ["S0", "S1", "S2"])
    panel = simkit.make_panel(close, symbols=["S0", "S1", "S2"])
    o = sim.run(panel)
    assert np.flatnonzero((o["reasons"][:, 0] & simkit.flag(sim.engine, "warmup")) == 0)[0] \
        == WARM
    return sim.engine, panel, o


@pytest.fixture(scope="module")
def cancelled(controlled):
    policy = copy.deepcopy(POLICY)
    policy["execution"]["remainder"] = "cancel"
    return simkit.Sim.of(policy, ["S0", "S1", "S2"]).run(controlled[1])


def test_a_collar_refuses_a_50_percent_price_jump(controlled):
    eng, panel, o = controlled
    collared = (o["reasons"] & simkit.flag(eng, "price_collar")) != 0
    want = np.zeros((T, 3), bool)
    want[JUMP, 0] = True                      # S0's sell into the jump, and nothing else
    np.testing.assert_array_equal(collared, want)
    assert o["order_qty"][JUMP, 0] == 0 and o["fill_qty"][JUMP + 1, 0] == 0
    # the parent (remainder: carry) keeps the refused sell: sent at the next bar, inside the
    # collar again, for the whole of it: 30% of the equity at the jump's close less the shares
    # held
    held = o["positions"][JUMP, 0]
    assert held == np.trunc(0.3 * o["equity"][WARM] / panel.close[WARM, 0]) > 0
    sell = np.trunc(0.3 * o["equity"][JUMP] / panel.close[JUMP, 0]) - held
    assert sell < 0 and o["parent_qty"][JUMP, 0] == sell
    assert o["order_qty"][JUMP + 1, 0] == sell == o["fill_qty"][JUMP + 2, 0]
    assert o["positions"][-1, 0] == held + sell


def test_under_cancel_the_parent_drops_the_refused_child(controlled, cancelled):
    eng, panel, o = controlled
    c = cancelled
    np.testing.assert_array_equal(c["order_qty"][:JUMP + 1], o["order_qty"][:JUMP + 1])
    np.testing.assert_array_equal(c["reasons"], o["reasons"])
    # the refused sell is not sent again: the parent ended short of it, and the position held
    # (its weight is back inside the drift band, so no rebalance reopens it)
    assert (c["order_qty"][JUMP:, 0] == 0).all() and (c["fill_qty"][JUMP:, 0] == 0).all()
    assert (c["positions"][JUMP:, 0] == o["positions"][JUMP, 0]).all()


def test_an_instrument_flipping_side_three_times_in_six_bars_is_halted(controlled):
    eng, panel, o = controlled
    halted = (o["reasons"] & simkit.flag(eng, "flip_halted")) != 0
    q = o["order_qty"][:, 2]
    # S2 buys at bar 20 and more at 24, sells at 25 and buys at 26 (two flips); the sell it wants
    # at 27 is the third flip within 6 bars: refused, and S2 halted for the rest of the run
    assert (q[[WARM, 24, 26]] > 0).all() and q[25] < 0 and (q[WARM + 1:24] == 0).all()
    assert not halted[:27, 2].any() and halted[27:, 2].all()
    assert (q[27:] == 0).all() and (o["fill_qty"][28:, 2] == 0).all()
    assert (o["positions"][27:, 2] == o["positions"][27, 2]).all()   # its position is held
    assert not halted[:, :2].any()


# -- parents through the artifact, in paper trading -----------------------------------------------
# (tests/test_execution_step.py covers, on the source, TWAP on three seeded thin markets, carry
# against cancel and the monthly book; tests/test_execution_paper.py a paper run of the source
# killed while a parent is half worked. Here: the same through the signed artifact's engine, a
# kill switch that flattens while parents are half worked, and the properties drawn by
# hypothesis, all on one compiled program.)

PT, PH, PCAP = 40, 4, 0.01
PAPER_POLICY = paperkit.POLICY.replace(
    "execution: {algo: market, participation_cap: 50%, max_orders_per_bar: 3}",
    f"execution: {{algo: twap, horizon: {PH}, participation_cap: 1%, rebalance: {{every: 6}}}}"
).replace("  position_max: 40%\n", "  position_max: 40%\n  drawdown:\n"
          "    intraday: {max: 6%, action: flatten, cooldown: 1000d}\n")


@pytest.fixture(scope="module")
def artifact_run(tmp_path_factory):
    """The policy's artifact (built and loaded as `crowe paper` loads it), and the source's
    backtest on the same bars with its compiled runner."""
    from crowe.compiler.export import build
    from crowe.dsl.policy import check_bytes
    from crowe.runtime.artifact import load_artifact
    from crowe.runtime.backtest import backtest, make_runner
    from crowe.runtime.bundled import universe_symbols
    from crowe.runtime.data import load_bars
    assert "twap" in PAPER_POLICY and "intraday" in PAPER_POLICY
    d = tmp_path_factory.mktemp("artifact")
    (d / "p.policy").write_text(PAPER_POLICY)
    paperkit.write_data(d / "bars.parquet", PT)
    result = check_bytes(PAPER_POLICY.encode(), str(d / "p.policy"))
    assert result.ok, result.diagnostics
    symbols, origin = universe_symbols(result.policy, None)
    (d / "p.cpol").write_bytes(build(result.policy, PAPER_POLICY.encode(), symbols, origin))
    art = load_artifact(str(d / "p.cpol")).engine
    panel, _ = load_bars(d / "bars.parquet")
    src = paperkit.engine(d / "p.policy")
    runner = make_runner(src)
    return d, art, backtest(src, panel.select(paperkit.SYMBOLS), runner=runner).out, \
        (src, runner)


@pytest.fixture(scope="module")
def stopped(artifact_run, tmp_path_factory):
    """A paper run of the artifact stopped (after its checkpoint) at a bar where a parent is half
    worked: (state directory, that bar)."""
    d, art, src, _ = artifact_run
    seq = _half_worked(src)
    state = tmp_path_factory.mktemp("stopped") / "state"
    _paper(artifact_run, state).run(_feed(d), limit=seq + 1)
    return state, seq


def _paper(artifact_run, state):
    """A paper runner of the artifact on one compiled program for the whole module (each runner
    would compile its own, the same)."""
    from crowe.runtime.backtest import make_bar_runner
    from crowe.runtime.paper import loop
    art = artifact_run[1]
    if "one_bar" not in _PAPER:
        _PAPER["one_bar"] = make_bar_runner(art)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "make_bar_runner", lambda engine: _PAPER["one_bar"])
        return loop.PaperRunner(art, state, "digest")


_PAPER: dict = {}


def _feed(d):
    from crowe.runtime.paper.feed import ReplayFeed
    return ReplayFeed(str(d / "bars.parquet"), paperkit.SYMBOLS)


def _half_worked(out) -> int:
    """The first bar at which a parent has sent children, some filled, and has more to send."""
    k = np.arange(len(out["parent_start"]))[:, None] - out["parent_start"]
    mid = (out["parent_start"] >= 0) & (k >= 1) & (k <= PH - 2) & (out["order_qty"] != 0)
    return int(np.flatnonzero(mid.any(1))[0])


def test_paper_through_the_artifact_stopped_mid_parent_resumes_as_the_backtest(
        artifact_run, stopped, tmp_path):
    from crowe.runtime.paper import checkpoint as ck
    from crowe.runtime.paper.journal import Journal, decision_digest
    d, art, src, _ = artifact_run
    state, seq = shutil.copytree(stopped[0], tmp_path / "state"), stopped[1]
    carry, _ = ck.load(state, art.init_carry())
    parent = {k: np.asarray(v) for k, v in carry["state"]["parent"].items()}
    assert ((parent["remaining"] != 0) & (parent["remaining"] != parent["qty"])).any()
    _paper(artifact_run, state).run(_feed(d))                       # the restart
    records, _ = Journal(state).read()
    assert len(records) == PT
    for t, rec in enumerate(records):
        assert rec["decision"] == decision_digest({k: src[k][t] for k in src}), t


def test_a_kill_switch_flatten_leaves_no_parent_and_a_flat_book(artifact_run, stopped,
                                                                 tmp_path):
    from crowe.runtime.paper import checkpoint as ck
    from crowe.runtime.paper import commands
    from crowe.runtime.paper.journal import Journal
    d, art, src, _ = artifact_run
    state, seq = shutil.copytree(stopped[0], tmp_path / "state"), stopped[1]
    commands.kill(str(state), flatten=True, reason="")
    _paper(artifact_run, state).run(_feed(d))
    records, _ = Journal(state).read()
    book = paperkit.positions_by_bar(records)
    assert book[seq].any()
    volume = np.array([b.arrays()["volume"] for b in _feed(d)])[seq + 1:]
    bound = paperkit.bars_to_flat_bound(book[seq], volume, PCAP)
    flat = np.flatnonzero(~book.any(1) & (np.arange(PT) > seq))
    assert len(flat) and flat[0] <= seq + bound, (flat[:1], seq + bound)
    assert all(r["trading_state"] == "FLATTENING" for r in records[seq + 1:])
    for t in range(seq + 1, PT):      # orders only toward zero, for what is left of a position
        for sym, qty, _ in records[t]["orders"]:
            assert qty == -book[t][paperkit.SYMBOLS.index(sym)], (t, sym, qty)
    carry, _ = ck.load(state, art.init_carry())
    parent = {k: np.asarray(v) for k, v in carry["state"]["parent"].items()}
    assert (parent["remaining"] == 0).all() and (parent["start"] == -1).all()
    assert not np.asarray(carry["state"]["positions"]).any()


def thin_market(seed: int, vol: float, scale: float):
    """Random walks (`vol` a bar) on volumes thin enough that children fill in part."""
    rng = np.random.default_rng(seed)
    close = simkit.random_walk(rng, PT, 4, vol=vol, start=50.0)
    volume = rng.uniform(1e5, 1e6, (PT, 4)) * scale
    return simkit.ohlc_panel(rng, close, volume=volume, symbols=list(paperkit.SYMBOLS))


def check_parents(o, panel) -> tuple[int, bool]:
    """Fills within the participation cap, each child on its parent's side and at most what is
    left of it (carry: the quantity less the fills), and a flatten (the 6% intraday limit, held
    for good) cancels every parent and reaches zero. Returns (children filled in part,
    flattened)."""
    from crowe.stdlib.states import FLATTENING
    q, f, start, pos = o["order_qty"], o["fill_qty"], o["parent_start"], o["positions"]
    assert (np.abs(f) <= np.floor(PCAP * panel.volume)).all()
    filled, partial = {}, 0
    for t, i in zip(*np.nonzero((q[:-1] != 0) & (start[:-1] >= 0))):
        key, total = (i, start[t, i]), o["parent_qty"][t, i]
        left = total - filled.get(key, 0.0)
        assert np.sign(q[t, i]) == np.sign(total) and abs(q[t, i]) <= abs(left), (t, i)
        filled[key] = filled.get(key, 0.0) + f[t + 1, i]
        partial += 0 < abs(f[t + 1, i]) < abs(q[t, i])
    flat = np.flatnonzero(o["trading_state"] == FLATTENING)
    if len(flat):
        f0 = flat[0]
        assert (flat == np.arange(f0, PT)).all()
        assert (start[f0:] == -1).all() and (o["parent_qty"][f0:] == 0).all()
        bound = paperkit.bars_to_flat_bound(pos[f0], panel.volume[f0 + 1:], PCAP)
        zero = np.flatnonzero(~pos[f0:].any(1))
        assert (len(zero) and zero[0] <= bound) or PT - f0 <= bound
    return partial, bool(len(flat))


@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), vol=st.floats(0.03, 0.15), scale=st.floats(0.02, 0.2))
def test_children_stay_within_the_remainder_fills_within_the_cap_and_flattens_finish(
        artifact_run, seed, vol, scale):
    from crowe.runtime.backtest import backtest
    panel = thin_market(seed, vol, scale)
    check_parents(backtest(artifact_run[3][0], panel, runner=artifact_run[3][1]).out, panel)


def test_the_properties_are_not_vacuous(artifact_run):
    """On these markets children fill in part, and the intraday limit flattens."""
    from crowe.runtime.backtest import backtest
    partial, flattened = [], []
    for seed in range(2):
        panel = thin_market(seed, 0.12, 0.1)
        src, runner = artifact_run[3]
        p, f = check_parents(backtest(src, panel, runner=runner).out, panel)
        partial.append(p)
        flattened.append(f)
    assert all(partial) and any(flattened), (partial, flattened)
