"""Execution: how the orders toward the targets are sent (the algorithm), and the order rules
that bound them (maximum order size and notional, throttles). Orders decided at the close of
bar t fill at bar t+1 through the market model; every bar the orders are recomputed toward the
targets (cancel and replace)."""
