"""Numbers as policy authors write them: `150%`, `3bps`, `1.5e6`, `0.55`, durations `20d`.

These read plain YAML values (not expressions) in sections such as `risk` and `execution`. Each
function raises `QuantityError` with a user-facing message; the schema turns it into a diagnostic
at the value's position.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(%|bps)?\s*$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}


class QuantityError(ValueError):
    """A value that does not read as the number or duration expected; `help` says what would."""

    def __init__(self, message: str, help: str | None = None) -> None:
        super().__init__(message)
        self.help = help


@dataclass(frozen=True, slots=True)
class Duration:
    """A length of time as written (`20d`); `seconds` is its length."""

    count: int
    unit: str

    @property
    def seconds(self) -> int | None:
        return None if self.unit == "bar" else self.count * SECONDS[self.unit]

    def bars(self, bar_seconds: int) -> int | None:
        """Whole bars this duration spans, or None when it is not a whole number of bars."""
        if self.unit == "bar":
            return self.count
        if bar_seconds <= 0 or self.seconds % bar_seconds:
            return None
        return self.seconds // bar_seconds

    def __str__(self) -> str:
        return f"{self.count} bars" if self.unit == "bar" else f"{self.count}{self.unit}"


def fraction(value: object) -> float:
    """A dimensionless number: `0.5`, `50%`, `3bps` -> 0.5, 0.5, 0.0003."""
    if isinstance(value, bool) or value is None:
        raise QuantityError("expected a number such as `0.5`, `50%` or `3bps`")
    if isinstance(value, (int, float)):
        out = to_float(value)
    elif isinstance(value, str):
        m = _NUMBER.match(value)
        if not m:
            raise QuantityError(f"`{value}` is not a number", "write e.g. `0.5`, `50%` or `3bps`")
        out = float(m.group(1)) * {None: 1.0, "%": 0.01, "bps": 1e-4}[m.group(2)]
    else:
        raise QuantityError("expected a number such as `0.5`, `50%` or `3bps`")
    if not math.isfinite(out):
        raise QuantityError("the number must be finite")
    return out


def to_float(value: int | float) -> float:
    """`value` as a float; an integer too large for one becomes infinite (and is reported so)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def written_as_percent(value: object) -> bool:
    return isinstance(value, str) and value.strip().endswith(("%", "bps"))


def duration(value: object) -> Duration:
    """A duration such as `20d`, `30m`, `1h`; a bare integer counts bars and is returned as
    a `Duration` with unit `bar`."""
    if isinstance(value, bool):
        raise QuantityError("expected a duration such as `5d` or a whole number of bars")
    if isinstance(value, int):
        if value <= 0:
            raise QuantityError("a duration must be positive")
        return Duration(value, "bar")
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            count = int(m.group(1))
            if count <= 0:
                raise QuantityError("a duration must be positive")
            return Duration(count, m.group(2))
    raise QuantityError(f"`{value}` is not a duration",
                        "write e.g. `5d`, `30m`, `1h` or a whole number of bars")

