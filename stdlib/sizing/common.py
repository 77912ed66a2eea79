"""What the sizing methods share: the volatility settings and the volatility-target overlay."""
from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from crowe.dsl.fields import Section, fail, frac, window
from crowe.stdlib._jax import jnp
from crowe.stdlib.component import Need

EPS = 1e-12
VolTarget = frac(0.0, 2.0, lo_open=True, what="volatility target")
VolWindow = window("`vol_window`", least=2)
Budget = frac(0.0, 10.0, lo_open=True, what="budget")


class Sizing(Section):
    """Settings every method has: an optional volatility target for the whole book (a
    `scale_to_vol` overlay after the method, annualised) and the window of the volatility
    estimate, read only where a volatility is used."""

    method: Literal[""] = ""
    vol_target: VolTarget | None = None
    vol_window: VolWindow | None = None

    @model_validator(mode="after")
    def _window_used(self):
        if self.vol_window is not None and not self.reads_vol():
            raise fail("unused_setting", f"`vol_window` is not used by `{self.method}` sizing "
                       "without `vol_target`", "remove it, or add `vol_target: 10%` to scale "
                       "the book to a volatility target")
        return self

    def reads_vol(self) -> bool:
        return self.vol_target is not None

    @property
    def window(self) -> int:
        return self.vol_window or 63


def vol_needs(s: Sizing) -> tuple[Need, ...]:
    return (Need("vol", s.window),) if s.reads_vol() else ()


def active(ok):
    return jnp.maximum(ok.sum(), 1)


def vol_of(inputs, s: Sizing):
    return inputs["est"][Need("vol", s.window).key]


def usable_vol(vol):
    return jnp.isfinite(vol) & (vol > 0)


def scale_to_vol(w, vol, target_bar):
    """Scale the book so that sqrt(sum(w^2 vol^2)) (uncorrelated instruments) equals the
    per-bar target."""
    est = jnp.sqrt(jnp.sum(jnp.where(jnp.isfinite(vol), w * w * vol * vol, 0.0)))
    return jnp.where(est > EPS, w * (target_bar / jnp.maximum(est, EPS)), w)


def finish(w, inputs, s: Sizing, ctx, ok):
    """The method's weights on `ok`, 0 elsewhere, then the optional volatility target."""
    w = jnp.where(ok, w, 0.0)
    hits = {}
    if s.reads_vol():
        vol = vol_of(inputs, s)
        missing = inputs["tradable"] & ~usable_vol(vol)
        w = jnp.where(missing, 0.0, w)
        hits["no_vol"] = missing
        if s.vol_target is not None and s.method != "vol_target":
            w = scale_to_vol(w, vol, s.vol_target / ctx.bars_per_year ** 0.5)
    return {"w": w}, hits
