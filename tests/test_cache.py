"""The persistent compilation cache: where it lives, that it is off when asked or unusable, and
that a second `crowe backtest` in a new process reuses the program the first one compiled."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crowe.compiler import cache

ROOT = Path(__file__).parent.parent
CROWE = str(Path(sys.executable).parent / "crowe")
HOME = Path.home()


@pytest.mark.parametrize("env, expected", [
    ({}, HOME / ".cache" / "crowe" / "jax"),
    ({"XDG_CACHE_HOME": "/var/cache/me"}, Path("/var/cache/me/crowe/jax")),
    ({"XDG_CACHE_HOME": "relative/dir"}, HOME / ".cache" / "crowe" / "jax"),  # XDG: ignored
    ({"CROWE_CACHE_DIR": "/tmp/c", "XDG_CACHE_HOME": "/var/cache/me"}, Path("/tmp/c/jax")),
    ({"CROWE_CACHE_DIR": "~/c"}, HOME / "c" / "jax"),
    ({"CROWE_CACHE_DIR": "off"}, None),
    ({"CROWE_CACHE_DIR": "OFF"}, None),
    ({"CROWE_CACHE_DIR": "0"}, None),
    ({"CROWE_CACHE_DIR": ""}, None),
])
def test_directory(env, expected):
    assert cache.directory(env) == expected


def test_usable(tmp_path: Path):
    assert cache.usable(tmp_path / "new" / "jax") and (tmp_path / "new" / "jax").is_dir()
    assert list((tmp_path / "new" / "jax").iterdir()) == []  # the probe file is gone
    (tmp_path / "file").write_text("x")
    assert not cache.usable(tmp_path / "file" / "jax")


def env_with(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(values)
    return env


SHOW = ("import jax, crowe.compiler; print(jax.config.jax_compilation_cache_dir); "
        "print(jax.jit(lambda x: x + 1)(1))")


@pytest.mark.parametrize("value", ["off", "{tmp}/file"])
def test_off_or_unusable_leaves_the_cache_off_without_a_word(tmp_path: Path, value: str):
    (tmp_path / "file").write_text("not a directory")
    out = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True,
                         timeout=120, env=env_with(CROWE_CACHE_DIR=value.format(tmp=tmp_path)))
    assert out.returncode == 0 and out.stdout.split() == ["None", "2"], out.stderr
    assert out.stderr == ""


def test_the_users_own_jax_setting_wins(tmp_path: Path):
    env = env_with(CROWE_CACHE_DIR=str(tmp_path / "crowe"),
                   JAX_COMPILATION_CACHE_DIR=str(tmp_path / "mine"))
    out = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0 and out.stdout.split()[0] == str(tmp_path / "mine"), out.stderr
    assert not (tmp_path / "crowe").exists()


def test_a_second_backtest_reuses_the_compiled_program(tmp_path: Path):
    env = env_with(CROWE_CACHE_DIR=str(tmp_path / "cache"), JAX_LOG_COMPILES="1")

    def backtest(out: str, fmt: str) -> subprocess.CompletedProcess:
        return subprocess.run([CROWE, "backtest", "policies/cs_mom_v1.policy",
                               "--out", str(tmp_path / out), "--format", fmt],
                              capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)

    first = backtest("first", "json")
    assert first.returncode == 0, first.stderr[-2000:]
    entries = [p.name for p in (tmp_path / "cache" / "jax").iterdir()]
    assert any(name.startswith("jit_chunk-") for name in entries), entries
    assert "Persistent compilation cache hit for 'jit_chunk'" not in first.stderr
    second = backtest("second", "text")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Persistent compilation cache hit for 'jit_chunk'" in second.stderr
    # the cached executable decides exactly as the freshly compiled one
    metrics = [json.loads((tmp_path / out / "metrics.json").read_text())
               for out in ("first", "second")]
    assert metrics[0] == metrics[1]
