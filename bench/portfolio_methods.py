"""Per-bar cost of each portfolio method (`stdlib/portfolio/`): the jitted `update` of the
component on a window of synthetic one-bar returns (a market factor plus noise), at several
universe sizes. Reports the first call (trace + compile + run) and the median of repeated calls.
"""
from __future__ import annotations

import numpy as np

from common import emit, log, machine_info, parser, stats, timed

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from crowe.stdlib import components as reg  # noqa: E402
from crowe.stdlib.component import Ctx  # noqa: E402

METHODS = {
    "mean_variance": {"method": "mean_variance", "risk_aversion": 5},
    "hrp": {"method": "hrp"},
    "risk_parity": {"method": "risk_parity"},
    "min_variance": {"method": "min_variance", "long_only": True},
    "kelly": {"method": "kelly", "lambda": 0.5},
}
WINDOW = 126


def inputs(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.01, (WINDOW, n)) + rng.normal(0, 0.01, (WINDOW, 1))
    hist = (jnp.asarray(x), jnp.arange(WINDOW), jnp.full(n, -1), jnp.asarray(WINDOW))
    return {"mu": jnp.asarray(rng.normal(0, 1e-3, n)), "sigma": jnp.full(n, 0.01),
            "tradable": jnp.ones(n, bool), "w_prev": jnp.zeros(n), "est": {"history": hist}}


def measure(name: str, n: int, repeats: int, seed: int) -> dict:
    c = reg.PORTFOLIO[name]
    t = c.factory(c.settings.model_validate(dict(METHODS[name], covariance={"window": WINDOW})))
    ctx = Ctx(n, 252.0, 1, (False,) * n, (True,) * n, (0,) * n, 1, 1.0, 0.1, symbols=
              tuple(f"S{i}" for i in range(n)))
    f = jax.jit(lambda i: t.update(i, t.init(ctx), ctx)[0]["w"])
    ins = inputs(n, seed)
    _, first = timed(f, ins)
    samples = [timed(f, ins)[1] * 1e6 for _ in range(repeats)]
    return {"method": name, "n": n, "first_call_s": first, "call_us": stats(samples),
            "samples_us": samples}


def main() -> None:
    args = parser(__doc__).parse_args()
    sizes, repeats = ((20, 50), 5) if args.quick else ((20, 100, 500), 21)
    info, rows = machine_info(), []
    for n in sizes:
        for name in METHODS:
            log(f"{name} N={n}")
            rows.append(measure(name, n, repeats, args.seed))
    emit("portfolio_methods", {"data_note": "random returns made here, not bench/synthetic.py",
                               "window": WINDOW, "sizes": list(sizes), "repeats": repeats,
                               "results": rows}, info)


if __name__ == "__main__":
    main()
