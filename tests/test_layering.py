"""The layers import downward only: the language (`dsl`) knows nothing of JAX, the compiler or the
runtime; the compiler never imports the runtime. Read from every module's imports with `ast`,
lazy imports inside functions included."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("dsl", "compiler", "runtime", "stdlib")

# Known imports across the layers, each waiting for the change beside it. Remove an entry when
# its file no longer needs it; never add one to let a new import pass.
PENDING: dict[str, str] = {}
# The `crowe-compile` command lives in dsl/ (the entry point pyproject names) and drives the
# compiler; it imports it inside the function that writes an artifact, so `--check` never
# loads JAX.
COMMANDS = {"dsl/cli.py": ("crowe.compiler", "crowe.runtime")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["crowe", *parts])


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module, line, at module level) for every import in the file; `from m import x` counts as
    importing `m` and, since `x` may be a submodule, `m.x`."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    lazy = {id(n) for fn in ast.walk(tree) if isinstance(fn, _FUNCTIONS)
            for n in ast.walk(fn) if n is not fn}
    package = module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    out = []
    for node in ast.walk(tree):
        top = id(node) not in lazy
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node.module, node.level)
            out.append((base, node.lineno, top))
            out += [(f"{base}.{a.name}", node.lineno, top) for a in node.names]
    return out


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _resolve(package: str, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    parts = package.split(".")
    base = parts[:len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def sources(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def jax_stdlib() -> set[str]:
    """The standard-library modules that load JAX when imported: those that import it at module
    level, directly or through one another (the components import it lazily, on first use)."""
    return loads_jax({module_name(p): {m for m, _, top in imports(p) if top}
                      for p in sources("stdlib")})


def loads_jax(deps: dict[str, set[str]]) -> set[str]:
    """The modules of `deps` (module -> what it imports) that import JAX, directly or through
    another module of `deps` or the package that holds it."""
    deps = {m: ds | {p for d in ds for p in _parents(d)} for m, ds in deps.items()}
    uses = {m for m, ds in deps.items() if any(_is_jax(d) for d in ds)}
    while more := {m for m, ds in deps.items() if ds & uses} - uses:
        uses |= more
    return uses


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_jax(module: str) -> bool:
    return module.split(".")[0] in ("jax", "jaxlib")


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(folder: str, forbidden) -> list[str]:
    out = []
    for path in sources(folder):
        if rel(path) in PENDING:
            continue
        allowed = COMMANDS.get(rel(path), ())
        for module, line, top in imports(path):
            if not forbidden(module):
                continue
            if any(_under(module, a) for a in allowed) and not top:
                continue
            out.append(f"{rel(path)}:{line} imports {module}")
    return sorted(set(out))


def test_the_scan_sees_imports():
    verify = {(m, top) for m, _, top in imports(ROOT / "compiler/artifact/verify.py")}
    assert {("crowe.compiler.artifact.container", True), ("crowe.dsl.files", True),
            ("jax", False)} <= verify
    loader = {(m, top) for m, _, top in imports(ROOT / "runtime/artifact.py")}
    assert ("crowe.compiler.artifact.verify", True) in loader
    command = [(m, top) for m, _, top in imports(ROOT / "dsl/cli.py") if "compiler" in m]
    assert command and not any(top for _, top in command)
    assert "crowe.stdlib.registry" not in jax_stdlib()


def test_loading_jax_goes_through_modules_and_packages():
    deps = {"s.a": {"jax.numpy"}, "s.b": {"s.a"}, "s.c": {"s.b", "math"}, "s.p": {"s.a"},
            "s.q": {"s.p.x"}, "s.d": {"math"}}
    assert loads_jax(deps) == {"s.a", "s.b", "s.c", "s.p", "s.q"}


def test_dsl_imports_neither_jax_nor_the_compiler_nor_the_runtime():
    heavy = jax_stdlib()
    bad = violations("dsl", lambda m: _is_jax(m) or m in heavy or
                     _under(m, "crowe.compiler") or _under(m, "crowe.runtime"))
    assert not bad, "\n".join(bad)


def test_compiler_never_imports_the_runtime():
    bad = violations("compiler", lambda m: _under(m, "crowe.runtime"))
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", sorted(PENDING))
def test_pending_exceptions_name_real_files(path):
    assert (ROOT / path).is_file(), f"{path} is gone: remove it from PENDING"
