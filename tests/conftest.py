"""Settings for the whole suite."""
from __future__ import annotations

import os
from pathlib import Path

# One persistent JAX compilation cache for the suite and the commands it starts, kept between
# runs: the same policy programs are compiled in many tests and processes. Set before anything
# imports `crowe.compiler`, which reads it; a cache directory chosen by the caller wins.
os.environ.setdefault("CROWE_CACHE_DIR",
                      str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "crowe"))

# No per-example time limit for hypothesis: on a shared machine a slow example is load, not a
# bug (tests that must be fast assert their own time bounds).
from hypothesis import settings  # noqa: E402

settings.register_profile("crowe", deadline=None)
settings.load_profile("crowe")
