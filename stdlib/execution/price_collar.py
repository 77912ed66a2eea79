"""Price collar (a pre-trade control of SEC rule 15c3-5 and MiFID II RTS 6 art. 15): refuse a
child order whose price lies more than ``price_collar`` (a fraction) from the last trade.

The child's price is its limit price, or for a market child its expected fill reference, the
close of the decision bar. The last trade is the last valid close before the decision bar (the
mark the book held before this bar's prices came in). A child is refused when::

    |price / last_trade - 1| > price_collar

or when there is no last trade yet (the first valid bar of an instrument). A refused child is
not sent (no fill at the next bar) and its instrument carries the reason ``price_collar``. Its
parent keeps the refused quantity under ``remainder: carry`` (worked again from the next bar,
once the price is back inside the collar) and drops it under ``remainder: cancel`` (the parent
ends short by that much). The orders of a flatten are never refused: they only reduce.

Example: after a close of 100, a buy priced at 150 (a 50% jump) is refused, a sell at 104 is
not:

>>> import jax.numpy as jnp
>>> out, hits, _ = make(0.1).update(
...     {"qty": jnp.array([10.0, -5.0]), "price": jnp.array([150.0, 104.0]),
...      "limit": jnp.array([jnp.nan, jnp.nan]), "last_trade": jnp.array([100.0, 100.0])},
...     (), None)
>>> [float(x) for x in out["qty"]], [float(x) for x in out["refused"]]
([0.0, -5.0], [10.0, 0.0])
>>> [bool(h) for h in hits["price_collar"]]
[True, False]
"""
from __future__ import annotations

from crowe.dsl.fields import frac
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, stateless


def refuse(inputs, mask):
    """Take the children where `mask` holds off the order, adding them to ``refused`` (the
    quantity the order rules refused this bar, which a parent drops under `remainder: cancel`)."""
    qty = inputs["qty"]
    mask = mask & (qty != 0) & ~jnp.asarray(inputs.get("flattening", False), bool)
    before = inputs.get("refused", jnp.zeros_like(qty))
    return {"qty": jnp.where(mask, 0.0, qty), "refused": before + jnp.where(mask, qty, 0.0)}, mask


def make(band: float):
    def update(inputs, ctx):
        limit = inputs.get("limit", jnp.full(inputs["qty"].shape, jnp.nan))
        price = jnp.where(jnp.isfinite(limit), limit, inputs["price"])
        last = inputs["last_trade"]
        known = jnp.isfinite(last) & (last > 0) & jnp.isfinite(price)
        away = jnp.abs(price / jnp.where(known, last, 1.0) - 1.0)
        out, refused = refuse(inputs, ~known | (away > band))
        return out, {"price_collar": refused}
    return stateless(update)


COMPONENT = Component("price_collar", "order_rule", ("compliance", "price_collar"),
                      frac(0.0, 10.0, lo_open=True, what="price collar"), make, __doc__,
                      reasons=("price_collar",))
