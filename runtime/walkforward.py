"""Walk-forward analysis: choose parameters in sample, trade them out of sample, roll on.

Folds: a training window of `train` followed by a test window of `test`, moved forward by
`step` (default `test`); anchored folds keep the first training start. For each fold:

1. In sample: every grid combination is backtested over the data up to the end of the
   training window, with the bars before the training window as warm-up (no trading), and the
   best by `select` is chosen (`sweep`, one compiled batch program for every fold).
2. Out of sample: the chosen parameters' step warms up on every bar before the test window
   (orders not sent), then takes over the book where the previous fold left it: cash,
   positions, equity, weights, the limits' state (drawdown peaks, cooldowns) and the kill
   switch carry across; orders still pending at a fold's last bar are cancelled at the switch.
   Only bars before the test window ever reach the choice or the warm-up.

The out-of-sample equity of the folds, stitched, is one continuous curve.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from .engine import Engine, panel_bars
from .metrics import compute_metrics
from .overfit import psr, summary
from .sweep import BatchRunner, batch_size, best, full_params, sweep

CARRIED = ("cash", "positions", "equity", "weights", "limits", "limit_cd", "override")
_SPAN = re.compile(r"^\s*(\d+)\s*(y|mo|w|d)\s*$")


class WalkForwardError(ValueError):
    """Windows that do not read or do not fit the data."""


def parse_span(text: str, what: str) -> tuple[int, int]:
    """`3y`, `6mo`, `4w`, `30d` as (months, days)."""
    m = _SPAN.match(text or "")
    if not m:
        raise WalkForwardError(f"`{what} {text}` is not a span such as `3y`, `6mo`, `4w` or "
                               "`30d`")
    n, unit = int(m.group(1)), m.group(2)
    if n == 0:
        raise WalkForwardError(f"`{what} {text}` must be longer than zero")
    return {"y": (12 * n, 0), "mo": (n, 0), "w": (0, 7 * n), "d": (0, n)}[unit]


def shift(ns: int, span: tuple[int, int], times: int = 1) -> int:
    """The instant `times` spans after `ns` (calendar months, then days; a day past the end
    of a month is clamped to its last day)."""
    d = dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc)
    months = d.month - 1 + span[0] * times
    y, m = d.year + months // 12, months % 12 + 1
    last = (dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1)).day
    d = d.replace(year=y, month=m, day=min(d.day, last)) + dt.timedelta(days=span[1] * times)
    return int(d.timestamp()) * 10**9 + d.microsecond * 1000


@dataclass(frozen=True)
class Fold:
    train: tuple[int, int]     # bar indices [start, end)
    test: tuple[int, int]


def folds(ts, first: int, train, test, step=None, anchored: bool = False) -> list[Fold]:
    ts = np.asarray(ts)
    step = step or test
    out, k = [], 0
    origin = int(ts[first])
    while True:
        t0 = origin if anchored else shift(origin, step, k)
        t1 = shift(t0, train) if not anchored else shift(shift(origin, train), step, k)
        t2 = shift(t1, test)
        a, b, c = (int(np.searchsorted(ts, x, side="left")) for x in (t0, t1, t2))
        if b >= len(ts) - 1:
            break
        if b - a >= 2 and c - b >= 2:
            out.append(Fold((a, b), (b, min(c, len(ts)))))
        k += 1
    if not out:
        raise WalkForwardError("the data is too short for one training window followed by a "
                               "test window; shorten --train or --test, or use more data")
    return out


@dataclass
class WalkForward:
    engine: Engine
    folds: list[Fold]
    chosen: list[dict]
    in_sample: list[dict]        # metrics of the chosen run in sample, per fold
    out_sample: list[dict]       # metrics of each fold's test window
    overfit: list[dict]          # each fold's in-sample sweep: PSR, DSR, PBO of its choice
    ts: np.ndarray               # the stitched out-of-sample bars
    equity: np.ndarray
    fold_of_bar: np.ndarray
    metrics: dict                # of the stitched curve
    psr: float                   # of the stitched out-of-sample returns
    positions: list = None       # per fold: (positions at its first bar, at its last bar)


def walk_forward(engine: Engine, panel, combos: list[dict], fold_list: list[Fold],
                 select: str = "sharpe", progress=None,
                 runner: BatchRunner | None = None) -> WalkForward:
    runner = runner or BatchRunner(engine, batch_size(engine, len(combos)))
    single = runner.single
    bars = {k: np.asarray(v) for k, v in panel_bars(panel, engine).items()}
    chosen, ins, outs, stats, eq, ts, fold_ix, pos = [], [], [], [], [], [], [], []
    book = None
    for i, f in enumerate(fold_list):
        res = sweep(engine, _upto(panel, f.train[1]), combos, f.train[0], runner=runner)
        order = best(res, select, len(combos))
        j = order[0]
        chosen.append(combos[j])
        ins.append(res.metrics[j])
        stats.append(summary(res.returns(), j))
        params = full_params(engine, combos[j])
        carry, _ = single(params, engine.init_carry(), _rows(bars, 0, f.test[0]),
                          quiet=f.test[0])
        if book is not None:
            carry = dict(carry, state=dict(carry["state"], **{k: book[k] for k in CARRIED}))
        carry, out = single(params, carry, _rows(bars, *f.test))
        book = carry["state"]
        outs.append(_metrics(engine, out))
        pos.append((out["positions"][0], out["positions"][-1]))
        eq.append(out["equity"])
        ts.append(np.asarray(panel.ts)[f.test[0]:f.test[1]])
        fold_ix.append(np.full(f.test[1] - f.test[0], i))
        if progress is not None:
            progress(i + 1, len(fold_list))
    equity = np.concatenate(eq)
    full = _stitched(engine, equity, outs)
    r = equity[1:] / equity[:-1] - 1.0
    return WalkForward(engine, fold_list, chosen, ins, outs, stats, np.concatenate(ts), equity,
                       np.concatenate(fold_ix), full, psr(r[np.isfinite(r)]), pos)


def _upto(panel, end: int):
    return panel._take(slice(0, end), slice(None))


def _rows(bars, a, b):
    return {k: v[a:b] for k, v in bars.items()}


def _metrics(engine, out):
    e = out["equity"]
    return compute_metrics(e, out["gross"] * e, out["net"] * e, out["traded_notional"],
                           out["costs"] + out["borrow"], engine.bars_per_year)


def _stitched(engine, equity, outs) -> dict:
    m = compute_metrics(equity, np.zeros_like(equity), np.zeros_like(equity),
                        np.zeros_like(equity), np.zeros_like(equity), engine.bars_per_year)
    m["costs_paid"] = float(sum(o["costs_paid"] for o in outs))
    for k in ("turnover", "avg_gross", "avg_net"):    # by bar-weighted fold averages
        w = np.array([o["bars"] for o in outs])
        m[k] = float(np.sum(w * np.array([o[k] for o in outs])) / w.sum())
    return m
