"""Protective exits (`execution.exits`) and `execution.lot`, on hand-checkable cases.

One compiled program (module fixture) runs a synthetic panel in which each instrument plays one
scripted case: a long whose low crosses its 5% stop, a gap through the stop, a take-profit, a
trailing stop that trailed the highest high, a short's gap through its stop and its
take-profit, a stop that fires while the TWAP parent is half worked, an exit larger than the
participation cap, and a price whose target is a fractional number of shares. Every fill price
is compared with the number computed by hand. The ATR distance, the order of a stop and a
take-profit inside one bar and the lots are tested on the component and the market model
under `jit` (no compile of a whole step).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simkit
from crowe.dsl.policy import check_text
from crowe.runtime.trades import exit_metrics, panel_trades
from crowe.stdlib import market as mk
from crowe.stdlib.exits import protective

T = 52
FIRST = 20            # the first decision after the warm-up (the market model's 20-bar estimates)
REBALANCE = 30        # bars between rebalances: the next one is at bar 50
SYMBOLS = ("STOP", "GAP", "TAKE", "TRAIL", "SHORT_GAP", "SHORT_TAKE", "HALF", "CAPPED", "FRAC")
PRICE = (100, 100, 100, 100, 200, 200, 100, 100, 300)


def _panel():
    N = len(SYMBOLS)
    base = np.array(PRICE, float)
    wiggle = 1 + 0.002 * (np.arange(T) % 2)               # closes alternate: a finite volatility
    o = np.tile(base, (T, 1))
    c = o * wiggle[:, None]
    h, lo = np.maximum(o, c) * 1.005, np.minimum(o, c) * 0.995
    vol = np.full((T, N), 1e6)

    def bar(t, i, open_, high, low, close, volume=None):
        o[t, i], h[t, i], lo[t, i], c[t, i] = open_, high, low, close
        if volume is not None:
            vol[t, i] = volume

    bar(30, 0, 99.0, 99.5, 94.0, 96.0)        # STOP: the low crosses 95
    bar(31, 1, 93.0, 94.0, 92.0, 93.5)        # GAP: opens below 95
    bar(32, 2, 105.0, 111.0, 104.5, 108.0)    # TAKE: the high reaches 110
    for k, t in enumerate(range(26, 30)):     # TRAIL: climbs to a high of 108 * 1.005
        p = 102.0 + 2 * k
        bar(t, 3, p, p * 1.005, p * 0.999, p)
    bar(30, 3, 104.0, 104.5, 99.0, 100.0)     # ... then falls through 0.92 of that high
    bar(30, 4, 215.0, 216.0, 213.0, 214.0)    # SHORT_GAP: opens above 210
    bar(30, 5, 185.0, 186.0, 179.0, 181.0)    # SHORT_TAKE: the low reaches 180
    bar(23, 6, 99.0, 99.5, 94.0, 96.0)        # HALF: the stop fires after 2 of 4 children
    bar(30, 7, 99.0, 99.5, 94.0, 96.0, 400.0)  # CAPPED: only 400 shares can trade
    bar(31, 7, 96.0, 97.0, 95.5, 96.5)
    return simkit.make_panel(c, open=o, high=h, low=lo, volume=vol, symbols=SYMBOLS)


POLICY = simkit.policy_dict(
    signal=None, universe={"symbols": list(SYMBOLS), "bar": "1d"},
    sizing={"method": "weight", "weight": "where(close < 150, 10%, where(close < 250, -10%, "
                                          "10%))"},
    execution={"algo": "twap", "horizon": 4, "participation_cap": 1.0, "lot": "fractional",
               "rebalance": {"every": REBALANCE},
               "exits": {"stop_loss": "5%", "take_profit": "10%", "trailing_stop": "8%"}})


@pytest.fixture(scope="module")
def run():
    sim = simkit.Sim.of(POLICY, SYMBOLS)
    return sim.engine, sim.run(_panel())


def _fills(out, i):
    t = np.flatnonzero(out["fill_qty"][:, i])
    return [(int(k), float(out["fill_qty"][k, i]), float(out["fill_price"][k, i])) for k in t]


def _reason(engine, out, t, i):
    return [r for r in protective.REASONS if out["reasons"][t, i] & simkit.flag(engine, r)]


def test_the_parents_build_the_positions_at_the_open(run):
    engine, out = run
    assert np.count_nonzero(out["order_qty"][:FIRST]) == 0
    builds = _fills(out, 0)[:4]
    assert builds == [(t, 250.0, 100.0) for t in range(FIRST + 1, FIRST + 5)]


def test_a_long_stop_fills_at_entry_times_095_when_the_low_crosses(run):
    engine, out = run
    assert out["stop_price"][29, 0] == pytest.approx(95.0, abs=1e-12)   # placed at bar 29
    assert _fills(out, 0)[4] == (30, -1000.0, pytest.approx(95.0, abs=1e-12))
    assert _reason(engine, out, 30, 0) == ["stop_loss"]
    assert out["positions"][30, 0] == 0


def test_a_gap_through_the_stop_fills_at_the_open(run):
    engine, out = run
    assert _fills(out, 1)[4] == (31, -1000.0, 93.0)
    assert _reason(engine, out, 31, 1) == ["stop_loss"]


def test_take_profit_fills_at_entry_times_110(run):
    engine, out = run
    assert out["take_price"][31, 2] == pytest.approx(110.0, abs=1e-12)
    assert _fills(out, 2)[4] == (32, -1000.0, pytest.approx(110.0, abs=1e-12))
    assert _reason(engine, out, 32, 2) == ["take_profit"]


def test_the_trailing_stop_trails_the_highest_high(run):
    engine, out = run
    level = 108.0 * 1.005 * 0.92                      # the high of bar 29, less 8%
    assert out["stop_price"][29, 3] == pytest.approx(level, rel=1e-12)
    assert out["stop_price"][29, 3] > out["stop_price"][27, 3] > 95.0   # it only rises
    assert out["stop_price"][25, 3] == pytest.approx(95.0)    # the stop-loss was tighter then
    t, q, p = _fills(out, 3)[4]
    assert (t, q) == (30, -1000.0) and p == pytest.approx(level, rel=1e-12)
    assert _reason(engine, out, 30, 3) == ["trailing_stop"]


def test_a_short_is_the_mirror_image(run):
    engine, out = run
    assert [f[1] for f in _fills(out, 4)[:4]] == [-125.0] * 4       # 10% of 1e6 at 200
    assert out["stop_price"][29, 4] == pytest.approx(210.0, abs=1e-12)
    assert _fills(out, 4)[4] == (30, 500.0, 215.0)                   # gap: the open
    assert _reason(engine, out, 30, 4) == ["stop_loss"]
    assert out["take_price"][29, 5] == pytest.approx(180.0, abs=1e-12)
    assert _fills(out, 5)[4] == (30, 500.0, pytest.approx(180.0, abs=1e-12))
    assert _reason(engine, out, 30, 5) == ["take_profit"]


def test_an_exit_cancels_the_half_worked_parent(run):
    engine, out = run
    f = _fills(out, 6)
    assert f[:3] == [(21, 250.0, 100.0), (22, 250.0, 100.0),
                     (23, -500.0, pytest.approx(95.0, abs=1e-12))]
    assert out["parent_qty"][22, 6] == 1000.0 and out["parent_qty"][23, 6] == 0.0
    assert np.count_nonzero(out["order_qty"][23:50, 6]) == 0


def test_an_exit_above_the_cap_fills_the_cap_then_closes_at_the_next_open(run):
    engine, out = run
    assert _fills(out, 7)[4:6] == [(30, -400.0, pytest.approx(95.0, abs=1e-12)),
                                   (31, -600.0, 96.0)]
    assert out["order_qty"][30, 7] == -600.0 and np.isnan(out["stop_price"][30, 7])


def test_no_reentry_until_the_next_rebalance(run):
    engine, out = run
    for i, done in ((0, 30), (1, 31), (2, 32), (3, 30), (4, 30), (5, 30), (6, 23), (7, 31)):
        assert np.count_nonzero(out["order_qty"][done:50, i]) == 0, SYMBOLS[i]
        assert np.all(out["positions"][done:51, i] == 0), SYMBOLS[i]
        assert out["order_qty"][50, i] != 0, SYMBOLS[i]        # the rebalance re-enters


def test_fractional_lots_trade_fractions_of_a_share(run):
    engine, out = run
    q = [f[1] for f in _fills(out, 8)[:4]]
    assert sum(q) == pytest.approx(1e5 / 300, rel=1e-12)
    assert all(x != round(x) for x in q)
    early = out["fill_qty"][:50, :8]              # 10% of 1e6 at 100 or 200: whole numbers
    assert np.all(early == np.round(early))
    assert np.any(out["fill_qty"][51] != np.round(out["fill_qty"][51]))   # of the new equity


def test_trades_say_why_they_ended(run):
    engine, out = run
    trades = panel_trades(out["fill_qty"], out["fill_price"], out["fill_cost"], SYMBOLS,
                          out["reasons"], engine.reasons)
    first = {t.symbol: t.exit_reason for t in trades if t.closed and t.entry_bar == 21}
    assert first == {"STOP": "stop_loss", "GAP": "stop_loss", "TAKE": "take_profit",
                     "TRAIL": "trailing_stop", "SHORT_GAP": "stop_loss",
                     "SHORT_TAKE": "take_profit", "HALF": "stop_loss", "CAPPED": "stop_loss"}
    assert exit_metrics(trades)["exits_stop_loss"] == 5


# -- the component and the market model, under jit -----------------------------------------------

def _wilder_atr(h, lo, c, n):
    tr = np.maximum(h[1:] - lo[1:], np.maximum(abs(h[1:] - c[:-1]), abs(lo[1:] - c[:-1])))
    avg = tr[:n].mean()
    out = [np.nan] * n + [avg]
    for x in tr[n:]:
        avg += (x - avg) / n
        out.append(avg)
    return np.array(out)


def test_an_atr_stop_lies_the_hand_computed_multiple_from_the_entry():
    """A short opened at bar 8: its stop-loss is 101 + 3 ATR and its trailing stop the lowest
    low since entry + 2.5 ATR, the ATR (Wilder's, over 5 bars) fixed at the bar of the entry;
    the lower of the two is sent."""
    rng = np.random.default_rng(7)
    n, bars, opened = 5, 14, 8
    c = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(bars)))
    h, lo = c * (1 + 0.01 * rng.random(bars)), c * (1 - 0.01 * rng.random(bars))
    atr0 = _wilder_atr(h, lo, c, n)[opened]
    t = protective.make(protective.Settings(stop_loss=f"3 atr({n})",
                                            trailing_stop=f"2.5 atr({n})"))
    step = jax.jit(lambda i, s: t.update(i, s, None))
    s, stops, kinds = t.init(None), [], []
    for k in range(bars):
        held = k >= opened
        ins = {"pos": jnp.array([-10.0 if held else 0.0]),
               "prev_pos": jnp.array([-10.0 if k > opened else 0.0]),
               "entry": jnp.array([101.0 if held else np.nan]), "hit": jnp.zeros(1),
               "bar": {"high": jnp.array([h[k]]), "low": jnp.array([lo[k]]),
                       "close": jnp.array([c[k]])}}
        out, _, s = step(ins, s)
        stops.append(float(out["stop"][0]))
        kinds.append(int(s["kind"][0]))
    assert np.isnan(stops[:opened]).all()
    expect = np.minimum(101.0 + 3 * atr0, np.minimum.accumulate(lo[opened:]) + 2.5 * atr0)
    np.testing.assert_allclose(stops[opened:], expect, rtol=1e-12)
    trailing = np.minimum.accumulate(lo[opened:]) + 2.5 * atr0 < 101.0 + 3 * atr0
    assert kinds[opened:] == [3 if x else 1 for x in trailing]


def test_the_stop_comes_first_unless_the_open_is_through_the_take():
    one = lambda *x: jnp.array(x, jnp.float64)             # noqa: E731
    f = jax.jit(lambda o, h, lo, pos: mk.exit_fills(
        mk.MarketConfig(), mk.Exits(one(95.0, 105.0), one(110.0, 90.0)), pos, o, h, lo,
        (h + lo) / 2, one(1e6, 1e6), jnp.array([True, True]), one(1e6, 1e6), one(0.02, 0.02)))
    pos = one(100.0, -100.0)
    fills, hit = f(one(100.0, 100.0), one(111.0, 106.0), one(94.0, 89.0), pos)
    assert fills.price.tolist() == [95.0, 105.0] and hit.tolist() == [1, 1]
    fills, hit = f(one(112.0, 88.0), one(113.0, 89.0), one(94.0, 87.0), pos)   # opens past T
    assert fills.price.tolist() == [112.0, 88.0] and hit.tolist() == [2, 2]
    assert fills.qty.tolist() == [-100.0, 100.0]
    fills, hit = f(one(100.0, 100.0), one(101.0, 101.0), one(99.0, 99.0), pos)  # inside: none
    assert fills.qty.tolist() == [0.0, 0.0] and hit.tolist() == [0, 0]


def test_lots_round_fills_and_caps_to_whole_shares_unless_fractional():
    one = lambda x: jnp.array([x], jnp.float64)             # noqa: E731
    for lot, expect in (("whole", 12.0), ("fractional", 12.75)):
        cfg = mk.MarketConfig(lot=lot, participation_cap=0.5)
        f = mk.execute(cfg, mk.Orders(one(20.0), one(jnp.nan)), one(10.0), one(11.0),
                       one(9.0), one(10.0), one(25.5), jnp.array([True]), one(1e6), one(0.02))
        assert float(f.qty[0]) == expect
    with pytest.raises(ValueError, match="lot"):
        mk.MarketConfig(lot="half")


@pytest.mark.parametrize("text, problem", [
    ("{}", "sets no exit"), ("{stop_loss: 150%}", "between 0 and 100%"),
    ("{stop_loss: 3 atrs}", "`3 atr`"), ("{take_profit: 0 atr}", "multiple")])
def test_bad_exits_are_refused_with_a_hint(text, problem):
    import yaml
    d = dict(POLICY, execution=dict(POLICY["execution"]))
    src = yaml.safe_dump(d, sort_keys=False).replace(
        "exits:\n    stop_loss: 5%\n    take_profit: 10%\n    trailing_stop: 8%\n",
        f"exits: {text}\n")
    assert f"exits: {text}" in src
    result = check_text(src, "<test>")
    assert not result.ok
    text_out = " ".join(d.message + " " + str(d.help or "") for d in result.errors)
    assert problem in text_out, text_out



def test_a_paper_cancel_drops_the_resting_exits_so_nothing_fills_during_a_halt():
    """The operator's kill or halt cancels the working orders and the stops and take-profits
    resting with the broker: a bar that trades through both levels fills nothing after it."""
    from crowe.runtime.paper.loop import PaperBroker
    one = lambda *x: jnp.array(x, jnp.float64)             # noqa: E731
    carry = {"qty": one(5.0, -5.0), "limit": one(jnp.nan, 101.0),
             "stop": one(95.0, 105.0), "take": one(110.0, 90.0)}
    dropped = PaperBroker.cancel(carry)
    assert not np.asarray(dropped["qty"]).any() and np.isnan(dropped["limit"]).all()
    assert np.isnan(dropped["stop"]).all() and np.isnan(dropped["take"]).all()
    fills, hit = mk.exit_fills(
        mk.MarketConfig(), mk.Exits(dropped["stop"], dropped["take"]), one(100.0, -100.0),
        one(100.0, 100.0), one(120.0, 120.0), one(80.0, 80.0), one(100.0, 100.0),
        one(1e6, 1e6), jnp.array([True, True]), one(1e6, 1e6), one(0.02, 0.02))
    assert not np.asarray(fills.qty).any() and not np.asarray(hit).any()
