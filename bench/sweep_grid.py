"""The 100-combination SMA-crossover grid over skfolio's 20 US stocks (8,313 days, 1990-2022),
each stock its own one-instrument run (`crowe sweep --per-instrument`, vectorbt's columns):
2,000 runs of `bench/policies/sma_cross_bench.policy`, against vectorbt's
`MA.run` + `Portfolio.from_signals` on the same prices in the same run when a Python with
vectorbt is given. Prints one JSON object; progress on stderr.

    .venv/bin/python bench/sweep_grid.py [--quick] [--vbt-python build/venv-vbt/bin/python]

skfolio's data is adjusted closes only: each bar's open, high and low are its close, and the
volume a constant large enough that the participation cap never binds. The grid: fast
5:50:5 x slow 60:240:20. Throughput counts instrument-bars (runs x bars) and combinations per
second (a combination is one parameter set over all 20 stocks); times are medians of repeats
after a first call that includes compilation. `--quick`: 4 stocks x 1,000 days, 4 combinations.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import emit, log, machine_info, parser, stats, timed  # noqa: E402,I001

import numpy as np  # noqa: E402

POLICY = Path(__file__).parent / "policies" / "sma_cross_bench.policy"
FAST, SLOW = list(range(5, 51, 5)), list(range(60, 241, 20))

VBT = r"""
import json, sys, time
import numpy as np, pandas as pd, vectorbt as vbt
close = pd.DataFrame(np.load(sys.argv[1]))
fast, slow = json.loads(sys.argv[2]), json.loads(sys.argv[3])
def run():
    f = vbt.MA.run(close, fast, short_name="fast")
    s = vbt.MA.run(close, slow, short_name="slow")
    fa = f.ma.values; sa = s.ma.values      # [T, len(fast) * N], [T, len(slow) * N]
    N = close.shape[1]
    fa = np.repeat(fa.reshape(len(close), len(fast), 1, N), len(slow), 2)
    sa = np.repeat(sa.reshape(len(close), 1, len(slow), N), len(fast), 1)
    fa = pd.DataFrame(fa.reshape(len(close), -1)); sa = pd.DataFrame(sa.reshape(len(close), -1))
    above = fa > sa
    entries = above & ~above.shift(1, fill_value=False)
    exits = ~above & above.shift(1, fill_value=False)
    c = pd.DataFrame(np.tile(close.values, len(fast) * len(slow)))
    pf = vbt.Portfolio.from_signals(c, entries, exits, init_cash=1e6, freq="1D")
    return pf.total_return().values
run()                                        # numba compiles
times, cpu = [], []
for _ in range(int(sys.argv[4])):
    t0, c0 = time.perf_counter(), time.process_time()
    r = run()
    times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
print(json.dumps({"times": times, "cpu": cpu, "columns": int(r.shape[0]),
                  "version": vbt.__version__}))
"""


def load(quick: bool, instruments: int = 0):
    import pandas as pd
    from skfolio.datasets import load_sp500_dataset
    from crowe.runtime.data import align
    prices = load_sp500_dataset()
    if quick:
        prices = prices.iloc[:1000, :4]
    if instruments:
        prices = prices.iloc[:, :instruments]
    long = prices.stack().rename("close").reset_index()
    long.columns = ["ts", "symbol", "close"]
    c = long["close"].to_numpy(float)
    bars = {"ts": pd.to_datetime(long["ts"]).to_numpy("datetime64[D]"),
            "symbol": long["symbol"].to_numpy(object), "open": c, "high": c, "low": c,
            "close": c, "volume": np.full(len(c), 1e12)}
    return prices, align(bars)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--instruments", type=int, default=0,
                   help="only the first K stocks (to time a slow tree on part of the grid)")
    p.add_argument("--vbt-python", default=None,
                   help="a Python with vectorbt installed, to time it on the same grid")
    a = p.parse_args()
    from crowe.dsl.policy import check_path
    from crowe.runtime import sweep as sw
    fast, slow = (FAST[:2], SLOW[:2]) if a.quick else (FAST, SLOW)
    reps = 1 if a.quick else a.repeat
    prices, panel = load(a.quick, a.instruments)
    policy = check_path(str(POLICY)).policy
    engine = sw.Engine.from_policy(policy, [panel.symbols[0]])
    combos = sw.parse_grid([f"fast={','.join(map(str, fast))}",
                            f"slow={','.join(map(str, slow))}"], engine.param_specs)
    runs, T = len(combos) * panel.N, panel.T
    log(f"crowe: {len(combos)} combinations x {panel.N} instruments x {T} bars; first call")
    res, first = timed(sw.sweep_instruments, policy, panel, combos, 1e6)
    times, cpu = [], []
    for _ in range(reps):
        c0 = time.process_time()
        times.append(timed(sw.sweep_instruments, policy, panel, combos, 1e6)[1])
        cpu.append(time.process_time() - c0)
    med = stats(times)["median"]
    out = {"data": "skfolio 1.12.2 load_sp500_dataset (adjusted closes), real market data",
           "policy": POLICY.name, "instruments": panel.N, "bars": T, "combos": len(combos),
           "runs": runs, "workers": sw.WORKERS, "crowe_first_call_s": first,
           "crowe_s": stats(times), "crowe_combos_per_s": len(combos) / med,
           "crowe_instrument_bars_per_s": runs * T / med, "crowe_cpu_s": stats(cpu),
           "crowe_final_equity_median": float(np.median(res.equity[:, -1]))}
    if a.vbt_python:
        log("vectorbt")
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "close.npy", prices.to_numpy(float))
            r = subprocess.run([a.vbt_python, "-c", VBT, str(Path(tmp) / "close.npy"),
                                json.dumps(fast), json.dumps(slow), str(reps)],
                               capture_output=True, text=True, check=True)
        v = json.loads(r.stdout.strip().splitlines()[-1])
        vmed = stats(v["times"])["median"]
        out.update(vectorbt_version=v["version"], vectorbt_columns=v["columns"],
                   vectorbt_s=stats(v["times"]), vectorbt_combos_per_s=len(combos) / vmed,
                   vectorbt_instrument_bars_per_s=runs * T / vmed,
                   vectorbt_cpu_s=stats(v["cpu"]), crowe_over_vectorbt_throughput=vmed / med,
                   crowe_over_vectorbt_cpu=stats(v["cpu"])["median"] / stats(cpu)["median"])
    emit("sweep_grid", out, machine_info())


if __name__ == "__main__":
    main()
