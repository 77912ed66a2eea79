"""What an artifact's manifest records, and what its members are called.

`manifest.json` is canonical JSON (`container.canonical_json`) with at least the fields of
`REQUIRED`; `members` lists every other member but `signatures.json` with its SHA-256 and size,
and `modules` names the step and init modules of each exported platform:

    "modules": {"cpu": {"step": "step.cpu.stablehlo", "init": "init.cpu.stablehlo"}, ...}

Platforms are named as `jax.export` names them (`cpu`, `cuda`, `rocm`, `tpu`), which is not
always how a running JAX names its backend: `jax.default_backend()` says `gpu` for any GPU.
`this_platform` maps one to the other, so a runtime looks its modules up under the name they
were exported with.
"""
from __future__ import annotations

import hashlib

FORMAT, FORMAT_VERSION = "crowe-policy-artifact", 1
PLATFORMS = ("cpu", "cuda")      # exported, in this order, when the installed jax lowers for them
REQUIRED = {"policy": dict, "compiler": dict, "toolchain": dict, "universe": dict,
            "params": list, "bar_schema": dict, "warmup": int, "market": dict,
            "bars_per_year": float, "reasons": list, "members": dict, "modules": dict}
_GPU_PLATFORMS = ("cuda", "rocm")


def module_members(platform: str) -> dict[str, str]:
    """The member names of the step and init modules exported for `platform`."""
    return {"step": f"step.{platform}.stablehlo", "init": f"init.{platform}.stablehlo"}


def member_table(members: dict[str, bytes]) -> dict[str, dict]:
    """The manifest's `members`: each member's SHA-256 and size."""
    return {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in members.items()}


def export_platform(backend: str, platform_version: str = "") -> str:
    """`jax.export`'s name for a JAX backend: `gpu` becomes `cuda` or `rocm`, whichever the
    backend's platform version names (as JAX itself tells them apart); other names stay.

    >>> export_platform("gpu", "cuda 12080"), export_platform("gpu", "rocm 60300")
    ('cuda', 'rocm')
    >>> export_platform("cpu", "cpu"), export_platform("cuda")
    ('cpu', 'cuda')
    """
    name = backend.lower()
    if name != "gpu":
        return name
    version = platform_version.lower()
    return next((p for p in _GPU_PLATFORMS if p in version), name)


def this_platform() -> str:
    """The platform whose modules this process runs: its default backend, as `jax.export`
    names it."""
    import jax

    client = jax.devices()[0].client
    return export_platform(jax.default_backend(), getattr(client, "platform_version", ""))
