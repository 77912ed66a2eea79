"""Overfitting statistics of a sweep or a walk-forward (numpy, after the fact).

- Probabilistic Sharpe ratio (Bailey and Lopez de Prado 2012, "The Sharpe ratio efficient
  frontier", J. of Risk 15(2)): the probability that the true Sharpe ratio exceeds `sr_star`,
  given `T` returns with skewness `g3` and kurtosis `g4` (not excess), all per bar::

      PSR = Phi( (SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2) )

- Deflated Sharpe ratio (Bailey and Lopez de Prado 2014, "The deflated Sharpe ratio", J. of
  Portfolio Management 40(5)): the PSR of the best of `N` trials against the Sharpe ratio that
  the best of N unskilled trials would reach, from the variance `V` of the trials' Sharpe
  ratios (gamma = Euler-Mascheroni constant)::

      SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))
      DSR = PSR(SR0)

- Probability of backtest overfitting by combinatorially symmetric cross-validation (Bailey,
  Borwein, Lopez de Prado and Zhu 2015, "The probability of backtest overfitting", J. of
  Computational Finance 20(4)): the T x N matrix of per-bar returns is cut into S blocks of
  rows; for each of the C(S, S/2) ways of choosing half the blocks as in-sample, the trial
  with the best in-sample Sharpe ratio is ranked out of sample, `w = rank / (N + 1)` (rank 1 the
  worst), `logit = ln(w / (1 - w))`; PBO is the share of splits whose logit is <= 0 (the
  in-sample best is at or below the out-of-sample median).

Sharpe ratios here are per bar (not annualised), as the formulas take them.
"""
from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sharpe(r) -> float:
    """Per-bar Sharpe ratio mean / std (ddof 1); NaN for fewer than 2 returns or std 0."""
    r = np.asarray(r, float)
    if r.size < 2:
        return float("nan")
    sd = r.std(ddof=1)
    return float(r.mean() / sd) if sd > 0 else float("nan")


def psr(r, sr_star: float = 0.0) -> float:
    """Probabilistic Sharpe ratio of the returns `r` against the benchmark `sr_star`.

    >>> round(psr([0.01, -0.005, 0.02, 0.0, 0.015, -0.01, 0.01]), 4)
    0.8833
    """
    r = np.asarray(r, float)
    sr = sharpe(r)
    if not math.isfinite(sr):
        return float("nan")
    d = r - r.mean()
    m2 = np.mean(d ** 2)
    g3, g4 = np.mean(d ** 3) / m2 ** 1.5, np.mean(d ** 4) / m2 ** 2
    den = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr
    if den <= 0:
        return float("nan")
    return _N.cdf((sr - sr_star) * math.sqrt(r.size - 1) / math.sqrt(den))


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """SR0: the expected best Sharpe ratio of `n_trials` unskilled trials (DSR's benchmark)."""
    if n_trials < 2 or not var_sharpe > 0:
        return 0.0
    a = _N.inv_cdf(1.0 - 1.0 / n_trials)
    b = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(var_sharpe) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b)


def dsr(r_best, n_trials: int, var_sharpe: float) -> float:
    """Deflated Sharpe ratio of the chosen trial's returns, given how many trials were run
    and the variance of their per-bar Sharpe ratios."""
    return psr(r_best, expected_max_sharpe(n_trials, var_sharpe))


def pbo(returns, blocks: int = 16) -> dict:
    """Probability of backtest overfitting by CSCV of the [T, N] returns matrix (N >= 2
    trials) cut into `blocks` (even) groups of rows; the last `T mod blocks` rows are left
    out. Returns {"pbo", "logits", "splits", "blocks"}."""
    m = np.asarray(returns, float)
    T, N = m.shape
    if blocks % 2 or blocks < 2:
        raise ValueError("blocks must be an even number >= 2")
    if N < 2 or T < blocks * 2:
        return {"pbo": float("nan"), "logits": [], "splits": 0, "blocks": blocks}
    size = T // blocks
    parts = m[:size * blocks].reshape(blocks, size, N)
    s1, s2 = parts.sum(axis=1), (parts * parts).sum(axis=1)      # [blocks, N]
    ins = np.array(list(itertools.combinations(range(blocks), blocks // 2)))
    chosen = np.zeros((len(ins), blocks), bool)
    chosen[np.arange(len(ins))[:, None], ins] = True
    sr_in = _block_sharpes(chosen, s1, s2, size)
    sr_out = _block_sharpes(~chosen, s1, s2, size)
    star = np.argmax(np.where(np.isnan(sr_in), -np.inf, sr_in), axis=1)
    best_out = sr_out[np.arange(len(ins)), star][:, None]
    rank = 1 + np.sum(sr_out < best_out, axis=1) + 0.5 * (np.sum(sr_out == best_out, axis=1) - 1)
    w = rank / (N + 1)
    logits = np.log(w / (1.0 - w))
    return {"pbo": float(np.mean(logits <= 0)), "logits": logits.tolist(),
            "splits": len(logits), "blocks": blocks}


def _block_sharpes(chosen, s1, s2, size):
    """Per-bar Sharpe ratios (ddof 1) of the rows of the chosen blocks, from block sums."""
    n = chosen.sum(axis=1, keepdims=True) * size
    total, sq = chosen @ s1, chosen @ s2
    mean = total / n
    var = np.maximum(sq - n * mean * mean, 0.0) / (n - 1)
    sd = np.sqrt(var)
    with np.errstate(all="ignore"):
        return np.where(sd > 0, mean / sd, 0.0)


def summary(returns, chosen: int, blocks: int = 16) -> dict:
    """PSR and DSR of trial `chosen`, the trials' count and Sharpe variance, and PBO."""
    m = np.asarray(returns, float)
    srs = np.array([sharpe(m[:, j]) for j in range(m.shape[1])])
    finite = srs[np.isfinite(srs)]
    var = float(np.var(finite, ddof=1)) if finite.size > 1 else 0.0
    out = {"trials": int(m.shape[1]), "sharpe_per_bar": float(srs[chosen]),
           "var_trial_sharpe": var, "psr": psr(m[:, chosen]),
           "sr0_expected_max": expected_max_sharpe(m.shape[1], var),
           "dsr": dsr(m[:, chosen], m.shape[1], var)}
    b = blocks
    while b > 2 and m.shape[0] < 2 * b:     # short samples: fewer, still even, blocks
        b -= 2
    p = pbo(m, b)
    out.update(pbo=p["pbo"], pbo_splits=p["splits"], pbo_blocks=p["blocks"])
    return out
