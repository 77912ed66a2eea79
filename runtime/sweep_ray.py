"""The Ray backend of `crowe sweep`: the grid's batches run as Ray tasks, locally or on a cluster.

    result = sweep_ray(policy, panel, combos, cash, start)              # a local Ray, every core
    result = sweep_ray(policy, panel, combos, cash, start, address="auto")   # a running cluster

Each task builds the policy's engine and the same batch program as the local backend
(`sweep.BatchRunner`: the backtest's own chunk mapped over the batch) in its worker process,
once per process, or loads the executable from JAX's persistent cache (`compiler/cache.py`),
and returns the batch's per-bar records; the driver computes the metrics from them exactly as
the local backend does (`sweep._result`), in the grid's order. The results are the local
backend's bit for bit (`tests/test_sweep_ray.py`): every worker runs with the driver's
`XLA_FLAGS` (which fix the float code, `compiler/codegen.py`) and cache settings, passed in the
job's environment, and each task reports its jax, jaxlib and XLA flags, so that a worker that
would compile differently (another release on a cluster node) stops the sweep with an error
rather than give other numbers.

Ray is an optional extra (`pip install 'crowe-policy[ray]'`), imported only here, and only
when the backend is used.
"""
from __future__ import annotations

import logging
import math
import os
import warnings

import numpy as np

from .run import RunError
from .sweep import SERIES, BatchRunner, _result, batch_size, full_params, session_fields

INSTALL = "pip install 'crowe-policy[ray]'"
# Given to every task, set in its worker before JAX starts there: the float code (XLA_FLAGS)
# and the platform JAX runs on. A local Ray's workers inherit the rest of this process's
# environment (the cache directory among it); a cluster node keeps its own cache. (Set by the
# task rather than as a Ray runtime environment, which would start a new pool of workers.)
ENVIRONMENT = ("XLA_FLAGS", "JAX_PLATFORMS")


class RayBackendError(RunError):
    """Ray is not installed, cannot start or connect, or a worker would compute differently."""


def require():
    """The `ray` module, or a `RayBackendError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise RayBackendError(f"`--backend ray` needs Ray, which is not installed: {INSTALL}") \
            from None
    return ray


def environment() -> dict[str, str]:
    """What the workers' environment must hold for them to compile as this process does."""
    import crowe.compiler  # noqa: F401 - pins XLA_FLAGS and the cache, as the workers will
    return {k: os.environ[k] for k in ENVIRONMENT if k in os.environ}


def toolchain() -> dict:
    """What decides the compiled float code: jax, jaxlib, XLA flags, x64 and the backend."""
    import jax
    import jaxlib
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "x64": bool(jax.config.read("jax_enable_x64")), "backend": jax.default_backend()}


class Cluster:
    """A Ray connection for the length of a sweep: the one already open in this process, or a
    cluster at `address`, or a local Ray of `num_cpus` workers started for it (and stopped
    after it)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.ray, self.address, self.num_cpus, self.started = require(), address, num_cpus, False

    def __enter__(self):
        ray = self.ray
        if ray.is_initialized():
            return self
        options = dict(include_dashboard=False, log_to_driver=False,
                       logging_level=logging.ERROR)
        try:
            with warnings.catch_warnings():
                # JAX warns on any fork; Ray's fork is followed by exec of its own processes
                warnings.simplefilter("ignore", RuntimeWarning)
                if self.address:
                    ray.init(address=self.address, **options)
                else:
                    ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count() or 1,
                             **options)
        except Exception as e:  # noqa: BLE001 - Ray raises many kinds; the user needs one line
            where = f"the Ray cluster at `--address {self.address}`" if self.address else \
                "a local Ray"
            raise RayBackendError(f"could not start or reach {where}: {_message(e)}") \
                from None
        self.started = True
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            self.ray.shutdown()

    def cpus(self) -> int:
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))


# -- in the workers ---------------------------------------------------------------------------

_RUNNERS: dict = {}      # per worker process: (digest, symbols, cash, batch, per_run) -> built


def _built(source, symbols, cash, batch, per_run_bars):
    """The engine and batch program of the policy `source` (path, text), built once per worker
    process: the checked policy is rebuilt from its text (its schema's models are made at run
    time and do not pickle), the program compiled on its first batch or loaded from the cache."""
    from crowe.dsl.policy import check_text
    from .engine import Engine
    k = (_digest(source), tuple(symbols), cash, batch, per_run_bars)
    if k not in _RUNNERS:
        checked = check_text(source[1], source[0])
        if not checked.ok:
            raise RayBackendError(f"{source[0]} does not check on the Ray worker")
        engine = Engine.from_policy(checked.policy, list(symbols), cash)
        _RUNNERS[k] = engine, BatchRunner(engine, batch, per_run_bars=per_run_bars)
    return _RUNNERS[k]


def adopt(env: dict[str, str]) -> None:
    """Take the driver's `ENVIRONMENT` while JAX has not started in this worker (once it has,
    its flags are what `toolchain` reports, and the driver refuses a difference)."""
    from crowe.compiler import codegen
    if not codegen._backend_started():
        for k in ENVIRONMENT:
            if k in env:
                os.environ[k] = env[k]
            else:
                os.environ.pop(k, None)


def run_batch(env, source, symbols, cash, batch, combos, bars, cols, start):
    """One batch, in a worker: the records of `SERIES` for each of `combos` ([B, T, ...]),
    over the panel's `bars`, or with `cols` each run over its own instrument's column."""
    adopt(env)
    engine, runner = _built(source, symbols, cash, batch, cols is not None)
    if cols is not None:                       # as `sweep.sweep_instruments` lays them out
        T = bars["ts"].shape[0]
        bars = dict({k: v[:, cols].T[..., None] for k, v in bars.items() if k != "ts"},
                    ts=np.broadcast_to(bars["ts"], (len(cols), T)))
    params = [full_params(engine, c) for c in combos]
    _, rec = runner(params, [engine.init_carry()] * len(combos), bars, quiet=start)
    return {k: rec[k] for k in SERIES}, toolchain()


def _digest(source) -> str:
    import hashlib
    text = f"{source[0]}\0{source[1]}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(text).hexdigest()


# -- the driver -------------------------------------------------------------------------------

def sweep_ray(policy, panel, combos: list[dict], cash: float, start: int = 0,
              per_instrument: bool = False, progress=None, address: str | None = None,
              num_cpus: int | None = None, batch: int | None = None):
    """`sweep.sweep` (or, with `per_instrument`, `sweep.sweep_instruments`) with each batch a
    Ray task; the same `SweepResult`, runs in the same order. `progress(done, total)` counts
    bar-runs as batches finish."""
    from .engine import Engine, panel_bars

    with Cluster(address, num_cpus) as cluster:
        ray = cluster.ray
        task = ray.remote(run_batch).options(num_cpus=1, max_retries=0)
        env = environment()
        here = toolchain()
        full = {k: np.asarray(v) for k, v in panel_bars(panel).items()}
        full.update(session_fields(policy.spec.universe.calendar, policy.bar_seconds,
                                   panel.ts))
        source = (policy.source.path, policy.source.text)
        T = panel.T
        if per_instrument:
            groups = _instrument_groups(policy, panel)
        else:
            groups = [(list(panel.symbols), None)]
        pending, plan = [], []
        bars_ref = ray.put(full)                 # once, shared by every task on a node
        for symbols, members in groups:
            engine = Engine.from_policy(policy, symbols, cash)
            runs = [(s, c) for s in members for c in combos] if members else \
                [(None, c) for c in combos]
            for _, c in runs:
                full_params(engine, c)           # refuse a bad combination here, not in a task
            size = batch or min(batch_size(engine, len(runs), T if members else 0),
                                math.ceil(len(runs) / cluster.cpus()))
            for i in range(0, len(runs), size):
                part = runs[i:i + size]
                cols = [panel.symbols.index(s) for s, _ in part] if members else None
                pending.append(task.remote(env, source, symbols, cash, size,
                                           [c for _, c in part], bars_ref, cols, start))
                plan.append(part)
            last_engine = engine
        results = _gather(ray, pending, plan, T, progress)
    for rec, theirs in results:
        _same_toolchain(here, theirs)
    rows = [run for part in plan for run in part]
    rec = {k: np.concatenate([r[k] for r, _ in results]) for k in SERIES}
    symbols = [s for s, _ in rows] if per_instrument else None
    return _result(last_engine, [c for _, c in rows], rec, np.asarray(panel.ts)[start:], start,
                   symbols)


def _gather(ray, pending, plan, T, progress):
    """Every task's result, in the order submitted; progress as they finish."""
    total = sum(len(p) for p in plan) * T
    index = {ref: i for i, ref in enumerate(pending)}
    out, left, done = [None] * len(pending), list(pending), 0
    while left:
        ready, left = ray.wait(left, num_returns=1)
        for ref in ready:
            i = index[ref]
            try:
                out[i] = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - a task's failure, as one line
                raise RayBackendError(f"a sweep batch failed on a Ray worker: "
                                      f"{_message(e)}") from None
            done += len(plan[i]) * T
            if progress is not None:
                progress(done, total)
    return out


def _message(e: Exception) -> str:
    cause = getattr(e, "cause", None) or e
    text = str(cause).strip()
    return text.splitlines()[-1] if text else type(cause).__name__


def _same_toolchain(here: dict, theirs: dict) -> None:
    if here != theirs:
        diff = ", ".join(f"{k} {theirs.get(k)!r} (here {here.get(k)!r})" for k in here
                         if here.get(k) != theirs.get(k))
        raise RayBackendError(f"a Ray worker compiles differently from this process: {diff}; "
                              "install the same crowe-policy, jax and jaxlib on every node "
                              "and leave XLA_FLAGS as the driver has them")


def _instrument_groups(policy, panel):
    """As `sweep.sweep_instruments`: one group per distinct instrument binding, each run on
    its first member's one-instrument universe."""
    from crowe.compiler.program import to_ir
    from crowe.compiler.step import Universe
    pir = to_ir(policy)
    groups: dict[tuple, list[str]] = {}
    for s in panel.symbols:
        u = Universe.bind(pir, [s])
        groups.setdefault((u.restricted, u.can_short, u.sector_ids), []).append(s)
    return [([members[0]], members) for members in groups.values()]
