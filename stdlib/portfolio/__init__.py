"""Portfolio construction methods: target weights from the forecast and a covariance estimate,
in place of a sizing method."""
