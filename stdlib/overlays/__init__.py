"""Risk overlays on target weights, applied in registry order after sizing or the optimizer:
position, sector, net and gross caps, then VaR, ES and the stress limit. Each only shrinks
weights toward zero, so a later overlay never undoes an earlier one.

Every overlay receives ``w`` (the targets so far), ``w_cur`` (the book's weights at the close)
and ``locked``: the instruments that cannot trade this bar (no valid bar), whose weight is held
at ``w_cur``. A locked position counts at its last mark in every cap, and the caps scale the
other instruments around it.
"""
