"""Bars: read a long Parquet file, validate it, and align it into dense ``[T, N]`` panels.

A bar file has one row per (timestamp, symbol) with the columns ``ts`` (a timestamp of any unit
or time zone, or a date), ``symbol`` (a string) and ``open high low close volume`` (numbers).
Extra columns are ignored.

Validation never repairs and never drops a row silently. Every problem in a row is reported
with its 0-based row in the file, and all but the ordering problems make the bar invalid:

==============  ====================================================================  ========
kind            problem                                                               the bar
==============  ====================================================================  ========
``missing``     the row has no ``ts`` or no ``symbol``, so it cannot be placed        (none)
``unsorted``    the row comes after a later bar of the same symbol in the file        valid
``duplicate``   two or more rows for one (ts, symbol); we cannot tell which is right  invalid
``bad_price``   an open, high, low or close that is not finite or not positive        invalid
``bad_volume``  a volume that is not finite or is negative                            invalid
``ohlc``        high below max(open, close, low) or low above min(open, close, high)  invalid
``no_volume``   an instrument whose volume is 0 or missing on more than half of its   valid
                bars (close-only data): the market model fills at most a fraction
                of a bar's volume, so its orders would rarely or never fill
``split``       the close and the open jump from the previous valid close by a split  valid
                ratio (x1/2, x1/3, x2, ...: `split_jumps`): an unadjusted split,
                which a policy would see as a -50% (or +100%) return
==============  ====================================================================  ========

``ohlc`` allows a relative tolerance of 1e-9 for float rounding. ``no_volume`` is one issue per
instrument, with no row (``row`` is None); these come first in ``issues``, the row problems
follow in file order.

The panel is built in time order whatever the order of the file, so an unsorted file gives the
same panel as the sorted one. Invalid and missing bars are NaN in every field and False in
``valid``: code that forgets the mask meets NaN, never a plausible wrong number. Missing bars (a
symbol without a row at a timestamp where others have one) are not issues; the report counts
them per symbol in ``coverage``.

>>> panel, report = load_bars("examples/data/us_tech_daily.parquet", start="2012-01-01")
>>> panel.symbols
('AAPL', 'FB', 'GOOG', 'IBM', 'MSFT')
"""
from __future__ import annotations

import collections
import contextlib
import gc
import hashlib
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crowe.stdlib import bars

COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
FIELDS = bars.FIELDS
ISSUE_KINDS = ("missing", "unsorted", "duplicate", "bad_price", "bad_volume", "ohlc",
               "no_volume", "split")
OHLC_RTOL = 1e-9  # float rounding only: a real inconsistency is far larger
_ALIASES = {"ts": ("date", "time", "timestamp", "datetime", "dt"),
            "symbol": ("ticker", "sym", "asset")}


class DataError(Exception):
    """Bars that cannot be loaded at all: a file that is missing, unreadable or not Parquet, a
    missing column, a column of the wrong type, no rows, or a request (dates, symbols) that the
    file cannot meet. The message is for the user: it names the file, what is wrong and what to
    do. Problems in individual rows are never raised; they are reported as :class:`DataIssue`."""


@dataclass(frozen=True, eq=False)
class Panel:
    """Bars aligned on one time axis: ``ts`` [T] int64 ns since the epoch (UTC), strictly
    increasing; ``symbols`` sorted; float64 [T, N] fields, NaN where there is no valid bar."""

    ts: np.ndarray
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        for name in ("ts", *FIELDS, "valid"):
            getattr(self, name).setflags(write=False)

    @property
    def T(self) -> int:
        return len(self.ts)

    @property
    def N(self) -> int:
        return len(self.symbols)

    def slice(self, start_ts=None, end_ts=None) -> Panel:
        """The bars with ``start_ts <= ts <= end_ts`` (ns, ISO string, datetime or datetime64;
        a date-only end includes that whole day)."""
        lo = -(2**63) if start_ts is None else to_ns(start_ts)
        hi = 2**63 - 1 if end_ts is None else to_ns(end_ts, end=True)
        rows = (self.ts >= lo) & (self.ts <= hi)
        return self._take(rows, slice(None))

    def select(self, symbols: Iterable[str]) -> Panel:
        """The given symbols' columns (kept in sorted order) over the same time axis."""
        wanted = set(symbols)
        unknown = sorted(wanted - set(self.symbols))
        if unknown:
            raise KeyError(f"symbols not in the panel: {', '.join(unknown)}")
        cols = np.array([s in wanted for s in self.symbols], dtype=bool)
        return self._take(slice(None), cols)

    def _take(self, rows, cols) -> Panel:
        symbols = tuple(np.array(self.symbols, dtype=object)[cols]) if self.N else ()
        arrays = {name: getattr(self, name)[rows][:, cols].copy() for name in (*FIELDS, "valid")}
        return Panel(ts=self.ts[rows].copy(), symbols=symbols, **arrays)


@dataclass(frozen=True, slots=True)
class DataIssue:
    """One problem in a bar file; ``row`` is 0-based in the file (None for a problem of a whole
    instrument), ``ts`` an ISO string."""

    kind: str
    row: int | None
    symbol: str | None
    ts: str | None
    message: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "row": self.row, "symbol": self.symbol, "ts": self.ts,
                "message": self.message}


@dataclass(frozen=True)
class Coverage:
    """How much of the time axis one symbol covers. ``missing`` = T - ``bars``; ``gaps`` is the
    part of it between the symbol's first and last bar (the rest is late listing or early end)."""

    symbol: str
    bars: int
    missing: int
    gaps: int
    first_ts: str | None
    last_ts: str | None

    def to_json(self) -> dict:
        return {"bars": self.bars, "missing": self.missing, "gaps": self.gaps,
                "first_ts": self.first_ts, "last_ts": self.last_ts}


@dataclass(frozen=True)
class DataReport:
    """What loading found: ``rows`` read (after filters), ``symbols`` (N), ``bars`` (T), every
    issue, the number of bars present but invalid, and per-symbol coverage."""

    path: str
    rows: int
    symbols: int
    bars: int
    issues: tuple[DataIssue, ...]
    invalid_bars: int
    first_ts: str | None
    last_ts: str | None
    coverage: tuple[Coverage, ...] = field(default=())
    sha256: str | None = None          # of the file's bytes, as read

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def counts(self) -> dict[str, int]:
        found = collections.Counter(i.kind for i in self.issues)
        return {k: found[k] for k in ISSUE_KINDS if found[k]}

    @property
    def missing_bars(self) -> int:
        return sum(c.missing for c in self.coverage)

    def to_json(self) -> dict:
        return {
            "path": self.path, "sha256": self.sha256, "rows": self.rows, "symbols": self.symbols, "bars": self.bars,
            "first_ts": self.first_ts, "last_ts": self.last_ts, "ok": self.ok,
            "invalid_bars": self.invalid_bars, "missing_bars": self.missing_bars,
            "counts": self.counts,
            "coverage": {c.symbol: c.to_json() for c in self.coverage},
            "issues": [i.to_json() for i in self.issues],
        }

    def counts_for(self, symbols: Iterable[str] | None = None) -> dict[str, int]:
        """Issue counts by kind, only for ``symbols`` (and rows with no symbol) when given."""
        if symbols is None:
            return self.counts
        wanted = set(symbols)
        found = collections.Counter(i.kind for i in self.issues
                                    if i.symbol is None or i.symbol in wanted)
        return {k: found[k] for k in ISSUE_KINDS if found[k]}

    def summary(self, symbols: Iterable[str] | None = None) -> str | None:
        """One line with the issue counts by kind (for ``symbols`` when given), as
        ``crowe data check`` counts them, or None when there is no issue."""
        counts = self.counts_for(symbols)
        if not counts:
            return None
        text = ", ".join(f"{n:,} {k}" for k, n in counts.items())
        return f"`{self.path}` has data problems: {text} (`crowe data check {self.path}` lists" \
               " each one)"

    def render_text(self, limit: int = 20) -> str:
        """A compact summary: counts, issue kinds, the first ``limit`` issues, thin coverage."""
        span = f" ({self.first_ts} to {self.last_ts})" if self.first_ts else ""
        lines = [f"{self.path}: {self.rows:,} rows, {self.symbols:,} symbols,"
                 f" {self.bars:,} bars{span}"]
        if self.sha256:
            lines.append(f"sha256: {self.sha256}")
        lines += [
                 f"invalid bars: {self.invalid_bars:,}; missing bars: {self.missing_bars:,}"
                 f" ({_gap_summary(self.coverage)})"]
        counts = ", ".join(f"{n:,} {k}" for k, n in self.counts.items())
        lines.append(f"issues: {counts or 'none'}")
        lines += [f"  {'row ' + str(i.row) if i.row is not None else 'all rows'}"
                  f"  {i.symbol or '-'}  {i.ts or '-'}  {i.kind}: {i.message}"
                  for i in self.issues[:limit]]
        if len(self.issues) > limit:
            lines.append(f"  ... and {len(self.issues) - limit:,} more")
        return "\n".join(lines)


def _gap_summary(coverage: Sequence[Coverage]) -> str:
    gapped = sorted((c for c in coverage if c.gaps), key=lambda c: (-c.gaps, c.symbol))
    edges = sum(c.missing - c.gaps for c in coverage)
    text = f"{edges:,} before a symbol's first or after its last bar, "
    if not gapped:
        return text + "none in gaps"
    worst = ", ".join(f"{c.symbol} {c.gaps}" for c in gapped[:5])
    worst += ", ..." if len(gapped) > 5 else ""
    return text + f"{sum(c.gaps for c in gapped):,} in gaps of {len(gapped)} symbols: {worst}"


# -- loading -------------------------------------------------------------------------------------

def load_bars(path, start=None, end=None, symbols: Iterable[str] | None = None
              ) -> tuple[Panel, DataReport]:
    """Read, validate and align a bar file.

    ``start`` and ``end`` (ISO strings such as ``2010-01-01``, datetimes or ns) are inclusive; a
    date-only ``end`` includes that whole day. ``symbols`` keeps only those symbols' rows; asking
    for one that the file does not have is a :class:`DataError`. Rows with no ``ts`` or no
    ``symbol`` are always reported, since we cannot tell whether a filter would keep them.
    """
    path = os.fspath(path)
    if symbols is not None:
        symbols = sorted({symbols} if isinstance(symbols, str) else set(symbols))
    table = _read(path)
    keep = _keep(table, path, start, end, symbols)
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        raise DataError(f"`{path}`: no rows {_window(start, end, symbols)}")
    panel, issues, coverage = _align(table.filter(pa.array(keep)), rows, symbols)
    return panel, _report(path, panel, issues, coverage, rows.size, file_sha256(path))


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes (hex), the identity of a data file in results and journals."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def align(bars: pa.Table | Mapping[str, Sequence]) -> Panel:
    """Align an in-memory long table (a pyarrow Table, or a mapping of the seven columns to
    arrays) into a panel, with the same checks as :func:`load_bars`."""
    table = bars if isinstance(bars, pa.Table) else _to_table(**{c: bars[c] for c in COLUMNS})
    _check_schema("<memory>", table.schema)
    if table.num_rows == 0:
        raise DataError("`<memory>`: the table has no rows")
    return _align(table.select(list(COLUMNS)), np.arange(table.num_rows))[0]


def write_bars(path, ts, symbol, open, high, low, close, volume, compression: str = "zstd") -> None:
    """Write a long bar file. ``ts`` may be datetime64 (``datetime64[D]`` is stored as a date),
    ISO strings, int ns, or a pyarrow array; None/NaT become nulls. Every data page carries a
    CRC-32 checksum, which every read verifies."""
    table = _to_table(ts, symbol, open, high, low, close, volume)
    write_table(table, path, compression=compression)


def write_table(table: pa.Table, path, compression: str = "zstd") -> None:
    """Write a Parquet file with a CRC-32 checksum on every data page (the project's files:
    bars, backtest results, journal exports)."""
    pq.write_table(table, os.fspath(path), compression=compression, write_page_checksum=True)


def _read(path: str) -> pa.Table:
    if not os.path.exists(path):
        raise DataError(f"`{path}`: no such file")
    if os.path.isdir(path):
        raise DataError(f"`{path}` is a directory; give the path of one Parquet bar file")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"`{path}` is not a readable Parquet file ({_first_line(e)}); bars must be"
                        f" Parquet with columns {', '.join(COLUMNS)}") from None
    _check_schema(path, schema)
    try:
        table = pq.read_table(path, columns=list(COLUMNS), page_checksum_verification=True)
    except (pa.ArrowException, OSError) as e:
        if "checksum" in str(e).lower():
            raise DataError(f"`{path}` is damaged: a data page does not match its checksum "
                            "(the file was altered or corrupted after it was written); "
                            "restore it from its source") from None
        raise DataError(f"`{path}`: cannot read the bars ({_first_line(e)})") from None
    if table.num_rows == 0:
        raise DataError(f"`{path}` has no rows")
    return table


def _check_schema(path: str, schema: pa.Schema) -> None:
    found = list(schema.names)
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        hints = "".join(f"; rename `{h}` to `{c}`" for c in missing if (h := _alias(c, found)))
        raise DataError(f"`{path}`: missing columns {_ticks(missing)} (found {_ticks(found)})"
                        f"{hints}; bars need {', '.join(COLUMNS)}")
    for name in COLUMNS:
        type_ = schema.field(name).type
        problem = _type_problem(name, type_)
        if problem:
            raise DataError(f"`{path}`: column `{name}` has type {type_}; {problem}")


def _alias(column: str, found: list[str]) -> str | None:
    for name in found:
        if name.lower() == column or name.lower() in _ALIASES.get(column, ()):
            return name
    return None


def _type_problem(name: str, t: pa.DataType) -> str | None:
    if name == "ts":
        ok = pa.types.is_timestamp(t) or pa.types.is_date(t)
        return None if ok else "expected a timestamp or a date (parse strings before writing)"
    if name == "symbol":
        value = t.value_type if pa.types.is_dictionary(t) else t
        ok = pa.types.is_string(value) or pa.types.is_large_string(value)
        return None if ok else "expected strings"
    ok = pa.types.is_integer(t) or pa.types.is_floating(t)
    return None if ok else "expected numbers (integers or floats)"


def _keep(table: pa.Table, path: str, start, end, symbols) -> np.ndarray:
    keep = np.ones(table.num_rows, dtype=bool)
    ts, ts_ok = _ts_ns(table["ts"], path)
    if start is not None:
        keep &= ~ts_ok | (ts >= to_ns(start))
    if end is not None:
        keep &= ~ts_ok | (ts <= to_ns(end, end=True))
    if symbols is not None:
        keep &= _symbol_filter(table["symbol"], symbols, path)
    return keep


def _symbol_filter(column: pa.ChunkedArray, wanted: list[str], path: str) -> np.ndarray:
    strings = column.cast(pa.string())
    have = set(pc.unique(strings).to_pylist())
    unknown = [s for s in wanted if s not in have]
    if unknown:
        raise DataError(f"`{path}`: no bars for symbols {_ticks(unknown)}")
    hit = pc.is_in(strings, value_set=pa.array(wanted, pa.string()))
    return _bools(hit) | _bools(pc.is_null(strings))


def _window(start, end, symbols) -> str:
    parts = [f"from {start}" if start is not None else "", f"to {end}" if end is not None else "",
             f"for {', '.join(symbols)}" if symbols is not None else ""]
    return " ".join(p for p in parts if p) or "to read"


# -- alignment and checks ------------------------------------------------------------------------
#
# Each check returns (kind, where, messages), one message per hit. `_missing` and `_unsorted`
# give positions in the table; the checks that invalidate a bar give indices into `pos`, the
# positions of the rows that could be placed, and `_align` marks those bars invalid.

_Found = tuple[str, np.ndarray, list[str]]

@dataclass(frozen=True)
class _Rows:
    """The rows being aligned, as flat numpy columns; ``pos`` indexes them, ``rows`` maps a
    position to its row in the file."""

    rows: np.ndarray
    ts: np.ndarray
    ts_ok: np.ndarray
    strings: pa.ChunkedArray
    unit: str

    def issues(self, found: Sequence[_Found]) -> list[DataIssue]:
        """One issue per (kind, position, message), in file order, built in bulk since a
        shuffled file of a million rows has a million of them."""
        kinds = [kind for kind, pos, _ in found for _ in range(pos.size)]
        pos = np.concatenate([p for _, p, _ in found]).astype(np.int64)
        messages = [m for _, _, ms in found for m in ms]
        sizes = [p.size for _, p, _ in found]
        rank = np.array([ISSUE_KINDS.index(k) for k, _, _ in found]).repeat(sizes)
        order = np.lexsort((rank, self.rows[pos]))
        pos = pos[order]
        symbols = self.strings.take(pa.array(pos)).to_pylist()
        stamps = np.array(_iso(self.ts[pos], self.unit), dtype=object)
        stamps = np.where(self.ts_ok[pos], stamps, None)
        with _gc_paused():  # collections triggered by a million new objects find nothing to free
            return [DataIssue(kinds[i], row, sym, t, messages[i]) for i, row, sym, t in
                    zip(order.tolist(), self.rows[pos].tolist(), symbols, stamps.tolist())]


@contextlib.contextmanager
def _gc_paused():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _align(table: pa.Table, rows: np.ndarray, universe: Sequence[str] | None = None):
    ts, ts_ok = _ts_ns(table["ts"], "<memory>")
    strings = table["symbol"].cast(pa.string())
    placed = ts_ok & _bools(pc.is_valid(strings))
    symbols = tuple(universe or sorted(pc.unique(strings.filter(pa.array(placed))).to_pylist()))
    pos = np.flatnonzero(placed)
    times, ti = np.unique(ts[pos], return_inverse=True)
    ci = _codes(strings, symbols)[pos]
    r = _Rows(rows, ts, ts_ok, strings, _iso_unit(times))
    x = {name: _floats(table[name])[pos] for name in FIELDS}
    ordered = _strictly_ordered(ti, ci, len(times), len(symbols))
    # a file sorted by (ts, symbol) or (symbol, ts) without repeats has no row out of time
    # order and no duplicate: both checks (a sort each) are skipped, with the same result
    found = [_missing(r, placed),
             _none("unsorted") if ordered else _unsorted(r, pos, ti, ci, times)]
    invalid = np.zeros(pos.size, dtype=bool)
    checks = (_bad_prices, _bad_volumes, _ohlc) if ordered else \
        (_duplicates, _bad_prices, _bad_volumes, _ohlc)
    for check in checks:
        kind, bad, messages = check(r, pos, ti, ci, x)
        found.append((kind, pos[bad], messages))
        invalid[bad] = True
    panel, present = _scatter(times, symbols, ti, ci, x, ~invalid)
    found.append(_split_issues(panel, ti[~invalid], ci[~invalid], pos[~invalid]))
    issues = _no_volume(symbols, ci, x["volume"]) + r.issues(found)
    return panel, issues, _coverage(panel, present, r.unit)


def _strictly_ordered(ti: np.ndarray, ci: np.ndarray, T: int, N: int) -> bool:
    """Whether the rows run in strictly increasing (ts, symbol) or (symbol, ts) order."""
    if ti.size < 2:
        return True
    ti, ci = ti.astype(np.int64), ci.astype(np.int64)
    return bool((np.diff(ti * N + ci) > 0).all() or (np.diff(ci * T + ti) > 0).all())


def _none(kind: str) -> _Found:
    return kind, np.zeros(0, dtype=np.int64), []


def _no_volume(symbols: Sequence[str], ci: np.ndarray, volume: np.ndarray) -> list[DataIssue]:
    """One ``no_volume`` issue per instrument whose volume is 0 or missing (not a finite
    positive number) on more than half of its rows."""
    n = len(symbols)
    with np.errstate(invalid="ignore"):
        none = ~(np.isfinite(volume) & (volume > 0))
    known = ci >= 0
    rows = np.bincount(ci[known], minlength=n)
    empty = np.bincount(ci[known], weights=none[known], minlength=n).astype(np.int64)
    out = []
    for j in np.flatnonzero(2 * empty > rows):
        how = "never" if empty[j] == rows[j] else "rarely"
        out.append(DataIssue(
            "no_volume", None, symbols[j], None,
            f"volume is 0 or missing on {empty[j]:,} of its {rows[j]:,} bars; the market model "
            f"fills at most a fraction of a bar's volume, so orders in {symbols[j]} would {how} "
            "fill (use bars with traded volume)"))
    return out


SPLIT_RATIOS = (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 8.0, 10.0, 20.0)  # k-for-1 splits (and 1-for-k)
SPLIT_RTOL = 0.02     # how close the close's jump must be to a ratio (the open's: 2.5x this)


@dataclass(frozen=True, slots=True)
class SplitJump:
    """A jump like an unadjusted split: at bar ``t`` of ``symbol`` the close is ``ratio``
    times the previous valid close, within `SPLIT_RTOL` of ``factor`` (1/2 for a 2-for-1
    split, 2 for a 1-for-2 reverse split)."""

    symbol: str
    t: int
    ratio: float
    factor: float

    @property
    def label(self) -> str:
        from fractions import Fraction
        f = Fraction(self.factor).limit_denominator(4)
        if f < 1:
            return f"{f.denominator}-for-{f.numerator} split"
        return f"{f.denominator}-for-{f.numerator} reverse split"


def split_jumps(panel: Panel) -> list[SplitJump]:
    """Every bar whose close and open both jump from the previous valid close of the symbol
    by one of the split ratios ``1/k`` or ``k`` (`SPLIT_RATIOS`), in time order. Real moves
    that large, that close to a ratio, at the open and the close alike, are rare; spin-offs
    that take a third of the price are found too (and are adjusted alike)."""
    prev = _previous_valid(panel.close)
    with np.errstate(all="ignore"):
        r = np.log(panel.close / prev)
    factors = np.log(np.r_[1 / np.array(SPLIT_RATIOS), SPLIT_RATIOS])
    tol = math.log1p(SPLIT_RTOL)
    # only a bar whose close moved at least as far as the smallest ratio (less the tolerance)
    # can be near one: the nearest-ratio search runs on those few bars, not on every bar
    with np.errstate(invalid="ignore"):
        t, j = np.nonzero(np.abs(r) > np.abs(factors).min() - tol)
    rc = r[t, j]
    with np.errstate(all="ignore"):
        g = np.log(panel.open[t, j] / prev[t, j])
    f = factors[np.argmin(np.abs(rc[:, None] - factors), axis=-1)] if t.size else rc
    with np.errstate(invalid="ignore"):
        hit = (np.abs(rc - f) < tol) & (np.abs(g - f) < math.log1p(2.5 * SPLIT_RTOL))
    return [SplitJump(panel.symbols[b], int(a), float(np.exp(x)), float(np.exp(y)))
            for a, b, x, y in zip(t[hit].tolist(), j[hit].tolist(), rc[hit], f[hit])]


def _previous_valid(close: np.ndarray) -> np.ndarray:
    """The last finite close strictly before each bar, per column (NaN before the first)."""
    T = close.shape[0]
    idx = np.where(np.isfinite(close), np.arange(T)[:, None], -1)
    idx = np.maximum.accumulate(idx, axis=0)
    before = np.r_[np.full((1, close.shape[1]), -1), idx[:-1]]
    out = np.take_along_axis(close, np.maximum(before, 0), axis=0)
    return np.where(before >= 0, out, np.nan)


def _split_issues(panel: Panel, ti, ci, pos) -> _Found:
    where = np.full((panel.T, panel.N), -1, dtype=np.int64)
    where[ti, ci] = pos
    jumps = split_jumps(panel)
    messages = [f"close {float(panel.close[s.t, panel.symbols.index(s.symbol)])!r} is "
                f"{s.ratio:.4g} times the previous close: like an unadjusted {s.label}, which a "
                f"policy sees as a {s.ratio - 1:+.0%} return (`crowe data import --adjust "
                "splits` adjusts it)" for s in jumps]
    at = np.array([where[s.t, panel.symbols.index(s.symbol)] for s in jumps], dtype=np.int64)
    return "split", at, messages


def _scatter(times, symbols, ti, ci, x, good) -> tuple[Panel, np.ndarray]:
    shape = (len(times), len(symbols))
    present = np.zeros(shape, dtype=bool)
    present[ti, ci] = True
    valid = np.zeros(shape, dtype=bool)
    valid[ti[good], ci[good]] = True
    arrays = {}
    for name in FIELDS:
        arrays[name] = np.full(shape, np.nan)
        arrays[name][ti[good], ci[good]] = x[name][good]
    return Panel(ts=times, symbols=symbols, valid=valid, **arrays), present


def _missing(r: _Rows, placed: np.ndarray) -> _Found:
    pos = np.flatnonzero(~placed)
    no_symbol = _bools(pc.is_null(r.strings))[pos]
    what = np.where(~r.ts_ok[pos] & no_symbol, "no `ts` and no `symbol`",
                    np.where(no_symbol, "no `symbol`", "no `ts`"))
    return "missing", pos, [f"row has {w}; it cannot be placed" for w in what]


def _unsorted(r: _Rows, pos, ti, ci, times) -> _Found:
    order = np.argsort(ci, kind="stable")
    key = ci[order].astype(np.int64) * max(len(times), 1) + ti[order]
    before = np.maximum.accumulate(key)[:-1]
    late = np.flatnonzero(key[1:] < before)
    prior = _iso(times[before[late] % len(times)], r.unit)
    return "unsorted", pos[order[late + 1]], [
        f"out of time order: follows a bar of this symbol at {p}" for p in prior]


def _duplicates(r: _Rows, pos, ti, ci, x) -> _Found:
    order = np.lexsort((ti, ci))
    same = (ci[order][1:] == ci[order][:-1]) & (ti[order][1:] == ti[order][:-1])
    dup = np.zeros(pos.size, dtype=bool)
    dup[1:] |= same
    dup[:-1] |= same
    group = np.cumsum(dup & ~np.r_[False, same])[dup]
    members = order[dup]
    runs = np.split(r.rows[pos[members]], np.flatnonzero(np.diff(group)) + 1)
    texts = [", ".join(str(int(v)) for v in run) for run in runs]
    messages = [f"rows {texts[g]} are bars for the same symbol and ts; all marked invalid"
                for g in group - group[0]] if group.size else []
    return "duplicate", members, messages


def _bad_prices(r: _Rows, pos, ti, ci, x) -> _Found:
    prices = np.stack([x[n] for n in FIELDS[:4]], axis=1)
    wrong = ~(np.isfinite(prices) & (prices > 0))
    bad = wrong.any(axis=1)
    messages = [", ".join(f"{FIELDS[j]} {float(prices[i, j])!r}" for j in np.flatnonzero(wrong[i]))
                + " (prices must be finite and positive)" for i in np.flatnonzero(bad)]
    return "bad_price", np.flatnonzero(bad), messages


def _bad_volumes(r: _Rows, pos, ti, ci, x) -> _Found:
    v = x["volume"]
    bad = ~(np.isfinite(v) & (v >= 0))
    messages = [f"volume {float(v[i])!r} (must be finite and not negative)"
                for i in np.flatnonzero(bad)]
    return "bad_volume", np.flatnonzero(bad), messages


def _ohlc(r: _Rows, pos, ti, ci, x) -> _Found:
    o, h, l, c = (x[n] for n in FIELDS[:4])
    top, bottom = np.stack([o, c, l], axis=1), np.stack([o, c, h], axis=1)
    with np.errstate(invalid="ignore"):
        priced = (np.isfinite(top) & (top > 0)).all(axis=1) & np.isfinite(h) & (h > 0)
        high_bad = priced & (h < top.max(axis=1) * (1 - OHLC_RTOL))
        low_bad = priced & (l > bottom.min(axis=1) * (1 + OHLC_RTOL))
    bad = high_bad | low_bad
    messages = []
    for i in np.flatnonzero(bad):
        parts = []
        if high_bad[i]:
            parts.append(_beyond("high", h[i], "below", top[i], ("open", "close", "low")))
        if low_bad[i]:
            parts.append(_beyond("low", l[i], "above", bottom[i], ("open", "close", "high")))
        messages.append("; ".join(parts))
    return "ohlc", np.flatnonzero(bad), messages


def _beyond(name, value, side, others, names) -> str:
    j = int(np.argmax(others) if side == "below" else np.argmin(others))
    return f"{name} {float(value)!r} is {side} {names[j]} {float(others[j])!r}"


def _coverage(panel: Panel, present: np.ndarray, unit: str) -> list[Coverage]:
    counts = present.sum(axis=0)
    first = present.argmax(axis=0) if panel.T else np.zeros(panel.N, dtype=int)
    last = panel.T - 1 - present[::-1].argmax(axis=0) if panel.T else first
    gaps = np.where(counts > 0, last - first + 1 - counts, 0)
    firsts = _iso(panel.ts[first], unit) if panel.T else [None] * panel.N
    lasts = _iso(panel.ts[last], unit) if panel.T else [None] * panel.N
    return [Coverage(s, int(counts[j]), int(panel.T - counts[j]), int(gaps[j]),
                     firsts[j] if counts[j] else None, lasts[j] if counts[j] else None)
            for j, s in enumerate(panel.symbols)]


def _report(path, panel, issues, coverage, rows, sha256=None) -> DataReport:
    unit = _iso_unit(panel.ts)
    ends = _iso(panel.ts[[0, -1]], unit) if panel.T else [None, None]
    invalid = sum(c.bars for c in coverage) - int(panel.valid.sum())
    return DataReport(path=path, rows=int(rows), symbols=panel.N, bars=panel.T,
                      issues=tuple(issues), invalid_bars=invalid, first_ts=ends[0],
                      last_ts=ends[-1], coverage=tuple(coverage), sha256=sha256)


# -- bar size ------------------------------------------------------------------------------------

_DAY_S = 86_400
_DAILY_SLACK = (4 * 3600, 3 * _DAY_S)   # a daily bar: 20 hours to 4 days apart (weekends, holidays)


def bar_spacing(ts: np.ndarray) -> float | None:
    """The bar size of a time axis in seconds: the median positive spacing of its timestamps
    (ns), or None with fewer than two distinct timestamps."""
    steps = np.diff(np.unique(np.asarray(ts, dtype=np.int64)))
    steps = steps[steps > 0]
    return float(np.median(steps)) / 1e9 if steps.size else None


def same_bar_size(bar_seconds: int, spacing: float) -> bool:
    """Whether data spaced ``spacing`` seconds apart (median) has bars of ``bar_seconds``. Daily
    and longer bars allow market closures: 1d matches a median spacing of 20 hours to 4 days
    (2d: 44 hours to 5 days, and so on); intraday bars must match exactly."""
    if bar_seconds >= _DAY_S:
        lo, hi = _DAILY_SLACK
        return bar_seconds - lo <= spacing <= bar_seconds + hi
    return spacing == bar_seconds


def bar_label(seconds: float) -> str:
    """`1d`, `5m`, `1h`, `30s`, as a policy writes a bar size (daily data, with its weekend gaps,
    is `1d`)."""
    if _DAY_S - _DAILY_SLACK[0] <= seconds <= _DAY_S + _DAILY_SLACK[1]:
        return "1d"
    for unit, size in (("w", 7 * _DAY_S), ("d", _DAY_S), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# -- columns and time ----------------------------------------------------------------------------

def _ts_ns(column: pa.ChunkedArray, path: str) -> tuple[np.ndarray, np.ndarray]:
    t = column.type
    target = pa.timestamp("ns", tz=t.tz) if pa.types.is_timestamp(t) else pa.timestamp("ns")
    try:
        ns = column.cast(target).cast(pa.int64())
    except pa.ArrowInvalid as e:
        raise DataError(f"`{path}`: column `ts` holds times that do not fit in nanoseconds since"
                        f" 1970 (years 1677 to 2262): {_first_line(e)}") from None
    return pc.fill_null(ns, 0).to_numpy(), _bools(pc.is_valid(ns))


def _codes(strings: pa.ChunkedArray, symbols: Sequence[str]) -> np.ndarray:
    codes = pc.index_in(strings, value_set=pa.array(list(symbols), pa.string()))
    return pc.fill_null(codes, -1).to_numpy().astype(np.int64)


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.float64(), safe=False).to_numpy()


def _bools(values) -> np.ndarray:
    return pc.fill_null(values, False).to_numpy(zero_copy_only=False).astype(bool)


def to_ns(value, end: bool = False) -> int:
    """Nanoseconds since the epoch (UTC) of an ISO string, date, datetime, datetime64 or int.
    Naive times are UTC. With ``end=True`` a date-only value means the last instant of that day."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, str):
        value = _parse_iso(value)
    if not isinstance(value, datetime):  # a date
        day = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
        return to_ns(day + timedelta(days=1)) - 1 if end else to_ns(day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (value - epoch) // timedelta(microseconds=1) * 1000


def _parse_iso(text: str):
    from crowe.dsl.quantity import QuantityError, check_ascii_digits
    try:
        check_ascii_digits(text)
    except QuantityError as e:
        raise DataError(f"{e}; write the date in ASCII digits, such as 2010-01-01") from None
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DataError(f"`{text}` is not an ISO date or time such as 2010-01-01 or"
                        " 2010-01-01T14:30:00Z") from None
    is_date = len(text.strip()) <= 10 and stamp == datetime(stamp.year, stamp.month, stamp.day)
    return stamp.date() if is_date else stamp


def _iso_unit(ns: np.ndarray) -> str:
    for unit, step in (("D", 86_400 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if not np.any(ns % step):
            return unit
    return "ns"


def _iso(ns: np.ndarray, unit: str) -> list[str]:
    stamps = np.asarray(ns, dtype=np.int64).astype("datetime64[ns]").astype(f"datetime64[{unit}]")
    if unit == "D":
        return np.datetime_as_string(stamps, unit="D").tolist()
    return np.datetime_as_string(stamps, unit=unit, timezone="UTC").tolist()


def _to_table(ts, symbol, open, high, low, close, volume) -> pa.Table:
    arrays = [_ts_array(ts), _as_arrow(symbol, pa.string())]
    arrays += [_as_arrow(np.asarray(v, dtype=np.float64) if not _is_arrow(v) else v, pa.float64())
               for v in (open, high, low, close, volume)]
    return pa.table(arrays, names=list(COLUMNS))


def _ts_array(ts):
    if _is_arrow(ts):
        return ts
    a = np.asarray(ts)
    if a.dtype.kind in "OUS":
        a = a.astype("datetime64[ns]")
    if a.dtype.kind in "iu":
        return pa.array(a.astype(np.int64), pa.timestamp("ns", tz="UTC"))
    if a.dtype == np.dtype("datetime64[D]"):
        return pa.array(a)
    return pa.array(a.astype("datetime64[ns]")).cast(pa.timestamp("ns", tz="UTC"))


def _as_arrow(values, type_):
    return values if _is_arrow(values) else pa.array(values, type_)


def _is_arrow(values) -> bool:
    return isinstance(values, (pa.Array, pa.ChunkedArray))


def _ticks(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
