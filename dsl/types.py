"""The static types of policy expressions: kind, dtype and unit.

* kind: when a value is known. A `CONST` is fixed at compile time, a `PARAM` per run (a sweep
  axis), a `SCALAR` per bar (one number for the whole universe), a `SERIES` per bar and per
  instrument (a cross-section). Combining values takes the larger kind.
* dtype: `BOOL < INT < FLOAT`.
* unit: exponents over the base dimensions price, shares and bars. Currency is price x shares,
  so `close * volume` is currency and `close / close` is dimensionless. A bare number or a
  parameter has no unit of its own (`unit is None`): it takes the unit of what it is compared
  with or added to, so `close > 10` and `mean(close * volume, 20) > 5e6` read naturally, while
  `close + ret(close, 1)` is still an error.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction


class Kind(enum.IntEnum):
    CONST = 0
    PARAM = 1
    SCALAR = 2
    SERIES = 3

    @property
    def label(self) -> str:
        return {0: "constant", 1: "parameter", 2: "per-bar scalar", 3: "per-bar cross-section"}[
            self.value]


class DType(enum.IntEnum):
    BOOL = 0
    INT = 1
    FLOAT = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Unit:
    price: Fraction = Fraction(0)
    shares: Fraction = Fraction(0)
    bars: Fraction = Fraction(0)

    def __mul__(self, other: "Unit") -> "Unit":
        return Unit(self.price + other.price, self.shares + other.shares, self.bars + other.bars)

    def __truediv__(self, other: "Unit") -> "Unit":
        return Unit(self.price - other.price, self.shares - other.shares, self.bars - other.bars)

    def __pow__(self, k) -> "Unit":
        k = Fraction(k)
        return Unit(self.price * k, self.shares * k, self.bars * k)

    @property
    def is_dimensionless(self) -> bool:
        return self == DIMENSIONLESS

    def __str__(self) -> str:
        named = {DIMENSIONLESS: "dimensionless", PRICE: "price", SHARES: "shares",
                 CURRENCY: "currency", BARS: "bars"}
        if self in named:
            return named[self]
        parts = []
        for name, exp in (("price", self.price), ("shares", self.shares), ("bars", self.bars)):
            if exp == 1:
                parts.append(name)
            elif exp:
                # `x ^ 0.3` gives 5404319552844595/18014398509481984: show that as 0.3
                parts.append(f"{name}^{exp if exp.denominator <= 12 else f'{float(exp):.6g}'}")
        return " * ".join(parts)


DIMENSIONLESS = Unit()
PRICE = Unit(price=Fraction(1))
SHARES = Unit(shares=Fraction(1))
CURRENCY = Unit(price=Fraction(1), shares=Fraction(1))
BARS = Unit(bars=Fraction(1))


@dataclass(frozen=True, slots=True)
class Type:
    kind: Kind
    dtype: DType
    unit: Unit | None = DIMENSIONLESS

    def __str__(self) -> str:
        unit = "" if self.dtype is DType.BOOL or self.unit is None else f" {self.unit}"
        return f"{self.kind.label} {self.dtype.label}{unit}".strip()

    @property
    def is_numeric(self) -> bool:
        return self.dtype is not DType.BOOL


def join_kind(*types: Type) -> Kind:
    return max((t.kind for t in types), default=Kind.CONST)


def join_dtype(*types: Type) -> DType:
    return max((t.dtype for t in types), default=DType.INT)


FLOAT_SERIES = Type(Kind.SERIES, DType.FLOAT)
BOOL_SERIES = Type(Kind.SERIES, DType.BOOL)
