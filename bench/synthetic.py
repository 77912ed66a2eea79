"""SYNTHETIC daily bars for benchmarks: N instruments x T bars, deterministic from a seed.

These are not market data. They are shaped like it, so that a compiled policy exercises every
path it would on real bars (warm-up, valid and missing bars, late listings, liquid and illiquid
names, gates that open and close):

* one market factor (daily std 0.9%, slight upward drift) plus an idiosyncratic part, with a
  per-name beta in [0.5, 1.2] and a per-name total daily volatility in [1%, 3%];
* geometric random walks from a per-name starting price in [10, 200];
* each day's log return is split into an overnight gap (a third of it, plus a little noise: the
  open is the previous close times the gap) and the intraday move (the close is the open times
  it); high and low extend beyond max/min(open, close) by a half-normal amount, so every bar is
  OHLC-consistent;
* volume is log-normal (log std 0.5) around a per-name average drawn log-uniformly from 1e5 to 1e7
  shares;
* a few bars are missing (about 0.05% of them, never the first bar of a name) and a couple of
  names list late (their first bar is somewhere in the first half of the sample).

`make_panel` goes through `crowe.runtime.data.align`, the same validation and alignment as a
Parquet file, and returns its `Panel`.
"""
from __future__ import annotations

import numpy as np

SYNTHETIC = True          # everything this module returns is simulated
FIRST_DAY = "2000-01-03"


def symbol_names(n: int) -> tuple[str, ...]:
    """`SYN0000`, `SYN0001`, ...: names that no real exchange uses."""
    return tuple(f"SYN{i:04d}" for i in range(n))


def trading_days(t: int, first: str = FIRST_DAY) -> np.ndarray:
    """T weekdays from `first`, as datetime64[ns] (exchange holidays are not modelled)."""
    start = np.datetime64(first, "D")
    days = np.busday_offset(start, np.arange(t), roll="forward")
    return days.astype("datetime64[ns]")


def make_bars(n: int, t: int, seed: int = 0, symbols=None, missing_frac: float = 5e-4,
              late_listings: int = 2) -> dict:
    """The long columns ``ts symbol open high low close volume`` of a synthetic panel."""
    symbols = tuple(symbols) if symbols is not None else symbol_names(n)
    if len(symbols) != n:
        raise ValueError("need exactly n symbols")
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.01, 0.03, n)                      # total daily volatility
    beta = rng.uniform(0.5, 1.2, n)
    m_sd = 0.009
    idio_sd = np.sqrt(np.maximum(sigma ** 2 - (beta * m_sd) ** 2, 1e-6))
    drift = rng.normal(2e-4, 2e-4, n)
    p0 = rng.uniform(10.0, 200.0, n)
    adv = 10.0 ** rng.uniform(5.0, 7.0, n)

    market = rng.normal(3e-4, m_sd, (t, 1))
    r = drift - 0.5 * sigma ** 2 + beta * market + idio_sd * rng.standard_normal((t, n))
    gap = r / 3.0 + sigma / np.sqrt(3.0) * 0.3 * rng.standard_normal((t, n))
    gap[0] = 0.0
    intraday = r - gap
    log_close = np.log(p0) + np.cumsum(r, axis=0)
    close = np.exp(log_close)
    prev_close = np.vstack([p0[None, :], close[:-1]])
    open_ = prev_close * np.exp(gap)
    close = open_ * np.exp(intraday)
    wick = np.abs(rng.normal(0.0, 0.5, (2, t, n))) * sigma
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = np.round(adv * np.exp(rng.normal(-0.125, 0.5, (t, n))))

    present = np.ones((t, n), dtype=bool)
    if t > 2:
        k = int(round(missing_frac * t * n))
        present[rng.integers(1, t, k), rng.integers(0, n, k)] = False
        for j in rng.choice(n, size=min(late_listings, n), replace=False):
            present[: int(rng.integers(1, max(t // 2, 2))), j] = False

    ti, ci = np.nonzero(present)
    ts = trading_days(t)
    names = np.asarray(symbols, dtype=object)
    return {"ts": ts[ti], "symbol": names[ci], "open": open_[ti, ci], "high": high[ti, ci],
            "low": low[ti, ci], "close": close[ti, ci], "volume": volume[ti, ci]}


def make_panel(n: int, t: int, seed: int = 0, symbols=None, **kw):
    """A synthetic `Panel` [T, N], through `crowe.runtime.data.align`."""
    from crowe.runtime.data import align
    return align(make_bars(n, t, seed, symbols, **kw))
