"""Paper trading: parity with the backtest, crash safety, the journal, bad input, kill switch."""
from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crowe.runtime.backtest import backtest
from crowe.runtime.data import load_bars
from crowe.runtime.paper import checkpoint as ck
from crowe.runtime.paper.control import read_control, write_control
from crowe.runtime.paper.feed import ReplayFeed, StdinFeed
from crowe.runtime.paper.journal import Journal, decision_digest, export, verify
from crowe.runtime.paper.loop import Halted, PaperError, PaperRunner
from paperkit.fixture import POLICY, SYMBOLS, engine, write_data

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
    runner = PaperRunner(eng, state, "digest")
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
    runner = PaperRunner(eng, state, "digest")
    runner.run(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    assert _journal_and_state(state)[:3] == _journal_and_state(ref_state)[:3]
    assert verify(state).ok
    assert [r["seq"] for r in Journal(state).read()[0]] == list(range(T))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite(state: Path, edit) -> None:
    path = state / "journal.jsonl"
    lines = path.read_bytes().split(b"\n")[:-1]
    lines = edit(lines)
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_intact_journal_verifies(reference):
    assert verify(reference[0]).ok


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


def test_kill_switch_halts_and_flattens_and_survives_restart(files, eng, tmp_path):
    feed = list(ReplayFeed(str(files / "bars.parquet"), SYMBOLS))
    state = tmp_path / "s"
    PaperRunner(eng, state, "digest").run(feed[:28])
    positions = np.asarray(ck.load(state, eng.init_carry())[0]["state"]["positions"])
    assert np.any(positions != 0)
    write_control(state, "FLATTENING", "operator")
    PaperRunner(eng, state, "digest").run(feed[:31])          # restart; 28 old bars skipped
    recs = Journal(state).read()[0]
    assert any(r["orders"] for r in recs[28:31])
    for r in recs[28:31]:
        assert r["trading_state"] == "FLATTENING"
        for sym, qty, _ in r["orders"]:
            held = positions[SYMBOLS.index(sym)]
            assert np.sign(qty) == -np.sign(held) and abs(qty) <= abs(held) + 1e-9
    write_control(state, "HALTED", "operator")
    PaperRunner(eng, state, "digest").run(feed[:35])
    recs = Journal(state).read()[0]
    assert all(r["trading_state"] == "HALTED" and not r["orders"] and not r["fills"]
               for r in recs[31:35])
    write_control(state, "ACTIVE", "")
    PaperRunner(eng, state, "digest").run(feed)
    recs = Journal(state).read()[0]
    assert len(recs) == T and recs[-1]["trading_state"] != "HALTED"
    assert verify(state).ok
