"""JAX, imported on first use: component modules are read by the checker, which must stay fast
and never start JAX (`crowe-compile --check` runs on every editor save)."""
from __future__ import annotations

import importlib


class _Lazy:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        module = importlib.import_module(self._name)
        value = getattr(module, attr)
        return value


jax = _Lazy("jax")
jnp = _Lazy("jax.numpy")
lax = _Lazy("jax.lax")
