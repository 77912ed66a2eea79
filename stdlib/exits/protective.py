"""Per-position protective exits: ``execution.exits: {stop_loss, take_profit, trailing_stop}``.

Each distance is written as a fraction (``5%``, ``0.05``, ``500bps``) of a price, or as a
multiple of the average true range (``3 atr``: Wilder's ATR over 14 bars, the language's
``atr(14)``; ``3 atr(20)`` over 20 bars). For a long position with average entry price ``e``
and highest high ``h`` since entry (the bar of the entry fill included)::

    stop_loss      S = e (1 - f)     or  e - k ATR_0
    take_profit    T = e (1 + f)     or  e + k ATR_0
    trailing_stop  S = h (1 - f)     or  h - k ATR_0

and symmetrically for a short (``e (1 + f)``, ``e (1 - f)``, the lowest low ``l`` plus the
distance). ``ATR_0`` is the ATR at the decision bar the position was first seen (the bar of
its entry fill); a volatility distance is fixed for the life of the position, so a trailing stop
only ever moves toward the price. With both a stop-loss and a trailing stop the tighter one is
sent. The levels are computed at the close of bar t from what is known then and rest with the
broker for bar t+1 (`crowe.stdlib.market.exit_fills` fills them against that bar's range): a
position opened by a fill at bar t+1 is protected from bar t+2 on, once its entry price is known.

The component reports ``stop`` and ``take`` (prices, NaN for none) for the next bar, the reason
of an exit the broker reports for this bar (``stop_loss``, ``take_profit`` or
``trailing_stop``) and ``closing``: instruments whose exit left shares (the participation cap
bound it) that the step sends as market orders until flat. No level is sent for them, nor
while flat.

>>> import jax; jax.config.update("jax_enable_x64", True)
>>> import jax.numpy as jnp
>>> t = make(Settings(stop_loss="5%", trailing_stop="10%"))
>>> s = t.init(None)
>>> one = lambda x: jnp.array([x])
>>> bar = {"high": one(104.0), "low": one(99.0), "close": one(103.0)}
>>> ins = {"pos": one(10.0), "prev_pos": one(0.0), "entry": one(100.0), "hit": one(0.0),
...        "bar": bar}
>>> out, hits, s = t.update(ins, s, None)
>>> float(out["stop"][0]), bool(jnp.isnan(out["take"][0]))      # max(95, 104 * 0.9)
(95.0, True)
>>> out, hits, s = t.update(dict(ins, prev_pos=one(10.0), bar=dict(bar, high=one(120.0))), s, None)
>>> float(out["stop"][0]), [bool(h[0]) for h in hits.values()]  # trails to 120 * 0.9
(108.0, [False, False, False])
"""
from __future__ import annotations

import re
from typing import Annotated, Any, NamedTuple

from pydantic import BeforeValidator, model_validator

from crowe.dsl.fields import MAX_WINDOW, Section, fail
from crowe.dsl.quantity import QuantityError, fraction
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Component, Need, Transform

ATR_WINDOW = 14
REASONS = ("stop_loss", "take_profit", "trailing_stop")
STOP_LOSS, TAKE_PROFIT, TRAILING = 1, 2, 3       # the kind of level sent (state `kind`)
_ATR = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*atr\s*(?:\(\s*([0-9]+)\s*\))?\s*$")


class Distance(NamedTuple):
    """How far a level lies from its reference price: a fraction of it (``atr == 0``) or
    ``value`` average true ranges over ``atr`` bars."""

    value: float
    atr: int = 0

    def __str__(self) -> str:
        return f"{self.value:g}" if not self.atr else f"{self.value:g} atr({self.atr})"


def _distance(raw: Any) -> Distance:
    if isinstance(raw, Distance):
        return raw
    m = _ATR.match(raw) if isinstance(raw, str) else None
    if m:
        k, n = float(m.group(1)), int(m.group(2) or ATR_WINDOW)
        if not 0 < k <= 100:
            raise fail("range", f"`{raw}`: the multiple must lie in (0, 100]")
        if not 1 <= n <= MAX_WINDOW:
            raise fail("range", f"`{raw}`: the ATR window must lie between 1 and {MAX_WINDOW}")
        return Distance(k, n)
    try:
        v = fraction(raw)
    except QuantityError as e:
        raise fail("distance", f"{e}", "write a fraction such as `5%` or a multiple of the "
                   "average true range such as `3 atr` (`3 atr(20)` over 20 bars)") from None
    if not 0 < v < 1:
        raise fail("range", f"exit distance `{raw}` must lie between 0 and 100% (exclusive)",
                   "write a fraction such as `5%`, or `3 atr`")
    return Distance(v)


DistanceField = Annotated[Distance, BeforeValidator(_distance)]


class Settings(Section):
    """Per-position exits (see the module); at least one of the three."""

    stop_loss: DistanceField | None = None
    take_profit: DistanceField | None = None
    trailing_stop: DistanceField | None = None

    @model_validator(mode="after")
    def _one(self):
        if self.stop_loss is None and self.take_profit is None and self.trailing_stop is None:
            raise fail("empty", "`exits` sets no exit", "give `stop_loss`, `take_profit` or "
                       "`trailing_stop`, or remove `exits`")
        return self

    def windows(self) -> tuple[int, ...]:
        return tuple(sorted({d.atr for d in (self.stop_loss, self.take_profit,
                                             self.trailing_stop) if d is not None and d.atr}))


def needs(s: Settings) -> tuple[Need, ...]:
    return tuple(Need("own", n) for n in s.windows())


def _true_range(bar, prev_close):
    hi, lo = bar["high"], bar["low"]
    return jnp.maximum(jnp.maximum(hi - lo, jnp.abs(hi - prev_close)), jnp.abs(lo - prev_close))


def _wilder(avg, count, x, n: int):
    from crowe.stdlib import indicators as ind
    return ind.wilder_update(avg, count, x, n)


def make(s: Settings) -> Transform:
    windows = s.windows()

    def init(ctx):
        n = ctx.n if ctx is not None else 1
        nan = jnp.full(n, jnp.nan, jnp.float64)
        return {"extreme": nan, "prev_close": nan, "kind": jnp.zeros(n, jnp.int64),
                "closing": jnp.zeros(n, bool),
                "atr": {f"atr{w}": (jnp.zeros(n, jnp.float64), jnp.zeros(n, jnp.int64))
                        for w in windows},
                "dist": {name: nan for name in REASONS}}

    def update(inputs, state, ctx):
        pos, prev, entry, bar = inputs["pos"], inputs["prev_pos"], inputs["entry"], inputs["bar"]
        hit = inputs["hit"]
        side = jnp.sign(pos)
        opened = (pos != 0) & (jnp.sign(prev) != side)
        tr = _true_range(bar, state["prev_close"])
        atr, now = {}, {}
        for w in windows:
            avg, count, now[w] = _wilder(*state["atr"][f"atr{w}"], tr, w)
            atr[f"atr{w}"] = (avg, count)
        far = jnp.where(side > 0, bar["high"], bar["low"])
        seen = jnp.where(opened, far, state["extreme"])
        better = jnp.where(side > 0, jnp.fmax(seen, far), jnp.fmin(seen, far))
        extreme = jnp.where(pos == 0, jnp.nan, better)
        dist, levels = {}, {}
        for name, d in zip(REASONS, (s.stop_loss, s.take_profit, s.trailing_stop)):
            if d is None:
                continue
            if d.atr:
                fixed = jnp.where(opened, d.value * now[d.atr], state["dist"][name])
                dist[name] = jnp.where(pos == 0, jnp.nan, fixed)
            ref = extreme if name == "trailing_stop" else entry
            toward = side if name == "take_profit" else -side    # the level's side of `ref`
            levels[name] = ref + toward * dist[name] if d.atr else ref * (1.0 + toward * d.value)
        stop, kind = _tighter(levels, side)
        take = levels.get("take_profit", jnp.full(pos.shape, jnp.nan, jnp.float64))
        reported = hit != 0
        which = jnp.where(hit == TAKE_PROFIT, TAKE_PROFIT, state["kind"])
        hits = {name: reported & (which == code)
                for name, code in zip(REASONS, (STOP_LOSS, TAKE_PROFIT, TRAILING))}
        closing = (state["closing"] | reported) & (pos != 0)
        live = (pos != 0) & ~closing & jnp.isfinite(entry)
        nan = jnp.full(pos.shape, jnp.nan, jnp.float64)
        new = {"extreme": extreme, "prev_close": bar["close"], "kind": kind,
               "closing": closing, "atr": atr,
               "dist": {k: dist.get(k, state["dist"][k]) for k in REASONS}}
        return {"stop": jnp.where(live, stop, nan), "take": jnp.where(live, take, nan),
                "exited": reported, "closing": closing}, hits, new

    return Transform(init, update)


def _tighter(levels: dict, side):
    """The stop nearest the price (a long's highest, a short's lowest), and its kind."""
    shape = side.shape
    stop = jnp.full(shape, jnp.nan, jnp.float64)
    kind = jnp.zeros(shape, jnp.int64)
    for name, code in (("stop_loss", STOP_LOSS), ("trailing_stop", TRAILING)):
        if name not in levels:
            continue
        x = levels[name]
        closer = jnp.isnan(stop) | jnp.where(side > 0, x > stop, x < stop)
        use = jnp.isfinite(x) & closer
        stop, kind = jnp.where(use, x, stop), jnp.where(use, code, kind)
    return stop, kind


COMPONENT = Component("exits", "exit", ("execution", "exits"), Settings, make, __doc__,
                      needs=needs, reasons=REASONS)
