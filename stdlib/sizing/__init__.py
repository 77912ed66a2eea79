"""Sizing methods: from the forecast to signed target weights (fractions of equity).

Each takes ``mu``, ``sigma`` and the mask ``tradable`` of the instruments that may hold a
position this bar (the others get weight 0), plus the volatility estimate it reads, if any.
A method that reads a volatility estimate gives weight 0, with the reason ``no_vol``, to an
instrument whose estimate is missing.
"""
