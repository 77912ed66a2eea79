"""Crash sentinel: the blueprint's complex-systems composite (9.4, 17.3), the sum of four
z-scores of market stress; above ``reduce_above`` the rule's ``action`` holds (the blueprint's
is `reduce(50%)`), above ``flatten_above`` it flattens the book and engages the kill switch.

Every bar, over the market return m_t (the mean one-bar return of the instruments with a bar):

* ``acf``: the lag-1 autocorrelation of m over the last ``window`` bars,
  sum_t (m_t - mean)(m_{t-1} - mean) / sum_t (m_t - mean)^2 (rising autocorrelation is the
  "critical slowing down" that precedes transitions; Scheffer et al. 2009);
* ``var``: the sample variance of m over the last ``window`` bars;
* ``turbulence``: the Mahalanobis distance of today's cross-section of returns from the
  ``window`` bars before it, d' S^-1 d / N with S shrunk toward its diagonal (Kritzman and Li
  2010; the `turbulence` function of the language);
* ``imbalance``: the order-flow imbalance proxy from bars, selling pressure as minus the
  volume-weighted close location in the range, -sum_i v_i CLV_i / sum_i v_i with
  CLV = ((close - low) - (high - close)) / (high - low) (0 for a bar with no range): 1 when
  every instrument closes at its low.

Each is z-scored against its own previous ``z_window`` values, z = (x_t - mean) / stdev, and
``score`` is the sum of the four. The rule fires when ``score > reduce_above``. When
``flatten_above`` is given and ``score > flatten_above``, the step flattens the book (every
position ordered to zero, the most severe trading state) for the bar and the rule's cooldown
after it, and the decision's ``kill_switch`` is set: ``crowe paper`` then writes the FLATTENING
override, which holds until an operator runs ``crowe paper resume``; a backtest has no operator,
so there the flattening ends with the cooldown (the equity table's ``kill_switch`` column marks
the bars where it was engaged). The score and the four z-scores are columns of the equity table
(`crash_sentinel.score`, `crash_sentinel.z_acf`, ...); they are NaN, and the rule quiet, until
``window + z_window`` bars have been seen.

>>> import numpy as np
>>> from crowe.stdlib.component import Ctx
>>> from crowe.stdlib.detectors import replay
>>> rng = np.random.default_rng(0)
>>> r, at = rng.normal(0, .01, (120, 3)), rng.uniform(-1, 1, (120, 3))
>>> r[110:], at[110:] = -0.05 + rng.normal(0, .01, (10, 3)), -1   # a sell-off: closes at lows
>>> mid = 100 * np.cumprod(1 + r, axis=0)
>>> bars = {"high": mid * 1.01, "low": mid * 0.99, "close": mid * (1 + .01 * at),
...         "volume": np.ones((120, 3))}
>>> t = make(Settings(window=20, z_window=60, reduce_above=6, flatten_above=12,
...                   action="reduce(50%)"))
>>> ctx = Ctx(3, 252.0, 1, (False,) * 3, (True,) * 3, (0,) * 3, 1, 1.0, 1.0)
>>> out = replay(t, r.mean(1), ctx, est={"r1": r}, bar=bars, cooldown=np.full(120, 5))
>>> bool(out["fired"][:110].any()), bool(out["fired"][110]), bool(out["kill"].any())
(False, True, True)
"""
from __future__ import annotations

from pydantic import model_validator

from crowe.dsl.fields import fail, frac, window
from crowe.stdlib._jax import jax, jnp
from crowe.stdlib.component import Component, Need, Transform
from crowe.stdlib.limits.common import Acting

Window = window("`window`", least=5)
ZWindow = window("`z_window`", least=5)
Score = frac(-1e6, 1e6, what="score threshold")
PARTS = ("acf", "var", "turbulence", "imbalance")
F = "float64"


class Settings(Acting):
    window: Window = 63
    z_window: ZWindow = 252
    reduce_above: Score = 8.0
    flatten_above: Score | None = None

    @model_validator(mode="after")
    def _levels(self):
        if self.flatten_above is not None and self.flatten_above <= self.reduce_above:
            raise fail("range", f"`flatten_above` ({self.flatten_above:g}) must be larger than "
                       f"`reduce_above` ({self.reduce_above:g})", "raise `flatten_above`")
        return self


def acf1(x):
    """Lag-1 sample autocorrelation of ``x``."""
    d = x - x.mean()
    return (d[1:] * d[:-1]).sum() / (d * d).sum()


def sell_imbalance(high, low, close, volume):
    """Minus the volume-weighted close location value of the instruments with a bar."""
    rng = high - low
    clv = jnp.where(rng > 0, ((close - low) - (high - close)) / jnp.where(rng > 0, rng, 1.0), 0.0)
    ok = jnp.isfinite(clv) & jnp.isfinite(volume)
    v = jnp.where(ok, volume, 0.0)
    return -jnp.where(ok, clv * v, 0.0).sum() / jnp.where(v.sum() > 0, v.sum(), jnp.nan)


def make(s: Settings):
    W, Z = s.window, s.z_window

    def init(ctx):
        return {"m": jnp.zeros(W, F), "r": jnp.full((W + 1, ctx.n), jnp.nan, F),
                "raw": jnp.zeros((Z, 4), F),
                "count": jnp.asarray(0, jnp.int64), "cd": jnp.asarray(0, jnp.int64)}

    def observe(st, m, r1, bar):
        from crowe.stdlib import indicators as ind
        ms = jnp.concatenate([st["m"][1:], m[None]])
        ring = ind.ring_write(st["r"], st["count"], r1)
        raw = jnp.stack([acf1(ms), ms.var(ddof=1), ind.turbulence(ring, st["count"], W),
                         sell_imbalance(bar["high"], bar["low"], bar["close"], bar["volume"])])
        past = st["raw"]
        z = (raw - past.mean(axis=0)) / past.std(axis=0, ddof=1)
        ready = st["count"] >= W + Z
        return ({"m": ms, "r": ring, "raw": jnp.concatenate([past[1:], raw[None]]),
                 "count": st["count"] + 1, "cd": st["cd"]}, jnp.where(ready, z, jnp.nan))

    def update(inputs, st, ctx):
        m = jnp.asarray(inputs["series"], jnp.float64)
        st, z = jax.lax.cond(jnp.isfinite(m),
                             lambda: observe(st, m, inputs["est"]["r1"], inputs["bar"]),
                             lambda: (st, jnp.full(4, jnp.nan)))
        score = z.sum()
        kill = (score > s.flatten_above) if s.flatten_above is not None else jnp.asarray(False)
        held = kill | (st["cd"] > 0)
        st = dict(st, cd=jnp.where(kill, inputs["cooldown"], jnp.maximum(st["cd"] - 1, 0)))
        out = {"fired": (score > s.reduce_above) | kill, "kill": kill, "kill_held": held,
               "score": score, **{f"z_{k}": z[i] for i, k in enumerate(PARTS)}}
        return out, {}, st
    return Transform(init, update)


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("own", s.window + s.z_window),)


COMPONENT = Component("crash_sentinel", "detector", ("stand_down", "crash_sentinel"), Settings,
                      make, __doc__, needs=needs, per_instrument=False)
