"""Per-bar cost of each stand-down detector, run as the compiled step runs it: its update scanned
over T bars of a synthetic series (`crowe.stdlib.detectors.replay`), compiled once, then timed
(median of repeats). The crash sentinel reads a cross-section of N instruments as well.

The fragility rule recomputes the policy's target weights, so its cost depends on the policy: it
is measured as the difference of two compiled backtests of `policies/cs_mom_v1.policy` on the
same synthetic bars (`bench/synthetic.py`), with and without a `fragility` rule (median run
time over T bars, compile excluded), and reported per bar next to the whole step's.

    .venv/bin/python bench/detectors.py [--quick] > out.json
"""
from __future__ import annotations

import time

import numpy as np

from common import emit, log, machine_info, parser, stats  # noqa: I001


def cases(T: int, N: int, rng):
    from crowe.stdlib.component import Ctx
    from crowe.stdlib.detectors import change_point, crash_sentinel, drift, regime
    r = rng.normal(0, 0.01, (T, N))
    mid = 100 * np.cumprod(1 + r, axis=0)
    bars = {"high": mid * 1.01, "low": mid * 0.99, "close": mid * (1 + .01 * rng.uniform(-1, 1,
                                                                                         (T, N))),
            "volume": rng.uniform(1e5, 1e6, (T, N))}
    ctx = Ctx(N, 252.0, 1, (False,) * N, (True,) * N, (0,) * N, 1, 1.0, 1.0)
    return {
        "regime": (regime.make(regime.Settings(action="halt")), None, {}),
        "change_point": (change_point.make(change_point.Settings(action="halt")), None, {}),
        "drift": (drift.make(drift.Settings(ks_max=0.3, action="halt")), None, {}),
        "crash_sentinel": (crash_sentinel.make(crash_sentinel.Settings(
            flatten_above=12, action="reduce(50%)")), ctx,
            {"est": {"r1": r}, "bar": bars, "cooldown": np.full(T, 10)}),
    }, r.mean(axis=1)


def backtest_us_per_bar(text: str, panel, repeats: int) -> dict:
    """Median run time per bar of a compiled backtest of the policy ``text`` (compile excluded)."""
    import common
    from crowe.dsl.policy import check_text
    from crowe.runtime.backtest import make_runner
    from crowe.runtime.engine import Engine, panel_bars
    res = check_text(text, "<bench>")
    engine = Engine.from_policy(res.policy, panel.symbols, 1e6)
    params, carry, bars = engine.params(), engine.init_carry(), panel_bars(panel)
    runner = make_runner(engine)
    _, first = common.timed(runner, params, carry, bars)
    runs = [common.timed(runner, params, carry, bars)[1] / panel.T * 1e6
            for _ in range(repeats)]
    return {"first_call_s": first, "us_per_bar": stats(runs)}


def fragility_cost(N: int, T: int, repeats: int, seed: int) -> dict:
    import yaml
    from common import POLICIES
    from synthetic import make_panel
    panel = make_panel(N, T, seed)
    base = yaml.safe_load((POLICIES / "cs_mom_v1.policy").read_text())
    rule = {"epsilon": "10bps", "max_change": "50%", "action": "halt"}
    with_rule = dict(base, stand_down=dict(base["stand_down"], fragility=rule))
    plain = backtest_us_per_bar(yaml.safe_dump(base, sort_keys=False), panel, repeats)
    guarded = backtest_us_per_bar(yaml.safe_dump(with_rule, sort_keys=False), panel, repeats)
    extra = guarded["us_per_bar"]["median"] - plain["us_per_bar"]["median"]
    return {"policy": "policies/cs_mom_v1.policy", "N": N, "T": T, "rule": rule,
            "corruptions": 5, "step_without": plain, "step_with": guarded,
            "us_per_bar": extra,
            "ratio_with_over_without": guarded["us_per_bar"]["median"] /
            plain["us_per_bar"]["median"]}


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    info = machine_info()
    from crowe.stdlib.detectors import replay
    T, N, repeats = (600, 20, 2) if args.quick else (2520, 100, 5)
    found, series = cases(T, N, np.random.default_rng(args.seed))
    results = {}
    for name, (t, ctx, extra) in found.items():
        t0 = time.perf_counter()
        replay(t, series, ctx, **extra)
        first = time.perf_counter() - t0
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            replay(t, series, ctx, **extra)
            samples.append((time.perf_counter() - t0) / T * 1e6)
        results[name] = {"first_call_s": first, "us_per_bar": stats(samples)}
        log(name, f"{results[name]['us_per_bar']['median']:.1f} us/bar")
    log("fragility: backtests of cs_mom_v1 with and without the rule")
    results["fragility"] = fragility_cost(N, T, repeats, args.seed)
    log("fragility", f"{results['fragility']['us_per_bar']:.1f} us/bar on top of the step")
    emit("detectors", {"data": "synthetic: Gaussian one-bar returns, not market data",
                       "T": T, "N": N, "repeats": repeats, "results": results}, info)


if __name__ == "__main__":
    main()
