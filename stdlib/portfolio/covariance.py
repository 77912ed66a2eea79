"""Covariance estimators of one-bar returns over a trailing window.

* ``ledoit_wolf``: Ledoit and Wolf (2004), "A well-conditioned estimator for large-dimensional
  covariance matrices": the sample covariance shrunk toward a scaled identity with the
  intensity that minimises the expected Frobenius loss (as scikit-learn's ``LedoitWolf``).
* ``sample``: the sample covariance (``ddof = 1``).

Ledoit-Wolf, with S the sample covariance (``ddof = 0``) of t centred rows x_k over n columns:

    S* = delta mu I + (1 - delta) S,     mu = tr(S) / n,     delta = min(b2, d2) / d2,
    d2 = ||S - mu I||_F^2 / n,           b2 = sum_k ||x_k x_k' - S||_F^2 / (t^2 n)

The risk limits and the portfolio methods read one such covariance of a trailing window
(`trailing`), over the instruments whose window is complete.

>>> import jax, jax.numpy as jnp, numpy as np
>>> jax.config.update("jax_enable_x64", True)   # as in the compiled step
>>> x = np.random.default_rng(0).normal(0, 0.01, (60, 3))
>>> cov, delta = jax.jit(ledoit_wolf)(x, jnp.ones(60, bool))
>>> round(float(delta), 4)                      # scikit-learn's `ledoit_wolf` gives 0.6824
0.6824
>>> bool(np.isclose(np.trace(cov), np.trace(np.cov(x.T, ddof=0))))   # the trace is kept
True
"""
from __future__ import annotations

from typing import Literal

from crowe.dsl.fields import Section, window
from crowe.stdlib._jax import jnp

EPS = 1e-12


Window = window("`window`", least=2)

class Covariance(Section):
    estimator: Literal["ledoit_wolf", "sample"] = "ledoit_wolf"
    window: Window = 126


def ledoit_wolf(x, mask, cols=None):
    """Ledoit-Wolf (2004) shrinkage toward a scaled identity of the rows of ``x`` [T, N] where
    ``mask`` [T] is true, on the columns where ``cols`` [N] is true (all by default; the others
    are 0 and do not count in the target). Returns (covariance [N, N], shrinkage delta)."""
    m = mask[:, None]
    t = jnp.maximum(mask.sum(), 2).astype(jnp.float64)
    eye = jnp.eye(x.shape[1]) if cols is None else jnp.diag(cols.astype(jnp.float64))
    x = x if cols is None else jnp.where(cols[None, :], x, 0.0)
    mean = jnp.where(m, x, 0.0).sum(0) / t
    xc = jnp.where(m, x - mean, 0.0)
    s = xc.T @ xc / t
    n = jnp.maximum(jnp.trace(eye), 1.0)
    mu = jnp.trace(s) / n
    d2 = jnp.sum((s - mu * eye) ** 2) / n
    fourth = jnp.sum(jnp.sum(xc * xc, axis=1) ** 2)
    b2_bar = (fourth - t * jnp.sum(s * s)) / (t * t) / n
    b2 = jnp.minimum(b2_bar, d2)
    delta = jnp.where(d2 > EPS, b2 / jnp.maximum(d2, EPS), 1.0)
    return delta * mu * eye + (1.0 - delta) * s, delta


def sample(x, mask):
    """The sample covariance (ddof 1) of the rows of ``x`` where ``mask`` is true."""
    m = mask[:, None]
    t = jnp.maximum(mask.sum() - 1, 1)
    xc = jnp.where(m, x - jnp.where(m, x, 0.0).sum(0) / jnp.maximum(mask.sum(), 1), 0.0)
    return xc.T @ xc / t


def estimate(settings: Covariance, history, usable):
    """The covariance [N, N] of the instruments in ``usable`` over the window (identity rows and
    columns for the others), from the step's return history ``(rows, age, last_bad, pos)``."""
    rows, age, _, _ = history
    x = jnp.where(usable[None, :], rows, 0.0)
    in_window = age < settings.window
    if settings.estimator == "ledoit_wolf":
        cov, _ = ledoit_wolf(x, in_window, usable)
    else:
        cov = sample(x, in_window)
    return jnp.where(usable[:, None] & usable[None, :], cov, jnp.eye(x.shape[1]))


def trailing(history, window: int):
    """(complete [N], the Ledoit-Wolf covariance [N, N] of the last ``window`` one-bar returns
    of the instruments whose window is complete): the one shrunk covariance that the risk
    limits (parametric VaR/ES, stress) and the portfolio methods share, identity rows and
    columns for the other instruments, which do not count in the shrinkage target."""
    ok = complete(Covariance(window=window), history)
    return ok, estimate(Covariance(window=window), history, ok)


def complete(settings: Covariance, history):
    """Which instruments have a full window of returns without a gap."""
    _, _, last_bad, pos = history
    return last_bad <= pos - settings.window
