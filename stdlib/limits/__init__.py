"""Portfolio limits: monitors of the equity curve that fire an action (`halt`, `flatten`,
`reduce(x)`) held for at least the limit's cooldown and for as long as the limit is breached.

Each receives ``E`` (equity at this close, after the bar's fills), ``prev_E`` (at the previous
close) and ``ts`` (the bar's time, ns since the epoch, UTC), and returns ``fired`` (a scalar
bool) and its statistic.
"""
