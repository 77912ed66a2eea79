"""The stand-down detectors against independent references, each run the way the compiled step
runs it (`replay`: its update scanned under jit, one bar at a time):

* `regime`: hmmlearn's GaussianHMM fitted on the same windows from the same starting point
  (parameters up to label order), and its posterior of the last observation of every prefix;
* `change_point`: a direct numpy transcription of Adams and MacKay (2007) with the full run
  length;
* `drift`: scipy's `ks_2samp` statistic and a numpy PSI on the same bins;
* `crash_sentinel`: a numpy transcription of its composite.

Each also fires on a synthetic episode made for it and stays quiet on a calm series."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from crowe.stdlib.component import Ctx
from crowe.stdlib.detectors import change_point, crash_sentinel, drift, regime, replay

jax.config.update("jax_enable_x64", True)

# -- regime ---------------------------------------------------------------------------------------

W, K = 120, 30          # the window and refit schedule of the tests
SHIFT = 190             # the bar where the volatile episode starts
REGIME = regime.make(regime.Settings(window=W, refit=K, threshold=0.9, action="halt"))


def _episode(seed: int, volatile: bool) -> np.ndarray:
    """240 bars of daily-like returns; with `volatile`, from `SHIFT` on the volatility triples
    and the mean turns negative."""
    rng = np.random.default_rng(seed)
    calm = rng.normal(0.0005, 0.01, 240)
    if volatile:
        calm[SHIFT:] = rng.normal(-0.003, 0.03, 240 - SHIFT)
    return calm


@pytest.fixture(scope="module")
def regime_runs():
    return {(seed, v): (x := _episode(seed, v), replay(REGIME, x))
            for seed in range(2) for v in (False, True)}


def _hmmlearn(window: np.ndarray):
    from hmmlearn.hmm import GaussianHMM
    pi, A, mu, var = (np.asarray(a) for a in regime.start(window))
    m = GaussianHMM(2, "diag", n_iter=regime.ITERATIONS, tol=-np.inf, init_params="",
                    params="stmc", covars_prior=0.0, implementation="scaling")
    m.startprob_, m.transmat_, m.means_, m.covars_ = pi, A, mu[:, None], var[:, None]
    return m.fit(window[:, None])


def test_regime_equals_hmmlearn_fits_and_filtered_posteriors(regime_runs):
    x, out = regime_runs[0, True]
    assert np.isnan(out["prob"][:W - 1]).all() and not out["fired"][:W - 1].any()
    worst_param = worst_prob = 0.0
    for fit_bar in range(W - 1, len(x), K):
        start = fit_bar - W + 1
        m = _hmmlearn(x[start:fit_bar + 1])
        var, mu = m.covars_.ravel(), m.means_.ravel()
        order = np.argsort(var)                     # label order: (risk-on, risk-off)
        worst_param = max(worst_param,
                          np.abs(out["variances"][fit_bar] - var[order]).max() / var.max(),
                          np.abs(out["means"][fit_bar] - mu[order]).max() / np.sqrt(var.max()))
        for s in range(fit_bar, min(fit_bar + K, len(x)), 6):   # prefixes, a few of each fit
            ref = m.predict_proba(x[start:s + 1, None])[-1, order[1]]
            worst_prob = max(worst_prob, abs(out["prob"][s] - ref))
    assert worst_param < 1e-8 and worst_prob < 1e-9, (worst_param, worst_prob)


def test_regime_fires_after_a_volatility_shift_and_not_on_calm_series(regime_runs):
    for seed in range(2):
        _, calm = regime_runs[seed, False]
        _, shifted = regime_runs[seed, True]
        assert not calm["fired"].any()
        assert not shifted["fired"][:SHIFT].any()
        first = np.flatnonzero(shifted["fired"])[0] - SHIFT
        # the states separate at the first fit that sees the episode: within one refit period
        assert 0 <= first <= K, first


# -- change point ---------------------------------------------------------------------------------

def _bocpd(x, hazard: float, scale: float):
    """Adams and MacKay (2007), algorithm 1, transcribed: the full run-length posterior after
    each observation (row t has t + 2 entries), Normal-Gamma model, constant hazard."""
    from scipy.stats import t as student
    mu, kappa, alpha, beta = (np.array([v]) for v in (0.0, 1.0, 2.0, scale ** 2))
    joint, rows = np.array([1.0]), []
    for xt in x:
        pred = student.pdf(xt, 2 * alpha, mu, np.sqrt(beta * (kappa + 1) / (alpha * kappa)))
        growth = joint * pred * (1 - hazard)
        cp = (joint * pred * hazard).sum()
        joint = np.r_[cp, growth]
        joint = joint / joint.sum()
        rows.append(joint)
        beta = np.r_[scale ** 2, beta + kappa * (xt - mu) ** 2 / (2 * (kappa + 1))]
        mu = np.r_[0.0, (kappa * mu + xt) / (kappa + 1)]
        kappa, alpha = np.r_[1.0, kappa + 1], np.r_[2.0, alpha + 0.5]
    return rows


CP = change_point.make(change_point.Settings(scale=0.01, expected_run=100, short_run=10,
                                             action="halt"))


def test_change_point_posterior_equals_the_paper_untruncated():
    x = np.random.default_rng(5).normal(0, 0.01, 100)
    x[60:] += 0.02
    out = replay(CP, x)
    worst = max(np.abs(out["posterior"][t][:len(row)] - row).max() for t, row in
                enumerate(_bocpd(x, 1 / 100, 0.01)))
    assert worst < 1e-10, worst
    assert (out["posterior"][np.arange(100), np.arange(100) + 1] != 0).all()  # nothing dropped


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_change_point_fires_after_mean_and_variance_shifts_not_on_calm(seed):
    calm = np.random.default_rng(seed).normal(0, 0.01, 200)
    mean_shift, var_shift = calm.copy(), calm.copy()
    mean_shift[150:] += 0.03          # three standard deviations
    var_shift[150:] *= 4
    assert not replay(CP, calm)["fired"].any()
    for x in (mean_shift, var_shift):
        fired = np.flatnonzero(replay(CP, x)["fired"])
        assert 150 <= fired[0] <= 155, fired[:3]      # within five bars of the shift


# -- drift ----------------------------------------------------------------------------------------

def _psi(recent, reference, bins: int) -> float:
    edges = np.quantile(reference, np.arange(1, bins) / bins)
    counts = lambda v: np.histogram(np.searchsorted(edges, v, side="right"),  # noqa: E731
                                    bins=np.arange(bins + 1))[0] / len(v)
    p, q = (np.maximum(counts(v), drift.FLOOR) for v in (recent, reference))
    return float(((p - q) * np.log(p / q)).sum())


DRIFT = drift.make(drift.Settings(window=60, reference=240, psi_max=1.2, ks_max=0.3,
                                  action="halt"))


def test_drift_statistics_equal_scipy_ks_and_a_numpy_psi():
    from scipy.stats import ks_2samp
    rng = np.random.default_rng(7)
    x = np.r_[rng.normal(0, 0.01, 280), rng.normal(0.01, 0.02, 60)]
    x[250] = np.nan                                    # skipped: the windows hold the last values
    out = replay(DRIFT, x)
    seen = x[np.isfinite(x)]
    assert np.isnan(out["ks"][:299]).all() and np.isnan(out["psi"][:299]).all()
    worst_ks = worst_psi = 0.0
    for t in range(299, len(x)):
        values = seen[:np.isfinite(x[:t + 1]).sum()][-300:]
        ref, recent = values[:240], values[240:]
        worst_ks = max(worst_ks, abs(out["ks"][t] - ks_2samp(recent, ref).statistic))
        worst_psi = max(worst_psi, abs(out["psi"][t] - _psi(recent, ref, drift.BINS)))
    assert worst_ks < 1e-12 and worst_psi < 1e-12, (worst_ks, worst_psi)


@pytest.mark.parametrize("seed", [0, 1])
def test_drift_fires_after_a_distribution_shift_not_on_calm(seed):
    calm = np.random.default_rng(seed).normal(0, 0.01, 340)
    shifted = calm.copy()
    shifted[280:] = shifted[280:] * 3 + 0.03
    quiet = replay(DRIFT, calm)
    assert not quiet["fired"].any(), (np.nanmax(quiet["psi"]), np.nanmax(quiet["ks"]))
    fired = np.flatnonzero(replay(DRIFT, shifted)["fired"])
    assert 280 <= fired[0] <= 320, fired[:3]    # within 40 bars (the recent window is 60)


# -- crash sentinel -------------------------------------------------------------------------------

N_CS, T_CS, CRASH = 4, 200, 185
CTX = Ctx(N_CS, 252.0, 1, (False,) * N_CS, (True,) * N_CS, (0,) * N_CS, 1, 1.0, 1.0)
SENTINEL = crash_sentinel.make(crash_sentinel.Settings(
    window=20, z_window=60, reduce_above=10, flatten_above=15, action="reduce(50%)"))


def _market(seed: int, crash: bool, T: int = T_CS, start: int = CRASH):
    """Returns [T, N] and bars; with `crash`, from bar `start` on every instrument falls 4% a
    day with a common shock and closes near its low. One instrument has no bar now and then."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0003, 0.01, (T, N_CS)) + rng.normal(0, 0.005, (T, 1))
    at = rng.uniform(-1, 1, (T, N_CS))
    if crash:
        r[start:] = -0.04 + rng.normal(0, 0.03, (T - start, 1)) + \
            rng.normal(0, 0.005, (T - start, N_CS))
        at[start:] = -0.9
    mid = 100 * np.cumprod(1 + r, axis=0)
    bars = {"high": mid * 1.01, "low": mid * 0.99, "close": mid * (1 + 0.01 * at),
            "volume": rng.uniform(1e5, 2e5, (T, N_CS))}
    missing = np.zeros((T, N_CS), bool)
    missing[::17, 2] = True
    r[missing] = np.nan
    for k in bars:
        bars[k][missing] = np.nan
    return r, bars


def _sentinel_numpy(r, bars, window: int, z_window: int):
    """The composite transcribed: (score, z [T, 4]) at every bar."""
    T = len(r)
    m = np.array([np.nanmean(row) for row in r])
    raw = np.full((T, 4), np.nan)
    for t in range(window, T):
        x = m[t - window + 1:t + 1]
        d = x - x.mean()
        past = r[t - window:t]
        ok = np.isfinite(past).all(0) & np.isfinite(r[t])
        dev = past[:, ok] - past[:, ok].mean(0)
        S = dev.T @ dev / (window - 1)
        S = 0.9 * S + 0.1 * np.diag(np.diag(S))
        e = r[t, ok] - past[:, ok].mean(0)
        h, lo, c, v = (bars[k][t] for k in ("high", "low", "close", "volume"))
        clv = ((c - lo) - (h - c)) / (h - lo)
        good = np.isfinite(clv)
        raw[t] = ((d[1:] * d[:-1]).sum() / (d * d).sum(), x.var(ddof=1),
                  e @ np.linalg.solve(S, e) / ok.sum(),
                  -(clv[good] * v[good]).sum() / v[good].sum())
    z = np.full((T, 4), np.nan)
    for t in range(window + z_window, T):
        past = raw[t - z_window:t]
        z[t] = (raw[t] - past.mean(0)) / past.std(0, ddof=1)
    return z.sum(1), z


def _run_sentinel(r, bars, cooldown: int = 5):
    m = np.nanmean(r, axis=1)
    return replay(SENTINEL, m, CTX, est={"r1": r}, bar=bars, cooldown=np.full(len(r), cooldown))


def test_crash_sentinel_equals_a_numpy_transcription():
    r, bars = _market(0, True)
    out = _run_sentinel(r, bars)
    score, z = _sentinel_numpy(r, bars, 20, 60)
    assert np.isnan(out["score"][:80]).all()
    got = np.stack([out[f"z_{k}"] for k in crash_sentinel.PARTS], axis=1)
    worst = np.nanmax(np.abs(got[80:] - z[80:]))
    assert np.isfinite(got[80:]).all() and worst < 1e-9, worst
    assert np.allclose(out["score"][80:], score[80:], rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_crash_sentinel_reduces_then_flattens_in_a_crash_and_is_quiet_when_calm(seed):
    calm = _run_sentinel(*_market(seed, False))
    assert not calm["fired"].any() and not calm["kill"].any()
    out = _run_sentinel(*_market(seed, True))
    assert not out["fired"][:CRASH].any()
    kill = np.flatnonzero(out["kill"])
    assert CRASH <= kill[0] <= CRASH + 2, kill[:3]
    # the kill level holds for the cooldown after the last bar above it
    last = kill[-1]
    assert out["kill_held"][last:last + 6].all()


# -- the kill switch: held until resumed in paper, for the cooldown in a backtest -----------------

KILL_POLICY = """\
policy: kill_test
version: 1.0.0
owner: CR-001
universe: {symbols: [AAA, BBB, CCC, DDD], bar: 1d}
features:
  vol: stdev(ret(close, 1), 5)
signal: {horizon: 1d, mu: 0.5 * vol, sigma: vol}
sizing: {method: inverse_vol, budget: 100%, vol_window: 5}
risk: {gross_max: 100%, net_max: 100%, position_max: 40%}
execution: {algo: market, participation_cap: 50%}
stand_down:
  data_gap: {max_missing: 50%, action: halt}
  crash_sentinel: {window: 20, z_window: 60, reduce_above: 10, flatten_above: 15,
                   action: reduce(50%), cooldown: 3d}
"""


def test_crash_sentinel_kill_switch_holds_in_paper_until_resume(tmp_path):
    from crowe.runtime.backtest import backtest
    from crowe.runtime.data import load_bars, write_bars
    from crowe.runtime.paper import commands
    from crowe.runtime.paper.control import read_control
    from crowe.runtime.paper.feed import ReplayFeed
    from crowe.runtime.paper.journal import Journal, decision_digest
    from crowe.runtime.paper.loop import PaperRunner
    from paperkit.fixture import DAY_NS, SYMBOLS, engine

    T, crash = 110, 95                                # ready at bar 80 (20 + 60)
    r, bars = _market(0, True, T, crash)
    ok = np.isfinite(r)
    ts = np.repeat(np.arange(T) * DAY_NS + 1_600_000_000 * 10**9 // DAY_NS * DAY_NS, N_CS)
    write_bars(tmp_path / "bars.parquet", ts[ok.ravel()].astype("datetime64[ns]"),
               np.tile(np.array(SYMBOLS, object), T)[ok.ravel()],
               *(bars[k][ok] for k in ("close", "high", "low", "close", "volume")))
    (tmp_path / "p.policy").write_text(KILL_POLICY)
    eng = engine(tmp_path / "p.policy")
    panel, _ = load_bars(tmp_path / "bars.parquet")
    state = tmp_path / "state"
    paper = PaperRunner(eng, state, "digest")
    runner = paper.broker.update.__self__             # the paper's executable: one compile
    bt = backtest(eng, panel.select(SYMBOLS), runner=runner).out
    kill = int(np.flatnonzero(bt["kill_switch"])[0])
    assert crash <= kill <= crash + 2
    states = bt["trading_state"]
    assert states[kill] == 3 and np.flatnonzero(states[kill:] != 3).size  # the backtest resumes
    paper.run(ReplayFeed(str(tmp_path / "bars.parquet"), SYMBOLS))
    records = Journal(state).read()[0]
    for t in range(kill + 1):                         # parity with the backtest up to the kill
        assert records[t]["decision"] == decision_digest({k: v[t] for k, v in bt.items()})
    assert all(rec["override"] == "FLATTENING" and rec["trading_state"] == "FLATTENING"
               for rec in records[kill + 1:])         # well past the cooldown of 3 bars
    assert read_control(state)["override"] == "FLATTENING"
    commands.resume(str(state))
    assert read_control(state)["override"] == "ACTIVE"


def test_detector_settings_that_cannot_work_are_diagnosed():
    from crowe.dsl.policy import check_text
    sentinel = KILL_POLICY[KILL_POLICY.index("  crash_sentinel"):]
    text = KILL_POLICY.replace(sentinel, """  regime: {series: vol > 0, action: halt}
  drift: {action: halt}
  change_point: {short_run: 400, action: exclude}
  crash_sentinel: {reduce_above: 5, flatten_above: 3, action: halt}
""")
    found = {(d.code, d.span.line) for d in check_text(text, "p.policy").errors}
    assert found == {("E0501", 13), ("E0304", 14), ("E0304", 15), ("E0304", 16)}, found


# -- the regime probability in expressions ------------------------------------------------------

def test_regime_prob_windows_must_be_constants():
    from crowe.dsl.policy import check_text
    import simkit
    import yaml
    policy = simkit.policy_dict(params={"win": {"default": 60, "range": [20, 120]}},
                                features={"r1": "ret(close, 1)",
                                          "p_off": "regime_prob(r1, win)"},
                                gates={"calm": "p_off < 0.8"})
    errors = check_text(yaml.safe_dump(policy, sort_keys=False), "p.policy").errors
    assert [d.code for d in errors] == ["E0502"] and "constant" in errors[0].message
