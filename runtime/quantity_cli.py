"""Durations given on the command line (`--max-gap 5d`)."""
from __future__ import annotations

from crowe.dsl.quantity import QuantityError, duration


class DurationError(ValueError):
    """A command-line duration that does not read as one."""


def parse_duration_ns(text: str | None) -> int | None:
    if text in (None, "", "none"):
        return None
    try:
        d = duration(text)
    except QuantityError as e:
        raise DurationError(f"`{text}`: {e}") from None
    if d.seconds is None:
        raise DurationError(f"`{text}` must be a duration such as `5d` or `2h`")
    return d.seconds * 10**9
