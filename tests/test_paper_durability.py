"""The paper loop's durable writes: one fsync per bar (the journal record), and a checkpoint
that lags the journal by several bars (as after a power loss, since the checkpoint is not
flushed to disk) is caught up by redoing those bars, each checked against its record."""
from __future__ import annotations

import os
import shutil

import pytest

from crowe.runtime.paper import checkpoint as ck
from crowe.runtime.paper.journal import Journal, verify
from crowe.runtime.paper.loop import PaperError, PaperRunner
from crowe.runtime.paper.feed import ReplayFeed
from paperkit.fixture import POLICY, SYMBOLS, engine, runtime_key, runtime_trust, write_data

T, EARLY = 30, 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("durable")
    (d / "p.policy").write_text(POLICY)
    write_data(d / "bars.parquet", T)
    return d, engine(d / "p.policy")


def _feed(d):
    return ReplayFeed(str(d / "bars.parquet"), SYMBOLS)


@pytest.fixture(scope="module")
def run(setup, tmp_path_factory):
    """A run of T bars with every fsync counted, and its checkpoint after bar EARLY."""
    d, eng = setup
    state = tmp_path_factory.mktemp("state")
    calls = []
    real = os.fsync
    mp = pytest.MonkeyPatch()
    mp.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    try:
        runner = PaperRunner(eng, state, "digest", signer=runtime_key())
        first = runner.run(_feed(d), limit=EARLY)
        early = state / "early.npz"
        shutil.copy(state / ck.NAME, early)
        rest = runner.run(_feed(d))
    finally:
        mp.undo()
    assert first.processed + rest.processed == T
    return state, early, len(calls)


def test_one_fsync_per_bar(run):
    # one per journal record, plus one of the directory when the first record created the file
    assert run[2] == T + 1


def test_a_checkpoint_bars_behind_the_journal_is_caught_up_by_redoing_them(setup, run,
                                                                           tmp_path):
    d, eng = setup
    state = tmp_path / "s"
    shutil.copytree(run[0], state)
    shutil.copy(run[1], state / ck.NAME)        # the later checkpoints never reached the disk
    assert verify(state, runtime_trust()).ok    # a lagging checkpoint is consistent
    runner = PaperRunner(eng, state, "digest", signer=runtime_key(), trusted=runtime_trust())
    s = runner.run(_feed(d))
    assert (s.skipped, s.redone, s.processed) == (EARLY, T - EARLY, 0)
    assert Journal(state).read()[0] == Journal(run[0]).read()[0]
    final = ck.read_digest(state)
    assert final[0].seq == T and final[1] == ck.read_digest(run[0])[1]


def test_a_redone_bar_that_differs_from_its_record_stops(setup, run, tmp_path):
    d, eng = setup
    state = tmp_path / "s"
    shutil.copytree(run[0], state)
    shutil.copy(run[1], state / ck.NAME)
    bars = list(_feed(d))
    for b in bars[EARLY:]:                      # not the bars that were journaled
        b.close[:] = b.close * 1.05
    with pytest.raises(PaperError, match="redoing it gives a different record"):
        PaperRunner(eng, state, "digest").run(bars)
