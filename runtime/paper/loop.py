"""The paper-trading loop: bars in, the compiled step, the paper broker, journal and checkpoint.

Per bar, in this order:

1. refuse a bar that is not after the last one (out of order or duplicate), and log it;
2. halt if the feed went stale (a gap between bars longer than `max_gap`);
3. apply the operator's override (kill switch) to the state; on the bar where the override
   changes (`kill`, `kill --flatten`, `resume`), and on every bar while HALTED, the working
   orders are cancelled first: they were decided under the previous override and may add to
   positions. Under FLATTENING the orders the step then decides (toward zero) are left to fill
   on the following bars, and the step sends them again, for what is left, until flat;
4. the broker fills the working orders on this bar (the same JAX market model as the backtest),
   and the step decides;
5. append the bar's record to the journal (fsynced: the bar's one durable write), then
   checkpoint the state atomically (renamed into place, not fsynced) and rewrite the status
   (likewise);
6. when a stand-down rule engaged the kill switch at this bar (the crash sentinel's kill level),
   write the FLATTENING override, which holds until `crowe paper resume`.

A crash between 5's two writes leaves one journal record more than the checkpoint; a power
loss may leave a checkpoint several records behind (it was not flushed to disk). On restart
the bars after the checkpoint are redone from it, in order, and each must reproduce its
journaled record exactly; then only the checkpoint is written, so no bar is applied twice and
none is lost. The checkpoint is never ahead of the journal. Any other disagreement
between journal and checkpoint stops the runtime with a message rather than a guess; so does a
checkpoint that does not hold the state the journal recorded for its bar, and, given a trust
store, a journal record whose signature is not by a trusted `journal` key. A journal,
checkpoint or status write that fails (disk full, read-only directory, another OS error) halts
trading: HALTED is recorded in the control file when the directory still takes it, and the
message says what failed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from crowe.stdlib.states import STATES

from ..backtest import make_bar_runner
from ..engine import Engine
from . import checkpoint as ck
from .control import (OVERRIDES, log_event, read_control, read_status, write_control,
                      write_status)
from .errors import Halted, PaperError
from .feed import Bar, Refused
from .journal import (GENESIS, Journal, JournalWriteError, check_chain, decision_digest,
                      finite, record_hash)

STATE_NAMES = STATES
# a bar dated more than this ahead of the wall clock is refused (a clock or feed error)
MAX_AHEAD_NS = 86_400 * 10**9


@dataclass
class Summary:
    processed: int = 0
    skipped: int = 0
    refused: int = 0
    redone: int = 0
    last: dict = field(default_factory=dict)
    skip_logged: bool = False


class PaperBroker:
    """The paper broker: the working orders of the carry, filled on the next bar by the JAX
    market model (`crowe.stdlib.market`), the same implementation the backtest uses.

    Its fills are computed inside the same compiled program as the step: the backtest's scan
    body, run over one bar (`make_bar_runner`). Compiling the market model and the step as
    separate programs, or the body outside a loop, lets XLA round a cost's last bit
    differently, and paper trading must agree with the backtest bit for bit. A real broker
    adapter reports fills from outside and calls the step alone with them
    (`bar["fill_qty"]`, `bar["fill_price"]`, `bar["fill_cost"]`).
    """

    def __init__(self, engine: Engine) -> None:
        self.update = make_bar_runner(engine)

    def trade(self, params, carry: dict, bar: dict):
        """Fill the working orders on this bar, decide, and submit the new orders."""
        return self.update(params, carry, bar)

    @staticmethod
    def cancel(carry: dict) -> dict:
        """Drop every working order, the resting protective exits (stop and take-profit
        levels) included: nothing fills during a halt."""
        return dict(carry, qty=jnp.zeros_like(carry["qty"]),
                    **{k: jnp.full_like(carry[k], jnp.nan) for k in ("limit", "stop", "take")})


class PaperRunner:
    def __init__(self, engine: Engine, state_dir, artifact_digest: str,
                 max_gap_ns: int | None = None, opener=open, hooks=None,
                 max_ahead_ns: int | None = MAX_AHEAD_NS, clock=time.time_ns,
                 signer=None, trusted: dict | None = None) -> None:
        """`signer`: the key that signs each journal record (None: unsigned records);
        `trusted`: a trust store whose `journal` keys every record must be signed by when the
        journal is recovered (None: signatures not checked)."""
        self.engine, self.dir = engine, Path(state_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PaperError(f"cannot create the state directory `{self.dir}`: "
                             f"{e.strerror or e}") from None
        self.trusted = trusted
        self.digest, self.max_gap = artifact_digest, max_gap_ns
        self.max_ahead, self.clock = max_ahead_ns, clock
        self.view: dict = {}          # the status last written, for refusals between bars
        self.params = engine.params()
        self.broker = PaperBroker(engine)
        self.journal = Journal(self.dir, opener, signer)
        self.hooks = hooks or (lambda phase, seq: None)
        self.carry, self.seq, self.last_ts, self.head = None, 0, None, GENESIS
        self.redo: list[dict] = []    # journaled records after the checkpoint, to redo in order
        self.source: str | None = None  # the feed's identity (file and SHA-256), journaled
        # the override in force at the last bar processed (None: a checkpoint that predates it)
        self.in_force: str | None = "ACTIVE"

    # -- start-up -------------------------------------------------------------------------

    def recover(self) -> None:
        records, tail = self.journal.read()
        chain = check_chain(records, keys=self.trusted)
        if not chain.ok:
            raise PaperError(f"the journal is damaged: {chain.reason}; run `crowe journal "
                             f"verify {self.dir}` and restore it before resuming")
        loaded = ck.load(self.dir, self.engine.init_carry())
        carry, meta = loaded if loaded else (self.engine.init_carry(), None)
        done = meta.seq if meta else 0
        if meta is not None and meta.artifact != self.digest:
            raise PaperError(f"`{self.dir}` holds the state of another artifact; use a new "
                             "--state-dir")
        if records and records[0].get("artifact") != self.digest:
            raise PaperError(f"the journal in `{self.dir}` belongs to another artifact")
        if tail and len(records) >= done:
            self.journal.drop_torn_tail(tail)     # the cut-off append was never committed
            log_event(self.dir, {"event": "torn_record_dropped", "seq": len(records)})
        elif tail:
            raise PaperError("the journal's last record is cut off but the checkpoint does not "
                             "match the records before it; refusing to guess")
        head = records[done - 1]["hash"] if done and done <= len(records) else GENESIS
        if len(records) < done or (meta and meta.head != (head if done else "")):
            raise PaperError(f"the journal has {len(records)} records but the checkpoint has "
                             f"processed {done} bars; refusing to guess which is right")
        if done and ck.state_digest(carry) != records[done - 1].get("state"):
            raise PaperError(f"the checkpoint in `{self.dir}` does not hold the state the "
                             f"journal recorded at bar {done - 1}: it was altered or replaced; "
                             "refusing to trade from it")
        self.redo = records[done:]      # journaled after the checkpoint: redone and checked
        self.carry, self.seq, self.head = carry, done, head
        self.last_ts = meta.last_ts if meta else None
        self.in_force = meta.override if meta else "ACTIVE"
        self.journal.pin()           # from now on, only this runtime appends to the journal
        try:
            self.view = read_status(self.dir) or {}
        except (OSError, ValueError):
            self.view = {}

    # -- the loop -------------------------------------------------------------------------

    def run(self, feed, on_bar=None, limit: int | None = None) -> Summary:
        if self.carry is None:
            self.recover()
        s = Summary()
        try:
            self._run(feed, s, on_bar, limit)
        finally:
            self._skipped_once(s)
        return s

    def _skipped_once(self, s: Summary) -> None:
        """Log the bars skipped at a restart (done before it) as one event, with their count."""
        if s.skipped and not s.skip_logged:
            log_event(self.dir, {"event": "skipped", "count": s.skipped,
                                 "reason": "skipped, already processed"})
            s.skip_logged = True

    def _run(self, feed, s: Summary, on_bar, limit) -> None:
        self.source = getattr(feed, "source", None)
        for item in feed:
            if isinstance(item, Refused):
                self.refuse(s, {"where": item.where}, item.reason)
                continue
            now = self.clock()
            if self.max_ahead is not None and item.ts > now + self.max_ahead:
                self.refuse(s, {"ts": item.ts}, f"bar dated {_iso(item.ts)} is more than "
                            f"{self.max_ahead / 3.6e12:g} hours ahead of the clock "
                            f"({_iso(now)}); see --max-ahead")
                continue
            off = self.off_session(item.ts)
            if off is not None:
                self.refuse(s, {"ts": item.ts}, off)
                continue
            if self.last_ts is not None and item.ts <= self.last_ts:
                if s.processed == 0 and s.redone == 0:
                    s.skipped += 1          # processed before a restart (or a crash)
                    continue
                self.refuse(s, {"ts": item.ts}, "out of order or duplicate bar")
                continue
            self._skipped_once(s)
            self.one_bar(item, s)
            if on_bar is not None:
                on_bar(s.last)
            if limit is not None and s.processed + s.redone >= limit:
                break

    def off_session(self, ts: int) -> str | None:
        """Why a bar lies outside the sessions of the artifact's calendar, or None."""
        from crowe.stdlib.sessions import SessionError
        try:
            self.engine.session_fields(np.array([ts], np.int64))
        except SessionError:
            return (f"bar dated {_iso(ts)} lies outside the sessions of the "
                    f"`{self.engine.calendar}` calendar (universe.calendar)")
        return None

    def refuse(self, s: Summary, where: dict, reason: str) -> None:
        """A bar or line not applied: logged, counted, and shown by `crowe paper status`; it
        changes nothing else."""
        s.refused += 1
        log_event(self.dir, {"event": "refused", **where, "reason": reason})
        base = self.view or {"bars_processed": self.seq, "last_bar_time": None, "equity": None,
                             "gross": None, "net": None, "trading_state": "n/a",
                             "orders_this_bar": 0, "policy": self.engine.name,
                             "version": self.engine.version, "artifact": self.digest}
        self.view = dict(base, refused=int(base.get("refused", 0)) + 1, last_refusal=reason)
        try:
            write_status(self.dir, self.view)
        except OSError as e:
            self.halt(f"cannot write the status `{self.dir}`: {e.strerror or e}")

    def one_bar(self, bar: Bar, s: Summary) -> None:
        if self.max_gap and self.last_ts is not None and bar.ts - self.last_ts > self.max_gap:
            stale = f"stale feed: no bar for {(bar.ts - self.last_ts) / 3.6e12:.1f} hours"
            try:
                write_control(self.dir, "HALTED", stale)
            except OSError as e:
                self.halt(f"{stale}, and the control file cannot be written: "
                          f"{e.strerror or e}")
        control = read_control(self.dir)
        redo = self.redo[0] if self.redo else None
        if redo is not None and redo.get("override") in OVERRIDES and \
                redo["override"] != control["override"]:
            # a bar journaled before a crash is redone under the override it was decided with,
            # even if the control file changed since; the new override takes the next bar
            control = {"override": redo["override"], "reason": ""}
        override = control["override"]
        arrays = {k: jnp.asarray(v) for k, v in bar.arrays().items()}
        arrays.update({k: jnp.asarray(v[0]) for k, v in
                       self.engine.session_fields(np.array([bar.ts], np.int64)).items()})
        carry = dict(self.carry, state=dict(self.carry["state"],
                                            override=jnp.asarray(OVERRIDES[override], jnp.int64)))
        cancelled = []
        if cancels(self.in_force, override):
            cancelled = self.working(carry)
            carry = self.broker.cancel(carry)
        new, out = self.broker.trade(self.params, carry, arrays)
        out = {k: np.asarray(v) for k, v in out.items()}
        record = self.record(bar, out, new, control, cancelled)
        self.hooks("before_journal", self.seq)
        if self.redo:
            record = self.check_redo(record)
            s.redone += 1
        else:
            try:
                record = self.journal.append(record, self.head)
            except JournalWriteError as e:
                self.halt(str(e))
            s.processed += 1
        self.hooks("after_journal", self.seq)
        self.head, self.seq, self.last_ts, self.carry = record["hash"], self.seq + 1, bar.ts, new
        self.in_force = override
        try:
            ck.save(self.dir, new, ck.Meta(self.seq, bar.ts, self.head, self.digest, override))
        except OSError as e:
            self.halt(f"cannot write the checkpoint `{self.dir / ck.NAME}`: {e.strerror or e} "
                      f"(bar {record['time']} is journaled and is redone at the restart)")
        self.hooks("after_checkpoint", self.seq)
        if bool(out.get("kill_switch", False)) and override != "FLATTENING":
            # a detector's kill level (the crash sentinel's `flatten_above`): flatten from the
            # next bar on, and stay flat until an operator runs `crowe paper resume`
            reason = f"kill switch engaged by a stand-down rule at {record['time']}"
            write_control(self.dir, "FLATTENING", reason)
            log_event(self.dir, {"event": "kill_switch", "reason": reason})
            control = {"override": "FLATTENING", "reason": reason}
        s.last = self.view = self.status(record, control)
        try:
            write_status(self.dir, s.last)
        except OSError as e:
            self.halt(f"cannot write the status `{self.dir}`: {e.strerror or e}")

    def halt(self, reason: str) -> None:
        """Stop trading because the state directory could not be written: record HALTED in
        the control file when it still can be, log it, and raise `Halted`."""
        try:
            write_control(self.dir, "HALTED", reason)
            recorded = "HALTED is recorded in the control file"
        except OSError as e:
            recorded = (f"HALTED could not be recorded either ({e.strerror or e}): run "
                        f"`crowe paper kill --state-dir {self.dir}` once the directory is "
                        "writable")
        log_event(self.dir, {"event": "halted", "reason": reason})
        raise Halted(f"trading halted: {reason}; {recorded}") from None

    def check_redo(self, record: dict) -> dict:
        """The journaled record of the bar being redone, after checking that redoing it
        reproduced it exactly."""
        done = self.redo.pop(0)
        # the bar's data is checked through the decision; the feed may be a newer file
        expected = dict(record, prev=self.head, source=done.get("source"))
        if "keyid" in done:              # signed by the key of the run that journaled it
            expected["keyid"] = done["keyid"]
        expected["hash"] = record_hash(expected)
        if expected["hash"] != done.get("hash"):
            raise PaperError(f"bar {record['time']} was journaled before a crash but redoing it "
                             "gives a different record; the state directory is inconsistent")
        return done

    def working(self, carry: dict) -> list:
        """The working orders of `carry`, as journaled: [symbol, qty, limit or None]."""
        qty, limit = np.asarray(carry["qty"]), np.asarray(carry["limit"])
        return [[self.engine.symbols[i], float(qty[i]), finite(limit[i])]
                for i in np.flatnonzero(qty)]

    def record(self, bar: Bar, out: dict, carry: dict, control: dict, cancelled: list) -> dict:
        syms = self.engine.symbols
        orders = [[syms[i], float(out["order_qty"][i]), finite(out["limit_price"][i])]
                  for i in np.flatnonzero(out["order_qty"])]
        fills = [[syms[i], float(out["fill_qty"][i]), float(out["fill_price"][i]),
                  float(out["fill_cost"][i])] for i in np.flatnonzero(out["fill_qty"])]
        return {"seq": self.seq, "ts": int(bar.ts), "time": _iso(bar.ts),
                "artifact": self.digest, "trading_state": STATE_NAMES[int(out["trading_state"])],
                "override": control["override"], "equity": finite(out["equity"]),
                "cash": finite(out["cash"]), "gross": finite(out["gross"]),
                "net": finite(out["net"]), "cancelled": cancelled, "orders": orders,
                "fills": fills,
                "decision": decision_digest(out), "state": ck.state_digest(carry),
                "source": self.source}

    def status(self, record: dict, control: dict) -> dict:
        return {"bars_processed": self.seq, "last_bar_time": record["time"],
                "equity": record["equity"], "gross": record["gross"], "net": record["net"],
                "trading_state": record["trading_state"], "override": control["override"],
                "override_reason": control.get("reason", ""),
                "orders_this_bar": len(record["orders"]), "policy": self.engine.name,
                "version": self.engine.version, "artifact": self.digest,
                "refused": int(self.view.get("refused", 0)),
                "last_refusal": self.view.get("last_refusal"),
                "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def cancels(in_force: str | None, override: str) -> bool:
    """Whether the working orders are cancelled before this bar can fill them.

    They are on the bar where the override changes from the one in force at the previous bar
    (they were decided under the previous one: orders of the policy may add to positions when a
    kill arrives, flatten orders are stale when trading resumes), and on every bar while HALTED
    (nothing fills during a halt). Under an unchanged FLATTENING they are the step's orders
    toward zero and are left to fill. `in_force` is None for a checkpoint written before it was
    recorded: then the orders are cancelled under any override, as they were then.
    """
    if override == "HALTED":
        return True
    if in_force is None:
        return override != "ACTIVE"
    return override != in_force


def _iso(ns: int) -> str:
    return str(np.datetime64(int(ns), "ns"))[:19]
