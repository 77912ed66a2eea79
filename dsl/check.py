"""The type checker: names, kinds, dtypes, units, windows, lookbacks and the safety rules.

Input: the validated `PolicySpec` and the YAML node tree (for positions). Output: a
`CheckedPolicy` with every expression parsed and typed, or diagnostics. The checker never stops at
the first problem: an expression that fails to type yields `None`, and everything built on it is
skipped quietly so that one mistake is reported once.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from crowe.stdlib import components as reg
from crowe.stdlib.components import IMPACT_WINDOW
from crowe.stdlib.component import Component, Need
from crowe.stdlib.registry import (ACTIONS, BAR_FIELDS, FUNCTIONS, HOLDINGS, SIGNAL_NAMES,
                                   Signature)

from . import ast as A
from .diagnostics import Diagnostics, Label, closest_names, suggestion
from .expr import format_expr, parse_expr, span_in
from .portfolio_check import check_constraints, check_stress, exposure_features
from .quantity import BarSize, Duration, QuantityError, fraction
from .schema import MAX_WINDOW, PolicySpec
from .source import SourceFile, Span
from .types import (BARS, DIMENSIONLESS, PRICE, SHARES, DType, Kind, Type, Unit)
from .yamlload import MapNode, Node, ScalarNode, SeqNode, document_start

_BAR_UNITS = {"price": PRICE, "shares": SHARES}
# A name in an expression's text: not part of a number (`1e6`, `20d`), not a keyword argument.
_MENTION = re.compile(r"(?<![\w.])[A-Za-z_]\w*\b(?!\s*=(?!=))")


@dataclass(frozen=True)
class ParamInfo:
    name: str
    dtype: DType
    default: float
    lo: float
    hi: float
    span: Span
    doc: str | None = None


@dataclass(frozen=True)
class Action:
    kind: str                 # exclude | halt | flatten | reduce
    amount: float | None      # for reduce: the fraction of exposure removed
    span: Span

    def __str__(self) -> str:
        return f"reduce({self.amount:.0%})" if self.kind == "reduce" else self.kind


@dataclass
class RuleInfo:
    """A limit or stand-down rule that checked clean: its component, settings and action."""

    name: str
    when: A.Expr | None
    action: Action
    cooldown: int             # bars
    settings: object          # the component's settings model
    span: Span
    component: Component | None = None
    per_instrument: bool = False
    series: A.Expr | None = None  # the series a detector reads (its `series` setting)


@dataclass
class CheckedPolicy:
    """A policy that checked clean: everything the compiler needs, typed."""

    source: SourceFile
    spec: PolicySpec
    bar_seconds: int
    params: dict[str, ParamInfo]
    features: dict[str, A.Expr]          # in dependency order
    signal: dict[str, A.Expr]            # mu, sigma
    gates: dict[str, A.Expr]
    rules: dict[str, RuleInfo]           # stand-down rules, in the order written
    limits: dict[str, RuleInfo]          # portfolio limits, in registry order
    horizon: int                         # bars
    types: dict[A.Expr, Type] = field(repr=False)
    lookbacks: dict[str, int] = field(default_factory=dict)      # at parameter defaults
    max_lookbacks: dict[str, int] = field(default_factory=dict)  # at parameter range maxima
    warmup: int = 0
    max_warmup: int = 0
    sizing_weight: A.Expr | None = None  # the expression of `sizing: {method: weight}`


class Checker:
    SUGGESTION_BUDGET = 100_000
    def __init__(self, source: SourceFile, root: MapNode, spec: PolicySpec,
                 diags: Diagnostics) -> None:
        self.src, self.root, self.spec, self.diags = source, root, spec, diags
        # did-you-mean compares a word with every candidate: a budget of comparisons per check
        # keeps a file of thousands of misspelt names linear (later ones get no suggestion)
        self.suggestion_budget = self.SUGGESTION_BUDGET
        self.types: dict[A.Expr, Type] = {}
        self.lb: dict[A.Expr, tuple[int, int]] = {}
        self.params: dict[str, ParamInfo] = {}
        self.feature_src: dict[str, A.Expr] = {}
        self.feature_types: dict[str, Type | None] = {}
        self.feature_lb: dict[str, tuple[int, int]] = {}
        self.order: list[str] = []
        self.bar_seconds = 86400

    # -- positions ------------------------------------------------------------------------

    def node(self, *path) -> Node | None:
        n: Node | None = self.root
        for key in path:
            if isinstance(n, MapNode):
                n = n.get(key)
            elif isinstance(n, SeqNode) and isinstance(key, int) and 0 <= key < len(n.items):
                n = n.items[key]
            else:
                return None
        return n

    def key_span(self, *path) -> Span:
        parent = self.node(*path[:-1])
        if isinstance(parent, MapNode) and (found := parent.entry(path[-1])) is not None:
            return found[0].span
        n = self.node(*path)
        return n.span if n is not None else document_start(self.root, self.src)

    def span(self, *path) -> Span:
        n = self.node(*path)
        if n is not None:
            return n.span
        for i in range(len(path) - 1, 0, -1):
            if self.node(*path[:i]) is not None:
                return self.key_span(*path[:i])
        return document_start(self.root, self.src)

    def declared(self, section: str) -> list[str]:
        n = self.node(section)
        return n.keys() if isinstance(n, MapNode) else []

    def is_declared(self, name: str, section: str) -> bool:
        """Whether `section` has an entry `name` (an indexed lookup, not a scan)."""
        n = self.node(section)
        return isinstance(n, MapNode) and n.entry(name) is not None

    def quiet_parse(self, *path) -> A.Expr | None:
        """The expression at a path, its syntax errors left to the check that reports them."""
        diags, self.diags = self.diags, Diagnostics()
        try:
            return self.parse(*path)
        finally:
            self.diags = diags

    def parse(self, *path) -> A.Expr | None:
        n = self.node(*path)
        if not isinstance(n, ScalarNode) or n.value is None:
            return None
        if n.text_offset is not None:
            spanner = span_in(self.src, n.text_offset)
        else:
            spanner = lambda a, b, s=n.span: s  # noqa: E731
        text = n.value if isinstance(n.value, str) else n.raw  # `0.02`, `true`: as written
        return parse_expr(text, spanner, self.diags)

    # -- the whole policy -----------------------------------------------------------------

    def run(self) -> CheckedPolicy | None:
        self.check_bar()
        self.check_params()
        self.check_features()
        signal = self.check_signal()
        gates = self.check_gates()
        weight = self.check_weight()
        rules = self.check_rules()
        limits = self.check_risk()
        self.check_targets()
        check_constraints(self)
        check_stress(self)
        self.check_compliance()
        self.check_execution()
        self.check_unused()
        if self.diags.has_errors:
            return None
        horizon = (self.spec.signal.horizon.bars(self.bar_seconds) or 1) \
            if self.spec.signal is not None else 1
        lookbacks = {f"feature {k}": self.feature_lb[k][0] for k in self.order}
        maxes = {f"feature {k}": self.feature_lb[k][1] for k in self.order}
        roots = [("signal " + k, e) for k, e in signal.items()]
        roots += [("gate " + k, e) for k, e in gates.items()]
        roots += [("rule " + k, r.when) for k, r in rules.items() if r.when is not None]
        roots += [("sizing weight", weight)] if weight is not None else []
        roots += [("series " + k, r.series) for k, r in rules.items() if r.series is not None]
        roots += [("exposure " + k, self.feature_src[k]) for k in exposure_features(self.spec)]
        for label, e in roots:
            lookbacks[label], maxes[label] = self.lb.get(e, (0, 0))
        extra = self.builtin_lookbacks()
        warm = max([lb for k, lb in lookbacks.items() if not k.startswith("feature")] + extra)
        wmax = max([lb for k, lb in maxes.items() if not k.startswith("feature")] + extra)
        return CheckedPolicy(
            self.src, self.spec, self.bar_seconds, self.params,
            {k: self.feature_src[k] for k in self.order}, signal, gates, rules, limits,
            horizon, self.types, lookbacks, maxes, warm, wmax, weight)

    def builtin_lookbacks(self) -> list[int]:
        """The lookbacks of the components' estimators, and of the market model's (one-bar
        returns and average volume over `IMPACT_WINDOW` bars, for the impact estimate)."""
        return [IMPACT_WINDOW] + [n.lookback for n in needs(self.spec)]

    # -- universe and params --------------------------------------------------------------

    def check_bar(self) -> None:
        if self.spec.universe is None:
            return
        bar = self.spec.universe.bar
        if bar.seconds is None:
            self.diags.add("E0304", "the bar size must be a duration",
                           self.span("universe", "bar"),
                           help="write e.g. `bar: 1d`, `bar: 1h` or `bar: 5m`")
            return
        self.bar_seconds = bar.seconds
        if self.spec.universe.calendar is not None:
            self.check_calendar(self.spec.universe.calendar)

    def check_calendar(self, name: str) -> None:
        """A calendar of `exchange_calendars`; the bar size then converts days and weeks to
        sessions and annualises by the calendar's bars a year (`crowe.stdlib.sessions`)."""
        from crowe.stdlib import sessions
        if name not in sessions.names():
            near = self.suggest(name, sessions.names)
            self.diags.add("E0305", f"`{name}` is not a trading calendar",
                           self.span("universe", "calendar"),
                           help=(f"{near} " if near else "") + "write an `exchange_calendars` name such as `XNYS` (New York), "
                           "`XLON` or `XTKS`, or remove it for UTC calendar days")
            return
        try:
            r = sessions.regular(name, self.bar_seconds)
        except sessions.SessionError as e:
            self.diags.add("E0305", f"`{name}` cannot be used as a trading calendar",
                           self.span("universe", "calendar"),
                           help=f"{e}; choose another calendar")
            return
        self.bar_seconds = BarSize(self.bar_seconds, name, r.session_bars, r.week_sessions,
                                   r.bars_per_year)

    def check_params(self) -> None:
        for name, p in (self.spec.params or {}).items():
            span = self.key_span("params", name)
            if name in BAR_FIELDS or name in FUNCTIONS or name in SIGNAL_NAMES or \
                    name in HOLDINGS:
                self.diags.add("E0404", f"parameter `{name}` shadows a built-in name", span,
                               help="rename the parameter")
                continue
            info = self.param_info(name, p, span)
            if info is not None:
                self.params[name] = info

    def param_info(self, name: str, p, span: Span) -> ParamInfo | None:
        values = []
        for i, raw in enumerate((p.default, p.range[0], p.range[1])):
            path = ("params", name, "default") if i == 0 else ("params", name, "range", i - 1)
            try:
                values.append(fraction(raw))
            except QuantityError as e:
                self.diags.add("E0304", str(e), self.span(*path), help=e.help)
                return None
        d, lo, hi = values
        is_int = all(isinstance(v, int) and not isinstance(v, bool)
                     for v in (p.default, *p.range))
        if not lo < hi:
            self.diags.add("E0320", f"the range of `{name}` is empty: `{p.range[0]}` is not "
                           f"below `{p.range[1]}`", self.span("params", name, "range"),
                           help="write the range as `[low, high]`")
            return None
        if not lo <= d <= hi:
            self.diags.add("E0320", f"the default of `{name}` lies outside its range",
                           self.span("params", name, "default"),
                           help=f"choose a default between {p.range[0]} and {p.range[1]}")
            return None
        return ParamInfo(name, DType.INT if is_int else DType.FLOAT, d, lo, hi, span, p.doc)

    # -- features -------------------------------------------------------------------------

    def check_features(self) -> None:
        for name in self.spec.features or {}:
            span = self.key_span("features", name)
            taken = ("a bar field" if name in BAR_FIELDS else "a parameter" if name in
                     self.params else "a function" if name in FUNCTIONS else "a signal name"
                     if name in SIGNAL_NAMES else "a view of the book" if name in HOLDINGS
                     else None)
            if taken:
                self.diags.add("E0404", f"feature `{name}` has the name of {taken}", span,
                               help="rename the feature")
                continue
            e = self.parse("features", name)
            if e is not None:
                self.feature_src[name] = e
        for name in list(self.feature_src):
            self.type_feature(name, [])

    def type_feature(self, name: str, stack: list[str]) -> Type | None:
        if name in self.feature_types:
            return self.feature_types[name]
        if name in stack:
            cycle = stack[stack.index(name):] + [name]
            self.diags.add("E0403", "features depend on each other in a cycle: "
                           + " -> ".join(f"`{c}`" for c in cycle),
                           self.key_span("features", name),
                           help="a feature cannot use itself; use `lag(...)` for past values")
            for c in cycle:
                self.feature_types.setdefault(c, None)
            return None
        stack.append(name)
        e = self.feature_src[name]
        t = self.infer(e, "features", stack)
        stack.pop()
        if name not in self.feature_types:
            self.feature_types[name] = t
            self.feature_lb[name] = self.lb.get(e, (0, 0))
            if t is not None:
                self.order.append(name)
        return self.feature_types[name]

    # -- signal, gates, rules -------------------------------------------------------------

    def check_signal(self) -> dict[str, A.Expr]:
        out = {}
        if self.spec.signal is None:
            if self.node("signal") is None and \
                    getattr(self.spec.sizing, "method", None) != "weight":
                self.diags.add("E0302", "missing section `signal`", self.src.whole_file(),
                               help="add `signal:` with `mu` (expected return) and `sigma` "
                               "(its predictive std), or give the target weights directly "
                               "with `sizing: {method: weight, weight: ...}`")
            return out
        for key in ("mu", "sigma"):
            e = self.parse("signal", key)
            t = self.infer(e, "signal") if e is not None else None
            if t is None:
                continue
            if not t.is_numeric:
                self.diags.add("E0509", f"`{key}` must be a number, found a boolean", e.span,
                               help=f"`{key}` is the {'expected return' if key == 'mu' else 'predictive standard deviation'} of each instrument")
                continue
            if t.unit is not None and not t.unit.is_dimensionless:
                self.diags.add("E0603", f"`{key}` must be a dimensionless return, found {t.unit}",
                               e.span, help="divide by a price, e.g. use `ret(close, 5)` "
                               "rather than `delta(close, 5)`")
                continue
            out[key] = e
        h = self.spec.signal.horizon
        if h.seconds is not None and h.bars(self.bar_seconds) is None:
            self.diags.add("E0702", f"the horizon `{h}` is not a whole number of bars",
                           self.span("signal", "horizon"),
                           help="use a multiple of the bar size in `universe.bar`")
        else:
            self.too_long(h.bars(self.bar_seconds), "the horizon", "signal", "horizon")
        return out

    def check_gates(self) -> dict[str, A.Expr]:
        out = {}
        for name in self.spec.gates or {}:
            e = self.parse("gates", name)
            t = self.infer(e, "gates") if e is not None else None
            if t is None:
                continue
            if t.dtype is not DType.BOOL:
                self.diags.add("E0503", f"gate `{name}` must be a condition, found a number",
                               e.span, label="not true or false", help="compare it, e.g. "
                               f"`{_short(e)} > 0`")
                continue
            out[name] = e
        return out

    def check_weight(self) -> A.Expr | None:
        """The target weight of `sizing: {method: weight}`: a dimensionless number."""
        if getattr(self.spec.sizing, "method", None) != "weight":
            return None
        e = self.parse("sizing", "weight")
        t = self.infer(e, "sizing") if e is not None else None
        if t is None:
            return None
        if not t.is_numeric:
            self.diags.add("E0509", "the weight must be a number, found a condition", e.span,
                           help=f"choose a weight with `where`, e.g. `where({_short(e)}, 10%, 0)`")
            return None
        if t.unit is not None and not t.unit.is_dimensionless:
            self.diags.add("E0603", f"the weight must be a dimensionless fraction of equity, "
                           f"found {t.unit}", e.span, help="a weight is a fraction such as "
                           "`10%`; divide by a value of the same unit")
            return None
        return e

    def check_rules(self) -> dict[str, RuleInfo]:
        rules = self.spec.stand_down
        if "data_gap" not in self.declared("stand_down"):
            self.diags.add("E0311", "no stand-down rule for data gaps",
                           self.key_span("stand_down") if self.node("stand_down") is not None
                           else document_start(self.root, self.src),
                           help="add `data_gap: {max_missing: 5%, action: halt}` under "
                           "`stand_down`: a policy must stop when its data is incomplete")
        if rules is None:
            return {}
        out = {}
        for name, rule in rules.items():
            info = self.check_rule(name, rule)
            if info is not None:
                out[name] = info
        return out

    def check_rule(self, name: str, rule) -> RuleInfo | None:
        path = ("stand_down", name)
        component = reg.DETECTORS[name] if name in reg.DETECTORS else reg.DETECTORS["when"]
        when = None
        per_instrument = component.per_instrument
        if component.name == "when":
            when = self.parse(*path, "when")
            t = self.infer(when, "stand_down") if when is not None else None
            if t is None:
                return None
            if t.dtype is not DType.BOOL:
                self.diags.add("E0503", f"the condition of rule `{name}` must be true or false, "
                               f"found a {t}", when.span, help="compare it, e.g. `... > 0`")
                return None
            per_instrument = t.kind is Kind.SERIES
        series = None
        if getattr(rule, "series", None) is not None:
            series = self.series(*path, "series")
            if series is None:
                return None
        info = self.acting(name, path, rule, component, per_instrument)
        if info is not None:
            info.when, info.series = when, series
        return info

    def series(self, *path) -> A.Expr | None:
        """The series a detector reads: a number per bar, or per instrument (which the
        detector reads as its mean across the instruments with a value)."""
        e = self.parse(*path)
        t = self.infer(e, "stand_down") if e is not None else None
        if t is None:
            return None
        if t.dtype is DType.BOOL or t.kind in (Kind.CONST, Kind.PARAM):
            self.diags.add("E0501", f"`{path[-1]}` must be a number that changes from bar to "
                           f"bar, found a {t}", e.span,
                           help="write an expression of the bars, e.g. `cs_mean(ret(close, 1))`")
            return None
        return e

    def acting(self, name: str, path: tuple, settings, component: Component,
               per_instrument: bool) -> RuleInfo | None:
        """The action and cooldown of a limit or rule, checked against where it acts."""
        action = self.parse_action(*path, "action") if self.node(*path, "action") else \
            Action(settings.action, None, self.key_span(*path))
        cooldown = self.cooldown(settings.cooldown, *path, "cooldown")
        if action is None or cooldown is None:
            return None
        what = "limit" if component.slot == "limit" else "rule"
        if per_instrument and action.kind not in ("exclude", "reduce"):
            self.diags.add("E0508", f"{what} `{name}` fires per instrument but `{action}` acts "
                           "on the whole portfolio", action.span,
                           help="use `action: exclude`, or make the condition portfolio-wide "
                           "with `any(...)` or `share(...) > 10%`")
            return None
        if not per_instrument and action.kind == "exclude":
            self.diags.add("E0508", f"{what} `{name}` is portfolio-wide, so `exclude` has no "
                           "instrument to exclude", action.span,
                           help="use `halt`, `flatten` or `reduce(50%)`")
            return None
        return RuleInfo(name, None, action, cooldown, settings, self.key_span(*path),
                        component, per_instrument)

    def parse_action(self, *path) -> Action | None:
        e = self.parse(*path)
        if e is None:
            return None
        kinds = ", ".join(f"`{a}`" for a in ("exclude", "halt", "flatten", "reduce(50%)"))
        if isinstance(e, A.Name) and e.id in ACTIONS and not ACTIONS[e.id]:
            return Action(e.id, None, e.span)
        if isinstance(e, A.Call) and e.func == "reduce" and len(e.args) == 1 and not e.kwargs:
            amount = _literal_fraction(e.args[0])
            if amount is not None and 0 < amount < 1:
                return Action("reduce", amount, e.span)
            self.diags.add("E0508", "`reduce` takes the share of exposure to remove, between 0% "
                           "and 100% (exclusive)", e.args[0].span, help="write e.g. `reduce(50%)`")
            return None
        word = e.id if isinstance(e, A.Name) else e.func if isinstance(e, A.Call) else None
        if word in ACTIONS:  # a known action with the wrong arguments: `reduce`, `halt(5)`
            takes = ACTIONS[word]
            self.diags.add("E0508", "`reduce` takes one argument, the share of exposure to "
                           "remove" if takes else f"`{word}` takes no argument", e.span,
                           help=f"write `{'reduce(50%)' if takes else word}`")
            return None
        hint = suggestion(word, list(ACTIONS)) if word else None
        self.diags.add("E0508", f"`{format_expr(e)}` is not an action", e.span,
                       help=(hint + " " if hint else "") + f"the actions are {kinds}")
        return None

    def check_execution(self) -> None:
        """The execution horizon and a bar-count rebalance period are whole numbers of bars."""
        ex = self.spec.execution
        if ex is None:
            return
        h = getattr(ex, "horizon", None)
        if self.node("execution", "horizon") is not None and h is not None:
            bars = h.bars(self.bar_seconds)
            if bars is None:
                self.diags.add("E0702", f"the horizon `{h}` is not a whole number of bars",
                               self.span("execution", "horizon"),
                               help="use a multiple of the bar size in `universe.bar`")
            else:
                self.too_long(bars, "the horizon", "execution", "horizon")
        every = ex.rebalance.every
        if every is not None and every.unit not in ("w", "mo", "bar"):
            bars = ex.rebalance.period_bars(self.bar_seconds)
            if bars is None:
                self.diags.add("E0702", f"the rebalance period `{every}` is not a whole "
                               "number of bars", self.span("execution", "rebalance", "every"),
                               help="use a multiple of the bar size, `1w` or `1mo`")
            else:
                self.too_long(bars, "the rebalance period", "execution", "rebalance", "every")

    def cooldown(self, d, *path) -> int | None:
        if d is None:
            return 0
        bars = d.bars(self.bar_seconds)
        if bars is None:
            self.diags.add("E0702", f"the cooldown `{d}` is not a whole number of bars",
                           self.span(*path), help="use a multiple of the bar size")
        elif self.too_long(bars, "the cooldown", *path):
            return None
        return bars

    def too_long(self, bars: int, what: str, *path) -> bool:
        """Report a horizon or cooldown longer than any window may be."""
        if bars <= MAX_WINDOW:
            return False
        self.diags.add("E0702", f"{what} is longer than the limit of {MAX_WINDOW:,} bars",
                       self.span(*path), help="use a shorter duration")
        return True

    # -- risk and compliance --------------------------------------------------------------

    def check_risk(self) -> dict[str, RuleInfo]:
        risk = self.spec.risk
        if risk is None:
            return {}
        for key, what in (("gross_max", "gross exposure"), ("position_max", "position size")):
            if getattr(risk, key) is None:
                self.diags.add("E0310", f"no limit on {what}: `risk.{key}` is missing",
                               self.key_span("risk"), help=f"add e.g. `{key}: "
                               f"{'150%' if key == 'gross_max' else '5%'}`; a limit is never "
                               "unlimited by omission")
        if risk.gross_max is not None:
            for key in ("net_max", "sector_max", "position_max"):
                v = getattr(risk, key)
                if v is not None and v > risk.gross_max + 1e-12:
                    self.diags.add("E0312", f"`{key}` is larger than `gross_max`",
                                   self.span("risk", key), help="a part of the book cannot be "
                                   "larger than the whole: lower it or raise `gross_max`",
                                   secondary=[Label(self.span("risk", "gross_max"),
                                                    "gross limit set here")])
        if risk.sector_max is not None and not (self.spec.universe and
                                                self.spec.universe.sectors):
            self.diags.add("E0313", "`sector_max` needs a sector for each symbol",
                           self.span("risk", "sector_max"),
                           help="add `sectors: {SYMBOL: sector, ...}` under `universe`")
        if risk.net_max is None and risk.gross_max is not None:
            self.diags.add("W0301", "no `net_max`: net exposure is limited by `gross_max` only",
                           self.key_span("risk"), help="add e.g. `net_max: 50%`")
        if risk.drawdown is None and risk.trailing_stop is None:
            self.diags.add("W0303", "no drawdown limit", self.key_span("risk"),
                           help="add e.g. `drawdown: {from_peak: {max: 15%, action: halt}}`")
        limits = {}
        for c in reg.LIMITS:
            settings = _at(self.spec, c.path)
            if settings is not None:
                info = self.acting(c.name, c.path, settings, c, False)
                if info is not None:
                    limits[c.name] = info
        return limits

    def check_targets(self) -> None:
        """Exactly one of `sizing` and `portfolio` sets the targets, and a forecast that can
        never trade is an error."""
        sizing, portfolio = self.node("sizing"), self.node("portfolio")
        if sizing is not None and portfolio is not None:
            self.diags.add("E0314", "`sizing` and `portfolio` both set the target weights",
                           self.key_span("sizing"), help="the portfolio optimizer sets the "
                           "weights: remove `sizing`, or remove `portfolio` to size each "
                           "instrument on its own",
                           secondary=[Label(self.key_span("portfolio"), "optimizer set here")])
        elif sizing is None and portfolio is None and self.spec.risk is not None:
            self.diags.add("E0302", "missing section `sizing`",
                           document_start(self.root, self.src),
                           help="add e.g. `sizing: {method: kelly_tempered, lambda: 0.3}`, or "
                           "a `portfolio` optimizer")
        h = self.spec.signal.horizon if self.spec.signal is not None else None
        method = getattr(self.spec.portfolio, "method", None)
        unread = portfolio is None or not getattr(self.spec.portfolio, "reads_horizon", True)
        ladder = getattr(self.spec.execution, "algo", None) == "limit_ladder"   # reads both
        if unread and not ladder and self.node("signal", "horizon") is not None and \
                h is not None and h.seconds is not None and \
                h.bars(self.bar_seconds) not in (None, 1):
            what = "without a portfolio optimizer" if portfolio is None else \
                f"with `{method}`, which does not read the forecast"
            self.diags.add("E0306", f"a `horizon` of more than one bar changes nothing {what}",
                           self.key_span("signal", "horizon"), help="the `mean_variance` and "
                           "`kelly` optimizers scale the covariance to the forecast's horizon, "
                           "and `limit_ladder` reads the forecast; other methods read `mu` and "
                           "`sigma` as they are, or not at all: remove it (say the horizon in a "
                           "comment)")
        self.check_risk_budgets()
        if self.node("signal", "cost") is not None and "prob_edge" not in self.mentioned() \
                and not ladder:
            self.diags.add("E0306", "the cost hurdle changes nothing: no gate or rule reads "
                           "`prob_edge`", self.key_span("signal", "cost"),
                           help="`cost` enters only `prob_edge` = Phi((abs(mu) - cost) / sigma): "
                           "gate on it (e.g. `edge: prob_edge > 0.55`) or remove `cost`")
        sigma = _literal_fraction(self.quiet_parse("signal", "sigma"))
        if sigma is not None and sigma <= 0:
            self.diags.add("E0510", "a predictive standard deviation of 0 or less can never "
                           "trade", self.span("signal", "sigma"),
                           help="`sigma` is the uncertainty of `mu`: write an estimate such as "
                           "`stdev(ret(close, 1), 63) * sqrt(5)`")

    def check_risk_budgets(self) -> None:
        """A risk budget names a symbol of the universe (a misspelt one would leave the
        intended symbol at the default budget)."""
        budgets = getattr(self.spec.portfolio, "budgets", None)
        listed = self.spec.universe.symbols if self.spec.universe is not None else None
        if not budgets or not isinstance(listed, list):
            return
        for sym in budgets:
            if sym not in listed:
                self.diags.add("E0315", f"risk budget for `{sym}`, which is not in the "
                               "universe", self.key_span("portfolio", "budgets", sym),
                               help=suggestion(sym, listed) or "list it in `universe.symbols`,"
                               " or remove its budget")

    def check_compliance(self) -> None:
        self.check_long_only_net()
        self.check_order_notional()
        comp = self.spec.compliance
        if comp is None or self.spec.universe is None:
            return
        listed = self.spec.universe.symbols
        for i, sym in enumerate(comp.restricted):
            if isinstance(listed, list) and sym not in listed:
                self.diags.add("W0302", f"restricted symbol `{sym}` is not in the universe",
                               self.span("compliance", "restricted", i),
                               help=self.suggest(sym, listed) or "it can never trade anyway")
        if not comp.shorting.allowed and comp.shorting.locates:
            self.diags.add("W0304", "locates are listed but shorting is not allowed",
                           self.span("compliance", "shorting", "locates"))
        restricted = set(comp.restricted)
        if isinstance(listed, list) and listed and set(listed) <= restricted:
            self.diags.add("E0510", "every symbol of the universe is restricted: the policy can "
                           "never trade", self.span("compliance", "restricted"),
                           secondary=[Label(self.span("universe", "symbols"), "the universe")],
                           help="remove the symbols it may trade from `compliance.restricted`, "
                           "or add tradable symbols to `universe.symbols`")
        for i, sym in enumerate(comp.shorting.locates):
            if sym in restricted:
                self.diags.add("W0305", f"`{sym}` is restricted and also listed for locates",
                               self.span("compliance", "shorting", "locates", i),
                               help="a restricted symbol is never held, so its locate has no "
                               "effect: remove it from `locates`, or from `restricted` if it "
                               "may trade")

    # a notional cap that binds only for books above this equity protects no real book
    NOTIONAL_NEVER_BINDS = 1e11

    def check_order_notional(self) -> None:
        """`max_order_notional` so large that the risk caps keep every order far below it: a
        reviewer reads a limit that never acts."""
        comp, risk = self.spec.compliance, self.spec.risk
        most = getattr(comp, "max_order_notional", None) if comp is not None else None
        if most is None:
            return
        # the largest order as a share of equity: a position taken from one cap to the other
        bounds = [(2 * v, f"`{name}: {v * 100:g}%`") for name in ("position_max", "gross_max")
                  if risk is not None and (v := getattr(risk, name, None))]
        share, why = min(bounds) if bounds else (2.0, "a book turned from +100% to -100%")
        binds_at = most / share
        if binds_at <= self.NOTIONAL_NEVER_BINDS:
            return
        self.diags.add("W0306", f"`max_order_notional: {most:.6g}` can only bind for a book of "
                       f"more than {binds_at:,.0f} in equity: with {why} no order is larger "
                       f"than {share * 100:g}% of the equity",
                       self.span("compliance", "max_order_notional"),
                       help="set it to the largest single order you would accept, in the "
                       "book's currency (for example `max_order_notional: 250000`), or remove "
                       "it")

    def check_long_only_net(self) -> None:
        """A book that cannot be short has a net exposure equal to its gross exposure, so a net
        limit of 0 allows no position at all."""
        risk, comp = self.spec.risk, self.spec.compliance
        if risk is None or risk.net_max is None or risk.net_max > 0:
            return
        if comp is not None and not comp.shorting.allowed:
            why = Label(self.span("compliance", "shorting", "allowed"), "shorting not allowed")
        elif getattr(self.spec.portfolio, "long_only", False) is True:
            why = Label(self.span("portfolio", "long_only"), "a long-only portfolio")
        else:
            return
        self.diags.add("E0510", "a net limit of 0 on a long-only book allows no position: the "
                       "policy can never trade", self.span("risk", "net_max"), secondary=[why],
                       help="without shorts the net exposure is the gross exposure: raise "
                       "`net_max`, or allow shorting for a market-neutral book")

    def check_unused(self) -> None:
        used = self.mentioned()
        for name in self.feature_src:
            if name not in used and self.feature_types.get(name) is not None:
                self.diags.add("W0101", f"feature `{name}` is never used",
                               self.key_span("features", name),
                               help="remove it, or use it in `signal`, `gates` or `stand_down`")
        for name in self.params:
            if name not in used:
                self.diags.add("W0102", f"parameter `{name}` is never used",
                               self.key_span("params", name), help="remove it")

    def mentioned(self) -> set[str]:
        """The names that some expression mentions (a feature's own definition aside), read from
        the text, so that an expression reported broken still uses what it names."""
        places = [(("features", k), k) for k in self.declared("features")]
        places += [(("signal", k), None) for k in ("mu", "sigma")]
        places += [(("gates", k), None) for k in self.declared("gates")]
        places += [(("stand_down", k, "when"), None) for k in self.declared("stand_down")]
        places += [(("sizing", "weight"), None)]
        places += [(("stand_down", k, "series"), None) for k in self.declared("stand_down")]
        exposure = self.node("portfolio", "constraints", "exposure")
        used: set[str] = set(exposure.keys() if isinstance(exposure, MapNode) else [])
        for path, owner in places:
            n = self.node(*path)
            if isinstance(n, ScalarNode):
                used.update(m for m in _MENTION.findall(n.raw) if m != owner)
        return used

    # -- expressions ----------------------------------------------------------------------

    def infer(self, e: A.Expr, where: str, stack: list[str] | None = None) -> Type | None:
        t, lb = self._infer(e, where, stack if stack is not None else [])
        if t is not None:
            self.types[e] = t
            self.lb[e] = lb
        return t

    def _infer(self, e, where, stack) -> tuple[Type | None, tuple[int, int]]:
        if isinstance(e, A.Number):
            return self.number(e), (0, 0)
        if isinstance(e, A.Bool):
            return Type(Kind.CONST, DType.BOOL), (0, 0)
        if isinstance(e, A.Name):
            return self.name(e, where, stack)
        if isinstance(e, A.Call):
            return self.call(e, where, stack)
        kids = [self.infer(c, where, stack) for c in A.children(e)]
        lb = _max_lb(self.lb.get(c, (0, 0)) for c in A.children(e))
        if any(k is None for k in kids):
            return None, lb
        if isinstance(e, A.Unary):
            return self.unary(e, kids[0]), lb
        if isinstance(e, A.Binary):
            return self.binary(e, *kids), lb
        if isinstance(e, A.Compare):
            return self.compare(e, *kids), lb
        if isinstance(e, A.BoolOp):
            return self.boolop(e, *kids), lb
        if isinstance(e, A.IfElse):
            return self.ifelse(e, *kids), lb
        raise AssertionError(f"no typing rule for {type(e).__name__}")

    def number(self, e: A.Number) -> Type | None:
        v = e.magnitude
        if not math.isfinite(v):
            self.diags.add("E0304", f"`{e.text}` is too large to be a number", e.span,
                           help="numbers must be finite 64-bit floats (below about 1.8e308)")
            return None
        if e.suffix in ("%", "bps"):
            return Type(Kind.CONST, DType.FLOAT, DIMENSIONLESS)
        if e.suffix is not None:
            return Type(Kind.CONST, DType.INT, BARS)
        return Type(Kind.CONST, DType.INT if e.is_int else DType.FLOAT, None)

    def name(self, e: A.Name, where: str, stack) -> tuple[Type | None, tuple[int, int]]:
        n = e.id
        if n in BAR_FIELDS:
            return Type(Kind.SERIES, DType.FLOAT, _BAR_UNITS[BAR_FIELDS[n]]), (0, 0)
        if n in self.params:
            p = self.params[n]
            return Type(Kind.PARAM, p.dtype, None), (0, 0)
        if n in HOLDINGS:
            return HOLDINGS[n][0], (0, 0)
        if n in self.feature_src:
            t = self.type_feature(n, stack) if where == "features" else \
                self.feature_types.get(n)
            return t, self.feature_lb.get(n, (0, 0))
        if n in SIGNAL_NAMES:
            if self.spec.signal is None and self.node("signal") is None:
                self.diags.add("E0402", f"`{n}` needs a `signal` section", e.span,
                               help="add `signal:` with `mu` and `sigma`, or use the features "
                               "directly")
                return None, (0, 0)
            if where in ("gates", "stand_down", "sizing"):
                return Type(Kind.SERIES, DType.FLOAT, DIMENSIONLESS), (0, 0)
            self.diags.add("E0402", f"`{n}` is not available in `{where}`", e.span,
                           help=f"`{n}` comes from the signal; use it in `gates`, "
                           "`stand_down` or a sizing `weight`")
            return None, (0, 0)
        if n in FUNCTIONS:
            self.diags.add("E0401", f"`{n}` is a function, not a value", e.span,
                           help=f"call it, e.g. `{n}(...)`")
            return None, (0, 0)
        if self.is_declared(n, "params") or self.is_declared(n, "features"):
            return None, (0, 0)           # declared, but its definition was reported broken
        self.diags.add("E0401", f"unknown name `{n}`", e.span, label="not defined",
                       help=self.suggest(n, lambda: self.names_in_scope(where))
                       or "define it under `features` or `params`")
        return None, (0, 0)

    def names_in_scope(self, where: str) -> list[str]:
        known = list(BAR_FIELDS) + list(HOLDINGS) + list(self.params) + list(self.feature_src)
        if where in ("gates", "stand_down", "sizing") and self.spec.signal is not None:
            known += list(SIGNAL_NAMES)
        return known

    def suggest(self, word: str, candidates) -> str | None:
        """`suggestion(word, candidates)` while the check's comparison budget lasts;
        `candidates` may be a function giving them (built only within the budget)."""
        if self.suggestion_budget <= 0:
            return None
        candidates = candidates() if callable(candidates) else candidates
        self.suggestion_budget -= len(candidates)
        return suggestion(word, candidates) if self.suggestion_budget >= 0 else None

    def unary(self, e: A.Unary, t: Type) -> Type | None:
        if e.op == "not":
            if t.dtype is not DType.BOOL:
                return self.mismatch(e, "`not` needs a condition, found a number", e.operand)
            return t
        if not t.is_numeric:
            return self.mismatch(e, f"`{e.op}` needs a number, found a condition", e.operand)
        return t

    def binary(self, e: A.Binary, a: Type, b: Type) -> Type | None:
        for side, t in ((e.left, a), (e.right, b)):
            if not t.is_numeric:
                return self.mismatch(e, f"`{e.op}` needs numbers, found a condition", side)
        kind = max(a.kind, b.kind)
        if e.op in "+-":
            unit = self.unify(e, a.unit, b.unit, "add" if e.op == "+" else "subtract")
            if unit is False:
                return None
            return Type(kind, max(a.dtype, b.dtype), unit)
        if e.op == "^":
            return self.power(e, a, b)
        dtype = DType.FLOAT if e.op == "/" else max(a.dtype, b.dtype)
        if a.unit is None and b.unit is None:
            return Type(kind, dtype, None)
        ua, ub = a.unit or DIMENSIONLESS, b.unit or DIMENSIONLESS
        return Type(kind, dtype, ua * ub if e.op == "*" else ua / ub)

    def power(self, e: A.Binary, a: Type, b: Type) -> Type | None:
        if b.unit is not None and not b.unit.is_dimensionless:
            return self.mismatch(e, f"an exponent must be dimensionless, found {b.unit}",
                                 e.right)
        if a.unit is None or a.unit.is_dimensionless:
            return Type(max(a.kind, b.kind), DType.FLOAT, a.unit)
        k = _literal_number(e.right)
        if k is None:
            return self.mismatch(e, f"a {a.unit} can only be raised to a constant power",
                                 e.right)
        return Type(max(a.kind, b.kind), DType.FLOAT, a.unit ** k)

    def compare(self, e: A.Compare, a: Type, b: Type) -> Type | None:
        if a.is_numeric != b.is_numeric or (not a.is_numeric and e.op not in ("==", "!=")):
            return self.mismatch(e, f"`{e.op}` compares numbers, found a condition",
                                 e.left if not a.is_numeric else e.right)
        if self.unify(e, a.unit, b.unit, "compare") is False:
            return None
        return Type(max(a.kind, b.kind), DType.BOOL, DIMENSIONLESS)

    def boolop(self, e: A.BoolOp, a: Type, b: Type) -> Type | None:
        for side, t in ((e.left, a), (e.right, b)):
            if t.dtype is not DType.BOOL:
                return self.mismatch(e, f"`{e.op}` combines conditions, found a number", side,
                                     help="compare the number, e.g. `x > 0`")
        return Type(max(a.kind, b.kind), DType.BOOL, DIMENSIONLESS)

    def ifelse(self, e: A.IfElse, c: Type, a: Type, b: Type) -> Type | None:
        if c.dtype is not DType.BOOL:
            return self.mismatch(e, "the condition after `if` must be true or false", e.cond)
        if a.is_numeric != b.is_numeric:
            return self.mismatch(e, "both branches of `if` must be numbers, or both "
                                 "conditions", e.orelse)
        unit = self.unify(e, a.unit, b.unit, "choose between") if a.is_numeric else \
            DIMENSIONLESS
        if unit is False:
            return None
        return Type(max(c.kind, a.kind, b.kind), max(a.dtype, b.dtype), unit)

    def unify(self, e, ua: Unit | None, ub: Unit | None, verb: str, where: str = ""):
        if ua is None or ub is None or ua == ub:
            return ub if ua is None else ua
        self.diags.add("E0601", f"cannot {verb} {ua} and {ub}{where}", e.span,
                       label="units differ", help="both sides must have the same unit; a "
                       "return such as `ret(close, 1)` is dimensionless, `close` is a price")
        return False

    def mismatch(self, e, message: str, at: A.Expr, help: str | None = None) -> None:
        self.diags.add("E0501", message, at.span or e.span, help=help)
        return None

    # -- calls ----------------------------------------------------------------------------

    def call(self, e: A.Call, where, stack) -> tuple[Type | None, tuple[int, int]]:
        sig = FUNCTIONS.get(e.func)
        if sig is None:
            self.unknown_function(e)
            for c in A.children(e):
                self.infer(c, where, stack)
            return None, (0, 0)
        bound = self.bind(e, sig)
        if bound is None:
            return None, (0, 0)
        types, windows, ok = [], {}, True
        for arg, expr in bound:
            if arg.role == "window" and sig.constant_windows and isinstance(expr, A.Name):
                self.diags.add("E0502", f"`{sig.name}` needs a constant `{arg.name}`, found "
                               f"`{expr.id}`", expr.span, help=f"write a number of bars, e.g. "
                               f"`{arg.default if arg.default is not None else 252}`: the "
                               "window sizes the model's state, which a sweep cannot resize")
                ok = False
                continue
            if arg.role == "window":
                w = self.window(e, arg, expr, where, stack)
                ok &= w is not False
                windows[arg.name] = w if w is not False else None
                continue
            t = self.infer(expr, where, stack)
            ok &= t is not None and self.check_arg(e, sig, arg, expr, t, types)
            types.append(t)
        lb = _max_lb(self.lb.get(x, (0, 0)) for a, x in bound if a.role != "window")
        if ok and sig.name == "zscore" and "n" not in windows and types[0].kind < Kind.SERIES:
            self.diags.add("E0507", "`zscore` without a window works across instruments and "
                           f"needs a cross-section, found a {types[0].kind.label}",
                           bound[0][1].span, help="give a window for a z-score over time, "
                           "e.g. `zscore(x, 63)`")
            ok = False
        if ok and sig.windows_ok is not None:
            problem = sig.windows_ok({k: v[0] for k, v in windows.items() if v})
            if problem:
                self.diags.add("E0502", f"`{sig.name}` {problem}", e.span,
                               help=f"`{sig.name}`: {sig.doc}")
                ok = False
        if not ok:
            return None, lb
        result = sig.result(types)
        if isinstance(result, str):
            self.diags.add("E0602", result, e.span)
            return None, lb
        extra = tuple(sig.lookback({k: (v[i] if v else None) for k, v in windows.items()})
                      for i in (0, 1))
        return result, (lb[0] + extra[0], lb[1] + extra[1])

    def unknown_function(self, e: A.Call) -> None:
        if e.func in ACTIONS:
            help = f"`{e.func}` is a stand-down action; write it under `action:`"
        elif e.func in BAR_FIELDS or e.func in self.feature_src or e.func in self.params:
            help = f"`{e.func}` is a value, not a function; use `lag({e.func}, n)` for past values"
        else:
            help = closest_names(e.func, FUNCTIONS) or "see the list of functions in the README"
        self.diags.add("E0405", f"unknown function `{e.func}`", e.func_span or e.span,
                       help=help)

    def bind(self, e: A.Call, sig: Signature):
        """Match positional and keyword arguments to the signature."""
        if len(e.args) > len(sig.args):
            self.diags.add("E0504", f"`{sig.name}` takes at most {len(sig.args)} argument"
                           f"{'s' if len(sig.args) != 1 else ''}, found {len(e.args)}",
                           e.args[len(sig.args)].span or e.span,
                           help=f"call it as `{_sig_text(sig)}`")
            return None
        bound = dict(zip((a.name for a in sig.args), e.args))
        for kw in e.kwargs:
            if sig.arg(kw.name) is None:
                self.diags.add("E0506", f"`{sig.name}` has no argument `{kw.name}`", kw.span,
                               help=suggestion(kw.name, [a.name for a in sig.args])
                               or f"call it as `{_sig_text(sig)}`")
                return None
            if kw.name in bound:
                self.diags.add("E0506", f"argument `{kw.name}` is given twice", kw.span)
                return None
            bound[kw.name] = kw.value
        out = []
        for arg in sig.args:
            if arg.name in bound:
                out.append((arg, bound[arg.name]))
            elif arg.required:
                self.diags.add("E0504", f"`{sig.name}` needs its argument `{arg.name}`",
                               e.span, help=f"call it as `{_sig_text(sig)}`")
                return None
            elif arg.role == "window" and arg.default is not None:
                out.append((arg, A.Number(str(arg.default), span=e.span)))
        return out

    def check_arg(self, e, sig: Signature, arg, expr, t: Type, prior: list) -> bool:
        if arg.role == "bool" and t.dtype is not DType.BOOL:
            self.mismatch(e, f"argument `{arg.name}` of `{sig.name}` must be a condition",
                          expr)
            return False
        if arg.role in ("value", "number") and not t.is_numeric and sig.name != "where":
            self.mismatch(e, f"argument `{arg.name}` of `{sig.name}` must be a number, found "
                          "a condition", expr)
            return False
        if arg.role == "number" and t.kind > Kind.PARAM:
            self.diags.add("E0507", f"argument `{arg.name}` of `{sig.name}` must be a constant "
                           "or a parameter, not a per-bar value", expr.span)
            return False
        if not prior and t.kind < sig.min_kind:
            need = "a per-instrument cross-section" if sig.min_kind is Kind.SERIES else \
                "a value that changes from bar to bar"
            self.diags.add("E0507", f"`{sig.name}` needs {need}, found a {t.kind.label}",
                           expr.span, help=f"`{sig.name}`: {sig.doc}")
            return False
        if arg.unit == "dimensionless" and t.unit is not None and not t.unit.is_dimensionless:
            self.diags.add("E0602", f"argument `{arg.name}` of `{sig.name}` must be "
                           f"dimensionless, found {t.unit}", expr.span)
            return False
        if arg.unit == "same" and prior and prior[0] is not None:
            return self.unify(expr, prior[0].unit, t.unit, "mix", f" in `{sig.name}`") is not False
        return True

    def window(self, e: A.Call, arg, expr: A.Expr, where: str, stack):
        """A window argument's (default, max) bar counts, or False after a diagnostic."""
        look_ahead = e.func in ("lag", "ret", "logret", "delta")
        if isinstance(expr, A.Unary) and expr.op == "-" and look_ahead:
            self.diags.add("E0701", f"`{e.func}` with a negative window reads future bars",
                           expr.span, label="looks ahead", help="a decision at bar t may use "
                           "data up to bar t only; windows count bars into the past")
            return False
        if isinstance(expr, A.Number):
            return self.window_literal(e, expr)
        if isinstance(expr, A.Name) and expr.id in self.params:
            p = self.params[expr.id]
            if p.dtype is not DType.INT or p.lo < 1:
                self.diags.add("E0502", f"parameter `{p.name}` cannot be a window: windows are "
                               "positive whole numbers of bars", expr.span,
                               help="give it an integer default and range, all at least 1",
                               secondary=[Label(p.span, "defined here")])
                return False
            return self.window_bounds(expr, int(p.default), int(p.hi))
        if self.infer(expr, where, stack) is None:
            return False  # an unknown or broken name: reported once, where it is resolved
        help = "write a whole number such as `20`, a duration such as `20d`, or an integer " \
               "parameter"
        if e.func in ("min", "max"):
            help = f"for the elementwise {e.func}imum of two values use `{e.func}imum(a, b)`"
        self.diags.add("E0502", f"the window of `{e.func}` must be a positive integer constant "
                       "or an integer parameter", expr.span, help=help)
        return False

    def window_literal(self, e: A.Call, n: A.Number):
        if n.suffix is None:
            if not n.is_int or int(n.text) < 1:
                self.diags.add("E0502", f"the window of `{e.func}` must be a positive whole "
                               f"number of bars, found `{n.text}`", n.span,
                               help="windows count bars: write e.g. `20`")
                return False
            return self.window_bounds(n, int(n.text), int(n.text))
        if n.suffix in ("%", "bps") or not n.is_int:
            self.diags.add("E0502", f"`{format_expr(n)}` is not a window", n.span,
                           help="write a whole number of bars such as `20`, or a duration "
                           "such as `20d`")
            return False
        bars = Duration(int(n.text), n.suffix).bars(self.bar_seconds)
        if not bars:
            self.diags.add("E0702", f"`{format_expr(n)}` is not a whole number of bars", n.span,
                           help=f"the bar size is {self.spec.universe.bar if self.spec.universe else '1d'}; use a multiple of "
                           "it")
            return False
        return self.window_bounds(n, bars, bars)

    def window_bounds(self, expr, default: int, hi: int):
        if hi > MAX_WINDOW:
            self.diags.add("E0702", f"a window of {hi} bars is longer than the limit of "
                           f"{MAX_WINDOW}", expr.span, help="use a shorter window")
            return False
        return (default, hi)


def _max_lb(lbs) -> tuple[int, int]:
    lbs = list(lbs)
    return (max((a for a, _ in lbs), default=0), max((b for _, b in lbs), default=0))


def _literal_number(e: A.Expr) -> float | None:
    sign = 1.0
    while isinstance(e, A.Unary) and e.op in "+-":
        sign *= -1.0 if e.op == "-" else 1.0
        e = e.operand
    if isinstance(e, A.Number) and e.suffix is None:
        return sign * e.magnitude
    return None


def _literal_fraction(e: A.Expr) -> float | None:
    sign = 1.0
    while isinstance(e, A.Unary) and e.op in "+-":
        sign *= -1.0 if e.op == "-" else 1.0
        e = e.operand
    if isinstance(e, A.Number) and e.suffix in (None, "%", "bps"):
        return sign * e.magnitude * {None: 1.0, "%": 0.01, "bps": 1e-4}[e.suffix]
    return None


def _sig_text(sig: Signature) -> str:
    parts = [a.name if a.required else f"{a.name}={a.default}" for a in sig.args]
    return f"{sig.name}({', '.join(parts)})"


def _short(e: A.Expr) -> str:
    text = format_expr(e)
    return text if len(text) <= 30 else text[:27] + "..."



def _at(spec, path: tuple):
    """The settings at a path of the policy, or None."""
    node = spec
    for part in path:
        node = getattr(node, part, None) if node is not None else None
    return node


def active_components(spec) -> list[tuple[Component, object]]:
    """Every component the policy uses, with its settings: sizing or portfolio, overlays,
    limits, stand-down detectors, the execution algorithm and the order rules."""
    out = []
    for section, registry in (("sizing", reg.SIZING), ("portfolio", reg.PORTFOLIO),
                              ("execution", reg.EXECUTION)):
        settings = getattr(spec, section, None)
        if settings is not None:
            tag = getattr(settings, "method", None) or getattr(settings, "algo", None)
            out.append((registry[tag], settings))
    for registry in (reg.OVERLAYS, reg.LIMITS, reg.ORDER_RULES, reg.EXITS):
        for c in registry:
            settings = _at(spec, c.path)
            if settings is not None:
                out.append((c, settings))
    for name, rule in (spec.stand_down.items() if spec.stand_down is not None else []):
        out.append((reg.DETECTORS[name] if name in reg.DETECTORS else reg.DETECTORS["when"],
                    rule))
    return out


def needs(spec) -> list[Need]:
    """The estimators the policy's components read."""
    return [n for c, settings in active_components(spec) for n in c.needs(settings)]
