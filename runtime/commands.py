"""Command bodies for `crowe` (kept apart from argument parsing in `cli.py`)."""
from __future__ import annotations

import json
import math
import sys
import time

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .manifest import build_manifest, write_manifest
from .run import (data_warnings, default_out, is_artifact, parse_params, prepare,
                  prepare_artifact)



def run_backtest(policy, data, start, end, param_items, cash, out_dir, fmt,
                 trust_dir=None, report=False) -> None:
    from .backtest import backtest, write_results
    from .engine import Engine

    err = Console(stderr=True)
    artifact = is_artifact(policy)
    if trust_dir is not None and not artifact:
        raise click.UsageError("--trust applies to artifacts (.cpol), not to policy sources")
    if artifact:
        t0 = time.perf_counter()
        prep, loaded = prepare_artifact(policy, data, start, end, trust_dir, cash)
        verified = loaded.verified
        overrides = parse_params(param_items)
        engine = loaded.engine
    else:
        prep = prepare(policy, data, start, end)
        verified = None
        overrides = parse_params(param_items)
        t0 = time.perf_counter()
        engine = Engine.from_policy(prep.check.policy, prep.panel.symbols, cash)
    params = engine.params(overrides)
    warnings = data_warnings(prep, engine)
    for line in warnings:
        click.echo(f"warning: {line}", err=True)
    first = prep.start
    show = fmt == "text" and sys.stderr.isatty()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total} bars"), TimeElapsedColumn(), console=err, disable=not show,
                  transient=True) as bar:
        task = bar.add_task(f"simulating {engine.name}", total=prep.panel.T)
        result = backtest(engine, prep.panel, params,
                          progress=lambda done, total: bar.update(task, completed=done),
                          start=first)
    elapsed = time.perf_counter() - t0
    out_dir = out_dir or default_out(policy)
    written = write_results(result, out_dir)
    written["run"] = write_manifest(out_dir, build_manifest(
        policy, engine, params, prep, cash, written, verified, prep.check))
    if report:
        from .htmlreport import write_report
        written["report"] = write_report(
            out_dir, warn=lambda message: click.echo(f"warning: {message}", err=True))
    bars = prep.panel.T - first
    warm = f"{engine.warmup} bars" + (f" ({first:,} bars before the start, not traded)"
                                      if first else "")
    header = {"policy": f"{engine.name} {engine.version}", "data": prep.data_path,
              "period": f"{_day(prep.panel.ts[first])} to {_day(prep.panel.ts[-1])}",
              "bars": bars, "instruments": prep.panel.N, "warm-up": warm,
              "out": out_dir}
    if fmt == "json":
        click.echo(json.dumps({
            "policy": engine.name, "version": engine.version, "data": prep.data_path,
            "start": _day(prep.panel.ts[first]), "end": _day(prep.panel.ts[-1]),
            "bars": bars, "instruments": prep.panel.N, "warmup": engine.warmup,
            "warmup_bars_before_start": first,
            "data_issues": prep.report.counts_for(prep.panel.symbols), "warnings": warnings,
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


# -- artifacts ----------------------------------------------------------------------------------

def run_keygen(out: str, name: str | None, force: bool) -> None:
    from crowe.compiler.artifact.keys import generate
    path, pub, keyid = generate(out, name, force)
    click.echo(f"wrote {path} (private key, mode 0600) and {pub}; key id {keyid}")


def run_sign(path: str, key_path: str, role: str) -> None:
    from crowe.compiler.artifact import container as ct
    from crowe.compiler.artifact.keys import load_signing_key, write_atomic
    from crowe.compiler.artifact.signatures import sign
    from crowe.compiler.artifact.verify import check_signatures, open_artifact

    key = load_signing_key(key_path)
    art = open_artifact(path)
    check_signatures(art, None)          # never add to an artifact whose signatures are broken
    if any(e["keyid"] == key.public.keyid and e["role"] == role for e in art.entries):
        from .cli import UserError
        raise UserError(f"`{path}` is already signed by {key.name} as {role}")
    entries = [*art.entries, sign(key, art.digest, role)]
    members = dict(art.members)
    members[ct.SIGNATURES] = ct.canonical_json({"signatures": entries})
    write_atomic(path, ct.pack(members))
    click.echo(f"signed {path} as {role} by {key.name} ({len(entries)} signature"
               f"{'' if len(entries) == 1 else 's'})")


def run_trust_add(pub_path: str, roles, trust_dir: str) -> None:
    from crowe.compiler.artifact.keys import load_public_key
    from crowe.compiler.artifact.trust import add
    entry, existed = add(trust_dir, load_public_key(pub_path), roles)
    verb = "updated" if existed else "trusted"
    click.echo(f"{verb} {entry.name} (key {entry.keyid[:16]}) for {', '.join(entry.roles)} "
               f"in {trust_dir}")


def run_trust_list(trust_dir: str, fmt: str) -> None:
    from crowe.compiler.artifact.trust import load
    keys = sorted(load(trust_dir).values(), key=lambda k: (k.name, k.keyid))
    if fmt == "json":
        click.echo(json.dumps([k.to_json() for k in keys], indent=2))
        return
    if not keys:
        click.echo(f"{trust_dir}: no trusted keys")
    for k in keys:
        click.echo(f"{k.keyid[:16]}  {k.name:<20} {', '.join(k.roles)}")


def run_verify(path, trust_dir, stage, state_dir, allow_rollback, record, fmt) -> None:
    from crowe.compiler.artifact.verify import ArtifactError, verify
    try:
        v = verify(path, trust_dir, stage, state_dir, allow_rollback, record)
    except ArtifactError as e:
        if fmt == "json":
            click.echo(json.dumps({"ok": False, "artifact": path, "stage": stage,
                                   "refused": type(e).__name__, "reason": str(e),
                                   "exit_code": e.exit_code}, indent=2))
        raise
    signers = [f"{s.name} as {s.role}" for s in v.signatures]
    if fmt == "json":
        click.echo(json.dumps({"ok": True, "artifact": path, "stage": stage,
                               "policy": v.artifact.name, "version": v.artifact.version,
                               "manifest_sha256": v.digest,
                               "signatures": [{"name": s.name, "role": s.role,
                                               "keyid": s.keyid, "trusted": s.trusted}
                                              for s in v.signatures]}, indent=2))
        return
    by = f"signed by {', '.join(signers)}" if signers else "unsigned"
    checked = "" if trust_dir else " (signatures not checked against a trust store)" \
        if signers else ""
    click.echo(f"ok: {path} is {v.artifact.name} {v.artifact.version}, verified for "
               f"{stage}; {by}{checked}")


def run_inspect(path: str, trust_dir: str | None, fmt: str) -> None:
    from .inspect import describe, render
    info = describe(path, trust_dir)
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(render(info))
