"""Shared helpers for the compiler and backtest tests: policies from dicts, synthetic panels,
compiled runners.

A test policy starts from `BASE` (one symbol list, a forecast that is defined from the second
bar, equal sizing, loose limits and a permissive data-gap rule) and overrides whole sections.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from crowe.compiler import ir
from crowe.compiler.build import Builder
from crowe.compiler.lower import Lowering
from crowe.compiler.passes import cse, fold, lookback
from crowe.compiler.passes.rewrite import flat
from crowe.compiler.program import to_ir
from crowe.compiler.step import _valid
from crowe.dsl.diagnostics import render_text
from crowe.dsl.policy import check_text
from crowe.runtime.backtest import make_runner
from crowe.runtime.data import Panel
from crowe.runtime.engine import Engine, panel_bars, to_numpy

DAY_NS = 86_400 * 10**9
T0_NS = 1_600_000_000 * 10**9 // DAY_NS * DAY_NS   # a midnight, UTC

BASE = {
    "policy": "t_policy", "version": "1.0.0", "owner": "CR-001",
    "universe": {"symbols": ["AAA", "BBB", "CCC"], "bar": "1d"},
    "features": {"r1": "ret(close, 1)"},
    "signal": {"horizon": "1d", "mu": "r1", "sigma": "0.01 + 0 * r1"},
    "sizing": {"method": "equal", "budget": 1.0},
    "risk": {"gross_max": 1.0, "position_max": 1.0},
    "execution": {"algo": "market", "participation_cap": 1.0},
    "stand_down": {"data_gap": {"max_missing": 0.99, "action": "halt"}},
}


def policy_dict(**sections) -> dict:
    """BASE with whole sections replaced (a value of None removes the section)."""
    d = copy.deepcopy(BASE)
    for k, v in sections.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def check(policy: dict | str):
    """The checked policy, or an assertion error that shows every diagnostic."""
    text = policy if isinstance(policy, str) else yaml.safe_dump(policy, sort_keys=False)
    result = check_text(text, "<test>")
    assert result.ok, "\n".join(render_text(d, result.source) for d in result.errors)
    return result.policy


# -- panels ---------------------------------------------------------------------------------------

def make_panel(close, *, open=None, high=None, low=None, volume=None, valid=None,
               symbols=None, ts=None) -> Panel:
    """A panel from [T, N] arrays. Defaults: open = close, high/low = the max/min of open and
    close, volume 1e6, valid where the close is finite and positive, daily timestamps. Invalid
    bars get NaN in every field, as `runtime.data` aligns them."""
    close = np.asarray(close, float)
    T, N = close.shape
    open = close if open is None else np.asarray(open, float)
    high = np.maximum(open, close) if high is None else np.asarray(high, float)
    low = np.minimum(open, close) if low is None else np.asarray(low, float)
    volume = np.full((T, N), 1e6) if volume is None else np.asarray(volume, float)
    if valid is None:
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(close) & (close > 0)
    valid = np.asarray(valid, bool)
    nan = lambda a: np.where(valid, a, np.nan)   # noqa: E731
    ts = T0_NS + DAY_NS * np.arange(T, dtype=np.int64) if ts is None else np.asarray(ts, np.int64)
    symbols = tuple(symbols or [f"S{i}" for i in range(N)])
    return Panel(ts=ts, symbols=symbols, open=nan(open), high=nan(high), low=nan(low),
                 close=nan(close), volume=nan(volume), valid=valid.copy())


def random_walk(rng, T, N, vol=0.02, start=100.0, drift=0.0):
    """Geometric random walk closes [T, N]; `vol` may be a scalar or one per instrument."""
    steps = drift + np.asarray(vol) * rng.standard_normal((T, N))
    return start * np.exp(np.cumsum(steps, axis=0))


def ohlc_panel(rng, close, invalid=None, volume=None, symbols=None) -> Panel:
    """A panel with consistent random opens, highs and lows around the given closes."""
    T, N = close.shape
    prev = np.vstack([close[:1], close[:-1]])
    open = prev * np.exp(0.003 * rng.standard_normal((T, N)))
    high = np.maximum(open, close) * (1 + 0.01 * rng.random((T, N)))
    low = np.minimum(open, close) * (1 - 0.01 * rng.random((T, N)))
    volume = rng.uniform(2e5, 2e6, (T, N)) if volume is None else volume
    valid = np.ones((T, N), bool) if invalid is None else ~np.asarray(invalid, bool)
    return make_panel(close, open=open, high=high, low=low, volume=volume, valid=valid,
                      symbols=symbols)


# -- compiled runs --------------------------------------------------------------------------------

@dataclass
class Sim:
    """One policy bound to a universe, with its jitted scan (compiled once per shape)."""

    engine: Engine
    runner: object

    @classmethod
    def of(cls, policy, symbols, cash: float = 1e6) -> "Sim":
        policy = check(policy) if isinstance(policy, (dict, str)) else policy
        engine = Engine.from_policy(policy, symbols, cash)
        return cls(engine, make_runner(engine))

    def run(self, panel: Panel, params: dict | None = None) -> dict:
        params = self.engine.params() if params is None else params
        _, out = self.runner(params, self.engine.init_carry(), panel_bars(panel, self.engine))
        return to_numpy(out)


def flag(engine: Engine, name: str) -> int:
    return 1 << engine.reasons.index(name)


def last_valid_close(panel: Panel) -> np.ndarray:
    """The mark of every bar: the close, or the last valid one before it (NaN before any)."""
    out = np.full(panel.close.shape, np.nan)
    last = np.full(panel.N, np.nan)
    for t in range(panel.T):
        last = np.where(panel.valid[t], panel.close[t], last)
        out[t] = last
    return out


# -- expression values through the lowering -------------------------------------------------------

@dataclass
class FeatureRunner:
    """Every feature of a policy as a root of its own, lowered and scanned over bars: the values
    `Lowering.evaluate` computes, through the same passes `to_ir` runs."""

    names: tuple[str, ...]
    N: int
    params: dict                 # the default parameter values, as the step takes them
    run: object

    @classmethod
    def of(cls, policy, n_instruments: int) -> "FeatureRunner":
        policy = check(policy) if isinstance(policy, (dict, str)) else policy
        pir = to_ir(policy)
        b = Builder(policy)
        roots = cse(fold({"f": {k: b.feature(k) for k in policy.features}}))
        defaults = {k: v.default for k, v in policy.params.items()}
        low = Lowering(replace(pir, roots=roots, look=lookback(roots, defaults)), n_instruments)

        def body(params, carry, bar):
            xstate, t = carry
            ok = _valid(bar)
            fields = {k: jnp.where(ok, bar[k], jnp.nan) for k in
                      ("open", "high", "low", "close", "volume")}
            vals, xstate = low.evaluate(params, xstate, fields, t, ok)
            out = {k: jnp.broadcast_to(jnp.asarray(v, jnp.float64), (n_instruments,))
                   for k, v in vals["f"].items()}
            return (xstate, t + 1), out

        def run(params, bars):
            carry = (low.init_state(), jnp.asarray(0, jnp.int64))
            return jax.lax.scan(lambda c, b: body(params, c, b), carry, bars)[1]

        params = Engine.from_policy(policy, [f"S{i}" for i in range(n_instruments)]).params()
        return cls(tuple(policy.features), n_instruments, params, jax.jit(run))

    def values(self, panel: Panel, **overrides) -> dict[str, np.ndarray]:
        params = dict(self.params)
        for k, v in overrides.items():
            params[k] = jnp.asarray(v, params[k].dtype)
        return to_numpy(self.run(params, panel_bars(panel)))


def nodes_of(roots) -> list[ir.Node]:
    """Every distinct node under the roots, children first."""
    return ir.topo_order(flat(roots))
