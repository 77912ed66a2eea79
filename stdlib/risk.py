"""Shared arithmetic of the risk overlays."""
from __future__ import annotations

import math
from statistics import NormalDist

from crowe.stdlib._jax import jnp, lax

TOL = 1e-12


def changed(before, after):
    return jnp.abs(after - before) > TOL * jnp.maximum(jnp.abs(before), 1.0)


def split(inputs):
    """(free weights, locked weights, locked mask)."""
    locked = inputs["locked"]
    return jnp.where(locked, 0.0, inputs["w"]), jnp.where(locked, inputs["w_cur"], 0.0), locked


def shrink(room, used):
    """The factor in [0, 1] that brings `used` within `room` (1 when it is already)."""
    return jnp.clip(jnp.where(used > room, room / jnp.maximum(used, TOL), 1.0), 0.0, 1.0)


def tail_loss(w, history, window: int, confidence: float, es: bool):
    """Historical VaR (or ES) of the book ``w``: the loss not exceeded with the given confidence
    over the last ``window`` one-bar returns (NaN when a held instrument's window is not
    complete). ``history`` is the step's ``(rows, age, last_bad, pos)``: rows hold 0 for missing
    returns."""
    rows, age, last_bad, pos = history
    complete = last_bad <= pos - window
    incomplete = jnp.any((w != 0) & ~complete)
    losses = jnp.where(age < window, -(rows @ w), -jnp.inf)
    # the tail holds ceil((1 - confidence) * window) losses; 1 - 0.95 is 0.05000000000000004
    # in binary, so round off the representation error before the ceiling
    k = min(max(math.ceil(round((1.0 - confidence) * window, 9)), 1), rows.shape[0])
    top = _largest(losses, k)                  # the k largest losses, largest first
    value = top.sum() / k if es else top[k - 1]
    return jnp.where(incomplete, jnp.nan, jnp.maximum(value, 0.0))


def normal_tail(confidence: float, es: bool) -> float:
    """The loss of a unit-variance normal book at ``confidence``: the quantile ``z`` (VaR), or
    ``phi(z) / (1 - confidence)`` (ES)."""
    z = NormalDist().inv_cdf(confidence)
    return NormalDist().pdf(z) / (1.0 - confidence) if es else z


def window_covariance(history, window: int):
    """(complete [N], the Ledoit-Wolf covariance of the last ``window`` one-bar returns of the
    instruments whose window is complete): `crowe.stdlib.portfolio.covariance.trailing`, the
    one that the portfolio methods use."""
    from crowe.stdlib.portfolio.covariance import trailing
    return trailing(history, window)


def parametric_loss(w, history, window: int, confidence: float, es: bool, est=None):
    """Normal VaR (or ES) of the book ``w`` with zero mean: ``normal_tail * sqrt(w' S w)``,
    ``S`` the Ledoit-Wolf covariance of the last ``window`` one-bar returns (NaN when a held
    instrument's window is not complete); ``est`` from `window_covariance`, computed when not
    given."""
    complete, cov = window_covariance(history, window) if est is None else est
    incomplete = jnp.any((w != 0) & ~complete)
    wc = jnp.where(complete, w, 0.0)
    sd = jnp.sqrt(jnp.maximum(wc @ cov @ wc, 0.0))
    return jnp.where(incomplete, jnp.nan, normal_tail(confidence, es) * sd)


def _largest(x, k: int):
    """The k largest values of x, largest first (ties kept), for a small static k: k passes of
    max, O(k W), where a sort of W values costs far more on CPU."""
    if k > 16:
        return jnp.sort(x)[::-1][:k]
    out = []
    idx = jnp.arange(x.shape[0])
    for _ in range(k):
        i = jnp.argmax(x)
        out.append(x[i])
        x = jnp.where(idx == i, -jnp.inf, x)
    return jnp.stack(out)


def largest_scale(loss_of, limit, steps: int = 30):
    """The largest s in [0, 1] with loss_of(s) <= limit, by bisection (the loss of a locked
    part plus s times the rest is not homogeneous in s). 0 when even s = 0 breaches or the loss
    cannot be estimated."""
    def body(_, lohi):
        lo, hi = lohi
        mid = (lo + hi) / 2
        ok = loss_of(mid) <= limit
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)
    lo, _ = lax.fori_loop(0, steps, body, (jnp.asarray(0.0), jnp.asarray(1.0)))
    full = loss_of(1.0)
    return jnp.where(full <= limit, 1.0, jnp.where(loss_of(0.0) <= limit, lo, 0.0))
