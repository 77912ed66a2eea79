"""Per-trade statistics of a backtest: round trips from flat to flat, per instrument.

A *trade* is one round trip of one instrument's position from flat to flat: it opens at the
fill that takes the position away from zero and closes at the fill that brings it back to
exactly zero. Fills in between add to it or reduce it. A fill that crosses zero (long to short
or short to long) closes one trade and opens the next at the same bar and price; its cost is
split between the two in proportion to the shares. A position still held at the end of the
run is an *open* trade: it is counted in ``open_trades`` and left out of every other statistic.

For a closed trade with fills ``(q_i, p_i, c_i)`` (signed shares, price, cost):

- ``pnl = -sum(q_i * p_i) - sum(c_i)``: the cash it made, net of commission, spread and
  impact (the position is back at zero, so nothing is left to mark). Borrow and financing
  accrue to the whole book, not to trades, and are not in it.
- ``entry_notional = sum(|q_i * p_i|)`` over the fills that open or add to the position.
- ``ret = pnl / entry_notional``: the return on the capital the trade put to work.
- ``bars = exit bar - entry bar``: the holding time in bars.
- ``exit_reason``: why it ended when a protective exit closed it (``stop_loss``,
  ``take_profit`` or ``trailing_stop``: the reason flag of the bar of the exit's fill, which
  may close only part of it when the participation cap binds), else ``""`` (the targets took
  it to zero). ``exit_metrics`` counts the closed trades by it.

Statistics over the closed trades (``trade_metrics``)::

  trades           number of closed trades;  open_trades: positions still open at the end
  trade_win_rate   #(pnl > 0) / trades           (per trade; the metric `hit_rate` is per bar)
  trade_avg_win    mean(ret[pnl > 0]);  trade_avg_loss: mean(ret[pnl < 0]) (negative)
  trade_best       max(ret);  trade_worst: min(ret)
  trade_avg_bars   mean(bars)
  profit_factor    sum(pnl[pnl > 0]) / -sum(pnl[pnl < 0])   (NaN with no losing trade)

Statistics over an empty set are NaN, as in `crowe.runtime.metrics`.

>>> t = round_trips([0, 1, 1], [0, 0, 1], [10.0, -10.0, 5.0], [100.0, 110.0, 50.0],
...                 [1.0, 1.0, 0.0], ["A", "B"])
>>> [(x.symbol, x.closed, x.bars) for x in t]
[('A', True, 1), ('B', False, None)]
>>> t[0].pnl, t[0].ret         # -(10 * 100 - 10 * 110) - 2, on 10 * 100 put to work
(98.0, 0.098)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

TRADE_KEYS = ("trades", "open_trades", "trade_win_rate", "trade_avg_win", "trade_avg_loss",
              "trade_best", "trade_worst", "trade_avg_bars", "profit_factor")
_NAN = float("nan")


@dataclass
class Trade:
    """One round trip of one instrument (``exit_bar`` is None while it is open)."""

    symbol: str
    side: int                     # +1 long, -1 short
    entry_bar: int
    exit_bar: int | None = None
    entry_notional: float = 0.0
    cash: float = 0.0             # -sum(q p) - sum(c) so far
    position: float = 0.0
    exit_reason: str = ""         # the protective exit that closed it, if one did

    @property
    def closed(self) -> bool:
        return self.exit_bar is not None

    @property
    def pnl(self) -> float:
        return self.cash if self.closed else _NAN

    @property
    def ret(self) -> float:
        return self.cash / self.entry_notional if self.closed and self.entry_notional else _NAN

    @property
    def bars(self) -> int | None:
        return None if self.exit_bar is None else self.exit_bar - self.entry_bar


def round_trips(bar: Sequence[int], instrument: Sequence[int], qty, price, cost,
                symbols: Sequence[str], exit_reason: Sequence[str] | None = None) -> list[Trade]:
    """The trades made by the fills ``(bar, instrument, qty, price, cost)``, given in time
    order; ``instrument`` indexes ``symbols``; ``exit_reason`` (one per fill, ``""`` for none)
    names the protective exit a fill was. Every position starts flat. Closed trades come in the
    order they opened, then the open ones."""
    book: dict[int, Trade] = {}
    done: list[Trade] = []
    why = [""] * len(np.asarray(qty)) if exit_reason is None else list(exit_reason)
    for t, j, q, p, c, r in zip(np.asarray(bar).tolist(), np.asarray(instrument).tolist(),
                                np.asarray(qty, float).tolist(),
                                np.asarray(price, float).tolist(),
                                np.asarray(cost, float).tolist(), why):
        if q == 0:
            continue
        held = book.get(j)
        if held is not None and _crosses(held.position, q):
            close = -held.position
            _apply(held, t, close, p, c * abs(close / q))
            done.append(book.pop(j))
            q, c, held = q - close, c * abs((q - close) / q), None
        if held is None:
            held = book[j] = Trade(symbols[j], 1 if q > 0 else -1, t)
        _apply(held, t, q, p, c)
        held.exit_reason = r or held.exit_reason    # an exit the cap split ends at the next bar
        if held.closed:
            done.append(book.pop(j))
    done.sort(key=lambda x: (x.entry_bar, x.symbol))
    return done + sorted(book.values(), key=lambda x: (x.entry_bar, x.symbol))


def _crosses(position: float, q: float) -> bool:
    return position != 0 and np.sign(position + q) == -np.sign(position)


def _apply(trade: Trade, t: int, q: float, p: float, c: float) -> None:
    if abs(trade.position + q) > abs(trade.position):
        trade.entry_notional += abs(q * p)
    trade.cash -= q * p + c
    trade.position += q
    if abs(trade.position) <= 1e-9 * max(abs(q), 1.0):
        trade.position, trade.exit_bar = 0.0, t


def trade_metrics(trades: Sequence[Trade]) -> dict[str, float]:
    """The per-trade statistics of the module docstring, as floats keyed by `TRADE_KEYS`."""
    closed = [x for x in trades if x.closed]
    pnl = np.array([x.pnl for x in closed])
    ret = np.array([x.ret for x in closed])
    bars = np.array([x.bars for x in closed], float)
    win, loss = pnl > 0, pnl < 0
    gains, losses = float(pnl[win].sum()), float(-pnl[loss].sum())
    return {"trades": float(len(closed)), "open_trades": float(len(trades) - len(closed)),
            "trade_win_rate": win.mean() if closed else _NAN,
            "trade_avg_win": _mean(ret[win]), "trade_avg_loss": _mean(ret[loss]),
            "trade_best": float(ret.max()) if closed else _NAN,
            "trade_worst": float(ret.min()) if closed else _NAN,
            "trade_avg_bars": _mean(bars),
            "profit_factor": gains / losses if losses > 0 else _NAN}


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else _NAN


def panel_trades(fill_qty: np.ndarray, fill_price: np.ndarray, fill_cost: np.ndarray,
                 symbols: Sequence[str], reasons: np.ndarray | None = None,
                 names: Sequence[str] = ()) -> list[Trade]:
    """The trades of ``[T, N]`` fill arrays (a backtest's records): bar index ``t``. With the
    decisions' reason words ``reasons`` ``[T, N]`` and their flag names (`Engine.reasons`), a
    fill on a bar flagged by a protective exit is that exit."""
    t, j = np.nonzero(np.asarray(fill_qty) != 0)
    why = None
    if reasons is not None:
        bits = [(1 << names.index(r), r) for r in EXIT_REASONS if r in names]
        words = np.asarray(reasons)[t, j].tolist()
        why = [next((r for b, r in bits if w & b), "") for w in words]
    return round_trips(t, j, fill_qty[t, j], fill_price[t, j], fill_cost[t, j], symbols, why)


EXIT_REASONS = ("stop_loss", "take_profit", "trailing_stop")


def exit_metrics(trades: Sequence[Trade]) -> dict[str, float]:
    """Closed trades by the protective exit that ended them: ``exits_stop_loss``,
    ``exits_take_profit``, ``exits_trailing_stop``.

    >>> exit_metrics([Trade("A", 1, 0, 3, exit_reason="stop_loss"), Trade("B", 1, 0, 2)])
    {'exits_stop_loss': 1.0, 'exits_take_profit': 0.0, 'exits_trailing_stop': 0.0}
    """
    closed = [x for x in trades if x.closed]
    return {f"exits_{r}": float(sum(x.exit_reason == r for x in closed)) for r in EXIT_REASONS}
