"""Hand-checkable scenarios: markets built so that the right answer is known bar by bar.

Each scenario compiles one small policy (module-scoped), runs it over a panel built for it, and
checks the records of every bar. Trading states: 0 ACTIVE, 1 REDUCING, 2 HALTED, 3 FLATTENING.
"""
from __future__ import annotations

import numpy as np
import pytest

import simkit
from crowe.stdlib.states import ACTIVE, FLATTENING, HALTED

CASH = 1e6


def constant_after(rng, T, N, start, level=100.0, vol=0.02):
    """Closes that random-walk until bar `start` and are `level` from then on."""
    close = simkit.random_walk(rng, T, N, vol=vol)
    close[start:] = level
    return close


# -- a constant-price market ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def flat_market():
    """Prices vary for 55 bars (so that the 60-bar volatility and the 20-bar volume average
    exist), then open = high = low = close = 100 for ever; trading starts at bar 60 (the warm-up)
    and the forecast flips sign with the volume every bar, so the book turns over long and short
    and pays commission, spread, impact and borrow."""
    rng = np.random.default_rng(11)
    T, N = 100, 3
    close = constant_after(rng, T, N, 55)
    open = np.vstack([close[:1], close[:-1]])
    open[56:] = 100.0
    volume = np.where(np.arange(T)[:, None] % 2 == 0, 2e6, 1e6) * np.ones((1, N))
    panel = simkit.make_panel(close, open=open, volume=volume)
    policy = simkit.policy_dict(
        features={"r1": "ret(close, 1)", "dv": "delta(volume, 1)"},
        signal={"horizon": "1d", "mu": "1% * sign(dv)", "sigma": "1%"},
        gates={"known": "stdev(r1, 60) >= 0"},
        sizing={"method": "equal", "budget": 1.0},
        execution={"algo": "market", "participation_cap": 1.0,
                   "costs": {"borrow": "5%", "impact": 0.5}})
    sim = simkit.Sim.of(policy, panel.symbols, CASH)
    assert sim.engine.warmup == 60
    return panel, sim.run(panel)


def test_constant_prices_make_no_pnl_but_pay_costs(flat_market):
    panel, out = flat_market
    paid = np.cumsum(out["costs"] + out["borrow"])
    assert np.count_nonzero(out["fill_qty"]) >= 60 and paid[-1] > 100.0
    assert (out["positions"] < 0).any() and out["borrow"].sum() > 0
    assert np.all(out["costs"] >= 0) and np.all(out["borrow"] >= 0)
    np.testing.assert_allclose(out["equity"], CASH - paid, rtol=1e-14, atol=0)
    assert np.all(out["equity"][:61] == CASH)          # nothing fills before bar 61


# -- compliance: restricted list, locates, order size and count ----------------------------------

SYMBOLS5 = ("AAA", "BBB", "CCC", "DDD", "EEE")


@pytest.fixture(scope="module")
def compliance():
    """Reversal on a random market (frequent sign changes): AAA has a locate, CCC is restricted,
    orders are capped at 300 shares and 2 per bar."""
    rng = np.random.default_rng(5)
    T, N = 120, 5
    panel = simkit.ohlc_panel(rng, simkit.random_walk(rng, T, N, vol=0.03),
                              volume=np.full((T, N), 1e7), symbols=SYMBOLS5)
    policy = simkit.policy_dict(
        universe={"symbols": list(SYMBOLS5), "bar": "1d"},
        signal={"horizon": "1d", "mu": "-r1", "sigma": "1%"},
        execution={"algo": "market", "participation_cap": 1.0, "max_orders_per_bar": 2},
        compliance={"restricted": ["CCC"], "max_order_shares": 300,
                    "shorting": {"allowed": True, "locate_required": True, "locates": ["AAA"]}})
    sim = simkit.Sim.of(policy, SYMBOLS5, CASH)
    return sim.engine, panel, sim.run(panel)


def test_a_restricted_symbol_is_never_held(compliance):
    engine, _, out = compliance
    c = SYMBOLS5.index("CCC")
    assert not out["positions"][:, c].any() and not out["order_qty"][:, c].any()
    assert not out["weights"][:, c].any()
    assert np.all(out["reasons"][:, c] & simkit.flag(engine, "restricted"))
    assert np.count_nonzero(out["positions"]) > 100, "the others must trade"


def test_no_short_without_a_locate(compliance):
    engine, _, out = compliance
    a = SYMBOLS5.index("AAA")
    assert (out["positions"][:, a] < 0).any(), "the located symbol does go short"
    others = [i for i in range(5) if i != a]
    assert np.all(out["positions"][:, others] >= 0)
    assert np.all(out["weights"][:, others] >= 0)
    assert (out["reasons"][:, others] & simkit.flag(engine, "no_short")).any()


def test_order_size_and_count_limits(compliance):
    engine, _, out = compliance
    q = out["order_qty"]
    assert np.abs(q).max() == 300 and (np.abs(q) == 300).sum() > 10      # the cap binds
    per_bar = np.count_nonzero(q, axis=1)
    assert per_bar.max() == 2 and np.all(per_bar <= 2)
    assert (out["reasons"] & simkit.flag(engine, "throttled")).any()
    assert (out["reasons"] & simkit.flag(engine, "order_clipped")).any()


def test_shorting_not_allowed_never_shorts():
    rng = np.random.default_rng(6)
    panel = simkit.ohlc_panel(rng, simkit.random_walk(rng, 60, 3, vol=0.03))
    policy = simkit.policy_dict(signal={"horizon": "1d", "mu": "-r1", "sigma": "1%"},
                                compliance={"shorting": {"allowed": False}})
    out = simkit.Sim.of(policy, panel.symbols, CASH).run(panel)
    assert np.count_nonzero(out["positions"]) > 20
    assert np.all(out["positions"] >= 0) and np.all(out["order_qty"][out["positions"] == 0] >= 0)


# -- drawdown: a crash, flat on the next bar, out for good (or through the cooldown) --------------

def _crash(limit: dict):
    """Long-only on a market that drifts up and then loses 30% at the close of bar 40."""
    rng = np.random.default_rng(3)
    T, N, k = 70, 3, 40
    close = simkit.random_walk(rng, T, N, vol=0.005, drift=0.001)
    close[k:] *= 0.7
    open = np.vstack([close[:1], close[:-1]])             # opens at the previous close
    panel = simkit.make_panel(close, open=open, volume=np.full((T, N), 1e8))
    policy = simkit.policy_dict(
        signal={"horizon": "1d", "mu": "1% + 0 * r1", "sigma": "1%"},
        risk={"gross_max": 1.0, "position_max": 1.0, "drawdown": {"from_peak": limit}})
    sim = simkit.Sim.of(policy, panel.symbols, CASH)
    return sim.engine, k, sim.run(panel)


@pytest.fixture(scope="module")
def crash():
    return _crash({"max": "10%", "action": "flatten", "cooldown": "5d"})


def test_drawdown_limit_flattens_on_the_next_bar_and_stays_out(crash):
    """The limit is measured from the true peak: once breached, a flat book cannot recover, so
    the policy stays out for the rest of the run, cooldown or not."""
    engine, k, out = crash
    held = np.abs(out["positions"]).sum(1) > 0
    assert held[k] and held[k - 10:k].all()
    assert 1 - out["equity"][k] / out["equity"][:k + 1].max() >= 0.10
    ts = out["trading_state"]
    assert np.all(ts[:k] == ACTIVE) and np.all(ts[k:] == FLATTENING)
    np.testing.assert_array_equal(out["order_qty"][k], -out["positions"][k])
    assert not held[k + 1:].any()                      # flat from the next bar, for good
    assert not out["order_qty"][k + 1:].any() and not out["weights"][k:].any()
    assert np.all(out["portfolio_reasons"][k:] & simkit.flag(engine, "limit:from_peak"))
    peak = np.maximum.accumulate(out["equity"])
    assert (1 - out["equity"] / peak)[ts == ACTIVE].max() < 0.10


def test_drawdown_limit_reset_after_cooldown_trades_again():
    engine, k, out = _crash({"max": "10%", "action": "flatten", "cooldown": "5d",
                             "reset_peak_after_cooldown": True})
    held = np.abs(out["positions"]).sum(1) > 0
    ts = out["trading_state"]
    assert np.all(ts[:k] == ACTIVE) and np.all(ts[k:k + 6] == FLATTENING)   # the bar + 5
    assert ts[k + 6] == ACTIVE
    assert not held[k + 1:k + 7].any()                 # flat from the next bar through the cooldown
    assert held[k + 7:].all(), "trading resumes after the cooldown"


# -- halted and flattening ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stand_down():
    """Rules on volume spikes: above 5e6 halts for 3 bars, above 8e6 flattens for 2."""
    rng = np.random.default_rng(9)
    T, N = 80, 4
    volume = np.full((T, N), 1e6)
    volume[40, 1] = 6e6
    volume[55, 2] = 9e6
    panel = simkit.ohlc_panel(rng, simkit.random_walk(rng, T, N, vol=0.02), volume=volume)
    policy = simkit.policy_dict(
        signal={"horizon": "1d", "mu": "r1", "sigma": "1%"},
        stand_down={"data_gap": {"max_missing": 0.99, "action": "halt"},
                    "busy": {"when": "any(volume > 5e6)", "action": "halt", "cooldown": "3d"},
                    "frantic": {"when": "any(volume > 8e6)", "action": "flatten",
                                "cooldown": "2d"}})
    sim = simkit.Sim.of(policy, panel.symbols, CASH)
    return sim.engine, sim.run(panel)


def test_halted_keeps_positions(stand_down):
    engine, out = stand_down
    ts = out["trading_state"]
    halted = np.flatnonzero(ts == HALTED)
    # the spike of bar 40 halts it and 3 more; so does the bigger one of bar 55, which also
    # flattens (the more severe state) for 55..57, leaving bar 58 halted
    assert list(halted) == [40, 41, 42, 43, 58]
    assert np.abs(out["positions"][40]).sum() > 0
    assert not out["order_qty"][halted].any()
    for t in halted:          # no order at t, so nothing fills at t + 1
        np.testing.assert_array_equal(out["positions"][t + 1], out["positions"][t])
    assert np.all(out["reasons"][halted] & simkit.flag(engine, "halted"))
    assert np.all(out["portfolio_reasons"][halted] & simkit.flag(engine, "rule:busy"))


def test_flattening_only_reduces(stand_down):
    _, out = stand_down
    ts = out["trading_state"]
    flat = np.flatnonzero(ts == FLATTENING)
    assert list(flat) == [55, 56, 57]
    pos, q = out["positions"][flat], out["order_qty"][flat]
    assert np.abs(pos[0]).sum() > 0
    assert np.all(np.abs(pos + q) <= np.abs(pos)) and np.all(q * pos <= 0)
    assert not out["weights"][flat].any()
    assert not out["positions"][56].any()


# -- participation cap ----------------------------------------------------------------------------

def test_participation_cap_of_ten_percent():
    """Thin volume (a few thousand shares) against targets of about 3,000 shares."""
    rng = np.random.default_rng(4)
    T, N = 80, 3
    volume = rng.uniform(2e3, 3e4, (T, N)).round()
    panel = simkit.ohlc_panel(rng, simkit.random_walk(rng, T, N, vol=0.03), volume=volume)
    policy = simkit.policy_dict(signal={"horizon": "1d", "mu": "r1", "sigma": "1%"},
                                execution={"algo": "market", "participation_cap": "10%"})
    out = simkit.Sim.of(policy, panel.symbols, CASH).run(panel)
    fill, vol = np.abs(out["fill_qty"]), panel.volume
    assert np.all(fill <= 0.1 * vol)
    assert np.sum(fill == np.floor(0.1 * vol)) > 20, "the cap must bind (in whole shares)"
    assert np.all(fill == np.trunc(fill)) and np.all(out["positions"] == np.trunc(out["positions"]))
    prev = np.vstack([np.zeros((1, N)), out["order_qty"][:-1]])
    assert np.all(fill <= np.abs(prev)) and np.all(out["fill_qty"] * prev >= 0)


# -- bad data -------------------------------------------------------------------------------------

def test_invalid_bars_never_get_an_order_or_a_fill():
    rng = np.random.default_rng(8)
    T, N = 90, 4
    base = simkit.ohlc_panel(rng, simkit.random_walk(rng, T, N, vol=0.03),
                             invalid=rng.random((T, N)) < 0.1)
    arrays = {k: np.array(getattr(base, k)) for k in ("open", "high", "low", "close", "volume")}
    valid = np.array(base.valid)
    # bars marked valid whose raw prices are unusable: the step must guard them itself
    for t, i, field, value in ((30, 0, "close", np.nan), (31, 1, "open", -5.0),
                               (32, 2, "high", np.inf), (33, 3, "volume", np.nan),
                               (50, 0, "low", 0.0), (51, 1, "close", -np.inf)):
        valid[t, i] = True
        for k in arrays:
            if np.isnan(arrays[k][t, i]):
                arrays[k][t, i] = 100.0
        arrays[field][t, i] = value
    panel = simkit.Panel(ts=base.ts, symbols=base.symbols, valid=valid, **arrays)
    bad = ~valid
    for k in arrays:
        with np.errstate(invalid="ignore"):
            bad |= ~np.isfinite(arrays[k]) | (arrays[k] <= 0 if k != "volume" else arrays[k] < 0)
    policy = simkit.policy_dict(signal={"horizon": "1d", "mu": "-r1", "sigma": "1%"},
                                execution={"algo": "limit", "participation_cap": 1.0,
                                           "limit_offset": "5bps"})
    sim = simkit.Sim.of(policy, panel.symbols, CASH)
    out = sim.run(panel)
    assert bad.sum() > 30 and np.count_nonzero(out["order_qty"]) > 60
    assert not out["order_qty"][bad].any() and not out["fill_qty"][bad].any()
    assert np.isnan(out["limit_price"][bad]).all()
    assert np.all(out["reasons"][bad] & simkit.flag(sim.engine, "invalid_data"))
    for k in ("cash", "equity", "gross", "net", "costs"):
        assert np.isfinite(out[k]).all(), k
    assert np.isfinite(out["positions"]).all() and np.isfinite(out["order_qty"]).all()


# -- caps -----------------------------------------------------------------------------------------

def test_position_gross_and_net_caps_hold_on_every_bar():
    """Kelly weights of `r1 / 1%^2` are enormous: every cap binds."""
    rng = np.random.default_rng(12)
    T, N = 80, 5
    panel = simkit.ohlc_panel(rng, simkit.random_walk(rng, T, N, vol=0.02, drift=0.002))
    policy = simkit.policy_dict(
        signal={"horizon": "1d", "mu": "r1", "sigma": "1%"},
        sizing={"method": "kelly_tempered", "lambda": 0.5},
        risk={"gross_max": 1.5, "net_max": "30%", "position_max": "40%"})
    sim = simkit.Sim.of(policy, panel.symbols, CASH)
    out = sim.run(panel)
    w = out["weights"]
    assert np.all(np.abs(w) <= 0.4)
    assert np.all(np.abs(w).sum(1) <= 1.5 * (1 + 1e-12))
    assert np.all(np.abs(w.sum(1)) <= 0.3 * (1 + 1e-12))
    assert np.isclose(np.abs(w).sum(1), 1.5, rtol=1e-12).sum() > 20
    assert np.isclose(np.abs(w.sum(1)), 0.3, rtol=1e-12).sum() > 20
    for name in ("gross_cap", "net_cap", "position_cap"):
        assert (out["reasons"] & simkit.flag(sim.engine, name)).any(), name


# -- timing: decided at t, filled at t + 1 --------------------------------------------------------

@pytest.fixture(scope="module")
def timing():
    rng = np.random.default_rng(13)
    T, N = 60, 3
    close = simkit.random_walk(rng, T, N, vol=0.03)
    panel = simkit.ohlc_panel(rng, close, volume=np.full((T, N), 1e8))
    # a gross cap with room for the moves from the close to the next open, so that no fill is
    # cut to keep the book within it
    policy = simkit.policy_dict(signal={"horizon": "1d", "mu": "r1", "sigma": "1%"},
                                risk={"gross_max": 2.0, "position_max": 1.0})
    sim = simkit.Sim.of(policy, panel.symbols, CASH)
    return sim, panel, sim.run(panel)


def test_orders_fill_on_the_next_bar_at_its_open(timing):
    _, panel, out = timing
    q, f = out["order_qty"], out["fill_qty"]
    assert np.count_nonzero(q) > 40
    assert not f[0].any()
    np.testing.assert_array_equal(f[1:], q[:-1])          # volume is ample: fills in full
    np.testing.assert_array_equal(out["fill_price"][1:][q[:-1] != 0], panel.open[1:][q[:-1] != 0])
    np.testing.assert_array_equal(out["positions"], np.cumsum(f, axis=0))


def test_no_decision_depends_on_a_later_bar(timing):
    """Change everything after bar k: every record up to k is the same, bit for bit."""
    sim, panel, out = timing
    rng = np.random.default_rng(99)
    k = 35
    arrays = {f: np.array(getattr(panel, f)) for f in ("open", "high", "low", "close", "volume")}
    for f in arrays:
        arrays[f][k + 1:] *= rng.uniform(0.5, 1.5, arrays[f][k + 1:].shape)
    arrays["high"] = np.maximum.reduce([arrays["high"], arrays["open"], arrays["close"]])
    arrays["low"] = np.minimum.reduce([arrays["low"], arrays["open"], arrays["close"]])
    valid = np.array(panel.valid)
    valid[k + 1:, 0] = False
    other = sim.run(simkit.Panel(ts=panel.ts, symbols=panel.symbols, valid=valid, **arrays))
    for name, rec in out.items():
        np.testing.assert_array_equal(other[name][:k + 1], rec[:k + 1], err_msg=name)
    assert not np.array_equal(other["equity"][k + 1:], out["equity"][k + 1:])


# -- a component needs only what it reads; the warm-up follows the run's parameters ----------------

def test_equal_sizing_trades_through_a_stretch_of_unchanged_prices():
    """`equal` reads no volatility: prices that stop moving (a volatility of 0) do not make it
    go flat."""
    rng = np.random.default_rng(21)
    T, N = 80, 3
    close = constant_after(rng, T, N, 30)
    panel = simkit.make_panel(close, volume=np.full((T, N), 1e6))
    policy = simkit.policy_dict(signal={"horizon": "1d", "mu": "1% + 0 * r1", "sigma": "1%"})
    out = simkit.Sim.of(policy, panel.symbols, CASH).run(panel)
    assert np.all(np.abs(out["weights"][40:]).sum(1) > 0.99)


def test_the_warm_up_follows_the_parameters_a_run_uses():
    rng = np.random.default_rng(22)
    T, N = 120, 2
    panel = simkit.ohlc_panel(rng, simkit.random_walk(rng, T, N, vol=0.01), volume=np.full((T, N),
                                                                                          1e7))
    policy = simkit.policy_dict(
        params={"slow": {"default": 50, "range": [10, 80]}},
        features={"r1": "ret(close, 1)", "avg": "mean(r1, slow)"},
        signal={"horizon": "1d", "mu": "1% + 0 * avg", "sigma": "1%"})
    sim = simkit.Sim.of(policy, panel.symbols, CASH)
    warm = simkit.flag(sim.engine, "warmup")
    for slow in (50, 20, 80):
        out = sim.run(panel, sim.engine.params({"slow": slow}))
        waiting = (out["reasons"][:, 0] & warm) != 0
        # `mean(r1, slow)` reads `slow` past closes: defined from bar `slow` on
        assert waiting[:slow].all() and not waiting[slow:].any(), slow
        assert np.flatnonzero(out["order_qty"][:, 0])[0] == slow
