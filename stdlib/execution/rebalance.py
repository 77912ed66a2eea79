"""Rebalance schedules: when the targets are recomputed.

``rebalance: {every: E, drift: D}`` (both optional; the default is ``every: bar``):

- ``every: bar`` recomputes the targets at every bar; ``every: 5d`` (any duration, or a number of
  bars) every that many bars; ``every: 1w`` and ``every: 1mo`` (or ``2w``, ``3mo``) at the first
  bar of each new calendar week (Monday to Sunday, UTC) or month (UTC);
- ``drift: 2%`` also recomputes an instrument's target when the freshly computed target weight
  differs from the held one by more than that (with ``drift`` alone, only then).

The first bar after the warm-up is always a rebalance. Between rebalances the held target is
the number of shares the sizing method (or optimizer) asked for at the last rebalance, and it
goes through the gates, exclusions, compliance, caps and trading state at every bar, so risk
limits still act on every bar.

>>> import jax; jax.config.update("jax_enable_x64", True)
>>> import jax.numpy as jnp
>>> days = jnp.array([31, 32, 59]) * 86_400 * 10**9      # 1970-02-01, 02-02, 03-01
>>> [int(x) for x in month_index(days)]
[1, 1, 2]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator

from crowe.dsl.fields import Section, fail, frac
from crowe.dsl.quantity import Duration, QuantityError, duration
from crowe.stdlib._jax import jnp

DAY_NS = 86_400 * 10**9


@dataclass(frozen=True, slots=True)
class Every:
    """A rebalance period: ``count`` bars (``unit == "bar"``), or calendar weeks or months."""

    count: int
    unit: str            # "bar", a duration's unit (`s m h d`: converted to bars), "w" or "mo"

    def __str__(self) -> str:
        return "bar" if (self.unit, self.count) == ("bar", 1) else f"{self.count}{self.unit}"


def _every(raw: Any) -> Every:
    if isinstance(raw, Every):
        return raw
    if raw == "bar":
        return Every(1, "bar")
    if isinstance(raw, str) and raw.strip().endswith("mo") and raw.strip()[:-2].isdigit() \
            and raw.strip()[:-2].isascii():
        n = int(raw.strip()[:-2])
        if n > 0:
            return Every(n, "mo")
    try:
        d = duration(raw)
    except QuantityError as e:
        raise fail("duration", str(e), "write `bar`, a duration such as `5d`, a number of "
                   "bars, `1w` or `1mo`") from None
    return Every(d.count, d.unit)


EveryField = Annotated[Every, BeforeValidator(_every)]


class Rebalance(Section):
    """When the targets are recomputed (see the module)."""

    every: EveryField | None = None
    drift: frac(0.0, 1.0, lo_open=True, what="drift") | None = None

    def period_bars(self, bar_seconds: int) -> int | None:
        """Bars between rebalances for a bar-count schedule, None for a calendar one."""
        e = self.every
        if e is None:
            return None if self.drift is not None else 1
        if e.unit in ("w", "mo"):
            return None
        return Duration(e.count, e.unit).bars(bar_seconds)


def month_index(ts):
    """Months since 1970-01 of UTC timestamps in nanoseconds (civil_from_days, H. Hinnant)."""
    z = ts // DAY_NS + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = jnp.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return (year - 1970) * 12 + month - 1


def week_index(ts):
    """Weeks (Monday to Sunday, UTC) since the week of 1970-01-01."""
    return (ts // DAY_NS + 3) // 7


def init():
    f = lambda v: jnp.asarray(v, jnp.int64)   # noqa: E731
    return {"period": f(-1), "count": f(0), "done": jnp.asarray(False)}


def due(s: Rebalance, bar_seconds: int, state: dict, ts, warm):
    """(scheduled, new state): whether this bar is a scheduled rebalance for every instrument
    (the drift test is per instrument and made by the caller)."""
    e, every_bars = s.every, s.period_bars(bar_seconds)
    first = warm & ~state["done"]
    if e is not None and e.unit in ("w", "mo"):
        period = (week_index(ts) if e.unit == "w" else month_index(ts)) // e.count
        scheduled = period != state["period"]
    else:
        period = state["period"]
        scheduled = jnp.asarray(False) if every_bars is None else state["count"] + 1 >= every_bars
    scheduled = ~warm | first | scheduled
    count = jnp.where(scheduled, 0, state["count"] + 1)
    return scheduled, {"period": jnp.where(warm, period, state["period"]), "count": count,
                       "done": state["done"] | warm}
