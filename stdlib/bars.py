"""The fields of a bar: the one definition that the language, the compiled step, the data
loader and the paper feed share."""
from __future__ import annotations

PRICES = ("open", "high", "low", "close")
FIELDS = PRICES + ("volume",)
UNITS = {**{p: "price" for p in PRICES}, "volume": "shares"}
