"""The sections of a policy file, as pydantic models.

Validation here covers structure and plain values (numbers, fractions, durations, enums); the
expressions inside (`features`, `signal`, `gates`, stand-down conditions) stay strings and are
parsed and typed by `dsl.check`. Every model forbids unknown keys, and every error is mapped back
to a file position by `dsl.policy`.

The sections that choose a component (`sizing`, `portfolio`, `execution`) are discriminated
unions over the standard library's registries, and `risk`, `stand_down` and the order rules of
`compliance` and `execution` are generated from them: every setting here has a component behind
it (`crowe.stdlib.components`).
"""
from __future__ import annotations

import re
import typing
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from crowe.stdlib import components as reg
from crowe.stdlib.detectors import condition

from .fields import MAX_WINDOW, Dur, Expr, Section, fail, frac  # noqa: F401  (re-exported)
from .quantity import Duration


# --------------------------------------------------------------------------------------------

class Universe(Section):
    """Which instruments trade, at which bar size, on which trading calendar."""

    symbols: Literal["from_data"] | list[str] = "from_data"
    bar: Dur = Duration(1, "d")
    sectors: dict[str, str] | None = None
    calendar: str | None = None      # an `exchange_calendars` name (the checker knows them)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v):
        if isinstance(v, list):
            if not v:
                raise fail("empty", "the universe lists no symbols",
                            "list at least one symbol, or write `symbols: from_data`")
            seen = set()
            for s in v:
                if s in seen:
                    raise fail("duplicate", f"symbol `{s}` is listed twice")
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
    cost: frac(0.0, 0.05, what="cost hurdle") = 0.0


def _tree(section: str) -> dict:
    """The settings of the components written under `section`, nested by their paths."""
    tree: dict = {}
    for path, c in reg.by_path().items():
        if path[0] != section:
            continue
        node = tree
        for part in path[1:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = c.settings
    return tree


def _model(name: str, tree: dict, base: type[BaseModel] = Section, doc: str | None = None):
    fields = {}
    for key, value in tree.items():
        tp = _model(f"{name}_{key}", value) if isinstance(value, dict) else value
        fields[key] = (typing.Optional[tp], None)
    return create_model(name, __base__=base, __doc__=doc or base.__doc__, **fields)


def _union(registry, tag: str, extra: dict | None = None):
    members = []
    for c in registry:
        model = c.settings
        if extra:
            model = _model(model.__name__ + "_" + c.name, extra, base=model)
        members.append(model)
    if len(members) == 1:
        return members[0]
    return Annotated[typing.Union[tuple(members)], Field(discriminator=tag)]


class Rules(BaseModel):
    """Stand-down rules by name: a built-in detector's name takes that detector's settings;
    any other name is a rule with a `when` condition."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    __pydantic_extra__: dict[str, condition.Settings] = Field(init=False)

    @classmethod
    def extra_model(cls):
        return condition.Settings

    def items(self):
        """(name, settings) of every rule: the built-in ones, then the others as written."""
        out = [(k, getattr(self, k)) for k in type(self).model_fields
               if getattr(self, k) is not None]
        return out + list((self.__pydantic_extra__ or {}).items())

    def keys(self):
        return [k for k, _ in self.items()]

    def __contains__(self, name) -> bool:
        return name in self.keys()

    def __getitem__(self, name):
        return dict(self.items())[name]

    def __len__(self) -> int:
        return len(self.items())


Sizing = _union(reg.SIZING, "method")
Portfolio = _union(reg.PORTFOLIO, "method")
Execution = _union(reg.EXECUTION, "algo", _tree("execution"))
Risk = _model("Risk", _tree("risk"), doc="Caps on the book and limits on its losses.")
StandDown = _model("StandDown", _tree("stand_down"), base=Rules)


class Shorting(Section):
    allowed: bool = True
    locate_required: bool = False
    locates: list[str] = []


class CompliancePolicy(Section):
    """Restricted symbols, shorting and locates, and the order size rules."""

    restricted: list[str] = []
    shorting: Shorting = Shorting()


Compliance = _model("Compliance", _tree("compliance"), base=CompliancePolicy)


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
    signal: typing.Optional[Signal] = None   # optional only with `sizing: {method: weight}`
    gates: dict[str, Expr] = {}
    sizing: typing.Optional[Sizing] = None
    portfolio: typing.Optional[Portfolio] = None
    risk: Risk
    execution: Execution
    stand_down: StandDown
    compliance: Compliance = Compliance()

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise fail("identifier", f"policy name `{v}` is not an identifier",
                        "use lowercase letters, digits and `_`, starting with a letter, "
                        "e.g. `cs_mom_v1`")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not _SEMVER.match(v):
            raise fail("semver", f"version `{v}` is not a semantic version",
                        "write three numbers such as `1.0.0`")
        return v

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        if not _OWNER.match(v):
            raise fail("owner", f"owner `{v}` is not a research pod id",
                        "write the pod id such as `CR-008`")
        return v


SECTIONS = tuple(PolicySpec.model_fields)
