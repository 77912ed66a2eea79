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


def _console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=150)


def _finite(v):
    v = float(v)
    return v if math.isfinite(v) else None


def _write_parquet(table, path) -> None:
    pq.write_table(table, str(path), compression="zstd", write_page_checksum=True)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_finite))


# -- sweep ------------------------------------------------------------------------------------

def _record(out: Path, kind: str, policy, engine, prep, cash, settings: dict) -> None:
    """`run.json` in the results directory, as every `--out` directory has."""
    from .manifest import research_manifest, write_manifest
    write_manifest(str(out), research_manifest(kind, policy, engine, prep, cash, out, settings))


def run_sweep(policy, grid_items, data, start, end, metric, out_dir, cash, equity,
              per_instrument, top, fmt, backend="local", address=None) -> None:
    from .engine import Engine
    from .overfit import summary
    from .sweep import best, parse_grid, sweep, sweep_instruments

    source_only(policy, "sweep")
    metric = check_metric(metric)
    if backend == "ray":
        from .sweep_ray import require
        require()                                  # before the data loads: is Ray installed?
    elif address is not None:
        raise RunError(f"`--address {address}` names a Ray cluster: use it with --backend ray")
    prep = prepare(policy, data, start, end)
    engine = Engine.from_policy(prep.check.policy, prep.panel.symbols, cash)
    combos = parse_grid(grid_items, engine.param_specs)
    for line in data_warnings(prep, engine):
        click.echo(f"warning: {line}", err=True)
    bar, what = progress_bar(fmt, f"sweeping {engine.name}")
    with bar:
        task = bar.add_task(what, total=1)
        tick = lambda d, t: bar.update(task, completed=d / max(t, 1))  # noqa: E731
        if backend == "ray":
            from .sweep_ray import sweep_ray
            result = sweep_ray(prep.check.policy, prep.panel, combos, cash, prep.start,
                               per_instrument, progress=tick, address=address)
        elif per_instrument:
            result = sweep_instruments(prep.check.policy, prep.panel, combos, cash, prep.start,
                                       progress=tick)
        else:
            result = sweep(engine, prep.panel, combos, prep.start, progress=tick)
    order = best(result, metric, len(result.combos))
    stats = summary(result.returns(), order[0])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"sweep": str(out / "sweep.parquet"), "overfit": str(out / "overfit.json")}
    _write_parquet(result.table(), files["sweep"])
    if equity:
        files["equity"] = str(out / "equity.parquet")
        _write_parquet(equity_table(result), files["equity"])
    _write_json(out / "overfit.json", stats)
    _record(out, "sweep", policy, engine, prep, cash, {
        "grid": list(grid_items), "metric": metric, "per_instrument": per_instrument,
        "combinations": len(result.combos), "backend": backend})
    shown = order[:top]
    if fmt == "json":
        click.echo(json.dumps({
            "policy": engine.name, "combinations": len(result.combos), "metric": metric,
            "per_instrument": per_instrument,
            "best": [_row(result, i) for i in shown], "overfit": stats, "files": files},
            indent=2, default=_finite))
        return
    console = _console()
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


# -- walk-forward -----------------------------------------------------------------------------

def run_walkforward(policy, grid_items, data, start, end, train, test, step, anchored, select,
                    out_dir, cash, fmt) -> None:
    from .engine import Engine
    from .sweep import parse_grid
    from .walkforward import folds, parse_span, walk_forward

    source_only(policy, "walkforward")
    select = check_metric(select)
    spans = parse_span(train, "--train"), parse_span(test, "--test")
    step_span = parse_span(step, "--step") if step else None
    prep = prepare(policy, data, None, end)
    engine = Engine.from_policy(prep.check.policy, prep.panel.symbols, cash)
    combos = parse_grid(grid_items, engine.param_specs)
    first = 0
    if start is not None:
        from .data import to_ns
        first = int(np.searchsorted(prep.panel.ts, to_ns(start), side="left"))
    fl = folds(prep.panel.ts, min(first, prep.panel.T - 1), *spans, step_span, anchored)
    bar, what = progress_bar(fmt, f"walk-forward {engine.name}")
    with bar:
        task = bar.add_task(what, total=len(fl))
        wf = walk_forward(engine, prep.panel, combos, fl, select,
                          progress=lambda d, t: bar.update(task, completed=d))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = folds_table(wf, prep.panel.ts, select)
    _write_parquet(table, out / "folds.parquet")
    _write_parquet(pa.table({"ts": pa.array(np.asarray(wf.ts, "datetime64[ns]"),
                                            pa.timestamp("ns", tz="UTC")),
                             "equity": wf.equity, "fold": wf.fold_of_bar}),
                   out / "oos_equity.parquet")
    summary = {"folds": len(fl), "select": select, "oos_metrics": wf.metrics, "oos_psr": wf.psr,
               "in_sample_overfit": wf.overfit}
    _write_json(out / "walkforward.json", summary)
    _record(out, "walkforward", policy, engine, prep, cash, {
        "grid": list(grid_items), "train": train, "test": test, "step": step,
        "anchored": anchored, "select": select, "folds": len(fl)})
    if fmt == "json":
        click.echo(json.dumps({"policy": engine.name, "folds": table.to_pylist(),
                               "oos_metrics": wf.metrics, "oos_psr": wf.psr, "out": str(out)},
                              indent=2, default=_day_or_float))
        return
    console = _console()
    console.print(f"{engine.name}: {len(fl)} folds, {len(combos)} combinations each, chosen by "
                  f"{select} in sample")
    t = Table()
    names = list(dict.fromkeys(k for c in combos for k in c))
    for c in ["fold", "train", "test", *names, f"IS {select}", f"OOS {select}", "IS DSR",
              "IS PBO"]:
        t.add_column(c, justify="right")
    for row in table.to_pylist():
        t.add_row(str(row["fold"]), f"{_d(row['train_start'])}..{_d(row['train_end'])}",
                  f"{_d(row['test_start'])}..{_d(row['test_end'])}",
                  *[f"{row[n]:g}" for n in names], f"{row['is_' + select]:.3f}",
                  f"{row['oos_' + select]:.3f}", f"{row['is_dsr']:.3f}", f"{row['is_pbo']:.3f}")
    console.print(t)
    m = wf.metrics
    console.print(f"stitched out of sample: total return {m['total_return']:.2%}, Sharpe "
                  f"{m['sharpe']:.3f}, max drawdown {m['max_drawdown']:.2%}, PSR {wf.psr:.3f}")
    console.print(f"results: {out}")


def _d(value) -> str:
    return str(np.datetime64(value, "D"))


def _day_or_float(v):
    if isinstance(v, np.datetime64):
        return _d(v)
    if hasattr(v, "date"):
        return v.date().isoformat()
    try:
        return _finite(v)
    except (TypeError, ValueError):
        return str(v)


def folds_table(wf, ts, select) -> pa.Table:
    ts = np.asarray(ts, "datetime64[ns]")
    rows = []
    for i, f in enumerate(wf.folds):
        row = {"fold": i, "train_start": ts[f.train[0]], "train_end": ts[f.train[1] - 1],
               "test_start": ts[f.test[0]], "test_end": ts[f.test[1] - 1], **wf.chosen[i]}
        row.update({f"is_{k}": v for k, v in wf.in_sample[i].items()})
        row.update({f"oos_{k}": v for k, v in wf.out_sample[i].items()})
        row.update(is_psr=wf.overfit[i]["psr"], is_dsr=wf.overfit[i]["dsr"],
                   is_pbo=wf.overfit[i]["pbo"])
        rows.append(row)
    return pa.Table.from_pylist(rows)


# -- stress -----------------------------------------------------------------------------------

def run_stress(policy, scenario, data, start, end, at, symbols, param_items, cash, out_dir,
               fmt) -> None:
    from .engine import Engine
    from .run import parse_params
    from .stress import EPISODES, parse_scenario, run_episode, run_shock

    source_only(policy, "stress")
    what = parse_scenario(scenario)
    prep = prepare(policy, data, start, end)
    engine = Engine.from_policy(prep.check.policy, prep.panel.symbols, cash)
    params = engine.params(parse_params(param_items))
    panel = prep.panel
    chosen = None
    if symbols:
        chosen = {s.strip() for s in symbols.split(",") if s.strip()}
        unknown = sorted(chosen - set(panel.symbols))
        if unknown:
            raise RunError(f"`--symbols`: {', '.join(unknown)} not in the policy's universe "
                           f"({', '.join(panel.symbols)})")
    if isinstance(what, str):
        rows = run_episode(engine, panel, params, what)
        title = f"{what}: {EPISODES[what][2]}"
    else:
        t = _shock_bar(panel, at, prep.start)
        rows = run_shock(engine, panel, params, what, t, prep.start, chosen)
        title = (f"{scenario} at {_d(np.datetime64(int(panel.ts[t]), 'ns'))} on "
                 f"{', '.join(sorted(chosen)) if chosen else 'every instrument'}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = [_stress_json(r) for r in rows]
    _write_json(out / "stress.json", {"scenario": scenario, "title": title, "rows": records})
    _record(out, "stress", policy, engine, prep, cash, {
        "scenario": scenario, "at": at, "symbols": sorted(chosen) if chosen else None,
        "params": list(param_items)})
    if fmt == "json":
        click.echo(json.dumps({"policy": engine.name, "scenario": scenario, "title": title,
                               "rows": records, "out": str(out)}, indent=2, default=_finite))
        return
    console = _console()
    console.print(f"{engine.name}: {title}")
    t = Table()
    for c in ("run", "max drawdown", "worst bar", "on", "recovery (bars)", "total return",
              "limits and rules in force (bars)"):
        t.add_column(c, justify="right" if c not in ("run", "limits and rules in force (bars)")
                     else "left")
    for r in rows:
        t.add_row(r.name, f"{r.max_drawdown:.2%}", f"{r.worst_bar:.2%}",
                  _d(np.datetime64(r.worst_bar_ts, "ns")),
                  "-" if r.recovery_bars is None else str(r.recovery_bars),
                  f"{r.total_return:.2%}",
                  ", ".join(f"{k} {v}" for k, v in r.fired.items()) or "none")
    console.print(t)
    console.print(f"results: {out}")


def _shock_bar(panel, at, start) -> int:
    if at is None:
        return start + (panel.T - start) // 2
    from .data import to_ns
    t = int(np.searchsorted(panel.ts, to_ns(at), side="left"))
    if t >= panel.T or t <= start:
        raise RunError(f"`--at {at}` is not a bar after the start of trading in the data "
                       f"({_d(np.datetime64(int(panel.ts[start]), 'ns'))} to "
                       f"{_d(np.datetime64(int(panel.ts[-1]), 'ns'))})")
    return t


def _stress_json(r) -> dict:
    return {"run": r.name, "max_drawdown": r.max_drawdown, "worst_bar": r.worst_bar,
            "worst_bar_on": _d(np.datetime64(r.worst_bar_ts, "ns")),
            "recovery_bars": r.recovery_bars, "total_return": r.total_return,
            "final_equity": r.final_equity, "fired": r.fired}
