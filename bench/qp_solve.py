"""The constrained mean-variance solve (`crowe.stdlib.portfolio.qp` through
`mean_variance.solve_constrained`): compile time, time per solve and interior-point steps at a
few universe sizes, with every constraint kind on (net, gross, sector net and gross, one
exposure), a turnover and an L1 penalty, on random covariances.

    .venv/bin/python bench/qp_solve.py [--quick]
"""
from __future__ import annotations

import json

import numpy as np

from common import log, machine_info, parser, stats, timed


def problem(rng, n: int, k: int = 4):
    import jax.numpy as jnp
    from crowe.stdlib.portfolio import mean_variance as mv
    x = rng.normal(0, 0.01, (250, n)) + rng.normal(0, 0.01, (250, 1))
    cov, mu = np.cov(x.T), rng.normal(0, 0.003, n)
    prev, beta = rng.normal(0, 0.03, n), rng.normal(1.0, 0.3, n)
    sectors = tuple(int(i) for i in rng.integers(0, k, n))
    c = mv.Constraints(net=[-0.03, 0.03], gross=1.0, sector_net=[-0.1, 0.1],
                       sector_gross=0.4, exposure={"beta": [-0.05, 0.05]})
    rows = mv.rows(c, sectors, k, {"beta": jnp.asarray(beta)})
    cap = np.full(n, 0.1)
    return tuple(jnp.asarray(a) for a in (mu, cov, prev, -cap, cap)), rows


def main() -> None:
    args = parser(__doc__).parse_args()
    import jax
    from crowe.stdlib.portfolio import mean_variance as mv
    rng = np.random.default_rng(args.seed)
    sizes, repeats = ((6, 18), 5) if args.quick else ((6, 18, 50, 100), 21)
    out = {"machine": machine_info(), "sizes": {}}
    for n in sizes:
        f = jax.jit(lambda mu, cov, prev, lo, hi, rows: mv.solve_constrained(
            mu, cov, prev, lo, hi, 5.0, 5e-4, 1e-4, rows, 100))
        arrays, rows = problem(rng, n)
        _, first = timed(f, *arrays, rows)
        times, steps, conv = [], [], []
        for _ in range(repeats):
            arrays, rows = problem(rng, n)
            (w, info), dt = timed(f, *arrays, rows)
            times.append(dt * 1e3)
            steps.append(int(info["iterations"]))
            conv.append(bool(info["converged"]))
        out["sizes"][str(n)] = {"first_call_s": first, "solve_ms": stats(times),
                                "steps": stats(steps), "converged": sum(conv) / len(conv)}
        log(n, out["sizes"][str(n)]["solve_ms"]["median"], "ms")
    import os
    out["loadavg_end"] = list(os.getloadavg())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
