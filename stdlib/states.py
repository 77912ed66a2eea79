"""Trading states of a compiled policy, from least to most severe: the one definition that the
step, the backtest tables and the paper runtime share.

* ``ACTIVE``: trades toward its targets.
* ``REDUCING``: targets are scaled down by the `reduce(x)` actions in force.
* ``HALTED``: no new orders; the book is kept as it is (a losing book stays open).
* ``FLATTENING``: orders toward zero on every instrument, every bar, until flat.
"""
from __future__ import annotations

ACTIVE, REDUCING, HALTED, FLATTENING = 0, 1, 2, 3
STATES = ("ACTIVE", "REDUCING", "HALTED", "FLATTENING")
SEVERITY = {"reduce": REDUCING, "halt": HALTED, "flatten": FLATTENING}
