"""Robust mean-variance: accelerated proximal gradient (FISTA), or with constraints a QP.

For the instruments that may trade, solves

    minimize   (gamma / 2) w' S_h w  -  mu' w  +  tau ||w - w_prev||_1  +  kappa ||w||_1
    subject to lo <= w <= hi

(blueprint 6.3 and 16.3, with the risk aversion gamma on the variance term), where ``mu`` is the
forecast over the horizon and ``S_h = h S`` the covariance of one-bar returns over the window
(`covariance`) scaled to the horizon of ``h`` bars (``signal.horizon``), so that both terms
speak of the same period. ``hi = position_max`` and ``lo = -position_max`` (0 when
``long_only``). The proximal operator of the two L1 terms plus the box is separable and exact
(each coordinate's 1-D convex problem is minimised over its few candidate points), so every
iterate is feasible; ``iterations`` FISTA steps keep the step's shapes and cost static. Reference:
Beck and Teboulle (2009), "A fast iterative shrinkage-thresholding algorithm"; the tests compare
with cvxpy.

``constraints`` adds the general linear constraints ``A w <= b`` of blueprint 16.3, enforced
inside the optimizer (not by scaling its result):

* ``net: [lo, hi]``: ``lo <= sum_i w_i <= hi``;
* ``gross: g``: ``sum_i |w_i| <= g``;
* ``sector_net: [lo, hi]`` and ``sector_gross: g``: the same for each sector of
  ``universe.sectors``;
* ``exposure: {feature: [lo, hi]}``: ``lo <= sum_i f_i w_i <= hi`` for a feature ``f`` of the
  policy (a per-instrument value such as a beta); an instrument whose ``f_i`` is not finite is
  not held (``no_exposure``).

With constraints, the absolute values are split into bounded auxiliary variables
(``t >= |w|`` and ``s >= |w - w_prev|``), which makes the problem a quadratic program, solved by
the interior-point method of `crowe.stdlib.portfolio.qp` with at most ``iterations`` steps. The
optimizer then also knows what the step does after it: an instrument that cannot trade this bar
is held at its last weight, a closed gate allows reducing only, excluded and restricted
instruments are 0 and one without a locate cannot be short. So the constraints hold for the
target book as the step leaves it; the risk overlays after it only scale weights toward zero,
which keeps every bound that contains 0 while no position is held fixed. A solve that
does not converge has the reason ``unsolved``: its best iterate is kept when it meets every
constraint to 1e-9 (near-optimal and safe), else (an infeasible problem, such as a net floor
when nothing may trade) every instrument that may trade is targeted at 0. The state keeps the
steps used (``iterations``), ``solved`` and the largest constraint violation (``violation``).

>>> import jax
>>> jax.config.update("jax_enable_x64", True)   # as in the compiled step
>>> c = Constraints(net=[-0.1, 0.1], gross=1.0)
>>> solve_jit = jax.jit(solve_constrained, static_argnums=(5, 6, 7, 9))
>>> w, info = solve_jit(jnp.array([0.02, 0.01, -0.01]), jnp.eye(3) * 0.04,
...     jnp.zeros(3), jnp.full(3, -1.0), jnp.ones(3), 1.0, 0.0, 0.0,
...     rows(c, (0, 0, 0), 1, {}), 100)
>>> [round(float(x), 6) for x in w], bool(info["converged"])
([0.366667, 0.116667, -0.383333], True)

>>> import jax.numpy as jnp
>>> w = solve(jnp.array([0.02, 0.01]), jnp.eye(2) * 0.04, jnp.zeros(2), jnp.full(2, -1.0),
...           jnp.ones(2), 1.0, 0.0, 0.0, 200)
>>> [round(float(x), 4) for x in w]
[0.5, 0.25]
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator

from crowe.dsl.fields import Section, fail, frac, positive_int
from crowe.dsl.quantity import QuantityError, fraction
from crowe.stdlib._jax import jnp, lax
from crowe.stdlib.component import Component, Need, Transform, stateless

from . import covariance as cv
from . import qp

EPS = 1e-12
FIXED = 1e-15          # a box narrower than this fixes the weight
FEASIBLE = 1e-9        # an unconverged solve is kept when it meets every constraint this well


def _range(limit: float, what: str):
    """`[lo, hi]`: two numbers (`-10%`, `0.1`) with lo <= hi, each within +-limit."""
    def check(raw):
        if not isinstance(raw, list) or len(raw) != 2:
            raise fail("range", f"{what} must be written `[low, high]`, found `{raw}`",
                       "write e.g. `[-10%, 10%]`")
        try:
            lo, hi = (fraction(v) for v in raw)
        except QuantityError as e:
            raise fail("quantity", str(e), e.help) from None
        if abs(lo) > limit or abs(hi) > limit:
            raise fail("range", f"{what} `[{raw[0]}, {raw[1]}]` is out of range: each bound "
                       f"must lie between {-limit:g} and {limit:g}",
                       "a bare number is a fraction: `0.1` means 10%")
        if lo > hi:
            raise fail("range", f"{what} is empty: the low bound `{raw[0]}` is above the "
                       f"high bound `{raw[1]}`", "write the bounds as `[low, high]`")
        return (lo, hi)
    return Annotated[tuple[float, float], BeforeValidator(check)]


class Constraints(Section):
    net: _range(10.0, "the net exposure range") | None = None
    gross: frac(0.0, 10.0, lo_open=True, what="gross exposure bound") | None = None
    sector_net: _range(10.0, "the sector net exposure range") | None = None
    sector_gross: frac(0.0, 10.0, lo_open=True, what="sector gross exposure bound") | None = None
    exposure: dict[str, _range(1e6, "the exposure range")] = {}

    def empty(self) -> bool:
        return all(v is None for v in (self.net, self.gross, self.sector_net,
                                       self.sector_gross)) and not self.exposure


class Settings(Section):
    method: Literal["mean_variance"]
    risk_aversion: frac(0.0, 1e6, lo_open=True, what="risk aversion") = 1.0
    turnover_penalty: frac(0.0, 1.0, what="turnover penalty") = 0.0
    l1_penalty: frac(0.0, 1.0, what="L1 penalty") = 0.0
    long_only: bool = False
    covariance: cv.Covariance = cv.Covariance()
    iterations: positive_int("`iterations`", 10_000) = 100
    constraints: Constraints | None = None


def prox_l1_box(v, prev, t_kappa, t_tau, lo, hi):
    """argmin_x 1/2 (x - v)^2 + t_kappa |x| + t_tau |x - prev| over lo <= x <= hi, per entry."""
    cands = [jnp.zeros_like(v), prev, lo, hi]
    for sa in (-1.0, 1.0):
        for sb in (-1.0, 1.0):
            cands.append(v - sa * t_kappa - sb * t_tau)
    c = jnp.clip(jnp.stack(cands), lo, hi)
    h = 0.5 * (c - v) ** 2 + t_kappa * jnp.abs(c) + t_tau * jnp.abs(c - prev)
    return jnp.take_along_axis(c, jnp.argmin(h, axis=0)[None, :], axis=0)[0]


def solve(mu, cov, w_prev, lo, hi, gamma, tau, kappa, iterations: int):
    """FISTA for the problem in the module docstring."""
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

    w, _, _ = lax.fori_loop(0, iterations, body, (w0, w0, jnp.asarray(1.0)))
    return w


def rows(c: Constraints, sector_ids, n_sectors: int, exposures: dict):
    """The constraints as ``(A_w, b_w, A_t, b_t)``: ``A_w w <= b_w`` on the weights and
    ``A_t |w| <= b_t`` on their absolute values (the gross bounds)."""
    n = len(sector_ids)
    member = (jnp.asarray(sector_ids)[None, :] == jnp.arange(n_sectors)[:, None]) * 1.0
    aw, bw, at, bt = [], [], [], []

    def pair(a, bounds):
        aw.extend([a, -a])
        bw.extend([jnp.full(a.shape[0], bounds[1]), jnp.full(a.shape[0], -bounds[0])])

    if c.net is not None:
        pair(jnp.ones((1, n)), c.net)
    if c.sector_net is not None:
        pair(member, c.sector_net)
    for name, bounds in c.exposure.items():
        pair(jnp.asarray(exposures[name], jnp.float64)[None, :], bounds)
    if c.gross is not None:
        at.append(jnp.ones((1, n)))
        bt.append(jnp.full(1, c.gross))
    if c.sector_gross is not None:
        at.append(member)
        bt.append(jnp.full(n_sectors, c.sector_gross))

    def cat(xs, shape):
        return jnp.concatenate(xs) if xs else jnp.zeros(shape)
    return cat(aw, (0, n)), cat(bw, (0,)), cat(at, (0, n)), cat(bt, (0,))


# Per-instrument rows over (w_i, t_i, s_i), as (coefficients, which bound): the box, t >= |w|
# with t bounded, s >= |w - w_prev| with s bounded.
_BOX = [((1, 0, 0), "hi"), ((-1, 0, 0), "-lo")]
_ABS = [((1, -1, 0), "0"), ((-1, -1, 0), "0"), ((0, 1, 0), "tmax")]
_TURN = [((1, 0, -1), "prev"), ((-1, 0, -1), "-prev"), ((0, 0, 1), "smax")]


def solve_constrained(mu, cov, w_prev, lo, hi, gamma, tau, kappa, rows, iterations: int):
    """The problem of the module docstring with the constraints ``rows`` (from `rows`), as a
    quadratic program over ``x = (w, t, s)`` (``t >= |w|``, ``s >= |w - w_prev|``); a weight
    whose box is empty (``lo == hi``) is fixed. Returns ``(w, info)`` as
    `crowe.stdlib.portfolio.qp.solve`, with ``violation`` the largest violation of the original
    constraints."""
    aw, bw, at, bt = rows
    n = mu.shape[0]
    fixed = hi - lo <= FIXED
    c = jnp.where(fixed, lo, 0.0)
    use = {"t": bool(kappa > 0 or at.shape[0]), "s": bool(tau > 0)}
    blocks = [0] + [1] * use["t"] + [2] * use["s"]
    patterns = _BOX + _ABS * use["t"] + _TURN * use["s"]
    bound = {"hi": hi, "-lo": -lo, "0": jnp.zeros(n), "prev": w_prev, "-prev": -w_prev,
             "tmax": jnp.maximum(jnp.abs(lo), jnp.abs(hi)) + 1.0,
             "smax": jnp.maximum(jnp.abs(hi - w_prev), jnp.abs(lo - w_prev)) + 1.0}
    coef = jnp.asarray([[p[b] for b in blocks] for p, _ in patterns], jnp.float64)
    coef = jnp.broadcast_to(coef[:, :, None], coef.shape + (n,))       # [R, B, n]
    # substitute the fixed weights: w = c + (free part)
    h_per = jnp.stack([bound[k] for _, k in patterns]) - coef[:, 0] * c
    coef = coef.at[:, 0].multiply(~fixed)
    agg = [jnp.concatenate([a * (~fixed) if blk == 0 else jnp.zeros_like(a)
                            for blk in blocks], axis=1) for a in (aw,)]
    if use["t"]:
        agg.append(jnp.concatenate([at if blk == 1 else jnp.zeros_like(at) for blk in blocks],
                                   axis=1))
    A = jnp.concatenate(agg)
    h_agg = jnp.concatenate([bw - aw @ c, bt])
    h = jnp.concatenate([h_per.ravel(), h_agg])
    G = _structured(coef, A)
    zero_rows = jnp.concatenate([jnp.all(coef == 0, axis=1).ravel(), jnp.all(A == 0, axis=1)])
    h = jnp.where(zero_rows, jnp.maximum(h, 1.0), h)
    q_risk = gamma * cov
    free = ~fixed
    P = jnp.zeros((len(blocks) * n,) * 2).at[:n, :n].set(
        q_risk * free[:, None] * free[None, :] + jnp.diag(fixed * 1.0))
    q = [jnp.where(fixed, 0.0, q_risk @ c - mu)]
    q += [jnp.full(n, kappa)] if use["t"] else []
    q += [jnp.full(n, tau)] if use["s"] else []
    x, info = qp.solve(P, jnp.concatenate(q), G, h, iterations)
    w = jnp.where(fixed, c, x[:n])
    violation = jnp.max(jnp.concatenate([w - hi, lo - w, aw @ w - bw, at @ jnp.abs(w) - bt]))
    return w, dict(info, violation=violation)


def _structured(coef, A) -> qp.Linear:
    """``G`` of rows ``sum_b coef[r, b, i] x[b, i]`` for each pattern r and instrument i,
    then the dense rows ``A``: its products in O(R B n) plus those of ``A``."""
    R, B, n = coef.shape

    def apply(x):
        return jnp.concatenate([jnp.einsum("rbi,bi->ri", coef, x.reshape(B, n)).ravel(), A @ x])

    def adjoint(y):
        return jnp.einsum("rbi,ri->bi", coef, y[:R * n].reshape(R, n)).ravel() + \
            A.T @ y[R * n:]

    def normal(d):
        m = jnp.einsum("rai,rbi,ri->abi", coef, coef, d[:R * n].reshape(R, n))   # [B, B, n]
        blocks = jnp.einsum("abi,ij->aibj", m, jnp.eye(n)).reshape(B * n, B * n)
        return blocks + A.T @ (d[R * n:, None] * A)

    return qp.Linear(apply, adjoint, normal)


def make(s: Settings):
    if s.constraints is None:
        return _unconstrained(s)
    con = s.constraints

    def init(ctx):
        return {"iterations": jnp.asarray(0), "solved": jnp.asarray(True),
                "violation": jnp.asarray(0.0)}

    def update(inputs, state, ctx):
        history, mu = inputs["est"]["history"], inputs["mu"]
        n = mu.shape[0]
        exposures = {k: jnp.broadcast_to(v, (n,)) for k, v in inputs["exposures"].items()}
        known = jnp.ones(n, bool)
        for v in exposures.values():
            known = known & jnp.isfinite(v)
        ready = inputs["tradable"] & cv.complete(s.covariance, history) & jnp.isfinite(mu)
        usable = ready & known
        lo, hi = _box(s, inputs, usable, ctx)
        cov = cv.estimate(s.covariance, history, usable) * ctx.horizon
        exp0 = {k: jnp.where(jnp.isfinite(v), v, 0.0) for k, v in exposures.items()}
        w, info = solve_constrained(
            jnp.where(usable, mu, 0.0), cov, jnp.where(usable, inputs["w_prev"], 0.0), lo, hi,
            s.risk_aversion, s.turnover_penalty, s.l1_penalty,
            rows(con, ctx.sector_ids, ctx.n_sectors, exp0), s.iterations)
        ok = info["converged"]
        feasible = info["violation"] <= FEASIBLE
        w = jnp.where(ok | feasible, w, jnp.where(hi - lo <= FIXED, lo, 0.0))
        hits = {"no_history": inputs["tradable"] & ~ready,
                "no_exposure": inputs["tradable"] & ready & ~known,
                "unsolved": usable & ~ok}
        new = {"iterations": info["iterations"], "solved": ok, "violation": info["violation"]}
        return {"w": w}, hits, new
    return Transform(init, update)


def _box(s: Settings, inputs, usable, ctx):
    """The bounds of each weight, as the step will leave it: held where it cannot trade,
    reduce-only behind a closed gate, 0 when excluded or restricted, not short without a
    locate."""
    n = usable.shape[0]
    cap = ctx.position_max
    w_cur = inputs["w_cur"]
    lo = jnp.where(usable, 0.0 if s.long_only else -cap, 0.0)
    hi = jnp.where(usable, cap, 0.0)
    lo = jnp.where(jnp.asarray(ctx.can_short), lo, jnp.maximum(lo, 0.0))
    gates = inputs["gates"]
    lo = jnp.where(gates, lo, jnp.maximum(lo, jnp.minimum(w_cur, 0.0)))
    hi = jnp.where(gates, hi, jnp.minimum(hi, jnp.maximum(w_cur, 0.0)))
    out = inputs["exclude"] | jnp.asarray(ctx.restricted, bool)
    lo, hi = jnp.where(out, 0.0, lo), jnp.where(out, 0.0, hi)
    hi = jnp.maximum(hi, lo)
    locked = inputs["locked"]
    del n
    return jnp.where(locked, w_cur, lo), jnp.where(locked, w_cur, hi)


def _unconstrained(s: Settings) -> Transform:
    def update(inputs, ctx):
        history = inputs["est"]["history"]
        mu = inputs["mu"]
        usable = inputs["tradable"] & cv.complete(s.covariance, history) & jnp.isfinite(mu)
        cov = cv.estimate(s.covariance, history, usable) * ctx.horizon
        cap = ctx.position_max
        hi = jnp.where(usable, cap, 0.0)
        lo = jnp.where(usable, 0.0 if s.long_only else -cap, 0.0)
        prev = jnp.where(usable, inputs["w_prev"], 0.0)
        w = solve(jnp.where(usable, mu, 0.0), cov, prev, lo, hi, s.risk_aversion,
                  s.turnover_penalty, s.l1_penalty, s.iterations)
        return {"w": w}, {"no_history": inputs["tradable"] & ~usable}
    return stateless(update)


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("history", s.covariance.window),)


COMPONENT = Component("mean_variance", "portfolio", ("portfolio",), Settings, make, __doc__,
                      needs=needs, reasons=("no_history", "no_exposure", "unsolved"))
