"""`crowe test`: unit tests for policies, in the spirit of `opa test`.

A test file (`NAME.test.yaml`) names a policy, gives a small table of bars and says what the
policy must decide at chosen bars:

    policy: ../cs_mom_v1.policy          # relative to the test file
    params: {lookback: 63}               # optional overrides
    bars:
      generate:                          # or `rows:` (an inline table) or `file:` (Parquet)
        bars: 320
        symbols:
          AAPL: {drift: 0.4%, vol: 1%}   # per-bar log drift and volatility
          IBM:  {drift: -0.4%, vol: 1%}
    expect:
      - name: nothing trades during the warm-up
        bars: [0, 249]
        weight: 0
        reasons: [warmup]
      - name: long the winner
        bar: -1
        symbol: AAPL
        weight: ">0"

Each expectation picks bars (`bar: N` or `bars: [FIRST, LAST]`, an index, negative from the
end, or a date) and instruments (`symbol:`, one or a list; all by default), and checks any of:
`state` (the trading state), `weight` (the target weight) and `order` (the order quantity in
shares), each a number or a comparison such as `">0"`, `"<= -1%"` or `"!=0"`, `reasons` (flags
that must be set) and `not_reasons` (flags that must not be). The policy is compiled once per
file and backtested once over the bars; every expectation reads that run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crowe.dsl.diagnostics import Diagnostics, suggestion
from crowe.dsl.files import read_limited
from crowe.dsl.quantity import QuantityError, fraction
from crowe.dsl.source import SourceFile
from crowe.dsl.yamlload import MapNode, Node, SeqNode, decode_source, load_yaml, to_plain
from crowe.stdlib.states import STATES

MAX_TEST_BYTES = 1 << 20
SHOWN = 3   # failing bars shown per expectation


class PolicyTestError(Exception):
    """A test file that cannot be run: unreadable, not YAML, not the schema, a policy that does
    not check, bars that cannot be used. The message names the file (and line) and the fix."""


# ---------------------------------------------------------------------------------------------
# The test file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Number = Union[int, float]
Fraction = Union[int, float, str]


class Walk(_Strict):
    """One symbol's generated prices: a geometric random walk."""

    drift: Fraction = 0.0
    vol: Fraction = 0.01
    start_price: Number = 100.0
    volume: Number = 1e6


class Shock(_Strict):
    symbol: str
    bar: int
    # `return` is a keyword in Python
    move: Fraction = Field(alias="return")


class Gap(_Strict):
    symbol: str
    first: int = Field(alias="from")
    last: int = Field(alias="to")


class Generate(_Strict):
    start: str = "2020-01-01"
    bars: Annotated[int, Field(ge=2, le=100_000)]
    seed: int = 0
    symbols: dict[str, Walk] | list[str]      # a list: each symbol walks as `walk` says
    walk: Walk = Walk()
    shocks: list[Shock] = []
    missing: list[Gap] = []


class Bars(_Strict):
    generate: Generate | None = None
    columns: list[str] = ["ts", "symbol", "open", "high", "low", "close", "volume"]
    rows: list[list[Union[str, int, float]]] | None = None
    file: str | None = None
    start: str | None = None
    end: str | None = None


Check = Union[int, float, str]
BarRef = Union[int, str]


class Expect(_Strict):
    name: str | None = None
    bar: BarRef | None = None
    bars: Annotated[list[BarRef], Field(min_length=2, max_length=2)] | None = None
    symbol: str | list[str] | None = None
    state: Literal[STATES] | None = None  # type: ignore[valid-type]
    weight: Check | None = None
    order: Check | None = None
    reasons: list[str] = []
    not_reasons: list[str] = []
    tol: float = 1e-9


class PolicyTestFile(_Strict):
    policy: str
    params: dict[str, Number] = {}
    cash: Number = 1e6
    bars: Bars
    expect: Annotated[list[Expect], Field(min_length=1)]


def read_test_file(path: str) -> tuple[PolicyTestFile, SourceFile, MapNode]:
    data = read_limited(path, MAX_TEST_BYTES, "a test file", PolicyTestError)
    diags = Diagnostics()
    source = decode_source(path, data, diags)
    root = load_yaml(source, diags) if source is not None else None
    if diags.has_errors or not isinstance(root, MapNode):
        d = diags.errors[0] if diags.errors else None
        where = f"{path}:{d.span.line}:{d.span.column}: {d.message}" if d else path
        raise PolicyTestError(f"{where}: the test file is not a YAML mapping")
    try:
        spec = PolicyTestFile.model_validate(to_plain(root))
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        node = _node_at(root, err["loc"])
        place = f"{path}:{node.span.line}:{node.span.column}"
        loc = ".".join(str(p) for p in err["loc"])
        raise PolicyTestError(f"{place}: `{loc}`: {err['msg'][0].lower()}{err['msg'][1:]}"
                              f"{_expected_keys(err)}") from None
    return spec, source, root


def _expected_keys(err: dict) -> str:
    if err["type"] != "extra_forbidden":
        return ""
    return " (see the format in `crowe test --help`)"


def _node_at(root: Node, loc) -> Node:
    node = root
    for part in loc:
        nxt = None
        if isinstance(node, MapNode) and isinstance(part, str):
            found = node.entry(part)
            nxt = found[0] if found and part == loc[-1] else (found[1] if found else None)
        elif isinstance(node, SeqNode) and isinstance(part, int) and part < len(node.items):
            nxt = node.items[part]
        if nxt is None:
            return node
        node = nxt
    return node


# ---------------------------------------------------------------------------------------------
# Bars


def _frac(value, what: str, path: str) -> float:
    try:
        return fraction(value)
    except QuantityError as e:
        raise PolicyTestError(f"{path}: {what}: {e}") from None


def generated_bars(g: Generate, path: str) -> dict:
    """Geometric random walks, one per symbol (seeded), with shocks and missing bars. A bar
    opens at the last close (times a shock's jump, if any) and closes after one step of the
    walk; high and low lie half a `vol` beyond them; volume is constant."""
    T, symbols = g.bars, sorted(g.symbols)
    walks = g.symbols if isinstance(g.symbols, dict) else {s: g.walk for s in g.symbols}
    day = np.datetime64(g.start, "D") + np.arange(T)
    cols: dict[str, list] = {c: [] for c in ("ts", "symbol", "open", "high", "low", "close",
                                             "volume")}
    for i, sym in enumerate(symbols):
        p = walks[sym]
        drift, vol = _frac(p.drift, f"`{sym}.drift`", path), _frac(p.vol, f"`{sym}.vol`", path)
        steps = drift + vol * np.random.default_rng([g.seed, i]).standard_normal(T)
        steps[0] = 0.0
        jumps = np.zeros(T)     # overnight: the bar opens this far from the last close
        for s in g.shocks:
            if s.symbol == sym:
                move = _frac(s.move, "a shock's `return`", path)
                jumps[_index(s.bar, T, path)] += np.log1p(move)
        close = float(p.start_price) * np.exp(np.cumsum(steps + jumps))
        open_ = np.concatenate([[close[0]], close[:-1]]) * np.exp(jumps)
        keep = np.ones(T, bool)
        for gap in g.missing:
            if gap.symbol == sym:
                keep[_index(gap.first, T, path):_index(gap.last, T, path) + 1] = False
        band = 1 + vol / 2
        values = {"open": open_, "high": np.maximum(open_, close) * band,
                  "low": np.minimum(open_, close) / band, "close": close,
                  "volume": np.full(T, float(p.volume))}
        cols["ts"].extend(day[keep])
        cols["symbol"].extend([sym] * int(keep.sum()))
        for k, v in values.items():
            cols[k].extend(v[keep])
    unknown = {s.symbol for s in g.shocks} | {m.symbol for m in g.missing}
    if unknown - set(symbols):
        raise PolicyTestError(f"{path}: shocks or missing bars name a symbol that is not "
                              f"generated: {', '.join(sorted(unknown - set(symbols)))}")
    return {"ts": np.array(cols["ts"], "datetime64[ns]"), "symbol": np.array(cols["symbol"]),
            **{k: np.asarray(v, float) for k, v in cols.items() if k not in ("ts", "symbol")}}


def _index(i: int, T: int, path: str) -> int:
    j = i + T if i < 0 else i
    if not 0 <= j < T:
        raise PolicyTestError(f"{path}: bar {i} is outside the {T} bars")
    return j


def inline_bars(b: Bars, path: str) -> dict:
    cols = b.columns
    needed = ["ts", "symbol", "close"]
    missing = [c for c in needed if c not in cols]
    if missing or len(set(cols)) != len(cols):
        raise PolicyTestError(f"{path}: `bars.columns` must name each column once and include "
                              f"{', '.join(needed)} (open, high and low default to close, "
                              "volume to 1e6)")
    rows = b.rows or []
    bad = [i for i, r in enumerate(rows) if len(r) != len(cols)]
    if not rows or bad:
        raise PolicyTestError(f"{path}: `bars.rows` needs rows of {len(cols)} values "
                              f"({', '.join(cols)})" +
                              (f"; row {bad[0]} has {len(rows[bad[0]])}" if bad else ""))
    table = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    try:
        close = np.asarray(table["close"], float)
        out = {"ts": np.array(table["ts"], "datetime64[ns]"),
               "symbol": np.array([str(s) for s in table["symbol"]])}
        for c in ("open", "high", "low"):
            out[c] = np.asarray(table.get(c, close), float)
        out["close"] = close
        out["volume"] = np.asarray(table.get("volume", [1e6] * len(rows)), float)
    except (ValueError, TypeError) as e:
        raise PolicyTestError(f"{path}: `bars.rows`: {e}") from None
    return out


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class Failure:
    expectation: str
    line: int
    details: list[str]


@dataclass
class FileResult:
    path: str
    passed: int = 0
    failures: list[Failure] = field(default_factory=list)


_ENGINES: dict = {}   # (policy, symbols, cash) -> compiled engine, for the process


def run_test_file(path: str, engines: dict | None = None) -> FileResult:
    """Run one test file; `engines` (by default one cache for the process) keeps compiled
    engines by (policy path, symbols, cash), so files on one policy compile it once."""
    from .backtest import backtest, make_runner
    from .data import DataError, align, load_bars
    from .engine import Engine, ParamError
    from .run import RunError, check_bar_size, check_sessions, checked_policy
    spec, source, root = read_test_file(path)
    policy_path = str((Path(path).parent / spec.policy))
    try:
        checked = checked_policy(policy_path).policy
    except RunError as e:
        raise PolicyTestError(f"{path}: {e}") from None
    panel = _panel(spec.bars, path, align, load_bars, DataError)
    listed = checked.spec.universe.symbols
    if listed != "from_data":
        missing = sorted(set(listed) - set(panel.symbols))
        if missing:
            raise PolicyTestError(f"{path}: the bars have no {', '.join(missing)}, which the "
                                  "policy's universe lists")
        panel = panel.select(listed)
    try:
        check_bar_size(panel, path, "policy", checked.bar_seconds)
        check_sessions(panel, path, "policy", checked.bar_seconds,
                       checked.spec.universe.calendar)
    except RunError as e:
        raise PolicyTestError(f"{path}: {e}") from None
    key = (str(Path(policy_path).resolve()), tuple(panel.symbols), float(spec.cash))
    cache = engines if engines is not None else _ENGINES
    if key not in cache:
        engine = Engine.from_policy(checked, panel.symbols, float(spec.cash))
        cache[key] = engine, make_runner(engine)
    engine, runner = cache[key]
    try:
        params = engine.params({k: float(v) for k, v in spec.params.items()})
    except ParamError as e:
        raise PolicyTestError(f"{path}: {e}") from None
    for exp in spec.expect:
        _validate(exp, engine, panel, path)
    out = backtest(engine, panel, params, runner=runner).out
    result = FileResult(path)
    items = root.get("expect").items
    for i, exp in enumerate(spec.expect):
        details = _evaluate(exp, engine, panel, out, path)
        if details:
            label = exp.name or f"expectation {i + 1}"
            result.failures.append(Failure(label, items[i].span.line, details))
        else:
            result.passed += 1
    return result


def _panel(b: Bars, path: str, align, load_bars, DataError):
    given = [k for k in ("generate", "rows", "file") if getattr(b, k) is not None]
    if len(given) != 1:
        raise PolicyTestError(f"{path}: `bars` takes one of `generate`, `rows` or `file`")
    try:
        if b.file is not None:
            return load_bars(str(Path(path).parent / b.file), b.start, b.end)[0]
        table = generated_bars(b.generate, path) if b.generate else inline_bars(b, path)
        return align(table)
    except DataError as e:
        raise PolicyTestError(f"{path}: the bars cannot be used: {e}") from None


_CHECK = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
                    r"(?:[eE][-+]?[0-9]+)?\s*(?:%|bps)?)\s*$")


def _compare(value: float, check, tol: float) -> bool:
    op, target = _parse_check(check)
    return {"==": abs(value - target) <= tol, "!=": abs(value - target) > tol,
            ">": value > target + tol, "<": value < target - tol,
            ">=": value >= target - tol, "<=": value <= target + tol}[op]


def _parse_check(check) -> tuple[str, float]:
    if isinstance(check, (int, float)) and not isinstance(check, bool):
        return "==", float(check)
    m = _CHECK.match(str(check))
    if not m:
        raise ValueError(f"`{check}` is not a number or a comparison such as `>0` or `<= 5%`")
    return m.group(1) or "==", fraction(m.group(2).replace(" ", ""))


def _bars(exp: Expect, panel, path: str) -> range:
    if (exp.bar is None) == (exp.bars is None):
        raise PolicyTestError(f"{path}: an expectation needs `bar: N` or `bars: [FIRST, LAST]`")
    first, last = (exp.bar, exp.bar) if exp.bar is not None else exp.bars
    lo, hi = _bar_index(first, panel, path), _bar_index(last, panel, path)
    return range(lo, hi + 1)


def _bar_index(ref, panel, path: str) -> int:
    if isinstance(ref, int):
        return _index(ref, panel.T, path)
    from .data import to_ns
    try:
        i = int(np.searchsorted(panel.ts, to_ns(ref), side="left"))
    except (ValueError, TypeError):
        raise PolicyTestError(f"{path}: `{ref}` is not a bar index or a date") from None
    if i >= panel.T:
        raise PolicyTestError(f"{path}: `{ref}` is after the last bar")
    return i


def _wanted(exp: Expect, panel) -> list[str]:
    if exp.symbol is None:
        return list(panel.symbols)
    return [exp.symbol] if isinstance(exp.symbol, str) else list(exp.symbol)


def _validate(exp: Expect, engine, panel, path: str) -> None:
    """Everything an expectation names exists, before the policy runs."""
    names = engine.reasons
    for flag in exp.reasons + exp.not_reasons:
        if flag not in names:
            hint = suggestion(flag, names)
            raise PolicyTestError(f"{path}: `{flag}` is not a reason of this policy" +
                                  (f"; {hint}" if hint else "; its reasons are " +
                                   ", ".join(f"`{n}`" for n in names)))
    symbols = list(panel.symbols)
    for s in _wanted(exp, panel):
        if s not in symbols:
            raise PolicyTestError(f"{path}: `{s}` is not an instrument of the run (instruments: "
                                  f"{', '.join(symbols)})")
    for check in (exp.weight, exp.order):
        if check is not None:
            try:
                _parse_check(check)
            except (ValueError, QuantityError) as e:
                raise PolicyTestError(f"{path}: {e}") from None
    _bars(exp, panel, path)


def _evaluate(exp: Expect, engine, panel, out: dict, path: str) -> list[str]:
    names, symbols, wanted = engine.reasons, list(panel.symbols), _wanted(exp, panel)
    problems = []
    for t in _bars(exp, panel, path):
        state = STATES[int(out["trading_state"][t])]
        if exp.state is not None and state != exp.state:
            problems.append(f"bar {t} ({_day(panel.ts[t])}): state expected {exp.state}, "
                            f"found {state}")
        for s in wanted:
            j = symbols.index(s)
            problems += _instrument(exp, t, j, s, out, names, panel)
    if len(problems) > SHOWN:
        problems[SHOWN:] = [f"... and {len(problems) - SHOWN} more"]
    return problems


def _instrument(exp: Expect, t: int, j: int, sym: str, out, names, panel) -> list[str]:
    flags = int(out["reasons"][t, j])
    set_ = [n for i, n in enumerate(names) if flags >> i & 1]
    wrong = []
    for what, key, check in (("weight", "weights", exp.weight), ("order", "order_qty",
                                                                 exp.order)):
        if check is not None:
            value = float(out[key][t, j])
            if not _compare(value, check, exp.tol):
                wrong.append(f"{what} expected {check}, found {value:.6g}")
    missing = [n for n in exp.reasons if n not in set_]
    if missing:
        wrong.append(f"reasons expected {', '.join(missing)}")
    present = [n for n in exp.not_reasons if n in set_]
    if present:
        wrong.append(f"reasons expected without {', '.join(present)}")
    if not wrong:
        return []
    return [f"bar {t} ({_day(panel.ts[t])}), {sym}: " + "; ".join(wrong) +
            f"\n      reasons: {', '.join(set_) or 'none'}"]


def _day(ts) -> str:
    return str(np.datetime64(int(ts), "ns").astype("datetime64[D]"))


def find_test_files(paths: tuple[str, ...]) -> list[str]:
    """The test files named, with a directory standing for every `*.test.yaml` under it
    (hidden directories and virtual environments skipped)."""
    out = []
    for p in paths or (".",):
        path = Path(p)
        if not path.is_dir():
            out.append(p)
            continue
        for f in sorted(path.rglob("*.test.yaml")):
            parts = f.relative_to(path).parts[:-1]
            if not any(part.startswith(".") or part in ("node_modules", "venv", "build")
                       for part in parts):
                out.append(str(f))
    return out
