"""Backtest throughput of `policies/cs_mom_v1.policy` on synthetic bars.

For each size (N instruments x T bars): the compile time (the first call of the backtest
runner, `crowe.runtime.backtest.make_runner`, tracing and XLA compilation included, with the
ahead-of-time split trace / lower / compile measured on a second, fresh runner), then the run
time of the compiled backtest (median of the repeats after two warm-up runs; the runner returns
numpy records, so a run includes every device-to-host copy; with a plain jitted scan the outputs
are waited for with `block_until_ready`), and instrument-bars per second = N*T / run time.

    python bench/backtest_throughput.py            # N = 500 and 100, T = 5000
    python bench/backtest_throughput.py --quick    # N = 50 and 20, T = 300
"""
from __future__ import annotations

import time

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


def main() -> None:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    info = common.machine_info()
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
