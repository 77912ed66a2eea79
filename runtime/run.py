"""What `crowe backtest` does, as functions the command line and the tests share."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crowe.dsl.diagnostics import render_text
from crowe.dsl.policy import CheckResult, UnreadableFile, check_path
from crowe.dsl.quantity import QuantityError, fraction

from .bundled import default_data
from .data import DataReport, load_bars


class RunError(Exception):
    """The run cannot start: the policy does not check, the data cannot serve it, a bad flag."""


@dataclass
class Prepared:
    check: CheckResult | None        # None for an artifact
    panel: object
    report: DataReport
    data_path: str


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
    panel, report, data = load_panel(symbols, data, start, end, "policy")
    return Prepared(check, panel, report, data)


def load_panel(symbols, data: str | None, start: str | None, end: str | None, whose: str):
    """The panel of `symbols` (or of every symbol in the file, for `from_data`): from `data`,
    or the bundled file that holds them all. Returns (panel, report, data path)."""
    if data is None:
        found = default_data(symbols)
        if found is None:
            raise RunError(f"no bundled data file holds every symbol of the {whose}'s universe; "
                           "pass one with --data")
        data = str(found)
    panel, report = load_bars(data, start=start, end=end)
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
    return panel, report, data


def parse_params(items: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise RunError(f"`--param {item}` is not NAME=VALUE")
        try:
            out[name.strip()] = fraction(value.strip())
        except QuantityError:
            raise RunError(f"`--param {item}`: `{value}` is not a number") from None
    return out


def default_out(policy_path: str) -> str:
    return str(Path("out") / Path(policy_path).stem)


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
    panel, report, data = load_panel(loaded.engine.symbols, data, start, end, "artifact")
    return Prepared(None, panel, report, data), loaded
