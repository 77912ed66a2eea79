import doctest
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from crowe.stdlib import market
from crowe.stdlib.market import (Book, Fills, MarketConfig, Orders, accrue_borrow, apply_fills,
                                  equity, execute, mark_price)

NAN = float("nan")
# One instrument's execution bar: open 101, range 95..105, close 100 (so the VWAP proxy is 100).
BAR = dict(open=101.0, high=105.0, low=95.0, close=100.0, volume=10_000.0, valid=True, adv=1e6,
           vol=0.02)


@pytest.fixture(autouse=True)
def strict_promotion():
    with jax.numpy_dtype_promotion("strict"):
        yield


@partial(jax.jit, static_argnums=0)
def _execute(cfg, orders, open, high, low, close, volume, valid, adv, vol):
    return execute(cfg, orders, open, high, low, close, volume, valid, adv, vol)


def fill_one(qty, limit=NAN, cfg=MarketConfig(), **bar):
    b = {**BAR, **bar}
    arr = lambda x: jnp.array([x], dtype=jnp.float64)
    fields = [arr(b[k]) for k in ("open", "high", "low", "close", "volume")]
    fills = _execute(cfg, Orders(arr(qty), arr(limit)), *fields, jnp.array([b["valid"]]),
                     arr(b["adv"]), arr(b["vol"]))
    return Fills(*(float(x[0]) for x in fills))


def assert_no_fill(f, remaining=0.0):
    assert (f.qty, f.price, f.commission, f.spread, f.impact) == (0.0,) * 5
    assert f.remaining == remaining


def test_doctests():
    assert doctest.testmod(market).failed == 0


# -- fill price and costs ------------------------------------------------------------------------

def test_market_buy_at_open_with_each_cost():
    # 400 shares at 101: notional 40,400; sqrt(400 / 1e6) = 0.02
    f = fill_one(400.0)
    assert (f.qty, f.price, f.remaining) == (400.0, 101.0, 0.0)
    assert f.commission == pytest.approx(4.04, rel=1e-13)       # 1 bp
    assert f.spread == pytest.approx(8.08, rel=1e-13)           # 2 bp
    assert f.impact == pytest.approx(0.1 * 0.02 * 0.02 * 40_400, rel=1e-13)  # 1.616


def test_market_sell_at_vwap_proxy():
    f = fill_one(-400.0, cfg=MarketConfig(price="vwap"))
    assert (f.qty, f.price) == (-400.0, 100.0)
    assert f.commission == pytest.approx(4.0, rel=1e-13)
    assert f.spread == pytest.approx(8.0, rel=1e-13)
    assert f.impact == pytest.approx(1.6, rel=1e-13)


def test_costs_scale_with_config():
    cfg = MarketConfig(commission_bps=0.0, half_spread_bps=10.0, impact_coef=0.0)
    f = fill_one(100.0, cfg=cfg)
    assert (f.commission, f.impact) == (0.0, 0.0)
    assert f.spread == pytest.approx(10.1, rel=1e-13)


# -- participation cap ---------------------------------------------------------------------------

@pytest.mark.parametrize("carry", [False, True])
@pytest.mark.parametrize("side", [1.0, -1.0])
def test_participation_cap_partial_fill(carry, side):
    f = fill_one(side * 1500.0, cfg=MarketConfig(carry_remainder=carry))  # cap 10% of 10,000
    assert f.qty == side * 1000.0
    assert f.remaining == (side * 500.0 if carry else 0.0)
    assert f.commission == pytest.approx(10.1, rel=1e-13)  # costs on the filled 1000 only


def test_order_within_cap_fills_whole_and_carries_nothing():
    f = fill_one(-1000.0, cfg=MarketConfig(carry_remainder=True))
    assert (f.qty, f.remaining) == (-1000.0, 0.0)


# -- limit orders --------------------------------------------------------------------------------

@pytest.mark.parametrize("qty, limit, price", [
    (100.0, 97.0, 97.0),     # buy: bar trades down through 97, fills at the limit
    (100.0, 95.0, 95.0),     # buy: limit exactly at the low still trades
    (100.0, 102.0, 101.0),   # buy: limit above the open, fills at the open
    (-100.0, 104.0, 104.0),  # sell: bar trades up through 104, fills at the limit
    (-100.0, 105.0, 105.0),  # sell: limit exactly at the high
    (-100.0, 99.0, 101.0),   # sell: limit below the open, fills at the open
])
def test_limit_orders_that_trade_through(qty, limit, price):
    f = fill_one(qty, limit)
    assert (f.qty, f.price) == (qty, price)
    assert f.commission == pytest.approx(100 * price * 1e-4, rel=1e-13)


@pytest.mark.parametrize("qty, limit", [(100.0, 94.99), (-100.0, 105.01)])
@pytest.mark.parametrize("carry", [False, True])
def test_limit_orders_that_do_not_trade(qty, limit, carry):
    f = fill_one(qty, limit, cfg=MarketConfig(carry_remainder=carry))
    assert_no_fill(f, remaining=qty if carry else 0.0)


@pytest.mark.parametrize("qty, limit, price", [(100.0, 99.0, 99.0), (100.0, 103.0, 100.0),
                                               (-100.0, 101.0, 101.0), (-100.0, 96.0, 100.0)])
def test_limit_orders_under_vwap(qty, limit, price):
    f = fill_one(qty, limit, cfg=MarketConfig(price="vwap"))
    assert (f.qty, f.price) == (qty, price)


# -- fail closed ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bar", [
    dict(valid=False), dict(open=NAN), dict(high=math.inf), dict(low=NAN), dict(close=NAN),
    dict(volume=0.0), dict(volume=NAN), dict(open=-1.0), dict(low=102.0),  # low above the open
    dict(high=100.5),  # high below the open
    dict(adv=NAN), dict(adv=0.0), dict(vol=0.0), dict(vol=-0.01), dict(vol=math.inf),
])
@pytest.mark.parametrize("carry", [False, True])
def test_bad_bar_or_estimate_means_no_fill_and_no_cost(bar, carry):
    f = fill_one(400.0, cfg=MarketConfig(carry_remainder=carry), **bar)
    assert_no_fill(f, remaining=400.0 if carry else 0.0)


@pytest.mark.parametrize("qty, limit", [(NAN, NAN), (math.inf, NAN), (-math.inf, 97.0),
                                        (100.0, math.inf), (-100.0, -math.inf), (0.0, NAN)])
def test_bad_or_empty_order_is_dropped(qty, limit):
    assert_no_fill(fill_one(qty, limit, cfg=MarketConfig(carry_remainder=True)))


def test_vectorised_matches_one_instrument_at_a_time():
    cases = [dict(qty=400.0), dict(qty=-1500.0), dict(qty=100.0, limit=97.0),
             dict(qty=100.0, limit=90.0), dict(qty=NAN), dict(qty=400.0, valid=False)]
    cfg = MarketConfig(carry_remainder=True)
    one = [fill_one(c["qty"], c.get("limit", NAN), cfg, valid=c.get("valid", True)) for c in cases]
    col = lambda key, default: jnp.array([c.get(key, default) for c in cases])
    rep = lambda key: jnp.full(len(cases), BAR[key])
    many = _execute(cfg, Orders(col("qty", 0.0), col("limit", NAN)), rep("open"), rep("high"),
                    rep("low"), rep("close"), rep("volume"), col("valid", True), rep("adv"),
                    rep("vol"))
    for i, f in enumerate(one):
        assert tuple(float(x[i]) for x in many) == tuple(f)


def test_config_is_validated():
    for bad in [dict(price="close"), dict(participation_cap=0.0), dict(participation_cap=1.5),
                dict(commission_bps=-1.0), dict(impact_coef=NAN), dict(bars_per_year=0.0),
                dict(carry_remainder=1), dict(half_spread_bps=True)]:
        with pytest.raises(ValueError):
            MarketConfig(**bad)
    assert hash(MarketConfig()) == hash(MarketConfig())


# -- book keeping --------------------------------------------------------------------------------

def test_apply_fills_pays_price_and_costs():
    fills = Fills(*(jnp.array(x) for x in ([400.0, -100.0], [101.0, 50.0], [4.04, 0.5],
                                            [8.08, 1.0], [1.616, 0.25], [0.0, 0.0])))
    book = apply_fills(Book(jnp.float64(100_000.0), jnp.array([0.0, 10.0])), fills)
    assert float(book.cash) == pytest.approx(100_000 - 40_400 + 5_000 - 13.736 - 1.75, rel=1e-14)
    assert book.positions.tolist() == [400.0, -90.0]


def test_borrow_accrues_on_shorts_only():
    cfg = MarketConfig(borrow_bps_annual=50.0, bars_per_year=252.0)
    book = Book(jnp.float64(1_000.0), jnp.array([-100.0, 30.0, 0.0]))
    new, cost = accrue_borrow(cfg, book, jnp.array([50.0, 20.0, NAN]))
    assert float(cost) == pytest.approx(0.005 / 252 * 5_000, rel=1e-14)
    assert float(new.cash) == pytest.approx(1_000 - 0.005 / 252 * 5_000, rel=1e-14)
    assert new.positions.tolist() == book.positions.tolist()


def test_borrow_uses_last_valid_close_and_never_poisons_cash():
    cfg = MarketConfig()
    book = Book(jnp.float64(0.0), jnp.array([-100.0, -10.0]))
    _, cost = accrue_borrow(cfg, book, jnp.array([NAN, NAN]), jnp.array([40.0, NAN]))
    assert float(cost) == pytest.approx(0.005 / 252 * 4_000, rel=1e-14)
    _, cost = accrue_borrow(cfg, book, jnp.array([50.0, 5.0]), jnp.array([40.0, 4.0]),
                            jnp.array([False, True]))
    assert float(cost) == pytest.approx(0.005 / 252 * (4_000 + 50), rel=1e-14)
    assert float(accrue_borrow(MarketConfig(borrow_bps_annual=0.0), book, jnp.ones(2))[1]) == 0.0


def test_equity_marks_at_last_valid_close():
    book = Book(jnp.float64(500.0), jnp.array([10.0, -5.0, 0.0]))
    close, last = jnp.array([12.0, NAN, NAN]), jnp.array([11.0, 20.0, NAN])
    assert float(equity(book, close, last)) == 500 + 120 - 100
    assert float(equity(book, close, last, jnp.array([False, True, True]))) == 500 + 110 - 100
    assert math.isnan(float(equity(book, close, jnp.full(3, NAN))))  # a position with no mark


def test_mark_price_is_the_last_valid_close_update():
    last = jnp.full(2, NAN)
    for close, valid, expect in [([10.0, NAN], [True, False], [10.0, NAN]),
                                 ([NAN, 7.0], [False, True], [10.0, 7.0]),
                                 ([11.0, 8.0], [False, True], [10.0, 8.0])]:
        last = mark_price(jnp.array(close), last, jnp.array(valid))
        np.testing.assert_array_equal(np.asarray(last), expect)


# -- simulations: properties, reconciliation, bit-for-bit ---------------------------------------

T, N = 8, 3
CONFIGS = [MarketConfig(),
           MarketConfig(price="vwap", carry_remainder=True, participation_cap=0.05,
                        commission_bps=3.0, half_spread_bps=7.5, impact_coef=0.5,
                        borrow_bps_annual=300.0, bars_per_year=52.0),
           MarketConfig(carry_remainder=True, participation_cap=1.0, commission_bps=0.0,
                        half_spread_bps=0.0, impact_coef=0.0, borrow_bps_annual=0.0)]


def _bar_step(cfg, carry, x):
    book, remaining, last = carry
    qty, limit, open, high, low, close, volume, valid, adv, vol = x
    fills = execute(cfg, Orders(qty + remaining, limit), open, high, low, close, volume, valid,
                    adv, vol)
    book = apply_fills(book, fills)
    last = mark_price(close, last, valid)
    book, borrow = accrue_borrow(cfg, book, close, last, valid)
    nav = equity(book, close, last, valid)
    return (book, fills.remaining, last), (fills, borrow, book, nav)


def _initial(cash):
    return Book(jnp.float64(cash), jnp.zeros(N)), jnp.zeros(N), jnp.full(N, NAN)


@partial(jax.jit, static_argnums=0)
def simulate(cfg, cash, xs):
    return jax.lax.scan(partial(_bar_step, cfg), _initial(cash), xs)[1]


step_jit = jax.jit(_bar_step, static_argnums=0)


@st.composite
def scenarios(draw):
    f = lambda lo, hi, **kw: hnp.arrays(np.float64, (T, N), elements=st.floats(lo, hi, **kw))
    mask = lambda: hnp.arrays(np.bool_, (T, N))
    rare = lambda: draw(mask()) & draw(mask()) & draw(mask())
    open, close = draw(f(1.0, 1_000.0)), draw(f(1.0, 1_000.0))
    high = np.maximum(open, close) * (1 + draw(f(0.0, 0.1)))
    low = np.minimum(open, close) * (1 - draw(f(0.0, 0.1)))
    volume = np.where(rare(), 0.0, draw(f(0.0, 1e6)))
    qty = np.where(rare(), 0.0, draw(f(-2e5, 2e5)))
    qty = np.where(rare(), NAN, qty)
    limit = np.where(draw(mask()), NAN, open * (1 + draw(f(-0.12, 0.12))))
    valid = ~rare()
    bars = [np.where(valid, x, NAN) for x in (open, high, low, close, volume)]
    adv = np.where(rare(), NAN, draw(f(1.0, 1e7)))
    vol = np.where(rare(), 0.0, draw(f(1e-4, 0.1)))
    return draw(st.sampled_from(CONFIGS)), draw(st.floats(1e3, 1e9)), (
        qty, limit, *bars, valid, adv, vol)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_simulation_properties_and_exact_reconciliation(scenario):
    cfg, cash, xs = scenario
    fills, borrow, book, nav = jax.tree.map(np.asarray, simulate(cfg, cash, xs))
    volume = xs[6]
    costs = fills.commission + fills.spread + fills.impact
    for leaf in (*fills, borrow, *book, nav):
        assert np.all(np.isfinite(leaf))
    assert np.all(np.abs(fills.qty) <= cfg.participation_cap * np.nan_to_num(volume))
    assert np.all(costs >= 0) and np.all(borrow >= 0)
    idle = fills.qty == 0
    assert np.all(fills.price[idle] == 0) and np.all(costs[idle] == 0)
    assert np.all(np.sign(fills.qty[~idle]) == np.sign(fills.qty[~idle] + fills.remaining[~idle]))
    if not cfg.carry_remainder:
        assert np.all(fills.remaining == 0)
    _assert_reconciles(cash, xs[5], fills, costs, borrow, book, nav)


def _assert_reconciles(cash, close, fills, costs, borrow, book, nav):
    mark = np.full(N, NAN)
    for t in range(T):
        mark = np.where(np.isfinite(close[t]), close[t], mark)
        traded = fills.qty[: t + 1]
        pnl = np.sum(np.where(traded != 0, traded * (mark - fills.price[: t + 1]), 0.0))
        paid = costs[: t + 1].sum() + borrow[: t + 1].sum()
        expect = cash + pnl - paid
        scale = cash + np.abs(traded * fills.price[: t + 1]).sum()
        assert abs(nav[t] - expect) <= 1e-9 * scale
        np.testing.assert_array_equal(book.positions[t], traded.sum(axis=0))


def test_scan_matches_bar_by_bar_bit_for_bit():
    rng = np.random.default_rng(7)
    open = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, N)), axis=0))
    close = open * np.exp(rng.normal(0, 0.01, (T, N)))
    high, low = np.maximum(open, close) * 1.01, np.minimum(open, close) * 0.99
    valid = rng.random((T, N)) > 0.1
    qty = rng.normal(0, 3_000, (T, N)).round()
    limit = np.where(rng.random((T, N)) > 0.5, NAN, open * (1 + rng.normal(0, 0.01, (T, N))))
    bars = [np.where(valid, x, NAN) for x in (open, high, low, close, rng.uniform(1e3, 1e5, (T, N)))]
    xs = (qty, limit, *bars, valid, np.full((T, N), 5e4), np.full((T, N), 0.015))
    for cfg in CONFIGS:
        scanned = simulate(cfg, 1e6, xs)
        carry, rows = _initial(1e6), []
        for t in range(T):
            carry, out = step_jit(cfg, carry, tuple(jnp.asarray(x[t]) for x in xs))
            rows.append(out)
        looped = jax.tree.map(lambda *r: np.stack(r), *rows)
        for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(looped)):
            np.testing.assert_array_equal(np.asarray(a).view(np.int64), np.asarray(b).view(np.int64))
        assert np.any(np.asarray(scanned[0].qty) != 0)
