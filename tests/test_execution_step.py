"""Parent orders in the compiled step: a monthly book trades monthly, its parents complete, TWAP
children are the slices of each parent, another algorithm works the same targets differently,
carry and cancel differ when a child is partly filled, and on random thin markets children never
exceed their parent's remainder, fills never exceed the participation cap and no parent survives
a flatten."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import simkit
from crowe.runtime.backtest import tca_columns
from crowe.runtime.bundled import default_data
from crowe.runtime.data import load_bars
from crowe.stdlib.states import FLATTENING

SYMBOLS = ["AAPL", "GOOG", "IBM", "MSFT"]
CAP = 0.02
POLICY = {
    "policy": "monthly", "version": "1.0.0", "owner": "CR-001",
    "universe": {"symbols": SYMBOLS, "bar": "1d"},
    "features": {"r1": "ret(close, 1)", "vol": "stdev(r1, 20)"},
    "signal": {"mu": "0.01 + 0 * r1", "sigma": "vol"},
    "sizing": {"method": "inverse_vol", "budget": "90%", "vol_window": 20},
    "risk": {"gross_max": "100%", "position_max": "40%",
             "drawdown": {"intraday": {"max": "8%", "action": "flatten"}}},
    "execution": {"algo": "twap", "horizon": 5, "participation_cap": "2%",
                  "rebalance": {"every": "1mo"}},
    "stand_down": {"data_gap": {"max_missing": "50%", "action": "halt"}},
}


def variant(**execution):
    p = copy.deepcopy(POLICY)
    p["execution"].update(execution)
    return p


@pytest.fixture(scope="module")
def bundled():
    p, _ = load_bars(default_data(SYMBOLS), start="2005-01-01", end="2012-12-31",
                     symbols=SYMBOLS)
    return p


@pytest.fixture(scope="module")
def twap():
    return simkit.Sim.of(POLICY, SYMBOLS)


def thin_market(seed: int, T: int = 160):
    """Volatile random walks on thin volume: children fill in part, and a one-day loss of 8%
    (the intraday limit) happens now and then."""
    rng = np.random.default_rng(seed)
    close = simkit.random_walk(rng, T, 4, vol=0.1)
    return simkit.ohlc_panel(rng, close, volume=rng.uniform(2e3, 3e4, (T, 4)), symbols=SYMBOLS)


def children(o):
    """(t, i, parent id, child, fill) of every child order sent while a parent worked."""
    t, i = np.nonzero((o["order_qty"][:-1] != 0) & (o["parent_start"][:-1] >= 0))
    return t, i, o["parent_start"][t, i], o["order_qty"][t, i], o["fill_qty"][t + 1, i]


def test_a_monthly_book_trades_monthly_and_its_parents_complete(twap, bundled):
    o = twap.run(bundled)
    tca = tca_columns(o)
    years = (bundled.ts[-1] - bundled.ts[0]) / (365.25 * 86_400 * 10**9)
    per_year = len(tca["qty"]) / 4 / years                  # parents per instrument a year
    assert 11 <= per_year <= 13.5, per_year
    opened = np.unique(tca["row"])
    assert 11 <= len(opened) / years <= 13.5
    assert np.mean(tca["filled_fraction"] == 1) > 0.95
    assert np.count_nonzero(o["order_qty"].any(1)) / years <= 5 * 13.5   # 5 slices each
    # commission (1 bps) and half-spread (2 bps) are charged on the fill value: in bps of the
    # value at arrival they are 1 and 2 times avg_fill / arrival
    done = tca["filled_fraction"] > 0
    ratio = tca["avg_fill_price"][done] / tca["arrival_price"][done]
    np.testing.assert_allclose(tca["commission_bps"][done], ratio, rtol=1e-9)
    np.testing.assert_allclose(tca["spread_bps"][done], 2 * ratio, rtol=1e-9)
    np.testing.assert_allclose(tca["price_bps"][done], np.sign(tca["qty"][done]) *
                               (ratio - 1) * 1e4, rtol=1e-9, atol=1e-9)


def test_twap_children_are_the_slices_of_each_parent(twap, bundled):
    o = twap.run(bundled)
    t, i, pid, child, fill = children(o)
    checked = 0
    for key in set(zip(i.tolist(), pid.tolist())):
        mine = (i == key[0]) & (pid == key[1])
        if mine.sum() != 5 or (child[mine] != fill[mine]).any():
            continue                                        # replaced, or partly filled
        q = o["parent_qty"][t[mine][0], key[0]]
        rem, want = q, []
        for k in range(5):
            want.append(np.trunc(rem / (5 - k)))
            rem -= want[-1]
        assert child[mine].tolist() == want, (key, q)
        checked += 1
    assert checked > 100


def test_another_algorithm_works_the_same_targets_differently(twap, bundled):
    a = twap.run(bundled)
    b = simkit.Sim.of(variant(algo="vwap"), SYMBOLS).run(bundled)
    first = np.flatnonzero(a["order_qty"].any(1))[0]
    assert first == np.flatnonzero(b["order_qty"].any(1))[0]
    np.testing.assert_array_equal(a["parent_qty"][first], b["parent_qty"][first])
    np.testing.assert_array_equal(a["weights"][first], b["weights"][first])
    assert not np.array_equal(a["order_qty"], b["order_qty"])
    assert not np.array_equal(a["fill_qty"], b["fill_qty"])
    assert np.mean(tca_columns(b)["filled_fraction"] == 1) > 0.95


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thin_markets_children_fills_and_flattens(twap, seed):
    panel = thin_market(seed)
    o = twap.run(panel)
    t, i, pid, child, fill = children(o)
    assert (fill != child).any(), "the market must fill some children in part"
    filled = {}
    for tt, ii, p, c, f in zip(t, i, pid, child, fill):
        q = o["parent_qty"][tt, ii]
        rem = q - filled.get((ii, p), 0.0)
        assert np.sign(c) == np.sign(q) and abs(c) <= abs(rem), (tt, ii, c, rem)
        filled[(ii, p)] = filled.get((ii, p), 0.0) + f
    vol = np.where(np.isfinite(panel.volume), panel.volume, 0)
    assert (np.abs(o["fill_qty"]) <= np.floor(CAP * vol)).all()
    flat = np.flatnonzero(o["trading_state"] == FLATTENING)
    assert len(flat), "the intraday limit must flatten at least once"
    for f in flat:
        assert (o["parent_start"][f] == -1).all() and (o["parent_qty"][f] == 0).all()
        later = o["parent_start"][f + 1:]
        assert not ((later >= 0) & (later <= f)).any(), "a parent survived a flatten"


def test_carry_and_cancel_differ_when_a_child_is_partly_filled(twap):
    panel = thin_market(0)
    carry = twap.run(panel)
    cancel = simkit.Sim.of(variant(remainder="cancel"), SYMBOLS).run(panel)
    t, i, pid, child, fill = children(carry)
    part = np.flatnonzero((fill != child) & (fill != 0))
    assert len(part)
    t0, i0 = t[part[0]], i[part[0]]
    # up to the first partial fill both books are the same; the next child differs
    assert np.array_equal(carry["order_qty"][:t0 + 1], cancel["order_qty"][:t0 + 1])
    assert carry["order_qty"][t0 + 1, i0] != cancel["order_qty"][t0 + 1, i0]
    rate = [np.abs(x["filled_qty"]).sum() / np.abs(x["qty"]).sum()
            for x in (tca_columns(carry), tca_columns(cancel))]
    assert rate[1] < rate[0]
