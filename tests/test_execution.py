"""The execution algorithms on hand-checkable cases and against independent references: TWAP
slices, VWAP against a known volume profile, POV against known volumes, Almgren-Chriss against
its closed form and the discrete quadratic program solved by cvxpy, the limit ladder's offsets
against its expected-value rule (numpy and scipy), and the rebalance calendar against numpy's."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from crowe.stdlib.component import Ctx
from crowe.stdlib.execution import (implementation_shortfall as is_, limit_ladder, parent, pov,
                                    rebalance, twap, vwap)

jax.config.update("jax_enable_x64", True)
DAY = 86_400 * 10**9
MONDAY = 4 * DAY                     # 1970-01-05


def ctx(n=1, bar_seconds=86_400, horizon=1):
    return Ctx(n, 252.0, horizon, (False,) * n, (True,) * n, (0,) * n, 1, 1.0, 1.0,
               bar_seconds=bar_seconds)


def work(t, inputs, H, X, steps=None, fills=None, state=None, c=None):
    """Children of one parent of X shares, each filled (or `fills[k]` of it), through the
    step's clip to whole shares; returns the children sent."""
    c = c or ctx(len(X))
    state = t.init(c) if state is None else state
    update = jax.jit(t.update, static_argnums=2)
    rem, sent = np.asarray(X, float), []
    for k in range(steps or H):
        ins = {"remaining": jnp.asarray(rem), "k": jnp.full(len(X), k), "horizon":
               jnp.full(len(X), H), "opened": jnp.full(len(X), k == 0), **inputs(k)}
        out, _, state = update(ins, state, c)
        child = np.asarray(parent.clip_child(out["child"], jnp.asarray(rem)))
        sent.append(child)
        rem = rem - (child if fills is None else fills[k](child))
    return np.array(sent)


def test_twap_sends_equal_slices_and_the_last_takes_the_rest():
    t = twap.make(twap.Settings(algo="twap", horizon=5))
    sent = work(t, lambda k: {}, 5, [1000.0, -7.0, 3.0])
    assert sent[:, 0].tolist() == [200.0] * 5
    assert sent[:, 1].tolist() == [-1.0, -1.0, -1.0, -2.0, -2.0]
    assert sent[:, 2].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert (np.abs(sent).sum(0) == [1000, 7, 3]).all()


def test_vwap_follows_the_weekday_profile_learned_from_past_bars():
    """Two weeks of weekday volumes 1, 2, 3, 4, 5 (x 1e5); a parent opened on the second
    Friday over 5 bars fills Monday to Friday in proportion 1:2:3:4:5."""
    t = vwap.make(vwap.Settings(algo="vwap", horizon=5))
    c = ctx()
    st, update = t.init(c), jax.jit(t.update, static_argnums=2)
    prof = np.array([1.0, 2.0, 3.0, 4.0, 5.0]) * 1e5
    days = [d + 7 * w for w in range(2) for d in range(5)]          # Mon..Fri, two weeks
    for d in days[:-1]:
        _, _, st = update({"ts": jnp.asarray(MONDAY + d * DAY), "volume": jnp.array(
            [prof[d % 7]]), "remaining": jnp.zeros(1), "k": jnp.zeros(1, int),
            "horizon": jnp.array([5])}, st, c)
    friday = MONDAY + days[-1] * DAY

    def inputs(k):              # decided on Friday, then on Monday to Thursday of week 3
        day = friday if k == 0 else MONDAY + (14 + k - 1) * DAY
        return {"ts": jnp.asarray(day), "volume": jnp.array([prof[4] if k == 0 else
                                                               prof[k - 1]])}
    sent = work(t, inputs, 5, [1500.0], state=st, c=c)[:, 0]
    assert sent.tolist() == [100.0, 200.0, 300.0, 400.0, 500.0]


def test_pov_is_participation_times_expected_volume_and_never_above_the_cap():
    t = pov.make(pov.Settings(algo="pov", participation_cap=0.1, participation=0.04))
    adv = [50_000.0, 12_345.0]
    sent = work(t, lambda k: {"adv": jnp.asarray(adv)}, 1, [10_000.0, -2_000.0], steps=6)
    assert sent[:, 0].tolist() == [2000.0] * 5 + [0.0]
    assert sent[:, 1].tolist() == [-493.0] * 4 + [-28.0, 0.0]       # floor(0.04 * 12345)
    with pytest.raises(Exception, match="participation cap"):
        pov.Settings(algo="pov", participation_cap=0.02, participation=0.05)


# -- Almgren-Chriss -------------------------------------------------------------------------------

def qp_schedule(X, N, eta, lam, sigma_p):
    """The discrete Almgren-Chriss problem solved by cvxpy: min eta sum v^2 + lam sigma_p^2
    sum_{k=1..N} x_k^2, x_0 = X, x_N = 0, v_k = x_{k-1} - x_k (the half-spread term is a
    constant for a one-sided schedule). Solved in units of X (the problem is homogeneous of
    degree 2 in x, so the schedule scales with X) and in units of eta, for the solver's
    tolerances."""
    import cvxpy as cp
    y = cp.Variable(N + 1)
    obj = cp.sum_squares(y[:-1] - y[1:]) + lam * sigma_p ** 2 / eta * cp.sum_squares(y[1:])
    cp.Problem(cp.Minimize(obj), [y[0] == 1, y[N] == 0]).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return X * np.asarray(y.value)


@pytest.mark.parametrize("lam", [1e-7, 1e-6, 1e-5])
def test_is_schedule_is_the_closed_form_and_the_discrete_qp(lam):
    X, N, p, vol, adv, impact = 50_000.0, 8, 40.0, 0.02, 2e6, 0.1
    s = is_.Settings(algo="is", horizon=N, risk_aversion=lam)
    t = is_.make(s)
    eta = impact * vol * p / np.sqrt(adv * X / N)
    kappa = float(np.arccosh(1 + lam * (vol * p) ** 2 / (2 * eta)))
    closed = is_.trajectory(X, kappa, N)
    qp = qp_schedule(X, N, eta, lam, vol * p)
    np.testing.assert_allclose(qp, closed, rtol=1e-6, atol=1e-6 * X)
    # the component's children, re-solved each bar from the remainder, without rounding
    st, rem, xs, update = t.init(ctx()), X, [X], jax.jit(t.update, static_argnums=2)
    for k in range(N):
        out, _, st = update({"remaining": jnp.array([rem]), "k": jnp.array([k]),
                               "horizon": jnp.array([N]), "opened": jnp.array([k == 0]),
                               "price": jnp.array([p]), "vol": jnp.array([vol]),
                               "adv": jnp.array([adv])}, st, ctx())
        rem -= float(out["child"][0])
        xs.append(rem)
    assert float(st["kappa"][0]) == pytest.approx(kappa, rel=1e-12)
    np.testing.assert_allclose(xs, closed, rtol=1e-9, atol=1e-9 * X)
    np.testing.assert_allclose(xs, qp, rtol=1e-6, atol=1e-6 * X)
    assert xs[-1] == pytest.approx(0.0, abs=1e-6)


def test_is_without_risk_aversion_is_twap_and_more_aversion_front_loads():
    def first(lam):
        return float(-np.diff(is_.trajectory(100.0, max(lam, 1e-12), 4))[0])
    assert first(0.0) == pytest.approx(25.0, rel=1e-9)
    assert float(is_.left_after(jnp.asarray(0.0), 4)) == 0.75
    assert first(0.5) < first(1.0) < first(2.0)


# -- the limit ladder -----------------------------------------------------------------------------

def test_ladder_offsets_follow_the_expected_value_rule():
    rng = np.random.default_rng(3)
    n, fees, h = 200, 3e-4, 5
    vol = rng.uniform(0.005, 0.04, n)
    mu = rng.normal(0, 0.2, n)
    pe = rng.uniform(0.5, 1.0, n)
    rem = rng.choice([-100.0, 100.0], n)
    got = np.asarray(limit_ladder.rung({"vol": jnp.asarray(vol), "mu": jnp.asarray(mu),
                                        "prob_edge": jnp.asarray(pe),
                                        "remaining": jnp.asarray(rem)}, fees, h))
    g = np.array(limit_ladder.RUNGS)[:, None]
    p = np.minimum(1, 2 * norm.cdf(-g))
    alpha = np.maximum(np.sign(rem) * mu, 0) / h * np.maximum(2 * pe - 1, 0)
    ev = p * (g * vol - fees) - (1 - p) * alpha
    np.testing.assert_array_equal(got, np.array(limit_ladder.RUNGS)[ev.argmax(0)])
    assert {0.0, 0.75} <= set(got.tolist())          # both aggressive and passive occur
    # a wide interval (prob_edge 1/2) rests passively; a sure, large edge joins the close
    t = limit_ladder.make(limit_ladder.Settings(algo="limit_ladder", horizon=4))
    out, _, _ = jax.jit(t.update, static_argnums=2)(
        {"remaining": jnp.array([100.0, -100.0, 100.0]), "k": jnp.zeros(3, int),
         "horizon": jnp.full(3, 4), "price": jnp.full(3, 50.0), "vol": jnp.full(3, 0.02),
         "mu": jnp.array([0.01, -0.01, 0.2]), "prob_edge": jnp.array([0.5, 0.5, 0.999])}, (),
        ctx(3, horizon=1))
    assert np.asarray(out["child"]).tolist() == [25.0, -25.0, 25.0]
    np.testing.assert_allclose(np.asarray(out["limit"]), [50 * (1 - 0.015), 50 * (1 + 0.015),
                                                          50.0], rtol=1e-12)


# -- parents and schedules ------------------------------------------------------------------------

def test_carry_keeps_the_unfilled_part_and_cancel_drops_it():
    p = parent.open_new(parent.init(1), jnp.array([90.0]), jnp.zeros(1), jnp.asarray(0),
                        jnp.array([10.0]), 3, jnp.array([True]))
    half = jnp.array([15.0])                    # a child of 30 of which 15 filled
    carry = parent.book(dict(p, child=jnp.array([30.0])), half, jnp.array([30.0]), True)
    cancel = parent.book(dict(p, child=jnp.array([30.0])), half, jnp.array([30.0]), False)
    assert float(carry["remaining"][0]) == 75.0 and float(cancel["remaining"][0]) == 60.0
    gone = parent.cancel(carry, jnp.array([True]), jnp.zeros(1))
    assert float(gone["remaining"][0]) == 0.0 and int(gone["start"][0]) == -1


def test_calendar_periods_match_numpy():
    ts = np.arange(np.datetime64("1999-12-20"), np.datetime64("2004-03-10"),
                   np.timedelta64(1, "D")).astype("datetime64[ns]").astype(np.int64)
    months = ts.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    np.testing.assert_array_equal(np.asarray(rebalance.month_index(jnp.asarray(ts))), months)
    weeks = ts.astype("datetime64[ns]").astype("datetime64[D]").astype("O")
    mondays = np.array([d.toordinal() - d.weekday() for d in weeks])
    got = np.asarray(rebalance.week_index(jnp.asarray(ts)))
    assert ((np.diff(got) != 0) == (np.diff(mondays) != 0)).all()
