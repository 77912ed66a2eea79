"""Change point: Bayesian online change point detection (Adams and MacKay 2007) on a series (the
cross-sectional mean of one-bar returns unless ``series`` names another); the rule fires when the
posterior probability that the current run began less than ``short_run`` bars ago is above
``threshold``.

The run length r_t is the number of bars since the last change. Between changes the series is
Gaussian with unknown mean and precision under a Normal-Gamma prior (mean 0 with the weight of
one observation, kappa_0 = 1; precision ~ Gamma(alpha_0 = 2, beta_0 = scale^2), so that the
prior's expected variance is scale^2), and a change happens at each bar with the constant hazard
H = 1 / ``expected_run``. Each bar, with pi_r the Student-t predictive density of x_t after a run
of r bars (2 alpha_r degrees of freedom, location mu_r, squared scale
beta_r (kappa_r + 1) / (alpha_r kappa_r)):

    P(r_t = r + 1, x_1..t)  =  P(r_{t-1} = r, x_1..t-1) pi_r (1 - H)        (growth)
    P(r_t = 0, x_1..t)      =  sum_r P(r_{t-1} = r, x_1..t-1) pi_r H         (change)

normalised over r, and each run's statistics are updated by conjugacy
(mu' = (kappa mu + x) / (kappa + 1), kappa' = kappa + 1, alpha' = alpha + 1/2,
beta' = beta + kappa (x - mu)^2 / (2 (kappa + 1))), the new run starting from the prior. Run
lengths are kept up to `MAX_RUN` - 1 bars: the mass of a longer run is dropped and the rest
renormalised (with a constant hazard P(r_t = 0 | x_1..t) is H at every bar, so the statistic is
the mass of the short runs, not of r = 0). The statistic ``short`` = P(r_t < short_run | x_1..t)
is a column of the backtest's equity table (`change_point.short`); it is NaN, and the rule
quiet, until ``short_run`` bars have been seen. A bar on which the series has no value leaves
the posterior as it was.

>>> import numpy as np
>>> from crowe.stdlib.detectors import replay
>>> x = np.r_[np.random.default_rng(0).normal(0, .01, 60), np.full(5, .05)]   # a jump
>>> out = replay(make(Settings(scale=0.01, action="halt")), x)
>>> bool(out["fired"][:60].any()), bool(out["fired"][-1])
(False, True)
"""
from __future__ import annotations

import math

import numpy as np
from pydantic import model_validator

from crowe.dsl.fields import Expr, fail, frac, window
from crowe.stdlib._jax import jax, jnp
from crowe.stdlib.component import Component, Need, Transform
from crowe.stdlib.limits.common import Acting

KAPPA0, ALPHA0 = 1.0, 2.0
MAX_RUN = 250            # run lengths kept: 0 to MAX_RUN - 1 bars

Expected = window("`expected_run`", least=2)
Short = window("`short_run`")
Probability = frac(0.0, 1.0, lo_open=True, hi_open=True, what="probability threshold")
Scale = frac(0.0, 1e6, lo_open=True, what="`scale`")


class Settings(Acting):
    series: Expr | None = None
    scale: Scale = 0.01
    expected_run: Expected = 250
    short_run: Short = 10
    threshold: Probability = 0.5

    @model_validator(mode="after")
    def _short(self):
        if self.short_run >= MAX_RUN:
            raise fail("range", f"`short_run` ({self.short_run}) must be shorter than the "
                       f"longest run kept ({MAX_RUN} bars)", "lower `short_run`")
        return self


def log_student(x, mu, kappa, alpha, beta, lgamma_ratio):
    """log of the predictive density of x after a run with these statistics
    (``lgamma_ratio`` = log Gamma(alpha + 1/2) - log Gamma(alpha))."""
    nu = 2.0 * alpha
    s2 = beta * (kappa + 1.0) / (alpha * kappa)
    z = (x - mu) ** 2 / (nu * s2)
    return lgamma_ratio - 0.5 * jnp.log(nu * jnp.pi * s2) - (nu + 1) / 2 * jnp.log1p(z)


def make(s: Settings):
    R, H = MAX_RUN, 1.0 / s.expected_run
    # after a run of r bars, kappa = kappa_0 + r and alpha = alpha_0 + r / 2, whatever the data
    kappa = KAPPA0 + np.arange(R, dtype=np.float64)
    alpha = ALPHA0 + np.arange(R, dtype=np.float64) / 2
    ratio = np.array([math.lgamma(a + 0.5) - math.lgamma(a) for a in alpha])

    def init(ctx):
        return {"mu": jnp.zeros(R, jnp.float64), "beta": jnp.full(R, s.scale ** 2, jnp.float64),
                "p": jnp.zeros(R, jnp.float64).at[0].set(1.0),
                "count": jnp.asarray(0, jnp.int64)}

    def observe(st, x):
        mu, beta = st["mu"], st["beta"]
        lw = jnp.log(st["p"]) + log_student(x, mu, kappa, alpha, beta, ratio)
        w = jnp.exp(lw - lw.max())
        p = jnp.concatenate([(w * H).sum()[None], (w * (1.0 - H))[:-1]])

        def grow(new, v0):
            return jnp.concatenate([jnp.full(1, v0, jnp.float64), new[:-1]])
        return {"p": p / p.sum(), "count": st["count"] + 1,
                "mu": grow((kappa * mu + x) / (kappa + 1.0), 0.0),
                "beta": grow(beta + kappa * (x - mu) ** 2 / (2.0 * (kappa + 1.0)), s.scale ** 2)}

    def update(inputs, st, ctx):
        x = jnp.asarray(inputs["series"], jnp.float64)
        st = jax.lax.cond(jnp.isfinite(x), lambda: observe(st, x), lambda: st)
        short = jnp.where(st["count"] >= s.short_run, st["p"][:s.short_run].sum(), jnp.nan)
        return {"fired": short > s.threshold, "short": short, "posterior": st["p"]}, {}, st
    return Transform(init, update)


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("own", s.short_run),)


COMPONENT = Component("change_point", "detector", ("stand_down", "change_point"), Settings, make,
                      __doc__, needs=needs, per_instrument=False)
