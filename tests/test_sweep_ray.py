"""`crowe sweep --backend ray`: the grid's batches as Ray tasks on a local Ray of two workers
give the local backend's Parquet, bit for bit and in the same row order; without Ray the
backend says how to install it.

One Ray start for the module (it takes seconds). Ray is the `ray` extra, which `./dev` installs
with the test dependencies; under CI a missing Ray fails the test instead of skipping it."""
from __future__ import annotations

import ast
import importlib.util
import json
import logging
import os
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from crowe.runtime import sweep as sweep_module
from crowe.runtime.cli import main
from crowe.runtime.metrics import KEYS

ROOT = Path(__file__).parent.parent
POLICY = str(ROOT / "policies" / "ts_trend_v1.policy")
# 4 combinations over 4 instruments and 1,340 bars: two batches of two on the two workers
ARGS = ["--grid", "fast=10,30", "--grid", "slow=100,150", "--end", "2005-06-30",
        "--start", "2004-09-01", "--format", "json", "--equity"]
HAVE_RAY = importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def ray_local():
    if not HAVE_RAY:
        if os.environ.get("CI") == "true":
            pytest.fail("Ray is not installed in CI's test environment: ./dev installs the "
                        "`ray` extra with the test dependencies (pip install '.[test,ray]')")
        pytest.skip("Ray is not installed (pip install 'crowe-policy[ray]')")
    import ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    def import_runtime() -> None:         # local, so that it pickles by value
        import crowe.runtime.sweep_ray  # noqa: F401

    # The two workers import the runtime while this process runs the local sweep
    warm = [ray.remote(num_cpus=1)(import_runtime).remote() for _ in range(2)]
    try:
        yield ray
    finally:
        ray.get(warm)
        ray.shutdown()


def sweep(out: Path, *extra) -> dict:
    result = CliRunner().invoke(main, ["sweep", POLICY, *ARGS, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ray_backend_gives_the_local_backends_parquet_bit_for_bit(ray_local, tmp_path,
                                                                 monkeypatch):
    """Every column of sweep.parquet (parameters and every metric) and of equity.parquet is
    identical, row for row, and so are the best runs and the overfitting statistics printed."""
    # The local backend in batches of two, as the two Ray tasks: its compiled program, in JAX's
    # persistent cache, is the one the workers load instead of compiling it again (that a
    # member's result does not depend on the batch size is tests/test_sweep.py's).
    with monkeypatch.context() as m:
        m.setattr(sweep_module, "MAX_BATCH", 2)
        local = sweep(tmp_path / "local")
    distributed = sweep(tmp_path / "ray", "--backend", "ray")
    for file in ("sweep.parquet", "equity.parquet"):
        a, b = (pq.read_table(tmp_path / side / file) for side in ("local", "ray"))
        assert a.num_rows > 0 and a.schema == b.schema, file
        for name in a.column_names:
            x, y = a.column(name).to_numpy(), b.column(name).to_numpy()
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), (file, name)  # NaN too
    table = pq.read_table(tmp_path / "ray" / "sweep.parquet")
    assert table.num_rows == 4 and set(KEYS) <= set(table.column_names)
    assert table.column("fast").to_pylist() == [10, 10, 30, 30]          # the grid's order
    assert table.column("slow").to_pylist() == [100, 150, 100, 150]
    assert len(set(table.column("final_equity").to_pylist())) == 4       # the runs differ
    assert local["best"] == distributed["best"]
    assert local["overfit"] == distributed["overfit"]
    run = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert run["settings"]["backend"] == "ray"


def test_without_ray_the_backend_says_how_to_install_it(tmp_path, monkeypatch):
    """No traceback: one line naming the extra, before any data loads."""
    monkeypatch.setitem(sys.modules, "ray", None)      # `import ray` raises ImportError
    result = CliRunner().invoke(main, ["sweep", POLICY, *ARGS, "--out", str(tmp_path),
                                       "--backend", "ray"])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: `--backend ray` needs Ray, which is not installed: "
                                     "pip install 'crowe-policy[ray]'")


def test_address_needs_the_ray_backend(tmp_path):
    result = CliRunner().invoke(main, ["sweep", POLICY, *ARGS, "--out", str(tmp_path),
                                       "--address", "auto"])
    assert result.exit_code == 2
    assert "use it with --backend ray" in result.output


def test_only_the_ray_backend_imports_ray():
    """Every `crowe` command starts without Ray: `import ray` appears only inside functions of
    runtime/sweep_ray.py, which no module imports at its top."""
    import crowe.compiler
    import crowe.dsl
    import crowe.runtime
    import crowe.stdlib
    found, lazy = [], []
    for part in (crowe.dsl, crowe.compiler, crowe.runtime, crowe.stdlib):
        folder = Path(part.__file__).resolve().parent
        for path in sorted(folder.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if not re.search(r"\b(import|from)\s+(ray\b|\S*sweep_ray)", text):
                continue
            tree = ast.parse(text)
            top = {id(n) for n in tree.body}
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                where = f"{folder.name}/{path.relative_to(folder).as_posix()}"
                if any(n == "ray" or n.startswith("ray.") for n in names):
                    found.append((where, id(node) in top))
                elif any(n.endswith("sweep_ray") for n in names):
                    lazy.append((where, id(node) in top))
    assert found and all(f == ("runtime/sweep_ray.py", False) for f in found), found
    assert lazy and not any(top for _, top in lazy), lazy
