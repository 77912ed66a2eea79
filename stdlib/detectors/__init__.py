"""Stand-down detectors: the built-in rules of `stand_down` (and the `when` rule that any other
name takes). Each returns ``fired``, per instrument (``[N]``) or for the whole portfolio (a
scalar), and the step holds the rule's action for its cooldown."""
