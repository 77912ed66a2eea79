"""``vwap``: child orders in proportion to the volume expected on the bars they fill on, over
``horizon`` bars (default 5), from a volume profile estimated from past bars only.

The profile is kept per instrument and per bucket: the weekday on daily (and longer) bars, the
time of day (the bar's slot in a 24-hour day) on intraday bars. Each bucket's expected volume is
an exponentially weighted mean of the volumes seen in it (weight ``ALPHA = 0.1`` on the newest,
about its last 20 observations). Which bucket follows which is learned from the bars too (on
daily equity bars Friday is followed by Monday; overnight slots with no bars never appear), so
the bars left in the horizon are the next ``n = horizon - k`` buckets in the order the data
showed. With ``v_1 .. v_n`` their expected volumes (``v_1``: the bar the child fills on)::

    child_k = remaining_k * v_1 / (v_1 + ... + v_n)

A bucket without history counts at the instrument's mean over the buckets it has (flat when it
has none), so before any history VWAP slices like TWAP. With every child filled the parent's
children follow the profile; the last slice takes the rest.

>>> import jax.numpy as jnp
>>> from crowe.stdlib.component import Ctx
>>> ctx = Ctx(1, 252.0, 1, (False,), (True,), (0,), 1, 1.0, 1.0, bar_seconds=86_400)
>>> t = make(Settings(algo="vwap", horizon=2))
>>> st = t.init(ctx)
>>> day = 86_400 * 10**9
>>> for d, v in ((4, 100.0), (5, 300.0), (6, 900.0)):        # Mon 100, Tue 300, Wed 900
...     out, _, st = t.update({"ts": jnp.asarray(d * day), "volume": jnp.array([v]),
...         "remaining": jnp.array([40.0]), "k": jnp.array([0]), "horizon": jnp.array([2])},
...         st, ctx)
>>> float(out["child"][0])              # Wed: Thu and Fri unseen, at the mean: 40 * 1/2
20.0
>>> out, _, st = t.update({"ts": jnp.asarray(11 * day), "volume": jnp.array([100.0]),
...     "remaining": jnp.array([40.0]), "k": jnp.array([0]), "horizon": jnp.array([2])}, st, ctx)
>>> float(out["child"][0])              # next Mon: Tue then Wed, 40 * 300 / 1200
10.0
"""
from __future__ import annotations

from typing import Literal

from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Transform

from .common import Sliced, left, market

ALPHA = 0.1
DAY_NS = 86_400 * 10**9


class Settings(Sliced):
    algo: Literal["vwap"]


def buckets(bar_seconds: int) -> int:
    return 7 if bar_seconds >= 86_400 else max(86_400 // bar_seconds, 1)


def bucket_of(ts, bar_seconds: int):
    if bar_seconds >= 86_400:
        return (ts // DAY_NS + 3) % 7                      # Monday = 0
    return (ts % DAY_NS) // (bar_seconds * 10**9) % buckets(bar_seconds)


def make(s: Settings):
    def init(ctx):
        B = buckets(ctx.bar_seconds)
        return {"mean": jnp.full((B, ctx.n), jnp.nan, jnp.float64),
                "next": jnp.full(B, -1, jnp.int64), "prev": jnp.asarray(-1, jnp.int64)}

    def update(inputs, state, ctx):
        B, H = buckets(ctx.bar_seconds), s.horizon_bars(ctx.bar_seconds)
        b = bucket_of(inputs["ts"], ctx.bar_seconds)
        v = inputs["volume"]
        row = state["mean"][b]
        row = jnp.where(jnp.isfinite(v), jnp.where(jnp.isfinite(row), row + ALPHA * (v - row), v),
                        row)
        mean = state["mean"].at[b].set(row)
        nxt = jnp.where((jnp.arange(B) == state["prev"]) & (state["prev"] >= 0), b,
                        state["next"])
        known = jnp.isfinite(mean)
        avg = jnp.where(known, mean, 0.0).sum(0) / jnp.maximum(known.sum(0), 1)
        avg = jnp.where(known.any(0), avg, 1.0)
        n = left(inputs)
        cur, first, total = b, None, jnp.zeros(ctx.n)
        for j in range(H):
            cur = jnp.where(nxt[cur] >= 0, nxt[cur], (cur + 1) % B)
            vj = jnp.where(known[cur], mean[cur], avg)
            first = vj if first is None else first
            total = total + jnp.where(j < n, vj, 0.0)
        share = jnp.where(total > 0, first / jnp.maximum(total, 1e-300), 1.0 / n)
        child = jnp.where(n <= 1, inputs["remaining"], inputs["remaining"] * share)
        return market(child), {}, {"mean": mean, "next": nxt, "prev": b}

    return Transform(init, update)


COMPONENT = Component("vwap", "execution", ("execution",), Settings, make, __doc__)
