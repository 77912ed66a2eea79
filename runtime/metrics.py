"""Performance metrics of a backtest or a paper run (numpy, after the fact, not jitted).

Per-bar simple returns are ``r_t = E_t / E_{t-1} - 1`` for ``t = 1 .. T-1`` over the equity
curve ``E``. Conventions for the degenerate cases, each chosen so that nothing raises and nothing
is infinite except where the true value overflows:

- A ratio ``a / b`` whose denominator is zero is ``0.0`` when ``a == 0`` (a flat strategy has a
  zero risk-adjusted return) and NaN otherwise (a riskless non-zero return has no finite ratio).
  This covers sharpe (zero volatility), sortino (no losing bar) and calmar (no drawdown). A
  denominator that is only rounding noise counts as zero: a standard or downside deviation below
  ``1e-9 * |mean(r)|`` (a constant return computed from an equity curve is never exactly
  constant), a maximum drawdown below ``1e-12``.
- Statistics over an empty set are NaN: fewer than 2 returns for volatility and sharpe, no
  return for sortino, no non-zero return for hit_rate, no winning (losing) bar for avg_win
  (avg_loss), an empty series for everything but ``bars`` and ``costs_paid`` (0.0).
- Equity at or below zero ends the meaning of returns: a bar whose previous equity is <= 0 is
  left out of every return statistic and of turnover, a bar whose own equity is <= 0 out of the
  exposure averages, and drawdowns are NaN while the running peak is <= 0. If the final
  equity is <= 0 the annualized return is -1.0 (everything lost); if the first is <= 0, the
  total and annualized returns are NaN.
- Non-finite equity values are treated as missing (NaN) and make NaN every metric that depends
  on them.
- The annualized return is ``+inf`` if it overflows (enormous growth over very few bars).
"""
from __future__ import annotations

import math

import numpy as np

KEYS = ("total_return", "annualized_return", "volatility", "sharpe", "sortino", "calmar",
        "max_drawdown", "hit_rate", "avg_win", "avg_loss", "turnover", "avg_gross", "avg_net",
        "costs_paid", "final_equity", "bars")
_NOISE = 1e-9  # of |mean(r)|: a smaller deviation of the returns is rounding noise
_NO_DRAWDOWN = 1e-12  # a smaller drawdown is rounding noise in the equity
_NAN = float("nan")


def drawdown_series(equity) -> np.ndarray:
    """Drawdown from the running peak at each bar, as a positive fraction.

    ``dd_t = 1 - E_t / max_{s <= t} E_s`` (0 at a new peak; above 1 if equity turns negative;
    NaN where the equity is missing or the running peak is <= 0). Missing values do not reset
    the peak.

    >>> drawdown_series([100.0, 110.0, 99.0, 120.0]).round(12).tolist()
    [0.0, 0.0, 0.1, 0.0]
    """
    e = _clean(equity)
    if e.size == 0:
        return e
    peak = np.fmax.accumulate(e)
    with np.errstate(all="ignore"):
        return np.where(peak > 0, 1.0 - e / peak, _NAN)


def compute_metrics(equity, gross, net, traded_notional, costs,
                    bars_per_year: float = 252.0) -> dict[str, float]:
    """Standard performance metrics of one run.

    Args:
      equity: equity at each bar's close, ``E_0 .. E_{T-1}`` (``E_0`` the starting equity).
      gross, net: exposure at each bar's close in currency (``sum |q * p|`` and ``sum q * p``).
      traded_notional: currency traded at each bar (``sum |fill qty * fill price|``).
      costs: costs paid at each bar (commission, spread, impact, borrow).
      bars_per_year: bars in one year, for annualization.

    Returns: a dict of floats with the keys of `KEYS`::

      total_return      E_{T-1} / E_0 - 1
      annualized_return (E_{T-1} / E_0) ** (bars_per_year / (T - 1)) - 1      (CAGR)
      volatility        std(r, ddof=1) * sqrt(bars_per_year)
      sharpe            mean(r) / std(r, ddof=1) * sqrt(bars_per_year)        (risk-free 0)
      sortino           mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(bars_per_year)
      calmar            annualized_return / max_drawdown
      max_drawdown      max_t drawdown_series(E)_t
      hit_rate          #(r > 0) / #(r != 0)                  (per bar; per trade:
                                                              `crowe.runtime.trades`)
      avg_win, avg_loss mean(r[r > 0]), mean(r[r < 0]) (a negative number)
      turnover          mean(traded_notional_t / E_{t-1}) * bars_per_year, E_{-1} := E_0
      avg_gross         mean(gross_t / E_t);  avg_net: mean(net_t / E_t)
      costs_paid        sum(costs);  final_equity: E_{T-1};  bars: T

    Degenerate cases follow the conventions of the module docstring.

    Raises:
      ValueError: if the series are not one-dimensional with the same length, or
        ``bars_per_year`` is not a finite number > 0.

    >>> m = compute_metrics([100.0, 110.0, 99.0, 120.0], [0.0] * 4, [0.0] * 4, [0.0] * 4,
    ...                     [0.0] * 4, bars_per_year=3)
    >>> round(m["total_return"], 12), round(m["annualized_return"], 12), round(m["calmar"], 12)
    (0.2, 0.2, 2.0)
    """
    e, gross, net, traded, costs = _inputs(equity, gross, net, traded_notional, costs)
    if not (isinstance(bars_per_year, (int, float)) and math.isfinite(bars_per_year)
            and bars_per_year > 0):
        raise ValueError(f"bars_per_year must be a finite number > 0, got {bars_per_year!r}")
    with np.errstate(all="ignore"):
        out = _metrics(e, gross, net, traded, costs, float(bars_per_year))
    return {key: float(out[key]) for key in KEYS}


def _inputs(*series):
    arrays = [np.asarray(s, dtype=np.float64) for s in series]
    if any(a.ndim != 1 for a in arrays) or len({a.size for a in arrays}) != 1:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ValueError(f"metric series must be one-dimensional of one length, got {shapes}")
    return [_clean(arrays[0])] + arrays[1:]


def _clean(equity):
    e = np.asarray(equity, dtype=np.float64)
    return np.where(np.isfinite(e), e, _NAN)


def _metrics(e, gross, net, traded, costs, bpy):
    r = _returns(e)
    mean = np.mean(r) if r.size else _NAN
    std = np.std(r, ddof=1) if r.size > 1 else _NAN
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) if r.size else _NAN
    cagr = _annualized_return(e, bpy)
    mdd = np.max(drawdown_series(e)) if e.size else _NAN
    return dict(
        total_return=e[-1] / e[0] - 1.0 if e.size and e[0] > 0 else _NAN,
        annualized_return=cagr, volatility=std * math.sqrt(bpy),
        sharpe=_ratio(mean, std, _NOISE * abs(mean)) * math.sqrt(bpy),
        sortino=_ratio(mean, downside, _NOISE * abs(mean)) * math.sqrt(bpy),
        calmar=_ratio(cagr, mdd, _NO_DRAWDOWN), max_drawdown=mdd, **_wins_losses(r),
        turnover=_mean_over_positive(traded, _previous(e)) * bpy,
        avg_gross=_mean_over_positive(gross, e), avg_net=_mean_over_positive(net, e),
        costs_paid=np.sum(costs), final_equity=e[-1] if e.size else _NAN, bars=e.size)


def _returns(e):
    prev, cur = e[:-1], e[1:]
    keep = ~(prev <= 0)  # NaN stays, so that missing equity propagates
    return cur[keep] / prev[keep] - 1.0


def _previous(e):
    return np.concatenate([e[:1], e[:-1]])


def _annualized_return(e, bpy):
    if e.size < 2 or not e[0] > 0 or np.isnan(e[-1]):
        return _NAN
    growth = e[-1] / e[0]
    if growth <= 0:
        return -1.0
    return growth ** (bpy / (e.size - 1)) - 1.0


def _ratio(num, den, negligible):
    if np.isnan(num) or np.isnan(den):
        return _NAN
    if den <= negligible:
        return 0.0 if num == 0 else _NAN
    return num / den


def _wins_losses(r):
    if r.size == 0 or np.isnan(r).any():
        return dict(hit_rate=_NAN, avg_win=_NAN, avg_loss=_NAN)
    wins, losses = r[r > 0], r[r < 0]
    decided = wins.size + losses.size
    return dict(hit_rate=wins.size / decided if decided else _NAN,
                avg_win=np.mean(wins) if wins.size else _NAN,
                avg_loss=np.mean(losses) if losses.size else _NAN)


def _mean_over_positive(values, denominators):
    keep = ~(denominators <= 0)
    return np.mean(values[keep] / denominators[keep]) if keep.any() else _NAN
