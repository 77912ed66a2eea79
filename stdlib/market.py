"""The market model: orders decided at the close of bar t fill against bar t+1.

One implementation serves the backtest (inside ``lax.scan``) and the paper broker (called once per
bar), so the two produce the same fills bit for bit. Every function is pure, jittable, works on
fixed shapes ``[N]`` (one entry per instrument) in float64, and fails closed: bad data or a bad
order means no fill and no cost, never a NaN in the book.

One bar of a simulation, with ``cfg`` static::

    fills = execute(cfg, orders, open, high, low, close, volume, valid, adv, vol)
    book = apply_fills(book, fills)
    last_valid_close = mark_price(close, last_valid_close, valid)
    book, borrow = accrue_borrow(cfg, book, close, last_valid_close, valid)
    nav = equity(book, close, last_valid_close, valid)
    # next bar's orders: new orders + fills.remaining
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

BPS = 1e-4
PRICE_CONVENTIONS = ("open", "vwap")
LOTS = ("whole", "fractional")
_NON_NEGATIVE = ("commission_bps", "half_spread_bps", "impact_coef", "borrow_bps_annual",
                 "financing_bps_annual")
_CAPS = ("gross_max", "net_max", "position_max")


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """Static (hashable) market configuration, from the policy's ``execution`` section.

    Attributes:
      price: ``"open"`` fills at the execution bar's open; ``"vwap"`` at the proxy
        ``(high + low + close) / 3`` of the execution bar.
      commission_bps: commission on traded notional, in basis points.
      half_spread_bps: half the bid-ask spread, paid on traded notional, in basis points.
      impact_coef: coefficient of the square-root impact model (see `execute`).
      participation_cap: largest fraction of the execution bar's volume filled per instrument,
        in ``(0, 1]``, rounded down to whole shares (with ``lot="whole"``).
      carry_remainder: carry the unfilled part of an order to the next bar (True) or cancel it.
      borrow_bps_annual: annual borrow fee on the market value of short positions, in basis points.
      bars_per_year: bars in one year, to turn the annual borrow fee into a per-bar one.
      financing_bps_annual: annual rate charged on negative cash, in basis points.
      gross_max, net_max, position_max: caps that bind the book at every fill (see
        `bound_fills`), as fractions of equity; None for no cap.
      lot: ``"whole"`` rounds every fill (and every cap in shares) toward zero to whole shares;
        ``"fractional"`` does not round (crypto, FX).

    Raises:
      ValueError: for an unknown price convention or a negative, non-finite or out-of-range number.
    """

    price: str = "open"
    commission_bps: float = 1.0
    half_spread_bps: float = 2.0
    impact_coef: float = 0.1
    participation_cap: float = 0.1
    carry_remainder: bool = False
    borrow_bps_annual: float = 50.0
    bars_per_year: float = 252.0
    financing_bps_annual: float = 0.0
    gross_max: float | None = None
    net_max: float | None = None
    position_max: float | None = None
    lot: str = "whole"

    def __post_init__(self):
        if self.lot not in LOTS:
            raise ValueError(f"lot must be one of {LOTS}, got {self.lot!r}")
        if self.price not in PRICE_CONVENTIONS:
            raise ValueError(f"price convention must be one of {PRICE_CONVENTIONS}, got {self.price!r}")
        for name in _NON_NEGATIVE:
            if not _is_real(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")
        if not _is_real(self.participation_cap) or not 0 < self.participation_cap <= 1:
            raise ValueError(f"participation_cap must be in (0, 1], got {self.participation_cap!r}")
        if not _is_real(self.bars_per_year) or self.bars_per_year <= 0:
            raise ValueError(f"bars_per_year must be a finite number > 0, got {self.bars_per_year!r}")
        for name in _CAPS:
            v = getattr(self, name)
            if v is not None and (not _is_real(v) or v < 0):
                raise ValueError(f"{name} must be None or a finite number >= 0, got {v!r}")
        if not isinstance(self.carry_remainder, bool):
            raise ValueError(f"carry_remainder must be a bool, got {self.carry_remainder!r}")


def lots(x, fractional: bool):
    """Quantities in the lots traded: whole shares toward zero, or as they are (fractional).

    >>> [float(v) for v in lots(jnp.array([2.7, -2.7]), False)], float(lots(jnp.array(2.7), True))
    ([2.0, -2.0], 2.7)
    """
    return x if fractional else jnp.trunc(x)


def _is_real(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class Orders(NamedTuple):
    """Orders for the next bar. ``qty``: signed shares (0 = none); ``limit``: limit price, NaN for
    a market order."""

    qty: jax.Array
    limit: jax.Array


class Fills(NamedTuple):
    """What `execute` filled, per instrument. ``qty``: signed shares filled; ``price``: execution
    price before costs (0 where nothing filled); ``commission``, ``spread``, ``impact``: costs in
    currency, >= 0; ``remaining``: signed shares carried to the next bar (0 when cancelled)."""

    qty: jax.Array
    price: jax.Array
    commission: jax.Array
    spread: jax.Array
    impact: jax.Array
    remaining: jax.Array


class Book(NamedTuple):
    """Cash (a scalar, in currency) and positions (shares, ``[N]``)."""

    cash: jax.Array
    positions: jax.Array


def execute(cfg: MarketConfig, orders: Orders, open, high, low, close, volume, valid, adv,
            vol, book: Book | None = None, mark=None) -> Fills:
    """Fills orders against the execution bar (bar t+1 for orders decided at the close of t).

    Reference price ``p_ref`` is the bar's ``open`` (``cfg.price == "open"``) or the proxy
    ``(high + low + close) / 3`` (``"vwap"``). For an order of ``q`` shares::

      market order:      trades always,           price = p_ref
      buy limit  L:      trades if low  <= L,     price = min(p_ref, L)
      sell limit L:      trades if high >= L,     price = max(p_ref, L)
      filled   f  = sign(q) * min(|q|, floor(participation_cap * volume))
      commission  = commission_bps  * 1e-4 * |f| * price
      spread      = half_spread_bps * 1e-4 * |f| * price
      impact      = impact_coef * vol * sqrt(|f| / adv) * |f| * price
      remaining   = q - f if carry_remainder else 0

    Nothing fills (``f = 0``, price and every cost exactly 0) on a bar that is not ``valid``,
    has a non-finite or non-positive price, an inconsistent range (``low`` above ``open``,
    ``close`` or ``high``, or ``high`` below them) or zero volume; when ``adv`` or ``vol`` is
    non-finite or <= 0 (no impact estimate); or for a limit that the bar does not trade through.
    The order is still carried if ``carry_remainder``. An order with a non-finite ``qty`` or an
    infinite ``limit`` is dropped: no fill and ``remaining = 0``.

    Args:
      cfg: the static market configuration.
      orders: the orders, ``[N]`` each.
      open, high, low, close, volume, valid: the execution bar, ``[N]`` each.
      adv: average daily volume in shares, estimated from past bars, ``[N]``.
      vol: per-bar return volatility, estimated from past bars, ``[N]``.
      book, mark: the book before the fills and the last valid close of each instrument; with
        them, the caps of ``cfg`` bind the book after the fills (`bound_fills`).

    Returns:
      The `Fills`.

    Example: a market buy of 1500 shares, volume 10,000, cap 10%, adv 1e6, vol 2%:

    >>> cfg = MarketConfig(carry_remainder=True)
    >>> one = lambda x: jnp.array([x], dtype=jnp.float64)
    >>> f = execute(cfg, Orders(one(1500.0), one(jnp.nan)), one(101.0), one(105.0), one(95.0),
    ...             one(100.0), one(10_000.0), jnp.array([True]), one(1e6), one(0.02))
    >>> float(f.qty[0]), float(f.price[0]), float(f.remaining[0]), round(float(f.commission[0]), 6)
    (1000.0, 101.0, 500.0, 10.1)
    """
    valid_bar = _bar_ok(open, high, low, close, volume, valid)
    has_estimate = _positive(adv) & _positive(vol)
    order_ok = jnp.isfinite(orders.qty) & ~jnp.isinf(orders.limit)
    qty = jnp.where(order_ok, orders.qty, 0.0)
    price, trades = _fill_price(cfg, orders.limit, qty, open, high, low, close)
    cap = lots(cfg.participation_cap * jnp.where(valid_bar, volume, 0.0), _frac(cfg))
    fills_here = valid_bar & has_estimate & trades & (qty != 0)
    filled = jnp.where(fills_here, jnp.sign(qty) * jnp.minimum(jnp.abs(qty), cap), 0.0)
    adv_ = jnp.where(has_estimate, adv, 1.0)
    vol_ = jnp.where(has_estimate, vol, 0.0)
    if book is not None and any(getattr(cfg, c) is not None for c in _CAPS):
        value_at = jnp.where(filled != 0, price, jnp.where(valid_bar, _reference(cfg, open, high,
                                                                                  low, close),
                                                          mark))
        spent = sum(_costs(cfg, filled, jnp.where(filled != 0, price, 0.0), adv_, vol_))
        filled = bound_fills(cfg, book, filled, value_at, jnp.sum(spent))
    price = jnp.where(filled != 0, price, 0.0)
    costs = _costs(cfg, filled, price, adv_, vol_)
    remaining = qty - filled if cfg.carry_remainder else jnp.zeros_like(qty)
    return Fills(filled, price, *costs, remaining)


class Exits(NamedTuple):
    """Protective exits resting with the broker for the next bar (`crowe.stdlib.exits`): a
    ``stop`` and a ``take`` price per instrument, NaN for none."""

    stop: jax.Array
    take: jax.Array


STOP_HIT, TAKE_HIT = 1, 2         # what `exit_fills` reports per instrument (0: no exit)


def exit_fills(cfg: MarketConfig, exits: Exits, position, open, high, low, close, volume,
               valid, adv, vol) -> tuple[Fills, jax.Array]:
    """Fills the protective exits of the positions held at the start of the bar against the
    bar's range, and says which fired (`STOP_HIT`, `TAKE_HIT`, 0).

    For a long (a short is the mirror image: ``high >= S``, ``max(open, S)``; ``low <= T``,
    ``min(open, T)``)::

      stop S:   triggers if low  <= S,   price = min(open, S)   (the open when it gaps through)
      take T:   triggers if high >= T,   price = max(open, T)
      filled  = -sign(position) * min(|position|, cap),   cap = participation_cap * volume

    When both trigger in one bar, the open decides if it lies beyond one of them (it is the
    bar's first price); otherwise the stop is taken first, the conservative order (as
    backtesting.py does: it queues stop-loss orders ahead of the others). The participation cap
    binds an exit like any fill (in the lots of ``cfg.lot``); costs are those of `execute`. An
    exit never adds exposure, so the caps of `bound_fills` never shrink it. Nothing fires on a
    bar that `execute` would not fill.

    >>> one = lambda x: jnp.array([x], dtype=jnp.float64)
    >>> f, hit = exit_fills(MarketConfig(), Exits(one(95.0), one(110.0)), one(100.0), one(98.0),
    ...                     one(111.0), one(94.0), one(97.0), one(1e6), jnp.array([True]),
    ...                     one(1e6), one(0.02))
    >>> float(f.qty[0]), float(f.price[0]), int(hit[0])     # both inside the range: the stop
    (-100.0, 95.0, 1)
    """
    bar_ok = _bar_ok(open, high, low, close, volume, valid) & _positive(adv) & _positive(vol)
    long = position > 0
    stop_hit = jnp.isfinite(exits.stop) & jnp.where(long, low <= exits.stop, high >= exits.stop)
    take_hit = jnp.isfinite(exits.take) & jnp.where(long, high >= exits.take, low <= exits.take)
    take_at_open = take_hit & jnp.where(long, open >= exits.take, open <= exits.take)
    use_take = take_hit & (~stop_hit | take_at_open)
    fires = bar_ok & (position != 0) & (stop_hit | use_take)
    level = jnp.where(use_take, exits.take, exits.stop)
    worse = jnp.where(use_take, ~long, long)          # the side the open can fill beyond
    price = jnp.where(worse, jnp.minimum(open, level), jnp.maximum(open, level))
    cap = lots(cfg.participation_cap * jnp.where(bar_ok, volume, 0.0), _frac(cfg))
    filled = jnp.where(fires, -jnp.sign(position) * jnp.minimum(jnp.abs(position), cap), 0.0)
    price = jnp.where(filled != 0, price, 0.0)
    adv_, vol_ = jnp.where(bar_ok, adv, 1.0), jnp.where(bar_ok, vol, 0.0)
    hit = jnp.where(filled != 0, jnp.where(use_take, TAKE_HIT, STOP_HIT), 0)
    return Fills(filled, price, *_costs(cfg, filled, price, adv_, vol_),
                 jnp.zeros_like(filled)), hit


def execute_with_exits(cfg: MarketConfig, orders: Orders, exits: Exits, open, high, low, close,
                       volume, valid, adv, vol, book: Book, mark) -> tuple[Fills, jax.Array]:
    """One bar of the broker: the protective exits of the book first (`exit_fills`), then
    `execute` on the book after them for the instruments whose exit did not fire. An exit and
    the instrument's child order are one-cancels-the-other: on the bar an exit fires, the child
    is not filled. Returns the fills (one per instrument) and `exit_fills`' report. With no exit
    set (all NaN) the fills are those of `execute`, bit for bit."""
    ex, hit = exit_fills(cfg, exits, book.positions, open, high, low, close, volume, valid,
                         adv, vol)
    fired = hit != 0
    rest = execute(cfg, Orders(jnp.where(fired, 0.0, orders.qty), orders.limit), open, high,
                   low, close, volume, valid, adv, vol, apply_fills(book, ex), mark)
    return Fills(*(jnp.where(fired, a, b) for a, b in zip(ex, rest))), hit


def bound_fills(cfg: MarketConfig, book: Book, filled, price, costs):
    """Shrink the fills that add exposure so that the book after them meets the caps, valued at
    the fill prices (``price``: the fill price, or the mark of an instrument that does not
    trade) with the equity after the fills' costs::

      |q_i'| p_i <= position_max * E'        sum |q_i'| p_i <= gross_max * E'
      |sum q_i' p_i| <= net_max * E'         E' = cash + sum q_i p_i - costs

    where ``q' = q + f`` are the positions after the fills. A fill that only reduces a position
    is never shrunk; the part of a fill that adds exposure is scaled, in whole shares toward
    zero (``lot="whole"``) or exactly (``"fractional"``). A position above a cap before the fill (moved there by prices) is not forced down here:
    the step's next orders do that.

    >>> cfg = MarketConfig(gross_max=1.0)
    >>> book = Book(jnp.float64(1000.0), jnp.array([0.0, 0.0]))
    >>> bound_fills(cfg, book, jnp.array([8.0, 6.0]), jnp.array([100.0, 100.0]), 0.0).tolist()
    [5.0, 4.0]
    """
    pos = book.positions
    held = pos != 0
    p = jnp.where(jnp.isfinite(price) & (price > 0), price, 0.0)
    E = book.cash + jnp.sum(jnp.where(held, pos * p, 0.0)) - costs
    new = pos + filled
    same = jnp.sign(new) == jnp.sign(pos)
    kept = jnp.where(same, jnp.sign(pos) * jnp.minimum(jnp.abs(pos), jnp.abs(new)), 0.0)
    add = new - kept                                  # the part of each fill adding exposure
    if cfg.position_max is not None:
        most = lots(cfg.position_max * jnp.maximum(E, 0.0) / jnp.where(p > 0, p, 1.0),
                    _frac(cfg))
        room = jnp.maximum(most - jnp.abs(kept), 0.0)
        add = jnp.sign(add) * jnp.minimum(jnp.abs(add), jnp.where(p > 0, room, 0.0))
    if cfg.gross_max is not None:
        room = cfg.gross_max * E - jnp.sum(jnp.abs(kept) * p)
        add = add * _shrink(room, jnp.sum(jnp.abs(add) * p))
    if cfg.net_max is not None:
        base = jnp.sum(kept * p)
        up, down = jnp.where(add > 0, add, 0.0), jnp.where(add < 0, add, 0.0)
        s_up = _shrink(cfg.net_max * E - base - jnp.sum(down * p), jnp.sum(up * p))
        s_down = _shrink(cfg.net_max * E + base + jnp.sum(up * p), -jnp.sum(down * p))
        add = jnp.where(add > 0, add * s_up, add * s_down)
    return kept + lots(add, _frac(cfg)) - pos


def _frac(cfg: MarketConfig) -> bool:
    return cfg.lot == "fractional"


def _shrink(room, used):
    return jnp.clip(jnp.where(used > room, room / jnp.maximum(used, 1e-300), 1.0), 0.0, 1.0)


def _reference(cfg, open, high, low, close):
    return open if cfg.price == "open" else (high + low + close) / 3.0


def _positive(x):
    return jnp.isfinite(x) & (x > 0)


def _bar_ok(open, high, low, close, volume, valid):
    prices_ok = _positive(open) & _positive(high) & _positive(low) & _positive(close)
    in_range = (low <= jnp.minimum(open, close)) & (high >= jnp.maximum(open, close))
    return jnp.asarray(valid, dtype=bool) & prices_ok & in_range & _positive(volume)


def _fill_price(cfg, limit, qty, open, high, low, close):
    ref = _reference(cfg, open, high, low, close)
    buy = qty > 0
    market = jnp.isnan(limit)
    trades = market | jnp.where(buy, low <= limit, high >= limit)
    at_limit = jnp.where(buy, jnp.minimum(ref, limit), jnp.maximum(ref, limit))
    return jnp.where(market, ref, at_limit), trades


def _costs(cfg, filled, price, adv, vol):
    size = jnp.abs(filled)
    notional = size * price
    commission = (cfg.commission_bps * BPS) * notional
    spread = (cfg.half_spread_bps * BPS) * notional
    impact = cfg.impact_coef * vol * jnp.sqrt(size / adv) * notional
    return commission, spread, impact


def apply_fills(book: Book, fills: Fills) -> Book:
    """Books fills: pays for the shares and every cost, adds the shares to the positions.

    ``cash' = cash - sum(qty * price) - sum(commission + spread + impact)``,
    ``positions' = positions + qty``.

    >>> b = apply_fills(Book(jnp.float64(1000.0), jnp.zeros(1)),
    ...                 Fills(*(jnp.array([x]) for x in (2.0, 100.0, 0.5, 0.25, 0.25, 0.0))))
    >>> float(b.cash), float(b.positions[0])
    (799.0, 2.0)
    """
    paid = jnp.sum(fills.qty * fills.price)
    costs = jnp.sum(fills.commission + fills.spread + fills.impact)
    return Book(book.cash - (paid + costs), book.positions + fills.qty)


def mark_price(close, last_valid_close, valid=None):
    """The price to mark positions at: ``close`` where it is usable (finite, > 0 and, when given,
    ``valid``), else ``last_valid_close``.

    The same function updates the running last valid close: ``last = mark_price(close, last,
    valid)`` after each bar (start from NaN).

    >>> mark_price(jnp.array([10.0, jnp.nan]), jnp.array([9.0, 8.0])).tolist()
    [10.0, 8.0]
    """
    usable = _positive(close)
    if valid is not None:
        usable = usable & jnp.asarray(valid, dtype=bool)
    return jnp.where(usable, close, last_valid_close)


def accrue_borrow(cfg: MarketConfig, book: Book, close, last_valid_close=None,
                  valid=None) -> tuple[Book, jax.Array]:
    """Charges one bar of borrow fee on short positions and deducts it from cash.

    ``cost = borrow_bps_annual * 1e-4 / bars_per_year * sum(max(-positions, 0) * mark)``, with
    ``mark = mark_price(close, last_valid_close, valid)``. A short with no usable mark (no
    finite close and no last valid close) accrues nothing that bar rather than poisoning cash.

    Example: 100 shares short at 50, 50 bps a year over 252 bars: ``0.005 / 252 * 5000``.

    >>> book, cost = accrue_borrow(MarketConfig(), Book(jnp.float64(0.0), jnp.array([-100.0, 7.0])),
    ...                            jnp.array([50.0, 20.0]))
    >>> round(float(cost), 10), round(float(book.cash), 10)
    (0.0992063492, -0.0992063492)
    """
    last = jnp.full_like(close, jnp.nan) if last_valid_close is None else last_valid_close
    mark = mark_price(close, last, valid)
    short = (book.positions < 0) & jnp.isfinite(mark)
    value = jnp.sum(jnp.where(short, -book.positions * mark, 0.0))
    cost = (cfg.borrow_bps_annual * BPS / cfg.bars_per_year) * value
    return Book(book.cash - cost, book.positions), cost


def accrue_financing(cfg: MarketConfig, book: Book) -> tuple[Book, jax.Array]:
    """Charges one bar of financing on negative cash: ``financing_bps_annual * 1e-4 /
    bars_per_year * max(-cash, 0)``.

    >>> book, cost = accrue_financing(MarketConfig(financing_bps_annual=500, bars_per_year=250),
    ...                               Book(jnp.float64(-1000.0), jnp.zeros(1)))
    >>> round(float(cost), 10), round(float(book.cash), 10)
    (0.2, -1000.2)
    """
    cost = (cfg.financing_bps_annual * BPS / cfg.bars_per_year) * jnp.maximum(-book.cash, 0.0)
    return Book(book.cash - cost, book.positions), cost


def equity(book: Book, close, last_valid_close, valid=None) -> jax.Array:
    """Marks the book to market: ``cash + sum(positions * mark)``, ``mark = mark_price(close,
    last_valid_close, valid)``. Flat instruments contribute 0 even when they have no mark; a
    position with no mark at all makes the equity NaN (it cannot be valued).

    >>> float(equity(Book(jnp.float64(100.0), jnp.array([2.0, 0.0, -1.0])),
    ...              jnp.array([10.0, jnp.nan, jnp.nan]), jnp.array([9.0, jnp.nan, 4.0])))
    116.0
    """
    mark = mark_price(close, last_valid_close, valid)
    held = book.positions != 0
    return book.cash + jnp.sum(jnp.where(held, book.positions * mark, 0.0))
