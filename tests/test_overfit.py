"""PSR, DSR and PBO against the papers' formulas computed here independently (scipy's normal
distribution and moments, a plain loop over the CSCV splits), and cases whose answer is known
by hand."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from crowe.runtime.overfit import dsr, expected_max_sharpe, pbo, psr, summary

RNG = np.random.default_rng(7)
R = RNG.standard_t(5, 500) * 0.01 + 0.0008          # fat-tailed daily returns with an edge


def reference_psr(r, sr_star):
    """Bailey and Lopez de Prado (2012), eq. for the PSR: skewness and (non-excess) kurtosis
    are the population moments."""
    sr = np.mean(r) / np.std(r, ddof=1)
    g3 = stats.skew(r)
    g4 = stats.kurtosis(r, fisher=False)
    z = (sr - sr_star) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return stats.norm.cdf(z)


@pytest.mark.parametrize("sr_star", [0.0, 0.02, 0.1])
def test_psr_is_the_papers_formula(sr_star):
    assert psr(R, sr_star) == pytest.approx(reference_psr(R, sr_star), rel=1e-12, abs=1e-15)


def test_psr_of_normal_returns_by_hand():
    """Symmetric returns with kurtosis 3: PSR(0) = Phi(SR sqrt(T - 1) / sqrt(1 + SR^2 / 2)).
    r = (+a, -a) repeated with an offset m: SR = m / (a sqrt(T / (T - 1))), skew 0, kurt 1."""
    T, m, a = 100, 0.001, 0.01
    r = m + a * np.tile([1.0, -1.0], T // 2)
    sr = m / (a * math.sqrt(T / (T - 1)))
    z = sr * math.sqrt(T - 1) / math.sqrt(1 + (1 - 1) / 4 * sr**2)     # two-point: kurtosis 1
    assert psr(r) == pytest.approx(stats.norm.cdf(z), rel=1e-12)


def test_dsr_benchmark_is_the_expected_maximum_of_unskilled_trials():
    """SR0 = sqrt(V) ((1 - g) Z(1 - 1/N) + g Z(1 - 1/(N e))), Bailey and Lopez de Prado 2014;
    for N = 1000 and V = 1 about 3.26 (the exact mean maximum of 1000 normals is 3.24)."""
    g = 0.5772156649015329
    for n, v in ((10, 0.5), (100, 1e-4), (1000, 1.0)):
        want = math.sqrt(v) * ((1 - g) * stats.norm.ppf(1 - 1 / n) +
                               g * stats.norm.ppf(1 - 1 / (n * math.e)))
        assert expected_max_sharpe(n, v) == pytest.approx(want, rel=1e-12)
    assert expected_max_sharpe(1000, 1.0) == pytest.approx(3.26, abs=0.01)
    assert dsr(R, 50, 4e-4) == pytest.approx(
        reference_psr(R, expected_max_sharpe(50, 4e-4)), rel=1e-12)
    assert dsr(R, 50, 4e-4) < psr(R)


def reference_pbo(m, S):
    """CSCV as Bailey, Borwein, Lopez de Prado and Zhu (2015) state it, one split at a time."""
    T, N = m.shape
    size = T // S
    blocks = [m[i * size:(i + 1) * size] for i in range(S)]
    logits = []
    for ins in itertools.combinations(range(S), S // 2):
        J = np.concatenate([blocks[i] for i in ins])
        Jc = np.concatenate([blocks[i] for i in range(S) if i not in ins])
        r_in = J.mean(0) / J.std(0, ddof=1)
        r_out = Jc.mean(0) / Jc.std(0, ddof=1)
        n_star = int(np.argmax(r_in))
        rank = stats.rankdata(r_out)[n_star]           # 1 = worst out of sample
        w = rank / (N + 1)
        logits.append(math.log(w / (1 - w)))
    return float(np.mean(np.array(logits) <= 0)), logits


def test_pbo_is_cscv_split_by_split():
    m = RNG.normal(0.0002, 0.01, (400, 12))
    got = pbo(m, 8)
    want, logits = reference_pbo(m, 8)
    assert got["splits"] == math.comb(8, 4) == len(logits)
    assert got["pbo"] == want
    np.testing.assert_allclose(got["logits"], logits, rtol=1e-9)


def test_pbo_by_hand():
    """Two trials, two blocks: A wins the first block and loses the second, B the opposite.
    Whatever half is in sample, its best is the worst out of sample: w = 1/3, PBO = 1. When A
    wins both halves, its out-of-sample rank is 2: w = 2/3, PBO = 0."""
    up, down = np.tile([0.02, 0.0], 5), np.tile([-0.01, 0.0], 5)
    swap = np.column_stack([np.r_[up, down], np.r_[down, up]])
    got = pbo(swap, 2)
    assert got["pbo"] == 1.0 and got["logits"] == pytest.approx([math.log(0.5)] * 2)
    dominant = np.column_stack([np.r_[up, up], np.r_[down, down]])
    assert pbo(dominant, 2)["pbo"] == 0.0


def test_summary_counts_trials_and_their_sharpe_variance():
    m = RNG.normal(0.0003, 0.01, (300, 5))
    s = summary(m, 2)
    srs = m.mean(0) / m.std(0, ddof=1)
    assert s["trials"] == 5
    assert s["var_trial_sharpe"] == pytest.approx(np.var(srs, ddof=1), rel=1e-12)
    assert s["dsr"] == pytest.approx(reference_psr(m[:, 2], expected_max_sharpe(5, s[
        "var_trial_sharpe"])), rel=1e-12)
    assert s["pbo_blocks"] == 16 and s["pbo_splits"] == math.comb(16, 8)
