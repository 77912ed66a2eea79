"""Paper trading: parity with the backtest, crash safety, the journal, bad input, kill switch."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crowe.runtime.backtest import backtest
from crowe.runtime.data import load_bars
from crowe.runtime.paper import checkpoint as ck
from crowe.runtime.paper import commands
from crowe.runtime.paper.control import read_control
from crowe.runtime.paper.feed import ReplayFeed, StdinFeed
from crowe.runtime.paper.journal import Journal, decision_digest, export, verify
from crowe.runtime.paper.loop import Halted, PaperError, PaperRunner
from paperkit.fixture import (POLICY, SYMBOLS, THIN_CAP, THIN_POLICY, bars_to_flat_bound,
                              check_flattening, engine, positions_by_bar, runtime_key,
                              runtime_trust, write_data)

T = 40


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("paper")
    (d / "p.policy").write_text(POLICY)
    write_data(d / "bars.parquet", T)
    return d


@pytest.fixture(scope="module")
def eng(files):
    return engine(files / "p.policy")


@pytest.fixture(scope="module")
def reference(files, eng, tmp_path_factory):
    """An uninterrupted paper run and the backtest of the same file."""
    state = tmp_path_factory.mktemp("ref")
    runner = PaperRunner(eng, state, "digest", signer=runtime_key())
    summary = runner.run(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    panel, _ = load_bars(files / "bars.parquet")
    return state, summary, backtest(eng, panel.select(SYMBOLS))


def test_paper_replay_matches_backtest_bit_for_bit(reference):
    state, summary, result = reference
    records, _ = Journal(state).read()
    assert summary.processed == T == len(records)
    for t, rec in enumerate(records):
        out = {k: result.out[k][t] for k in result.out}
        assert rec["decision"] == decision_digest(out), f"bar {t} differs"
        assert rec["equity"] == float(result.out["equity"][t])
    assert any(rec["orders"] for rec in records), "the test policy must trade"
    assert any(rec["fills"] for rec in records)


def _journal_and_state(state: Path):
    records, tail = Journal(state).read()
    carry, meta = ck.load(state, _template())
    return [r["hash"] for r in records], tail, ck.state_digest(carry), meta


_ENG = {}


def _template():
    return _ENG["eng"].init_carry()


CRASHES = [("before_journal", 0), ("before_journal", 17), ("after_journal", 0),
           ("after_journal", 11), ("after_journal", 39), ("after_checkpoint", 5),
           ("torn", 9), ("torn", 0)]


@pytest.mark.parametrize("phase,seq", CRASHES)
def test_crash_and_resume_gives_the_uninterrupted_result(files, eng, reference, tmp_path, phase,
                                                         seq):
    _ENG["eng"] = eng
    ref_state = reference[0]
    state = tmp_path / "state"
    args = [sys.executable, "-m", "paperkit.fixture", str(files / "p.policy"),
            str(files / "bars.parquet"), str(state), phase, str(seq)]
    proc = subprocess.run(args, cwd=Path(__file__).parent, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    runner = PaperRunner(eng, state, "digest", signer=runtime_key(), trusted=runtime_trust())
    runner.run(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    assert _journal_and_state(state)[:3] == _journal_and_state(ref_state)[:3]
    assert verify(state, runtime_trust()).ok
    assert [r["seq"] for r in Journal(state).read()[0]] == list(range(T))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite(state: Path, edit) -> None:
    path = state / "journal.jsonl"
    lines = path.read_bytes().split(b"\n")[:-1]
    lines = edit(lines)
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_intact_journal_verifies_and_names_its_data_by_sha256(files, reference):
    assert verify(reference[0]).ok and verify(reference[0], runtime_trust()).ok
    sha = load_bars(files / "bars.parquet")[1].sha256
    assert {r["source"] for r in Journal(reference[0]).read()[0]} == {
        f"replay:{files / 'bars.parquet'} sha256:{sha}"}


@pytest.mark.parametrize("name,edit,first_bad", [
    ("edit", lambda ls: ls[:7] + [ls[7].replace(b'"equity":', b'"equity":1')] + ls[8:], 7),
    ("delete", lambda ls: ls[:12] + ls[13:], 12),
    ("reorder", lambda ls: ls[:20] + [ls[21], ls[20]] + ls[22:], 20),
    ("truncate_records", lambda ls: ls[:30], 30),
])
def test_journal_tampering_names_the_first_bad_record(reference, tmp_path, name, edit,
                                                      first_bad):
    state = _copy(reference[0], tmp_path / "s")
    _rewrite(state, edit)
    check = verify(state)
    assert not check.ok and check.first_bad == first_bad, check


def test_journal_cut_mid_record_is_reported(reference, tmp_path):
    state = _copy(reference[0], tmp_path / "s")
    path = state / "journal.jsonl"
    path.write_bytes(path.read_bytes()[:-40])
    check = verify(state)
    assert not check.ok and check.first_bad == T - 1 and "incomplete" in check.reason


def test_damaged_journal_refuses_to_resume(files, eng, reference, tmp_path):
    state = _copy(reference[0], tmp_path / "s")
    _rewrite(state, lambda ls: ls[:3] + ls[4:])
    with pytest.raises(PaperError, match="damaged"):
        PaperRunner(eng, state, "digest").recover()


def test_checkpoint_ahead_of_journal_stops(files, eng, reference, tmp_path):
    state = _copy(reference[0], tmp_path / "s")
    _rewrite(state, lambda ls: ls[:30])
    with pytest.raises(PaperError, match="refusing to guess"):
        PaperRunner(eng, state, "digest").recover()


def test_another_artifact_is_refused(files, eng, reference, tmp_path):
    state = _copy(reference[0], tmp_path / "s")
    with pytest.raises(PaperError, match="another artifact"):
        PaperRunner(eng, state, "other-digest").recover()


def test_export_writes_one_row_per_record(reference, tmp_path):
    import pyarrow.parquet as pq
    n = export(reference[0], tmp_path / "j.parquet")
    assert n == T == pq.read_table(tmp_path / "j.parquet").num_rows


def test_export_without_a_journal_is_an_error_and_writes_nothing(tmp_path):
    from crowe.runtime.paper.journal import JournalError
    with pytest.raises(JournalError, match="no journal"):
        export(tmp_path, tmp_path / "j.parquet")
    assert not (tmp_path / "j.parquet").exists()


def test_write_failure_halts_trading_with_its_reason(files, eng, tmp_path):
    calls = {"n": 0}

    def opener(path, mode):
        calls["n"] += 1
        if calls["n"] == 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, mode)

    state = tmp_path / "s"
    runner = PaperRunner(eng, state, "digest", opener=opener)
    with pytest.raises(Halted, match="No space left"):
        runner.run(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    control = read_control(state)
    assert control["override"] == "HALTED" and "No space left" in control["reason"]
    assert len(Journal(state).read()[0]) == 5
    assert ck.load(state, eng.init_carry())[1].seq == 5


def test_a_checkpoint_that_cannot_be_written_halts_and_the_restart_redoes_the_bar(
        files, eng, reference, tmp_path, monkeypatch):
    state, save, calls = tmp_path / "s", ck.save, {"n": 0}

    def full_disk(*args):
        calls["n"] += 1
        if calls["n"] == 9:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(*args)

    monkeypatch.setattr(ck, "save", full_disk)
    with pytest.raises(Halted) as info:
        PaperRunner(eng, state, "digest", signer=runtime_key()).run(
            ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    message = str(info.value)
    assert "cannot write the checkpoint" in message and "No space left" in message
    assert "HALTED is recorded" in message
    assert read_control(state)["override"] == "HALTED"
    monkeypatch.setattr(ck, "save", save)
    commands.resume(str(state))
    summary = PaperRunner(eng, state, "digest", signer=runtime_key(), trusted=runtime_trust()
                          ).run(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    assert summary.redone == 1 and summary.processed == T - 9
    assert Journal(state).read()[0] == Journal(reference[0]).read()[0]


def test_a_read_only_state_directory_halts_and_says_halted_could_not_be_recorded(
        files, eng, tmp_path, monkeypatch):
    from crowe.runtime.paper import loop
    state, save, calls = tmp_path / "s", ck.save, {"n": 0}

    def read_only(*args):
        calls["n"] += 1
        if calls["n"] >= 3:
            raise OSError(errno.EROFS, "Read-only file system")
        return save(*args)

    def no_control(*args):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ck, "save", read_only)
    monkeypatch.setattr(loop, "write_control", no_control)
    monkeypatch.setattr(commands, "write_control", no_control)
    with pytest.raises(Halted) as info:
        PaperRunner(eng, state, "digest").run(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    message = str(info.value)
    assert "Read-only file system" in message and "could not be recorded" in message
    assert "crowe paper kill" in message
    with pytest.raises(PaperError, match="cannot write the control file"):
        commands.kill(str(state), False, "")


def test_an_unwritable_state_directory_is_a_clear_error(eng, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PaperError, match="cannot create the state directory"):
        PaperRunner(eng, blocker / "st", "digest")


def test_out_of_order_and_duplicate_bars_are_refused(files, eng, tmp_path):
    feed = list(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))[:10]
    shuffled = feed[:5] + [feed[3], feed[4]] + feed[5:]
    state = tmp_path / "s"
    s = PaperRunner(eng, state, "digest").run(shuffled)
    assert s.processed == 10 and s.refused == 2
    events = [json.loads(x) for x in (state / "events.jsonl").read_text().splitlines()]
    assert [e["reason"] for e in events] == ["out of order or duplicate bar"] * 2


def test_bad_prices_mark_the_instrument_invalid_and_never_trade_it(files, eng, tmp_path):
    lines = []
    panel, _ = load_bars(files / "bars.parquet")
    for t in range(20):
        bars = {s: {k: float(getattr(panel, k)[t, i]) for k in
                    ("open", "high", "low", "close", "volume")} for i, s in enumerate(SYMBOLS)}
        if t >= 10:
            bars["BBB"]["close"] = float("nan") if t % 2 else -1.0
        lines.append(json.dumps({"ts": int(panel.ts[t]), "bars": bars}).replace("NaN", "1e999"))
    lines.insert(3, "not json")
    state = tmp_path / "s"
    s = PaperRunner(eng, state, "digest").run(StdinFeed(SYMBOLS, iter(lines)))
    assert s.refused == 1 and s.processed == 20
    for rec in Journal(state).read()[0][10:]:
        assert all(o[0] != "BBB" for o in rec["orders"])


def test_stale_feed_halts(files, eng, tmp_path):
    feed = list(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    gapped = feed[:10] + feed[20:]
    state = tmp_path / "s"
    runner = PaperRunner(eng, state, "digest", max_gap_ns=5 * 86_400 * 10**9)
    runner.run(gapped)
    records = Journal(state).read()[0]
    assert records[9]["trading_state"] != "HALTED"
    assert all(r["trading_state"] == "HALTED" and not r["orders"] for r in records[10:])
    assert "stale feed" in read_control(state)["reason"]


# -- the kill switch: `crowe paper kill [--flatten]`, SIGUSR1/SIGUSR2, `resume` ---------------

KILL, TK = 28, 60            # the kill takes effect on bar KILL of a TK-bar feed


@pytest.fixture(scope="module")
def thin(tmp_path_factory):
    """The test policy trading at most 0.5% of each bar's volume, its engine and a longer feed."""
    d = tmp_path_factory.mktemp("thin")
    (d / "p.policy").write_text(THIN_POLICY)
    write_data(d / "bars.parquet", TK)
    replay = ReplayFeed(str(d / "bars.parquet"), SYMBOLS)
    return d, engine(d / "p.policy"), Bars(replay, replay.source)


class Bars(list):
    """A replayed feed held in memory, sliced as a list, journaled as the file it came from."""

    def __init__(self, bars, source):
        super().__init__(bars)
        self.source = source

    def __getitem__(self, i):
        got = super().__getitem__(i)
        return Bars(got, self.source) if isinstance(i, slice) else got


def _bound(held, feed) -> int:
    return bars_to_flat_bound(held, [b.arrays()["volume"] for b in feed[KILL:]], THIN_CAP)


def _held(state, eng):
    return np.asarray(ck.load(state, eng.init_carry())[0]["state"]["positions"])


def test_kill_flatten_reaches_zero_and_stays_flat_until_resume(thin, tmp_path):
    d, eng, feed = thin
    state = tmp_path / "s"
    PaperRunner(eng, state, "digest").run(feed[:KILL])
    held = _held(state, eng)
    assert np.count_nonzero(held) == len(SYMBOLS)
    commands.kill(str(state), flatten=True, reason="")
    PaperRunner(eng, state, "digest").run(feed[:50])               # a restart: KILL bars skipped
    records = Journal(state).read()[0]
    book = positions_by_bar(records)
    np.testing.assert_array_equal(book[KILL - 1], held)
    # the orders decided before the kill were cancelled on the bar it took effect
    assert records[KILL]["cancelled"] == records[KILL - 1]["orders"] != []
    assert not records[KILL]["fills"]
    flat_at = check_flattening(records, KILL, _bound(held, feed))
    # the participation cap left some orders partly filled, and the rest was sent again
    partial = [(t, sym) for t in range(KILL, flat_at) for sym, qty, _ in records[t]["orders"]
               for fsym, f, *_ in records[t + 1]["fills"] if fsym == sym and abs(f) < abs(qty)]
    assert partial
    assert not _held(state, eng).any()
    st = json.loads((state / "status.json").read_text())
    assert st["trading_state"] == "FLATTENING" and st["gross"] == 0.0
    commands.resume(str(state))
    PaperRunner(eng, state, "digest").run(feed)
    after = Journal(state).read()[0][50:]
    assert all(r["override"] == "ACTIVE" and r["trading_state"] != "FLATTENING" for r in after)
    assert any(r["fills"] for r in after), "trading resumes"
    assert verify(state).ok


def test_kill_halts_with_the_book_unchanged_and_no_orders(files, eng, tmp_path):
    feed = list(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    state = tmp_path / "s"
    PaperRunner(eng, state, "digest").run(feed[:KILL])
    held = _held(state, eng)
    assert held.any()
    commands.kill(str(state), flatten=False, reason="")
    PaperRunner(eng, state, "digest").run(feed[:35])
    records = Journal(state).read()[0]
    assert records[KILL]["cancelled"] == records[KILL - 1]["orders"] != []
    for r in records[KILL:35]:
        assert r["trading_state"] == "HALTED" and not r["orders"] and not r["fills"]
    book = positions_by_bar(records)
    np.testing.assert_array_equal(book[KILL - 1:35], np.broadcast_to(held, (35 - KILL + 1, 4)))
    np.testing.assert_array_equal(_held(state, eng), held)
    commands.resume(str(state))
    PaperRunner(eng, state, "digest").run(feed)
    records = Journal(state).read()[0]
    assert len(records) == T and records[-1]["trading_state"] != "HALTED"
    assert any(r["orders"] for r in records[35:])
    assert verify(state).ok


def test_signals_halt_and_flatten(thin, tmp_path):
    """SIGUSR1 halts and SIGUSR2 flattens, from the bar after the signal."""
    d, eng, feed = thin
    state = tmp_path / "s"
    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}

    def operator(st):
        if st["bars_processed"] == KILL - 4:
            os.kill(os.getpid(), signal.SIGUSR1)
        if st["bars_processed"] == KILL:
            os.kill(os.getpid(), signal.SIGUSR2)
    try:
        commands._install_signals(state)
        PaperRunner(eng, state, "digest").run(feed, on_bar=operator)
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    records = Journal(state).read()[0]
    book = positions_by_bar(records)
    assert all(r["override"] == "HALTED" and not r["orders"] and not r["fills"]
               for r in records[KILL - 4:KILL])
    held = book[KILL - 1]
    np.testing.assert_array_equal(held, book[KILL - 5])
    assert held.any() and not records[KILL]["cancelled"]       # nothing was working under HALTED
    check_flattening(records, KILL, _bound(held, feed))
    assert "signal" in read_control(state)["reason"]


@pytest.fixture(scope="module")
def flattened(thin, tmp_path_factory):
    """An uninterrupted run killed with --flatten after KILL bars, and its journal."""
    d, eng, feed = thin
    state = tmp_path_factory.mktemp("flat") / "s"

    def operator(st):
        if st["bars_processed"] == KILL:
            commands.kill(str(state), flatten=True, reason="")
    PaperRunner(eng, state, "digest", signer=runtime_key()).run(feed, on_bar=operator)
    return state


@pytest.mark.parametrize("phase,seq", [("after_journal", KILL), ("after_checkpoint", KILL + 1),
                                       ("after_journal", KILL + 2)])
def test_crash_while_flattening_resumes_to_the_same_flat_book(thin, flattened, tmp_path, phase,
                                                              seq):
    """SIGKILL on the bar the flatten takes effect, right after it, and in the middle of it."""
    d, eng, feed = thin
    _ENG["eng"] = eng
    state = tmp_path / "s"
    PaperRunner(eng, state, "digest", signer=runtime_key()).run(feed[:KILL])
    commands.kill(str(state), flatten=True, reason="")
    args = [sys.executable, "-m", "paperkit.fixture", str(d / "p.policy"), str(d / "bars.parquet"),
            str(state), phase, str(seq)]
    proc = subprocess.run(args, cwd=Path(__file__).parent, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    PaperRunner(eng, state, "digest", signer=runtime_key(), trusted=runtime_trust()).run(feed)
    assert _journal_and_state(state)[:3] == _journal_and_state(flattened)[:3]
    records = Journal(state).read()[0]
    book = positions_by_bar(records)
    held = book[KILL - 1]
    check_flattening(records, KILL, _bound(held, feed))
    assert verify(state, runtime_trust()).ok


def test_a_redone_bar_keeps_the_override_it_was_journaled_with(thin, flattened, tmp_path):
    """A crash between the journal and the checkpoint, then `resume` before the restart: the
    bar is redone as journaled (FLATTENING) and the resume takes the next bar."""
    d, eng, feed = thin
    state = tmp_path / "s"
    PaperRunner(eng, state, "digest", signer=runtime_key()).run(feed[:KILL])
    commands.kill(str(state), flatten=True, reason="")

    class Crash(Exception):
        pass

    def crash(phase, seq):
        if (phase, seq) == ("after_journal", KILL + 1):
            raise Crash
    with pytest.raises(Crash):
        PaperRunner(eng, state, "digest", hooks=crash, signer=runtime_key()).run(feed)
    commands.resume(str(state))
    s = PaperRunner(eng, state, "digest", signer=runtime_key()).run(feed[:KILL + 3])
    assert s.redone == 1
    records = Journal(state).read()[0]
    ref = Journal(flattened).read()[0]
    assert [r["hash"] for r in records[:KILL + 2]] == [r["hash"] for r in ref[:KILL + 2]]
    assert records[KILL + 2]["override"] == "ACTIVE"
    assert records[KILL + 2]["cancelled"] == records[KILL + 1]["orders"] != []
    assert verify(state).ok


def test_a_missing_journal_does_not_verify(tmp_path):
    check = verify(tmp_path / "nowhere")
    assert not check.ok and "no journal" in check.reason
    assert not verify(tmp_path).ok


def _replace_with_copy(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)


@pytest.mark.parametrize("name,tamper,says", [
    ("deleted", lambda p: p.unlink(), "was deleted"),
    ("replaced", _replace_with_copy, "was replaced"),
    ("truncated", lambda p: os.truncate(p, p.stat().st_size - 10), "bytes long"),
    ("appended", lambda p: p.open("ab").write(b"{}\n"), "bytes long"),
])
def test_a_journal_changed_under_the_runtime_halts_it(files, eng, tmp_path, name, tamper, says):
    state = tmp_path / "s"
    journal = state / "journal.jsonl"

    def hook(phase, seq):
        if (phase, seq) == ("after_checkpoint", 10):
            tamper(journal)
    runner = PaperRunner(eng, state, "digest", hooks=hook)
    with pytest.raises(Halted, match=says):
        runner.run(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    control = read_control(state)
    assert control["override"] == "HALTED" and says in control["reason"]
    assert ck.load(state, eng.init_carry())[1].seq == 10       # nothing after the change
    if name == "deleted":
        assert not journal.exists()                             # no new journal was started
    else:
        assert len(journal.read_bytes().splitlines()) <= 11
    events = [json.loads(x) for x in (state / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "halted" and says in events[-1]["reason"]


def _stdin_bars(files, n: int) -> list[str]:
    panel, _ = load_bars(files / "bars.parquet")
    return [json.dumps({"ts": int(panel.ts[t]), "bars": {
        s: {k: float(getattr(panel, k)[t, i]) for k in ("open", "high", "low", "close",
                                                          "volume")}
        for i, s in enumerate(SYMBOLS)}}) for t in range(n)]


def test_hostile_timestamps_are_refused_and_change_nothing(files, eng, tmp_path, capsys):
    lines = _stdin_bars(files, 20)
    clean = tmp_path / "clean"
    PaperRunner(eng, clean, "digest").run(StdinFeed(SYMBOLS, iter(lines)))
    future = json.loads(lines[10])
    future["ts"] = "2200-01-01"
    huge = dict(future, ts=2**70)
    hostile = lines[:10] + [json.dumps(future), json.dumps(huge),
                            json.dumps(dict(future, ts="9999-12-31"))] + lines[10:]
    state = tmp_path / "s"
    s = PaperRunner(eng, state, "digest").run(StdinFeed(SYMBOLS, iter(hostile)))
    assert s.processed == 20 and s.refused == 3
    assert [r["hash"] for r in Journal(state).read()[0]] == \
        [r["hash"] for r in Journal(clean).read()[0]]
    assert read_control(state)["override"] == "ACTIVE"          # no stale-feed halt either
    events = [json.loads(x) for x in (state / "events.jsonl").read_text().splitlines()]
    assert "ahead of the clock" in events[0]["reason"]
    assert all("out of range" in e["reason"] for e in events[1:]) and len(events) == 3
    st = json.loads((state / "status.json").read_text())
    assert st["bars_processed"] == 20 and st["refused"] == 3 and "out of range" in \
        st["last_refusal"]
    commands.status(str(state), "text")
    assert "refused 3 (last: " in capsys.readouterr().out
    # a restart resumes as if the hostile bars had never come
    s = PaperRunner(eng, state, "digest").run(StdinFeed(SYMBOLS, iter(_stdin_bars(files, 25))))
    assert s.skipped == 20 and s.processed == 5 and s.refused == 0


def test_a_refusal_before_the_first_bar_shows_in_status(files, eng, tmp_path, capsys):
    bar = json.loads(_stdin_bars(files, 1)[0])
    ahead = 2 * 86_400 * 10**9 + __import__("time").time_ns()
    state = tmp_path / "s"
    s = PaperRunner(eng, state, "digest").run(StdinFeed(SYMBOLS, iter(
        [json.dumps(dict(bar, ts=ahead))])))
    assert s.refused == 1 and s.processed == 0 and not (state / "journal.jsonl").exists()
    commands.status(str(state), "json")
    st = json.loads(capsys.readouterr().out)
    assert st["bars_processed"] == 0 and st["refused"] == 1
    assert "ahead of the clock" in st["last_refusal"]
    # with no tolerance the same bar is taken
    s = PaperRunner(eng, state, "digest", max_ahead_ns=None).run(StdinFeed(SYMBOLS, iter(
        [json.dumps(dict(bar, ts=ahead))])))
    assert s.processed == 1


def test_a_resume_after_a_crash_logs_the_bars_done_once_as_skipped(files, eng, tmp_path):
    """A crash between the journal append and the checkpoint of bar 11: the resume skips bars
    0-10 (one event with the count), redoes bar 11 and refuses nothing."""
    feed = list(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    state = tmp_path / "s"

    class Crash(Exception):
        pass

    def crash(phase, seq):
        if (phase, seq) == ("after_journal", 11):
            raise Crash
    with pytest.raises(Crash):
        PaperRunner(eng, state, "digest", hooks=crash).run(feed)
    s = PaperRunner(eng, state, "digest").run(feed)
    assert (s.skipped, s.redone, s.processed, s.refused) == (11, 1, T - 12, 0)
    events = [json.loads(x) for x in (state / "events.jsonl").read_text().splitlines()]
    assert events == [{"event": "skipped", "count": 11, "reason": "skipped, already processed"}]
    assert verify(state).ok
