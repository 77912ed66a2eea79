"""`crowe paper` and `crowe journal` end to end, and paper/backtest parity for every example
policy run from its artifact."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

import artifactkit as ak
from crowe.compiler.artifact.verify import verify
from crowe.runtime import cli
from crowe.runtime.artifact import engine_from
from crowe.runtime.backtest import backtest
from crowe.runtime.data import load_bars, write_bars
from crowe.runtime.paper.control import read_control
from crowe.runtime.paper.feed import ReplayFeed
from crowe.runtime.paper.journal import Journal, decision_digest
from crowe.runtime.paper.loop import PaperRunner
from paperkit.fixture import (POLICY, bars_to_flat_bound, check_flattening, positions_by_bar,
                              write_data)

BIN = Path(sys.executable).parent


def crowe(*args, process: bool = False, **kw):
    """`crowe ARGS`, finished: its exit code, stdout and stderr. Through the command's click
    entry point in this process (the compiled programs stay in memory from one call to the
    next), or with `process=True` (or any subprocess option) as a process of its own, where a
    test is about processes: signals, locks, a process killed."""
    if process or kw:
        return subprocess.run([str(BIN / "crowe"), *map(str, args)], capture_output=True,
                              text=True, **kw)
    result = CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout,
                           stderr=result.stderr)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "p.policy").write_text(POLICY)
    write_data(d / "bars.parquet", 40)
    assert crowe("keygen", "--out", d / "alice", "--name", "alice").returncode == 0
    assert crowe("trust", "add", d / "alice.pub", "--role", "author", "--trust",
                 d / "trust").returncode == 0
    assert crowe("keygen", "--out", d / "rt", "--name", "runtime").returncode == 0
    assert crowe("trust", "add", d / "rt.pub", "--role", "journal", "--trust",
                 d / "trust").returncode == 0
    out = subprocess.run([str(BIN / "crowe-compile"), d / "p.policy", "-o", d / "p.cpol",
                          "--sign-key", d / "alice"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([str(BIN / "crowe-compile"), d / "p.policy", "-o", d / "unsigned.cpol"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return d


def test_paper_trades_a_signed_artifact_and_reports_status(signed):
    d = signed
    run = crowe("paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt", "--state-dir", d / "st",
                "--feed", f"replay:{d / 'bars.parquet'}")
    assert run.returncode == 0, run.stderr
    status = crowe("paper", "status", "--state-dir", d / "st", "--format", "json")
    st = json.loads(status.stdout)
    assert st["bars_processed"] == 40 and st["trading_state"] in ("ACTIVE", "REDUCING")
    assert isinstance(st["equity"], float) and st["last_bar_time"].startswith("2020-")
    assert crowe("journal", "verify", d / "st", "--trust", d / "trust").returncode == 0
    exported = crowe("journal", "export", d / "st", "--out", d / "j.parquet")
    assert exported.returncode == 0 and (d / "j.parquet").exists()
    again = crowe("paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt", "--state-dir", d / "st",
                  "--feed", f"replay:{d / 'bars.parquet'}")
    assert again.returncode == 0 and "skipped 40 already processed" in again.stderr
    assert len(Journal(d / "st").read()[0]) == 40


def test_kill_and_resume_through_the_command(signed):
    d = signed
    state = d / "killed"
    assert crowe("paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt", "--state-dir", state, "--feed",
                 f"replay:{d / 'bars.parquet'}").returncode == 0
    assert crowe("paper", "kill", "--state-dir", state).returncode == 0
    st = json.loads(crowe("paper", "status", "--state-dir", state, "--format",
                          "json").stdout)
    assert st["trading_state"] == "HALTED" and st["override"] == "HALTED"
    assert crowe("paper", "resume", "--state-dir", state).returncode == 0
    st = json.loads(crowe("paper", "status", "--state-dir", state, "--format",
                          "json").stdout)
    assert st["override"] == "ACTIVE"


KILL = 28


def _first_bars(src: Path, dst: Path, n: int) -> Path:
    """The first `n` bars of the bar file `src`."""
    panel, _ = load_bars(src)
    sl = panel.slice(end_ts=int(panel.ts[n - 1]))
    ts = np.repeat(sl.ts, sl.N).astype("datetime64[ns]")
    sym = np.tile(np.array(sl.symbols, object), sl.T)
    write_bars(dst, ts, sym, *(getattr(sl, k).ravel() for k in
                               ("open", "high", "low", "close", "volume")))
    return dst


def _bound(d: Path, held) -> int:
    panel, _ = load_bars(d / "bars.parquet")
    return bars_to_flat_bound(held, panel.volume[KILL:], 0.5)      # the policy's 50% cap


def test_kill_flatten_command_flattens_the_book(signed, tmp_path):
    d, state = signed, tmp_path / "st"
    first = _first_bars(d / "bars.parquet", tmp_path / "first.parquet", KILL)
    run = ["paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt", "--state-dir", state, "--feed"]
    assert crowe(*run, f"replay:{first}").returncode == 0
    out = crowe("paper", "kill", "--state-dir", state, "--flatten")
    assert out.returncode == 0 and "FLATTENING" in out.stdout
    assert crowe(*run, f"replay:{d / 'bars.parquet'}").returncode == 0
    records = Journal(state).read()[0]
    assert len(records) == 40
    held = positions_by_bar(records)[KILL - 1]
    assert held.any()
    flat_at = check_flattening(records, KILL, _bound(d, held))
    assert sum(len(r["fills"]) for r in records[KILL:]) >= np.count_nonzero(held)
    st = json.loads(crowe("paper", "status", "--state-dir", state, "--format", "json").stdout)
    assert st["trading_state"] == "FLATTENING" and st["gross"] == 0.0
    assert flat_at < 39
    assert crowe("journal", "verify", state, "--trust", d / "trust").returncode == 0
    assert crowe("paper", "resume", "--state-dir", state).returncode == 0
    st = json.loads(crowe("paper", "status", "--state-dir", state, "--format", "json").stdout)
    assert st["override"] == "ACTIVE"


def test_sigusr2_flattens_a_running_paper_process(signed, tmp_path):
    d, state = signed, tmp_path / "st"
    panel, _ = load_bars(d / "bars.parquet")
    fields = ("open", "high", "low", "close", "volume")
    lines = [json.dumps({"ts": int(panel.ts[t]), "bars": {
        s: {k: float(getattr(panel, k)[t, i]) for k in fields} for i, s in
        enumerate(panel.symbols)}}) + "\n" for t in range(panel.T)]
    proc = subprocess.Popen([str(BIN / "crowe"), "paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt",
                             "--state-dir", state, "--feed", "stdin"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.writelines(lines[:KILL])
        proc.stdin.flush()
        deadline = time.monotonic() + 300
        while not (state / "status.json").exists() or \
                json.loads((state / "status.json").read_text())["bars_processed"] < KILL:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(signal.SIGUSR2)
        while read_control(state)["override"] != "FLATTENING":
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        proc.stdin.writelines(lines[KILL:])
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    records = Journal(state).read()[0]
    assert len(records) == 40
    held = positions_by_bar(records)[KILL - 1]
    assert held.any()
    check_flattening(records, KILL, _bound(d, held))
    assert "signal" in read_control(state)["reason"]


def test_tampered_journal_is_named_by_verify(signed, tmp_path):
    d = signed
    state = tmp_path / "st"
    assert crowe("paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt", "--state-dir", state, "--feed",
                 f"replay:{d / 'bars.parquet'}").returncode == 0
    path = state / "journal.jsonl"
    lines = path.read_text().splitlines()
    lines[12] = lines[12].replace('"trading_state":"ACTIVE"', '"trading_state":"HALTED"')
    path.write_text("\n".join(lines) + "\n")
    out = crowe("journal", "verify", state, "--trust", d / "trust")
    assert out.returncode == 1 and "record 12" in out.stderr
    assert "Traceback" not in out.stderr


def _rebuild_chain(records: list[dict], start: int, sign=None) -> list[dict]:
    """The records with the chain recomputed from `start` on, as someone without the journal
    key would do after editing one (re-signed with `sign` when given)."""
    from crowe.runtime.paper.journal import record_hash
    out = [dict(r) for r in records]
    for i in range(start, len(out)):
        out[i]["prev"] = out[i - 1]["hash"] if i else "0" * 64
        out[i]["hash"] = record_hash(out[i])
        if sign is not None:
            out[i]["sig"] = sign(out[i]["hash"])
    return out


def _write_records(path, records) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n"
                            for r in records))


@pytest.fixture(scope="module")
def journaled(signed, tmp_path_factory):
    """A finished paper run: its state directory, copied afresh for each test."""
    state = tmp_path_factory.mktemp("journaled") / "st"
    out = crowe("paper", signed / "p.cpol", "--trust", signed / "trust", "--journal-key",
                signed / "rt", "--state-dir", state, "--feed",
                f"replay:{signed / 'bars.parquet'}")
    assert out.returncode == 0, out.stderr
    return state


def _copy(state, tmp_path):
    import shutil
    target = tmp_path / "st"
    shutil.copytree(state, target)
    (target / "lock").unlink(missing_ok=True)
    return target


@pytest.mark.parametrize("how", ["checkpoint_deleted", "checkpoint_kept", "resigned_by_other"])
def test_an_edited_record_with_the_chain_rebuilt_is_found(signed, journaled, tmp_path, how):
    from crowe.compiler.artifact.keys import generate, load_signing_key
    from crowe.runtime.paper.journal import sign_hash
    d, state = signed, _copy(journaled, tmp_path)
    records = Journal(state).read()[0]
    records[12]["equity"] = records[12]["equity"] * 2
    sign = None
    if how == "resigned_by_other":               # a key of its own, not in the trust store
        generate(str(tmp_path / "mallory"))
        mallory = load_signing_key(str(tmp_path / "mallory"))
        sign = lambda h: sign_hash(mallory, h)  # noqa: E731
        for r in records[12:]:
            r["keyid"] = mallory.public.keyid
    _write_records(state / "journal.jsonl", _rebuild_chain(records, 12, sign))
    if how == "checkpoint_deleted":
        (state / "checkpoint.npz").unlink()
    out = crowe("journal", "verify", state, "--trust", d / "trust")
    assert out.returncode == 1, out.stdout
    assert "record 12" in out.stderr and "Traceback" not in out.stderr
    reason = {"resigned_by_other": "which the trust store does not hold"}.get(
        how, "signature does not verify")
    assert reason in out.stderr
    resumed = crowe("paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt",
                    "--state-dir", state, "--feed", f"replay:{d / 'bars.parquet'}")
    assert resumed.returncode == 2 and "record 12" in resumed.stderr


def test_a_checkpoint_that_is_not_the_journaled_state_is_refused(signed, journaled, tmp_path):
    d, state = signed, _copy(journaled, tmp_path)
    path = state / "checkpoint.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    [cash] = [k for k in arrays if "cash" in k]
    arrays[cash] = arrays[cash] + 1e6                # a richer book, same header
    np.savez(path, **arrays)
    out = crowe("journal", "verify", state, "--trust", d / "trust")
    assert out.returncode == 1 and "checkpoint does not hold the state" in out.stderr
    resumed = crowe("paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt",
                    "--state-dir", state, "--feed", f"replay:{d / 'bars.parquet'}")
    assert resumed.returncode == 2 and "does not hold the state" in resumed.stderr


def test_a_journal_key_not_trusted_as_journal_is_refused(signed, tmp_path):
    d = signed
    out = crowe("paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "alice",
                "--state-dir", tmp_path / "st", "--feed", f"replay:{d / 'bars.parquet'}")
    assert out.returncode == 2 and "not trusted in the role `journal`" in out.stderr
    assert "crowe trust add" in out.stderr and not (tmp_path / "st").exists()


def test_every_record_is_signed_and_verify_names_the_key(signed, journaled):
    d = signed
    records = Journal(journaled).read()[0]
    assert len(records) == 40 and all(r.get("sig") and r.get("keyid") for r in records)
    assert len({r["keyid"] for r in records}) == 1
    out = crowe("journal", "verify", journaled, "--trust", d / "trust")
    assert out.returncode == 0 and "every record signed" in out.stdout, out.stderr
    other = d / "trust_without_runtime"
    if not other.exists():
        assert crowe("trust", "add", d / "alice.pub", "--role", "author", "--trust",
                     other).returncode == 0
    out = crowe("journal", "verify", journaled, "--trust", other)
    assert out.returncode == 1 and "record 0" in out.stderr


@pytest.mark.parametrize("which", ["unsigned", "tampered"])
def test_unverified_artifact_is_refused_before_any_bar(signed, tmp_path, which):
    d = signed
    path = d / "unsigned.cpol"
    if which == "tampered":
        blob = bytearray((d / "p.cpol").read_bytes())
        blob[len(blob) // 2] ^= 0x01
        path = tmp_path / "t.cpol"
        path.write_bytes(bytes(blob))
    state = tmp_path / "st"
    out = crowe("paper", path, "--trust", d / "trust", "--journal-key", d / "rt", "--state-dir", state, "--feed",
                f"replay:{d / 'bars.parquet'}")
    assert out.returncode in (1, 2) and out.stderr.startswith("error:")
    assert "Traceback" not in out.stderr
    assert not (state / "journal.jsonl").exists()


def test_bad_feed_spec_is_a_clear_error(signed, tmp_path):
    d = signed
    out = crowe("paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt", "--state-dir", tmp_path / "s",
                "--feed", "kafka:prices")
    assert out.returncode == 2 and "replay:PATH" in out.stderr


@pytest.mark.parametrize("name", ak.POLICIES)
def test_paper_replay_of_the_artifact_matches_its_backtest(name, tmp_path):
    path = ak.write(tmp_path, ak.compiled(name))
    engine = engine_from(verify(path))
    panel = ak.panel(name)
    keep = min(panel.T, engine.warmup + 80)
    sl = panel.slice(start_ts=int(panel.ts[-keep]))
    T, N = sl.T, sl.N
    bars = tmp_path / "bars.parquet"
    ts = np.repeat(sl.ts, N).astype("datetime64[ns]")
    sym = np.tile(np.array(sl.symbols, object), T)
    ok = sl.valid.ravel()
    write_bars(bars, ts[ok], sym[ok], *(getattr(sl, k).ravel()[ok] for k in
                                         ("open", "high", "low", "close", "volume")))
    result = backtest(engine, sl)
    PaperRunner(engine, tmp_path / "st", "d").run(ReplayFeed(str(bars), engine.symbols))
    records = Journal(tmp_path / "st").read()[0]
    assert len(records) == T
    assert result.metrics["costs_paid"] > 0, "the slice must trade for parity to mean much"
    for t, rec in enumerate(records):
        assert rec["decision"] == decision_digest({k: v[t] for k, v in result.out.items()}), \
            f"{name}: bar {t} differs between paper and backtest"


def _stdin_lines(d: Path) -> list[str]:
    panel, _ = load_bars(d / "bars.parquet")
    fields = ("open", "high", "low", "close", "volume")
    return [json.dumps({"ts": int(panel.ts[t]), "bars": {
        s: {k: float(getattr(panel, k)[t, i]) for k in fields} for i, s in
        enumerate(panel.symbols)}}) + "\n" for t in range(panel.T)]


def _start_on_stdin(d: Path, state: Path, lines: list[str]) -> subprocess.Popen:
    """A `crowe paper` process on stdin, once it has processed `lines`."""
    proc = subprocess.Popen([str(BIN / "crowe"), "paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt",
                             "--state-dir", state, "--feed", "stdin"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdin.writelines(lines)
    proc.stdin.flush()
    deadline = time.monotonic() + 300
    while not (state / "status.json").exists() or \
            json.loads((state / "status.json").read_text())["bars_processed"] < len(lines):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(proc.stderr.read())
        time.sleep(0.2)
    return proc


def test_a_second_process_on_a_state_dir_is_refused(signed, tmp_path):
    d, state = signed, tmp_path / "st"
    lines = _stdin_lines(d)
    first = _start_on_stdin(d, state, lines[:5])
    try:
        second = crowe("paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt", "--state-dir", state,
                       "--feed", f"replay:{d / 'bars.parquet'}")
        assert second.returncode == 2, second.stderr
        assert "in use by another `crowe paper` process" in second.stderr
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert len(Journal(state).read()[0]) == 5          # the second one wrote nothing
        first.stdin.writelines(lines[5:])
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert [r["seq"] for r in Journal(state).read()[0]] == list(range(40))
    assert crowe("journal", "verify", state, "--trust", d / "trust").returncode == 0


def test_the_lock_goes_with_a_killed_process(signed, tmp_path):
    d, state = signed, tmp_path / "st"
    proc = _start_on_stdin(d, state, _stdin_lines(d)[:3])
    proc.kill()
    proc.wait()
    again = crowe("paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt", "--state-dir", state, "--feed",
                  f"replay:{d / 'bars.parquet'}")
    assert again.returncode == 0, again.stderr
    assert len(Journal(state).read()[0]) == 40


@pytest.mark.parametrize("what", ["no_directory", "no_journal"])
def test_journal_verify_without_a_journal_is_an_error(signed, tmp_path, what):
    d, state = signed, tmp_path / "st"
    if what == "no_journal":
        state.mkdir()
    out = crowe("journal", "verify", state, "--trust", d / "trust")
    assert out.returncode == 1 and "ok" not in out.stdout
    assert f"no journal `{state / 'journal.jsonl'}`" in out.stderr
    assert ("does not exist" in out.stderr) == (what == "no_directory")
    assert "Traceback" not in out.stderr


def test_the_version_is_recorded_only_once_the_run_starts(signed, tmp_path):
    d = signed
    run = ["paper", d / "p.cpol", "--trust", d / "trust", "--journal-key", d / "rt", "--state-dir"]
    bad_feed = crowe(*run, tmp_path / "a", "--feed", "kafka:prices")
    assert bad_feed.returncode == 2 and not (tmp_path / "a" / "versions.json").exists()
    damaged = tmp_path / "b"
    damaged.mkdir()
    (damaged / "journal.jsonl").write_text("not json\n")
    refused = crowe(*run, damaged, "--feed", f"replay:{d / 'bars.parquet'}")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert not (damaged / "versions.json").exists()
    first = _first_bars(d / "bars.parquet", tmp_path / "first.parquet", 3)
    ok = crowe(*run, tmp_path / "c", "--feed", f"replay:{first}")
    assert ok.returncode == 0, ok.stderr
    versions = json.loads((tmp_path / "c" / "versions.json").read_text())
    assert versions["paper_test"]["version"] == "1.0.0"
