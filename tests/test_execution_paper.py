"""A paper run killed while a parent order is half worked resumes it exactly as the
uninterrupted run (and the backtest) works it on."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crowe.runtime.backtest import backtest
from crowe.runtime.data import load_bars
from crowe.runtime.paper import checkpoint as ck
from crowe.runtime.paper.feed import ReplayFeed
from crowe.runtime.paper.journal import Journal, decision_digest, verify
from crowe.runtime.paper.loop import PaperRunner
from paperkit.fixture import POLICY, SYMBOLS, engine, runtime_key, runtime_trust, write_data

T, H = 40, 4
TWAP = POLICY.replace("execution: {algo: market, participation_cap: 50%, max_orders_per_bar: 3}",
                      f"execution: {{algo: twap, horizon: {H}, participation_cap: 0.2%, "
                      "rebalance: {every: 6}}")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    assert TWAP != POLICY
    d = tmp_path_factory.mktemp("twap")
    (d / "p.policy").write_text(TWAP)
    write_data(d / "bars.parquet", T)
    eng = engine(d / "p.policy")
    ref = d / "ref"
    PaperRunner(eng, ref, "digest", signer=runtime_key(), trusted=runtime_trust()).run(
        ReplayFeed(str(d / "bars.parquet"), SYMBOLS))
    panel, _ = load_bars(d / "bars.parquet")
    return d, eng, ref, backtest(eng, panel.select(SYMBOLS))


def half_worked(out) -> int:
    """A bar at which a parent has sent some children, some filled, and has more to send."""
    start, k = out["parent_start"], np.arange(T)[:, None] - out["parent_start"]
    mid = (start >= 0) & (k >= 1) & (k <= H - 2) & (out["order_qty"] != 0)
    return int(np.flatnonzero(mid.any(1))[0])


def test_paper_is_the_backtest_and_resumes_a_half_worked_parent(run, tmp_path):
    d, eng, ref, result = run
    records, _ = Journal(ref).read()
    for t, rec in enumerate(records):
        assert rec["decision"] == decision_digest({k: result.out[k][t] for k in result.out}), t
    seq = half_worked(result.out)          # killed just after its checkpoint
    state = tmp_path / "state"
    proc = subprocess.run([sys.executable, "-m", "paperkit.fixture", str(d / "p.policy"),
                           str(d / "bars.parquet"), str(state), "after_checkpoint", str(seq + 1)],
                          cwd=Path(__file__).parent, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    carry, meta = ck.load(state, eng.init_carry())
    parent = {k: np.asarray(v) for k, v in carry["state"]["parent"].items()}
    assert (parent["remaining"] != 0).any() and (parent["remaining"] != parent["qty"]).any()
    PaperRunner(eng, state, "digest", signer=runtime_key(), trusted=runtime_trust()).run(
        ReplayFeed(str(d / "bars.parquet"), SYMBOLS))
    got, want = Journal(state).read()[0], records
    assert [r["hash"] for r in got] == [r["hash"] for r in want]
    a, _ = ck.load(state, eng.init_carry())
    b, _ = ck.load(ref, eng.init_carry())
    assert ck.state_digest(a) == ck.state_digest(b)
    assert verify(state, runtime_trust()).ok
