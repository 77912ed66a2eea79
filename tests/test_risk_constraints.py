"""The optimizer's constraints, the parametric VaR/ES and the stress limit, against independent
references (cvxpy, scipy, scikit-learn) and as promises on the target book of a backtest over
bundled data: after the step, the book meets every constraint and its stressed loss is within
the limit."""
from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simkit
from crowe.dsl.policy import check_text
from crowe.runtime.bundled import default_data
from crowe.runtime.data import load_bars
from crowe.stdlib.component import Ctx
from crowe.stdlib.overlays import stress, tail_risk
from crowe.stdlib.portfolio import mean_variance as mv
from crowe.stdlib.risk import parametric_loss

jax.config.update("jax_enable_x64", True)
cp = pytest.importorskip("cvxpy")
sk = pytest.importorskip("sklearn.covariance")
norm = pytest.importorskip("scipy.stats").norm

FEAS = 1e-9             # every constraint, on the weights as returned
REL = 1e-7              # the objective, relative to cvxpy's


# -- the constrained optimizer against cvxpy ------------------------------------------------------

N, K = 8, 3
SECTORS = (0, 0, 1, 1, 1, 2, 2, 0)
GAMMA, TAU, KAPPA = 5.0, 5e-4, 1e-4


def _problem(seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.01, (120, N)) + rng.normal(0, 0.01, (120, 1))
    cov, mu = np.cov(x.T), rng.normal(0, 0.003, N)
    prev, beta = rng.normal(0, 0.05, N), rng.normal(1.0, 0.4, N)
    lo, hi = np.full(N, -0.25), np.full(N, 0.25)
    lo[0] = hi[0] = 0.0          # cannot trade
    lo[1] = hi[1] = 0.06         # held where it is
    lo[2] = 0.0                  # cannot be short
    return cov, mu, prev, beta, lo, hi


CASES = {"all": mv.Constraints(net=[-0.03, 0.03], gross=0.9, sector_net=[-0.08, 0.08],
                               sector_gross=0.35, exposure={"beta": [-0.05, 0.05]}),
         "floor": mv.Constraints(net=[0.1, 0.2], gross=1.2, exposure={"beta": [0.05, 0.3]})}


@pytest.fixture(scope="module")
def solver():
    def run(mu, cov, prev, lo, hi, rows):
        return mv.solve_constrained(mu, cov, prev, lo, hi, GAMMA, TAU, KAPPA, rows, 100)
    return jax.jit(run)


def _reference(cov, mu, prev, beta, lo, hi, c: mv.Constraints):
    w = cp.Variable(N)
    member = np.array([[s == k for s in SECTORS] for k in range(K)], float)
    cons = [w >= lo, w <= hi]
    if c.net:
        cons += [cp.sum(w) >= c.net[0], cp.sum(w) <= c.net[1]]
    if c.gross:
        cons += [cp.norm1(w) <= c.gross]
    if c.sector_net:
        cons += [member @ w >= c.sector_net[0], member @ w <= c.sector_net[1]]
    if c.sector_gross:
        cons += [member @ cp.abs(w) <= c.sector_gross]
    for lo_b, hi_b in c.exposure.values():
        cons += [beta @ w >= lo_b, beta @ w <= hi_b]
    prob = cp.Problem(cp.Minimize(_objective(w, cov, mu, prev, cp)), cons)
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return w.value, prob.value


def _objective(w, cov, mu, prev, lib=np):
    quad = lib.quad_form(w, cov) if lib is cp else w @ cov @ w
    return 0.5 * GAMMA * quad - mu @ w + TAU * lib.sum(lib.abs(w - prev)) + \
        KAPPA * lib.sum(lib.abs(w))


def _violation(w, beta, lo, hi, c: mv.Constraints) -> float:
    member = np.array([[s == k for s in SECTORS] for k in range(K)], float)
    v = [w - hi, lo - w]
    if c.net:
        v += [[w.sum() - c.net[1], c.net[0] - w.sum()]]
    if c.gross:
        v += [[np.abs(w).sum() - c.gross]]
    if c.sector_net:
        v += [member @ w - c.sector_net[1], c.sector_net[0] - member @ w]
    if c.sector_gross:
        v += [member @ np.abs(w) - c.sector_gross]
    for lo_b, hi_b in c.exposure.values():
        v += [[beta @ w - hi_b, lo_b - beta @ w]]
    return max(np.max(x) for x in v)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", range(3))
def test_constrained_mean_variance_matches_cvxpy(solver, case, seed):
    cov, mu, prev, beta, lo, hi = _problem(seed)
    c = CASES[case]
    rows = mv.rows(c, SECTORS, K, {"beta": jnp.asarray(beta)})
    w, info = solver(*(jnp.asarray(a) for a in (mu, cov, prev, lo, hi)), rows)
    w = np.asarray(w)
    ref_w, ref = _reference(cov, mu, prev, beta, lo, hi, c)
    assert bool(info["converged"]) and int(info["iterations"]) < 100
    assert _violation(w, beta, lo, hi, c) <= FEAS
    assert float(info["violation"]) <= FEAS
    assert abs(_objective(w, cov, mu, prev) - ref) <= REL * abs(ref)
    assert w[0] == 0.0 and w[1] == 0.06 and w[2] >= 0.0
    np.testing.assert_allclose(w, ref_w, atol=1e-6)


def test_an_infeasible_problem_is_flagged_not_solved(solver):
    cov, mu, prev, beta, lo, hi = _problem(0)
    # the checker refuses this one (E0330); the shapes are those of the "floor" case
    c = mv.Constraints(net=[0.5, 0.6], gross=0.4, exposure={"beta": [-1.0, 1.0]})
    w, info = solver(*(jnp.asarray(a) for a in (mu, cov, prev, lo, hi)),
                     mv.rows(c, SECTORS, K, {"beta": jnp.asarray(beta)}))
    assert not bool(info["converged"])


# -- parametric VaR and ES against scipy ----------------------------------------------------------

@pytest.mark.parametrize("es", [False, True])
def test_parametric_tail_loss_matches_scipy(es):
    rng = np.random.default_rng(7)
    W, n, c = 80, 5, 0.975
    rows = rng.normal(0, 0.015, (W + 20, n)) @ rng.normal(0, 1, (n, n)) * 0.5
    age = np.arange(W + 20)[::-1]                           # the last row is the newest
    w = np.array([0.3, -0.2, 0.4, 0.1, 0.0])
    hist = (jnp.asarray(rows), jnp.asarray(age), jnp.full(n, -1), jnp.asarray(1000))
    got = float(jax.jit(parametric_loss, static_argnums=(2, 3, 4))(jnp.asarray(w), hist, W, c,
                                                                    es))
    cov = sk.LedoitWolf().fit(rows[age < W]).covariance_
    sd = np.sqrt(w @ cov @ w)
    z = norm.ppf(c)
    ref = sd * norm.pdf(z) / (1 - c) if es else sd * z
    assert abs(got - ref) <= 1e-12 * ref
    # the overlay scales the book onto the limit
    s = tail_risk.Settings(confidence=c, window=W, max=ref / 2, method="parametric")
    comp = tail_risk.ES if es else tail_risk.VAR
    update = jax.jit(lambda inputs: comp.factory(s).update(inputs, (), None)[0])
    out = update({"w": jnp.asarray(w), "w_cur": jnp.zeros(n), "locked": jnp.zeros(n, bool),
                  "est": {"history": hist}})
    np.testing.assert_allclose(np.asarray(out["w"]), w / 2, rtol=1e-12)


# -- the stress limit ------------------------------------------------------------------------------

SCENARIOS = {"crash": {"market": "-20%"}, "banks": {"sector": {"financials": "-30%"}},
             "panic": {"vol": 3, "market": "-5%"}, "rotation": {"sector": {"energy": "-25%",
                                                                           "health": "10%"}}}


def stress_reference(w, rows, sector_of, scenarios, confidence):
    """The stressed loss of `w` from the window's returns `rows` [W, N], in numpy."""
    cov = sk.LedoitWolf().fit(rows).covariance_
    u = np.full(len(w), 1 / len(w))
    beta = cov @ u / (u @ cov @ u)
    sd = np.sqrt(w @ cov @ w)
    losses = []
    for sc in scenarios.values():
        m = sc.get("market", 0.0)
        x = np.array([sc.get("sector", {}).get(s, 0.0) for s in sector_of])
        losses.append(-m * beta @ w - x @ w + sc.get("vol", 0.0) * norm.ppf(confidence) * sd)
    return max(max(losses), 0.0)


def _fractions(d):
    if isinstance(d, dict):
        return {k: _fractions(v) for k, v in d.items()}
    return float(d.rstrip("%")) / 100 if isinstance(d, str) else float(d)


def test_stress_loss_matches_numpy():
    rng = np.random.default_rng(11)
    names = ("energy", "financials", "health", "")
    ids = (0, 0, 1, 1, 2)
    ctx = Ctx(5, 252.0, 1, (False,) * 5, (True,) * 5, ids, 4, 1.0, 1.0, names)
    rows = rng.normal(0, 0.01, (60, 5)) + rng.normal(0, 0.01, (60, 1))
    w = np.array([0.3, -0.1, 0.4, 0.2, -0.2])
    s = stress.Settings(max=0.01, window=60, scenarios=SCENARIOS)
    hist = (jnp.asarray(rows), jnp.arange(60)[::-1], jnp.full(5, -1), jnp.asarray(100))
    got = float(jax.jit(lambda w, h: stress.stress_loss(w, h, s, ctx))(jnp.asarray(w), hist))
    ref = stress_reference(w, rows, [names[i] for i in ids], _fractions(SCENARIOS), 0.99)
    assert ref > 0.01 and abs(got - ref) <= 1e-12 * ref


# -- promises on the book of a backtest -----------------------------------------------------------

SYMBOLS = ["JNJ", "PFE", "JPM", "BAC", "XOM", "CVX"]      # no bar missing in 2010
SECTOR_OF = {"JNJ": "health", "PFE": "health", "JPM": "financials", "BAC": "financials",
             "XOM": "energy", "CVX": "energy"}
BOOK = {
    "policy": "mvc", "version": "1.0.0", "owner": "CR-001",
    "universe": {"symbols": SYMBOLS, "bar": "1d", "sectors": SECTOR_OF},
    "features": {"r1": "ret(close, 1)", "vol": "stdev(r1, 40)",
                 "alpha": "(0.6 * zscore(ret(close, 40)) - 0.4 * zscore(ret(close, 5))) * vol "
                          "* 0.2",
                 "mkt_beta": "vol / cs_mean(vol)"},
    "signal": {"mu": "alpha", "sigma": "vol"},
    "portfolio": {"method": "mean_variance", "risk_aversion": 2, "turnover_penalty": "5bps",
                  "covariance": {"window": 40},
                  "constraints": {"net": ["-2%", "2%"], "gross": "80%",
                                  "sector_net": ["-10%", "10%"], "sector_gross": "35%",
                                  "exposure": {"mkt_beta": [-0.05, 0.05]}}},
    "risk": {"gross_max": "100%", "net_max": "50%", "position_max": "30%"},
    "execution": {"algo": "market", "participation_cap": "5%"},
    "stand_down": {"data_gap": {"max_missing": "50%", "action": "halt"}},
}


@pytest.fixture(scope="module")
def panel():
    p, _ = load_bars(default_data(SYMBOLS), symbols=SYMBOLS)
    return p.select(SYMBOLS)


STRESSED = copy.deepcopy(BOOK)
STRESSED["risk"]["stress"] = {"max": "3%", "window": 40, "scenarios": SCENARIOS}


def beta_of(panel):
    """`vol / cs_mean(vol)` with `vol = stdev(ret(close, 1), 40)`, in numpy."""
    r1 = np.vstack([np.full(panel.N, np.nan), panel.close[1:] / panel.close[:-1] - 1])
    vol = np.full(r1.shape, np.nan)
    for t in range(40, panel.T):
        vol[t] = r1[t - 39:t + 1].std(0, ddof=1)
    finite = np.isfinite(vol)
    mean = np.where(finite, vol, 0.0).sum(1) / np.maximum(finite.sum(1), 1)
    return vol / np.where(finite.any(1), mean, np.nan)[:, None]


@pytest.fixture(scope="module")
def book(panel):
    """One backtest of the constrained optimizer with the stress limit after it."""
    assert panel.valid.all()
    sim = simkit.Sim.of(STRESSED, panel.symbols)
    return sim, sim.run(panel)


def test_the_target_book_meets_every_constraint(book, panel):
    sim, out = book
    beta = beta_of(panel)
    w = out["weights"]
    sector = np.array([SECTOR_OF[s] for s in panel.symbols])
    traded = np.abs(w).sum(1) > 0
    assert traded.sum() > 100
    net, gross = w.sum(1), np.abs(w).sum(1)
    assert np.all(np.abs(net) <= 0.02 + FEAS) and np.all(gross <= 0.8 + FEAS)
    for name in set(sector):
        part = w[:, sector == name]
        assert np.all(np.abs(part.sum(1)) <= 0.10 + FEAS)
        assert np.all(np.abs(part).sum(1) <= 0.35 + FEAS)
    known = np.isfinite(beta).all(1)         # bars whose betas are all defined
    assert known[traded].all()
    expo = np.where(known, (np.where(known[:, None], beta, 0.0) * w).sum(1), 0.0)
    assert np.all(np.abs(expo) <= 0.05 + FEAS)
    # the bounds bind on the optimizer's book (the stress limit then only shrinks it)
    free = traded & known & ~(out["reasons"] & simkit.flag(sim.engine, "stress_cap")).any(1)
    assert np.any(np.abs(expo[free]) >= 0.05 - 1e-7) and np.any(gross[free] >= 0.8 - 1e-7)
    unsolved = simkit.flag(sim.engine, "unsolved")
    assert not (out["reasons"][traded] & unsolved).any()


def test_the_stressed_loss_of_the_target_book_is_within_the_limit(book, panel):
    sim, out = book
    w = out["weights"]
    r1 = panel.close[1:] / panel.close[:-1] - 1
    sector_of = [SECTOR_OF[s] for s in panel.symbols]
    capped = (out["reasons"] & simkit.flag(sim.engine, "stress_cap")).any(1)
    assert capped.sum() > 5
    checked = 0
    for t in range(41, panel.T, 3):
        rows = r1[t - 40:t]
        if np.abs(w[t]).sum() == 0 or not np.all(panel.valid[t - 40:t + 1]):
            continue
        loss = stress_reference(w[t], rows, sector_of, _fractions(SCENARIOS), 0.99)
        assert loss <= 0.03 + 1e-12
        if capped[t]:
            assert loss >= 0.03 - 1e-9        # scaled onto the limit, not below it
        checked += 1
    assert checked > 30


# -- the checker -----------------------------------------------------------------------------------

def _codes(policy: dict) -> list[tuple[str, str]]:
    import yaml
    result = check_text(yaml.safe_dump(policy, sort_keys=False), "<test>")
    return [(d.code, d.message) for d in result.diagnostics]


def _with(path: str, value, base=BOOK) -> dict:
    d = copy.deepcopy(base)
    node, keys = d, path.split(".")
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return d


@pytest.mark.parametrize("path, value, code, words", [
    ("portfolio.constraints.exposure", {"betta": [-0.1, 0.1]}, "E0401", "`betta` is not a feature"),
    ("portfolio.constraints.exposure", {"mkt_beta": [0.1, -0.1]}, "E0304", "is empty"),
    ("portfolio.constraints.net", ["5%"], "E0304", "`[low, high]`"),
    ("portfolio.constraints.net", ["85%", "90%"], "E0330", "within `gross`"),
    ("portfolio.constraints.sector_net", ["20%", "30%"], "E0330", "within `net`"),
    ("portfolio.constraints.gross", "500", "E0304", "out of range"),
    ("portfolio.constraints.net", ["2%", "5%"], "W0330", "excludes 0"),
    ("risk.stress.scenarios", {"x": {"sector": {"finance": "-10%"}}}, "E0401",
     "`finance` is not a sector"),
    ("risk.stress.scenarios", {"x": {}}, "E0304", "needs a shock"),
    ("risk.var", {"confidence": "99%", "window": 1, "max": "2%", "method": "parametric"},
     "E0304", "at least 2 bars"),
])
def test_bad_specs_get_clear_diagnostics(path, value, code, words):
    base = copy.deepcopy(BOOK)
    base["risk"]["stress"] = {"max": "4%", "window": 40, "scenarios": SCENARIOS}
    found = _codes(_with(path, value, base))
    assert any(c == code and words in m for c, m in found), found


def test_constraints_that_cannot_hold_are_refused():
    long_short = _with("portfolio.constraints.net", ["-20%", "-10%"])
    long_short["portfolio"]["long_only"] = True
    assert ("E0330" in [c for c, _ in _codes(long_short)])
    no_sectors = copy.deepcopy(BOOK)
    no_sectors["universe"].pop("sectors")
    assert "E0313" in [c for c, _ in _codes(no_sectors)]
    scalar = _with("features", dict(BOOK["features"], mkt_beta="cs_mean(vol)"))
    assert "E0507" in [c for c, _ in _codes(scalar)]


def test_the_stress_loss_column_is_what_the_limit_saw(book, panel):
    """`stress.loss` is the loss of the book as it reached the limit: the final book's where the
    limit did not bind (the stress limit is the last overlay), above the limit where it did."""
    sim, out = book
    seen, w = out["overlay:stress.loss"], out["weights"]
    r1 = panel.close[1:] / panel.close[:-1] - 1
    sector_of = [SECTOR_OF[s] for s in panel.symbols]
    capped = (out["reasons"] & simkit.flag(sim.engine, "stress_cap")).any(1)
    assert (seen[capped] > 0.03).all()
    worst, checked = 0.0, 0
    for t in range(41, panel.T, 3):
        if capped[t] or np.abs(w[t]).sum() == 0:
            continue
        ref = stress_reference(w[t], r1[t - 40:t], sector_of, _fractions(SCENARIOS), 0.99)
        worst, checked = max(worst, abs(seen[t] - ref)), checked + 1
    assert checked > 30 and worst < 1e-12, (checked, worst)


def test_every_risk_estimate_reads_one_shrunk_covariance():
    """Parametric VaR/ES, the stress limit and the portfolio methods share one Ledoit-Wolf
    covariance of the complete instruments (an instrument with a gap in its window neither
    enters it nor its shrinkage target), equal to scikit-learn's on those columns."""
    from crowe.stdlib.portfolio import covariance as cv
    from crowe.stdlib.risk import window_covariance
    rng = np.random.default_rng(4)
    W, n = 50, 5
    rows = rng.normal(0, 0.01, (W + 10, n)) + rng.normal(0, 0.01, (W + 10, 1))
    age = jnp.arange(W + 10)[::-1]
    last_bad = jnp.array([-1, -1, 200 - 5, -1, -1])       # the third had a gap 5 bars ago
    hist = (jnp.asarray(rows), age, last_bad, jnp.asarray(200))
    w = np.array([0.3, -0.2, 0.0, 0.25, 0.1])

    @jax.jit
    def estimates(hist):
        usable = cv.complete(cv.Covariance(window=W), hist)
        return (*window_covariance(hist, W), stress.estimates(hist, W)[1], usable,
                cv.estimate(cv.Covariance(window=W), hist, usable),
                parametric_loss(jnp.asarray(w), hist, W, 0.99, False))
    ok, risk_cov, stress_cov, usable, method_cov, var = estimates(hist)
    keep = np.array([True, True, False, True, True])
    assert (np.asarray(ok) == keep).all() and (np.asarray(usable) == keep).all()
    ref = sk.LedoitWolf().fit(rows[np.asarray(age) < W][:, keep]).covariance_
    for got in (risk_cov, stress_cov, method_cov):
        got = np.asarray(got)
        assert np.abs(got[np.ix_(keep, keep)] - ref).max() < 1e-15
        assert (got[2, keep] == 0).all() and (got[keep, 2] == 0).all()
    assert abs(float(var) - norm.ppf(0.99) * np.sqrt(w[keep] @ ref @ w[keep])) < 1e-15
