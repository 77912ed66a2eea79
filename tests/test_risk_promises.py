"""The promises a risk officer relies on, checked on the book itself over real bundled data:
a drawdown limit bounds the drawdown from the true peak, caps hold on the book after every fill
that adds exposure, a long-only book without leverage never borrows cash, negative cash pays its
financing, and a position that cannot trade still counts in every cap."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import simkit
from crowe.runtime.bundled import default_data
from crowe.runtime.data import load_bars
from crowe.stdlib.states import ACTIVE, FLATTENING, HALTED, REDUCING

POLICIES = Path(__file__).parent.parent / "policies"
TOL = 1e-9


def example(name: str, **sections) -> dict:
    d = yaml.safe_load((POLICIES / f"{name}.policy").read_text())
    for key, value in sections.items():
        d[key] = value
    return d


def panel_for(policy: dict):
    symbols = policy["universe"].get("symbols", "from_data")
    panel, _ = load_bars(default_data(symbols))
    return panel if symbols == "from_data" else panel.select(symbols)


def run(policy: dict, panel=None):
    panel = panel if panel is not None else panel_for(policy)
    sim = simkit.Sim.of(policy, panel.symbols)
    return sim, panel, sim.run(panel)


def at_fill(sim, panel, out):
    """(gross, net, largest position that a fill added to) of the book right after each bar's
    fills, valued at the prices the market model values it at, as fractions of the equity after
    the fills' costs; the mask of bars whose fills added exposure; the cash after the fills."""
    pos, prev = out["positions"], np.vstack([np.zeros(panel.N), out["positions"][:-1]])
    mark = simkit.last_valid_close(panel)
    prev_mark = np.vstack([np.full(panel.N, np.nan), mark[:-1]])
    ref = panel.open if sim.engine.cfg.price == "open" else \
        (panel.high + panel.low + panel.close) / 3
    price = np.where(out["fill_qty"] != 0, out["fill_price"],
                     np.where(panel.valid, ref, prev_mark))
    price = np.where(np.isfinite(price), price, 0.0)
    cash = out["cash"] + out["borrow"]        # before this bar's borrow and financing accrue
    value = pos * price
    E = cash + value.sum(1)
    added = (np.abs(pos) > np.abs(prev) + 0.5) | (np.sign(pos) * np.sign(prev) < 0)
    adds = added.any(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        largest = np.where(added, np.abs(value), 0.0).max(1) / E
        return np.abs(value).sum(1) / E, value.sum(1) / E, largest, adds, cash


# -- drawdown from the true peak ------------------------------------------------------------------

@pytest.fixture(scope="module")
def trend_flatten():
    """ts_trend_v1 with a 10% drawdown limit that flattens: it breaches on the bundled data."""
    risk = dict(example("ts_trend_v1")["risk"])
    risk.pop("trailing_stop")
    risk["drawdown"] = {"from_peak": {"max": "10%", "action": "flatten", "cooldown": "20d"}}
    return run(example("ts_trend_v1", risk=risk))


def test_drawdown_from_the_true_peak_stays_under_the_limit_while_trading(trend_flatten):
    sim, panel, out = trend_flatten
    E, ts = out["equity"], out["trading_state"]
    dd = 1 - E / np.maximum.accumulate(E)
    assert (ts == FLATTENING).any(), "the limit must breach on this data for the test to mean much"
    trading = (ts == ACTIVE) | (ts == REDUCING)
    assert dd[trading].max() < 0.10
    first = np.flatnonzero(ts == FLATTENING)[0]
    assert np.all(ts[first:] == FLATTENING), "a hard limit does not rearm"
    # after the breach the book goes flat at the next bar: the loss beyond the limit is at most
    # the move from the breach's close to the next fill, plus costs
    flat = np.flatnonzero(np.abs(out["positions"]).sum(1) == 0)
    assert flat[flat > first].size and flat[flat > first][0] <= first + 2
    assert dd.max() < 0.10 + 0.05


def test_halt_keeps_the_book_and_says_so():
    """`halt` stops new orders and keeps the losing book: the drawdown may grow, and the state
    says HALTED while it does."""
    risk = dict(example("ts_trend_v1")["risk"])
    risk.pop("trailing_stop")
    risk["drawdown"] = {"from_peak": {"max": "10%", "action": "halt"}}
    sim, panel, out = run(example("ts_trend_v1", risk=risk))
    ts, E = out["trading_state"], out["equity"]
    dd = 1 - E / np.maximum.accumulate(E)
    assert dd[ts == ACTIVE].max() < 0.10
    assert dd[ts == HALTED].min() >= 0.10, "halted exactly while the limit is breached"
    runs = [i for i in range(len(ts) - 5) if np.all(ts[i:i + 5] == HALTED)]
    assert runs, "the limit must hold for a while on this data"
    i = runs[0]
    assert not out["order_qty"][i:i + 5].any()
    np.testing.assert_array_equal(out["positions"][i + 1:i + 5], out["positions"][i:i + 4])


# -- caps on the book -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mv_sector_v1", "ts_trend_v1", "cs_mom_v1", "xs_reversal_v1"])
def test_caps_hold_on_the_book_after_every_fill_that_adds_exposure(name):
    policy = example(name)
    sim, panel, out = run(policy)
    risk = policy["risk"]
    frac = lambda v: float(str(v).rstrip("%")) / (100 if str(v).endswith("%") else 1)  # noqa
    gross, net, largest, adds, _ = at_fill(sim, panel, out)
    assert adds.sum() > 10
    assert np.nanmax(gross[adds]) <= frac(risk["gross_max"]) + TOL
    assert np.nanmax(largest[adds]) <= frac(risk["position_max"]) + TOL
    if "net_max" in risk:
        # a fill that only reduces a position is never cut, and reducing a short raises the
        # net: beyond the cap, no fill added to the side that is too large
        pos, prev = out["positions"], np.vstack([np.zeros(panel.N), out["positions"][:-1]])
        longer = ((pos > 0) & (pos > np.maximum(prev, 0) + 0.5)).any(1)
        shorter = ((pos < 0) & (pos < np.minimum(prev, 0) - 0.5)).any(1)
        cap = frac(risk["net_max"]) + TOL
        assert not (longer & (net > cap)).any() and not (shorter & (net < -cap)).any()


def sma_policy(gross: str, shorting: bool = False) -> dict:
    return simkit.policy_dict(
        universe={"symbols": ["AAPL", "IBM", "MSFT"], "bar": "1d"},
        features={"fast": "mean(close, 10)", "slow": "mean(close, 50)"},
        signal={"mu": "if fast > slow then 1% else -1%", "sigma": "1%"},
        sizing={"method": "equal", "budget": gross},
        risk={"gross_max": gross, "position_max": "100%"},
        compliance={"shorting": {"allowed": shorting}})


def test_a_long_only_book_without_leverage_never_borrows_cash():
    sim, panel, out = run(sma_policy("100%"))
    gross, _, _, adds, cash = at_fill(sim, panel, out)
    assert np.count_nonzero(out["fill_qty"]) > 20
    assert cash.min() >= -TOL * 1e6
    assert np.nanmax(gross[adds]) <= 1.0 + TOL


def test_negative_cash_pays_the_stated_financing_rate():
    sim, panel, out = run(sma_policy("150%"))
    cash_before = out["cash"] + out["borrow"]
    owed = np.maximum(-cash_before, 0.0)
    assert owed.max() > 1e5, "a 150% long book finances half of itself"
    np.testing.assert_allclose(out["borrow"], 0.05 / 252 * owed, rtol=1e-12, atol=1e-9)


# -- a position that cannot trade -----------------------------------------------------------------

def test_a_stuck_position_counts_at_its_last_mark_in_every_cap():
    """One missing close: the instrument cannot trade that bar; its position counts at its last
    mark, and the others are scaled around it."""
    policy = example("ts_trend_v1")
    risk = dict(policy["risk"], gross_max="100%", net_max="100%", position_max="60%")
    policy = example("ts_trend_v1", risk=risk)
    panel = panel_for(policy)
    _, _, base = run(policy, panel)
    weight = np.abs(base["positions"]) * simkit.last_valid_close(panel) / base["equity"][:, None]
    t, i = np.unravel_index(np.nanargmax(np.where(np.isfinite(weight), weight, 0)), weight.shape)
    assert weight[t, i] > 0.2
    close = np.array(panel.close)
    close[t, i] = np.nan
    valid = np.array(panel.valid)
    valid[t, i] = False
    broken = simkit.Panel(ts=panel.ts, symbols=panel.symbols, valid=valid, open=panel.open,
                          high=panel.high, low=panel.low, close=close, volume=panel.volume)
    sim, _, out = run(policy, broken)
    mark = simkit.last_valid_close(broken)
    value = out["positions"] * np.where(np.isfinite(mark), mark, 0.0)
    gross = np.abs(value).sum(1) / out["equity"]
    window = slice(t, t + 40)
    assert gross[window].max() <= 1.10, "the stuck position is not given to the others"
    w = out["weights"][t]
    assert abs(w[i] - value[t, i] / out["equity"][t]) < 1e-12        # held at its last mark
    assert np.abs(w).sum() <= 1.0 + TOL
