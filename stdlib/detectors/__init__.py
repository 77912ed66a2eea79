"""Stand-down detectors: the built-in rules of `stand_down` (and the `when` rule that any other
name takes). Each returns ``fired``, per instrument (``[N]``) or for the whole portfolio (a
scalar), and the step holds the rule's action for its cooldown. Its other scalar outputs are its
statistics, recorded every bar (`RULE.NAME` columns of the backtest's equity table). A detector
may also return ``kill`` (engage the kill switch this bar) and ``kill_held`` (flatten while it is
held). Inputs: ``series`` (the rule's `series` setting at this bar, or the market return),
``est`` (the step's estimators), ``bar`` (the bar's fields, NaN where invalid), ``cooldown`` (the
rule's, in bars), and the book (``E``, ``prev_E``, ``r_eq``, ``ok``, ``seen``, ``ts``). A detector
registered with ``reads_targets`` also gets ``targets``, the step's target chain as a pure
function ``(fields, ok) -> w`` of a bar, and ``prev_close``, the last valid close before it."""


def replay(transform, series, ctx=None, **inputs):
    """Run a portfolio-wide detector over a series (one value per bar), compiled once per
    detector and shapes: its outputs at every bar, as numpy arrays with a leading time axis.
    ``inputs`` are further per-bar inputs, each with the same leading axis. For examples and
    tests; the compiled step feeds detectors the same way, one bar at a time."""
    from crowe.stdlib._jax import jax, jnp

    jax.config.update("jax_enable_x64", True)      # as in the compiled step: float64
    if (transform, ctx) not in _REPLAYS:
        def one(state, xs):
            out, _, state = transform.update(xs, state, ctx)
            return state, out
        _REPLAYS[transform, ctx] = jax.jit(
            lambda xs: jax.lax.scan(one, transform.init(ctx), xs)[1])
    out = _REPLAYS[transform, ctx](dict(inputs, series=jnp.asarray(series, jnp.float64)))
    return jax.device_get(out)


_REPLAYS: dict = {}
