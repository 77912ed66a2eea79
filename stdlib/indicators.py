"""Indicators over ring buffers and cross-sections, in JAX.

Missing data is NaN and stays NaN: a rolling statistic whose window holds a missing value is
NaN, so an instrument with a gap in its history is not traded until the gap has left every
window it feeds. Cross-sectional statistics ignore NaN instruments.

A ring buffer is an array ``[W, N]`` with a write position: the value of bar ``t`` lives in row
``t % W``. Rows not yet written hold NaN. Write before you read: updating a row and then reading
lets XLA update the buffer in place inside ``lax.scan`` (reading first forces a full copy).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

jax.config.update("jax_enable_x64", True)


def ring_write(buf, pos, value):
    """The buffer with ``value`` written at row ``pos % W`` (``pos`` is the bar count)."""
    row = jnp.mod(pos, buf.shape[0])
    value = jnp.broadcast_to(jnp.asarray(value, buf.dtype), buf.shape[1:])
    return jax.lax.dynamic_update_index_in_dim(buf, value, row, 0)


def ring_lag(buf, pos, n):
    """The value written ``n`` bars before bar ``pos``; NaN when the ring cannot hold it
    (``n`` outside ``[0, W - 1]``, possible only for a window given at run time)."""
    row = jnp.mod(pos - n, buf.shape[0])
    value = jax.lax.dynamic_index_in_dim(buf, row, 0, keepdims=False)
    return _fits(value, n, 0, buf.shape[0] - 1)


def _fits(value, n, lo: int, hi: int):
    """``value``, or NaN where the window ``n`` is outside ``[lo, hi]``: a window parameter
    beyond the range that sized the buffer must fail closed, not read the wrong bars."""
    if isinstance(n, int):           # a constant window: the lookback pass sized its buffer
        return value
    return jnp.where((n >= lo) & (n <= hi), value, jnp.nan)


def ring_age(buf, pos):
    """Age in bars of each row: 0 for the row written at ``pos``, W - 1 for the oldest."""
    rows = jnp.arange(buf.shape[0])
    return jnp.mod(pos - rows, buf.shape[0])


def _window_mask(buf, pos, n):
    mask = ring_age(buf, pos) < n
    return mask.reshape(mask.shape + (1,) * (buf.ndim - 1))


def rolling(stat: str, buf, pos, n):
    """A statistic of the last ``n`` rows (the current one included).

    ``mean``, ``sum``, ``stdev`` and ``var`` (sample, ddof 1), ``min``, ``max`` and ``zscore``
    ((x - mean) / stdev of the window, with the current value x). NaN when any value in the
    window is missing, or when ``n`` is outside ``[1, W]``.
    """
    return _fits(_rolling(stat, buf, pos, n), n, 1, buf.shape[0])


def _rolling(stat: str, buf, pos, n):
    if isinstance(n, int) and n == buf.shape[0]:
        m = jnp.ones((n,) + (1,) * (buf.ndim - 1), bool)   # the ring is exactly the window
    else:
        m = _window_mask(buf, pos, n)
    nf = jnp.asarray(n, buf.dtype)
    if stat in ("min", "max"):
        fill = jnp.inf if stat == "min" else -jnp.inf
        vals = jnp.where(m, buf, fill)
        out = vals.min(0) if stat == "min" else vals.max(0)
        bad = jnp.any(m & jnp.isnan(buf), axis=0)
        return jnp.where(bad, jnp.nan, out)
    masked = jnp.where(m, buf, 0.0)
    total = masked.sum(0)
    if stat == "sum":
        return total
    mean = total / nf
    if stat == "mean":
        return mean
    dev = jnp.where(m, buf - mean, 0.0)
    var = (dev * dev).sum(0) / (nf - 1.0)
    if stat == "var":
        return var
    sd = jnp.sqrt(var)
    if stat == "stdev":
        return sd
    current = ring_lag(buf, pos, 0)
    return (current - mean) / sd   # zscore


def rolling_sums(stat: str, sums, buf, last_bad, pos, n, every=None):
    """``rolling`` in O(N) per bar: running sums of the window about an anchor.

    ``sums`` = (s1, s2, k): the sum and the sum of squares of ``x - k`` over the finite values
    among the last n, and the anchor ``k`` [N]. Each bar adds x[t] and removes x[t - n] (the ring
    must hold n + 1 rows or more); every n bars the sums are recomputed exactly from the ring,
    with the anchor moved to the window mean, so rounding never accumulates over more than n
    updates and the variance never suffers the cancellation of raw sums of squares. ``every``
    (a Python int, n by default) recomputes every ``every`` bars instead: a window given as a
    parameter passes the smallest window its range allows (so never rarer than every n bars),
    so that the schedule is the same for every parameter value and a sweep's batch takes the exact branch only on those bars,
    for all its members at once (a schedule that read n would run both branches every bar).
    ``last_bad`` is the last bar at which x was missing (-1 initially). NaN while the window
    holds a missing value or fewer than n bars.
    """
    s1, s2, k = sums
    x_now = ring_lag(buf, pos, 0)
    x_old = ring_lag(buf, pos, n)

    def incremental(_):
        d_in = jnp.where(jnp.isfinite(x_now), x_now - k, 0.0)
        d_out = jnp.where(jnp.isfinite(x_old), x_old - k, 0.0)
        return s1 + d_in - d_out, s2 + d_in * d_in - d_out * d_out, k

    def exact(_):
        ok = _window_mask(buf, pos, n) & jnp.isfinite(buf)
        cnt = ok.sum(0)
        anchor = jnp.where(ok, buf, 0.0).sum(0) / jnp.maximum(cnt, 1)
        d = jnp.where(ok, buf - anchor, 0.0)
        return d.sum(0), (d * d).sum(0), anchor

    s1, s2, k = jax.lax.cond(jnp.mod(pos, n if every is None else every) == 0, exact,
                             incremental, None)
    nf = jnp.asarray(n, buf.dtype)
    mean = k + s1 / nf
    var = jnp.maximum(s2 - s1 * s1 / nf, 0.0) / (nf - 1.0)
    value = {"sum": k * nf + s1, "mean": mean, "var": var, "stdev": jnp.sqrt(var),
             "zscore": (x_now - mean) / jnp.sqrt(var)}[stat]
    value = jnp.where(last_bad <= pos - n, value, jnp.nan)
    return (s1, s2, k), _fits(value, n, 1, buf.shape[0] - 1)


def ema_update(prev, count, x, n):
    """One step of an exponential moving average with ``alpha = 2 / (n + 1)``.

    Returns ``(ema, count, value)``: the new state and the value to use at this bar, which is
    NaN until ``n`` valid inputs have been seen and NaN on a bar whose input is missing (the
    state then holds its previous value).
    """
    alpha = 2.0 / (jnp.asarray(n, jnp.float64) + 1.0)
    ok = jnp.isfinite(x)
    seeded = count > 0
    new = jnp.where(seeded, alpha * x + (1.0 - alpha) * prev, x)
    ema = jnp.where(ok, new, prev)
    count = count + ok.astype(count.dtype)
    value = jnp.where(ok & (count >= n), ema, jnp.nan)
    return ema, count, value


def wilder_update(avg, count, x, n):
    """One step of Wilder's smoothing (Wilder 1978), the average inside RSI and ATR.

    The first ``n`` valid inputs are averaged (a running mean), after which
    ``avg += (x - avg) / n``, an exponential average with ``alpha = 1 / n`` seeded by that
    simple mean. Returns ``(avg, count, value)``; ``value`` is NaN until ``n`` valid inputs
    have been seen and on a bar whose input is missing (the state then holds), and always when
    a window given at run time is below 1.
    """
    ok = jnp.isfinite(x)
    k = jnp.clip(count + 1, 1, jnp.maximum(n, 1)).astype(jnp.float64)
    new = avg + (x - avg) / k
    avg = jnp.where(ok, new, avg)
    count = count + ok.astype(count.dtype)
    value = jnp.where(ok & (count >= n), avg, jnp.nan)
    return avg, count, _fits(value, n, 1, 2**31)


def _deviations(buf, pos, n):
    """The window mask [W, 1], the window's deviations from its mean [W, N] (0 outside the
    window) and whether the window holds a missing value [N]."""
    m = _window_mask(buf, pos, n)
    bad = jnp.any(m & ~jnp.isfinite(buf), axis=0)
    mean = jnp.where(m, buf, 0.0).sum(0) / jnp.asarray(n, buf.dtype)
    return m, jnp.where(m, buf - mean, 0.0), bad


def moments(stat: str, bufs, pos, n, lag=None):
    """A statistic of the last ``n`` rows of one ring buffer (two for ``corr`` and ``beta``),
    computed from the window's deviations about its mean (two passes, no running sums).

    * ``corr``: Pearson's r, ``sxy / sqrt(sxx syy)``; ``beta``: ``sxy / syy``, the slope of the
      least-squares regression of x on y. NaN when a window's variance is 0.
    * ``skew``: the adjusted Fisher-Pearson skewness ``g1 sqrt(n (n - 1)) / (n - 2)`` with
      ``g1 = m3 / m2^1.5`` (scipy's ``skew(bias=False)``); needs n >= 3.
    * ``kurt``: the excess kurtosis with the same small-sample correction,
      ``((n^2 - 1) m4 / m2^2 - 3 (n - 1)^2) / ((n - 2) (n - 3))`` (scipy's
      ``kurtosis(fisher=True, bias=False)``); needs n >= 4.
    * ``acf``: the sample autocorrelation at ``lag`` (Box and Jenkins),
      ``sum_t d_t d_(t-lag) / sum_t d_t^2`` over the window's deviations; needs 1 <= lag < n.

    ``m_k`` are the central moments of the window (divided by n). NaN when any value of a
    window is missing, or when a window given at run time is outside its range.
    """
    nf = jnp.asarray(n, jnp.float64)
    if len(bufs) == 2 and bufs[0].shape[0] != bufs[1].shape[0]:
        rows = min(b.shape[0] for b in bufs)          # rings of two sizes: align by age
        bufs, pos = [ring_last(b, pos, rows) for b in bufs], rows - 1
    m, dx, bad = _deviations(bufs[0], pos, n)
    if stat in ("corr", "beta"):
        _, dy, bad_y = _deviations(bufs[1], pos, n)
        sxy, syy = (dx * dy).sum(0), (dy * dy).sum(0)
        if stat == "beta":
            value = jnp.where(syy > 0, sxy / jnp.where(syy > 0, syy, 1.0), jnp.nan)
        else:
            sxx = (dx * dx).sum(0)
            den = jnp.sqrt(sxx * syy)
            value = jnp.where(den > 0, sxy / jnp.where(den > 0, den, 1.0), jnp.nan)
        return _fits(jnp.where(bad | bad_y, jnp.nan, value), n, 2, bufs[0].shape[0])
    m2 = (dx * dx).sum(0) / nf
    flat = m2 > 0
    safe = jnp.where(flat, m2, 1.0)
    if stat == "skew":
        g1 = (dx ** 3).sum(0) / nf / safe ** 1.5
        value = g1 * jnp.sqrt(nf * (nf - 1.0)) / (nf - 2.0)
        least = 3
    elif stat == "kurt":
        ratio = (dx ** 4).sum(0) / nf / safe ** 2
        value = ((nf * nf - 1.0) * ratio - 3.0 * (nf - 1.0) ** 2) / ((nf - 2.0) * (nf - 3.0))
        least = 4
    else:
        value = _acf(bufs[0], pos, n, lag, m, dx, safe * nf)
        least = 2
    value = jnp.where(bad | ~flat, jnp.nan, value)
    return _fits(value, n, least, bufs[0].shape[0])


def ring_last(buf, pos, rows: int):
    """The last ``rows`` values of a ring, oldest first: a ring of ``rows`` rows whose newest
    row is the last (read it at position ``rows - 1``)."""
    ages = rows - 1 - jnp.arange(rows)
    return buf[jnp.mod(pos - ages, buf.shape[0])]


def _acf(buf, pos, n, lag, m, dx, c0):
    # dx[r] pairs with the row written `lag` bars earlier, dx[r - lag]; the pair is in the
    # window when the newer row's age plus the lag is below n
    older = jnp.roll(dx, lag, axis=0)
    pair = (ring_age(buf, pos) + lag < n).reshape(m.shape)
    ck = jnp.where(pair, dx * older, 0.0).sum(0)
    if isinstance(lag, int) and isinstance(n, int):   # constants: the checker has seen lag < n
        return ck / c0
    return jnp.where((lag >= 1) & (lag < n), ck / c0, jnp.nan)


def cs_zscore(x):
    """(x - mean) / std across the finite instruments (population std)."""
    ok = jnp.isfinite(x)
    cnt = ok.sum()
    mean = jnp.where(ok, x, 0.0).sum() / cnt
    var = jnp.where(ok, (x - mean) ** 2, 0.0).sum() / cnt
    sd = jnp.sqrt(var)
    return jnp.where(ok & (sd > 0), (x - mean) / sd, jnp.nan)


def cs_demean(x):
    ok = jnp.isfinite(x)
    mean = jnp.where(ok, x, 0.0).sum() / ok.sum()
    return jnp.where(ok, x - mean, jnp.nan)


def cs_rank(x):
    """Rank across the finite instruments scaled to [0, 1]; ties share their mean rank."""
    ok = jnp.isfinite(x)
    cnt = ok.sum()
    srt = jnp.sort(jnp.where(ok, x, jnp.inf))
    lo = jnp.searchsorted(srt, x, side="left")
    hi = jnp.searchsorted(srt, x, side="right")
    r = (lo + hi - 1) / 2.0 / jnp.maximum(cnt - 1, 1)
    return jnp.where(ok, r, jnp.nan)


def cs_mean(x):
    ok = jnp.isfinite(x)
    return jnp.where(ok, x, 0.0).sum() / ok.sum()


def cs_quantile(x, q):
    """The q-quantile across finite instruments, linear interpolation."""
    return jnp.nanquantile(jnp.where(jnp.isfinite(x), x, jnp.nan), jnp.asarray(q, jnp.float64))


def cs_any(c):
    return jnp.any(c)


def cs_all(c, valid):
    return jnp.all(c | ~valid)


def cs_share(c, valid):
    return jnp.where(valid, c, False).sum() / jnp.maximum(valid.sum(), 1)


def turbulence(buf, pos, n, shrink: float = 0.1):
    """Turbulence index of the current cross-section against the previous ``n`` bars.

    ``d = x_t - m``, with ``m`` and ``S`` the mean and covariance of the ``n`` bars before
    ``t``; ``S`` is shrunk toward its diagonal, ``(1 - s) S + s diag(S)``, so it stays
    invertible when instruments outnumber bars. Returns ``d' S^-1 d / N`` over the instruments
    with a complete window (about 1 in calm markets). Kritzman and Li (2010).
    """
    age = ring_age(buf, pos)
    past = ((age >= 1) & (age <= n))[:, None]
    x = ring_lag(buf, pos, 0)
    complete = jnp.all(jnp.where(past, jnp.isfinite(buf), True), axis=0) & jnp.isfinite(x)
    nf = jnp.asarray(n, jnp.float64)
    hist = jnp.where(past & complete, buf, 0.0)
    m = hist.sum(0) / nf
    dev = jnp.where(past & complete, buf - m, 0.0)
    cov = dev.T @ dev / (nf - 1.0)
    diag = jnp.diag(cov)
    cov = (1.0 - shrink) * cov + shrink * jnp.diag(diag)
    eye = jnp.eye(cov.shape[0])
    cov = jnp.where(complete[:, None] & complete[None, :], cov, eye)
    d = jnp.where(complete, x - m, 0.0)
    k = complete.sum()
    val = d @ jnp.linalg.solve(cov, d) / jnp.maximum(k, 1)
    return _fits(jnp.where(k > 1, val, jnp.nan), n, 1, buf.shape[0] - 1)


def normcdf(x):
    return ndtr(x)


def prob_edge(mu, sigma, cost):
    """P(edge > 0) = Phi((|mu| - cost) / sigma) for a normal forecast of the return."""
    return ndtr((jnp.abs(mu) - cost) / sigma)
