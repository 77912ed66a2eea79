"""Settings of everything that fires an action: limits and stand-down rules."""
from __future__ import annotations

from crowe.dsl.fields import ActionText, Dur, Section


class Acting(Section):
    action: ActionText
    cooldown: Dur | None = None
