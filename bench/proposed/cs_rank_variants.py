"""Cross-sectional rank (`crowe.stdlib.indicators.cs_rank`) against alternative formulations, in a
scan over synthetic cross-sections (N = 500, ties and missing values included). Prints one JSON
object: microseconds per bar (min of 9 runs) and whether each variant is bit-identical to the
current one.

    python bench/proposed/cs_rank_variants.py
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402  (imports crowe.compiler before JAX starts)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from crowe.stdlib import indicators as ind  # noqa: E402


def searchsorted_rank(method):
    def cs_rank(x):
        ok = jnp.isfinite(x)
        cnt = ok.sum()
        srt = jnp.sort(jnp.where(ok, x, jnp.inf))
        lo = jnp.searchsorted(srt, x, side="left", method=method)
        hi = jnp.searchsorted(srt, x, side="right", method=method)
        return jnp.where(ok, (lo + hi - 1) / 2.0 / jnp.maximum(cnt - 1, 1), jnp.nan)
    return cs_rank


def pairwise_rank(x):
    ok = jnp.isfinite(x)
    cnt = ok.sum()
    xs = jnp.where(ok, x, jnp.inf)
    lo = (xs[None, :] < x[:, None]).sum(1)
    hi = (xs[None, :] <= x[:, None]).sum(1)
    return jnp.where(ok, (lo + hi - 1) / 2.0 / jnp.maximum(cnt - 1, 1), jnp.nan)


def permutation_rank(x):
    """One sort of (value, index); each tie group's first and last sorted position by two
    associative scans; the ranks scattered back through the permutation."""
    ok = jnp.isfinite(x)
    cnt = ok.sum()
    n = x.shape[0]
    idx = jnp.arange(n)
    s, perm = jax.lax.sort((jnp.where(ok, x, jnp.inf), idx), num_keys=1)
    differs = s[1:] != s[:-1]
    first = jnp.concatenate([jnp.ones(1, bool), differs])
    last = jnp.concatenate([differs, jnp.ones(1, bool)])
    start = jax.lax.associative_scan(jnp.maximum, jnp.where(first, idx, 0))
    end = jax.lax.associative_scan(jnp.minimum, jnp.where(last, idx, n - 1), reverse=True)
    r = jnp.zeros(n).at[perm].set((start + end) / 2.0 / jnp.maximum(cnt - 1, 1))
    return jnp.where(ok, r, jnp.nan)


def main() -> None:
    info = common.machine_info()
    n, t = 500, 400
    rng = np.random.default_rng(0)
    x = np.round(rng.standard_normal((t, n)), 2)        # rounded: many ties
    x[rng.random((t, n)) < 0.01] = np.nan
    x = jnp.asarray(x)
    variants = {"current: sort + two searchsorted (scan)": ind.cs_rank,
                "searchsorted method=sort": searchsorted_rank("sort"),
                "searchsorted method=compare_all": searchsorted_rank("compare_all"),
                "pairwise counts, no sort": pairwise_rank,
                "one sort with indices + tie groups by associative scans": permutation_rank}
    out, ref = {}, None
    for name, f in variants.items():
        run = jax.jit(lambda xs, f=f: jax.lax.scan(lambda c, row: (c, f(row)), 0, xs)[1])
        got = np.asarray(jax.block_until_ready(run(x)))
        runs = []
        for _ in range(9):
            t0 = time.perf_counter()
            jax.block_until_ready(run(x))
            runs.append((time.perf_counter() - t0) / t * 1e6)
        ref = got if ref is None else ref
        out[name] = {"us_per_bar_min": min(runs), "us_per_bar_median": sorted(runs)[4],
                     "samples_us_per_bar": runs,
                     "identical_to_current": bool(np.array_equal(got, ref, equal_nan=True))}
        common.log(f"{name:58s} {min(runs):7.1f} us/bar")
    common.emit("cs_rank_variants", {"N": n, "T": t, "repeats": 9, "variants": out}, info)


if __name__ == "__main__":
    main()
