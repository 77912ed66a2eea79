"""The installed package holds everything in the source folders, and says its version.

Run against a wheel installed into a fresh environment (`CI=true ./dev test` does that), these
fail for a subpackage, module or data file that the package leaves out; run in the editable
development install, they check that every module imports.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PARTS = ("dsl", "compiler", "runtime", "stdlib")
BIN = Path(sys.executable).parent
INSTALLED_FROM_WHEEL = os.environ.get("CROWE_TEST_INSTALL") == "wheel"


def source_files(part: str) -> list[Path]:
    return sorted(p.relative_to(ROOT / part) for p in (ROOT / part).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def module_name(part: str, rel: Path) -> str:
    parts = rel.with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("crowe", part, *parts))


MODULES = [module_name(part, rel) for part in PARTS for rel in source_files(part)
           if rel.suffix == ".py" and rel.name != "__main__.py"]


def installed_dir(part: str) -> Path:
    (location,) = importlib.import_module(f"crowe.{part}").__path__
    return Path(location)


@pytest.mark.parametrize("name", MODULES)
def test_every_module_of_the_source_imports_from_the_package(name):
    importlib.import_module(name)


@pytest.mark.parametrize("part", PARTS)
def test_every_file_of_the_source_is_installed(part):
    missing = [str(rel) for rel in source_files(part) if not (installed_dir(part) / rel).is_file()]
    assert missing == []


def test_the_grammar_and_the_bundled_data_are_installed():
    assert importlib.resources.files("crowe.dsl").joinpath("grammar.lark").is_file()
    from crowe.runtime.bundled import bundled_files
    assert sorted(p.name for p in bundled_files()) == sorted(
        p.name for p in (ROOT / "examples" / "data").glob("*.parquet"))


@pytest.mark.skipif(not INSTALLED_FROM_WHEEL, reason="the development install is editable")
def test_the_package_under_test_is_the_installed_one_not_the_source():
    for part in PARTS:
        here = installed_dir(part).resolve()
        assert here != (ROOT / part).resolve() and "site-packages" in here.parts, here


def test_the_version_is_the_projects():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert importlib.metadata.version("crowe-policy") == project["version"]


@pytest.mark.parametrize("command", ["crowe-compile", "crowe"])
def test_version_option(command):
    version = importlib.metadata.version("crowe-policy")
    out = subprocess.run([str(BIN / command), "--version"], capture_output=True, text=True,
                         timeout=120)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"{command} {version}\n", "")
