"""Regime: a two-state Gaussian hidden Markov model of a series (the cross-sectional mean of
one-bar returns unless ``series`` names another), whose rule fires when the filtered probability
of the risk-off state is above ``threshold``.

The model (Hamilton 1989; blueprint 16.6): a hidden state S_t in {0, 1} that follows a Markov
chain with transition matrix A and initial distribution pi, and observations
x_t ~ N(mu_{S_t}, sigma^2_{S_t}). Every ``refit`` bars, once ``window`` observations have been
seen, the parameters are estimated by Baum-Welch (EM, Baum et al. 1970; Rabiner 1989) on the last
``window`` observations, from the same starting point each time (both means at the window's mean,
variances at half and twice its variance, pi = (1/2, 1/2), A with 0.95 on the diagonal), for a
fixed number of iterations (`ITERATIONS`). Every bar the filtered probability is updated by the
scaled forward recursion:

    alpha_t  ∝  (alpha_{t-1} A) * N(x_t; mu, sigma^2),      sum(alpha_t) = 1

so that alpha_t = P(S_t | x_{t0..t}), with t0 the first bar of the window of the last fit (at a
fit, the recursion is run over that window with the new parameters). The **risk-off** state is
the one with the larger variance: on daily returns the means of the two states are small and
noisy, the variances are what set them apart, and a high-variance state is the one in which a
book should hold less. Two Gaussians fitted to a calm window always differ somewhat (a mixture
fits any sample better than one Gaussian), so the two states count as two regimes only when the
risk-off variance is at least ``min_ratio`` times the risk-on one (5 by default: on 120 bars of
pure Gaussian noise the fitted ratio stays below it in the tests, after a threefold rise of
volatility it is 7 to 30).

The rule fires when ``prob > threshold`` and ``ratio >= min_ratio``. Its statistics, ``prob``
= P(S_t = risk-off) and ``ratio`` (the variance ratio), are columns of the backtest's equity
table (`regime.prob`, `regime.ratio`), NaN until the first fit; the fitted ``means`` and
``variances`` are outputs too, risk-on state first. A bar on which the series has no value
leaves the filter as it was.

>>> import numpy as np
>>> from crowe.stdlib.detectors import replay
>>> rng = np.random.default_rng(0)
>>> x = np.r_[rng.normal(0, .01, 60), rng.normal(0, .04, 20)]    # calm, then turbulent
>>> out = replay(make(Settings(window=60, refit=20, threshold=0.9, action="halt")), x)
>>> bool(out["fired"][59]), bool(out["fired"][-1])
(False, True)
"""
from __future__ import annotations

from crowe.dsl.fields import Expr, frac, window
from crowe.stdlib._jax import jax, jnp
from crowe.stdlib.component import Component, Need, Transform
from crowe.stdlib.limits.common import Acting

ITERATIONS = 30          # Baum-Welch iterations at each fit
STAY = 0.95              # the starting transition matrix's diagonal


Window = window("`window`", least=10)
Refit = window("`refit`")
Ratio = frac(1.0, 1e6, what="variance ratio")
Probability = frac(0.0, 1.0, lo_open=True, hi_open=True, what="probability threshold")


class Settings(Acting):
    series: Expr | None = None
    window: Window = 252
    refit: Refit = 21
    threshold: Probability = 0.8
    min_ratio: Ratio = 5.0


def start(x):
    """The starting parameters (pi, A, mu, var) of Baum-Welch on the window ``x``."""
    m, v = x.mean(), x.var()
    return (jnp.full(2, 0.5), jnp.array([[STAY, 1 - STAY], [1 - STAY, STAY]]),
            jnp.stack([m, m]), jnp.stack([0.5 * v, 2.0 * v]))


def emissions(x, mu, var):
    """N(x_t; mu_j, var_j) for every bar and state, each row scaled by its largest entry
    (the scale cancels in every posterior)."""
    logp = -0.5 * ((x[:, None] - mu) ** 2 / var + jnp.log(2 * jnp.pi * var))
    return jnp.exp(logp - logp.max(axis=1, keepdims=True))


def forward(x, pi, A, mu, var):
    """Scaled forward recursion: (alpha [T, 2] with rows summing to one, scales c [T])."""
    b = emissions(x, mu, var)

    def one(prev, bt):
        a = (prev @ A) * bt
        return a / a.sum(), (a / a.sum(), a.sum())
    a0 = pi * b[0]
    _, (alpha, c) = jax.lax.scan(one, a0 / a0.sum(), b[1:])
    return jnp.concatenate([(a0 / a0.sum())[None], alpha]), jnp.concatenate([a0.sum()[None], c])


def em_step(x, params):
    """One Baum-Welch iteration: the E-step by forward-backward, the M-step in closed form."""
    pi, A, mu, var = params
    b = emissions(x, mu, var)
    alpha, c = forward(x, pi, A, mu, var)

    def back(nxt, inputs):
        bt, ct = inputs
        beta = A @ (bt * nxt) / ct
        return beta, beta
    _, beta = jax.lax.scan(back, jnp.ones(2), (b[1:], c[1:]), reverse=True)
    beta = jnp.concatenate([beta, jnp.ones((1, 2))])
    gamma = alpha * beta
    gamma = gamma / gamma.sum(axis=1, keepdims=True)
    xi = (alpha[:-1, :, None] * A[None] * (b[1:] * beta[1:])[:, None, :]
          / c[1:, None, None]).sum(axis=0)
    w = gamma.sum(axis=0)
    mu = (gamma * x[:, None]).sum(axis=0) / w
    var = (gamma * (x[:, None] - mu) ** 2).sum(axis=0) / w
    var = jnp.maximum(var, 1e-12 * x.var() + 1e-300)      # a state cannot collapse onto a point
    return gamma[0], xi / xi.sum(axis=1, keepdims=True), mu, var


def fit(x, iterations: int = ITERATIONS):
    """Baum-Welch on ``x`` from `start`: (pi, A, mu, var)."""
    return jax.lax.fori_loop(0, iterations, lambda _, p: em_step(x, p), start(x))


def init(W: int) -> dict:
    """The filter's state before any observation, for a window of ``W`` values."""
    f = jnp.float64
    return {"buf": jnp.zeros(W, f), "count": jnp.asarray(0, jnp.int64),
            "since": jnp.asarray(0, jnp.int64), "fitted": jnp.asarray(False),
            "A": jnp.eye(2, dtype=f), "mu": jnp.zeros(2, f), "var": jnp.ones(2, f),
            "alpha": jnp.full(2, jnp.nan, f)}


def observe(st: dict, x, refit_every: int) -> dict:
    """One bar: ``x`` enters the window (a bar without a value leaves the filter as it was);
    Baum-Welch refits when due, else the forward recursion takes one step."""
    W = st["buf"].shape[0]

    def refit(buf):
        pi, A, mu, var = fit(buf)
        alpha, _ = forward(buf, pi, A, mu, var)
        return A, mu, var, alpha[-1]

    def filtered(st, x):
        a = (st["alpha"] @ st["A"]) * emissions(x[None], st["mu"], st["var"])[0]
        return st["A"], st["mu"], st["var"], a / a.sum()

    def one(st, x):
        buf = jnp.concatenate([st["buf"][1:], x[None]])
        count = jnp.minimum(st["count"] + 1, W)
        due = (count >= W) & (~st["fitted"] | (st["since"] + 1 >= refit_every))
        A, mu, var, alpha = jax.lax.cond(
            due, lambda: refit(buf),
            lambda: jax.lax.cond(st["fitted"], lambda: filtered(st, x),
                                 lambda: (st["A"], st["mu"], st["var"], st["alpha"])))
        return {"buf": buf, "count": count, "since": jnp.where(due, 0, st["since"] + 1),
                "fitted": st["fitted"] | due, "A": A, "mu": mu, "var": var, "alpha": alpha}

    x = jnp.asarray(x, jnp.float64)
    return jax.lax.cond(jnp.isfinite(x), lambda: one(st, x), lambda: st)


def risk_off(st: dict):
    """(P(risk-off), the variance ratio, the state order (risk-on, risk-off)) of a filter."""
    off = jnp.argmax(st["var"])
    return st["alpha"][off], st["var"][off] / st["var"][1 - off], jnp.stack([1 - off, off])


def make(s: Settings):
    def update(inputs, st, ctx):
        st = observe(st, inputs["series"], s.refit)
        prob, ratio, order = risk_off(st)
        fired = st["fitted"] & (prob > s.threshold) & (ratio >= s.min_ratio)
        return {"fired": fired, "prob": prob, "ratio": ratio,
                "means": st["mu"][order], "variances": st["var"][order]}, {}, st
    return Transform(lambda ctx: init(s.window), update)


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("own", s.window),)


COMPONENT = Component("regime", "detector", ("stand_down", "regime"), Settings, make, __doc__,
                      needs=needs, per_instrument=False)
