"""Execution: how the orders toward the targets are worked (the algorithm, over parent orders:
`parent`), when the targets are recomputed (`rebalance`), and the order rules that bound each
child order (maximum order size and notional, throttles). Orders decided at the close of bar t
fill at bar t+1 through the market model."""
