"""Parameter sweeps: every combination of a grid, run in batches through one compiled program.

    grid = parse_grid(["fast=5:30:5", "slow=100,150"], engine.param_specs)
    result = sweep(engine, panel, grid)          # one row per combination
    result.table()                               # params + every metric, as Arrow

Each combination's decisions are those of the single backtest with its parameters, bit for
bit (`tests/test_sweep.py`). The batch program `vmap`s the step over the runs (`BatchRunner`):
the parts of the carry that no swept parameter reaches (`batched_state`: the bar counter, the
rings and running sums of parameter-independent series, the last marks, ...) stay one copy for
the whole batch, computed once per bar, so ring writes stay slices rather than scatters; the
compiler's `dependence` pass says the same of the expression state. Two things keep members
equal to single runs. Under `vmap` a value that is one scalar per run becomes a vector per
batch, and XLA's CPU algebraic simplifier rewrites a division by a broadcast operand,
`a / broadcast(b)`, into `a * broadcast(1 / b)` when `b` has one use; the batched graph
reaches each division through a fresh one-use reshape of the batched scalar, where the single
run divides by a scalar that has several uses, so the batched run rounded differently
(measured on `ts_trend_v1`: weights 1.4e-17 apart at bar 180, then one share more in an order,
then equity apart by 0.6 at the end; with the simplifier off in both programs the naive `vmap`
was bit-identical). The batch program's divisions therefore divide by the divisor materialised
at the result's shape behind an optimisation barrier (`_barrier_div`), which no rewrite
crosses, and an IEEE division rounds once either way. Second, a `lax.cond` whose predicate a
swept parameter reaches runs both branches for the whole batch; the running sums' exact
recompute is scheduled on the window range's smallest value instead of the window, so its
predicate reads only the bar counter (`stdlib.indicators.rolling_sums`).
"""
from __future__ import annotations

import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
from jax import lax
from jax._src.interpreters import batching
from jax.extend.core import Literal

from .backtest import CHUNK, _pad, _strong, make_runner
from .engine import BAR_FIELDS, Engine, ParamError, panel_bars, session_fields
from .metrics import KEYS, compute_metrics

SERIES = ("equity", "gross", "net", "traded_notional", "costs", "borrow", "portfolio_reasons")
MAX_BATCH = 1024
MEMORY_SHARE = 0.25          # of the memory available when the sweep starts, per batch
WORKERS = min(2, os.cpu_count() or 1)    # batches in flight at once


class GridError(ValueError):
    """A `--grid` item that does not read, names no parameter, or leaves its declared range."""


# -- the grid ---------------------------------------------------------------------------------

def parse_grid(items, specs) -> list[dict]:
    """Every combination of `NAME=LO:HI:STEP` (both ends included) and `NAME=v1,v2,...` items,
    checked against the declared parameter ranges; parameters not listed keep their default."""
    by_name = {p.name: p for p in specs}
    axes = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise GridError(f"`--grid {item}` is not NAME=LO:HI:STEP or NAME=v1,v2,...")
        if name not in by_name:
            known = ", ".join(f"`{k}`" for k in by_name) or "none"
            raise GridError(f"`--grid {item}`: the policy has no parameter `{name}` "
                            f"(parameters: {known})")
        if name in axes:
            raise GridError(f"`--grid {item}`: `{name}` is given twice; give each parameter once")
        axes[name] = _values(item, text.strip(), by_name[name])
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*axes.values())] or [{}]


def _values(item: str, text: str, spec) -> list[float]:
    from crowe.dsl.quantity import QuantityError, fraction
    try:
        if ":" in text:
            parts = [fraction(p.strip()) for p in text.split(":")]
            if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
                raise GridError(f"`--grid {item}`: a range is LO:HI:STEP with LO <= HI and "
                                "STEP > 0")
            lo, hi, step = parts
            count = int(math.floor((hi - lo) / step + 1e-9)) + 1
            values = [lo + i * step for i in range(count)]
        else:
            values = [fraction(p.strip()) for p in text.split(",")]
    except QuantityError as e:
        raise GridError(f"`--grid {item}`: {e}" + (f"; {e.help}" if e.help else "")) from None
    values = [round(v, 12) for v in values]
    for v in values:
        if not spec.lo <= v <= spec.hi:
            raise GridError(f"`--grid {item}`: {v:g} lies outside the declared range of "
                            f"`{spec.name}`, [{spec.lo:g}, {spec.hi:g}]; sweep inside it or "
                            f"widen `params.{spec.name}.range` in the policy")
        if spec.dtype == "int" and v != int(v):
            raise GridError(f"`--grid {item}`: `{spec.name}` takes whole numbers, found {v:g}")
    return [int(v) if spec.dtype == "int" else float(v) for v in dict.fromkeys(values)]


# -- the batch program ------------------------------------------------------------------------

class _Barrier(threading.local):
    on = False


_BARRIER = _Barrier()
# The division's batching rule: JAX 0.7 and later keep it among the "fancy" rules, which take
# the axis data first; earlier releases among the plain ones.
_FANCY = lax.div_p in batching.fancy_primitive_batchers
_RULES = batching.fancy_primitive_batchers if _FANCY else batching.primitive_batchers
_DIV_BATCHER = _RULES[lax.div_p]


def _barrier_div(size, args, dims, params):
    """`vmap` of a division whose divisor is kept as an array of the result's shape behind an
    optimization barrier, so that XLA's simplifier cannot rewrite `a / broadcast(b)` into
    `a * broadcast(1 / b)`; every member then divides as its single run does (IEEE division
    rounds once, whatever the shape). Only while the sweep's batch program is traced."""
    elem = [np.shape(a) if d is None else np.shape(a)[:d] + np.shape(a)[d + 1:]
            for a, d in zip(args, dims)]
    shape = (size,) + tuple(np.broadcast_shapes(*elem))
    x, y = (jnp.broadcast_to(batching.bdim_at_front(a, d, size).reshape(
        (size,) + (1,) * (len(shape) - 1 - len(e)) + e), shape)
        for a, d, e in zip(args, dims, elem))
    y = lax.optimization_barrier(y)
    return lax.div_p.bind(x, y, **params), 0


def _fancy_div_batcher(axis_data, args, dims, **params):
    if not _BARRIER.on or all(d is None for d in dims):
        return _DIV_BATCHER(axis_data, args, dims, **params)
    return _barrier_div(axis_data.size, args, dims, params)


def _plain_div_batcher(args, dims, **params):
    if not _BARRIER.on or all(d is None for d in dims):
        return _DIV_BATCHER(args, dims, **params)
    size = next(np.shape(a)[d] for a, d in zip(args, dims) if d is not None)
    return _barrier_div(size, args, dims, params)


_RULES[lax.div_p] = _fancy_div_batcher if _FANCY else _plain_div_batcher


def _depends(jaxpr, inputs: set[int]) -> set[int]:
    """Indices of the outputs of `jaxpr` that depend on the inputs `inputs` (an equation's
    outputs depend on all its inputs: inner programs are not looked into, which can only mark
    more outputs than necessary)."""
    dep = {v for i, v in enumerate(jaxpr.invars) if i in inputs}
    for eqn in jaxpr.eqns:
        if any(not isinstance(v, Literal) and v in dep for v in eqn.invars):
            dep.update(eqn.outvars)
    return {i for i, v in enumerate(jaxpr.outvars)
            if not isinstance(v, Literal) and v in dep}


def batched_state(engine: Engine, swept) -> list[bool]:
    """Which leaves of the carry (in `tree_flatten` order) depend on the swept parameters, and
    so differ between the members of a batch; the others (the bar counter, ring buffers and
    running statistics of parameter-independent series, the last marks, ...) are one copy
    shared by the batch and computed once per bar. A fixed point over the step's program: a
    leaf is batched if its update reads a swept parameter or a batched leaf."""
    params, carry = engine.params(), _strong(engine.init_carry())
    bar = {k: jnp.zeros(len(engine.symbols), jnp.float64) for k in BAR_FIELDS}
    bar.update(ts=jnp.asarray(0, jnp.int64), valid=jnp.zeros(len(engine.symbols), bool))
    p_leaves, p_tree = jax.tree_util.tree_flatten(params)
    c_leaves, c_tree = jax.tree_util.tree_flatten(carry)
    names = list(params)                            # dict leaves flatten in sorted key order
    swept_ix = {i for i, k in enumerate(sorted(names)) if k in set(swept)}

    def f(p, c, b):
        return jax.tree_util.tree_leaves(engine.bar_update(p_tree.unflatten(p),
                                                           c_tree.unflatten(c), b)[0])
    jaxpr = jax.make_jaxpr(f)(p_leaves, c_leaves, bar).jaxpr
    nP, nC = len(p_leaves), len(c_leaves)
    batched = set()
    while True:
        out = _depends(jaxpr, swept_ix | {nP + i for i in batched})
        if out <= batched:
            return [i in batched for i in range(nC)]
        batched |= out


class BatchRunner:
    """One compiled program that simulates a batch of runs over a slice of bars: the step
    `vmap`ped over the runs' parameters, with the parts of the carry that do not depend on the
    swept parameters (`batched_state`) kept as one copy for the whole batch and computed once
    per bar, so that the bar counter and the ring positions stay scalars and ring writes stay
    slices. With `per_run_bars`, runs come in groups of `members` runs that share their bars
    (one instrument each, every combination); the groups run one after the other through the
    same program, each with its own bars.

    `swept`: the names of the parameters that differ between runs (default: all of them)."""

    def __init__(self, engine: Engine, batch: int, per_run_bars: bool = False,
                 size: int = CHUNK, swept=None, members: int | None = None) -> None:
        self.engine, self.size, self.per_run_bars = engine, size, per_run_bars
        self.swept = tuple(sorted(p.name for p in engine.param_specs) if swept is None
                           else sorted(swept))
        self.members = members or (batch if not per_run_bars else 1)
        self.batch = max(1, -(-batch // self.members)) * self.members
        self.single = make_runner(engine, size)
        self.mask = batched_state(engine, self.swept)
        self.tree = jax.tree_util.tree_structure(_strong(engine.init_carry()))
        self._programs = {}

    def _program(self, keep):
        if keep in self._programs:
            return self._programs[keep]
        engine, mask, size, tree = self.engine, self.mask, self.size, self.tree

        def member(pb, cb, cs, shared_p, bar, hold):
            it_b, it_s = iter(cb), iter(cs)
            leaves = [next(it_b) if m else next(it_s) for m in mask]
            carry, out = engine.bar_update(dict(shared_p, **pb), tree.unflatten(leaves), bar)
            carry = dict(carry, qty=jnp.where(hold, 0.0, carry["qty"]),
                         limit=jnp.where(hold, jnp.nan, carry["limit"]))
            leaves = jax.tree_util.tree_leaves(carry)
            return ([x for x, m in zip(leaves, mask) if m],
                    [x for x, m in zip(leaves, mask) if not m], {k: out[k] for k in keep})

        # out_axes None: tracing fails if a leaf taken as shared came out batched
        step = jax.vmap(member, in_axes=(0, 0, None, None, None, None), out_axes=(0, None, 0))

        def chunk(pb, shared_p, cb, cs, bars, n, quiet):
            _BARRIER.on = True
            try:
                first = jax.tree_util.tree_map(lambda a: a[0], bars)
                shapes = jax.eval_shape(step, pb, cb, cs, shared_p, first, False)[2]
                outs = jax.tree_util.tree_map(lambda s: jnp.zeros((size,) + s.shape, s.dtype),
                                              shapes)

                def body(st):
                    i, cb, cs, o = st
                    bar = jax.tree_util.tree_map(
                        lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), bars)
                    cb, cs, out = step(pb, cb, cs, shared_p, bar, i < quiet)
                    o = jax.tree_util.tree_map(
                        lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x, i, 0), o, out)
                    return i + 1, cb, cs, o

                _, cb, cs, outs = jax.lax.while_loop(
                    lambda st: st[0] < n, body, (jnp.asarray(0, jnp.int32), cb, cs, outs))
            finally:
                _BARRIER.on = False
            return cb, cs, outs

        self._programs[keep] = jax.jit(chunk)
        return self._programs[keep]

    def __call__(self, params: list[dict], carries, bars: dict, quiet: int = 0,
                 progress=None, keep=SERIES):
        """Simulate every bar of `bars` for up to `batch` runs; returns (stacked carries [B,
        ...], records of `keep` as numpy [B, T, ...]). `bars` have a leading axis T, or with
        `per_run_bars` [G, T, ...], the bars of each group of `members` runs (run g * members
        + m is member m of group g). Runs that share bars start from carries that agree on
        their shared part (`batched_state`), as every run's initial carry does."""
        keep = tuple(keep)
        if not self.per_run_bars:
            return self._batch(params, carries, bars, quiet, progress, keep)
        M, B = self.members, len(params)
        T = int(np.shape(bars["ts"])[1])
        parts, done = [], [0]

        def tick(d, _T):
            if progress is not None:
                progress(done[0] + d, len(range(0, B, M)) * T)
        for g, i in enumerate(range(0, B, M)):
            parts.append(self._batch(params[i:i + M], carries[i:i + M],
                                     {k: np.asarray(v)[g] for k, v in bars.items()}, quiet,
                                     tick, keep))
            done[0] += T
        C = jax.tree_util.tree_map(lambda *a: np.concatenate(a), *[c for c, _ in parts])
        return C, {k: np.concatenate([r[k] for _, r in parts]) for k in keep}

    def _batch(self, params, carries, bars, quiet, progress, keep):
        B, M = len(params), self.members
        pad = M - B
        params = params + [params[-1]] * pad
        carries = [_strong(c) for c in carries + [carries[-1]] * pad]
        pb = {k: jnp.asarray(np.stack([np.asarray(p[k]) for p in params]))
              for k in self.swept}
        shared_p = {k: v for k, v in params[0].items() if k not in self.swept}
        leaves = [jax.tree_util.tree_leaves(c) for c in carries]
        cb = [jnp.asarray(np.stack([np.asarray(lv[j]) for lv in leaves]))
              for j, m in enumerate(self.mask) if m]
        cs = [leaves[0][j] for j, m in enumerate(self.mask) if not m]
        program = self._program(keep)
        T = int(np.shape(bars["ts"])[0])
        pieces = []
        for start in range(0, T, self.size):
            n = min(self.size, T - start)
            piece = {k: _pad(np.asarray(v)[start:start + n], self.size) for k, v in bars.items()}
            hold = np.int32(min(max(quiet - start, 0), n))
            cb, cs, out = program(pb, shared_p, cb, cs, piece, np.int32(n), hold)
            pieces.append({k: np.asarray(out[k])[:n] for k in keep})
            if progress is not None:
                progress(start + n, T)
        records = {k: np.swapaxes(np.concatenate([p[k] for p in pieces]), 0, 1)[:B]
                   for k in keep}
        it_b, it_s = iter(cb), iter(cs)
        C = self.tree.unflatten([np.asarray(next(it_b))[:B] if m else
                                 np.broadcast_to(np.asarray(next(it_s)), (B,) +
                                                 np.shape(leaves[0][j]))
                                 for j, m in enumerate(self.mask)])
        return C, records


def batch_size(engine: Engine, runs: int, per_run_bars_T: int = 0) -> int:
    """How many runs one batch holds: up to `MAX_BATCH`, within `MEMORY_SHARE` of the memory
    available (each run holds its carry and a chunk of records on the device)."""
    carry = engine.init_carry()
    carry_bytes = sum(np.asarray(a).nbytes for a in jax.tree_util.tree_leaves(carry))
    N = len(engine.symbols)
    record_bytes = CHUNK * 8 * (16 + 12 * N)        # the chunk's records, per run
    per_run = 3 * (carry_bytes + record_bytes) + per_run_bars_T * 8 * 7 * N
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        free = 2 << 30
    fits = max(1, int(free * MEMORY_SHARE // max(per_run, 1)))
    return max(1, min(MAX_BATCH, -(-runs // WORKERS), fits))


# -- sweeps -----------------------------------------------------------------------------------

@dataclass
class SweepResult:
    engine: Engine
    combos: list[dict]
    metrics: list[dict]
    ts: np.ndarray
    equity: np.ndarray                 # [runs, T]: equity of each run from `start`
    symbols: list[str] | None = None   # per-instrument runs: the instrument of each run
    reasons: np.ndarray = field(default=None, repr=False)   # [runs, T] portfolio reason words

    def table(self) -> pa.Table:
        cols = {"run": pa.array(np.arange(len(self.combos)))}
        if self.symbols is not None:
            cols["symbol"] = pa.array(self.symbols, pa.string())
        for name in dict.fromkeys(k for c in self.combos for k in c):
            cols[name] = pa.array([c.get(name) for c in self.combos])
        for key in KEYS:
            cols[key] = pa.array([m[key] for m in self.metrics], pa.float64())
        return pa.table(cols)

    def returns(self) -> np.ndarray:
        """Per-bar simple returns [T - 1, runs] (0 where equity is not positive)."""
        e = self.equity.T
        with np.errstate(all="ignore"):
            r = e[1:] / e[:-1] - 1.0
        return np.where(np.isfinite(r) & (e[:-1] > 0), r, 0.0)


def full_params(engine: Engine, combo: dict) -> dict:
    try:
        return engine.params(combo)
    except ParamError as e:
        raise GridError(str(e)) from None


def sweep(engine: Engine, panel, combos: list[dict], start: int = 0, batch: int | None = None,
          progress=None, runner: BatchRunner | None = None) -> SweepResult:
    """Run every combination over the panel (bars before `start` warm up without trading) and
    compute each run's metrics from `start`; `progress(done, total)` counts bar-runs."""
    batch = runner.batch if runner else batch or batch_size(engine, len(combos))
    runner = runner or BatchRunner(engine, batch, swept=swept_names(combos))
    bars = {k: np.asarray(v) for k, v in panel_bars(panel, engine).items()}
    records = _in_batches(runner, engine, [full_params(engine, c) for c in combos],
                          [engine.init_carry()] * len(combos), bars, start, progress)
    return _result(engine, combos, records, np.asarray(panel.ts)[start:], start)


def swept_names(combos: list[dict]) -> list[str]:
    """The parameters that take more than one value in `combos`."""
    names = dict.fromkeys(k for c in combos for k in c)
    return [k for k in names if len({c.get(k) for c in combos}) > 1]


def _in_batches(runner, engine, params, carries, bars, start, progress, per_run=None):
    """Every batch through `runner`, `WORKERS` batches at a time (the program is the same for
    each; JAX runs them in parallel threads, each run's result is unchanged by it).

    `per_run(runs)`: the bars [G, T, ...] of the groups of a batch's runs (independent
    instruments; `runner.members` runs per group), built when the batch starts, so that only
    the batches in flight hold a copy."""
    T = int(bars["ts"].shape[-1])
    total, lock, done = len(params) * T, threading.Lock(), [0]

    def one(i):
        sub = slice(i, i + runner.batch)
        b = per_run(range(len(params))[sub]) if per_run else bars
        n_runs, seen = len(params[sub]), [0]

        def tick(d, _T):
            with lock:
                done[0] += (d - seen[0]) * n_runs
                seen[0] = d
                if progress is not None:
                    progress(done[0], total)
        return runner(params[sub], carries[sub], b, quiet=start, progress=tick)[1]

    starts = range(0, len(params), runner.batch)
    with ThreadPoolExecutor(max(1, min(WORKERS, len(starts)))) as pool:
        recs = list(pool.map(one, starts))
    return {k: np.concatenate([r[k] for r in recs]) for k in SERIES}


def _result(engine, combos, rec, ts, start, symbols=None) -> SweepResult:
    rec = {k: v[:, start:] for k, v in rec.items()}
    metrics = [compute_metrics(rec["equity"][i], rec["gross"][i] * rec["equity"][i],
                               rec["net"][i] * rec["equity"][i], rec["traded_notional"][i],
                               rec["costs"][i] + rec["borrow"][i], engine.bars_per_year)
               for i in range(len(combos))]
    return SweepResult(engine, combos, metrics, ts, rec["equity"], symbols,
                       rec["portfolio_reasons"])


_RUNNERS: dict = {}     # the last per-instrument batch programs, reused by a repeated sweep


def sweep_instruments(policy, panel, combos: list[dict], cash: float, start: int = 0,
                      progress=None) -> SweepResult:
    """Every combination on every instrument of the panel as its own one-instrument universe
    (vectorbt's columns): one batch program per distinct instrument binding (restricted,
    shortable, sector), whose runs map over parameters and bars together."""
    from crowe.compiler.program import to_ir
    from crowe.compiler.step import Universe
    pir = to_ir(policy)
    groups: dict[tuple, list[str]] = {}
    for s in panel.symbols:
        u = Universe.bind(pir, [s])
        groups.setdefault((u.restricted, u.can_short, u.sector_ids), []).append(s)
    rows, rec_parts, syms = [], [], []
    full = {k: np.asarray(v) for k, v in panel_bars(panel).items()}
    full.update(session_fields(policy.spec.universe.calendar, policy.bar_seconds, panel.ts))
    done_runs, all_runs = 0, len(combos) * panel.N
    for members in groups.values():
        engine = Engine.from_policy(policy, [members[0]], cash)
        runs = [(s, c) for s in members for c in combos]
        fits = batch_size(engine, len(combos) * WORKERS)     # a batch: one instrument's runs
        M = max(m for m in range(1, fits + 1) if len(combos) % m == 0)
        key = (id(policy), members[0], M, tuple(swept_names(combos)), cash)
        if key not in _RUNNERS or _RUNNERS[key][0] is not policy:
            _RUNNERS.clear()
            _RUNNERS[key] = (policy, BatchRunner(engine, M, per_run_bars=True,
                                                 swept=swept_names(combos), members=M))
        runner = _RUNNERS[key][1]
        engine = runner.engine
        cols = [panel.symbols.index(s) for s, _ in runs]

        def per_run(ix, cols=cols, M=M):
            g = [cols[i] for i in ix[::M]]
            b = {k: v[:, g].T[..., None] for k, v in full.items() if k != "ts"}
            b["ts"] = np.broadcast_to(full["ts"], (len(g), panel.T))
            return b

        def tick(d, total, base=done_runs, n=len(runs)):
            if progress is not None:
                progress(base * panel.T + d, all_runs * panel.T)
        rec_parts.append(_in_batches(runner, engine, [full_params(engine, c) for _, c in runs],
                                     [engine.init_carry()] * len(runs), full, start, tick,
                                     per_run=per_run))
        done_runs += len(runs)
        rows += [c for _, c in runs]
        syms += [s for s, _ in runs]
    rec = {k: np.concatenate([p[k] for p in rec_parts]) for k in SERIES}
    return _result(engine, rows, rec, np.asarray(panel.ts)[start:], start, syms)


def best(result: SweepResult, metric: str, k: int = 5) -> list[int]:
    """Indices of the `k` best runs by `metric` (drawdown: smallest first), NaN last."""
    values = np.array([m[metric] for m in result.metrics], float)
    key = values if metric == "max_drawdown" else -values
    key = np.where(np.isnan(key), np.inf, key)
    return [int(i) for i in np.argsort(key, kind="stable")[:k]]
