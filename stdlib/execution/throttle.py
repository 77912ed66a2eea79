"""Order throttles: at most ``max_orders_per_bar`` orders each bar and ``max_orders_per_minute``
in each wall-clock minute of bar time; when more are wanted, the largest by notional go first
and the others wait for a later bar.

>>> import jax.numpy as jnp
>>> t = make_per_bar(1)
>>> out, hits, _ = t.update({"qty": jnp.array([1.0, 5.0]), "price": jnp.array([10.0, 10.0])},
...                         t.init(None), None)
>>> [float(x) for x in out["qty"]], [bool(h) for h in hits["throttled"]]
([0.0, 5.0], [True, False])
"""
from __future__ import annotations

from crowe.dsl.fields import positive_int
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Transform, stateless

MINUTE_NS = 60 * 10**9


def keep_largest(qty, price, k):
    size = jnp.where(qty != 0, jnp.abs(qty) * jnp.where(jnp.isfinite(price), price, 0.0), -1.0)
    rank = jnp.argsort(jnp.argsort(-size, stable=True), stable=True)
    keep = rank < k
    return {"qty": jnp.where(keep, qty, 0.0)}, {"throttled": (qty != 0) & ~keep}


def make_per_bar(most: int):
    return stateless(lambda inputs, ctx: keep_largest(inputs["qty"], inputs["price"], most))


def make_per_minute(most: int):
    def init(ctx):
        return {"minute": jnp.asarray(-1, jnp.int64), "used": jnp.asarray(0, jnp.int64)}

    def update(inputs, state, ctx):
        minute = inputs["ts"] // MINUTE_NS
        used = jnp.where(minute == state["minute"], state["used"], 0)
        out, hits = keep_largest(inputs["qty"], inputs["price"], jnp.maximum(most - used, 0))
        return out, hits, {"minute": minute, "used": used + (out["qty"] != 0).sum()}
    return Transform(init, update)


PER_BAR = Component("max_orders_per_bar", "order_rule", ("execution", "max_orders_per_bar"),
                    positive_int("`max_orders_per_bar`"), make_per_bar, __doc__,
                    reasons=("throttled",))
PER_MINUTE = Component("max_orders_per_minute", "order_rule",
                       ("execution", "max_orders_per_minute"),
                       positive_int("`max_orders_per_minute`"), make_per_minute, __doc__,
                       reasons=("throttled",))
