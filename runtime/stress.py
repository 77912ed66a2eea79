"""Stress runs: replays of real episodes in the data, and synthetic shocks applied to any data.

Episodes (`EPISODES`) replay the policy through a dated window of the real bars, warmed up on
every bar before it. Synthetic shocks change a copy of the bars from the shock bar (`--at`) on,
for the chosen instruments (default: all), and the policy runs on both copies with the same
parameters:

    gap:-10%     every price from the shock bar on is 10% lower (the shock bar opens with the gap)
    vol:3x:20    close-to-close returns of 20 bars are 3 times as large (prices follow)
    drought:20   volume is a tenth of itself for 20 bars (fills are capped by participation)
    halt:5       5 bars are missing (no trading; the data_gap rule may stand the policy down)

Each row of the table: the largest drawdown from the shock (or the window's start), the worst
bar's return, the bars until equity is back at its level before the shock ("-" if never), and
the limits and rules that were in force, with how many bars each.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .backtest import backtest, make_runner
from .data import Panel, to_ns

EPISODES = {
    "gfc2008": ("2008-09-01", "2009-03-31", "the 2008 crisis: Lehman to the March 2009 low"),
    "flash2010": ("2010-04-26", "2010-05-21", "the 6 May 2010 flash crash and its weeks"),
    "covid2020": ("2020-02-19", "2020-04-30", "the 2020 crash"),
}
DROUGHT = 0.1
_SHOCK = re.compile(r"^(gap):(-?\d+(?:\.\d+)?)%$|^(vol):(\d+(?:\.\d+)?)x:(\d+)$|"
                    r"^(drought):(\d+)$|^(halt):(\d+)$")


class StressError(ValueError):
    """A scenario that does not read, or that the data cannot serve."""


@dataclass(frozen=True)
class Shock:
    kind: str           # gap | vol | drought | halt
    size: float         # gap: fraction (negative for a fall); vol: multiple
    bars: int           # vol, drought, halt: how many bars


def parse_scenario(text: str):
    """An episode name (str) or a `Shock`."""
    if text in EPISODES:
        return text
    m = _SHOCK.match(text.strip())
    if not m:
        raise StressError(f"`--scenario {text}` is not a scenario: use an episode "
                          f"({', '.join(EPISODES)}) or a shock: gap:-10%, vol:3x:20, "
                          "drought:20, halt:5")
    g = [x for x in m.groups() if x is not None]
    if g[0] == "gap":
        size = float(g[1]) / 100
        if not -1 < size < 1 or size == 0:
            raise StressError(f"`--scenario {text}`: a gap lies strictly between -100% and 100%"
                              " and is not 0")
        return Shock("gap", size, 1)
    if g[0] == "vol":
        if float(g[1]) <= 0 or int(g[2]) < 1:
            raise StressError(f"`--scenario {text}`: the multiple and the bars must be > 0")
        return Shock("vol", float(g[1]), int(g[2]))
    if int(g[1]) < 1:
        raise StressError(f"`--scenario {text}`: at least one bar")
    return Shock(g[0], DROUGHT if g[0] == "drought" else 0.0, int(g[1]))


def shocked(panel, shock: Shock, t: int, symbols=None) -> Panel:
    """A copy of the panel with the shock applied from bar `t` to the chosen symbols."""
    cols = np.array([symbols is None or s in symbols for s in panel.symbols])
    f = {k: np.array(getattr(panel, k)) for k in ("open", "high", "low", "close", "volume")}
    valid = np.array(panel.valid)
    end = min(panel.T, t + shock.bars)
    if shock.kind == "gap":
        for k in ("open", "high", "low", "close"):
            f[k][t:, cols] *= 1.0 + shock.size
    elif shock.kind == "vol":
        c = np.asarray(panel.close)            # the original returns, not the shocked ones
        factor = np.ones(panel.N)
        for s in range(t, end):
            r = c[s] / c[s - 1] - 1.0 if s > 0 else np.zeros(panel.N)
            new = np.maximum(1.0 + shock.size * r, 0.01) / (1.0 + r)
            factor = np.where(cols & np.isfinite(new), factor * new, factor)
            for k in ("open", "high", "low", "close"):
                f[k][s] *= factor
        for k in ("open", "high", "low", "close"):
            f[k][end:] *= factor
    elif shock.kind == "drought":
        f["volume"][t:end, cols] *= shock.size
    else:
        valid[t:end, cols] = False
        for k in ("open", "high", "low", "close", "volume"):
            f[k][t:end, cols] = np.nan
    return Panel(ts=np.array(panel.ts), symbols=panel.symbols, valid=valid, **f)


@dataclass
class Row:
    name: str
    max_drawdown: float
    worst_bar: float
    worst_bar_ts: int
    recovery_bars: int | None   # bars from the shock until equity is back where it was
    fired: dict           # limit/rule name -> bars in force
    final_equity: float
    total_return: float


def stress_row(name: str, result, first: int) -> Row:
    """Statistics of `result` (a BacktestResult) from record `first` on."""
    e = result.out["equity"]
    before = e[first - 1] if first > 0 else e[0]
    w = e[first:]
    peak = np.maximum.accumulate(np.r_[before, w])[1:]
    dd = float(np.nanmax(1.0 - w / peak)) if w.size else float("nan")
    prev = np.r_[before, w[:-1]]
    r = w / prev - 1.0
    i = int(np.nanargmin(r)) if np.isfinite(r).any() else 0
    below = np.flatnonzero(w < before)
    if not below.size:
        recovery = 0
    else:
        back = np.flatnonzero(w[below[0]:] >= before)
        recovery = int(below[0] + back[0]) if back.size else None
    words = result.out["portfolio_reasons"][first:]
    names = result.engine.reasons
    fired = {n: int(np.count_nonzero(words >> b & 1)) for b, n in enumerate(names)
             if n.startswith(("limit:", "rule:")) and np.any(words >> b & 1)}
    return Row(name, dd, float(r[i]), int(result.ts[first + i]), recovery, fired,
               float(e[-1]), float(e[-1] / before - 1.0))


def run_episode(engine, panel, params, name: str, runner=None) -> list[Row]:
    lo, hi, _ = EPISODES[name]
    a = int(np.searchsorted(panel.ts, to_ns(lo), side="left"))
    b = int(np.searchsorted(panel.ts, to_ns(hi, end=True), side="right"))
    if a == 0 or b - a < 2 or panel.ts[-1] < to_ns(hi):
        covered = [k for k, (x, y, _) in EPISODES.items()
                   if panel.ts[0] < to_ns(x) and panel.ts[-1] >= to_ns(y)]
        raise StressError(f"the data ({_day(panel.ts[0])} to {_day(panel.ts[-1])}) does not "
                          f"cover {name} ({lo} to {hi}) with bars before it to warm up; "
                          f"episodes it covers: {', '.join(covered) or 'none'}")
    runner = runner or make_runner(engine)
    whole = backtest(engine, panel, params, runner=runner)
    window = backtest(engine, panel._take(slice(0, b), slice(None)), params, runner=runner,
                      start=a)
    rows = [stress_row(f"{name} {lo}..{hi}", window, 0),
            stress_row(f"same window, trading since {_day(panel.ts[0])}",
                       _cut(whole, b), a)]
    return rows


def run_shock(engine, panel, params, shock: Shock, t: int, start: int, symbols=None,
              runner=None) -> list[Row]:
    runner = runner or make_runner(engine)
    base = backtest(engine, panel, params, runner=runner, start=start)
    hit = backtest(engine, shocked(panel, shock, t, symbols), params, runner=runner,
                   start=start)
    return [stress_row("unshocked", base, t - start), stress_row("shocked", hit, t - start)]


def _cut(result, end: int):
    out = {k: v[:end] for k, v in result.out.items()}
    return type(result)(result.engine, result.ts[:end], out, result.metrics)


def _day(ns) -> str:
    return str(np.datetime64(int(ns), "ns").astype("datetime64[D]"))
