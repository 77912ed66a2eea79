"""Compile a checked policy into an artifact: one file, byte-for-byte reproducible.

    blob = build(checked, source_bytes, symbols)                 # -> bytes of NAME.cpol
    blob = build(checked, source_bytes, symbols, signer=key)     # signed as `author`

Members (a canonical zip; the format is `crowe.compiler.artifact`):

==========================  ===================================================================
``manifest.json``           canonical JSON: identity, toolchain, universe, schemas, market
                            settings, reasons, warm-up, and every other member's SHA-256 and size
``source.policy``           the policy exactly as written
``ir.txt``                  the canonical IR text (`irtext`)
``step.<platform>.stablehlo``  `step(params, state, bar) -> (state, decision)`, `jax.export`
``init.<platform>.stablehlo``  `init(cash) -> state`, the initial state for a starting capital
``signatures.json``         outside what is signed; `crowe sign` rewrites only this member
==========================  ===================================================================

Each platform gets modules of its own rather than one multi-platform module: a multi-platform
export wraps platform-dependent operations (dot products, solves) in a `case` on the platform,
which XLA then compiles differently on CPU, and the results stop matching the source backtest
bit for bit. The initial state is exported as a function of the starting cash rather than stored
as arrays, so the runtime never needs to know the state's layout.

Nothing depends on the machine or the moment: no timestamps, no paths (source locations inside
the StableHLO are reduced to file base names and line numbers).
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import os
from pathlib import Path

import jax
import jax.numpy as jnp
from jax import export
from jax._src import config as jax_config

from crowe.dsl.check import CheckedPolicy

from .artifact import container as ct
from .artifact import keys as ks
from .artifact.manifest import FORMAT, FORMAT_VERSION, PLATFORMS, member_table, module_members
from .artifact.signatures import sign
from .irtext import ir_text
from .program import PolicyIR, to_ir
from .step import StepBuilder, Universe

DEFAULT_CASH = 1e6
BAR_FLOATS = ("open", "high", "low", "close", "volume", "fill_qty", "fill_price", "fill_cost",
              "sent_qty", "exit_hit")
_PACKAGE_FILES = ("dsl", "compiler", "stdlib")


class CompileError(Exception):
    """The policy cannot be compiled into an artifact (the message says why)."""


def build(policy: CheckedPolicy, source: bytes, symbols, symbols_from: str = "policy",
          signer: ks.SigningKey | None = None) -> bytes:
    """The artifact for `policy` bound to `symbols` (in that order), as bytes."""
    pir = to_ir(policy)
    b = StepBuilder(pir, Universe.bind(pir, tuple(symbols)), DEFAULT_CASH)
    modules, calling = export_modules(b)
    members = {"source.policy": bytes(source), "ir.txt": ir_text(pir).encode("utf-8")}
    members.update(modules)
    manifest = make_manifest(pir, b, members, calling, symbols_from)
    raw = ct.canonical_json(manifest)
    entries = [] if signer is None else [sign(signer, hashlib.sha256(raw).hexdigest(), "author")]
    members[ct.MANIFEST] = raw
    members[ct.SIGNATURES] = ct.canonical_json({"signatures": entries})
    return ct.pack(members)


# -- export ---------------------------------------------------------------------------------------

def specs(b: StepBuilder) -> tuple[dict, dict, dict]:
    """Shape-and-dtype specs of (params, state, bar) for the builder's universe."""
    def sd(tree):
        return jax.tree_util.tree_map(
            lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), tree)
    N = b.N
    bar = {"ts": jax.ShapeDtypeStruct((), jnp.int64),
           "valid": jax.ShapeDtypeStruct((N,), jnp.bool_),
           **{k: jax.ShapeDtypeStruct((N,), jnp.float64) for k in BAR_FLOATS},
           **{k: jax.ShapeDtypeStruct((), jnp.int64) for k in b.session_inputs}}
    return sd(b.default_params()), jax.eval_shape(b.init_state), bar


def export_modules(b: StepBuilder) -> tuple[dict[str, bytes], int]:
    """The serialized step and init for every platform this jax can export to."""
    params, state, bar = specs(b)

    def init(cash):
        # the builder reads its starting cash only in init_state; trace it as an argument
        saved, b.cash0 = b.cash0, cash
        try:
            return b.init_state()
        finally:
            b.cash0 = saved

    cash = jax.ShapeDtypeStruct((), jnp.float64)
    out, calling = {}, None
    with _no_paths():
        for platform in PLATFORMS:
            try:
                step_exp = export.export(jax.jit(b.step), platforms=(platform,))(params, state,
                                                                                 bar)
                init_exp = export.export(jax.jit(init), platforms=(platform,))(cash)
            except Exception:  # noqa: BLE001 - a platform this jax cannot lower for is skipped
                if platform == "cpu":
                    raise
                continue
            names = module_members(platform)
            out[names["step"]] = bytes(step_exp.serialize())
            out[names["init"]] = bytes(init_exp.serialize())
            calling = step_exp.calling_convention_version
    return out, calling


def _no_paths():
    """Source locations without directories, one frame deep: no machine paths, and the same
    bytes whether the package is installed or run from a checkout."""
    import contextlib
    stack = contextlib.ExitStack()
    stack.enter_context(jax_config.traceback_in_locations_limit(0))
    stack.enter_context(jax_config.include_full_tracebacks_in_locations(False))
    stack.enter_context(jax_config.hlo_source_file_canonicalization_regex(r".*/"))
    return stack


# -- manifest -------------------------------------------------------------------------------------

def make_manifest(pir: PolicyIR, b: StepBuilder, members: dict[str, bytes], calling: int,
                  symbols_from: str) -> dict:
    spec = pir.spec
    params_spec, state_spec, bar_spec = specs(b)
    decision = jax.eval_shape(b.step, params_spec, state_spec, bar_spec)[1]
    platforms = [p for p in PLATFORMS if module_members(p)["step"] in members]
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "policy": {"name": spec.policy, "version": spec.version, "owner": spec.owner,
                   "description": spec.description},
        "compiler": {"name": "crowe-policy", "version": _version("crowe-policy"),
                     "source_sha256": compiler_digest()},
        "toolchain": {"jax": jax.__version__, "jaxlib": _version("jaxlib"),
                      "flatbuffers": _version("flatbuffers"), "platforms": platforms,
                      "x64": bool(jax.config.read("jax_enable_x64")),
                      "xla_flags": os.environ.get("XLA_FLAGS", ""),
                      "calling_convention_version": calling},
        "universe": {"symbols": list(b.u.symbols), "symbols_from": symbols_from,
                     "bar": str(spec.universe.bar), "bar_seconds": int(pir.policy.bar_seconds),
                     "calendar": spec.universe.calendar},
        "params": [_param(pir, p) for p in pir.params],
        "bar_schema": _schema(bar_spec),
        "decision_schema": _schema(decision),
        "state": {"leaves": len(jax.tree_util.tree_leaves(state_spec)),
                  "bytes": sum(a.size * a.dtype.itemsize
                               for a in jax.tree_util.tree_leaves(state_spec))},
        "warmup": pir.warmup, "max_warmup": pir.max_warmup,
        "market": dataclasses.asdict(b.cfg),
        "bars_per_year": float(b.bpy),
        "reasons": list(b.reasons),
        "initial_state": {"function": "init(cash) -> state", "default_cash": DEFAULT_CASH},
        "modules": {p: module_members(p) for p in platforms},
        "members": member_table(members),
    }


def _param(pir: PolicyIR, p) -> dict:
    cast = int if p.dtype == "int" else float
    doc = pir.policy.params[p.name].doc
    return {"name": p.name, "dtype": p.dtype, "default": cast(p.default), "lo": cast(p.lo),
            "hi": cast(p.hi), "doc": doc}


def _schema(tree) -> dict:
    return {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in tree.items()}


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def compiler_digest() -> str:
    """SHA-256 over the compiler's own source (checker, compiler, standard library, market
    model): relative path and bytes of each file, in sorted order."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for rel in _PACKAGE_FILES:
        base = root / rel
        files = [base] if base.is_file() else sorted(
            p for p in base.rglob("*") if p.suffix in (".py", ".lark") and
            "__pycache__" not in p.parts)
        for f in files:
            h.update(f.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


# -- the command line's entry -----------------------------------------------------------------

def compile_file(result, source: bytes, output: str | None, universe: tuple,
                 sign_key: str | None) -> str:
    """Compile a policy that checked clean (`crowe.dsl.policy.CheckResult` of `source`) into
    an artifact on disk, bound to `universe` = (symbols, where they came from); returns a
    one-line summary. Raises `CompileError` for anything the user can fix."""
    policy = result.policy
    signer = _signer(sign_key)
    symbols, origin = universe
    blob = build(policy, source, symbols, origin, signer)
    out = Path(output or f"{Path(result.path).stem}.cpol")
    try:
        if out.parent != Path(""):
            out.parent.mkdir(parents=True, exist_ok=True)
        ks.write_atomic(out, blob)
    except OSError as e:
        raise CompileError(f"cannot write `{out}`: {e.strerror or e}") from None
    members = ct.unpack(blob)
    digest = hashlib.sha256(members[ct.MANIFEST]).hexdigest()
    signed = f", signed by {signer.name} as author" if signer else ""
    return (f"wrote {out}: {policy.spec.policy} {policy.spec.version}, {len(symbols)} symbols, "
            f"manifest sha256 {digest[:16]}{signed}")


def _signer(sign_key: str | None):
    if sign_key is None:
        return None
    try:
        return ks.load_signing_key(sign_key)
    except ks.KeyFileError as e:
        raise CompileError(str(e)) from None
