"""Check and compile time of every example policy in `policies/`.

For each policy, two measurements, each in a fresh Python process (so that no cache of an earlier
compilation helps) and each excluding the interpreter start, the imports and the backend start
(a trivial jit is compiled and run before the clock starts):

* ``step``: check the file (cold: the first check in the process), build the IR and the step
  for a small universe (its own symbol list, or 20 synthetic names when the universe is
  `from_data`), then trace, lower and compile
  ``jax.jit(engine.bar_update)`` (the function the paper runtime calls) and run it once on a
  host bar, so the result is a jitted, warmed step. ``setup_s`` is the time to make the default
  parameters and the initial state (eager jnp calls, each compiled on first use);
* ``scan``: check and build the same way, then trace, lower and compile the backtest program of
  `crowe.runtime.backtest.make_runner` (a loop over the bars: the number of bars does not change
  the program; with a chunked runner this is also the executable paper trading runs).

    python bench/compile_time.py           # 3 fresh processes per policy and measurement
    python bench/compile_time.py --quick   # 1 repeat in this process, the step of every policy
                                           # and the scan of cs_mom_v1 only (caches are warm
                                           # after the first policy: a smoke test only)
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import common
from common import POLICIES, log

import jax
import numpy as np

TARGET_S = 5.0
SMALL_N = 20
SCAN_T = 252


def measure_one(policy: str, what: str, seed: int = 0) -> dict:
    """Compile one policy's step or scan in this process; seconds per phase."""
    from crowe.dsl.policy import check_path
    from crowe.runtime.backtest import make_runner
    from crowe.runtime.engine import Engine, panel_bars
    from synthetic import make_panel, symbol_names
    jax.block_until_ready(jax.jit(lambda x: x + 1)(1.0))    # backend up before the clock
    t0 = time.perf_counter()
    res = check_path(str(POLICIES / policy))                # cold: the first check in this process
    check_s = time.perf_counter() - t0
    if not res.ok:
        raise SystemExit(f"{policy} does not check")
    listed = res.policy.spec.universe.symbols
    symbols = symbol_names(SMALL_N) if listed == "from_data" else tuple(sorted(listed))
    panel = make_panel(len(symbols), SCAN_T, seed, symbols=symbols)   # not timed
    bars = panel_bars(panel)
    host_bars = jax.device_get(bars)
    t0b = time.perf_counter()
    engine = Engine.from_policy(res.policy, symbols, 1e6)
    build_s = time.perf_counter() - t0b
    params, carry = engine.params(), engine.init_carry()
    if what == "step":
        first_bar = {k: np.asarray(v[0]) for k, v in host_bars.items()}   # as a feed gives it
        fn, args = jax.jit(engine.bar_update), (params, carry, first_bar)
    else:
        fn, args = common.backtest_program(make_runner(engine), params, carry, bars)
    t1 = time.perf_counter()
    traced = fn.trace(*args)
    t2 = time.perf_counter()
    lowered = traced.lower()
    t3 = time.perf_counter()
    compiled = lowered.compile()
    t4 = time.perf_counter()
    first_run = None
    if what == "step":
        jax.block_until_ready(compiled(*args))
        first_run = time.perf_counter() - t4
    total = check_s + (time.perf_counter() - t0b)
    return {"policy": policy, "what": what, "N": len(symbols),
            "T": int(np.shape(args[2]["ts"])[0]) if what == "scan" else 1,
            "check_s": check_s, "build_s": build_s, "setup_s": t1 - t0b - build_s,
            "trace_s": t2 - t1, "lower_s": t3 - t2, "compile_s": t4 - t3,
            "first_run_s": first_run, "total_s": total,
            "hlo_lines": compiled.as_text().count("\n")}


def in_subprocess(policy: str, what: str, seed: int) -> dict:
    cmd = [sys.executable, __file__, "--one", policy, "--what", what, "--seed", str(seed)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--one", help=argparse_hidden())
    p.add_argument("--what", choices=("step", "scan"), default="step")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.one:                          # child process: one measurement, JSON on stdout
        json.dump(measure_one(args.one, args.what, args.seed), sys.stdout)
        return
    info = common.machine_info()
    repeats = 1 if args.quick else args.repeats
    policies = sorted(f.name for f in POLICIES.glob("*.policy"))
    results = {}
    for policy in policies:
        results[policy] = {}
        for what in ("step", "scan"):
            if args.quick and what == "scan" and policy != "cs_mom_v1.policy":
                continue
            runs = []
            for r in range(repeats):
                m = measure_one(policy, what, args.seed) if args.quick else \
                    in_subprocess(policy, what, args.seed)
                runs.append(m)
                log(f"{policy:22s} {what}: total {m['total_s']:.2f} s (check {m['check_s']:.2f},"
                    f" trace {m['trace_s']:.2f}, lower {m['lower_s']:.2f},"
                    f" compile {m['compile_s']:.2f})")
            totals = [m["total_s"] for m in runs]
            results[policy][what] = {
                "N": runs[0]["N"], "T": runs[0]["T"],
                "total_s": common.stats(totals), "total_samples_s": totals,
                "phases_median_s": {k: common.stats([m[k] for m in runs])["median"]
                                    for k in ("check_s", "build_s", "setup_s", "trace_s",
                                              "lower_s", "compile_s")},
                "hlo_lines": runs[0]["hlo_lines"], "runs": runs,
            }
    worst = max(r[w]["total_s"]["median"] for r in results.values() for w in r)
    common.emit("compile_time", {
        "quick": args.quick, "repeats": repeats, "fresh_process_per_repeat": not args.quick,
        "small_N_from_data": SMALL_N, "scan_T": SCAN_T, "policies": results,
        "target_s": TARGET_S, "worst_median_s": worst,
        "target_met": None if args.quick else worst < TARGET_S,
    }, info)


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
