"""Pre-trade controls (SEC 15c3-5, MiFID II RTS 6 art. 15): the price collar refuses a child
priced too far from the last trade, and the repeated-order guard halts an instrument that flips
side too often, each with its reason; by hand-checkable cases on the components under jit, and
in one compiled backtest on a panel with a 50% jump and an instrument that flips every bar."""
from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simkit
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
