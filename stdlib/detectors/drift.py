"""Drift: the distribution of a series over its last ``window`` bars against the ``reference``
bars before them (blueprint 16.7; the series is the cross-sectional mean of one-bar returns
unless ``series`` names another, such as a feature); the rule fires when the population
stability index exceeds ``psi_max`` or the Kolmogorov-Smirnov distance exceeds ``ks_max``
(either or both may be given).

* PSI = sum_i (p_i - q_i) ln(p_i / q_i) over `BINS` (10) bins whose edges are the reference
  window's quantiles at i / 10 (linear interpolation, so each bin holds about the same share
  of the reference), with p_i the recent window's share in bin i and q_i the reference's, each
  floored at `FLOOR` so that an empty bin counts as rare rather than infinitely so
  (Siddiqi 2006, "Credit risk scorecards": PSI above 0.25 is a large shift).
* KS = sup_x |F_recent(x) - F_reference(x)|, the two empirical distribution functions, which
  is the statistic of the two-sample Kolmogorov-Smirnov test.

Both are columns of the backtest's equity table (`drift.psi`, `drift.ks`); they are NaN, and
the rule quiet, until ``reference + window`` values have been seen. A bar on which the series
has no value is skipped: the windows hold the last values seen.

>>> import numpy as np
>>> from crowe.stdlib.detectors import replay
>>> rng = np.random.default_rng(0)
>>> x = np.r_[rng.normal(0, .01, 100), rng.normal(0, .03, 20)]      # volatility triples
>>> out = replay(make(Settings(window=20, reference=100, ks_max=0.3, action="halt")), x)
>>> bool(out["fired"][-1]), round(float(out["ks"][-1]), 2)
(True, 0.38)
"""
from __future__ import annotations

from pydantic import model_validator

from crowe.dsl.fields import Expr, fail, frac, window
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Need, Transform
from crowe.stdlib.limits.common import Acting

FLOOR = 1e-4             # the smallest share a bin is counted with in the PSI
BINS = 10                # the PSI's bins

Recent = window("`window`", least=5)
Reference = window("`reference`", least=10)


class Settings(Acting):
    series: Expr | None = None
    window: Recent = 21
    reference: Reference = 252
    psi_max: frac(0.0, 100.0, lo_open=True, what="PSI threshold") | None = None
    ks_max: frac(0.0, 1.0, lo_open=True, hi_open=True, what="KS threshold") | None = None

    @model_validator(mode="after")
    def _threshold(self):
        if self.psi_max is None and self.ks_max is None:
            raise fail("threshold", "a drift rule needs `psi_max` or `ks_max` (or both)",
                       "add e.g. `ks_max: 0.3`")
        return self


def psi(recent, reference, bins: int):
    """Population stability index of ``recent`` against ``reference`` on the reference's
    quantile bins."""
    edges = jnp.quantile(reference, jnp.arange(1, bins) / bins)
    def shares(v):
        idx = jnp.searchsorted(edges, v, side="right")
        return jnp.maximum(jnp.bincount(idx, length=bins) / v.shape[0], FLOOR)
    p, q = shares(recent), shares(reference)
    return ((p - q) * jnp.log(p / q)).sum()


def ks(a, b):
    """sup_x |F_a(x) - F_b(x)| over the pooled sample (the two-sample KS statistic)."""
    z = jnp.concatenate([a, b])
    fa = (a[:, None] <= z[None, :]).sum(axis=0) / a.shape[0]
    fb = (b[:, None] <= z[None, :]).sum(axis=0) / b.shape[0]
    return jnp.abs(fa - fb).max()


def make(s: Settings):
    n = s.reference + s.window

    def init(ctx):
        return {"buf": jnp.zeros(n, jnp.float64), "count": jnp.asarray(0, jnp.int64)}

    def update(inputs, st, ctx):
        x = jnp.asarray(inputs["series"], jnp.float64)
        ok = jnp.isfinite(x)
        st = {"buf": jnp.where(ok, jnp.concatenate([st["buf"][1:], x[None]]), st["buf"]),
              "count": jnp.minimum(st["count"] + ok, n)}
        full = st["count"] >= n
        ref, recent = st["buf"][:s.reference], st["buf"][s.reference:]
        p = jnp.where(full, psi(recent, ref, BINS), jnp.nan)
        k = jnp.where(full, ks(recent, ref), jnp.nan)
        fired = (p > s.psi_max) if s.psi_max is not None else jnp.asarray(False)
        if s.ks_max is not None:
            fired = fired | (k > s.ks_max)
        return {"fired": fired, "psi": p, "ks": k}, {}, st
    return Transform(init, update)


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("own", s.reference + s.window - 1),)


COMPONENT = Component("drift", "detector", ("stand_down", "drift"), Settings, make, __doc__,
                      needs=needs, per_instrument=False)
