"""Components: the pieces a compiled step is chained from, and the registries that list them.

A component is a pair of pure functions, as optax's ``GradientTransformation``::

    init(ctx) -> state
    update(inputs, state, ctx) -> (outputs, hits, state)

``inputs`` and ``outputs`` are dicts of arrays (``w`` the target weights ``[N]``, ``qty`` the
orders, ``fired`` a monitor's verdict, ...), ``hits`` maps a reason name (one of the entry's
``reasons``) to a boolean mask ``[N]`` of the instruments it changed, and ``state`` is a small
pytree of fixed-shape arrays that only this component reads. Components never allocate reason
bits: the step turns ``hits`` into flags. ``ctx`` is static (`Ctx`): the universe and the
policy-wide settings a component may read.

A registry entry (`Component`) says everything the language, the checker and the step need:
its name and slot, where its settings are written in a policy (``path``), the settings model,
the estimators it reads (``needs``, from which the checker derives lookbacks and the warm-up),
whether it acts per instrument, and the factory that makes its ``(init, update)`` pair from its
settings. The schema is generated from the registries: a setting without a component behind it
does not exist.

This module is pure data (no JAX), like the function registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

SLOTS = ("sizing", "portfolio", "overlay", "limit", "detector", "execution", "order_rule",
         "exit")


class Need(NamedTuple):
    """An estimator a component reads, computed by the compiled step from past bars only.

    ``vol``: the standard deviation of one-bar returns over ``window`` bars (``[N]``);
    ``history``: the last ``window`` one-bar returns (``[W, N]``, for VaR/ES and covariances);
    ``own``: nothing from the step, ``window`` past bars that the component keeps in its own
    state (a detector's trailing window): it counts toward the warm-up only.
    """

    series: str
    window: int
    lag: int = 0                     # read as of `lag` bars ago (kept in the component's state)

    @property
    def lookback(self) -> int:
        """Past bars read beyond the current one: `window` one-bar returns read `window` past
        closes, plus the lag."""
        return self.window + self.lag

    @property
    def key(self) -> str:
        return f"{self.series}{self.window}" if self.series == "vol" else self.series


class Ctx(NamedTuple):
    """What every component may read at trace time (static, hashable values)."""

    n: int                           # instruments
    bars_per_year: float
    horizon: int                     # forecast horizon in bars
    restricted: tuple[bool, ...]
    can_short: tuple[bool, ...]
    sector_ids: tuple[int, ...]
    n_sectors: int
    gross_max: float
    position_max: float
    sector_names: tuple[str, ...] = ()   # by sector id (the last: symbols without a sector)
    symbols: tuple[str, ...] = ()        # the universe's symbols, in the order of the arrays
    bar_seconds: int = 86_400        # the bar size, for components that read the calendar
    fractional: bool = False         # `execution.lot: fractional`: quantities are not rounded


class Transform(NamedTuple):
    init: Callable[[Ctx], Any]
    update: Callable[[dict, Any, Ctx], tuple[dict, dict, Any]]


def stateless(update: Callable[[dict, Ctx], tuple[dict, dict]]) -> Transform:
    """A component with no state of its own."""
    return Transform(lambda ctx: (), lambda inputs, state, ctx: (*update(inputs, ctx), state))


def chain(*named: tuple[str, Transform]) -> Transform:
    """Run transforms in order, each seeing the inputs updated by the outputs before it, with
    their states keyed by name; the hits of all are merged (or). Under `jit` a chain equals its
    parts run one by one."""

    def init(ctx):
        return {name: t.init(ctx) for name, t in named}

    def update(inputs, state, ctx):
        values, produced, hits, new = dict(inputs), set(), {}, {}
        for name, t in named:
            out, h, new[name] = t.update(values, state[name], ctx)
            values.update(out)
            produced.update(out)
            for reason, mask in h.items():
                hits[reason] = mask | hits[reason] if reason in hits else mask
        return {k: values[k] for k in produced}, hits, new

    return Transform(init, update)


def _no_needs(settings) -> tuple[Need, ...]:
    return ()


@dataclass(frozen=True)
class Component:
    """One registry entry."""

    name: str
    slot: str
    path: tuple[str, ...]            # where its settings are written, e.g. ("risk", "gross_max")
    settings: Any                    # a pydantic model or an annotated type
    factory: Callable[[Any], Transform]
    doc: str
    needs: Callable[[Any], tuple[Need, ...]] = _no_needs
    reasons: tuple[str, ...] = ()
    per_instrument: bool = True
    # a detector that reads the step's target chain: its inputs hold ``targets``, a pure
    # function ``(fields, ok) -> w`` of a bar's fields (``[N]`` each) and validity, and
    # ``prev_close``, the last valid close before this bar
    reads_targets: bool = False

    def __post_init__(self):
        if self.slot not in SLOTS:
            raise ValueError(f"unknown slot {self.slot!r}")


@dataclass
class Registry:
    """The components of one slot, in the order the step applies them."""

    slot: str
    entries: dict[str, Component] = field(default_factory=dict)

    def add(self, c: Component) -> Component:
        if c.slot != self.slot or c.name in self.entries:
            raise ValueError(f"cannot register {c.name!r} in {self.slot}")
        self.entries[c.name] = c
        return c

    def __getitem__(self, name: str) -> Component:
        return self.entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __iter__(self):
        return iter(self.entries.values())

    def names(self) -> list[str]:
        return list(self.entries)
