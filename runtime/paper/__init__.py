"""Paper trading: a compiled policy fed bar by bar against a paper broker, crash-safe and
journaled. See `loop.PaperRunner`."""
