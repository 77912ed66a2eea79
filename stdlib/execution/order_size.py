"""Order size rules (compliance): no order above ``max_order_shares`` shares or
``max_order_notional`` in currency at the decision close; larger orders are clipped.

>>> import jax.numpy as jnp
>>> out, hits, _ = make_notional(1000.0).update(
...     {"qty": jnp.array([30.0, -5.0]), "price": jnp.array([100.0, 100.0]),
...      "ok": jnp.array([True, True])}, (), None)
>>> [float(x) for x in out["qty"]], [bool(h) for h in hits["order_clipped"]]
([10.0, -5.0], [True, False])
"""
from __future__ import annotations

from crowe.dsl.fields import Money, positive_int
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless


def _clip(qty, most):
    out = jnp.clip(qty, -most, most)
    return {"qty": out}, {"order_clipped": jnp.abs(qty) > most}


def make_shares(most: int):
    return stateless(lambda inputs, ctx: _clip(inputs["qty"], float(most)))


def make_notional(most: float):
    def update(inputs, ctx):
        price = jnp.where(inputs["ok"], inputs["price"], 1.0)
        shares = most / price
        return _clip(inputs["qty"], shares if getattr(ctx, "fractional", False) else
                     jnp.floor(shares))
    return stateless(update)


SHARES = Component("max_order_shares", "order_rule", ("compliance", "max_order_shares"),
                   positive_int("`max_order_shares`"), make_shares, __doc__,
                   reasons=("order_clipped",))
NOTIONAL = Component("max_order_notional", "order_rule", ("compliance", "max_order_notional"),
                     Money, make_notional, __doc__, reasons=("order_clipped",))
