"""`run.json`: what a results directory came from, so that a result can be traced and re-run.

Every `crowe backtest --out DIR` writes it next to the tables::

  format        "crowe-run/1"
  policy        name, version, source (path; null for a .cpol), source_sha256, ir_sha256 (of
                the canonical IR text: a source and the artifact compiled from it agree),
                artifact (path) and artifact_digest (the SHA-256 of its manifest.json, what
                signatures cover; null for a source)
  params        every parameter's value in this run (defaults and --param overrides)
  cash          the initial capital
  data          path (as given), sha256 of the file, symbols
  period        first_bar (the first bar simulated, warm-up included), start (first bar
                traded and counted), end, bars (counted), warmup (the policy's, in bars),
                warmup_bars_before_start, bars_per_year (for annualisation), calendar (the
                `universe.calendar` the bars are counted on, or null)
  command       the command line, as a list and as one shell-quoted string; cwd
  versions      crowe, python, jax, jaxlib, numpy, pyarrow, the JAX backend
  files         each result file written with its SHA-256
  created       when it was written (UTC, ISO 8601)

`rerun_command(manifest)` gives a command that repeats the run from the recorded policy,
data, period and parameters.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from .data import file_sha256

FORMAT = "crowe-run/1"
RUN_JSON = "run.json"


def build_manifest(policy_path: str, engine, params: dict, prep, cash: float, written: dict,
                   verified=None, check=None, argv=None) -> dict:
    """The manifest of one backtest (see the module docstring). ``verified`` is the
    `VerifiedArtifact` of a .cpol run, ``check`` the `CheckResult` of a source run."""
    return _manifest(policy_path, engine, prep, cash, [Path(p) for p in written.values()],
                     argv, {"policy": _policy(policy_path, engine, verified, check),
                            "params": {k: _scalar(v) for k, v in params.items()}})


def research_manifest(kind: str, policy_path: str, engine, prep, cash: float, out_dir,
                      settings: dict, argv=None) -> dict:
    """The manifest of a sweep, walk-forward or stress run: the same identity as a backtest's
    (policy, data and its SHA-256, period, command line, versions) with the command's own
    settings, and the SHA-256 of every file it wrote to `out_dir`."""
    files = sorted(p for p in Path(out_dir).iterdir() if p.is_file() and p.name != RUN_JSON)
    return _manifest(policy_path, engine, prep, cash, files, argv, {
        "kind": kind, "policy": _policy(policy_path, engine, None, prep.check),
        "settings": settings})


def _manifest(policy_path: str, engine, prep, cash: float, files: list[Path], argv,
              own: dict) -> dict:
    """The fields every manifest has, around the command's `own` ones."""
    panel, first = prep.panel, prep.start
    return {
        "format": FORMAT,
        **own,
        "cash": float(cash),
        "data": {"path": prep.data_path,
                 "sha256": prep.report.sha256 or file_sha256(prep.data_path),
                 "symbols": list(panel.symbols)},
        "period": {"first_bar": _day(panel.ts[0]), "start": _day(panel.ts[first]),
                   "end": _day(panel.ts[-1]), "bars": int(panel.T - first),
                   "warmup": int(engine.warmup), "warmup_bars_before_start": int(first),
                   "bars_per_year": float(engine.bars_per_year),
                   "calendar": engine.calendar},
        "command": _command(argv),
        "versions": versions(),
        "files": {p.name: file_sha256(p) for p in files},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_manifest(out_dir: str, manifest: dict) -> str:
    """Write ``run.json`` atomically into ``out_dir``; returns its path."""
    target = Path(out_dir) / RUN_JSON
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, target)
    return str(target)


def read_manifest(out_dir: str) -> dict | None:
    """The ``run.json`` of a results directory, or None when there is none."""
    path = Path(out_dir) / RUN_JSON
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def rerun_command(manifest: dict) -> str:
    """A `crowe backtest` command line that repeats the recorded run."""
    pol, period = manifest["policy"], manifest["period"]
    args = ["crowe", "backtest", pol.get("artifact") or pol["source"],
            "--data", manifest["data"]["path"], "--end", period["end"]]
    if period["warmup_bars_before_start"]:
        args += ["--start", period["start"]]
    args += [a for k, v in manifest["params"].items() for a in ("--param", f"{k}={_exact(v)}")]
    args += ["--cash", _exact(manifest["cash"])]
    return shlex.join(args)


def _exact(value) -> str:
    """The shortest text that reads back as the same number (`repr`), integers without a
    fraction."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) < 2**53):
        return str(int(value))
    return repr(float(value))


def versions() -> dict:
    import jax
    out = {"crowe": _version("crowe-policy"), "python": platform.python_version()}
    for name in ("jax", "jaxlib", "numpy", "pyarrow"):
        out[name] = _version(name)
    out["backend"] = jax.default_backend()
    return out


def _policy(path: str, engine, verified, check) -> dict:
    out = {"name": engine.name, "version": engine.version, "source": None,
           "source_sha256": None, "ir_sha256": None, "artifact": None, "artifact_digest": None}
    if verified is not None:
        members = verified.artifact.members
        out.update(artifact=path, artifact_digest=verified.digest,
                   source_sha256=_sha(members.get("source.policy")),
                   ir_sha256=_sha(members.get("ir.txt")))
    else:
        from crowe.compiler.irtext import ir_text
        from crowe.compiler.program import to_ir
        ir = ir_text(to_ir(check.policy)).encode("utf-8")
        out.update(source=path, source_sha256=file_sha256(path),
                   ir_sha256=hashlib.sha256(ir).hexdigest())
    return out


def _sha(blob: bytes | None) -> str | None:
    return None if blob is None else hashlib.sha256(blob).hexdigest()


def _command(argv) -> dict:
    argv = list(sys.argv if argv is None else argv)
    if argv:
        argv[0] = Path(argv[0]).name
    return {"argv": argv, "line": shlex.join(argv), "cwd": os.getcwd()}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _scalar(value):
    v = np.asarray(value)
    return int(v) if v.dtype.kind in "iu" else float(v)


def _day(ns) -> str:
    """A date for a bar at midnight UTC, else the ISO time (intraday bars)."""
    stamp = np.datetime64(int(ns), "ns")
    if int(ns) % (86_400 * 10**9) == 0:
        return str(stamp.astype("datetime64[D]"))
    return np.datetime_as_string(stamp.astype("datetime64[s]"), timezone="UTC")
