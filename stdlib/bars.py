"""The fields of a bar: the one definition that the language, the compiled step, the data
loader and the paper feed share."""
from __future__ import annotations

PRICES = ("open", "high", "low", "close")
FIELDS = PRICES + ("volume",)
UNITS = {**{p: "price" for p in PRICES}, "volume": "shares"}

# Fields the host adds to each bar from its timestamp and the policy's `universe.calendar`
# (`crowe.stdlib.sessions.clock`): the bar's session (days since 1970-01-01) and the bars left
# in the session in which this bar's orders fill. Int64 scalars, present only with a calendar.
SESSION = ("session", "session_left")
