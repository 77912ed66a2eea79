"""The allocation methods `hrp`, `risk_parity`, `min_variance` and `kelly` against independent
references: skfolio's HierarchicalRiskParity and scipy's single linkage (given the same
covariance), cvxpy on Spinu's risk-parity problem and on the minimum-variance QP, numpy's solve
for Kelly; then each component as the step calls it (masks, reasons, risk budgets by symbol,
the horizon), under jit."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crowe.stdlib.component import Ctx
from crowe.stdlib.portfolio import budget_qp, covariance, hrp, kelly, min_variance, risk_parity

jax.config.update("jax_enable_x64", True)       # as the compiled step runs

N = 8


def case(seed: int, n: int = N, t: int = 80):
    """Correlated returns [t, n] with a market factor, their sample covariance, and a mask of
    usable instruments (at least two)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.01, (t, n)) @ rng.normal(0, 1, (n, n)) + rng.normal(0, 0.01, (t, 1))
    ok = rng.random(n) < 0.75
    ok[rng.choice(n, 2, replace=False)] = True
    return rng, x, np.cov(x.T), ok


def embed(cov, ok):
    """The covariance as the step gives it: identity rows and columns for unusable ones."""
    full = np.eye(len(ok))
    full[np.ix_(ok, ok)] = cov[np.ix_(ok, ok)]
    return jnp.asarray(full)


# -- hrp ------------------------------------------------------------------------------------------

def skfolio_hrp(cov, x):
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.distance import CovarianceDistance
    from skfolio.moments import BaseCovariance
    from skfolio.optimization import HierarchicalRiskParity
    from skfolio.prior import EmpiricalPrior
    from skfolio.seriation import HierarchicalSeriation

    class Given(BaseCovariance):
        def __init__(self, cov=None):
            super().__init__()
            self.cov = cov

        def fit(self, X, y=None, **fit_params):
            self._set_covariance(np.asarray(self.cov))
            return self

    clustering = HierarchicalClustering(linkage_method=LinkageMethod.SINGLE)
    model = HierarchicalRiskParity(
        prior_estimator=EmpiricalPrior(covariance_estimator=Given(cov)),
        distance_estimator=CovarianceDistance(covariance_estimator="precomputed"),
        seriation_estimator=HierarchicalSeriation(hierarchical_clustering_estimator=clustering,
                                                  optimal_ordering=False))
    return model.fit(x).weights_


hrp_of = jax.jit(hrp.allocate)


def test_hrp_matches_skfolio_and_scipy_single_linkage():
    pytest.importorskip("skfolio")
    sch = pytest.importorskip("scipy.cluster.hierarchy")
    from scipy.spatial.distance import squareform
    worst = 0.0
    for seed in range(5):
        _, x, cov, ok = case(seed)
        full = embed(cov, ok)
        got, order = (np.asarray(a) for a in hrp_of(full, jnp.asarray(ok)))
        sub = cov[np.ix_(ok, ok)]
        ref = skfolio_hrp(sub, x[:, ok])
        worst = max(worst, np.abs(got[ok] - ref).max())
        assert np.all(got[~ok] == 0) and abs(got.sum() - 1) < 1e-14
        dist = np.array(hrp.distance(jnp.asarray(sub)))
        np.fill_diagonal(dist, 0)
        leaves = sch.leaves_list(sch.linkage(squareform(dist, checks=False), "single"))
        m = ok.sum()
        np.testing.assert_array_equal(order[:m], np.flatnonzero(ok)[leaves])
    assert worst <= 1e-8, worst


def test_hrp_of_one_instrument_and_of_none():
    cov = jnp.eye(N) * 0.04
    one = np.arange(N) == 2
    np.testing.assert_array_equal(np.asarray(hrp_of(cov, jnp.asarray(one))[0]), one * 1.0)
    assert not np.asarray(hrp_of(cov, jnp.zeros(N, bool))[0]).any()


# -- risk parity ----------------------------------------------------------------------------------

rp_solve = jax.jit(risk_parity.solve)          # the iteration count traced: one program
qp_solve = jax.jit(budget_qp.solve)


def test_risk_parity_matches_cvxpy_on_spinus_formulation():
    cp = pytest.importorskip("cvxpy")
    solve = rp_solve
    worst = 0.0
    for seed in range(4):
        rng, _, cov, ok = case(10 + seed)
        b = rng.uniform(0.5, 3.0, N) if seed % 2 else np.ones(N)
        x, converged = solve(embed(cov, ok), jnp.asarray(b), jnp.asarray(ok), 30)
        w = np.asarray(x) / float(x.sum())
        assert bool(converged) and np.all(w[~ok] == 0) and np.all(w[ok] > 0)
        s, bb = cov[np.ix_(ok, ok)], b[ok]
        v = cp.Variable(ok.sum())
        cp.Problem(cp.Minimize(0.5 * cp.quad_form(v, cp.psd_wrap(s)) - bb @ cp.log(v))).solve(
            solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
        worst = max(worst, np.abs(w[ok] - v.value / v.value.sum()).max())
        rc = w[ok] * (s @ w[ok])
        np.testing.assert_allclose(rc / rc.sum(), bb / bb.sum(), rtol=1e-12, atol=0)
    assert worst <= 1e-8, worst


def test_risk_parity_reports_an_unconverged_solve():
    _, _, cov, ok = case(20)
    _, converged = rp_solve(embed(cov, ok), jnp.ones(N), jnp.asarray(ok), 1)
    assert not bool(converged)


# -- minimum variance -----------------------------------------------------------------------------

@pytest.mark.parametrize("long_only", [True, False])
def test_min_variance_matches_cvxpy(long_only):
    cp = pytest.importorskip("cvxpy")
    solve = qp_solve
    for seed in range(3):
        _, _, cov, ok = case(30 + seed)
        m, cap = ok.sum(), 0.45
        lo = np.zeros(N) if long_only else -cap * np.ones(N)
        hi = cap * np.ones(N)
        w, converged = solve(embed(cov, ok), 1.0, jnp.asarray(lo), jnp.asarray(hi),
                             jnp.asarray(ok), 60)
        w = np.asarray(w)
        s = cov[np.ix_(ok, ok)]
        v = cp.Variable(m)
        cp.Problem(cp.Minimize(0.5 * cp.quad_form(v, cp.psd_wrap(s))),
                   [cp.sum(v) == 1, v >= lo[ok], v <= hi[ok]]).solve(
            solver=cp.CLARABEL, tol_gap_abs=1e-14, tol_gap_rel=1e-14, tol_feas=1e-14)
        f = lambda u: u @ s @ u     # noqa: E731
        assert bool(converged) and np.all(w[~ok] == 0)
        assert abs(w.sum() - 1) < 1e-12
        assert np.all(w[ok] >= lo[ok] - 1e-12) and np.all(w[ok] <= hi[ok] + 1e-12)
        assert f(w[ok]) - f(v.value) <= 1e-9 * f(v.value)
        np.testing.assert_allclose(w[ok], v.value, atol=1e-7)


def test_min_variance_puts_every_instrument_at_the_cap_when_it_cannot_hold_the_budget():
    _, _, cov, ok = case(40)
    cap = 0.5 / ok.sum()
    w, converged = qp_solve(embed(cov, ok), 1.0, jnp.zeros(N), jnp.full(N, cap),
                            jnp.asarray(ok), 60)
    np.testing.assert_array_equal(np.asarray(w), np.where(ok, cap, 0.0))
    assert bool(converged)


# -- kelly ----------------------------------------------------------------------------------------

kelly_solve = jax.jit(kelly.solve)


def test_kelly_matches_numpy_solve():
    rng, _, cov, ok = case(50)
    mu = rng.normal(0, 0.01, N)
    w, solved = kelly_solve(jnp.asarray(mu), embed(cov, ok), jnp.asarray(ok), 0.3)
    ref = 0.3 * np.linalg.solve(cov[np.ix_(ok, ok)], mu[ok])
    assert bool(solved) and np.all(np.asarray(w)[~ok] == 0)
    np.testing.assert_allclose(np.asarray(w)[ok], ref, rtol=1e-10)


def test_kelly_gives_nothing_on_a_singular_covariance():
    x = np.random.default_rng(51).normal(0, 0.01, (3, N))       # 3 returns, 8 instruments
    cov = np.cov(x.T)
    w, solved = kelly_solve(jnp.full(N, 0.01), jnp.asarray(cov), jnp.ones(N, bool), 0.3)
    assert not bool(solved) and not np.asarray(w).any()


# -- the components as the step calls them -------------------------------------------------------

SYMBOLS = tuple("ABCDEFGH")
CTX = Ctx(N, 252.0, 1, (False,) * N, (True,) * N, (0,) * N, 1, 1.5, 0.45, symbols=SYMBOLS)
W = 60


def inputs(seed: int, gap: int | None = None):
    """The step's inputs: a history ring of W returns (one instrument with a recent gap), all
    tradable but one."""
    rng, x, _, _ = case(seed, t=W)
    last_bad = np.full(N, -100)
    if gap is not None:
        last_bad[gap] = 90                 # a gap inside the window
    tradable = np.ones(N, bool)
    tradable[0] = False
    hist = (jnp.asarray(x), jnp.arange(W), jnp.asarray(last_bad), jnp.asarray(100))
    return x, {"mu": jnp.asarray(rng.normal(0, 0.01, N)), "sigma": jnp.full(N, 0.01),
               "tradable": jnp.asarray(tradable), "w_prev": jnp.zeros(N),
               "est": {"history": hist}}


def run(component, settings, ins, ctx=CTX):
    t = component.factory(component.settings.model_validate(settings))
    out, hits, _ = jax.jit(lambda i: t.update(i, t.init(ctx), ctx))(ins)
    return np.asarray(out["w"]), {k: np.asarray(v) for k, v in hits.items()}


def test_components_hold_only_instruments_with_a_full_window():
    """Each component under jit as the step calls it: an instrument that is not tradable (A)
    or whose window has a gap (D) gets 0, D with the reason `no_history`; the others get the
    method's weights on the Ledoit-Wolf covariance of their window; risk budgets are read by
    symbol and Kelly scales the covariance to the horizon."""
    x, ins = inputs(60, gap=3)
    held = np.ones(N, bool)
    held[[0, 3]] = False
    sk = pytest.importorskip("sklearn.covariance")
    cov, _ = sk.ledoit_wolf(x[:, held])
    b = np.array([1, 3, 1, 1, 1, 1.0])                # budgets {C: 3, A: 5}: A is not tradable
    mu = np.asarray(ins["mu"])[held]
    cases = [(hrp.COMPONENT, {"method": "hrp", "covariance": {"window": W}}, CTX),
             (risk_parity.COMPONENT, {"method": "risk_parity", "budget": 1.0,
                                      "budgets": {"C": 3, "A": 5},
                                      "covariance": {"window": W}}, CTX),
             (min_variance.COMPONENT, {"method": "min_variance", "long_only": True,
                                       "budget": 1.0, "covariance": {"window": W}}, CTX),
             (kelly.COMPONENT, {"method": "kelly", "lambda": 0.5, "covariance": {"window": W}},
              CTX._replace(horizon=5))]
    for component, settings, ctx in cases:
        w, hits = run(component, settings, ins, ctx)
        assert np.all(w[~held] == 0), component.name
        np.testing.assert_array_equal(hits["no_history"], np.arange(N) == 3)
        assert set(hits) <= set(component.reasons) and not any(
            v.any() for k, v in hits.items() if k != "no_history"), component.name
        u = w[held]
        if component.name == "hrp":
            full = np.eye(N)
            full[np.ix_(held, held)] = cov
            ref = np.asarray(hrp_of(jnp.asarray(full), jnp.asarray(held))[0])[held]
            np.testing.assert_allclose(u, 1.5 * ref, rtol=1e-10)
        elif component.name == "risk_parity":
            rc = u * (cov @ u)
            np.testing.assert_allclose(rc / rc.sum(), b / b.sum(), rtol=1e-10)
        elif component.name == "min_variance":
            assert np.all(u >= 0) and np.all(u <= 0.45 + 1e-12)
        else:
            np.testing.assert_allclose(u, 0.5 * np.linalg.solve(5 * cov, mu), rtol=1e-10)
        if component.name != "kelly":
            assert abs(w.sum() - (1.5 if component.name == "hrp" else 1.0)) < 1e-10
