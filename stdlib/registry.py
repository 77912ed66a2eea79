"""The functions a policy can call: one registry read by the checker and by the compiler.

Each entry says what the function takes (argument roles, kinds and units), what it returns, how
many past bars it reads (its lookback) and how it is evaluated (its category). The checker types
calls from it; the compiler sizes ring buffers and finds the lowering rule from it. This module is
pure data: importing it must stay cheap (no JAX), because `crowe-compile --check` runs on every
editor save.

Argument roles:

* ``value``: a numeric per-bar value (or a constant, for elementwise functions).
* ``bool``: a boolean per-bar value.
* ``window``: a positive whole number of bars, written as an integer constant, a duration
  (``20d``, converted through the bar size) or an integer parameter.
* ``number``: a constant or parameter (not per-bar), e.g. a quantile level.

Besides the bar fields, expressions may read the book at the decision (`HOLDINGS`: `position`,
`weight`, `bars_held`, `entry_price`, kept by the step in `crowe.stdlib.holdings`).

Lookback is the number of *past* bars, beyond the current one, that a call reads on top of what
its arguments read: ``ret(close, 5)`` reads 5, ``mean(x, 20)`` reads 19.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from crowe.stdlib import bars
from crowe.dsl.types import (BARS, DIMENSIONLESS, PRICE, SHARES, DType, Kind, Type, Unit)

_REQUIRED = object()


@dataclass(frozen=True)
class Arg:
    name: str
    role: str                        # value | bool | window | number
    default: object = _REQUIRED
    unit: str = "any"                # any | dimensionless | same (as the first argument)

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


@dataclass(frozen=True)
class Signature:
    """One callable of the policy language."""

    name: str
    args: tuple[Arg, ...]
    category: str                    # elementwise | rolling | cross_section | reduction | stateful
    result: Callable[[list[Type]], "Type | str"]   # typed arguments -> result type, or an error
    lookback: Callable[[dict[str, int]], int]      # window values -> extra past bars read
    doc: str
    min_kind: Kind = Kind.CONST      # the smallest kind the first argument may have
    windows_ok: Callable[[dict[str, int]], "str | None"] | None = None  # windows -> problem
    constant_windows: bool = False   # windows that size a model's state: no parameters


    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)


def _k(*types: Type) -> Kind:
    return max(t.kind for t in types)


def _same(ts: list[Type]) -> Type:
    return Type(_k(*ts), DType.FLOAT, ts[0].unit)


def _dimless(ts: list[Type]) -> Type:
    return Type(_k(*ts), DType.FLOAT, DIMENSIONLESS)


def _squared(ts: list[Type]) -> Type:
    u = ts[0].unit
    return Type(_k(*ts), DType.FLOAT, None if u is None else u ** 2)


def _sqrt(ts: list[Type]) -> Type:
    u = ts[0].unit
    return Type(_k(*ts), DType.FLOAT, None if u is None else u ** 0.5)


def _exp(ts: list[Type]) -> "Type | str":
    u = ts[0].unit
    if u is not None and not u.is_dimensionless:
        return f"`exp` needs a dimensionless argument, found {u}"
    return Type(_k(*ts), DType.FLOAT, DIMENSIONLESS)


def _series(unit_of: Callable[[list[Type]], "Unit | None"]):
    return lambda ts: Type(Kind.SERIES, DType.FLOAT, unit_of(ts))


def _scalar(unit_of: Callable[[list[Type]], "Unit | None"], dtype: DType = DType.FLOAT):
    return lambda ts: Type(Kind.SCALAR, dtype, unit_of(ts))


def _bool_reduce(ts: list[Type]) -> Type:
    return Type(Kind.SCALAR, DType.BOOL, DIMENSIONLESS)


def _where(ts: list[Type]) -> "Type | str":
    a, b = ts[1], ts[2]
    if a.dtype is DType.BOOL or b.dtype is DType.BOOL:
        if a.dtype is not b.dtype:
            return "both branches of `where` must be booleans, or both numbers"
        return Type(_k(*ts), DType.BOOL, DIMENSIONLESS)
    return Type(_k(*ts), max(a.dtype, b.dtype), a.unit if a.unit is not None else b.unit)


def _sign(ts: list[Type]) -> Type:
    return Type(ts[0].kind, DType.FLOAT, DIMENSIONLESS)


def _ratio(ts: list[Type]) -> Type:
    a, b = ts[0].unit, ts[1].unit
    unit = None if a is None and b is None else (a or DIMENSIONLESS) / (b or DIMENSIONLESS)
    return Type(max(Kind.SCALAR, _k(*ts)), DType.FLOAT, unit)


def _crossed(ts: list[Type]) -> Type:
    return Type(max(Kind.SCALAR, _k(*ts)), DType.BOOL, DIMENSIONLESS)


def _least(k: int):
    return lambda w: (f"needs a window of at least {k} bars, found {w['n']}"
                      if w.get("n") is not None and w["n"] < k else None)


def _lag_in_window(w) -> "str | None":
    if w.get("n") is not None and w.get("lag") is not None and w["lag"] >= w["n"]:
        return f"needs a lag shorter than its window, found lag {w['lag']} and window {w['n']}"
    return _least(2)(w)


_NONE = lambda w: 0                                          # noqa: E731
_N = lambda w: w["n"]                                        # noqa: E731
_N1 = lambda w: w["n"] - 1                                   # noqa: E731

X = Arg("x", "value")
N = Arg("n", "window")
N1 = Arg("n", "window", default=1)


def _rolling(name: str, result, doc: str, lookback=_N1) -> Signature:
    return Signature(name, (X, N), "rolling", result, lookback, doc, min_kind=Kind.SCALAR)


FUNCTIONS: dict[str, Signature] = {s.name: s for s in [
    # time series over each instrument's own history
    Signature("ret", (X, N1), "rolling", _dimless, _N,
              "simple return over n bars: x[t] / x[t-n] - 1", Kind.SCALAR),
    Signature("logret", (X, N1), "rolling", _dimless, _N,
              "log return over n bars: log(x[t] / x[t-n])", Kind.SCALAR),
    Signature("lag", (X, N1), "rolling", _same, _N, "the value n bars ago: x[t-n]", Kind.SCALAR),
    Signature("delta", (X, N1), "rolling", _same, _N, "change over n bars: x[t] - x[t-n]",
              Kind.SCALAR),
    _rolling("mean", _same, "rolling mean of the last n bars"),
    _rolling("sum", _same, "rolling sum of the last n bars"),
    _rolling("stdev", _same, "rolling sample standard deviation (ddof 1) of the last n bars"),
    _rolling("var", _squared, "rolling sample variance (ddof 1) of the last n bars"),
    _rolling("min", _same, "rolling minimum of the last n bars"),
    _rolling("max", _same, "rolling maximum of the last n bars"),
    Signature("ema", (X, N), "stateful", _same, _N1,
              "exponential moving average with alpha = 2 / (n + 1); warm after n bars",
              Kind.SCALAR),
    Signature("zscore", (X, Arg("n", "window", default=None)), "cross_section", _dimless,
              lambda w: 0 if w.get("n") is None else w["n"] - 1,
              "z-score across instruments at each bar, or over the last n bars when n is given",
              Kind.SCALAR),
    Signature("turbulence", (X, N), "reduction", _scalar(lambda ts: DIMENSIONLESS), _N,
              "Mahalanobis distance of today's cross-section from its mean over the last n bars, "
              "with a shrunk covariance: (x - m)' S^-1 (x - m) / N", Kind.SERIES),
    # cross-sections at one bar
    Signature("rank", (X,), "cross_section", _series(lambda ts: DIMENSIONLESS), _NONE,
              "rank across instruments scaled to [0, 1] (ties share their mean rank)",
              Kind.SERIES),
    Signature("demean", (X,), "cross_section", _series(lambda ts: ts[0].unit), _NONE,
              "x minus its mean across instruments", Kind.SERIES),
    Signature("quantile", (X, Arg("q", "number", unit="dimensionless")), "reduction",
              _scalar(lambda ts: ts[0].unit), _NONE,
              "the q-quantile of x across instruments (linear interpolation)", Kind.SERIES),
    Signature("cs_mean", (X,), "reduction", _scalar(lambda ts: ts[0].unit), _NONE,
              "mean of x across valid instruments", Kind.SERIES),
    Signature("any", (Arg("cond", "bool"),), "reduction", _bool_reduce, _NONE,
              "true when the condition holds for at least one instrument", Kind.SERIES),
    Signature("all", (Arg("cond", "bool"),), "reduction", _bool_reduce, _NONE,
              "true when the condition holds for every valid instrument", Kind.SERIES),
    Signature("share", (Arg("cond", "bool"),), "reduction", _scalar(lambda ts: DIMENSIONLESS),
              _NONE, "fraction of valid instruments for which the condition holds", Kind.SERIES),
    # elementwise
    Signature("abs", (X,), "elementwise", lambda ts: Type(ts[0].kind, DType.FLOAT, ts[0].unit),
              _NONE, "absolute value"),
    Signature("sqrt", (X,), "elementwise", _sqrt, _NONE, "square root"),
    Signature("log", (X,), "elementwise", _dimless, _NONE,
              "natural logarithm (of a positive value; the result is dimensionless)"),
    Signature("exp", (X,), "elementwise", _exp, _NONE, "exponential of a dimensionless value"),
    Signature("sign", (X,), "elementwise", _sign, _NONE, "-1, 0 or 1"),
    Signature("clip", (X, Arg("lo", "value", unit="same"), Arg("hi", "value", unit="same")),
              "elementwise", _same, _NONE, "x limited to [lo, hi]"),
    Signature("minimum", (X, Arg("y", "value", unit="same")), "elementwise", _same, _NONE,
              "elementwise minimum of two values"),
    Signature("maximum", (X, Arg("y", "value", unit="same")), "elementwise", _same, _NONE,
              "elementwise maximum of two values"),
    Signature("where", (Arg("cond", "bool"), Arg("a", "value"), Arg("b", "value")),
              "elementwise", _where, _NONE, "a where cond holds, else b"),
    Signature("normcdf", (X,), "elementwise", _dimless, _NONE,
              "standard normal cumulative distribution function"),
]}

FUNCTIONS.update({s.name: s for s in [
    Signature("rsi", (X, N), "stateful", _dimless, _N,
              "Wilder's relative strength index in [0, 100]: 100 * G / (G + L), with G and L "
              "Wilder's averages over n bars of the one-bar gains and losses of x; 50 when x "
              "has not moved", Kind.SCALAR),
    Signature("atr", (N,), "stateful", lambda ts: Type(Kind.SERIES, DType.FLOAT, PRICE), _N,
              "Wilder's average true range over n bars: the true range is max(high - low, "
              "abs(high - close[t-1]), abs(low - close[t-1]))"),
    Signature("corr", (X, Arg("y", "value"), N), "rolling", _dimless, _N1,
              "Pearson correlation of x and y over the last n bars", Kind.SCALAR, _least(2)),
    Signature("beta", (X, Arg("y", "value"), N), "rolling", _ratio, _N1,
              "slope of the regression of x on y over the last n bars: cov(x, y) / var(y); "
              "`beta(r1, cs_mean(r1), n)` is the beta to the equal-weighted market",
              Kind.SCALAR, _least(2)),
    Signature("skew", (X, N), "rolling", _dimless, _N1,
              "sample skewness over the last n bars, adjusted Fisher-Pearson (scipy's "
              "`skew(bias=False)`)", Kind.SCALAR, _least(3)),
    Signature("kurt", (X, N), "rolling", _dimless, _N1,
              "sample excess kurtosis over the last n bars, bias-corrected (scipy's "
              "`kurtosis(bias=False)`)", Kind.SCALAR, _least(4)),
    Signature("acf", (X, N, Arg("lag", "window", default=1)), "rolling", _dimless, _N1,
              "sample autocorrelation at `lag` of the last n bars: sum d[t] d[t-lag] / "
              "sum d[t]^2, d the deviations from the window mean", Kind.SCALAR, _lag_in_window),
    Signature("crossed_above", (Arg("a", "value"), Arg("b", "value", unit="same")), "rolling",
              _crossed, lambda w: 1, "true on the bar where a rises above b: a > b now and "
              "a <= b at the previous bar"),
    Signature("crossed_below", (Arg("a", "value"), Arg("b", "value", unit="same")), "rolling",
              _crossed, lambda w: 1, "true on the bar where a falls below b: a < b now and "
              "a >= b at the previous bar"),
]})

FUNCTIONS.update({s.name: s for s in [
    Signature("regime_prob", (X, N, Arg("refit", "window", default=21),
                              Arg("min_ratio", "number", default=5.0, unit="dimensionless")),
              "stateful", _scalar(lambda ts: DIMENSIONLESS), _N1,
              "P(risk-off) of a two-state Gaussian HMM of x (its mean across the instruments "
              "with a value when x is per instrument), fitted by Baum-Welch on the last n "
              "values every `refit` bars and filtered every bar, as the `regime` rule computes "
              "it: the probability of the higher-variance state, 0 while that variance is below "
              "`min_ratio` times the other's, NaN before the first fit; n and refit are "
              "constants", Kind.SCALAR, _least(10), constant_windows=True),
]})

# The book at the decision, per instrument, after this bar's fills: name -> (type, doc).
HOLDINGS: dict[str, tuple[Type, str]] = {
    "position": (Type(Kind.SERIES, DType.FLOAT, SHARES), "shares held (negative when short)"),
    "weight": (Type(Kind.SERIES, DType.FLOAT, DIMENSIONLESS),
               "the position's value over equity, at the last valid close"),
    "bars_held": (Type(Kind.SERIES, DType.INT, BARS),
                  "bars since the fill that opened the position (0 on that bar and when flat; "
                  "an add keeps the count, a flip restarts it)"),
    "entry_price": (Type(Kind.SERIES, DType.FLOAT, PRICE),
                    "average fill price of the open position: adds average in by shares, "
                    "reductions keep it, a flip starts at the flipping fill's price; NaN when "
                    "flat"),
}

# Names a policy may use as values, by where they may appear.
BAR_FIELDS: dict[str, str] = dict(bars.UNITS)
SIGNAL_NAMES = ("mu", "sigma", "prob_edge")

# Stand-down actions: name -> whether it takes a fraction argument.
ACTIONS = {"exclude": False, "halt": False, "flatten": False, "reduce": True}
