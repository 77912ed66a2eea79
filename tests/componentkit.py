"""A component's settings tested on the inputs the compiled step really gave it.

Compiling a whole backtest costs seconds; compiling one component's `(init, update)` over a scan
costs a fraction of that. `Tapped.of(policy, symbols)` compiles the policy's backtest once with
every component wrapped so that each call records the inputs the step passed to it and the
outputs it returned (a `jax.debug.callback`, in call order). `Tapped.replay(key, policy)` then
runs the component of another policy (the same component with one setting changed) alone, under
`jit`, over exactly those recorded inputs: if its outputs that the step reads, or its reason hits,
differ from the recorded ones, the setting changes what the component hands the step, and so the
decisions at that bar.

The replay with the base policy's own settings must give back the recorded outputs
(`faithful`): that proves the recording is complete (every input the component reads, in order,
with its own state carried across bars), so a difference under a changed setting is the
setting's doing and nothing else's.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
import numpy as np

from crowe.compiler.program import to_ir
from crowe.compiler.step import StepBuilder, Universe
from crowe.dsl.check import active_components
from crowe.runtime.backtest import make_runner
from crowe.runtime.engine import Engine, panel_bars, to_numpy
from crowe.stdlib.component import Transform, chain

# The outputs of each kind of component that the step reads (compiler/step.py); a component
# whose setting changed only an output the step ignores would not change a decision.
CONSUMED = {
    "target": ("w",),
    "overlay": ("w", "tail_loss"),
    "execution": ("child", "limit"),
    "order_rule": ("qty",),
    "limit": ("fired",),
    "rule": None,          # `fired`, the kill switch and every statistic (results columns)
}


@dataclass
class _Tap:
    transform: Transform
    calls: list = field(default_factory=list)
    static: dict | None = None
    treedef: object = None
    dyn: tuple = ()

    def wrapped(self) -> Transform:
        def update(inputs, state, ctx):
            out, hits, new = self.transform.update(inputs, state, ctx)
            leaves, treedef = jax.tree_util.tree_flatten(inputs)
            dyn = tuple(i for i, x in enumerate(leaves) if isinstance(x, jax.Array))
            self.treedef, self.dyn = treedef, dyn
            self.static = {i: x for i, x in enumerate(leaves) if i not in dyn}
            jax.debug.callback(self._store, [leaves[i] for i in dyn], out, hits, ordered=True)
            return out, hits, new
        return Transform(self.transform.init, update)

    def _store(self, dyn, out, hits):
        self.calls.append(([np.array(x) for x in dyn],
                           jax.tree_util.tree_map(np.array, out),
                           jax.tree_util.tree_map(np.array, hits)))

    def inputs(self):
        """The recorded inputs, stacked on a leading bar axis, and a function that rebuilds
        one call's inputs from one slice of them (the static leaves as traced)."""
        stacked = [np.stack([c[0][j] for c in self.calls]) for j in range(len(self.dyn))]

        def rebuild(dyn_slice):
            leaves = [None] * (len(self.dyn) + len(self.static))
            for i, x in self.static.items():
                leaves[i] = x
            for i, x in zip(self.dyn, dyn_slice):
                leaves[i] = x
            return jax.tree_util.tree_unflatten(self.treedef, leaves)
        return stacked, rebuild


def _components(pir) -> dict:
    """(kind, name) -> the policy's component transforms, as the step builds them."""
    spec, policy = pir.spec, pir.policy
    used = active_components(spec)
    out = {}
    for c, s in used:
        if c.slot in ("sizing", "portfolio"):
            out[("target", c.name)] = c.factory(s)
        elif c.slot in ("overlay", "order_rule"):
            out[(c.slot, c.name)] = c.factory(s)
    out[("execution", spec.execution.algo)] = None            # the builder's own, below
    out.update({("limit", n): i.component.factory(i.settings) for n, i in policy.limits.items()})
    out.update({("rule", n): i.component.factory(i.settings) for n, i in policy.rules.items()})
    return out


def _builder(policy, symbols):
    pir = to_ir(policy)
    return pir, StepBuilder(pir, Universe.bind(pir, symbols))


def component(policy, symbols, key) -> tuple[Transform, object]:
    """The transform and the static context of component `key` of `policy`."""
    pir, b = _builder(policy, symbols)
    if key[0] == "execution":
        return b.algo, b.ctx
    found = _components(pir)
    if key not in found:
        raise KeyError(f"the policy has no component {key}; it has {sorted(found)}")
    return found[key], b.ctx


@dataclass
class Tapped:
    """One backtest of `policy` with every component's calls recorded."""

    taps: dict
    out: dict                 # the backtest's decisions, as `Sim.run` returns them
    symbols: tuple
    ctx: object               # the static context the step gave its components

    @classmethod
    def of(cls, policy, symbols, panel) -> "Tapped":
        pir, b = _builder(policy, symbols)
        found = _components(pir)
        taps = {k: _Tap(b.algo if k[0] == "execution" else t) for k, t in found.items()}
        ordered = [(c.name, c.slot) for c, _ in active_components(pir.spec)]
        b.target = (b.target[0], taps[("target", b.target[0])].wrapped())
        b.overlays = chain(*[(n, taps[("overlay", n)].wrapped()) for n, s in ordered
                             if s == "overlay"])
        b.order_rules = chain(*[(n, taps[("order_rule", n)].wrapped()) for n, s in ordered
                                if s == "order_rule"])
        b.algo = taps[("execution", pir.spec.execution.algo)].wrapped()
        b.limits = {n: taps[("limit", n)].wrapped() for n in b.limits}
        b.rules = {n: taps[("rule", n)].wrapped() for n in b.rules}
        engine = replace(Engine.from_policy(policy, symbols), init_state=b.init_state,
                         step=b.step)
        runner = make_runner(engine)
        _, out = runner(engine.params(), engine.init_carry(), panel_bars(panel, engine))
        return cls(taps, to_numpy(out), tuple(symbols), b.ctx)

    def replay(self, key, policy=None):
        """The outputs and hits of component `key` of `policy` (default: the recorded
        component) over the recorded inputs, stacked on a bar axis."""
        tap = self.taps[key]
        transform, ctx = component(policy, self.symbols, key) if policy is not None else \
            (tap.transform, self.ctx)
        stacked, rebuild = tap.inputs()

        def body(state, dyn):
            out, hits, state = transform.update(rebuild(dyn), state, ctx)
            return state, (out, hits)

        run = jax.jit(lambda xs: jax.lax.scan(body, transform.init(ctx),
                                              [jnp.asarray(x) for x in xs])[1])
        out, hits = run(stacked)
        return jax.tree_util.tree_map(np.asarray, out), jax.tree_util.tree_map(np.asarray, hits)

    def recorded(self, key):
        calls = self.taps[key].calls
        stack = lambda i: jax.tree_util.tree_map(lambda *xs: np.stack(xs),  # noqa: E731
                                                 *[c[i] for c in calls])
        return stack(1), stack(2)


def consumed(kind: str, out: dict) -> dict:
    keys = CONSUMED[kind]
    return {k: v for k, v in out.items() if keys is None or k in keys}


def same(a, b, rtol: float = 0.0) -> bool:
    """Equal pytrees of arrays (NaN equal to NaN); `rtol` for floats."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    if ta != tb:
        return False
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            return False
        if rtol and np.issubdtype(x.dtype, np.floating):
            if not np.allclose(x, y, rtol=rtol, atol=0.0, equal_nan=True):
                return False
        elif not np.array_equal(x, y, equal_nan=np.issubdtype(x.dtype, np.floating)):
            return False
    return True


def settings_of(policy) -> dict:
    """(kind, name) -> the settings of each component of `policy`."""
    spec, out = policy.spec, {}
    for c, s in active_components(spec):
        kind = {"sizing": "target", "portfolio": "target", "detector": "rule"}.get(c.slot, c.slot)
        if kind in ("rule", "limit"):
            continue
        out[(kind, c.name)] = s
    out.update({("limit", n): i.settings for n, i in policy.limits.items()})
    out.update({("rule", n): i.settings for n, i in policy.rules.items()})
    return out


def changed(base, variant) -> list:
    """The components whose settings differ between two checked policies (None when the two
    do not have the same components)."""
    a, b = settings_of(base), settings_of(variant)
    if set(a) != set(b):
        return None
    return [k for k in a if a[k] != b[k]]
