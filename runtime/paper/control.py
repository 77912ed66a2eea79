"""The operator's controls and view, as small files in the state directory.

`control.json` holds the override (the kill switch): `HALTED` (cancel working orders, send no
new ones, keep the positions as they are) or `FLATTENING` (cancel the working orders once, then
send orders toward zero every bar, for whatever is left, until every position is zero). It
survives restarts until `crowe paper resume` clears it. `status.json` is rewritten after every
bar for `crowe paper status`. Both are written atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

from crowe.stdlib.states import STATES

from .checkpoint import atomic_write

CONTROL, STATUS, EVENTS = "control.json", "status.json", "events.jsonl"
OVERRIDES = {name: STATES.index(name) for name in ("ACTIVE", "HALTED", "FLATTENING")}


def read_control(state_dir: Path) -> dict:
    path = Path(state_dir) / CONTROL
    if not path.exists():
        return {"override": "ACTIVE", "reason": ""}
    try:
        data = json.loads(path.read_text())
        if data.get("override") in OVERRIDES:
            return data
    except (OSError, ValueError):
        pass
    # an unreadable control file must not mean "trade": fail closed
    return {"override": "HALTED", "reason": f"`{path}` is unreadable"}


def write_control(state_dir: Path, override: str, reason: str) -> None:
    data = json.dumps({"override": override, "reason": reason}, sort_keys=True).encode()
    atomic_write(Path(state_dir) / CONTROL, data)


def read_status(state_dir: Path) -> dict | None:
    path = Path(state_dir) / STATUS
    if not path.exists():
        return None
    return json.loads(path.read_text())


def write_status(state_dir: Path, status: dict) -> None:
    # a view for operators, rebuilt every bar: atomic, but not worth a disk flush
    atomic_write(Path(state_dir) / STATUS, json.dumps(status, sort_keys=True, indent=2).encode(),
                 durable=False)


def log_event(state_dir: Path, event: dict) -> None:
    """Append to the event log (refused bars, halts); best effort, never raises."""
    try:
        with open(Path(state_dir) / EVENTS, "a") as f:
            f.write(json.dumps(event, sort_keys=True) + "\n")
    except OSError:
        pass
