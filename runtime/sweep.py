"""Parameter sweeps: every combination of a grid, run in batches through one compiled program.

    grid = parse_grid(["fast=5:30:5", "slow=100,150"], engine.param_specs)
    result = sweep(engine, panel, grid)          # one row per combination
    result.table()                               # params + every metric, as Arrow

Each combination's decisions are those of the single backtest with its parameters, bit for
bit (`tests/test_sweep.py`). That is why the batch program maps the backtest's own compiled
chunk over the batch (`lax.map`) rather than `vmap`ping it: under `vmap` a value that is one
scalar per run becomes a vector per batch, and XLA's CPU algebraic simplifier rewrites a
division by a broadcast operand, `a / broadcast(b)`, into `a * broadcast(1 / b)` when `b` has
one use. The batched graph reaches each division through a fresh one-use reshape of the batched
scalar, where the single run divides by a scalar that has several uses, so the batched run
rounds differently (measured on `ts_trend_v1`: weights 1.4e-17 apart at bar 180, then one share
more in an order, then equity apart by 0.6 at the end; with the simplifier off in both programs,
`--xla_disable_hlo_passes=algsimp`, the naive `vmap` is bit-identical on `ts_trend_v1` and
`cs_mom_v1`). Mapping the unbatched
chunk keeps every member's graph the graph of the single backtest.
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

from .backtest import CHUNK, _pad, _strong, make_runner
from .engine import Engine, ParamError, panel_bars, session_fields
from .metrics import KEYS, compute_metrics

SERIES = ("equity", "gross", "net", "traded_notional", "costs", "borrow", "portfolio_reasons")
MAX_BATCH = 64
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

class BatchRunner:
    """One compiled program that simulates a batch of `batch` runs over a slice of bars: the
    backtest's own chunk (`Runner.chunk`) mapped over the runs' parameters and carries, and,
    with `per_run_bars`, over their bars too (independent instruments)."""

    def __init__(self, engine: Engine, batch: int, per_run_bars: bool = False,
                 size: int = CHUNK) -> None:
        self.engine, self.batch, self.size, self.per_run_bars = engine, batch, size, per_run_bars
        self.single = make_runner(engine, size)
        chunk = self.single.chunk

        if per_run_bars:
            def run(P, C, bars, n, quiet):
                return jax.lax.map(lambda x: chunk(x[0], x[1], x[2], n, quiet), (P, C, bars))
        else:
            def run(P, C, bars, n, quiet):
                return jax.lax.map(lambda x: chunk(x[0], x[1], bars, n, quiet), (P, C))
        self.run = jax.jit(run)

    def __call__(self, params: list[dict], carries, bars: dict, quiet: int = 0,
                 progress=None, keep=SERIES):
        """Simulate every bar of `bars` (leading axis T, or [B, T] with `per_run_bars`) for up
        to `batch` runs; returns (stacked carries, records of `keep` as numpy [B, T, ...])."""
        B = len(params)
        pad = self.batch - B
        params = params + [params[-1]] * pad
        P = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *params)
        carries = carries + [carries[-1]] * pad
        C = jax.tree_util.tree_map(lambda *a: jnp.stack([jnp.asarray(x) for x in a]),
                                   *[_strong(c) for c in carries])
        axis = 1 if self.per_run_bars else 0
        if self.per_run_bars:
            bars = {k: np.concatenate([v, np.repeat(v[-1:], pad, 0)]) for k, v in bars.items()}
        T = int(bars["ts"].shape[axis])
        pieces = []
        for start in range(0, T, self.size):
            n = min(self.size, T - start)
            if self.per_run_bars:
                piece = {k: np.swapaxes(_pad(np.swapaxes(v, 0, 1)[start:start + n], self.size),
                                        0, 1) for k, v in bars.items()}
            else:
                piece = {k: _pad(v[start:start + n], self.size) for k, v in bars.items()}
            hold = np.int32(min(max(quiet - start, 0), n))
            C, out = self.run(P, C, piece, np.int32(n), hold)
            pieces.append({k: np.asarray(out[k])[:B, :n] for k in keep})
            if progress is not None:
                progress(start + n, T)
        records = {k: np.concatenate([p[k] for p in pieces], axis=1) for k in keep}
        return jax.tree_util.tree_map(lambda a: a[:B], C), records


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
    return max(1, min(MAX_BATCH, runs, fits))


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
    runner = runner or BatchRunner(engine, batch)
    bars = {k: np.asarray(v) for k, v in panel_bars(panel, engine).items()}
    records = _in_batches(runner, engine, [full_params(engine, c) for c in combos],
                          [engine.init_carry()] * len(combos), bars, start, progress)
    return _result(engine, combos, records, np.asarray(panel.ts)[start:], start)


def _in_batches(runner, engine, params, carries, bars, start, progress, per_run=None):
    """Every batch through `runner`, `WORKERS` batches at a time (the program is the same for
    each; JAX runs them in parallel threads, each run's result is unchanged by it).

    `per_run(runs)`: the bars [B, T, ...] of a batch's runs (independent instruments), built
    when the batch starts, so that only the batches in flight hold a copy."""
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
        batch = batch_size(engine, len(runs), panel.T)     # each run holds its own bars
        runner = BatchRunner(engine, batch, per_run_bars=True)
        cols = [panel.symbols.index(s) for s, _ in runs]

        def per_run(ix, cols=cols):
            b = {k: v[:, [cols[i] for i in ix]].T[..., None] for k, v in full.items()
                 if k != "ts"}
            b["ts"] = np.broadcast_to(full["ts"], (len(ix), panel.T))
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
