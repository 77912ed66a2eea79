"""Backtest throughput of `policies/cs_mom_v1.policy` on synthetic bars.

For each size (N instruments x T bars): the compile time (the first call of the backtest
runner, `crowe.runtime.backtest.make_runner`, tracing and XLA compilation included, with the
ahead-of-time split trace / lower / compile measured on a second, fresh runner), then the run
time of the compiled backtest (median of the repeats after two warm-up runs; the runner returns
numpy records, so a run includes every device-to-host copy; with a plain jitted scan the outputs
are waited for with `block_until_ready`), and instrument-bars per second = N*T / run time.

    python bench/backtest_throughput.py            # N = 500 and 100, T = 5000
    python bench/backtest_throughput.py --quick    # N = 50 and 20, T = 300
    python bench/backtest_throughput.py --e2e      # `crowe backtest` end to end, N = 500

With ``--e2e`` it measures the command instead: synthetic bars written as sorted Parquet files
(N = 500, T = 5000 and T = 1000), `crowe backtest FILE --format json` run in fresh processes
(the first one fills a private JAX persistent cache, the repeats reuse it, as a user's second
run does), wall time and the children's CPU time (user + system) of each, and the marginal
throughput (5000 - 1000) * N / (median time at 5000 - median time at 1000), which leaves out
the fixed start-up (interpreter, imports, policy check). Then the phases of one run
in-process: load the Parquet file, bind the engine, simulate (first call and a second),
build the result tables and write them.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import POLICIES, log

import jax

TARGET = 20e6   # instrument-bars per second at N = 500, T = 5000
WARMUP_RUNS = 2


def aot_split(runner, params, carry, bars) -> dict:
    """Trace, lower and compile times of the backtest program, on a fresh runner."""
    fn, args = common.backtest_program(runner, params, carry, bars)
    t0 = time.perf_counter()
    traced = fn.trace(*args)
    t1 = time.perf_counter()
    lowered = traced.lower()
    t2 = time.perf_counter()
    lowered.compile()
    t3 = time.perf_counter()
    return {"aot_trace_s": t1 - t0, "aot_lower_s": t2 - t1, "aot_compile_s": t3 - t2}


def measure(n: int, t: int, repeats: int, seed: int) -> dict:
    from crowe.runtime.backtest import make_runner
    from crowe.runtime.engine import panel_bars
    from synthetic import make_panel
    log(f"N={n} T={t}: synthetic bars")
    panel = make_panel(n, t, seed)
    engine, check_s, build_s = common.engine_for(POLICIES / "cs_mom_v1.policy", panel.symbols)
    params, carry = engine.params(), engine.init_carry()
    bars = jax.block_until_ready(panel_bars(panel))      # built before any timing

    log(f"N={n} T={t}: first call (trace + compile + one run)")
    runner = make_runner(engine)
    _, first = common.timed(runner, params, carry, bars)

    log(f"N={n} T={t}: {repeats} timed runs after {WARMUP_RUNS} warm-up runs")
    for _ in range(WARMUP_RUNS - 1):
        common.timed(runner, params, carry, bars)
    runs, cpu = [], []
    for i in range(repeats):
        c0 = time.process_time()
        _, s = common.timed(runner, params, carry, bars)
        cpu.append(time.process_time() - c0)
        runs.append(s)
        log(f"  run {i + 1}/{repeats}: {s:.3f} s, {n * t / s / 1e6:.2f} M instrument-bars/s")
    med = common.stats(runs)["median"]

    log(f"N={n} T={t}: ahead-of-time split on a fresh runner")
    aot = aot_split(make_runner(engine), params, carry, bars)

    return {
        "N": n, "T": t, "instrument_bars": n * t, "valid_share": float(panel.valid.mean()),
        "warmup_bars": engine.warmup,
        "runner": type(runner).__name__,
        "chunk_bars": getattr(runner, "size", None),
        "check_s": check_s, "engine_build_s": build_s,
        "compile": {"first_call_s": first,
                    "first_call_minus_median_run_s": first - med, **aot},
        "run_s": common.stats(runs), "run_samples_s": runs, "repeats": repeats,
        "warmup_runs": WARMUP_RUNS,
        "process_cpu_s": common.stats(cpu), "process_cpu_samples_s": cpu,
        "instrument_bars_per_s": n * t / med,
        "instrument_bars_per_s_best_run": n * t / min(runs),
        "us_per_bar": med / t * 1e6,
    }


E2E_TARGET = 3e6   # marginal instrument-bars per second of `crowe backtest` at N = 500


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _phase(fn, *args, **kw):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kw)
    return out, {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


def end_to_end(n: int, sizes, repeats: int, seed: int) -> dict:
    from crowe.runtime.data import write_bars
    from synthetic import make_bars
    work = Path(tempfile.mkdtemp(prefix="crowe-e2e-"))
    files = {}
    for t in sizes:
        log(f"e2e: writing N={n} T={t} as sorted Parquet")
        files[t] = work / f"bars_{n}x{t}.parquet"
        write_bars(files[t], **make_bars(n, t, seed))
    env = dict(os.environ, CROWE_CACHE_DIR=str(work / "cache"))
    exe = str(Path(sys.executable).with_name("crowe"))
    policy = str(POLICIES / "cs_mom_v1.policy")

    def run(t):
        cmd = [exe, "backtest", policy, "--data", str(files[t]), "--out", str(work / f"out{t}"),
               "--format", "json"]
        c0, t0 = _children_cpu(), time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
        if done.returncode:
            raise SystemExit(f"crowe backtest failed: {done.stderr[-2000:]}")
        return wall, cpu
    cold = {}
    for t in sizes:
        wall, cpu = run(t)
        cold[t] = {"wall_s": wall, "cpu_s": cpu}
        log(f"e2e: T={t} first run (fills the cache) {wall:.2f} s wall, {cpu:.2f} s CPU")
    walls = {t: [] for t in sizes}
    cpus = {t: [] for t in sizes}
    for i in range(repeats):
        for t in sizes:
            wall, cpu = run(t)
            walls[t].append(wall)
            cpus[t].append(cpu)
            log(f"e2e: T={t} run {i + 1}/{repeats} {wall:.2f} s wall, {cpu:.2f} s CPU")
    big, small = max(sizes), min(sizes)
    med_w = {t: common.stats(walls[t])["median"] for t in sizes}
    med_c = {t: common.stats(cpus[t])["median"] for t in sizes}
    marginal = n * (big - small) / (med_w[big] - med_w[small])
    marginal_cpu = n * (big - small) / (med_c[big] - med_c[small])

    log("e2e: phases of one run in-process (T=%d)" % big)
    phases = in_process_phases(files[big], env["CROWE_CACHE_DIR"], work / "out_phases")
    return {
        "N": n, "T": list(sizes), "command": "crowe backtest cs_mom_v1.policy --data FILE "
        "--format json (fresh process, warm persistent cache)",
        "first_run_cold_cache": {str(t): cold[t] for t in sizes},
        "wall_s": {str(t): common.stats(walls[t]) for t in sizes},
        "cpu_s": {str(t): common.stats(cpus[t]) for t in sizes},
        "wall_samples_s": {str(t): walls[t] for t in sizes},
        "cpu_samples_s": {str(t): cpus[t] for t in sizes},
        "marginal_instrument_bars_per_s": marginal,
        "marginal_instrument_bars_per_s_cpu": marginal_cpu,
        "target_marginal_instrument_bars_per_s": E2E_TARGET,
        "target_met": marginal >= E2E_TARGET,
        "phases_in_process": phases,
    }


def in_process_phases(path, cache_dir: str, out_dir) -> dict:
    """Each phase of `crowe backtest` timed on its own (wall and CPU), in this process."""
    from crowe.runtime.backtest import backtest, result_tables, write_results
    from crowe.runtime.data import load_bars
    from crowe.runtime.engine import Engine
    from crowe.dsl.policy import check_path
    out = {}
    (panel, _), out["load_bars"] = _phase(load_bars, str(path))
    res = check_path(str(POLICIES / "cs_mom_v1.policy"))
    engine, out["engine"] = _phase(Engine.from_policy, res.policy, panel.symbols)
    result, out["backtest_first_call"] = _phase(backtest, engine, panel)
    result, out["backtest_second_call"] = _phase(backtest, engine, panel)
    _, out["result_tables"] = _phase(result_tables, result)
    _, out["write_results"] = _phase(write_results, result, str(out_dir))
    for k, v in out.items():
        log(f"  {k:22s} {v['wall_s']:6.3f} s wall {v['cpu_s']:6.3f} s CPU")
    return out


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--e2e", action="store_true", help="measure `crowe backtest` end to end")
    args = p.parse_args()
    info = common.machine_info()
    if args.e2e:
        sizes = (300, 100) if args.quick else (5000, 1000)
        n = 50 if args.quick else 500
        common.emit("backtest_end_to_end", {
            "policy": "policies/cs_mom_v1.policy", "quick": args.quick, "seed": args.seed,
            **end_to_end(n, sizes, 2 if args.quick else 3, args.seed)}, info)
        return
    sizes = [(50, 300), (20, 300)] if args.quick else [(500, 5000), (100, 5000)]
    repeats = 3 if args.quick else 7
    results = [measure(n, t, repeats, args.seed) for n, t in sizes]
    main_size = results[0]
    common.emit("backtest_throughput", {
        "policy": "policies/cs_mom_v1.policy", "quick": args.quick, "seed": args.seed,
        "sizes": results,
        "target_instrument_bars_per_s": TARGET,
        "target_met": None if args.quick else main_size["instrument_bars_per_s"] >= TARGET,
        "scaling_bars_per_s_ratio_large_over_small":
            results[0]["instrument_bars_per_s"] / results[1]["instrument_bars_per_s"],
    }, info)


if __name__ == "__main__":
    main()
