"""Package discovery for setuptools; everything else is in pyproject.toml.

Each top-level folder is a package of the `crowe` namespace (`dsl/` is `crowe.dsl`), with every
subpackage found under it, so that a new subpackage is installed without being listed anywhere
(pyproject.toml's `packages.find` cannot add the `crowe.` prefix). The bundled example data
installs as `crowe/examples/data`, where `crowe.runtime.bundled` looks for it beside the code.
"""
from setuptools import find_namespace_packages, setup

PARTS = ("dsl", "compiler", "runtime", "stdlib")


def packages(part: str) -> list[str]:
    subpackages = find_namespace_packages(part, exclude=["__pycache__", "*.__pycache__"])
    return [f"crowe.{part}"] + [f"crowe.{part}.{sub}" for sub in subpackages]


setup(
    packages=[name for part in PARTS for name in packages(part)] + ["crowe.examples.data"],
    package_dir={**{f"crowe.{part}": part for part in PARTS}, "crowe.examples.data": "examples/data"},
)
