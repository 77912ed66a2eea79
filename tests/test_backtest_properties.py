"""Properties of every simulated bar, over random markets and random parameter values.

Markets are geometric random walks with random volatility per instrument, random volume (thin
enough that the participation cap binds), random invalid bars and the odd crash. Parameters are
drawn within their declared ranges. Each policy is compiled once for a fixed shape; parameters
are traced arrays, so every example runs the same executable.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simkit
from crowe.stdlib.states import FLATTENING, HALTED

T = 90
SYMBOLS = ("AAA", "BBB", "CCC", "DDD", "EEE")
N = len(SYMBOLS)
CASH = 1e6
TOL = 1e-12

KELLY = simkit.policy_dict(
    universe={"symbols": list(SYMBOLS), "bar": "1d"},
    params={"formation": {"default": 5, "range": [2, 15]},
            "theta": {"default": 0.55, "range": [0.5, 0.7]},
            "ic": {"default": 0.2, "range": [0.02, 1.0]}},
    features={"r1": "ret(close, 1)", "vol": "stdev(r1, 10)",
              "mom": "zscore(ret(close, formation))", "liq": "mean(close * volume, 5)"},
    signal={"horizon": "1d", "mu": "ic * mom * vol", "sigma": "vol"},
    gates={"edge": "prob_edge > theta", "liquid": "liq > 1e5"},
    sizing={"method": "kelly_tempered", "lambda": 0.5},
    risk={"gross_max": 1.5, "net_max": "30%", "position_max": "40%",
          "var": {"confidence": "95%", "window": 20, "max": "4%"},
          "drawdown": {"intraday": {"max": "8%", "action": "flatten", "cooldown": "3d"}}},
    execution={"algo": "limit", "participation_cap": "10%", "limit_offset": "3bps",
               "max_orders_per_bar": 4},
    stand_down={"data_gap": {"max_missing": "30%", "action": "halt"},
                "vol_spike": {"sigma": 4, "window": 10, "action": "exclude"}},
    compliance={"restricted": ["EEE"], "max_order_shares": 20000,
                "shorting": {"allowed": True, "locate_required": True, "locates": ["AAA"]}})

PORTFOLIO = simkit.policy_dict(
    universe={"symbols": list(SYMBOLS), "bar": "1d",
              "sectors": {"AAA": "tech", "BBB": "tech", "CCC": "energy", "DDD": "energy"}},
    params={"turb_max": {"default": 3.0, "range": [1.0, 6.0]},
            "k": {"default": 0.1, "range": [0.01, 0.5]}},
    features={"r1": "ret(close, 1)", "vol": "stdev(r1, 15)",
              "alpha": "k * (0.6 * zscore(ret(close, 10)) - 0.4 * zscore(ret(close, 3))) * vol"},
    signal={"horizon": "1d", "mu": "alpha", "sigma": "vol"},
    sizing=None,
    portfolio={"method": "mean_variance", "risk_aversion": 2, "turnover_penalty": "5bps",
               "covariance": {"estimator": "ledoit_wolf", "window": 20}, "iterations": 50},
    risk={"gross_max": 1.0, "net_max": "20%", "position_max": "35%", "sector_max": "50%",
          "es": {"confidence": "97.5%", "window": 20, "max": "5%"},
          "drawdown": {"from_peak": {"max": "10%", "action": "halt", "cooldown": "5d"}}},
    execution={"algo": "market", "participation_cap": "5%", "price": "vwap"},
    stand_down={"data_gap": {"max_missing": "30%", "action": "halt", "cooldown": "2d"},
                "turbulence": {"when": "turbulence(r1, 15) > turb_max",
                               "action": "reduce(50%)", "cooldown": "3d"}},
    compliance={"restricted": ["EEE"],
                "shorting": {"allowed": True, "locate_required": True, "locates": ["CCC"]}})

TREND = simkit.policy_dict(
    universe={"symbols": list(SYMBOLS), "bar": "1d"},
    params={"fast": {"default": 5, "range": [2, 10]}, "slow": {"default": 20, "range": [11, 30]}},
    features={"r1": "ret(close, 1)", "vol": "stdev(r1, 10)",
              "trend": "(ema(close, fast) - ema(close, slow)) / close"},
    signal={"horizon": "1d", "mu": "if trend > 0 then 0.5 * vol else -0.5 * vol", "sigma": "vol"},
    gates={"trending": "abs(trend) > 0.5%"},
    sizing={"method": "vol_target", "vol_target": "20%", "vol_window": 10},
    risk={"gross_max": 2.0, "net_max": 1.5, "position_max": "60%",
          "trailing_stop": {"multiple": 2, "window": 10, "action": "flatten", "cooldown": "3d"}},
    execution={"algo": "market", "participation_cap": "20%",
               "costs": {"borrow": "2%"}},
    stand_down={"data_gap": {"max_missing": "40%", "action": "halt"},
                "loss_streak": {"losses": 4, "action": "reduce(50%)", "cooldown": "2d"}},
    compliance={"max_order_notional": 2e5})

POLICIES = {"kelly": KELLY, "portfolio": PORTFOLIO, "trend": TREND}


@pytest.fixture(scope="module", params=sorted(POLICIES))
def sim(request):
    return request.param, simkit.Sim.of(POLICIES[request.param], SYMBOLS, CASH)


@st.composite
def markets(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    vol = draw(st.floats(0.002, 0.06))
    p_invalid = draw(st.sampled_from([0.0, 0.02, 0.1]))
    thin = draw(st.booleans())
    rng = np.random.default_rng(seed)
    vols = vol * rng.uniform(0.5, 1.5, N)
    close = simkit.random_walk(rng, T, N, vol=vols, drift=draw(st.floats(-0.003, 0.003)))
    if draw(st.booleans()):                       # a crash day
        close[rng.integers(30, T):] *= draw(st.floats(0.6, 0.95))
    volume = rng.lognormal(np.log(3e4 if thin else 3e6), 0.5, (T, N)).round()
    invalid = rng.random((T, N)) < p_invalid
    return simkit.ohlc_panel(rng, close, invalid=invalid, volume=volume, symbols=SYMBOLS)


@st.composite
def parameters(draw, engine):
    values = {}
    for p in engine.param_specs:
        if p.dtype == "int":
            values[p.name] = draw(st.integers(int(p.lo), int(p.hi)))
        else:
            values[p.name] = draw(st.floats(p.lo, p.hi))
    return engine.params(values)


def check_bar_invariants(name, engine, panel, out):
    spec = POLICIES[name]
    risk, comp = spec["risk"], spec.get("compliance", {})
    w, q, pos = out["weights"], out["order_qty"], out["positions"]
    # caps hold on the target weights of every bar that is not halted (halted keeps the book);
    # a position that cannot trade (invalid bar) is held at its last mark and counts in every
    # cap as it is: the caps then hold unless it alone breaks them
    live = out["trading_state"] != HALTED
    frac = lambda v: float(v.rstrip("%")) / 100 if isinstance(v, str) else float(v)  # noqa
    gross, pmax = frac(risk["gross_max"]), frac(risk["position_max"])
    locked = ~np.asarray(panel.valid)
    fixed = np.where(locked, w, 0.0)[live]
    wl = w[live]
    assert np.all(np.abs(wl[~locked[live]]) <= pmax * (1 + TOL))
    assert np.all(np.abs(wl).sum(1) <= np.maximum(gross, np.abs(fixed).sum(1)) * (1 + TOL))
    net = frac(risk["net_max"])
    assert np.all(np.abs(wl.sum(1)) <= np.maximum(net, np.abs(fixed.sum(1))) * (1 + TOL) + TOL)
    if "sector_max" in risk:
        sectors = spec["universe"]["sectors"]
        for s in set(sectors.values()) | {None}:
            cols = [i for i, sym in enumerate(SYMBOLS) if sectors.get(sym) == s]
            room = np.maximum(frac(risk["sector_max"]), np.abs(fixed[:, cols]).sum(1))
            assert np.all(np.abs(wl[:, cols]).sum(1) <= room * (1 + TOL))
    # the book: cash plus positions at their marks is the equity, on every bar
    mark = simkit.last_valid_close(panel)
    value = np.where(pos != 0, pos * np.nan_to_num(mark), 0.0).sum(1)
    np.testing.assert_allclose(out["cash"] + value, out["equity"], rtol=1e-12, atol=1e-6)
    np.testing.assert_array_equal(pos, np.cumsum(out["fill_qty"], axis=0))
    # orders: finite whole shares, never on an unusable bar, limits exactly where orders are
    assert np.isfinite(q).all() and np.all(q == np.trunc(q)) and np.all(pos == np.trunc(pos))
    assert not q[~panel.valid].any() and not out["fill_qty"][~panel.valid].any()
    assert not np.isinf(out["limit_price"]).any()
    flat = (out["trading_state"] == FLATTENING)[:, None]     # a flatten sends market orders
    if spec["execution"].get("limit_offset"):
        assert np.isfinite(out["limit_price"][(q != 0) & ~flat]).all()
    assert np.isnan(out["limit_price"][(q != 0) & flat]).all()
    assert np.isnan(out["limit_price"][q == 0]).all()
    # fills: next bar, within the order and the participation cap
    prev = np.vstack([np.zeros((1, N)), q[:-1]])
    cap = frac(spec["execution"]["participation_cap"])
    f = out["fill_qty"]
    assert np.all(np.abs(f) <= np.abs(prev)) and np.all(f * prev >= 0)
    assert np.all(np.abs(f) <= cap * np.nan_to_num(panel.volume) * (1 + TOL))
    # costs are never negative, and everything is finite
    for k in ("fill_cost", "costs", "borrow", "traded_notional"):
        assert np.all(out[k] >= 0), k
    for k in ("cash", "equity", "costs", "borrow", "positions", "fill_qty", "fill_price"):
        assert np.isfinite(out[k]).all(), k
    # compliance
    for sym in comp.get("restricted", []):
        assert not pos[:, SYMBOLS.index(sym)].any()
    shorting = comp.get("shorting", {})
    if shorting.get("locate_required"):
        others = [i for i, s in enumerate(SYMBOLS) if s not in shorting.get("locates", [])]
        assert np.all(pos[:, others] >= 0)
    if "max_order_shares" in comp:
        assert np.all(np.abs(q) <= comp["max_order_shares"])
    if "max_order_notional" in comp:
        price = simkit.last_valid_close(panel)
        assert np.all(np.abs(q) * np.nan_to_num(price) <= comp["max_order_notional"] * (1 + TOL))
    if "max_orders_per_bar" in spec["execution"]:
        assert np.all(np.count_nonzero(q, axis=1) <= spec["execution"]["max_orders_per_bar"])


@settings(max_examples=12, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_bar_keeps_the_invariants(sim, data):
    name, s = sim
    panel = data.draw(markets(), label="market")
    params = data.draw(parameters(s.engine), label="params")
    out = s.run(panel, params)
    check_bar_invariants(name, s.engine, panel, out)


def test_the_properties_are_not_vacuous(sim):
    """On a lively default market each policy trades, binds its caps and meets its limits, so
    the properties above are exercised."""
    name, s = sim
    rng = np.random.default_rng(1)
    close = simkit.random_walk(rng, T, N, vol=0.03)
    close[60:] *= 0.8
    panel = simkit.ohlc_panel(rng, close, volume=rng.lognormal(np.log(3e4), 0.5, (T, N)),
                              symbols=SYMBOLS)
    out = s.run(panel)
    check_bar_invariants(name, s.engine, panel, out)
    assert np.count_nonzero(out["fill_qty"]) > 20
    assert (out["positions"] < 0).any()
    cap = {"kelly": 0.1, "portfolio": 0.05, "trend": 0.2}[name]
    assert (np.abs(out["fill_qty"]) == np.floor(cap * panel.volume)).sum() > 5
