"""Position sizing: from forecasts to target weights (fractions of equity, signed).

Every function takes per-instrument arrays ``[N]`` and a boolean ``ok`` mask of the instruments
that may hold a position this bar; the others get weight 0.

* ``kelly_tempered``: w = lambda * mu / sigma^2, the Kelly fraction for a normal forecast of the
  return over the horizon (mean mu, std sigma), tempered by lambda in (0, 1]
  (blueprint 16.3: maximise w'mu - w'Sigma w / 2, then w <- lambda w).
* ``vol_target``: w = sign(mu) * target_bar / (vol * sqrt(n)): each of the n active instruments
  runs at target_bar / sqrt(n), so that with uncorrelated returns the book runs at the target
  (blueprint 16.2: s_t = sigma* / max(sigma_t, eps)).
* ``equal``: w = sign(mu) * budget / n.
* ``inverse_vol``: w = sign(mu) * budget * (1 / vol) / sum(1 / vol).

``scale_to_vol`` is the portfolio overlay: it scales a book so that its volatility estimate
sqrt(sum(w^2 vol^2)) (uncorrelated instruments) equals the target.
"""
from __future__ import annotations

import jax.numpy as jnp

EPS = 1e-12


def _active(ok):
    return jnp.maximum(ok.sum(), 1)


def kelly_tempered(mu, sigma, ok, lam):
    w = lam * mu / jnp.maximum(sigma * sigma, EPS)
    return jnp.where(ok, w, 0.0)


def vol_target(mu, vol, ok, target_bar):
    w = jnp.sign(mu) * target_bar / (jnp.maximum(vol, EPS) * jnp.sqrt(_active(ok)))
    return jnp.where(ok, w, 0.0)


def equal(mu, ok, budget):
    return jnp.where(ok, jnp.sign(mu) * budget / _active(ok), 0.0)


def inverse_vol(mu, vol, ok, budget):
    inv = jnp.where(ok, 1.0 / jnp.maximum(vol, EPS), 0.0)
    return jnp.where(ok, jnp.sign(mu) * budget * inv / jnp.maximum(inv.sum(), EPS), 0.0)


def scale_to_vol(w, vol, target_bar):
    est = jnp.sqrt(jnp.sum(jnp.where(jnp.isfinite(vol), w * w * vol * vol, 0.0)))
    return jnp.where(est > EPS, w * (target_bar / jnp.maximum(est, EPS)), w)
