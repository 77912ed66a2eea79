"""`crowe report`: one self-contained HTML page about a backtest's results directory.

The page needs nothing but itself: the styles are inline and every chart is an inline SVG
(`crowe.runtime.charts`); it has no script and loads no font, image or style from anywhere.
It reads ``run.json`` (what ran, on which data), ``metrics.json``, ``equity.parquet``,
``fills.parquet`` and ``reasons.parquet`` and shows:

- the run: policy, version, digests, parameters, data file and its SHA-256, period, warm-up,
  and a command that repeats it;
- equity against a benchmark (linear or log scale), the underwater drawdown, rolling Sharpe
  and volatility, the monthly returns, gross and net exposure and turnover, costs;
- per-trade statistics (`crowe.runtime.trades`: round trips from flat to flat), the
  trading-state timeline and the reasons that bound most often (gates, caps, rules).

The benchmark is ``buy_and_hold`` (equal capital in each of the run's symbols that has a
price at the first counted bar, bought there and held, each valued at its last known close),
one ``SYMBOL`` of the data (its close, scaled to the starting equity), or ``none``. Both read
the data file that ``run.json`` names, whose SHA-256 must still match.
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROLLING = 63          # bars in the rolling Sharpe, volatility and turnover windows
TOP_REASONS = 15


class ReportError(Exception):
    """A results directory or benchmark the report cannot use; the message says what to do."""


@dataclass
class Results:
    path: Path
    run: dict
    metrics: dict
    equity: dict          # column name -> numpy array, one row per counted bar
    fills: dict
    reasons: dict


def write_report(result_dir: str, output: str | None = None, benchmark: str = "buy_and_hold",
                 warn=None) -> str:
    """Render the report of ``result_dir`` to ``output`` (default ``result_dir/report.html``);
    returns the path written. ``warn(message)`` receives what the reader should know (a
    default benchmark that cannot be drawn)."""
    res = load_results(result_dir)
    target = Path(output) if output else res.path / "report.html"
    if target.is_dir():
        raise ReportError(f"-o `{target}` is a directory; give the path of the HTML file")
    bench, note = benchmark_curve(res, benchmark)
    if note and warn:
        warn(note)
    from .reportpage import render
    page = render(res, bench, note)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
    except OSError as e:
        raise ReportError(f"cannot write `{target}` ({e.strerror or type(e).__name__}); "
                          "choose another -o") from None
    return str(target)


# -- reading ------------------------------------------------------------------------------------

def load_results(result_dir: str) -> Results:
    path = Path(result_dir)
    if not path.is_dir():
        raise ReportError(f"`{result_dir}` is not a directory; give the --out directory of a "
                          "`crowe backtest`")
    run = _json(path, "run.json")
    if run.get("format") != "crowe-run/1":
        raise ReportError(f"`{path / 'run.json'}` is not a crowe run manifest (format "
                          f"{run.get('format')!r}); run the backtest again")
    missing = [k for k in RUN_KEYS if k not in run]
    if missing:
        raise ReportError(f"`{path / 'run.json'}` lacks {', '.join(missing)}; run the backtest "
                          "again")
    tables = {name: _table(path, name, cols) for name, cols in TABLES.items()}
    return Results(path, run, _json(path, "metrics.json"), tables["equity"], tables["fills"],
                   tables["reasons"])


RUN_KEYS = ("policy", "params", "cash", "data", "period", "command", "versions")
TABLES = {"equity": ("ts", "equity", "gross", "net", "costs", "borrow", "traded_notional",
                     "trading_state", "portfolio_reasons"),
          "fills": ("ts", "symbol", "qty", "price", "cost"),
          "reasons": ("ts", "symbol", "reasons")}


def _json(path: Path, name: str) -> dict:
    file = path / name
    if not file.is_file():
        raise ReportError(f"`{path}` has no {name}: it is not the results directory of a "
                          "`crowe backtest` of this version; run the backtest again with "
                          f"--out {path}")
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"`{file}` cannot be read as JSON ({e}); run the backtest again") \
            from None
    if not isinstance(data, dict):
        raise ReportError(f"`{file}` is not a JSON object; run the backtest again")
    return data


def _table(path: Path, name: str, columns) -> dict:
    file = path / f"{name}.parquet"
    if not file.is_file():
        raise ReportError(f"`{path}` has no {name}.parquet; run the backtest again with "
                          f"--out {path}")
    try:
        table = pq.read_table(file)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same problem
        raise ReportError(f"`{file}` is not a readable Parquet file ({e}); run the backtest "
                          "again") from None
    lacking = [c for c in columns if c not in table.column_names]
    if lacking:
        raise ReportError(f"`{file}` has no column {', '.join(lacking)}; run the backtest again")
    out = {}
    for col in table.column_names:
        column = table[col]
        if col == "ts":
            ns = column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
            out[col] = ns.to_numpy().astype("datetime64[ns]")
        elif pa.types.is_list(column.type):
            out[col] = column.combine_chunks()          # reason lists stay Arrow: see below
        elif pa.types.is_string(column.type):
            out[col] = np.asarray(column.to_pylist(), dtype=object)
        else:
            out[col] = column.to_numpy()
    return out


# -- benchmark ----------------------------------------------------------------------------------

def benchmark_curve(res: Results, choice: str) -> tuple[dict | None, str | None]:
    """({"label", "equity"}, None), or (None, why there is no benchmark) for the default
    benchmark when the data cannot give one; an explicit choice that cannot be met raises."""
    if choice == "none":
        return None, None
    try:
        return _benchmark(res, choice), None
    except ReportError as e:
        if choice == "buy_and_hold":
            return None, f"no benchmark: {e}"
        raise


def _benchmark(res: Results, choice: str) -> dict:
    from .data import DataError, load_bars
    from .data import file_sha256
    data = res.run["data"]
    path = Path(data["path"])
    if not path.is_file():
        raise ReportError(f"the run's data file `{path}` is not there any more; pass "
                          "--benchmark none, or restore the file")
    if file_sha256(path) != data["sha256"]:
        raise ReportError(f"the run's data file `{path}` has changed since the run (its "
                          "SHA-256 differs from run.json's); pass --benchmark none, or run the "
                          "backtest again")
    ts = res.equity["ts"]
    symbols = list(data["symbols"]) if choice == "buy_and_hold" else [choice]
    try:
        panel, _ = load_bars(path, end=str(ts[-1].astype("datetime64[s]")) + "Z",
                             symbols=symbols)
    except DataError as e:
        if choice != "buy_and_hold" and "no bars for symbols" in str(e):
            have = ", ".join(data["symbols"][:10])
            raise ReportError(f"--benchmark `{choice}` is not a symbol of `{path}` (the run "
                              f"traded {have}{', ...' if len(data['symbols']) > 10 else ''}); "
                              "use one of its symbols, buy_and_hold or none") from None
        raise ReportError(str(e)) from None
    close = _last_known(panel.close, panel.ts, ts.astype("datetime64[ns]").astype(np.int64))
    start = res.equity["equity"][0]
    held = np.isfinite(close[0]) & (close[0] > 0)
    if not held.any():
        raise ReportError(f"no symbol of `{choice}` has a price at the first bar "
                          f"{ts[0].astype('datetime64[D]')}")
    shares = np.where(held, start / held.sum() / np.where(held, close[0], 1.0), 0.0)
    value = np.nansum(np.where(held, close, 0.0) * shares, axis=1)
    label = f"buy and hold of {held.sum()} symbols, equal weights" \
        if choice == "buy_and_hold" else choice
    return {"label": label, "equity": value}


def _last_known(close: np.ndarray, panel_ts: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The last valid close at or before each of ``ts``, per symbol (NaN before the first)."""
    filled = close.copy()
    for t in range(1, filled.shape[0]):
        gap = ~np.isfinite(filled[t])
        filled[t, gap] = filled[t - 1, gap]
    idx = np.searchsorted(panel_ts, ts, side="right") - 1
    out = filled[np.clip(idx, 0, None)]
    out[idx < 0] = np.nan
    return out


# -- series -------------------------------------------------------------------------------------

def returns(equity: np.ndarray) -> np.ndarray:
    """One-bar returns, NaN for the first bar and after equity at or below zero."""
    prev = np.r_[np.nan, equity[:-1]]
    with np.errstate(all="ignore"):
        return np.where(prev > 0, equity / prev - 1.0, np.nan)


def rolling_stats(r: np.ndarray, window: int, bpy: float) -> tuple[np.ndarray, np.ndarray]:
    """Rolling annualised Sharpe (mean / std, ddof 1) and volatility over ``window`` bars,
    NaN until the window is full."""
    n = r.size
    sharpe, vol = np.full(n, np.nan), np.full(n, np.nan)
    if n >= window:
        from numpy.lib.stride_tricks import sliding_window_view
        win = sliding_window_view(r, window)
        with np.errstate(all="ignore"):
            sd = np.std(win, axis=1, ddof=1)
            mean = np.mean(win, axis=1)
            vol[window - 1:] = sd * math.sqrt(bpy)
            sharpe[window - 1:] = np.where(sd > 0, mean / sd * math.sqrt(bpy), np.nan)
    return sharpe, vol


def monthly_returns(ts: np.ndarray, equity: np.ndarray) -> dict[int, dict[int, float]]:
    """{year: {month (1-12) or 13 for the year: return}} from month-end equity, each month
    measured from the previous month's last bar (the first from the first bar)."""
    months = ts.astype("datetime64[M]")
    last = np.flatnonzero(np.r_[months[1:] != months[:-1], True])
    ends = equity[last]
    begins = np.r_[equity[0], ends[:-1]]
    out: dict[int, dict[int, float]] = {}
    for m, b, e in zip(months[last], begins, ends):
        year, month = int(str(m)[:4]), int(str(m)[5:7])
        out.setdefault(year, {})[month] = e / b - 1.0 if b > 0 else math.nan
    for year, row in out.items():
        row[13] = float(np.prod([1.0 + v for v in row.values()]) - 1.0)
    return out


def reason_counts(res: Results) -> list[tuple[str, str, int, int]]:
    """(reason, kind, instrument-bars, bars with it set on some instrument or the book),
    the most frequent first."""
    t1, n1 = _flat(res.reasons["ts"], res.reasons["reasons"])
    t2, n2 = _flat(res.equity["ts"], res.equity["portfolio_reasons"])
    names, code = np.unique(np.r_[n1, n2].astype(str), return_inverse=True)
    code = code.ravel()
    per_instrument = np.bincount(code[:n1.size], minlength=names.size)
    stamps = np.r_[t1, t2].astype("datetime64[ns]").astype(np.int64)
    pairs = np.unique(np.stack([code, stamps]), axis=1)        # (reason, bar) once each
    per_bar = np.bincount(pairs[0], minlength=names.size)
    order = sorted(range(names.size), key=lambda i: (-per_instrument[i], -per_bar[i], names[i]))
    return [(str(names[i]), reason_kind(str(names[i])), int(per_instrument[i]), int(per_bar[i]))
            for i in order]


def _flat(ts: np.ndarray, lists) -> tuple[np.ndarray, np.ndarray]:
    """Each name in a column of name lists, with the ts of its row."""
    if len(lists) == 0:
        return ts[:0], np.array([], dtype=object)
    names = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
    return ts[pc.list_parent_indices(lists).to_numpy()], names


def reason_kind(name: str) -> str:
    if name.startswith("gate:"):
        return "gate"
    if name.startswith("rule:"):
        return "stand-down rule"
    if name.endswith("_cap"):
        return "cap"
    if name in ("restricted", "no_short"):
        return "compliance"
    if name in ("invalid_data", "warmup", "no_forecast"):
        return "data"
    if name in ("excluded", "reduced", "halted", "flattening"):
        return "trading state"
    return "limit or order rule"


def esc(value) -> str:
    return html.escape(str(value), quote=True)
