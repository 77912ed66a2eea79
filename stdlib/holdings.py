"""The book as a policy sees it at the decision: `position`, `weight`, `bars_held`,
`entry_price`.

The step keeps two arrays per instrument for them, updated from each bar's fills
(``holdings_update``), and hands the four values to the expressions (``holdings_view``), after
this bar's fills are booked and the book is marked, so an exit can depend on the holding:
``close / entry_price - 1 < -5%`` or ``bars_held >= 10``.

* ``bars_held``: bars since the fill that opened the position; 0 on the bar of that fill and
  while flat. An add or a partial reduction keeps counting; a fill that flips the sign opens a
  new position and restarts the count.
* ``entry_price``: the average fill price of the open position (costs excluded). An add averages
  in by shares, ``(|q0| p0 + |f| pf) / |q0 + f|``; a reduction keeps it; a flip starts at the
  flipping fill's price; NaN while flat.

>>> import jax
>>> jax.config.update("jax_enable_x64", True)    # as in the compiled step
>>> import jax.numpy as jnp
>>> s = holdings_init(2)
>>> s = holdings_update(s, jnp.zeros(2), jnp.array([10.0, -5.0]), jnp.array([100.0, 50.0]))
>>> s = holdings_update(s, jnp.array([10.0, -5.0]), jnp.array([10.0, 8.0]),
...                     jnp.array([110.0, 40.0]))
>>> [float(x) for x in s["entry"]], [int(x) for x in s["held"]]
([105.0, 40.0], [1, 0])
"""
from __future__ import annotations

from crowe.stdlib._jax import jnp


def holdings_init(n: int) -> dict:
    return {"held": jnp.zeros(n, jnp.int64), "entry": jnp.full(n, jnp.nan, jnp.float64)}


def holdings_update(state: dict, before, fill_qty, fill_price) -> dict:
    """The holding after booking ``fill_qty`` shares at ``fill_price`` onto ``before``."""
    after = before + fill_qty
    opened = (before == 0) | (jnp.sign(before) * jnp.sign(after) < 0)
    added = ~opened & (jnp.abs(after) > jnp.abs(before))
    price = jnp.where(fill_qty != 0, fill_price, 0.0)
    avg = (jnp.abs(before) * state["entry"] + jnp.abs(fill_qty) * price) / \
        jnp.where(after != 0, jnp.abs(after), 1.0)
    entry = jnp.where(opened, price, jnp.where(added, avg, state["entry"]))
    flat = after == 0
    held = jnp.where(flat | opened, 0, state["held"] + 1)
    return {"held": held, "entry": jnp.where(flat, jnp.nan, entry)}


def holdings_view(state: dict, positions, mark, equity) -> dict:
    """The values of the four names: shares, weight at ``mark`` (the last valid close), bars
    held and average entry price."""
    price = jnp.where(jnp.isfinite(mark), mark, 0.0)
    weight = jnp.where(equity > 0, positions * price / equity, 0.0)
    return {"position": positions, "weight": weight, "bars_held": state["held"],
            "entry_price": state["entry"]}
