"""Protective exits: per-position stop-loss, take-profit and trailing stop, placed at each
decision as resting orders that the market model checks against the next bar's range
(`crowe.stdlib.market.exit_fills`)."""
