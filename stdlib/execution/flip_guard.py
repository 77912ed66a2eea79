"""Repeated-order guard (a pre-trade control of SEC rule 15c3-5 and MiFID II RTS 6 art. 15): an
instrument whose orders change side more than ``max_flips`` times within ``window`` bars is
halted.

A flip is a child order on the other side of the instrument's last order sent (a sell after a
buy, a buy after a sell; bars without an order do not count). ``max_flips`` flips within any
``window`` consecutive bars are allowed; the order that would be one more is refused and halts
the instrument: from then on none of its orders is sent and each of its decisions carries the
reason ``flip_halted``, while its position is held. The halt is a flag in the step's state and
lasts for the rest of the run, in a backtest as in paper trading (`crowe paper resume` lifts the
operator's portfolio-wide kill switch, not this flag); trading the instrument again takes a new
run. A halted instrument's parent keeps its quantity under ``remainder: carry`` (it is not
worked) and drops each refused child under ``remainder: cancel``. The orders of a flatten are
never refused nor counted.

Example: one flip in 3 bars allowed; buy, sell (a flip), buy (a second flip within 3 bars: the
order is refused and the instrument halted), then nothing more is sent:

>>> import jax; jax.config.update("jax_enable_x64", True)
>>> import jax.numpy as jnp
>>> g = make(Settings(max_flips=1, window=3))
>>> s, sent = g.init(None), []
>>> for q in (5.0, -5.0, 5.0, -5.0):
...     out, hits, s = g.update({"qty": jnp.array([q])}, s, None)
...     sent.append(float(out["qty"][0]))
>>> sent, bool(hits["flip_halted"][0])
([5.0, -5.0, 0.0, 0.0], True)
"""
from __future__ import annotations

from pydantic import field_validator

from crowe.dsl.fields import Section, fail, positive_int, window
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Transform

from .price_collar import refuse

NEVER = -(2**62)      # the bar of a flip that has not happened
Window = window("`window`")


class Settings(Section):
    """At most ``max_flips`` changes of side within ``window`` bars."""

    max_flips: positive_int("`max_flips`", 100)
    window: Window

    @field_validator("window")
    @classmethod
    def _two_bars(cls, v: int) -> int:
        if v < 2:
            raise fail("range", f"`window` must be at least 2 bars, found `{v}`",
                       "a flip needs an order on each of two bars: count them over 2 bars or "
                       "more")
        return v


def make(s: Settings):
    def init(ctx):
        n = ctx.n if ctx is not None else 1
        return {"t": jnp.asarray(0, jnp.int64), "side": jnp.zeros(n, jnp.int64),
                "flips": jnp.full((s.max_flips, n), NEVER, jnp.int64),
                "halted": jnp.zeros(n, bool)}

    def update(inputs, state, ctx):
        t, qty = state["t"], inputs["qty"]
        flat = jnp.asarray(inputs.get("flattening", False), bool)
        side = jnp.sign(qty).astype(jnp.int64)
        flip = (side != 0) & (state["side"] != 0) & (side != state["side"]) & ~flat
        recent = (t - state["flips"] < s.window).sum(0)
        halted = state["halted"] | (flip & (recent + 1 > s.max_flips))
        out, _ = refuse(inputs, halted)
        taken = flip & ~halted
        flips = jnp.where(taken, jnp.concatenate([state["flips"][1:], t[None, None] +
                                                  jnp.zeros_like(state["flips"][:1])]),
                          state["flips"])
        sent = jnp.sign(out["qty"]).astype(jnp.int64)
        return out, {"flip_halted": halted}, {
            "t": t + 1, "side": jnp.where((sent != 0) & ~flat, sent, state["side"]),
            "flips": flips, "halted": halted}
    return Transform(init, update)


COMPONENT = Component("flip_guard", "order_rule", ("compliance", "flip_guard"), Settings, make,
                      __doc__, reasons=("flip_halted",))
