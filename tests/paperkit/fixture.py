"""A small policy and synthetic bar file for the paper-trading tests, and a child process that
runs the paper loop and kills itself at a chosen point (for the crash tests)."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np

POLICY = """\
policy: paper_test
version: 1.0.0
owner: CR-001
universe: {symbols: [AAA, BBB, CCC, DDD], bar: 1d}
features:
  r1:  ret(close, 1)
  vol: stdev(r1, 5)
signal:
  horizon: 1d
  mu:    -0.5 * zscore(ret(close, 2)) * vol
  sigma: vol
gates:
  edge: prob_edge > 0.52
sizing: {method: inverse_vol, budget: 100%, vol_window: 5}
risk:
  gross_max: 100%
  net_max: 30%
  position_max: 40%
execution: {algo: market, participation_cap: 50%, max_orders_per_bar: 3}
stand_down:
  data_gap: {max_missing: 50%, action: halt}
"""

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
DAY_NS = 86_400 * 10**9


def write_data(path: Path, T: int = 40, seed: int = 7) -> None:
    from crowe.runtime.data import write_bars
    rng = np.random.default_rng(seed)
    N = len(SYMBOLS)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, N)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.005, (T, N)))
    high = np.maximum(open_, close) * 1.01
    low = np.minimum(open_, close) * 0.99
    volume = rng.uniform(1e5, 1e6, (T, N)).round()
    ts = np.repeat(np.arange(T) * DAY_NS + 1_600_000_000 * 10**9 // DAY_NS * DAY_NS, N)
    sym = np.tile(np.array(SYMBOLS, object), T)
    write_bars(path, ts.astype("datetime64[ns]"), sym, open_.ravel(), high.ravel(), low.ravel(),
               close.ravel(), volume.ravel())


def engine(policy_path: Path):
    from crowe.dsl.policy import check_path
    from crowe.runtime.engine import Engine
    r = check_path(str(policy_path))
    assert r.ok, r.diagnostics
    return Engine.from_policy(r.policy, SYMBOLS)


def child(policy_path: str, data_path: str, state_dir: str, phase: str, seq: int) -> None:
    """Run the paper loop; SIGKILL this process at (phase, seq). phase `torn` cuts the journal
    append of bar `seq` in half."""
    from crowe.runtime.paper.feed import ReplayFeed
    from crowe.runtime.paper.loop import PaperRunner

    def hook(p, s):
        if p == phase and s == seq:
            os.kill(os.getpid(), signal.SIGKILL)

    def opener(path, mode):
        f = open(path, mode)
        if phase != "torn":
            return f
        records = sum(1 for _ in open(path, "rb")) if Path(path).exists() else 0
        if records != seq:
            return f

        class Torn:
            def __enter__(self):
                return self

            def __exit__(self, *a):
                return False

            def write(self, data):
                f.write(data[: len(data) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        return Torn()

    runner = PaperRunner(engine(Path(policy_path)), state_dir, "digest", opener=opener,
                         hooks=hook)
    runner.run(ReplayFeed(data_path, SYMBOLS))


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
