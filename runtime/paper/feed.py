"""Bar feeds: where the paper runtime's bars come from.

A feed yields, in arrival order, either a `Bar` (one cross-section aligned to the engine's
symbols) or a `Refused` (a line or bar that could not be used, with the reason). New sources
(a live market-data connection) implement the same iteration.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import IO, Iterator, Protocol

import numpy as np

from crowe.stdlib import bars

from ..data import DataError, load_bars, to_ns

FIELDS = bars.FIELDS
# the timestamps a bar may carry: 64-bit nanoseconds, the smallest of which is numpy's NaT
TS_MIN, TS_MAX = -(2**63) + 1, 2**63 - 1


@dataclass(frozen=True)
class Bar:
    ts: int                       # nanoseconds since the epoch, UTC
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    valid: np.ndarray             # False where the instrument has no usable bar

    def arrays(self) -> dict:
        return {"ts": np.int64(self.ts), **{k: getattr(self, k) for k in FIELDS},
                "valid": self.valid}


@dataclass(frozen=True)
class Refused:
    where: str
    reason: str


class Feed(Protocol):
    def __iter__(self) -> Iterator[Bar | Refused]: ...


def _guard(bar: dict) -> np.ndarray:
    """Bars with non-finite or non-positive prices or bad volume are invalid for the bar."""
    ok = np.asarray(bar["valid"], bool).copy()
    for k in ("open", "high", "low", "close"):
        with np.errstate(invalid="ignore"):
            ok &= np.isfinite(bar[k]) & (bar[k] > 0)
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(bar["volume"]) & (bar["volume"] >= 0)
    return ok


class ReplayFeed:
    """A Parquet bar file replayed in time order, as fast as possible (`speed=None`) or at
    `speed` times real time."""

    def __init__(self, path: str, symbols, speed: float | None = None, sleep=time.sleep):
        panel, self.report = load_bars(path)
        missing = [s for s in symbols if s not in panel.symbols]
        if missing:
            raise DataError(f"`{path}` has no bars for {', '.join(missing)}, which the "
                            "policy trades")
        self.panel, self.speed, self.sleep = panel.select(symbols), speed, sleep
        # journaled with every bar: which file, by content
        self.source = f"replay:{path} sha256:{self.report.sha256}"

    def __iter__(self) -> Iterator[Bar | Refused]:
        p = self.panel
        for t in range(p.T):
            if self.speed and t > 0:
                self.sleep((p.ts[t] - p.ts[t - 1]) / 1e9 / self.speed)
            row = {k: np.array(getattr(p, k)[t], np.float64) for k in FIELDS}
            row["valid"] = np.array(p.valid[t], bool)
            row["valid"] = _guard(row)
            yield Bar(int(p.ts[t]), **{k: row[k] for k in FIELDS}, valid=row["valid"])


class StdinFeed:
    """One bar cross-section per line, as JSON:

        {"ts": "2010-01-04", "bars": {"AAPL": {"open": 1, "high": 1, "low": 1, "close": 1,
                                               "volume": 100}, ...}}

    A symbol that is absent (or has a missing field) is invalid for that bar; a line that is
    not such an object is refused and reported, never applied."""

    source = "stdin"

    def __init__(self, symbols, stream: IO[str]):
        self.symbols, self.stream = tuple(symbols), stream
        self.index = {s: i for i, s in enumerate(self.symbols)}

    def __iter__(self) -> Iterator[Bar | Refused]:
        for lineno, line in enumerate(self.stream, 1):
            if not line.strip():
                continue
            try:
                yield self.parse(line)
            except (ValueError, TypeError, KeyError, DataError) as e:
                yield Refused(f"line {lineno}", str(e) or type(e).__name__)

    def parse(self, line: str) -> Bar:
        obj = json.loads(line)
        if not isinstance(obj, dict) or "ts" not in obj or not isinstance(obj.get("bars"),
                                                                          dict):
            raise ValueError("expected an object with `ts` and `bars`")
        n = len(self.symbols)
        row = {k: np.full(n, np.nan) for k in FIELDS}
        valid = np.zeros(n, bool)
        for sym, fields in obj["bars"].items():
            i = self.index.get(sym)
            if i is None or not isinstance(fields, dict):
                continue
            vals = [fields.get(k) for k in FIELDS]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                for k, v in zip(FIELDS, vals):
                    row[k][i] = float(v) if math.isfinite(float(v)) else np.nan
                valid[i] = True
        row["valid"] = valid
        raw = obj["ts"]
        ts = int(raw) if isinstance(raw, int) and not isinstance(raw, bool) else \
            to_ns(str(raw))
        if not TS_MIN <= ts <= TS_MAX:
            shown = str(raw) if len(str(raw)) <= 40 else f"{str(raw)[:37]}..."
            raise ValueError(f"the timestamp `{shown}` is out of range (nanoseconds since 1970 "
                             "must fit in 64 bits: years 1678 to 2262)")
        return Bar(ts, **{k: row[k] for k in FIELDS}, valid=_guard(row))
