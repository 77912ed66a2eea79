"""Sweep throughput of `ts_trend_v1` on SYNTHETIC bars: the batch program of `crowe sweep`
(the backtest's chunk mapped over a batch of runs) against the same combinations run one by
one through the backtest, and a naive `vmap` of the backtest's chunk, with how far its equity
lands from the single backtests'. Prints one JSON object; progress on stderr.

    .venv/bin/python bench/sweep_throughput.py [--quick] [--combos 16] [--bars 3000]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import emit, engine_for, log, machine_info, parser, policy_symbols, stats, timed  # noqa: E402,I001
from synthetic import make_panel  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from crowe.runtime.backtest import CHUNK, _pad, _strong, backtest  # noqa: E402
from crowe.runtime.engine import panel_bars  # noqa: E402
from crowe.runtime.sweep import BatchRunner, sweep  # noqa: E402

POLICY = Path(__file__).parent.parent / "policies" / "ts_trend_v1.policy"


def grid(n: int) -> list[dict]:
    fast = np.linspace(5, 60, max(2, int(np.sqrt(n)))).round().astype(int)
    slow = np.linspace(60, 250, max(2, n // len(fast))).round().astype(int)
    return [{"fast": int(f), "slow": int(s)} for f in fast for s in slow][:n]


def naive_vmap(engine, runner, combos, panel):
    P = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[engine.params(c) for c in combos])
    C = jax.tree_util.tree_map(lambda a: jnp.stack([a] * len(combos)),
                               _strong(engine.init_carry()))
    run = jax.jit(jax.vmap(runner.single.chunk, in_axes=(0, 0, None, None, None)))
    bars = {k: np.asarray(v) for k, v in panel_bars(panel).items()}
    eq = []
    for s in range(0, panel.T, CHUNK):
        n = min(CHUNK, panel.T - s)
        C, out = run(P, C, {k: _pad(v[s:s + n], CHUNK) for k, v in bars.items()}, np.int32(n),
                     np.int32(0))
        eq.append(np.asarray(out["equity"])[:, :n])
    return np.concatenate(eq, axis=1)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--combos", type=int, default=16)
    p.add_argument("--bars", type=int, default=3000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch", type=int, default=0,
                   help="runs per batch (default: half the combinations, so that the two "
                        "batches run on the two cores at once)")
    a = p.parse_args()
    combos = grid(4 if a.quick else a.combos)
    T, reps = (300, 1) if a.quick else (a.bars, a.repeat)
    symbols = policy_symbols(POLICY, 4)
    panel = make_panel(len(symbols), T, a.seed, symbols=symbols)
    engine, _, _ = engine_for(POLICY, panel.symbols)
    runner = BatchRunner(engine, a.batch or max(1, (len(combos) + 1) // 2))
    log("compile + first batch run")
    _, first = timed(sweep, engine, panel, combos, runner=runner)
    batch = [timed(sweep, engine, panel, combos, runner=runner)[1] for _ in range(reps)]
    log("single backtests")
    backtest(engine, panel, engine.params(combos[0]), runner=runner.single)     # compile
    singles_t = []
    for _ in range(reps):
        _, s = timed(lambda: [backtest(engine, panel, engine.params(c), runner=runner.single)
                              for c in combos])
        singles_t.append(s)
    singles = [backtest(engine, panel, engine.params(c), runner=runner.single) for c in combos]
    ref = np.stack([s.out["equity"] for s in singles])
    got = sweep(engine, panel, combos, runner=runner).equity
    log("naive vmap")
    naive = naive_vmap(engine, runner, combos, panel)
    work = len(combos) * T * len(symbols)
    emit("sweep_throughput", {
        "policy": POLICY.name, "instruments": len(symbols), "bars": T, "combos": len(combos),
        "batch": runner.batch, "workers": __import__("crowe.runtime.sweep").runtime.sweep.WORKERS,
        "batch_first_call_s": first, "batch_s": stats(batch), "singles_s": stats(singles_t),
        "batch_instrument_bars_per_s": work / stats(batch)["median"],
        "singles_instrument_bars_per_s": work / stats(singles_t)["median"],
        "batch_equals_singles_bitwise": bool(np.array_equal(got, ref)),
        "naive_vmap_max_rel_equity_diff": float(np.max(np.abs(naive - ref) / np.abs(ref))),
        "naive_vmap_final_equity": naive[:, -1].tolist(),
        "singles_final_equity": ref[:, -1].tolist()}, machine_info())


if __name__ == "__main__":
    main()
