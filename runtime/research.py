"""Command bodies of `crowe sweep`, `crowe walkforward` and `crowe stress`."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .metrics import KEYS
from .run import RunError, data_warnings, is_artifact, prepare


def source_only(policy: str, command: str) -> None:
    if is_artifact(policy):
        raise RunError(f"`crowe {command}` takes a policy source (.policy): it compiles the "
                       "policy for each universe it runs; backtest the artifact with "
                       "`crowe backtest`")


def check_metric(metric: str) -> str:
    if metric not in KEYS or metric == "bars":
        raise RunError(f"`--metric {metric}` is not a metric; use one of "
                       f"{', '.join(k for k in KEYS if k != 'bars')}")
    return metric


def progress_bar(fmt: str, what: str):
    show = fmt == "text" and sys.stderr.isatty()
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                    console=Console(stderr=True), disable=not show, transient=True), what


def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else None


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_finite))


# -- sweep ------------------------------------------------------------------------------------

def run_sweep(policy, grid_items, data, start, end, metric, out_dir, cash, equity,
              per_instrument, top, fmt) -> None:
    from .engine import Engine
    from .overfit import summary
    from .sweep import best, parse_grid, sweep, sweep_instruments

    source_only(policy, "sweep")
    metric = check_metric(metric)
    prep = prepare(policy, data, start, end)
    engine = Engine.from_policy(prep.check.policy, prep.panel.symbols, cash)
    combos = parse_grid(grid_items, engine.param_specs)
    for line in data_warnings(prep, engine):
        click.echo(f"warning: {line}", err=True)
    bar, what = progress_bar(fmt, f"sweeping {engine.name}")
    with bar:
        task = bar.add_task(what, total=1)
        tick = lambda d, t: bar.update(task, completed=d / max(t, 1))  # noqa: E731
        if per_instrument:
            result = sweep_instruments(prep.check.policy, prep.panel, combos, cash, prep.start,
                                       progress=tick)
        else:
            result = sweep(engine, prep.panel, combos, prep.start, progress=tick)
    order = best(result, metric, len(result.combos))
    stats = summary(result.returns(), order[0])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"sweep": str(out / "sweep.parquet"), "overfit": str(out / "overfit.json")}
    pq.write_table(result.table(), files["sweep"], compression="zstd")
    if equity:
        files["equity"] = str(out / "equity.parquet")
        pq.write_table(equity_table(result), files["equity"], compression="zstd")
    _write_json(out / "overfit.json", stats)
    shown = order[:top]
    if fmt == "json":
        click.echo(json.dumps({
            "policy": engine.name, "combinations": len(result.combos), "metric": metric,
            "per_instrument": per_instrument,
            "best": [_row(result, i) for i in shown], "overfit": stats, "files": files},
            indent=2, default=_finite))
        return
    console = Console()
    console.print(f"{engine.name}: {len(result.combos)} runs"
                  f"{' (combinations x instruments)' if per_instrument else ''} on "
                  f"{prep.data_path}, best by {metric}")
    console.print(best_table(result, shown, metric))
    console.print(overfit_line(stats))
    console.print(f"results: {out}")


def _row(result, i) -> dict:
    row = dict(result.combos[i])
    if result.symbols is not None:
        row["symbol"] = result.symbols[i]
    row.update({k: _finite(result.metrics[i][k]) for k in KEYS})
    return row


def best_table(result, rows, metric) -> Table:
    t = Table()
    names = list(dict.fromkeys(k for c in result.combos for k in c))
    cols = (["symbol"] if result.symbols is not None else []) + names
    shown = list(dict.fromkeys([metric, "sharpe", "total_return", "max_drawdown"]))
    for c in cols + shown:
        t.add_column(c, justify="right")
    for i in rows:
        vals = ([result.symbols[i]] if result.symbols is not None else []) + \
            [f"{result.combos[i].get(n):g}" for n in names]
        t.add_row(*vals, *[f"{result.metrics[i][k]:.4f}" for k in shown])
    return t


def overfit_line(s: dict) -> str:
    return (f"overfitting: {s['trials']} trials, variance of their per-bar Sharpe "
            f"{s['var_trial_sharpe']:.3g}; best PSR {s['psr']:.3f}, DSR {s['dsr']:.3f} "
            f"(benchmark SR0 {s['sr0_expected_max']:.4f} per bar); PBO {s['pbo']:.3f} "
            f"({s['pbo_splits']} CSCV splits of {s['pbo_blocks']} blocks)")


def equity_table(result) -> pa.Table:
    runs, T = result.equity.shape
    cols = {"run": pa.array(np.repeat(np.arange(runs), T)),
            "ts": pa.array(np.tile(np.asarray(result.ts, "datetime64[ns]"), runs),
                           pa.timestamp("ns", tz="UTC")),
            "equity": pa.array(result.equity.reshape(-1))}
    return pa.table(cols)
