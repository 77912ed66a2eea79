"""Per-bar latency of the jitted simulation bar of `policies/cs_mom_v1.policy`, called the way
the paper runtime calls it: `engine.bar_update` once per bar on device arrays, with
`block_until_ready` after each call.

Variants (interleaved in rounds, so that load from other processes hits them alike):

* ``plain``:   ``jax.jit(engine.bar_update)``;
* ``donated``: ``jax.jit(engine.bar_update, donate_argnums=1)``: the carry (the policy state,
  ring buffers included) is donated, so XLA may update it in place;
* ``donated_host``: as ``donated``, plus ``jax.device_get`` of the per-bar record, which a paper
  runtime needs on the host to journal the decision;
* ``paper_one_bar`` (when the runtime has `crowe.runtime.backtest.make_bar_runner`): the entry
  point the paper runtime really calls, the backtest's compiled chunk run with a trip count of
  one; it returns the records as numpy, so the host copy is included.

Bars are sliced and placed on the device before timing; a warm-up of calls (compilation included)
precedes each measured round, which then walks the next bars in order.

    python bench/step_latency.py           # N = 500, 3 rounds x 2000 calls per variant
    python bench/step_latency.py --quick   # N = 50, 1 round x 200 calls
"""
from __future__ import annotations

import time

import common
from common import POLICIES, log

import jax

TARGET_P99_US = 250.0
TARGET_PAPER_P50_US = 500.0   # the paper entry point at N = 500
VARIANTS = ("plain", "donated", "donated_host", "paper_one_bar")


def latency_stats(us) -> dict:
    s = common.stats(us)
    return {"p50": common.percentile(us, 50), "p90": common.percentile(us, 90),
            "p99": common.percentile(us, 99), "max": max(us), "mean": sum(us) / len(us),
            "min": min(us), "noise_iqr_over_median": s["noise_iqr_over_median"]}


def main() -> None:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    info = common.machine_info()
    from crowe.runtime.engine import bar_at, panel_bars
    from synthetic import make_panel
    n, calls, rounds, warm = (50, 200, 1, 20) if args.quick else (500, 2000, 3, 100)
    t = warm + calls
    log(f"N={n}: synthetic bars, T={t}")
    panel = make_panel(n, t, args.seed)
    engine, _, _ = common.engine_for(POLICIES / "cs_mom_v1.policy", panel.symbols)
    params = engine.params()
    bars = panel_bars(panel)
    per_bar = jax.block_until_ready([bar_at(bars, i) for i in range(t)])

    fns = {"plain": jax.jit(engine.bar_update),
           "donated": jax.jit(engine.bar_update, donate_argnums=1)}
    fns["donated_host"] = fns["donated"]
    try:
        from crowe.runtime.backtest import make_bar_runner
        fns["paper_one_bar"] = make_bar_runner(engine)
    except ImportError:
        pass
    variants_run = [v for v in VARIANTS if v in fns]
    compile_s = {}
    samples = {v: [] for v in variants_run}
    round_stats = {v: [] for v in variants_run}
    cpu_samples = {v: [] for v in variants_run}
    cpu_stats = {v: [] for v in variants_run}
    for r in range(rounds):
        for v in variants_run:
            f = fns[v]
            host = v == "donated_host"
            # a carry of distinct buffers (init_carry may share one between leaves), since the
            # donating variants consume it
            carry = jax.tree_util.tree_map(lambda a: jax.numpy.array(a), engine.init_carry())
            t0 = time.perf_counter()
            for i in range(warm):
                carry, out = f(params, carry, per_bar[i])
                jax.block_until_ready((carry, out))
                if i == 0 and v not in compile_s:
                    compile_s[v] = time.perf_counter() - t0
            us, cpu = [], []
            for i in range(warm, t):
                c0, t0 = time.process_time(), time.perf_counter()
                carry, out = f(params, carry, per_bar[i])
                jax.block_until_ready((carry, out))
                if host:
                    jax.device_get(out)
                us.append((time.perf_counter() - t0) * 1e6)
                cpu.append((time.process_time() - c0) * 1e6)
            samples[v].extend(us)
            cpu_samples[v].extend(cpu)
            round_stats[v].append(latency_stats(us))
            cpu_stats[v].append(latency_stats(cpu))
            st, sc = round_stats[v][-1], cpu_stats[v][-1]
            log(f"round {r + 1}/{rounds} {v:13s} p50 {st['p50']:7.1f} us  p90 {st['p90']:7.1f}"
                f"  p99 {st['p99']:7.1f}  max {st['max']:8.1f}   CPU p50 {sc['p50']:7.1f} us")

    def median_of(v, key):
        return common.stats([s[key] for s in round_stats[v]])["median"]

    variants = {}
    for v in variants_run:
        variants[v] = {
            "first_call_compile_s": compile_s[v] if v in compile_s else None,
            "rounds": round_stats[v],
            "median_over_rounds": {k: median_of(v, k) for k in ("p50", "p90", "p99", "max")},
            "pooled": latency_stats(samples[v]),
            # process CPU time of each call (every thread), robust to other processes' load
            "cpu_rounds": cpu_stats[v],
            "cpu_median_over_rounds": {k: common.stats([s[k] for s in cpu_stats[v]])["median"]
                                       for k in ("p50", "p90", "p99", "max")},
            "samples_us": [round(x, 2) for x in samples[v]],
        }
    common.emit("step_latency", {
        "policy": "policies/cs_mom_v1.policy", "quick": args.quick, "seed": args.seed,
        "N": n, "calls_per_round": calls, "rounds": rounds, "warmup_calls_per_round": warm,
        "unit": "microseconds per bar (bar_update call + block_until_ready)",
        "variants": variants,
        "target_p99_us": TARGET_P99_US,
        "target_met": None if args.quick else {
            v: variants[v]["median_over_rounds"]["p99"] <= TARGET_P99_US for v in variants_run},
        "target_paper_p50_us": TARGET_PAPER_P50_US,
        "paper_p50_met": None if args.quick or "paper_one_bar" not in variants else {
            "wall": variants["paper_one_bar"]["median_over_rounds"]["p50"] <= TARGET_PAPER_P50_US,
            "cpu": variants["paper_one_bar"]["cpu_median_over_rounds"]["p50"]
            <= TARGET_PAPER_P50_US},
    }, info)


if __name__ == "__main__":
    main()
