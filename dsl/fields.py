"""Setting types shared by the policy schema and the standard library's component settings.

Numbers that are fractions accept `0.05`, `5%` or `500bps`; each is range-checked so that a bare
`500` where `500%` was meant is caught with a hint. Windows and counts are bounded.
"""
from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from .quantity import (Duration, QuantityError, duration, fraction, to_float,
                       written_as_percent)


MAX_WINDOW = 10_000  # bars: the longest history any window, horizon or cooldown may span


def fail(kind: str, message: str, help: str | None = None) -> PydanticCustomError:
    return PydanticCustomError(kind, message, {"help": help} if help else {})


def frac(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False,
          what: str = "value"):
    """An annotated float accepting `0.05`, `5%`, `500bps`, range-checked with a hint."""

    def check(raw: Any) -> float:
        try:
            v = fraction(raw)
        except QuantityError as e:
            raise fail("quantity", str(e), e.help) from None
        below = v <= lo if lo_open else v < lo
        above = v >= hi if hi_open else v > hi
        if below or above:
            lo_s = f"{lo:g}" + (" (exclusive)" if lo_open else "")
            hi_s = f"{hi:g}" + (" (exclusive)" if hi_open else "")
            hint = None
            if not written_as_percent(raw) and lo <= v / 100 <= hi:
                hint = f"did you mean `{raw}%`? a bare number is a fraction: `1.5` means 150%"
            raise fail("range", f"{what} `{raw}` is out of range: it must lie between {lo_s} "
                        f"and {hi_s}", hint or f"use a value between {lo:g} and {hi:g}, or a "
                        "percentage such as `5%`")
        return v

    return Annotated[float, BeforeValidator(check)]


def _dur(raw: Any) -> Duration:
    try:
        return duration(raw)
    except QuantityError as e:
        raise fail("duration", str(e), e.help) from None


def positive_int(what: str, most: int = 2**53, unit: str = "", least: int = 1):
    """A count from `least` to `most` (by default the largest that a float64 holds exactly)."""
    def check(raw: Any) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise fail("int", f"{what} must be a whole number, found `{raw}`")
        if raw <= 0:
            raise fail("range", f"{what} must be positive, found `{raw}`")
        if raw < least:
            raise fail("range", f"{what} must be at least {least}, found `{raw}`",
                       f"a standard deviation needs at least {least} returns"
                       if least == 2 else None)
        if raw > most:
            raise fail("range", f"{what} must be at most {most:,}{unit}")
        return raw
    return Annotated[int, BeforeValidator(check)]


def window(what: str, least: int = 1):
    """A window in bars, bounded like the windows of expressions."""
    return positive_int(what, MAX_WINDOW, " bars", least)


def _money(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise fail("number", f"expected an amount such as `1e6`, found `{raw}`")
    amount = to_float(raw)
    if not 0 < amount < math.inf:
        raise fail("range", f"the amount must be positive and finite, found `{raw}`")
    return amount


def _expr(raw: Any) -> Any:
    # YAML reads `sigma: 0.02` or `always: true` as a number or a boolean, but both are
    # expressions too: the checker parses them from the text as written.
    if raw is None:
        raise fail("empty_expression", "empty expression",
                    "write an expression such as `ret(close, 1)`")
    if isinstance(raw, (bool, int, float)):
        return str(raw).lower() if isinstance(raw, bool) else repr(raw)
    return raw


Dur = Annotated[Duration, BeforeValidator(_dur)]
Money = Annotated[float, BeforeValidator(_money)]
Expr = Annotated[str, BeforeValidator(_expr)]
Fraction01 = frac(0.0, 1.0, lo_open=True)
Bps = frac(0.0, 0.05, what="cost")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


ActionText = Annotated[str, Field(min_length=1)]
