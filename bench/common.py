"""Helpers shared by the benchmarks: arguments, machine info, timing statistics, JSON output.

Every benchmark prints exactly one JSON object on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

T_START = time.perf_counter()

# The project pins XLA code-generation flags (and the persistent cache) when `crowe.compiler`
# is imported; that only works before JAX starts its backend, so import it first, as the
# command-line tools do.
try:
    import crowe.compiler  # noqa: E402,F401
except ImportError:
    pass

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


def log(*args) -> None:
    print(f"[{time.perf_counter() - T_START:7.1f}s]", *args, file=sys.stderr, flush=True)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few repeats: a smoke test that runs in seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic bars")
    return p


def machine_info() -> dict:
    import jaxlib
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cores": os.cpu_count(), "cores_usable": affinity, "cpu": cpu,
        "platform": platform.platform(), "python": platform.python_version(),
        "jax": jax.__version__, "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "loadavg_start": _loadavg(),
    }


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def percentile(xs, q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of a list of numbers."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def stats(xs) -> dict:
    """Median and spread of timing samples (seconds or microseconds, as given)."""
    xs = list(map(float, xs))
    med = statistics.median(xs)
    return {"n": len(xs), "median": med, "min": min(xs), "max": max(xs),
            "p10": percentile(xs, 10), "p90": percentile(xs, 90),
            "noise_iqr_over_median": (percentile(xs, 75) - percentile(xs, 25)) / med if med else
            None}


def timed(f, *args, **kw):
    """(result, seconds) of f(*args) with every output ready."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(*args, **kw))
    return out, time.perf_counter() - t0


def engine_for(policy_path, symbols, cash: float = 1e6):
    """Check a policy file and bind it to the symbols: (engine, check seconds, build seconds)."""
    from crowe.dsl.policy import check_path
    from crowe.runtime.engine import Engine
    t0 = time.perf_counter()
    res = check_path(str(policy_path))
    t1 = time.perf_counter()
    if not res.ok:
        raise SystemExit(f"{policy_path} does not check: {[str(d) for d in res.errors]}")
    engine = Engine.from_policy(res.policy, symbols, cash)
    return engine, t1 - t0, time.perf_counter() - t1


def policy_symbols(policy_path, n: int) -> tuple[str, ...]:
    """The policy's own symbol list, or N synthetic names when its universe is `from_data`."""
    from crowe.dsl.policy import check_path
    from synthetic import symbol_names
    res = check_path(str(policy_path))
    syms = res.policy.spec.universe.symbols
    return symbol_names(n) if syms == "from_data" else tuple(sorted(syms))


def backtest_program(runner, params, carry, bars):
    """The jitted function behind a backtest runner and arguments for one call of it.

    A `Runner` (a jitted while_loop over fixed-size chunks of bars) gives its chunk program and
    one full chunk; a plain jitted scan (params, carry, bars) is returned as it is."""
    import numpy as np
    if hasattr(runner, "chunk"):
        from crowe.runtime.backtest import _pad, _strong
        size = runner.size
        host = {k: np.asarray(v) for k, v in bars.items()}
        piece = {k: _pad(v[:size], size) for k, v in host.items()}
        n = min(size, len(host["ts"]))
        args = (params, _strong(carry), piece, np.int32(n))
        if hasattr(runner, "_run"):     # the record buffers are an argument (donated)
            import jax.numpy as jnp
            one = {k: v[0] for k, v in piece.items()}
            shapes = jax.eval_shape(runner.engine.bar_update, params, carry, one)[1]
            outs = jax.tree_util.tree_map(lambda s: jnp.zeros((size,) + s.shape, s.dtype),
                                          shapes)
            args += (np.int32(0), outs)
        return runner.chunk, args
    return runner, (params, carry, bars)


def emit(name: str, result: dict, info: dict) -> None:
    info = dict(info, loadavg_end=_loadavg())
    out = {"benchmark": name, "data": "synthetic (bench/synthetic.py), not market data",
           "machine": info, **result}
    json.dump(out, sys.stdout, indent=2, default=_default)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _default(o):
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)
