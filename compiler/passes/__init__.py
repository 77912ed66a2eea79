"""The compiler's passes, in the order they run:

1. `fold`: constant folding (only operations that are exact in IEEE arithmetic).
2. `cse`: common-subexpression elimination (one node object per distinct computation).
3. `lookback`: ring-buffer sizes and the warm-up, from every operator's lookback.
4. `causality`: proof that nothing reads a bar after the current one.

`dependence` (which nodes depend on the swept parameters) is not a rewrite: sweeps ask it.
"""
from .causality import causality
from .cse import cse
from .dependence import dependence
from .fold import fold
from .lookback import lookback

PASSES = (fold, cse, lookback, causality)

__all__ = ["PASSES", "fold", "cse", "lookback", "causality", "dependence"]
