"""Run an artifact: verify it, deserialize its exported step, and wrap it as an `Engine`.

    loaded = load_artifact("cs_mom_v1.cpol", trust_dir="trust", stage="paper",
                           state_dir="state", record=True)
    loaded.engine          # an Engine whose step is the exported StableHLO, not a recompile
    loaded.verified        # the manifest, its digest, and who signed in which role

Every field of the engine comes from the manifest (market settings, bars per year, reasons,
parameters with defaults and ranges, warm-up, name, version, symbols); `step` and `init_state`
call the deserialized modules for this backend, so `backtest(engine, panel)` runs exactly the
program that was signed.
"""
from __future__ import annotations

from dataclasses import dataclass

from crowe.compiler.artifact.manifest import this_platform
from crowe.compiler.artifact.verify import ManifestInvalid, VerifiedArtifact, verify
from crowe.compiler.program import ParamSpec
from crowe.stdlib.market import MarketConfig

from .engine import Engine


@dataclass(frozen=True)
class LoadedArtifact:
    engine: Engine
    verified: VerifiedArtifact


def load_artifact(path: str, trust_dir: str | None = None, stage: str = "sim",
                  state_dir: str | None = None, allow_rollback: bool = False,
                  record: bool = False, cash: float = 1e6) -> LoadedArtifact:
    """Verify the artifact for `stage` (`crowe.compiler.artifact.verify.verify`) and build
    its engine. Raises an `ArtifactError` for anything that must not run."""
    verified = verify(path, trust_dir, stage, state_dir, allow_rollback, record)
    return LoadedArtifact(engine_from(verified, cash), verified)


def load_engine(path: str, trust_dir: str | None = None, stage: str = "sim",
                state_dir: str | None = None, cash: float = 1e6, **kwargs) -> Engine:
    return load_artifact(path, trust_dir, stage, state_dir, cash=cash, **kwargs).engine


def engine_from(verified: VerifiedArtifact, cash: float = 1e6) -> Engine:
    import jax.numpy as jnp
    from jax import export

    art, m = verified.artifact, verified.manifest
    names = m["modules"][this_platform()]
    try:
        step = export.deserialize(bytearray(art.members[names["step"]]))
        init = export.deserialize(bytearray(art.members[names["init"]]))
        cfg = MarketConfig(**m["market"])
        specs = tuple(ParamSpec(p["name"], p["dtype"], p["default"], p["lo"], p["hi"])
                      for p in m["params"])
    except Exception as e:  # noqa: BLE001 - whatever is wrong, the artifact cannot run
        raise ManifestInvalid(f"`{art.path}`: its modules or settings cannot be loaded: "
                              f"{e}") from None
    symbols = tuple(m["universe"]["symbols"])
    _check_shapes(art.path, step, len(symbols))
    calendar = m["universe"].get("calendar")
    if calendar is not None:
        from crowe.stdlib.sessions import names
        if not isinstance(calendar, str) or calendar not in names():
            raise ManifestInvalid(f"`{art.path}`: its calendar {calendar!r} is not one this "
                                  "installation of exchange_calendars knows")
    cash = jnp.asarray(float(cash), jnp.float64)
    return Engine(m["policy"]["name"], m["policy"]["version"], symbols, cfg,
                  float(m["bars_per_year"]), tuple(m["reasons"]), specs, int(m["warmup"]),
                  lambda: init.call(cash), step.call, int(m["universe"]["bar_seconds"]),
                  calendar)


def _check_shapes(path: str, step, n: int) -> None:
    import jax
    try:
        (_, _, bar), _ = jax.tree_util.tree_unflatten(step.in_tree, step.in_avals)
        fits = all(tuple(bar[k].shape) == (n,) for k in ("open", "close", "valid"))
    except (TypeError, ValueError, KeyError):
        fits = False
    if not fits:
        raise ManifestInvalid(f"`{path}`: the exported step does not take bars of the "
                              f"manifest's {n} symbols")
