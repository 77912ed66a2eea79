"""Portfolio construction: robust mean-variance by accelerated proximal gradient, in JAX.

Solves, for the instruments that may trade,

    minimize   (gamma / 2) w' S w  -  mu' w  +  tau ||w - w_prev||_1  +  kappa ||w||_1
    subject to lo <= w <= hi

(blueprint 16.3, with the risk aversion gamma on the variance term), where S is the Ledoit-Wolf
shrunk covariance of one-bar returns over the window, scaled to the forecast horizon. The
proximal operator of the two L1 terms plus the box is separable and computed exactly (each
coordinate's 1-D convex problem is minimised over its few candidate points), so every iterate is
feasible. A fixed number of FISTA iterations keeps the step's shapes and cost static.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

EPS = 1e-12


def ledoit_wolf(x, mask):
    """Ledoit-Wolf (2004) shrinkage toward a scaled identity of the rows of ``x`` [T, N] where
    ``mask`` [T] is true. Returns (covariance [N, N], shrinkage delta)."""
    m = mask[:, None]
    t = jnp.maximum(mask.sum(), 2).astype(jnp.float64)
    mean = jnp.where(m, x, 0.0).sum(0) / t
    xc = jnp.where(m, x - mean, 0.0)
    s = xc.T @ xc / t
    n = x.shape[1]
    mu = jnp.trace(s) / n
    d2 = jnp.sum((s - mu * jnp.eye(n)) ** 2) / n
    fourth = jnp.sum(jnp.sum(xc * xc, axis=1) ** 2)
    b2_bar = (fourth - t * jnp.sum(s * s)) / (t * t) / n
    b2 = jnp.minimum(b2_bar, d2)
    delta = jnp.where(d2 > EPS, b2 / jnp.maximum(d2, EPS), 1.0)
    return delta * mu * jnp.eye(n) + (1.0 - delta) * s, delta


def prox_l1_box(v, prev, t_kappa, t_tau, lo, hi):
    """argmin_x 1/2 (x - v)^2 + t_kappa |x| + t_tau |x - prev| over lo <= x <= hi, per entry."""
    cands = [jnp.zeros_like(v), prev, lo, hi]
    for sa in (-1.0, 1.0):
        for sb in (-1.0, 1.0):
            cands.append(v - sa * t_kappa - sb * t_tau)
    c = jnp.clip(jnp.stack(cands), lo, hi)
    h = 0.5 * (c - v) ** 2 + t_kappa * jnp.abs(c) + t_tau * jnp.abs(c - prev)
    return jnp.take_along_axis(c, jnp.argmin(h, axis=0)[None, :], axis=0)[0]


def mean_variance(mu, cov, w_prev, lo, hi, gamma, tau, kappa, iterations: int):
    """Accelerated proximal gradient (FISTA) for the problem in the module docstring."""
    q = gamma * cov
    lip = jnp.maximum(jnp.max(jnp.sum(jnp.abs(q), axis=1)), EPS)  # >= largest eigenvalue
    step = 1.0 / lip
    w0 = jnp.clip(w_prev, lo, hi)

    def body(_, carry):
        w, y, k = carry
        grad = q @ y - mu
        w_new = prox_l1_box(y - step * grad, w_prev, step * kappa, step * tau, lo, hi)
        k_new = (1.0 + jnp.sqrt(1.0 + 4.0 * k * k)) / 2.0
        y_new = w_new + ((k - 1.0) / k_new) * (w_new - w)
        return w_new, y_new, k_new

    w, _, _ = jax.lax.fori_loop(0, iterations, body, (w0, w0, jnp.asarray(1.0)))
    return w


def optimize(port, risk, mu, history, age, complete, ok, w_prev, horizon: int = 1):
    """Target weights from the policy's `portfolio` section for the instruments in ``ok``."""
    window = port.covariance.window
    rows = age < window
    usable = ok & complete & jnp.isfinite(mu)
    x = jnp.where(usable[None, :], history, 0.0)
    if port.covariance.estimator == "ledoit_wolf":
        cov, _ = ledoit_wolf(x, rows)
    else:
        m = rows[:, None]
        t = jnp.maximum(rows.sum() - 1, 1)
        xc = jnp.where(m, x - jnp.where(m, x, 0.0).sum(0) / rows.sum(), 0.0)
        cov = xc.T @ xc / t
    cov = jnp.where(usable[:, None] & usable[None, :], cov, jnp.eye(mu.shape[0])) * horizon
    cap = risk.position_max
    hi = jnp.where(usable, cap, 0.0)
    lo = jnp.where(usable, 0.0 if port.long_only else -cap, 0.0)
    prev = jnp.where(usable, w_prev, 0.0)
    return mean_variance(jnp.where(usable, mu, 0.0), cov, prev, lo, hi, port.risk_aversion,
                         port.turnover_penalty, port.l1_penalty, port.iterations)
