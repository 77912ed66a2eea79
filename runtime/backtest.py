"""Backtests: `jax.lax.scan` of one simulated bar over a panel of real or synthetic bars.

    result = backtest(engine, panel)            # compiled once per policy and shape
    result.metrics["sharpe"], result.tables["equity"]

Results are Arrow tables (equity curve, weights, orders, fills, reasons), written to Parquet by
`write_results`, plus the standard metrics of `crowe.runtime.metrics`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .engine import Engine, panel_bars, to_numpy
from .metrics import compute_metrics


@dataclass
class BacktestResult:
    engine: Engine
    ts: np.ndarray
    out: dict                 # per-bar records, numpy, leading axis T
    metrics: dict
    final_carry: dict = field(repr=False, default=None)

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.engine.symbols

    def tables(self) -> dict[str, pa.Table]:
        return result_tables(self)


def make_runner(engine: Engine):
    """A jitted function (params, carry, bars) -> (carry, per-bar records)."""
    def run(params, carry, bars):
        return jax.lax.scan(lambda c, b: engine.bar_update(params, c, b), carry, bars)
    return jax.jit(run)


def make_bar_runner(engine: Engine):
    """The per-bar entry point for paper and live trading: (params, carry, bar) -> (carry,
    records as numpy), where `bar` has no time axis.

    It runs the backtest's own compiled scan over a one-bar chunk, not a separate jit of
    `bar_update`: XLA compiles a top-level function differently from a loop body (and even a
    one-bar scan differently when the time axis is added inside the jitted function) and may
    then contract a multiply and an add into one FMA in one and not the other, which changes
    the last bit of cash or equity. The same scan over one-bar slices is exactly what a chunked
    backtest runs, so paper and backtest decisions agree bit for bit.
    """
    run = make_runner(engine)

    def one(params, carry, bar):
        carry, out = run(params, carry, {k: np.asarray(v)[None] for k, v in bar.items()})
        return carry, {k: np.asarray(v)[0] for k, v in out.items()}
    return one


def backtest(engine: Engine, panel, params: dict | None = None, runner=None,
             chunk: int | None = None, progress=None) -> BacktestResult:
    """Simulate the engine over the panel. With `chunk`, the scan runs in pieces of that many
    bars (the same function, so the same numbers) and `progress(done, total)` is called after
    each piece."""
    params = engine.params() if params is None else params
    runner = runner or make_runner(engine)
    bars, T = panel_bars(panel), len(panel.ts)
    step = chunk or max(T, 1)
    carry, pieces = engine.init_carry(), []
    for start in range(0, T, step):
        piece = jax.tree_util.tree_map(lambda a: a[start:start + step], bars)
        carry, out = runner(params, carry, piece)
        pieces.append(to_numpy(out))
        if progress is not None:
            progress(min(start + step, T), T)
    out = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]} if pieces else {}
    metrics = compute_metrics(out["equity"], out["gross"] * out["equity"],
                              out["net"] * out["equity"], out["traded_notional"],
                              out["costs"] + out["borrow"], engine.bars_per_year)
    return BacktestResult(engine, np.asarray(panel.ts), out, metrics, carry)


def _ts(ts) -> pa.Array:
    return pa.array(np.asarray(ts, "datetime64[ns]"), pa.timestamp("ns", tz="UTC"))


def _long(result: BacktestResult, columns: dict, keep) -> pa.Table:
    T, N = len(result.ts), len(result.symbols)
    t_idx, s_idx = np.nonzero(keep)
    cols = {"ts": _ts(result.ts[t_idx]),
            "symbol": pa.array(np.asarray(result.symbols, object)[s_idx], pa.string())}
    for name, arr in columns.items():
        cols[name] = pa.array(np.asarray(arr)[t_idx, s_idx])
    return pa.table(cols)


def result_tables(result: BacktestResult) -> dict[str, pa.Table]:
    o, flag_names = result.out, result.engine.reasons
    from crowe.compiler.step import STATES
    equity = pa.table({
        "ts": _ts(result.ts), "equity": o["equity"], "cash": o["cash"], "gross": o["gross"],
        "net": o["net"], "costs": o["costs"], "borrow": o["borrow"],
        "traded_notional": o["traded_notional"], "tail_loss": o["tail_loss"],
        "trading_state": pa.array([STATES[int(s)] for s in o["trading_state"]]),
        "portfolio_reasons": pa.array([_names(int(r), flag_names) for r in
                                       o["portfolio_reasons"]], pa.list_(pa.string())),
    })
    held = (o["weights"] != 0) | (o["positions"] != 0)
    weights = _long(result, {"weight": o["weights"], "position": o["positions"],
                             "mu": o["mu"], "sigma": o["sigma"], "prob_edge": o["prob_edge"]},
                    held)
    orders = _long(result, {"qty": o["order_qty"], "limit_price": o["limit_price"]},
                   o["order_qty"] != 0)
    fills = _long(result, {"qty": o["fill_qty"], "price": o["fill_price"], "cost": o["fill_cost"]},
                  o["fill_qty"] != 0)
    reasons = _long(result, {"flags": o["reasons"]}, o["reasons"] != 0)
    names = [_names(int(f), flag_names) for f in reasons.column("flags").to_numpy()]
    reasons = reasons.append_column("reasons", pa.array(names, pa.list_(pa.string())))
    return {"equity": equity, "weights": weights, "orders": orders, "fills": fills,
            "reasons": reasons}


def _names(flags: int, names: tuple[str, ...]) -> list[str]:
    return [n for i, n in enumerate(names) if flags >> i & 1]


def write_results(result: BacktestResult, out_dir: str) -> dict[str, str]:
    """Write each table as Parquet and the metrics as JSON; returns the written paths."""
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, table in result_tables(result).items():
        target = path / f"{name}.parquet"
        pq.write_table(table, target, compression="zstd")
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
