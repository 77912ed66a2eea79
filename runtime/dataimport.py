"""`crowe data import`: turn a CSV or Parquet file of prices into a bar file that
`crowe.runtime.data.load_bars` reads, then check it as `crowe data check` does.

Layouts:

- ``long``: one row per (time, symbol) with price columns; a file of one instrument may have
  no symbol column when ``--name SYMBOL`` names it.
- ``wide``: one time column and one column per symbol holding its close (close-only data such
  as adjusted-close tables): open, high and low are the close, and the volume is 0, which the
  check reports as ``no_volume`` (the market model fills a share of traded volume only).
- ``auto`` (the default): ``long`` when the file has a symbol column or ``--name`` is given,
  else ``wide`` when it has no close column.

Columns are found by name, case-insensitively (``date``, ``ticker``, ``Adj Close``, ...) or
given with ``--ts COL --symbol COL --open COL ...``. Missing open, high or low take the close;
a missing volume is 0.

Time: ISO dates stay dates (a trading day has no time zone); ISO times with an offset or
``Z`` are converted to UTC; times without one are in ``--tz`` (default UTC) and converted to
UTC; ``--ts-format`` parses anything else (strptime codes, e.g. ``%Y%m%d`` or
``%m/%d/%Y %H:%M``).

Adjustment (``--adjust``):

- ``none`` (default): prices as they are.
- ``adjusted``: with an adjusted close column, every price is multiplied by
  ``adj_close / close`` of its row (splits and dividends), and the volume divided by it, so
  that ``close * volume`` (traded value) is unchanged.
- ``splits``: every split-like jump that `crowe.runtime.data.split_jumps` finds (the close and
  the open at a split ratio such as 1/2 of the previous close) is adjusted: the prices before
  it are multiplied by the nominal ratio and the volumes divided by it.

The rows are written sorted by time and symbol; nothing is dropped or repaired, so the check
that follows reports every problem the source has.
"""
from __future__ import annotations

import os
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from .data import COLUMNS, DataError, align, split_jumps, write_table

FIELDS = ("open", "high", "low", "close", "volume", "adj_close")
GUESSES = {"ts": ("ts", "date", "time", "timestamp", "datetime", "dt"),
           "symbol": ("symbol", "ticker", "sym", "asset"),
           "open": ("open",), "high": ("high",), "low": ("low",), "close": ("close",),
           "volume": ("volume", "vol"),
           "adj_close": ("adj_close", "adj close", "adjclose", "adjusted_close",
                         "adjusted close", "adj. close")}
NULLS = ["", "NA", "na", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "none", "-"]
LAYOUTS = ("auto", "long", "wide")
ADJUST = ("none", "adjusted", "splits")


@dataclass
class Imported:
    """What an import did: the table written, and notes for the user."""

    table: pa.Table
    layout: str
    notes: list[str] = field(default_factory=list)


def import_bars(src: str, out: str, columns: dict | None = None, layout: str = "auto",
                name: str | None = None, tz: str | None = None, ts_format: str | None = None,
                adjust: str = "none", force: bool = False) -> Imported:
    """Read ``src``, build the long bar table, adjust it as asked and write it to ``out``."""
    _check_out(out, force)
    table = read_source(src)
    done = to_bars(table, src, columns or {}, layout, name, tz, ts_format, adjust)
    try:
        write_table(done.table, out)
    except OSError as e:
        raise DataError(f"cannot write `{out}` ({e.strerror or e}); choose another -o") \
            from None
    return done


def _check_out(out: str, force: bool) -> None:
    path = Path(out)
    if path.is_dir():
        raise DataError(f"-o `{out}` is a directory; give the path of the Parquet file to write")
    if path.exists() and not force:
        raise DataError(f"`{out}` exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise DataError(f"-o `{out}`: the directory `{path.parent}` does not exist")


def read_source(src: str) -> pa.Table:
    """A CSV (``.csv``, ``.csv.gz``, ``.txt``, ...) or Parquet file, by its content."""
    if not os.path.exists(src):
        raise DataError(f"`{src}`: no such file")
    if os.path.isdir(src):
        raise DataError(f"`{src}` is a directory; give one CSV or Parquet file")
    with open(src, "rb") as f:
        parquet = f.read(4) == b"PAR1"
    try:
        if parquet:
            return pq.read_table(src)
        options = pcsv.ConvertOptions(null_values=NULLS, strings_can_be_null=True)
        return pcsv.read_csv(src, convert_options=options)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
        kind = "Parquet" if parquet else "CSV"
        raise DataError(f"`{src}` cannot be read as {kind} ({_first_line(e)}); give a CSV "
                        "file with a header row, or a Parquet file") from None


def to_bars(table: pa.Table, src: str, columns: dict, layout: str, name: str | None,
            tz: str | None, ts_format: str | None, adjust: str) -> Imported:
    if table.num_rows == 0:
        raise DataError(f"`{src}` has no rows")
    found = _columns(table, src, columns)
    layout = _layout(found, layout, name, src)
    notes: list[str] = []
    ts = parse_ts(table[found["ts"]], src, found["ts"], tz, ts_format, notes)
    if layout == "wide":
        long = _wide(table, src, found["ts"], ts, notes)
    else:
        long = _long(table, src, found, ts, name, notes)
    if found.get("adj_close") and adjust == "none" and layout == "long":
        notes.append(f"the source has an adjusted close (`{found['adj_close']}`), not used: "
                     "`--adjust adjusted` adjusts the prices for splits and dividends")
    long = _adjust(long, adjust, src, notes)
    order = pc.sort_indices(long, sort_keys=[("ts", "ascending"), ("symbol", "ascending")])
    return Imported(long.take(order).select(list(COLUMNS)), layout, notes)


def _columns(table: pa.Table, src: str, given: dict) -> dict:
    names = table.column_names
    out = {}
    for key, col in given.items():
        if col is None:
            continue
        if col not in names:
            raise DataError(f"`{src}` has no column `{col}` (for --{key.replace('_', '-')}); "
                            f"its columns are {_ticks(names)}")
        out[key] = col
    lower = {_norm(n): n for n in names}
    for key, guesses in GUESSES.items():
        if key not in out:
            hit = next((lower[g] for g in map(_norm, guesses) if g in lower), None)
            if hit is not None and hit not in out.values():
                out[key] = hit
    if "ts" not in out:
        raise DataError(f"`{src}` has no time column (looked for {_ticks(GUESSES['ts'])}); "
                        f"name it with --ts (columns: {_ticks(names)})")
    return out


def _norm(name: str) -> str:
    return re.sub(r"[\s_.]+", "_", name.strip().lower())


def _layout(found: dict, layout: str, name: str | None, src: str) -> str:
    if layout == "auto":
        layout = "long" if "symbol" in found or name else \
            "wide" if "close" not in found else "long"
    if layout == "long" and "symbol" not in found and not name:
        raise DataError(f"`{src}` has no symbol column: name the column with --symbol, name "
                        "the one instrument of the file with --name SYMBOL, or read it as one "
                        "column per symbol with --layout wide")
    if layout == "long" and "close" not in found:
        raise DataError(f"`{src}` has no close column; name it with --close COL (or read the "
                        "file as one column per symbol with --layout wide)")
    return layout


# -- time ---------------------------------------------------------------------------------------

def parse_ts(column: pa.ChunkedArray, src: str, col: str, tz: str | None,
             ts_format: str | None, notes: list[str]) -> pa.ChunkedArray:
    """The column as dates or as UTC timestamps (see the module docstring)."""
    zone = _zone(tz)
    t = column.type
    if ts_format is not None:
        column = _strptime(column.cast(pa.string()), src, col, ts_format)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        column = _iso(column, src, col)
    elif not (pa.types.is_timestamp(t) or pa.types.is_date(t)):
        raise DataError(f"`{src}`: column `{col}` holds {t} values, not times; give "
                        "--ts-format (e.g. `%Y%m%d`) to parse them")
    if pa.types.is_null(column.type) or column.null_count == len(column):
        raise DataError(f"`{src}`: column `{col}` has no times")
    t = column.type
    if pa.types.is_date(t):
        if tz:
            notes.append(f"`{col}` holds dates: days have no time zone, --tz {tz} moves none")
        return column.cast(pa.date32())
    if t.tz is None:
        ns = column.cast(pa.timestamp("ns"))
        if _all_midnight(ns) and not tz:
            return ns.cast(pa.date32())
        try:
            ns = pc.assume_timezone(ns, zone or "UTC", ambiguous="raise", nonexistent="raise")
        except pa.ArrowInvalid as e:
            raise DataError(f"`{src}`: column `{col}`: {_first_line(e)} in --tz {tz} (a "
                            "daylight-saving change); give times in UTC or with an offset") \
                from None
        if not tz:
            notes.append(f"`{col}` has times without a zone: read as UTC (give --tz ZONE "
                         "when they are local times)")
        return ns.cast(pa.timestamp("ns", tz="UTC"))
    return column.cast(pa.timestamp("ns", tz="UTC"))


def _zone(tz: str | None) -> str | None:
    if tz is None:
        return None
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise DataError(f"--tz `{tz}` is not a time zone; give an IANA name such as UTC, "
                        "America/New_York or Europe/London") from None
    return tz


def _iso(column: pa.ChunkedArray, src: str, col: str) -> pa.ChunkedArray:
    for target in (pa.date32(), pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            return column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    row, value = _first_unparsed(column)
    raise DataError(f"`{src}`: column `{col}`, row {row}: `{value}` is not an ISO date or time "
                    "(2010-01-04, 2010-01-04T14:30:00, 2010-01-04T09:30:00-05:00), or the "
                    "column mixes times with and without an offset; give --ts-format (e.g. "
                    "`%m/%d/%Y`) to parse it")


def _strptime(column, src: str, col: str, fmt: str) -> pa.ChunkedArray:
    try:
        parsed = pc.strptime(column, format=fmt, unit="ns", error_is_null=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DataError(f"--ts-format `{fmt}`: {_first_line(e)}") from None
    bad = pc.and_(pc.is_null(parsed), pc.is_valid(column))
    if pc.any(bad).as_py():
        row = int(np.flatnonzero(_bools(bad))[0])
        raise DataError(f"`{src}`: column `{col}`, row {row}: `{column[row].as_py()}` does not "
                        f"match --ts-format `{fmt}`")
    return parsed


def _first_unparsed(column) -> tuple[int, str]:
    for row, value in enumerate(column.to_pylist()):
        if value is None:
            continue
        try:
            pa.array([value]).cast(pa.timestamp("ns"))
        except pa.ArrowInvalid:
            try:
                pa.array([value]).cast(pa.timestamp("ns", tz="UTC"))
            except pa.ArrowInvalid:
                return row, value
    return 0, column[0].as_py()


def _all_midnight(ns: pa.ChunkedArray) -> bool:
    values = pc.drop_null(ns.cast(pa.int64())).to_numpy()
    return bool(values.size) and not np.any(values % (86_400 * 10**9))


# -- layouts ------------------------------------------------------------------------------------

def _numbers(table: pa.Table, src: str, col: str) -> np.ndarray:
    column = table[col]
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or \
            pa.types.is_null(column.type):
        return column.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    try:
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = column.to_pylist()
        row = next(i for i, v in enumerate(values) if v is not None and not _is_number(v))
        raise DataError(f"`{src}`: column `{col}`, row {row}: `{values[row]}` is not a number; "
                        "fix the source or map another column") from None


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _long(table, src, found, ts, name, notes) -> pa.Table:
    n = table.num_rows
    if "symbol" in found:
        symbol = table[found["symbol"]].cast(pa.string())
        if name:
            notes.append(f"--name {name} ignored: the file has a symbol column "
                         f"(`{found['symbol']}`)")
    else:
        symbol = pa.array([name] * n, pa.string())
    close = _numbers(table, src, found["close"])
    cols = {"ts": ts, "symbol": symbol}
    filled = []
    for key in ("open", "high", "low"):
        if key in found:
            cols[key] = _numbers(table, src, found[key])
        else:
            cols[key] = close
            filled.append(key)
    cols["close"] = close
    if filled:
        notes.append(f"no {', '.join(filled)} column: taken from the close")
    if "volume" in found:
        cols["volume"] = _numbers(table, src, found["volume"])
    else:
        cols["volume"] = np.zeros(n)
        notes.append("no volume column: volume 0 (orders cannot fill; see `no_volume`)")
    if "adj_close" in found:
        cols["adj_close"] = _numbers(table, src, found["adj_close"])
    return pa.table(cols)


def _wide(table, src, ts_col, ts, notes) -> pa.Table:
    symbols = [c for c in table.column_names if c != ts_col]
    if not symbols:
        raise DataError(f"`{src}` has only the time column `{ts_col}`; a wide file has one "
                        "column of closes per symbol")
    n = table.num_rows
    closes = np.concatenate([_numbers(table, src, s) for s in symbols])
    keep = ~np.isnan(closes)            # an empty cell is no bar, not a bad one
    stamps = pa.concat_arrays([ts.combine_chunks()] * len(symbols))
    idx = np.flatnonzero(keep)
    notes.append(f"{len(symbols)} symbols, one close column each: open, high and low are the "
                 "close, volume 0 (orders cannot fill; see `no_volume`)")
    close = closes[idx]
    return pa.table({"ts": stamps.take(pa.array(idx)),
                     "symbol": pa.array(np.repeat(np.array(symbols, object), n)[idx], pa.string()),
                     "open": close, "high": close, "low": close, "close": close,
                     "volume": np.zeros(idx.size)})


# -- adjustment ---------------------------------------------------------------------------------

def _adjust(long: pa.Table, adjust: str, src: str, notes: list[str]) -> pa.Table:
    if adjust == "none":
        return long
    if adjust == "adjusted":
        if "adj_close" not in long.column_names:
            raise DataError(f"--adjust adjusted needs an adjusted close column; `{src}` has "
                            "none (name it with --adj-close COL, or use --adjust splits)")
        close = long["close"].to_numpy()
        with np.errstate(all="ignore"):
            factor = long["adj_close"].to_numpy() / close
        notes.append("prices adjusted by adj_close / close, volumes divided by it")
        return _scaled(long, factor)
    return _split_adjusted(long, notes)


def _split_adjusted(long: pa.Table, notes: list[str]) -> pa.Table:
    panel = align(long.select(list(COLUMNS)))
    jumps = split_jumps(panel)
    factor = np.ones(long.num_rows)
    if jumps:
        ts = _ns(long["ts"])
        symbol = np.asarray(long["symbol"].to_pylist(), object)
        for s in jumps:
            before = (symbol == s.symbol) & (ts < panel.ts[s.t])
            factor[before] *= s.factor
        days = ", ".join(f"{s.symbol} {_day(panel.ts[s.t])} ({s.label})" for s in jumps[:8])
        notes.append(f"adjusted {len(jumps)} split-like jump{'s' if len(jumps) > 1 else ''}: "
                     f"{days}{', ...' if len(jumps) > 8 else ''}")
    else:
        notes.append("no split-like jump found: nothing adjusted")
    return _scaled(long, factor)


def _scaled(long: pa.Table, factor: np.ndarray) -> pa.Table:
    factor = np.where(np.isfinite(factor) & (factor > 0), factor, np.nan)
    cols = {"ts": long["ts"], "symbol": long["symbol"]}
    for key in ("open", "high", "low", "close"):
        cols[key] = long[key].to_numpy() * factor
    cols["volume"] = long["volume"].to_numpy() / factor
    return pa.table(cols)


def _ns(column) -> np.ndarray:
    t = column.type
    target = pa.timestamp("ns", tz=t.tz) if pa.types.is_timestamp(t) else pa.timestamp("ns")
    return column.cast(target).cast(pa.int64()).to_numpy(zero_copy_only=False)


def _day(ns) -> str:
    return str(np.datetime64(int(ns), "ns").astype("datetime64[D]"))


def _bools(values) -> np.ndarray:
    return pc.fill_null(values, False).to_numpy(zero_copy_only=False).astype(bool)


def _ticks(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
