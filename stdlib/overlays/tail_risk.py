"""VaR and ES limits: the value at risk (or expected shortfall) of the book's one-bar loss at
``confidence``, estimated over the last ``window`` one-bar returns, is at most ``max``.

``method: historical`` (the default): VaR is the k-th largest loss of the book's one-bar P&L
over the window, ES the mean of the k largest, with ``k = ceil((1 - confidence) * window)``
(Jorion, "Value at Risk", 3rd ed., ch. 10). ``method: parametric``: the loss is normal with
zero mean and the variance ``w' S w`` of the Ledoit-Wolf covariance ``S`` of the window
(`crowe.stdlib.portfolio.covariance`), so ``VaR = z sqrt(w' S w)`` and
``ES = phi(z) / (1 - confidence) sqrt(w' S w)`` with ``z = Phi^-1(confidence)`` (Jorion,
ch. 5). Both are positively homogeneous, so scaling the book by ``max / loss`` meets the limit
exactly; with locked positions (which cannot be scaled) the largest feasible scale of the rest is
found by bisection. A book whose tail loss cannot be estimated (a held instrument without a
complete window) is not allowed: it is scaled to zero (fail closed).

>>> import jax.numpy as jnp
>>> rows = jnp.array([[-0.04], [0.01], [-0.02], [0.03]])
>>> hist = (rows, jnp.arange(4), jnp.array([-1]), jnp.asarray(10))
>>> t = VAR.factory(Settings(confidence=0.75, window=4, max=0.01))
>>> out, _, _ = t.update({"w": jnp.array([1.0]), "w_cur": jnp.zeros(1),
...                       "locked": jnp.zeros(1, bool), "est": {"history": hist}}, (), None)
>>> round(float(out["w"][0]), 6), round(float(out["tail_loss"]), 6)
(0.25, 0.04)

The parametric VaR of a book of one instrument is ``z`` times its standard deviation:

>>> p = VAR.factory(Settings(confidence=0.75, window=4, max=0.01, method="parametric"))
>>> out, _, _ = p.update({"w": jnp.array([1.0]), "w_cur": jnp.zeros(1),
...                       "locked": jnp.zeros(1, bool), "est": {"history": hist}}, (), None)
>>> round(float(out["tail_loss"]), 6)        # 0.674490 * 0.0269258 (ddof 0)
0.018161
"""
from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from crowe.dsl.fields import Section, fail, frac, window
from crowe.stdlib._jax import jnp, lax
from crowe.stdlib.component import Component, Need, stateless
from crowe.stdlib.risk import (TOL, changed, largest_scale, parametric_loss, split, tail_loss,
                               window_covariance)


Window = window("`window`")

class Settings(Section):
    confidence: frac(0.5, 1.0, lo_open=True, hi_open=True, what="confidence")
    window: Window
    max: frac(0.0, 1.0, lo_open=True, hi_open=True, what="limit")
    method: Literal["historical", "parametric"] = "historical"

    @model_validator(mode="after")
    def _covariance_window(self):
        if self.method == "parametric" and self.window < 2:
            raise fail("range", "a parametric VaR or ES needs a `window` of at least 2 bars",
                       "a covariance needs at least 2 returns: raise `window`")
        return self


def _make(es: bool):
    def make(s: Settings):
        def update(inputs, ctx):
            history = inputs["est"]["history"]
            free, fixed, locked = split(inputs)
            if s.method == "parametric":
                est = window_covariance(history, s.window)
                loss = lambda x: parametric_loss(x, history, s.window, s.confidence, es,  # noqa
                                                 est)
            else:
                loss = lambda x: tail_loss(x, history, s.window, s.confidence, es)  # noqa
            whole = loss(free + fixed)

            def homogeneous(_):
                return jnp.where(jnp.isfinite(whole), jnp.where(
                    whole > s.max, s.max / jnp.maximum(whole, TOL), 1.0), 0.0)

            def searched(_):
                return largest_scale(lambda k: jnp.nan_to_num(loss(fixed + k * free),
                                                              nan=jnp.inf), s.max)

            scale = lax.cond(jnp.any(locked & (fixed != 0)), searched, homogeneous, None)
            out = jnp.where(locked, inputs["w"], free * scale)
            return {"w": out, "tail_loss": whole}, {"tail_cap": changed(inputs["w"], out)}
        return stateless(update)
    return make


def needs(s: Settings) -> tuple[Need, ...]:
    return (Need("history", s.window),)


VAR = Component("var", "overlay", ("risk", "var"), Settings, _make(False), __doc__,
                needs=needs, reasons=("tail_cap",))
ES = Component("es", "overlay", ("risk", "es"), Settings, _make(True), __doc__,
               needs=needs, reasons=("tail_cap",))
