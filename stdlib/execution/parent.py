"""Parent orders: one slot per instrument, worked by child orders bar by bar.

A parent is opened when an instrument's target (in whole shares) changes at a decision bar:
``qty = target - position`` (signed shares), ``remaining = qty``, ``start`` (the bar it opened),
``horizon`` (bars to work it over, from the algorithm), ``arrival`` (the decision bar's close,
the benchmark of transaction cost analysis). Every bar the algorithm sends one child order for
part of ``remaining``; the fills reported at the next bar come off it:

- ``remainder: carry``: ``remaining -= filled`` (the unfilled part of a child stays in the parent
  and is worked again);
- ``remainder: cancel``: ``remaining -= sent`` (the unfilled part of the child the broker held is
  dropped: the parent ends short of its quantity).

A parent ends when ``remaining`` is 0, is replaced when the target changes again, and is
cancelled (``remaining = 0``) when the trading state is HALTED or FLATTENING: no parent survives a
flatten. All arrays are ``[N]`` with fixed shapes, so the parents are part of the step's state
and of every checkpoint.

>>> import jax; jax.config.update("jax_enable_x64", True)
>>> import jax.numpy as jnp
>>> p = init(2)
>>> p = book(p, jnp.zeros(2), jnp.zeros(2), carry=True)
>>> p = open_new(p, jnp.array([100.0, 0.0]), jnp.zeros(2), jnp.asarray(7), jnp.array([10.0, 5.0]),
...              3, jnp.array([True, True]))
>>> [float(x) for x in p["remaining"]], [int(x) for x in p["start"]]
([100.0, 0.0], [7, -1])
>>> p = book(dict(p, child=jnp.array([40.0, 0.0])), jnp.array([30.0, 0.0]), jnp.array([40.0, 0.0]),
...          carry=False)
>>> float(p["remaining"][0])
60.0
"""
from __future__ import annotations

from crowe.stdlib._jax import jnp


def init(n: int) -> dict:
    z = jnp.zeros(n, jnp.float64)
    return {"qty": z, "remaining": z, "start": jnp.full(n, -1, jnp.int64),
            "horizon": jnp.zeros(n, jnp.int64), "arrival": jnp.full(n, jnp.nan, jnp.float64),
            "target": z, "child": z}


def book(p: dict, filled, sent, carry: bool) -> dict:
    """Take the fills of the last child off the remainder (`carry`), or the whole child the
    broker held (`cancel`); a remainder never changes sign."""
    used = filled if carry else sent
    rem = p["remaining"] - used
    rem = jnp.where(jnp.sign(rem) == jnp.sign(p["remaining"]), rem, 0.0)
    return dict(p, remaining=rem)


def open_new(p: dict, target, position, t, close, horizon: int, ok) -> dict:
    """Replace the parent of every instrument whose target changed (and can trade)."""
    new = ok & (target != p["target"])
    qty = target - position
    return {"qty": jnp.where(new, qty, p["qty"]),
            "remaining": jnp.where(new, qty, p["remaining"]),
            "start": jnp.where(new, jnp.where(qty != 0, t, -1), p["start"]),
            "horizon": jnp.where(new, horizon, p["horizon"]),
            "arrival": jnp.where(new, close, p["arrival"]),
            "target": jnp.where(new, target, p["target"]), "child": p["child"]}


def cancel(p: dict, mask, target) -> dict:
    """Cancel the parents where `mask` holds, with `target` as the new standing target."""
    z = jnp.zeros_like(p["remaining"])
    return dict(p, remaining=jnp.where(mask, z, p["remaining"]),
                qty=jnp.where(mask, z, p["qty"]),
                start=jnp.where(mask, -1, p["start"]),
                target=jnp.where(mask, target, p["target"]))


def clip_child(child, remaining, fractional: bool = False):
    """Whole shares toward zero (unrounded with `lot: fractional`), on the remainder's side,
    never more than the remainder."""
    c = jnp.where(jnp.isfinite(child), child, 0.0)
    c = c if fractional else jnp.trunc(c)
    c = jnp.where(jnp.sign(c) == jnp.sign(remaining), c, 0.0)
    return jnp.sign(remaining) * jnp.minimum(jnp.abs(c), jnp.abs(remaining))
