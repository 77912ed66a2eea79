"""What the allocation methods (`hrp`, `risk_parity`, `min_variance`, `kelly`) share: the
instruments they may hold this bar and the covariance of their window."""
from __future__ import annotations

from crowe.stdlib._jax import jnp

from . import covariance as cv

EPS = 1e-12


def usable_cov(s: cv.Covariance, inputs):
    """(usable [N], covariance [N, N], hits): the instruments that may trade and have a full
    window of returns; the covariance of their window (identity rows and columns for the
    others); the reason ``no_history`` for tradable instruments without that window."""
    history = inputs["est"]["history"]
    usable = inputs["tradable"] & cv.complete(s, history)
    return usable, cv.estimate(s, history, usable), {"no_history": inputs["tradable"] & ~usable}


def budget_of(budget: float | None, ctx) -> float:
    """The fraction of equity a fully invested method allocates: ``budget``, else
    ``risk.gross_max``."""
    return budget if budget is not None else ctx.gross_max
