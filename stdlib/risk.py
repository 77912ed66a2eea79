"""Risk overlays on target weights, applied in a fixed order by the compiled step.

Each function returns the new weights and a boolean mask of the instruments whose weight it
changed (the step turns that into reason flags). Order in the step:

1. compliance: restricted symbols at 0, shorts removed where not allowed or not located;
2. ``position_cap``: |w_i| <= cap;
3. ``sector_cap``: the gross of each sector <= cap, by scaling its members;
4. ``net_cap``: |sum w| <= cap, by scaling down the side that is too large;
5. ``gross_cap``: sum |w| <= cap, by scaling the whole book;
6. ``tail_cap``: historical VaR or ES of the book over the window <= limit, by scaling the book
   (both are positively homogeneous, so the scaled book meets the limit exactly).

Later steps never undo earlier ones: every step only shrinks weights toward zero.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

TOL = 1e-12


def _changed(before, after):
    return jnp.abs(after - before) > TOL * jnp.maximum(jnp.abs(before), 1.0)


def position_cap(w, cap):
    out = jnp.clip(w, -cap, cap)
    return out, _changed(w, out)


def sector_cap(w, sector_ids, n_sectors: int, cap):
    gross = jax.ops.segment_sum(jnp.abs(w), sector_ids, num_segments=n_sectors)
    scale = jnp.where(gross > cap, cap / jnp.maximum(gross, TOL), 1.0)
    out = w * scale[sector_ids]
    return out, _changed(w, out)


def net_cap(w, cap):
    longs = jnp.where(w > 0, w, 0.0).sum()
    shorts = jnp.where(w < 0, w, 0.0).sum()
    net = longs + shorts
    long_scale = jnp.where(net > cap, (cap - shorts) / jnp.maximum(longs, TOL), 1.0)
    short_scale = jnp.where(net < -cap, (-cap - longs) / jnp.minimum(shorts, -TOL), 1.0)
    out = jnp.where(w > 0, w * long_scale, w * short_scale)
    return out, _changed(w, out)


def gross_cap(w, cap):
    gross = jnp.abs(w).sum()
    out = w * jnp.where(gross > cap, cap / jnp.maximum(gross, TOL), 1.0)
    return out, _changed(w, out)


def tail_loss(w, history, age, complete, window, confidence, es: bool):
    """Historical VaR (or ES) of the book: the loss not exceeded with the given confidence,
    over the last ``window`` one-bar returns of the instruments (NaN when the window is not
    complete for a held instrument). ``history`` holds 0 for missing returns; ``complete`` [N]
    says which instruments have ``window`` returns without a gap."""
    incomplete = jnp.any((w != 0) & ~complete)
    pnl = history @ w
    losses = jnp.where(age < window, -pnl, -jnp.inf)
    k = min(max(math.ceil((1.0 - confidence) * window), 1), history.shape[0])
    top = _largest(losses, k)                  # the k largest losses, largest first
    value = top.sum() / k if es else top[k - 1]
    return jnp.where(incomplete, jnp.nan, jnp.maximum(value, 0.0))


def _largest(x, k: int):
    """The k largest values of x, largest first (ties kept), for a small static k: k passes of
    max, O(k W), where a sort of W values costs far more on CPU (XLA's sort calls its comparator
    per comparison)."""
    if k > 16:
        return jnp.sort(x)[::-1][:k]
    out = []
    idx = jnp.arange(x.shape[0])
    for _ in range(k):
        i = jnp.argmax(x)
        out.append(x[i])
        x = jnp.where(idx == i, -jnp.inf, x)
    return jnp.stack(out)


def tail_cap(w, history, age, complete, window, confidence, limit, es: bool):
    """Scale the book so that its VaR (or ES) is at most ``limit``; a book whose tail loss
    cannot be estimated is not allowed (scaled to 0: fail closed)."""
    loss = tail_loss(w, history, age, complete, window, confidence, es)
    scale = jnp.where(jnp.isfinite(loss), jnp.where(loss > limit, limit / jnp.maximum(loss, TOL),
                                                    1.0), 0.0)
    out = w * scale
    return out, _changed(w, out), loss
