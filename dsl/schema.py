"""The sections of a policy file, as pydantic models.

Validation here covers structure and plain values (numbers, fractions, durations, enums); the
expressions inside (`features`, `signal`, `gates`, stand-down conditions) stay strings and are
parsed and typed by `dsl.check`. Every model forbids unknown keys, and every error is mapped back
to a file position by `dsl.policy`.

Numbers that are fractions accept `0.05`, `5%` or `500bps`; each is range-checked so that a bare
`500` where `500%` was meant is caught with a hint.
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from .quantity import (Duration, QuantityError, duration, fraction, to_float,
                       written_as_percent)


MAX_WINDOW = 10_000  # bars: the longest history any window, horizon or cooldown may span


def _fail(kind: str, message: str, help: str | None = None) -> PydanticCustomError:
    return PydanticCustomError(kind, message, {"help": help} if help else {})


def _frac(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False,
          what: str = "value"):
    """An annotated float accepting `0.05`, `5%`, `500bps`, range-checked with a hint."""

    def check(raw: Any) -> float:
        try:
            v = fraction(raw)
        except QuantityError as e:
            raise _fail("quantity", str(e), e.help) from None
        below = v <= lo if lo_open else v < lo
        above = v >= hi if hi_open else v > hi
        if below or above:
            lo_s = f"{lo:g}" + (" (exclusive)" if lo_open else "")
            hi_s = f"{hi:g}" + (" (exclusive)" if hi_open else "")
            hint = None
            if not written_as_percent(raw) and lo <= v / 100 <= hi:
                hint = f"did you mean `{raw}%`? a bare number is a fraction: `1.5` means 150%"
            raise _fail("range", f"{what} `{raw}` is out of range: it must lie between {lo_s} "
                        f"and {hi_s}", hint or f"use a value between {lo:g} and {hi:g}, or a "
                        "percentage such as `5%`")
        return v

    return Annotated[float, BeforeValidator(check)]


def _dur(raw: Any) -> Duration:
    try:
        return duration(raw)
    except QuantityError as e:
        raise _fail("duration", str(e), e.help) from None


def _positive_int(what: str, most: int = 2**53, unit: str = ""):
    """A count from 1 to `most` (by default the largest that a float64 holds exactly)."""
    def check(raw: Any) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _fail("int", f"{what} must be a whole number, found `{raw}`")
        if raw <= 0:
            raise _fail("range", f"{what} must be positive, found `{raw}`")
        if raw > most:
            raise _fail("range", f"{what} must be at most {most:,}{unit}")
        return raw
    return Annotated[int, BeforeValidator(check)]


def _window(what: str):
    """A window in bars, bounded like the windows of expressions."""
    return _positive_int(what, MAX_WINDOW, " bars")


def _money(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise _fail("number", f"expected an amount such as `1e6`, found `{raw}`")
    amount = to_float(raw)
    if not 0 < amount < math.inf:
        raise _fail("range", f"the amount must be positive and finite, found `{raw}`")
    return amount


def _expr(raw: Any) -> Any:
    # YAML reads `sigma: 0.02` or `always: true` as a number or a boolean, but both are
    # expressions too: the checker parses them from the text as written.
    if raw is None:
        raise _fail("empty_expression", "empty expression",
                    "write an expression such as `ret(close, 1)`")
    if isinstance(raw, (bool, int, float)):
        return str(raw).lower() if isinstance(raw, bool) else repr(raw)
    return raw


Dur = Annotated[Duration, BeforeValidator(_dur)]
Money = Annotated[float, BeforeValidator(_money)]
Expr = Annotated[str, BeforeValidator(_expr)]
Fraction01 = _frac(0.0, 1.0, lo_open=True)
Bps = _frac(0.0, 0.05, what="cost")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --------------------------------------------------------------------------------------------

class Universe(Section):
    """Which instruments trade, at which bar size."""

    symbols: Literal["from_data"] | list[str] = "from_data"
    name: str | None = None
    bar: Dur = Duration(1, "d")
    calendar: str | None = None
    sectors: dict[str, str] | None = None

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v):
        if isinstance(v, list):
            if not v:
                raise _fail("empty", "the universe lists no symbols",
                            "list at least one symbol, or write `symbols: from_data`")
            seen = set()
            for s in v:
                if s in seen:
                    raise _fail("duplicate", f"symbol `{s}` is listed twice")
                seen.add(s)
        return v


class Param(Section):
    """A tunable constant: a default and the range a sweep may explore."""

    default: int | float | str
    range: Annotated[list[int | float | str], Field(min_length=2, max_length=2)]
    doc: str | None = None


class Signal(Section):
    """The forecast: expected return `mu` over `horizon` and its predictive std `sigma`."""

    horizon: Dur = Duration(1, "d")
    mu: Expr
    sigma: Expr
    cost: _frac(0.0, 0.05, what="cost hurdle") = 0.0


class Sizing(Section):
    method: Literal["kelly_tempered", "vol_target", "equal", "inverse_vol"]
    lambda_: Fraction01 | None = Field(default=None, alias="lambda")
    vol_target: _frac(0.0, 2.0, lo_open=True, what="volatility target") | None = None
    vol_window: _window("`vol_window`") = 63
    budget: _frac(0.0, 10.0, lo_open=True, what="budget") | None = None
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _by_method(self):
        if self.method == "kelly_tempered" and self.lambda_ is None:
            raise _fail("missing_lambda", "`kelly_tempered` sizing needs `lambda`",
                        "add e.g. `lambda: 0.3` (the fraction of full Kelly, in (0, 1])")
        if self.method == "vol_target" and self.vol_target is None:
            raise _fail("missing_vol_target", "`vol_target` sizing needs `vol_target`",
                        "add e.g. `vol_target: 10%` (annualised)")
        return self


class Covariance(Section):
    estimator: Literal["ledoit_wolf", "sample"] = "ledoit_wolf"
    window: _window("`window`") = 126


class Portfolio(Section):
    method: Literal["mean_variance", "hrp", "risk_parity"]
    risk_aversion: _frac(0.0, 1e6, lo_open=True, what="risk aversion") = 1.0
    turnover_penalty: _frac(0.0, 1.0, what="turnover penalty") = 0.0
    l1_penalty: _frac(0.0, 1.0, what="L1 penalty") = 0.0
    long_only: bool = False
    covariance: Covariance = Covariance()
    iterations: _positive_int("`iterations`") = 100


ActionText = Annotated[str, Field(min_length=1)]


class Limit(Section):
    """A drawdown-style limit with what to do when it is breached."""

    max: _frac(0.0, 1.0, lo_open=True, hi_open=True, what="limit")
    action: ActionText
    cooldown: Dur | None = None


class Drawdown(Section):
    intraday: Limit | None = None
    from_peak: Limit | None = None


class VaR(Section):
    confidence: _frac(0.5, 1.0, lo_open=True, hi_open=True, what="confidence")
    window: _window("`window`")
    max: _frac(0.0, 1.0, lo_open=True, hi_open=True, what="limit")
    method: Literal["historical", "parametric"] = "historical"


class TrailingStop(Section):
    """Portfolio trailing stop with a volatility-adaptive band: it fires when equity falls below
    its trailing peak by more than `multiple` x sd x sqrt(`window`), where sd is the standard
    deviation of the equity's one-bar returns over the last `window` bars (so the band is
    `multiple` typical moves of the equity over the window)."""

    multiple: _frac(0.0, 100.0, lo_open=True, what="multiple")
    window: _window("`window`") = 20
    action: ActionText = "flatten"
    cooldown: Dur | None = None


class Risk(Section):
    gross_max: _frac(0.0, 10.0, lo_open=True, what="gross limit") | None = None
    net_max: _frac(0.0, 10.0, what="net limit") | None = None
    position_max: _frac(0.0, 1.0, lo_open=True, what="position limit") | None = None
    sector_max: _frac(0.0, 10.0, lo_open=True, what="sector limit") | None = None
    var: VaR | None = None
    es: VaR | None = None
    drawdown: Drawdown | None = None
    trailing_stop: TrailingStop | None = None


class Costs(Section):
    commission: Bps = 1e-4
    half_spread: Bps = 2e-4
    impact: _frac(0.0, 10.0, what="impact coefficient") = 0.1
    borrow: _frac(0.0, 1.0, what="borrow rate") = 0.005


class Execution(Section):
    algo: Literal["market", "twap", "vwap", "pov", "is", "limit_ladder"]
    participation_cap: _frac(0.0, 1.0, lo_open=True, what="participation cap") = 0.1
    limit_offset: _frac(0.0, 0.1, what="limit offset") | None = None
    price: Literal["open", "vwap"] | None = None
    remainder: Literal["cancel", "carry"] = "cancel"
    max_orders_per_bar: _positive_int("`max_orders_per_bar`") | None = None
    max_orders_per_minute: _positive_int("`max_orders_per_minute`") | None = None
    costs: Costs = Costs()


class Rule(Section):
    """A stand-down rule. Built-in rules (`data_gap`, `vol_spike`, `loss_streak`) take their own
    settings; any other rule is written as a `when` condition."""

    when: Expr | None = None
    action: ActionText
    cooldown: Dur | None = None
    max_missing: _frac(0.0, 1.0, hi_open=True, what="missing share") | None = None
    sigma: _frac(0.0, 100.0, lo_open=True, what="spike threshold") | None = None
    window: _window("`window`") | None = None
    losses: _positive_int("`losses`") | None = None


class Shorting(Section):
    allowed: bool = True
    locate_required: bool = False
    locates: list[str] = []


class Compliance(Section):
    restricted: list[str] = []
    shorting: Shorting = Shorting()
    max_order_shares: _positive_int("`max_order_shares`") | None = None
    max_order_notional: Money | None = None
    wash_trade_prevention: bool = True


_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
_OWNER = re.compile(r"^CR-\d{3}$")


class PolicySpec(Section):
    """A whole policy file."""

    policy: str
    version: str
    owner: str
    description: str | None = None
    universe: Universe = Universe()
    params: dict[str, Param] = {}
    features: dict[str, Expr] = {}
    signal: Signal
    gates: dict[str, Expr] = {}
    sizing: Sizing
    portfolio: Portfolio | None = None
    risk: Risk
    execution: Execution
    stand_down: dict[str, Rule]
    compliance: Compliance = Compliance()

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise _fail("identifier", f"policy name `{v}` is not an identifier",
                        "use lowercase letters, digits and `_`, starting with a letter, "
                        "e.g. `cs_mom_v1`")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not _SEMVER.match(v):
            raise _fail("semver", f"version `{v}` is not a semantic version",
                        "write three numbers such as `1.0.0`")
        return v

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        if not _OWNER.match(v):
            raise _fail("owner", f"owner `{v}` is not a research pod id",
                        "write the pod id such as `CR-008`")
        return v


SECTIONS = tuple(PolicySpec.model_fields)
