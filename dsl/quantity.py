"""Numbers as policy authors write them: `150%`, `3bps`, `1.5e6`, `0.55`, durations `20d`.

These read plain YAML values (not expressions) in sections such as `risk` and `execution`. Each
function raises `QuantityError` with a user-facing message; the schema turns it into a diagnostic
at the value's position.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

# `[0-9]`, not `\d`: `\d`, `int()` and `float()` also read other scripts' digits (`1৪%` would be
# 14%, with a Bengali four that looks like an 8), so text with one is refused first.
_NUMBER = re.compile(
    r"^\s*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*(%|bps)?\s*$")
_DURATION = re.compile(r"^\s*([0-9]+)\s*(s|m|h|d|w)\s*$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}


class QuantityError(ValueError):
    """A value that does not read as the number or duration expected; `help` says what would."""

    def __init__(self, message: str, help: str | None = None) -> None:
        super().__init__(message)
        self.help = help


def foreign_digit(text: str) -> int | None:
    """The index of the first character of `text` that reads as a digit or number but is not
    one of the ASCII digits 0-9 (`৪`, `４`, `²`, `½`), or None."""
    for i, ch in enumerate(text):
        if ch > "\x7f" and ch.isnumeric():
            return i
    return None


def describe_char(ch: str) -> str:
    """`৪` (`U+09EA BENGALI DIGIT FOUR`)."""
    return f"`{ch}` (`U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed character')}`)"


def ascii_digits(text: str) -> str | None:
    """`text` with each non-ASCII decimal digit replaced by its ASCII digit, or None when a
    non-ASCII numeric character has no single digit value (`½`)."""
    out = []
    for ch in text:
        if ch > "\x7f" and ch.isnumeric():
            value = unicodedata.decimal(ch, None)
            if value is None:
                return None
            ch = str(value)
        out.append(ch)
    return "".join(out)


def foreign_digit_help(text: str) -> str:
    fixed = ascii_digits(text)
    return "numbers are written with the digits 0-9 only" + (
        f": write `{fixed}`" if fixed is not None else "")


def check_ascii_digits(text: str) -> None:
    """Raise `QuantityError` naming the first non-ASCII digit of `text` and its position."""
    i = foreign_digit(text)
    if i is not None:
        raise QuantityError(f"`{text}` has {describe_char(text[i])} at character {i + 1}, "
                            f"{NOT_ASCII_DIGIT}", foreign_digit_help(text))


NOT_ASCII_DIGIT = "which is not one of the digits 0-9"


@dataclass(frozen=True, slots=True)
class Duration:
    """A length of time as written (`20d`); `seconds` is its length."""

    count: int
    unit: str

    @property
    def seconds(self) -> int | None:
        return None if self.unit == "bar" else self.count * SECONDS[self.unit]

    def bars(self, bar_seconds: int) -> int | None:
        """Whole bars this duration spans, or None when it is not a whole number of bars. On
        a trading calendar (`bar_seconds` a `BarSize` with sessions) a day is one session
        and a week the calendar's sessions of a week: `1d` on hourly XNYS bars is 7 bars,
        `1w` on its daily bars 5."""
        if self.unit == "bar":
            return self.count
        per_session = getattr(bar_seconds, "session_bars", None)
        if per_session is not None and self.unit in ("d", "w") and bar_seconds <= 86_400:
            days = self.count * (bar_seconds.week_sessions if self.unit == "w" else 1)
            return days * per_session
        if bar_seconds <= 0 or self.seconds % bar_seconds:
            return None
        return self.seconds // bar_seconds

    def __str__(self) -> str:
        return f"{self.count} bars" if self.unit == "bar" else f"{self.count}{self.unit}"


class BarSize(int):
    """A bar size in seconds (an `int` wherever one is read) that also carries the sessions of
    the policy's trading calendar (`universe.calendar`), so that every duration converts
    through it: `session_bars` (the bars of a regular session: `1d`), `week_sessions` (`1w`)
    and `bars_per_year` (annualisation), all from the calendar."""

    calendar: str | None
    session_bars: int | None
    week_sessions: int
    bars_per_year: float | None

    def __new__(cls, seconds: int, calendar: str | None = None, session_bars: int | None = None,
                week_sessions: int = 7, bars_per_year: float | None = None) -> "BarSize":
        self = super().__new__(cls, seconds)
        self.calendar, self.session_bars = calendar, session_bars
        self.week_sessions, self.bars_per_year = week_sessions, bars_per_year
        return self

    def __reduce__(self):
        return (BarSize, (int(self), self.calendar, self.session_bars, self.week_sessions,
                          self.bars_per_year))


def fraction(value: object) -> float:
    """A dimensionless number: `0.5`, `50%`, `3bps` -> 0.5, 0.5, 0.0003."""
    if isinstance(value, bool) or value is None:
        raise QuantityError("expected a number such as `0.5`, `50%` or `3bps`")
    if isinstance(value, (int, float)):
        out = to_float(value)
    elif isinstance(value, str):
        check_ascii_digits(value)
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
        check_ascii_digits(value)
        m = _DURATION.match(value)
        if m:
            count = int(m.group(1))
            if count <= 0:
                raise QuantityError("a duration must be positive")
            return Duration(count, m.group(2))
    raise QuantityError(f"`{value}` is not a duration",
                        "write e.g. `5d`, `30m`, `1h` or a whole number of bars")

