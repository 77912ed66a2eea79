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

# the same policy trading at most 0.5% of a bar's volume: its exits take several bars to fill
THIN_POLICY = POLICY.replace("participation_cap: 50%", "participation_cap: 0.5%")
THIN_CAP, MAX_ORDERS = 0.005, 3

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
DAY_NS = 86_400 * 10**9


def positions_by_bar(records) -> np.ndarray:
    """The book after each journal record, rebuilt from the journaled fills alone: [T, N]."""
    book, rows = np.zeros(len(SYMBOLS)), []
    for rec in records:
        for sym, qty, *_ in rec["fills"]:
            book[SYMBOLS.index(sym)] += qty
        rows.append(book.copy())
    return np.array(rows).reshape(len(rows), len(SYMBOLS))


def bars_to_flat_bound(held: np.ndarray, volume: np.ndarray, cap: float) -> int:
    """Bars from a flatten taking effect to a flat book, at worst: that bar decides the first
    orders, and each later bar fills at least `floor(cap * volume)` shares (or the rest) of one
    of them. `volume`: the bars' volumes from the kill on, [T, N]."""
    least = np.floor(cap * np.asarray(volume)).min()
    assert least > 0, "the feed must have volume for the orders to fill"
    return 1 + int(np.ceil(np.abs(held) / least).sum())


def check_flattening(records, kill: int, bound: int) -> int:
    """From bar `kill` on, under FLATTENING: orders only toward zero, each for what is left of
    the position (at most MAX_ORDERS a bar), sent again every bar until it is zero; every
    position filled to exactly zero within `bound` bars, then no orders and no fills. Returns
    the first flat bar."""
    book = positions_by_bar(records)
    held = book[kill - 1]
    flat = [t for t in range(kill, len(records)) if not book[t].any()]
    assert flat and flat[0] < kill + bound, (flat[:1], bound)
    for t in range(kill, len(records)):
        rec = records[t]
        assert rec["trading_state"] == "FLATTENING" and rec["override"] == "FLATTENING", t
        sent = {sym: qty for sym, qty, _ in rec["orders"]}
        assert len(sent) == min(np.count_nonzero(book[t]), MAX_ORDERS), (t, sent, book[t])
        for sym, qty in sent.items():
            assert qty == -book[t][SYMBOLS.index(sym)], (t, sym, qty, book[t])
        if t > flat[0]:
            assert not rec["orders"] and not rec["fills"] and rec["gross"] == 0.0, t
    filled = np.zeros(len(SYMBOLS))
    for rec in records[kill:]:
        for sym, qty, *_ in rec["fills"]:
            filled[SYMBOLS.index(sym)] += qty
    np.testing.assert_array_equal(filled, -held)
    return flat[0]


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


def runtime_key():
    """A fixed journal key for the tests (Ed25519 signatures are deterministic, so the journals
    of equal runs are equal byte for byte)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from crowe.compiler.artifact.keys import SigningKey
    return SigningKey("test-runtime", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def runtime_trust() -> dict:
    """A trust store (as `verify` loads one) holding `runtime_key()` in the role `journal`."""
    from crowe.compiler.artifact.trust import TrustedKey
    pub = runtime_key().public
    return {pub.keyid: TrustedKey(pub.keyid, pub.name, pub, ("journal",))}


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

            def fileno(self):
                return f.fileno()

            def write(self, data):
                f.write(data[: len(data) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        return Torn()

    runner = PaperRunner(engine(Path(policy_path)), state_dir, "digest", opener=opener,
                         hooks=hook, signer=runtime_key(), trusted=runtime_trust())
    runner.run(ReplayFeed(data_path, SYMBOLS))


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
