"""Backtests: `jax.lax.scan` of one simulated bar over a panel of real or synthetic bars.

    result = backtest(engine, panel)            # compiled once per policy and shape
    result.metrics["sharpe"], result.tables["equity"]
    result = backtest(engine, panel, start=t0)  # bars before t0 only warm the policy up

Results are Arrow tables (equity curve, weights, orders, fills, reasons, and the transaction
cost analysis of every parent order), written to Parquet by `write_results`, plus the standard
metrics of `crowe.runtime.metrics` and the execution quality (average implementation shortfall
and fill rate).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .engine import DETECTOR, OVERLAY, Engine, panel_bars
from .metrics import compute_metrics
from .trades import EXIT_REASONS, exit_metrics, panel_trades, trade_metrics


@dataclass
class BacktestResult:
    engine: Engine
    ts: np.ndarray
    out: dict                 # per-bar records, numpy, leading axis T
    metrics: dict
    final_carry: dict = field(repr=False, default=None)
    warmup_bars: int = 0      # bars simulated before `ts[0]` without sending orders

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.engine.symbols

    def tables(self) -> dict[str, pa.Table]:
        return result_tables(self)


CHUNK = 64


class Runner:
    """One compiled program, `chunk`, that simulates up to `size` bars: a `while_loop` whose
    trip count is a runtime value. Backtests run it over successive slices of the panel; paper
    and live trading run the very same executable with one bar in the slice.

    Why not `lax.scan` over the whole panel and a jit of one bar for paper? XLA optimises a loop
    body differently from a top-level function, and a loop whose trip count it knows (one, or
    the panel's length) differently from another; it may then contract a multiply and an add
    into one FMA in one program and not in the other, which changes the last bit of cash or
    equity. A single executable with a runtime trip count gives bit-identical decisions by
    construction.

    Warm-up without trading: orders decided at the first `quiet` bars of a slice are not sent
    (the carry's order quantities are zeroed after each of those bars, so nothing fills and the
    book stays flat in cash), while the step still sees every bar and fills its indicators.
    This is how a backtest with `--start` warms up on the bars before it. `quiet` is a runtime
    value too (0 for paper trading and for the bars from the start on), so it is one executable
    and `where(False, 0, qty)` leaves every trading bar's orders bit for bit as they were. (Its
    default of 0 is for callers of `chunk` outside this class, such as the benchmarks.)
    """

    def __init__(self, engine: Engine, size: int = CHUNK) -> None:
        self.engine, self.size = engine, size

        def chunk(params, carry, bars, n, quiet=0, outs=None):
            if outs is None:            # callers outside this class (the sweep's batch program)
                def one(b):
                    return engine.bar_update(params, carry, b)[1]
                first = jax.tree_util.tree_map(lambda a: a[0], bars)
                shapes = jax.eval_shape(one, first)
                outs = jax.tree_util.tree_map(lambda s: jnp.zeros((size,) + s.shape, s.dtype),
                                              shapes)

            def body(state):
                i, c, o = state
                bar = jax.tree_util.tree_map(
                    lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), bars)
                c, out = engine.bar_update(params, c, bar)
                hold = i < quiet                      # warm-up: decide, but send nothing
                c = dict(c, qty=jnp.where(hold, 0.0, c["qty"]),
                         limit=jnp.where(hold, jnp.nan, c["limit"]))
                o = jax.tree_util.tree_map(
                    lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x, i, 0), o, out)
                return i + 1, c, o

            _, carry, outs = jax.lax.while_loop(lambda st: st[0] < n, body,
                                                (jnp.asarray(0, jnp.int32), carry, outs))
            return carry, outs

        # The carry and the record buffers are donated: XLA updates the state (ring buffers
        # included) and writes the records in place, instead of copying the state and
        # zero-filling `size` rows of every record at each call (what dominates a call with
        # one bar). Rows at and after `n` are left as they were; only rows below `n` are read.
        # Inside another jit (the sweep's batch program) donation does not apply.
        self.chunk = jax.jit(chunk, donate_argnums=(1, 5))
        self._outs = None             # the record buffers, passed back in at each call
        self._piece = None            # one_bar's input chunk, kept on the device
        # Data movement only (no arithmetic, so no effect on any decision): one bar written
        # into row 0 of the device chunk, as one call
        self._put = jax.jit(lambda piece, bar: jax.tree_util.tree_map(
            lambda p, b: p.at[0].set(b), piece, bar), donate_argnums=0)

    def _run(self, params, carry, piece, n, quiet):
        if self._outs is None:
            one = jax.tree_util.tree_map(lambda a: a[0], piece)
            shapes = jax.eval_shape(self.engine.bar_update, params, carry, one)[1]
            self._outs = jax.tree_util.tree_map(
                lambda s: jnp.zeros((self.size,) + s.shape, s.dtype), shapes)
        outs, self._outs = self._outs, None     # donated: gone until the call returns them
        carry, outs = self.chunk(params, carry, piece, n, quiet, outs)
        self._outs = outs
        return carry, outs

    def __call__(self, params, carry, bars, progress=None, quiet: int = 0):
        """Simulate every bar of `bars` (leading axis T); returns (carry, numpy records). The
        orders decided at the first `quiet` bars are not sent (warm-up). `carry` is left as it
        was (the compiled chunk updates a copy of it in place)."""
        carry = _owned(carry)
        bars = {k: np.asarray(v) for k, v in bars.items()}
        T = int(bars["ts"].shape[0])
        pieces = []
        for start in range(0, T, self.size):
            n = min(self.size, T - start)
            piece = {k: _pad(v[start:start + n], self.size) for k, v in bars.items()}
            hold = np.int32(min(max(quiet - start, 0), n))
            carry, out = self._run(params, carry, piece, np.int32(n), hold)
            # copied: the buffers are written again by the next call
            pieces.append({k: np.array(np.asarray(v)[:n]) for k, v in out.items()})
            if progress is not None:
                progress(start + n, T)
        if not pieces:
            return carry, {}
        return carry, {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}

    def one_bar(self, params, carry, bar):
        """One bar (no time axis): the same executable with a trip count of one. The carry
        passed in is consumed (donated): use the one returned."""
        bar = {k: np.asarray(v) for k, v in bar.items()}
        if self._piece is None:
            self._piece = {k: jnp.zeros((self.size,) + v.shape, v.dtype) for k, v in bar.items()}
        self._piece = self._put(self._piece, bar)
        carry, out = self._run(params, _own_leaves(carry), self._piece, np.int32(1),
                               np.int32(0))
        # row 0 of each record, copied (on the CPU `np.asarray` of a buffer is a view of it)
        return carry, {k: np.asarray(v)[0].copy() for k, v in out.items()}


def _strong(tree):
    """The same arrays without weak types (`jnp.full(n, jnp.nan)` is weakly typed, the loop's
    output is not), so that the first and later chunks share one compiled program."""
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(np.asarray(a)) if getattr(a, "weak_type", False) else a, tree)


def _own_leaves(tree):
    """`tree` strongly typed (as `_strong`), with every device array that appears in it more
    than once copied, so that each leaf of a donated argument is a buffer of its own."""
    seen = set()

    def own(a):
        aval = getattr(a, "aval", None)     # a device array (faster than isinstance)
        if aval is not None:
            if aval.weak_type:
                return jnp.asarray(np.asarray(a))
            if id(a) in seen:
                return jnp.copy(a)
            seen.add(id(a))
        return a
    return jax.tree_util.tree_map(own, tree)


def _owned(tree):
    """A device copy of `tree`, strongly typed, that the caller does not hold: donated to the
    first chunk."""
    return jax.tree_util.tree_map(lambda a: jnp.array(np.asarray(a)), tree)


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    if a.shape[0] == size:
        return a
    pad = np.zeros((size - a.shape[0],) + a.shape[1:], a.dtype)
    return np.concatenate([a, pad])


def make_runner(engine: Engine, size: int = CHUNK) -> Runner:
    """The compiled simulation of `engine`: `run(params, carry, bars) -> (carry, records)`.
    One per engine and size, so that the backtests and paper runs of an engine in one process
    share its compiled program."""
    runners = engine.__dict__.setdefault("_runners", {})
    if size not in runners:
        runners[size] = Runner(engine, size)
    return runners[size]


def make_bar_runner(engine: Engine, runner: Runner | None = None):
    """The per-bar entry point for paper and live trading: (params, carry, bar) -> (carry,
    records as numpy), where `bar` has no time axis; the backtest's own executable."""
    return (runner or make_runner(engine)).one_bar


def backtest(engine: Engine, panel, params: dict | None = None, runner: Runner | None = None,
             progress=None, start: int = 0) -> BacktestResult:
    """Simulate the engine over the panel; `progress(done, total)` is called after each
    compiled chunk of bars (`runner.size`, `CHUNK` by default).

    With `start` > 0 the first `start` bars are warm-up: the step sees them (its indicators
    fill) but sends no order, so nothing fills before bar `start` and the book is all cash
    there; the first orders are decided at the close of bar `start` and fill at the next bar.
    The records, tables and metrics cover the bars from `start` on."""
    if not 0 <= start < panel.T:
        raise ValueError(f"start must be a bar index in [0, {panel.T}), got {start}")
    params = engine.params() if params is None else params
    runner = runner or make_runner(engine)
    carry, out = runner(params, engine.init_carry(), panel_bars(panel, engine), progress, quiet=start)
    out = {k: v[start:] for k, v in out.items()}
    metrics = compute_metrics(out["equity"], out["gross"] * out["equity"],
                              out["net"] * out["equity"], out["traded_notional"],
                              out["costs"] + out["borrow"], engine.bars_per_year)
    trades = panel_trades(out["fill_qty"], out["fill_price"], out["fill_cost"], engine.symbols,
                          out["reasons"], engine.reasons)
    metrics.update(trade_metrics(trades))
    if any(r in engine.reasons for r in EXIT_REASONS):     # a policy with protective exits
        metrics.update(exit_metrics(trades))
    metrics.update(tca_metrics(tca_columns(out)))
    return BacktestResult(engine, np.asarray(panel.ts)[start:], out, metrics, carry, start)


def _ts(ts) -> pa.Array:
    return pa.array(np.asarray(ts, "datetime64[ns]"), pa.timestamp("ns", tz="UTC"))


def _long(result: BacktestResult, columns: dict, keep) -> pa.Table:
    t_idx, s_idx = np.nonzero(keep)
    cols = {"ts": _ts(result.ts[t_idx]),
            "symbol": pa.array(np.asarray(result.symbols, object)[s_idx], pa.string())}
    for name, arr in columns.items():
        cols[name] = pa.array(np.asarray(arr)[t_idx, s_idx])
    return pa.table(cols)


def result_tables(result: BacktestResult) -> dict[str, pa.Table]:
    o, flag_names = result.out, result.engine.reasons
    from crowe.stdlib.states import STATES
    equity = pa.table({
        "ts": _ts(result.ts), "equity": o["equity"], "cash": o["cash"], "gross": o["gross"],
        "net": o["net"], "costs": o["costs"], "borrow": o["borrow"],
        "traded_notional": o["traded_notional"], "tail_loss": o["tail_loss"],
        "trading_state": _decoded(o["trading_state"], lambda s: STATES[s], pa.string()),
        "portfolio_reasons": _reason_lists(o["portfolio_reasons"], flag_names),
    })
    for key in sorted(k for k in o if k.startswith(DETECTOR)):   # e.g. `regime.prob`
        equity = equity.append_column(key[len(DETECTOR):], pa.array(o[key]))
    for key in sorted(k for k in o if k.startswith(OVERLAY)):    # e.g. `stress.loss`
        equity = equity.append_column(key[len(OVERLAY):], pa.array(o[key]))
    if "kill_switch" in o:
        equity = equity.append_column("kill_switch", pa.array(o["kill_switch"]))
    held = (o["weights"] != 0) | (o["positions"] != 0)
    weights = _long(result, {"weight": o["weights"], "position": o["positions"],
                             "mu": o["mu"], "sigma": o["sigma"], "prob_edge": o["prob_edge"]},
                    held)
    orders = _long(result, {"qty": o["order_qty"], "limit_price": o["limit_price"]},
                   o["order_qty"] != 0)
    fills = _long(result, {"qty": o["fill_qty"], "price": o["fill_price"], "cost": o["fill_cost"]},
                  o["fill_qty"] != 0)
    reasons = _long(result, {"flags": o["reasons"]}, o["reasons"] != 0)
    reasons = reasons.append_column(
        "reasons", _reason_lists(reasons.column("flags").to_numpy(), flag_names))
    cols = tca_columns(o)
    tca = pa.table({"ts": _ts(result.ts[cols.pop("row")]),
                    "symbol": pa.array(np.asarray(result.symbols, object)[cols.pop("instrument")],
                                       pa.string()), **cols})
    return {"equity": equity, "weights": weights, "orders": orders, "fills": fills,
            "reasons": reasons, "tca": tca}


TCA_COSTS = ("commission", "spread", "impact")


def tca_columns(o: dict) -> dict[str, np.ndarray]:
    """Transaction cost analysis: one row per parent order. A parent is identified by its
    instrument and the bar it opened (`parent_start`); its children are the orders decided
    while it was working, and their fills are those of the next bar. With ``s = sign(qty)``,
    ``F`` the filled shares, ``A`` the arrival price (the close of the bar the parent opened)
    and ``P`` the average fill price, the implementation shortfall of the filled part, in bps
    of its value at arrival, is ``price + commission + spread + impact`` where
    ``price = s (P - A) / A * 1e4`` and each cost is ``cost / (|F| A) * 1e4``. Orders of a
    flatten are not parents and are not in the table."""
    start, qty = o["parent_start"], o["order_qty"]
    live = start >= 0
    keys = np.stack([np.nonzero(live)[1], start[live]], 1)
    uniq, first = np.unique(keys, axis=0, return_index=True)
    rows, cols = np.nonzero(live)
    row, inst = rows[first], cols[first]
    pq_, arrival = o["parent_qty"][row, inst], o["arrival"][row, inst]
    t, i = np.nonzero((qty[:-1] != 0) & live[:-1])
    which = np.searchsorted(uniq[:, 0] * (start.max() + 2) + uniq[:, 1],
                            i * (start.max() + 2) + start[t, i])
    n = len(uniq)

    def total(x):
        return np.bincount(which, weights=x, minlength=n) if n else np.zeros(0)
    fq = o["fill_qty"][t + 1, i]
    filled = total(fq)
    paid = total(fq * o["fill_price"][t + 1, i])
    children = np.bincount(which, minlength=n) if n else np.zeros(0, np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(filled != 0, paid / filled, np.nan)
        base = np.abs(filled) * arrival
        out = {"row": row, "instrument": inst, "qty": pq_, "arrival_price": arrival,
               "children": children.astype(np.int64), "filled_qty": filled,
               "filled_fraction": np.abs(filled) / np.abs(pq_), "avg_fill_price": avg,
               "price_bps": np.sign(pq_) * (avg - arrival) / arrival * 1e4}
        for c in TCA_COSTS:
            out[f"{c}_bps"] = np.where(filled != 0, total(o[f"fill_{c}"][t + 1, i]) / base * 1e4,
                                       np.nan)
    out["shortfall_bps"] = out["price_bps"] + sum(out[f"{c}_bps"] for c in TCA_COSTS)
    out["filled_value"] = base
    return out


def tca_metrics(cols: dict) -> dict:
    """Average implementation shortfall (weighted by each parent's filled value at arrival),
    in bps, and the fill rate (filled shares over parent shares)."""
    w, sf = cols["filled_value"], cols["shortfall_bps"]
    ok = np.isfinite(sf) & (w > 0)
    wanted = np.abs(cols["qty"]).sum()
    return {"avg_shortfall_bps": float((sf[ok] * w[ok]).sum() / w[ok].sum()) if ok.any()
            else float("nan"),
            "fill_rate": float(np.abs(cols["filled_qty"]).sum() / wanted) if wanted
            else float("nan")}


def _names(flags: int, names: tuple[str, ...]) -> list[str]:
    return [n for i, n in enumerate(names) if flags >> i & 1]


def _decoded(codes: np.ndarray, decode, type_: pa.DataType) -> pa.Array:
    """`[decode(c) for c in codes]` as an Arrow array, decoding each distinct code once: a
    dictionary of the distinct values, taken by each row's index into it (a backtest has
    millions of rows and a few dozen distinct reason words)."""
    codes = np.asarray(codes)
    if codes.size == 0:
        return pa.array([], type_)
    uniq, inverse = np.unique(codes, return_inverse=True)
    values = pa.array([decode(int(c)) for c in uniq], type_)
    return values.take(pa.array(inverse.reshape(-1).astype(np.int32)))


def _reason_lists(flags: np.ndarray, names: tuple[str, ...]) -> pa.Array:
    """Each reason word as the list of the flags it sets (bit i is `names[i]`)."""
    return _decoded(flags, lambda f: _names(f, names), pa.list_(pa.string()))


def write_results(result: BacktestResult, out_dir: str) -> dict[str, str]:
    """Write each table as Parquet and the metrics as JSON; returns the written paths."""
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, table in result_tables(result).items():
        target = path / f"{name}.parquet"
        pq.write_table(table, target, compression="zstd", write_page_checksum=True)
        written[name] = str(target)
    metrics_path = path / "metrics.json"
    tmp = metrics_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(result.metrics), indent=2, sort_keys=True))
    os.replace(tmp, metrics_path)
    written["metrics"] = str(metrics_path)
    return written


def _jsonable(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        v = float(v)
        out[k] = v if np.isfinite(v) else None
    return out
