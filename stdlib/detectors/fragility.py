"""Fragility: the adversarial data validator (blueprint 9.2, 17.5). Every bar the policy's target
weights are recomputed under a fixed set of bounded corruptions of this bar's data (the three
price moves at once, by `jax.vmap`), and the rule fires when the largest change of the book exceeds ``max_change``.

The corruptions (`CORRUPTIONS`), each of the bar as received:

* ``up`` / ``down``: every price (open, high, low, close) multiplied by 1 + epsilon / 1 - epsilon;
* ``alternate``: instrument i's prices multiplied by 1 + epsilon s_i, s_i = +1, -1, +1, ... in
  universe order (a cross-sectional move, which reorders close ranks);
* ``drop``: the instrument with the largest target weight in size missing from the bar;
* ``stale``: a repeated bar, every price equal to the last valid close before this bar (the
  volume as received; an instrument never seen before is missing).

The weights are those of the step's target chain (sizing or portfolio method, gates, exclusions
of compliance, overlays) computed from the expression state before this bar, with the
stand-down rules' own actions left out (this rule is one of them). The change of the book under a
corruption k is the L1 distance of the weights,

    change_k = sum_i |w_k,i - w_i|     (over the instruments present in both: the dropped one
                                        is left out of its own corruption)

a fraction of equity (0.5: half the equity would be traded differently), and the statistic is
``change = max_k change_k``, with ``worst`` the index of the corruption that attains it (in the
order above). Both are columns of the backtest's equity table (`RULE.change`, `RULE.worst`).
Goodfellow et al. (2015), "Explaining and harnessing adversarial examples", for the idea of
bounded input perturbations as a robustness test.

>>> import jax, jax.numpy as jnp
>>> jax.config.update("jax_enable_x64", True)   # as in the compiled step
>>> from crowe.stdlib.component import Ctx
>>> ctx = Ctx(2, 252.0, 1, (False,) * 2, (True,) * 2, (0, 0), 1, 1.0, 1.0)
>>> t = make(Settings(epsilon=0.001, max_change=0.5, action="halt"))
>>> def targets(fields, ok):                # long the instruments that close above 100
...     return jnp.where(ok & (fields["close"] > 100.0), 0.5, 0.0)
>>> bar = {k: jnp.array([100.05, 120.0]) for k in ("open", "high", "low", "close")}
>>> run = jax.jit(lambda bar, ok, prev: t.update(
...     {"targets": targets, "bar": bar, "ok": ok, "prev_close": prev}, (), ctx)[0])
>>> out = run(dict(bar, volume=jnp.ones(2)), jnp.array([True, True]), jnp.array([99.0, 119.0]))
>>> float(out["change"]), CORRUPTIONS[int(out["worst"])], bool(out["fired"])
(0.5, 'down', False)
"""
from __future__ import annotations

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jax, jnp
from crowe.stdlib.bars import PRICES
from crowe.stdlib.component import Component, Transform
from crowe.stdlib.limits.common import Acting

CORRUPTIONS = ("up", "down", "alternate", "drop", "stale")


class Settings(Acting):
    epsilon: frac(0.0, 0.1, lo_open=True, what="price corruption") = 0.001
    max_change: frac(0.0, 100.0, lo_open=True, what="change of the book") = 0.25


def corrupt(bar: dict, ok, prev_close, w, eps: float):
    """The corrupted bars, stacked on a leading axis in `CORRUPTIONS` order: (fields, ok, kept),
    with ``kept`` the instruments each corruption's change is measured over."""
    n = ok.shape[0]
    sign = jnp.where(jnp.arange(n) % 2 == 0, 1.0, -1.0)
    ones = jnp.ones(n)
    factor = jnp.stack([ones * (1 + eps), ones * (1 - eps), 1 + eps * sign, ones, ones])
    stale = jnp.arange(len(CORRUPTIONS)) == CORRUPTIONS.index("stale")
    fields = {k: jnp.where(stale[:, None], prev_close[None], bar[k][None] * factor)
              for k in PRICES}
    fields["volume"] = jnp.broadcast_to(bar["volume"], (len(CORRUPTIONS), n))
    dropped = jnp.arange(n) == jnp.argmax(jnp.where(ok, jnp.abs(w), -1.0))
    kept = jnp.ones((len(CORRUPTIONS), n), bool).at[CORRUPTIONS.index("drop")].set(~dropped)
    oks = jnp.broadcast_to(ok, (len(CORRUPTIONS), n)) & kept
    oks = oks.at[CORRUPTIONS.index("stale")].set(ok & jnp.isfinite(prev_close) &
                                                (prev_close > 0))
    return fields, oks, kept


def change(w, ws, kept):
    """The L1 change of the book under each corruption, over the instruments it keeps."""
    d = jnp.where(kept, jnp.abs(ws - w[None]), 0.0)
    return jnp.where(jnp.isfinite(d), d, 0.0).sum(axis=1)


def make(s: Settings):
    def update(inputs, state, ctx):
        targets, bar, ok = inputs["targets"], inputs["bar"], inputs["ok"]
        clean = {k: jnp.where(ok, bar[k], jnp.nan) for k in (*PRICES, "volume")}
        w = targets(clean, ok)
        fields, oks, kept = corrupt(clean, ok, inputs["prev_close"], w, s.epsilon)
        fields = {k: jnp.where(oks, v, jnp.nan) for k, v in fields.items()}
        # the price moves keep the bar's validity: one vmap with it shared, so that a branch
        # of the target chain taken on validity (an overlay's `lax.cond`) stays a branch; the
        # two corruptions of validity run one after the other
        moves = {k: v[:3] for k, v in fields.items()}
        rest = ({k: v[3:] for k, v in fields.items()}, oks[3:])
        ws = jnp.concatenate([jax.vmap(targets, in_axes=(0, None))(moves, ok),
                              jax.lax.map(lambda a: targets(*a), rest)])
        by = change(w, ws, kept)
        worst = jnp.argmax(by)
        return {"fired": by[worst] > s.max_change, "change": by[worst],
                "worst": worst.astype(jnp.float64)}, {}, state
    return Transform(lambda ctx: (), update)


COMPONENT = Component("fragility", "detector", ("stand_down", "fragility"), Settings, make,
                      __doc__, per_instrument=False, reads_targets=True)
