"""The standard library's components: the registries, the (init, update) interface, chains under
jit, each module's doctest, and the numbers against independent references (cvxpy for the
optimizer, scikit-learn for Ledoit-Wolf, numpy for VaR and ES)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import crowe.stdlib as stdlib
from crowe.stdlib import components as reg
from crowe.stdlib.component import SLOTS, Ctx, Transform, chain
from crowe.stdlib.overlays import gross_cap, net_cap, position_cap, sector_cap
from crowe.stdlib.portfolio import covariance, mean_variance
from crowe.stdlib.risk import tail_loss

CTX = Ctx(5, 252.0, 1, (False,) * 5, (True,) * 5, (0, 0, 1, 1, 2), 3, 1.5, 0.4)


def _modules():
    out = []
    for info in pkgutil.walk_packages(stdlib.__path__, "crowe.stdlib."):
        out.append(info.name)
    return sorted(out)


@pytest.mark.parametrize("name", _modules())
def test_doctests(name):
    module = importlib.import_module(name)
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


def test_every_component_file_is_registered():
    """A component module that is not in a registry would be dead code: every `Component` the
    stdlib defines is in exactly one registry, and every registry is of its slot."""
    from crowe.stdlib.component import Component
    defined = set()
    for name in _modules():
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, Component):
                defined.add((value.slot, value.name))
    registered = {(c.slot, c.name) for r in reg.REGISTRIES for c in r}
    assert defined == registered
    assert {r.slot for r in reg.REGISTRIES} == set(SLOTS)


def test_component_settings_paths_are_unique():
    paths = [c.path for r in reg.REGISTRIES for c in r if c.slot not in ("sizing", "portfolio",
                                                                         "execution")]
    assert len(paths) == len(set(paths))


# -- chains ---------------------------------------------------------------------------------------

def _caps():
    return chain(("position_max", position_cap.make(0.4)), ("sector_max", sector_cap.make(0.5)),
                 ("net_max", net_cap.make(0.3)), ("gross_max", gross_cap.make(1.5)))


def test_a_chain_under_jit_equals_its_parts_run_by_hand():
    rng = np.random.default_rng(0)
    t = _caps()
    state = t.init(CTX)
    for _ in range(20):
        inputs = {"w": jnp.asarray(rng.normal(0, 0.5, 5)), "w_cur": jnp.asarray(rng.normal(0, 0.2, 5)),
                  "locked": jnp.asarray(rng.random(5) < 0.2)}
        out, hits, _ = jax.jit(lambda i, s: t.update(i, s, CTX))(inputs, state)
        values, expect_hits = dict(inputs), {}
        for part in (position_cap.make(0.4), sector_cap.make(0.5), net_cap.make(0.3),
                     gross_cap.make(1.5)):
            o, h, _ = part.update(values, (), CTX)
            values.update(o)
            for k, m in h.items():
                expect_hits[k] = expect_hits.get(k, False) | m
        np.testing.assert_array_equal(out["w"], values["w"])
        assert hits.keys() == expect_hits.keys()
        for k in hits:
            np.testing.assert_array_equal(hits[k], expect_hits[k])


def test_caps_hold_and_locked_weights_stay():
    rng = np.random.default_rng(1)
    t = _caps()
    ids = np.asarray(CTX.sector_ids)
    for _ in range(50):
        w_cur = rng.normal(0, 0.1, 5)
        locked = rng.random(5) < 0.3
        w = np.where(locked, w_cur, rng.normal(0, 1.0, 5))
        out, _, _ = t.update({"w": jnp.asarray(w), "w_cur": jnp.asarray(w_cur),
                              "locked": jnp.asarray(locked)}, t.init(CTX), CTX)
        o = np.asarray(out["w"])
        np.testing.assert_array_equal(o[locked], w_cur[locked])
        free = ~locked
        assert np.all(np.abs(o[free]) <= 0.4 + 1e-12)
        fixed_gross = np.abs(w_cur[locked]).sum()
        assert np.abs(o).sum() <= max(1.5, fixed_gross) + 1e-9
        for s in range(3):
            fixed = np.abs(np.where(locked & (ids == s), w_cur, 0)).sum()
            assert np.abs(o[ids == s]).sum() <= max(0.5, fixed) + 1e-9


def test_reasons_are_declared():
    """Every hit a component reports is a reason its registry entry declares."""
    rng = np.random.default_rng(2)
    hist = (jnp.asarray(rng.normal(0, 0.02, (60, 5))), jnp.arange(60), jnp.full(5, -100),
            jnp.asarray(200))
    inputs = {"w": jnp.asarray(rng.normal(0, 1, 5)), "w_cur": jnp.zeros(5),
              "locked": jnp.zeros(5, bool), "est": {"history": hist, "vol63": jnp.full(5, 0.02),
                                                    "r1": jnp.zeros(5)},
              "mu": jnp.asarray(rng.normal(0, 0.01, 5)), "sigma": jnp.full(5, 0.02),
              "tradable": jnp.ones(5, bool), "w_prev": jnp.zeros(5),
              "qty": jnp.asarray([10.0, -20, 0, 5, 1e6]), "price": jnp.full(5, 10.0),
              "ok": jnp.ones(5, bool), "ts": jnp.asarray(0)}
    samples = {"overlay": {"position_max": 0.1, "sector_max": 0.2, "net_max": 0.1,
                           "gross_max": 0.5},
               "order_rule": {"max_order_shares": 100, "max_order_notional": 1e3,
                              "max_orders_per_bar": 1, "max_orders_per_minute": 1}}
    for slot, values in samples.items():
        for name, setting in values.items():
            c = next(c for r in reg.REGISTRIES for c in r if c.name == name)
            t = c.factory(setting)
            assert isinstance(t, Transform)
            _, hits, _ = t.update(inputs, t.init(CTX), CTX)
            assert set(hits) <= set(c.reasons) and hits, name


# -- references -----------------------------------------------------------------------------------

def test_ledoit_wolf_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.covariance")
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.02, (80, 6)) @ rng.normal(0, 1, (6, 6))
    mask = np.ones(80, bool)
    mask[:10] = False
    cov, delta = covariance.ledoit_wolf(jnp.asarray(x), jnp.asarray(mask))
    ref, shrink = sk.ledoit_wolf(x[mask])
    np.testing.assert_allclose(np.asarray(cov), ref, rtol=1e-10, atol=1e-14)
    assert abs(float(delta) - shrink) < 1e-10


def test_sample_covariance_matches_numpy():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 0.02, (50, 4))
    mask = np.arange(50) >= 5
    got = covariance.sample(jnp.asarray(x), jnp.asarray(mask))
    np.testing.assert_allclose(np.asarray(got), np.cov(x[mask].T, ddof=1), rtol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_mean_variance_matches_cvxpy(seed):
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(seed)
    n = 6
    a = rng.normal(0, 0.02, (40, n))
    cov = np.cov(a.T) + 1e-4 * np.eye(n)
    mu = rng.normal(0, 0.01, n)
    prev = rng.normal(0, 0.1, n)
    lo, hi = -0.3 * np.ones(n), 0.3 * np.ones(n)
    gamma, tau, kappa = 5.0, 2e-4, 1e-4
    w = mean_variance.solve(jnp.asarray(mu), jnp.asarray(cov), jnp.asarray(prev),
                            jnp.asarray(lo), jnp.asarray(hi), gamma, tau, kappa, 5000)
    x = cp.Variable(n)
    obj = 0.5 * gamma * cp.quad_form(x, cov) - mu @ x + tau * cp.norm1(x - prev) + \
        kappa * cp.norm1(x)
    cp.Problem(cp.Minimize(obj), [x >= lo, x <= hi]).solve(solver=cp.CLARABEL)
    f = lambda v: 0.5 * gamma * v @ cov @ v - mu @ v + tau * np.abs(v - prev).sum() + \
        kappa * np.abs(v).sum()  # noqa: E731
    w = np.asarray(w)
    assert np.all(w >= lo - 1e-12) and np.all(w <= hi + 1e-12)
    assert f(w) - f(x.value) <= 1e-7 * max(1.0, abs(f(x.value)))
    np.testing.assert_allclose(w, x.value, atol=1e-4)


@pytest.mark.parametrize("es", [False, True])
def test_tail_loss_matches_numpy(es):
    rng = np.random.default_rng(5)
    rows = rng.normal(0, 0.02, (100, 4))
    w = np.array([0.3, -0.2, 0.5, 0.1])
    hist = (jnp.asarray(rows), jnp.arange(100), jnp.full(4, -1), jnp.asarray(500))
    got = float(tail_loss(jnp.asarray(w), hist, 100, 0.95, es))
    losses = np.sort(-(rows @ w))[::-1]
    k = 5
    ref = losses[:k].mean() if es else losses[k - 1]
    assert abs(got - ref) < 1e-15
