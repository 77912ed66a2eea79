"""Bodies of `crowe paper ...` and `crowe journal ...` (argument parsing lives in `cli.py`)."""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live

from ..quantity_cli import parse_duration_ns
from .control import read_control, read_status, write_control
from .feed import ReplayFeed, StdinFeed
from .journal import export, verify
from .lock import StateDirLock
from .errors import Halted, PaperError


class FeedSpecError(ValueError):
    """A `--feed` that is neither `replay:PATH` nor `stdin`."""


def make_feed(spec: str, symbols, speed: float | None):
    if spec == "stdin":
        return StdinFeed(symbols, sys.stdin)
    kind, sep, path = spec.partition(":")
    if kind == "replay" and sep and path:
        return ReplayFeed(path, symbols, speed)
    raise FeedSpecError(f"`--feed {spec}` is not a feed: use `replay:PATH` (a Parquet bar file) "
                        "or `stdin` (one JSON bar cross-section per line)")


def _line(st: dict) -> str:
    eq = f"{st['equity']:,.2f}" if st.get("equity") is not None else "n/a"
    gross = f"{st['gross']:.1%}" if st.get("gross") is not None else "n/a"
    net = f"{st['net']:.1%}" if st.get("net") is not None else "n/a"
    return (f"{st.get('last_bar_time') or 'no bar yet'}  bars {st['bars_processed']}  equity {eq}  gross {gross}  "
            f"net {net}  {st['trading_state']}  orders {st['orders_this_bar']}")


def journal_signer(key_path: str, trust_dir: str):
    """The journal key (a private key file) and the trust store that must hold its public key
    in the role `journal`: (key, trusted keys)."""
    from crowe.compiler.artifact.keys import load_signing_key
    from crowe.compiler.artifact.signatures import JOURNAL_ROLE
    from crowe.compiler.artifact.verify import load_trust
    key, keys = load_signing_key(key_path), load_trust(trust_dir)
    trusted = keys.get(key.public.keyid)
    if trusted is None or JOURNAL_ROLE not in trusted.roles:
        raise PaperError(f"the journal key `{key_path}` is not trusted in the role "
                         f"`{JOURNAL_ROLE}` by `{trust_dir}`: add its public key with `crowe "
                         f"trust add {key_path}.pub --role {JOURNAL_ROLE} --trust {trust_dir}`")
    return key, keys


def run_paper(engine, digest: str, state_dir: str, feed_spec: str, speed: float | None,
              max_gap: str, max_ahead: str = "1d", on_start=None, signer=None,
              trusted=None) -> int:
    """Run the paper loop under the state directory's lock. `on_start` is called once the run
    has started (lock taken, state recovered), before the first bar. `signer` signs every
    journal record; `trusted` (a trust store) checks the records already there."""
    state = Path(state_dir)
    limits = {"max_gap_ns": parse_duration_ns(max_gap),
              "max_ahead_ns": parse_duration_ns(max_ahead)}
    feed = make_feed(feed_spec, engine.symbols, speed)
    with StateDirLock(state):          # held until the run ends; the OS drops it on a crash
        return _run_locked(engine, digest, state, feed, limits, on_start, signer, trusted)


def record_version(artifact, state_dir: str, allow_rollback: bool) -> None:
    """Record the artifact's version as run from the state directory (the rollback record),
    checking it again under the lock."""
    from crowe.compiler.artifact.verify import check_rollback, record_run
    check_rollback(artifact, state_dir, allow_rollback)
    record_run(artifact, state_dir)


def _run_locked(engine, digest: str, state: Path, feed, limits: dict, on_start, signer,
                trusted) -> int:
    from .loop import PaperRunner           # JAX: only a run needs it
    runner = PaperRunner(engine, state, digest, signer=signer, trusted=trusted, **limits)
    _install_signals(state)
    err = Console(stderr=True)
    try:
        runner.recover()
        if on_start is not None:
            on_start()
        if err.is_terminal:
            with Live("", console=err, refresh_per_second=8, transient=False) as live:
                summary = runner.run(feed, on_bar=lambda st: live.update(_line(st)))
        else:
            summary = runner.run(feed)
    except Halted as e:
        click.echo(f"error: {e}", err=True)
        return 1
    msg = (f"processed {summary.processed} bars" + (f", redid {summary.redone}" if summary.redone
                                                    else "") +
           (f", skipped {summary.skipped} already processed" if summary.skipped else "") +
           (f", refused {summary.refused} (see {state / 'events.jsonl'})" if summary.refused
            else ""))
    click.echo(msg, err=True)
    if summary.last:
        click.echo(_line(summary.last))
    return 0


def _install_signals(state: Path) -> None:
    """SIGUSR1 halts, SIGUSR2 flattens: both take effect from the next bar and persist."""
    def handler(override):
        return lambda signum, frame: write_control(state, override, f"signal {signum}")
    signal.signal(signal.SIGUSR1, handler("HALTED"))
    signal.signal(signal.SIGUSR2, handler("FLATTENING"))


def kill(state_dir: str, flatten: bool, reason: str) -> None:
    state = Path(state_dir)
    if not state.is_dir():
        raise PaperError(f"`{state_dir}` is not a paper state directory")
    override = "FLATTENING" if flatten else "HALTED"
    _write_control(state, override, reason or "operator kill switch")
    click.echo(f"{override}: takes effect from the next bar; `crowe paper resume --state-dir "
               f"{state_dir}` clears it")


def _write_control(state: Path, override: str, reason: str) -> None:
    try:
        write_control(state, override, reason)
    except OSError as e:
        raise PaperError(f"cannot write the control file in `{state}`: {e.strerror or e}; "
                         f"the override is NOT in force") from None


def resume(state_dir: str) -> None:
    state = Path(state_dir)
    if not state.is_dir():
        raise PaperError(f"`{state_dir}` is not a paper state directory")
    before = read_control(state)["override"]
    _write_control(state, "ACTIVE", "")
    click.echo(f"ACTIVE (was {before})")


def status(state_dir: str, fmt: str) -> None:
    state = Path(state_dir)
    st = read_status(state) if state.is_dir() else None
    if st is None:
        raise PaperError(f"`{state_dir}` has no paper status yet: no bar has been processed")
    control = read_control(state)
    st = dict(st, override=control["override"], override_reason=control.get("reason", ""))
    if control["override"] != "ACTIVE":
        st["trading_state"] = control["override"]
    if fmt == "json":
        click.echo(json.dumps(st, indent=2, sort_keys=True))
    else:
        click.echo(_line(st))
        if control["override"] != "ACTIVE":
            click.echo(f"override {control['override']}: {control.get('reason', '')}")
        if st.get("refused"):
            click.echo(f"refused {st['refused']} (last: {st.get('last_refusal')}); see "
                       f"{state / 'events.jsonl'}")


def journal_verify(state_dir: str, trust_dir: str) -> int:
    from crowe.compiler.artifact.verify import load_trust
    keys = load_trust(trust_dir)
    check = verify(Path(state_dir), keys)
    if check.ok:
        click.echo(f"ok: {check.records} records, chain intact, every record signed by a "
                   f"journal key of `{trust_dir}`, checkpoint consistent")
        return 0
    where = "" if check.first_bad is None else f"record {check.first_bad}: "
    click.echo(f"error: {where}{check.reason}", err=True)
    return 1


def journal_export(state_dir: str, out: str) -> None:
    n = export(Path(state_dir), Path(out))
    click.echo(f"wrote {n} records to {out}")
