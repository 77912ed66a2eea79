"""Trading sessions: what a policy's `universe.calendar` (any calendar of the `exchange_calendars`
package, such as ``XNYS``) decides, computed on the host from the bar timestamps.

The compiled step never sees a calendar, only two bar fields (`crowe.stdlib.bars.SESSION`) that
the backtest and the paper feed compute here from each bar's timestamp and the calendar:

- ``session``: the bar's session, as its date in days since 1970-01-01 (the boundary of a day
  for the intraday drawdown limit);
- ``session_left``: the bars on which orders decided at this bar can still fill in the same
  session: the bars after this one in its session, or, at a session's last bar, all the bars of
  the next session (at least 1). TWAP without a horizon works a parent over them.

A bar is in a session when the session's open <= ts < its close, outside a lunch break:
intraday bars are stamped at the time they open, as most vendors stamp them; daily bars carry
the session's date. A session of length L holds ceil(L / bar) bars (a regular XNYS session of
6.5 hours: 7 hourly bars starting at 9:30, the last one half an hour long; an early close at
13:00: 4). Without a calendar a session is a UTC calendar day (`utc_clock`).

Everything here is numpy on the host; `exchange_calendars` (and pandas) are imported on first
use, so that checking a policy without a calendar never loads them.

>>> import numpy as np
>>> ts = np.array(["2024-11-27T20:30", "2024-11-29T14:30", "2024-11-29T17:30"],
...               "datetime64[ns]").astype(np.int64)
>>> c = clock("XNYS", ts, 3600)
>>> [int(x) for x in c["session_left"]]     # last bar before Thanksgiving; Friday 9:30 and 12:30 ET
[4, 3, 7]
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

DAY_NS = 86_400 * 10**9
# The years over which a calendar's regular session and its sessions a year are measured: whole
# past years, so that the numbers do not change with the day a policy is compiled.
REFERENCE = ("2015-01-01", "2024-12-31")


class SessionError(ValueError):
    """Bars that the calendar cannot place: outside every session, or outside the years the
    calendar covers. The message names the first such bar and says what to do."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


@functools.lru_cache(maxsize=1)
def names() -> tuple[str, ...]:
    """Every calendar name `universe.calendar` accepts (with the package's aliases)."""
    import exchange_calendars as xc
    return tuple(sorted(xc.get_calendar_names(include_aliases=True)))


@functools.lru_cache(maxsize=32)
def _calendar(name: str, start: str, end: str):
    import warnings
    import exchange_calendars as xc
    with warnings.catch_warnings():   # the package's own deprecation warnings of pandas
        warnings.simplefilter("ignore")
        try:
            return xc.get_calendar(name, start=start, end=end)
        except Exception:  # noqa: BLE001 - some calendars take only their own bounds
            pass
        try:
            return xc.get_calendar(name)
        except Exception as e:  # noqa: BLE001 - the package's own message says why
            why = str(e) if len(str(e)) <= 160 else str(e)[:157] + "..."
            raise SessionError(f"the `{name}` calendar cannot be built by exchange_calendars "
                               f"({type(e).__name__}: {why})") from None


@functools.lru_cache(maxsize=32)
def _schedule(name: str, start: str, end: str):
    """(labels in days, open, break start, break end, close in ns; -1 where no break)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = _calendar(name, start, end).schedule.loc[start:end]

    def ns(col):
        v = s[col]
        out = v.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]")
        return np.where(v.isna().to_numpy(), -1, out.astype(np.int64))
    labels = s.index.to_numpy("datetime64[D]").astype(np.int64)
    return labels, ns("open"), ns("break_start"), ns("break_end"), ns("close")


def _bars(length_ns, bar_ns):
    return -(-np.asarray(length_ns) // bar_ns)          # ceil


def session_bars(sched, bar_seconds: int) -> np.ndarray:
    """The bars of each session of a schedule (1 a session for daily bars)."""
    _, op, bs, be, cl = sched
    if bar_seconds >= 86_400:
        return np.ones(len(op), np.int64)
    bar = bar_seconds * 10**9
    brk = bs >= 0
    return np.where(brk, _bars(bs - op, bar) + _bars(cl - be, bar), _bars(cl - op, bar))


@dataclass(frozen=True)
class Regular:
    """What a duration and annualisation need from a calendar at one bar size."""

    session_bars: int       # bars of the most common session (`1d` in bars)
    week_sessions: int      # sessions of a regular week (`1w` = this many days)
    bars_per_year: float    # bars a year, over the reference years


@functools.lru_cache(maxsize=64)
def regular(name: str, bar_seconds: int) -> Regular:
    sched = _schedule(name, *REFERENCE)
    counts = session_bars(sched, int(bar_seconds))
    values, freq = np.unique(counts, return_counts=True)
    first, last = (np.datetime64(d) for d in REFERENCE)
    if len(sched[0]) and sched[0][0] > (first + 7).astype(np.int64):
        first = np.datetime64(int(sched[0][0]), "D")  # a calendar that starts later
    years = ((last - first + 1) / np.timedelta64(1, "D")) / 365.25
    week = str(_calendar(name, *REFERENCE).weekmask)
    return Regular(int(values[np.argmax(freq)]), max(week.count("1"), 1),
                   float(counts.sum() / years))


def clock(name: str, ts_ns, bar_seconds: int) -> dict:
    """The session fields of bars stamped `ts_ns` (int64 ns, UTC): ``session`` and
    ``session_left`` (int64 arrays, see the module). Raises `SessionError` naming the first
    bar outside every session."""
    ts = np.asarray(ts_ns, np.int64).reshape(-1)
    if ts.size == 0:
        return {"session": ts.copy(), "session_left": ts.copy()}
    lo = np.datetime64(int(ts.min()), "ns").astype("datetime64[Y]")
    hi = np.datetime64(int(ts.max()), "ns").astype("datetime64[Y]") + 1
    sched = _schedule(name, f"{lo}-01-01", f"{hi}-12-31")
    labels, op, bs, be, cl = sched
    if bar_seconds >= 86_400:
        i = np.searchsorted(labels, ts // DAY_NS)
        i_ok = np.minimum(i, len(labels) - 1)
        inside = (i < len(labels)) & (labels[i_ok] == ts // DAY_NS) & (ts % DAY_NS == 0)
        left = np.ones(ts.size, np.int64)
    else:
        i = np.searchsorted(op, ts, side="right") - 1
        i_ok = np.maximum(i, 0)
        in_break = (bs[i_ok] >= 0) & (ts >= bs[i_ok]) & (ts < be[i_ok])
        inside = (i >= 0) & (ts < cl[i_ok]) & ~in_break
        bar = bar_seconds * 10**9
        morning = (bs[i_ok] >= 0) & (ts < bs[i_ok])
        left = np.where(morning, _bars(bs[i_ok] - ts, bar) - 1 + _bars(cl[i_ok] - be[i_ok], bar),
                        _bars(cl[i_ok] - ts, bar) - 1)
        counts = session_bars(sched, bar_seconds)
        nxt = counts[np.minimum(i_ok + 1, len(counts) - 1)]
        left = np.where(left > 0, left, nxt).astype(np.int64)
    if not inside.all():
        k = int(np.argmin(inside))
        when = np.datetime64(int(ts[k]), "ns").astype("datetime64[m]" if bar_seconds < 86_400
                                                       else "datetime64[D]")
        what = ("is not a session" if bar_seconds >= 86_400 else
                "lies outside the sessions (an intraday bar is stamped at the time it opens)")
        raise SessionError(f"bar {k} at {when} UTC {what} of the `{name}` calendar; "
                           f"{int((~inside).sum()):,} of {ts.size:,} bars are outside", k)
    return {"session": labels[i_ok].astype(np.int64), "session_left": left}


def utc_clock(ts, bar_seconds: int):
    """The session fields without a calendar, inside the step: a session is a UTC calendar day
    (``session = ts // 1 day``), and the bars left count to UTC midnight."""
    from crowe.stdlib._jax import jnp
    session = ts // DAY_NS
    if bar_seconds >= 86_400:
        return session, jnp.asarray(1, jnp.int64)
    per_day = math.ceil(86_400 / bar_seconds)
    left = per_day - 1 - (ts % DAY_NS) // (bar_seconds * 10**9)
    return session, jnp.where(left > 0, left, per_day).astype(jnp.int64)
