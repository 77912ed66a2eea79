"""What `crowe backtest` does, as functions the command line and the tests share."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowe.dsl.diagnostics import render_text
from crowe.dsl.policy import CheckResult, UnreadableFile, check_path
from crowe.dsl.quantity import QuantityError, fraction

from .bundled import default_data
from .data import DataReport, bar_label, bar_spacing, load_bars, same_bar_size, to_ns


class RunError(Exception):
    """The run cannot start: the policy does not check, the data cannot serve it, a bad flag."""


@dataclass
class Prepared:
    check: CheckResult | None        # None for an artifact
    panel: object
    report: DataReport
    data_path: str
    start: int = 0                   # index of the first bar traded (--start); before: warm-up


def checked_policy(path: str) -> CheckResult:
    try:
        result = check_path(path)
    except UnreadableFile as e:
        raise RunError(str(e)) from None
    if not result.ok:
        text = "\n\n".join(render_text(d, result.source) for d in result.errors)
        raise RunError(f"`{path}` does not check:\n\n{text}")
    return result


def prepare(policy_path: str, data: str | None, start: str | None, end: str | None) -> Prepared:
    check = checked_policy(policy_path)
    symbols = check.policy.spec.universe.symbols
    panel, report, data, first = load_panel(symbols, data, start, end, "policy",
                                            check.policy.bar_seconds,
                                            check.policy.spec.universe.calendar)
    return Prepared(check, panel, report, data, first)


def load_panel(symbols, data: str | None, start: str | None, end: str | None, whose: str,
               bar_seconds: int, calendar: str | None = None):
    """The panel of `symbols` (or of every symbol in the file, for `from_data`): from `data`,
    or the bundled file that holds them all, from its first bar to `end`. The bars before
    `start` stay in the panel as warm-up. Returns (panel, report, data path, index of the
    first bar at or after `start`, 0 without one).

    Refuses data whose bar size (the median spacing of its timestamps) is not the policy's
    `universe.bar`: every annualisation, window and duration would silently be wrong; and,
    with a `calendar`, data with a bar outside the calendar's sessions."""
    if data is None:
        found = default_data(symbols, int(bar_seconds))
        if found is None:
            raise RunError(f"no bundled data file holds every symbol of the {whose}'s universe; "
                           "pass one with --data")
        data = str(found)
    panel, report = load_bars(data, end=end)
    if symbols != "from_data":
        missing = [s for s in symbols if s not in panel.symbols]
        if missing:
            raise RunError(f"`{data}` has no bars for {', '.join(f'`{s}`' for s in missing)}, "
                           f"which the {whose}'s universe lists; choose another --data file")
        panel = panel.select(symbols)
        if tuple(panel.symbols) != tuple(symbols) and whose == "artifact":
            raise RunError("the artifact's universe is not in the data's symbol order")
    if panel.T == 0:
        raise RunError(f"`{data}` has no bars in the chosen dates")
    check_bar_size(panel, data, whose, bar_seconds)
    check_sessions(panel, data, whose, bar_seconds, calendar)
    first = 0
    if start is not None:
        first = int(np.searchsorted(panel.ts, to_ns(start), side="left"))
        if first == panel.T:
            until = f" to --end {end}" if end is not None else ""
            raise RunError(f"`{data}` has no bars from --start {start}{until} (its bars end "
                           f"{report.last_ts}); choose an earlier --start")
    return panel, report, data, first


def check_bar_size(panel, data: str, whose: str, bar_seconds: int) -> None:
    spacing = bar_spacing(panel.ts)
    if spacing is None or same_bar_size(bar_seconds, spacing):
        return
    want, have = bar_label(bar_seconds), bar_label(spacing)
    fix = ("write `universe.bar: {have}` in the policy" if whose == "policy" else
           "compile the policy with `universe.bar: {have}`").format(have=have)
    raise RunError(f"the {whose} trades {want} bars but `{data}` has {have} bars (the median "
                   f"spacing of its timestamps): annualisation, windows and durations would "
                   f"all be wrong; use {want} bars (resample the data) or {fix}")


def check_sessions(panel, data: str, whose: str, bar_seconds: int, calendar: str | None) -> None:
    """Every bar inside a session of the calendar (`crowe.stdlib.sessions.clock`)."""
    if calendar is None:
        return
    from crowe.stdlib.sessions import SessionError, clock
    try:
        clock(calendar, panel.ts, int(bar_seconds))
    except SessionError as e:
        raise RunError(f"`{data}`: {e}; the {whose} trades on `universe.calendar: {calendar}` "
                       "(filter the bars to its sessions, or choose another calendar)") from None


def data_warnings(prep: Prepared, engine) -> list[str]:
    """What the user should know before a backtest runs: the data's problems (counts by kind,
    as `crowe data check` gives them), instruments whose orders cannot fill for lack of
    volume, and a warm-up that the bars before --start do not cover."""
    symbols = prep.panel.symbols
    out = []
    summary = prep.report.summary(symbols)
    if summary:
        out.append(summary)
    idle = [i for i in prep.report.issues if i.kind == "no_volume" and i.symbol in symbols]
    if idle:
        names = ", ".join(i.symbol for i in idle[:8]) + (", ..." if len(idle) > 8 else "")
        who = (f"all {len(idle)} instruments" if len(idle) == len(symbols) else
               f"{len(idle)} of {len(symbols)} instruments ({names})")
        cap = engine.cfg.participation_cap
        out.append(f"{who} have zero or missing volume on most bars: the market model fills at "
                   f"most {cap:.0%} of a bar's volume (execution.participation_cap), so their "
                   "orders will rarely or never fill")
    bars, warmup = prep.panel.T, engine.warmup
    if bars <= warmup:
        out.append(f"the data has {bars:,} bars, no more than the warm-up of {warmup}: the "
                   "policy cannot trade at all (use data with a longer history)")
    elif prep.start and prep.start < warmup:
        out.append(f"only {prep.start} bars before --start for a warm-up of {warmup}: the "
                   f"policy cannot trade its first {warmup - prep.start} bars from --start "
                   "(start later, or use data that begins earlier)")
    return out


def parse_params(items: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise RunError(f"`--param {item}` is not NAME=VALUE")
        try:
            out[name.strip()] = fraction(value.strip())
        except QuantityError as e:
            raise RunError(f"`--param {item}`: {e}" + (f"; {e.help}" if e.help else "")) \
                from None
    return out


def default_out(policy_path: str) -> str:
    return str(Path("out") / Path(policy_path).stem)


def usable_out_dir(path: str) -> str:
    """`path`, once it is known that a backtest can write its results there: a directory, or
    one that can be created, where this process may write. Checked before the run, so that a
    long backtest does not fail at its end; nothing is left behind by the check."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out `{path}` is a file, not a directory; choose a directory for the "
                       "results (it is created when it does not exist)")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunError(f"--out `{path}` cannot be created: `{existing}` is a file, not a "
                       "directory; choose another --out")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise RunError(f"--out `{path}`: cannot write in `{existing}` "
                       f"({e.strerror or type(e).__name__}); choose a directory you can write "
                       "to") from None
    return path


# -- artifacts ----------------------------------------------------------------------------------

def is_artifact(path: str) -> bool:
    """An artifact by name (`.cpol`) or by content (a zip container; sources are text)."""
    if path.endswith(".cpol"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def prepare_artifact(path: str, data: str | None, start: str | None, end: str | None,
                     trust_dir: str | None, cash: float):
    """Verify the artifact for stage sim, load its engine, and the panel of exactly its
    symbols: from `data`, or the bundled file that holds them all."""
    from .artifact import load_artifact
    loaded = load_artifact(path, trust_dir=trust_dir, stage="sim", cash=cash)
    bar_seconds = loaded.verified.manifest["universe"].get("bar_seconds")
    if not isinstance(bar_seconds, int) or isinstance(bar_seconds, bool) or bar_seconds <= 0:
        raise RunError(f"`{path}`: its manifest records no bar size (universe.bar_seconds); "
                       "compile the policy again with this version of crowe-compile")
    panel, report, data, first = load_panel(loaded.engine.symbols, data, start, end,
                                            "artifact", bar_seconds, loaded.engine.calendar)
    return Prepared(None, panel, report, data, first), loaded
