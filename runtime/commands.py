"""Command bodies for `crowe` (kept apart from argument parsing in `cli.py`)."""
from __future__ import annotations

import json
import math
import sys
import time

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .run import default_out, parse_params, prepare

CHUNK = 1000


def run_backtest(policy, data, start, end, param_items, cash, out_dir, fmt) -> None:
    from .backtest import backtest, write_results
    from .engine import Engine

    err = Console(stderr=True)
    prep = prepare(policy, data, start, end)
    overrides = parse_params(param_items)
    t0 = time.perf_counter()
    engine = Engine.from_policy(prep.check.policy, prep.panel.symbols, cash)
    params = engine.params(overrides)
    show = fmt == "text" and sys.stderr.isatty()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total} bars"), TimeElapsedColumn(), console=err, disable=not show,
                  transient=True) as bar:
        task = bar.add_task(f"simulating {engine.name}", total=prep.panel.T)
        result = backtest(engine, prep.panel, params, chunk=CHUNK,
                          progress=lambda done, total: bar.update(task, completed=done))
    elapsed = time.perf_counter() - t0
    out_dir = out_dir or default_out(policy)
    written = write_results(result, out_dir)
    header = {"policy": f"{engine.name} {engine.version}", "data": prep.data_path,
              "period": f"{_day(prep.panel.ts[0])} to {_day(prep.panel.ts[-1])}",
              "bars": prep.panel.T, "instruments": prep.panel.N, "warm-up": engine.warmup,
              "out": out_dir}
    if fmt == "json":
        click.echo(json.dumps({
            "policy": engine.name, "version": engine.version, "data": prep.data_path,
            "start": _day(prep.panel.ts[0]), "end": _day(prep.panel.ts[-1]),
            "bars": prep.panel.T, "instruments": prep.panel.N, "warmup": engine.warmup,
            "params": {k: float(v) for k, v in params.items()},
            "metrics": {k: (float(v) if math.isfinite(float(v)) else None)
                        for k, v in result.metrics.items()},
            "out": out_dir, "files": written, "seconds": round(elapsed, 3)}, indent=2))
        return
    from .report import render_summary
    render_summary(header, result.metrics, Console())


def _day(ns) -> str:
    import numpy as np
    return str(np.datetime64(int(ns), "ns").astype("datetime64[D]"))
