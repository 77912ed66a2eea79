"""Every example policy on the bundled real data: it compiles and backtests to finite metrics, the
scan equals the same bars fed one at a time to the jitted `bar_update` and a chunked scan, bit
for bit; and `crowe backtest` end to end through the installed command."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pyarrow.parquet as pq
import pytest

from crowe.dsl.policy import check_path
from crowe.runtime.backtest import backtest, make_runner
from crowe.runtime.bundled import default_data
from crowe.runtime.data import load_bars
from crowe.runtime.engine import Engine, bar_at, panel_bars

ROOT = Path(__file__).parent.parent
POLICIES = sorted((ROOT / "policies").glob("*.policy"))
CROWE = Path(sys.executable).parent / "crowe"
METRICS = ("total_return", "sharpe", "max_drawdown", "final_equity")


@pytest.fixture(scope="module", params=POLICIES, ids=lambda p: p.stem)
def example(request):
    """(engine, panel, runner, one-shot result) of one example on its bundled data."""
    policy = check_path(str(request.param)).policy
    symbols = policy.spec.universe.symbols
    panel, _ = load_bars(default_data(symbols, int(policy.bar_seconds)))
    if symbols != "from_data":
        panel = panel.select(symbols)
    engine = Engine.from_policy(policy, panel.symbols)
    runner = make_runner(engine)
    return engine, panel, runner, backtest(engine, panel, runner=runner)


def same(a, b) -> bool:
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def assert_same_records(got: dict, ref: dict):
    assert set(got) == set(ref)
    bad = {k: int(np.argmax(np.any(~((got[k] == ref[k]) | (np.isnan(got[k]) & np.isnan(ref[k])))
                                   .reshape(len(ref[k]), -1), axis=1)))
           for k in ref if not same(np.asarray(got[k]), ref[k])}
    assert not bad, f"records that differ (first bar): {bad}"


def test_example_backtests_on_the_bundled_data(example):
    engine, panel, _, result = example
    m = result.metrics
    assert all(np.isfinite(m[k]) for k in METRICS), {k: m[k] for k in METRICS}
    assert m["bars"] == panel.T and result.out["equity"].shape == (panel.T,)
    assert m["final_equity"] == result.out["equity"][-1]
    assert np.count_nonzero(result.out["order_qty"]) > 0, "the example never trades"
    assert np.count_nonzero(result.out["order_qty"][:engine.warmup]) == 0


TRADING = 300           # bars of trading to replay one at a time


def test_bar_by_bar_is_the_scan_bit_for_bit(example):
    """The jitted `bar_update` called once per bar (as paper trading does) gives the scan's
    records bit for bit. A decision never depends on later bars, so the first bars of the full
    backtest are the reference."""
    engine, panel, _, result = example
    first = int(np.flatnonzero(result.out["order_qty"].any(1))[0])
    T = min(panel.T, first + TRADING)
    one = jax.jit(engine.bar_update)
    bars, params, carry, outs = panel_bars(panel, engine), engine.params(), engine.init_carry(), []
    for t in range(T):
        carry, out = one(params, carry, bar_at(bars, t))
        outs.append(out)
    outs = jax.device_get(outs)
    assert_same_records({k: np.stack([o[k] for o in outs]) for k in outs[0]},
                        {k: v[:T] for k, v in result.out.items()})
    if T == panel.T:
        final = jax.device_get(result.final_carry)
        assert jax.tree_util.tree_all(jax.tree_util.tree_map(
            lambda a, b: same(np.asarray(a), np.asarray(b)), jax.device_get(carry), final))


# The examples whose chunked and one-shot programs are compared: between them every kind of
# float work the step does (the constrained optimizer and `is`, HRP's clustering and `twap`,
# the crash sentinel's statistics, the calendar's sessions); each further example costs two
# more compiles and exercises no other code generation.
CHUNKED = {"mv_sector_v1", "hrp_sleeve_v1", "crash_guard_v1", "intraday_twap_v1"}


@pytest.mark.parametrize("size", [37, None], ids=["chunks_of_37", "one_shot"])
def test_chunked_backtest_is_the_one_shot_scan(example, size):
    """The compiled loop over chunks of 37 bars, or over the whole panel at once, gives the
    backtest's records bit for bit (a different executable each: only the float code
    generation can make them agree)."""
    engine, panel, _, result = example
    if engine.name not in CHUNKED:
        pytest.skip("chunked and one-shot programs are compared on the examples in CHUNKED")
    size = size or panel.T
    seen = []
    runner = make_runner(engine, size=size)
    carry, out = runner(engine.params(), engine.init_carry(), panel_bars(panel, engine),
                        lambda done, total: seen.append((done, total)))
    assert_same_records(out, result.out)
    assert seen == [(min(s + size, panel.T), panel.T) for s in range(0, panel.T, size)]
    assert backtest(engine, panel, runner=runner).metrics.keys() == result.metrics.keys()
    start = warm_start(engine, panel)        # a warm-up that ends inside a chunk, not at its end
    assert_same_records(backtest(engine, panel, runner=runner, start=start).out,
                        backtest(engine, panel, runner=example[2], start=start).out)


def warm_start(engine, panel) -> int:
    return min(engine.warmup + 101, panel.T - 40)


def test_start_warms_up_without_trading_and_counts_from_it(example):
    """`start`: the step sees the bars before it (no `warmup` reason from it on), no order is
    sent before it (nothing fills up to and including it: the book is all cash), and the
    records and metrics count from it."""
    engine, panel, runner, _ = example
    start = warm_start(engine, panel)
    assert start >= engine.warmup
    params, cash = engine.params(), 1e6      # Engine.from_policy's initial cash
    _, full = runner(params, engine.init_carry(), panel_bars(panel, engine), quiet=start)
    assert not full["fill_qty"][:start + 1].any() and not full["positions"][:start + 1].any()
    assert (full["equity"][:start + 1] == cash).all()
    assert full["order_qty"][start:].any() and full["fill_qty"][start + 1:].any()

    result = backtest(engine, panel, params, runner=runner, start=start)
    assert_same_records(result.out, {k: v[start:] for k, v in full.items()})
    assert result.ts[0] == panel.ts[start] and result.warmup_bars == start
    assert result.metrics["bars"] == panel.T - start and result.out["equity"][0] == cash
    warmup = 1 << engine.reasons.index("warmup")
    assert not (result.out["reasons"] & warmup).any()
    assert not (result.out["portfolio_reasons"] & warmup).any()
    assert (full["reasons"][:engine.warmup] & warmup).any()
    tables = result.tables()
    assert tables["equity"].num_rows == panel.T - start
    assert min(tables["fills"].column("ts").to_pylist()) > tables["equity"]["ts"][0].as_py()


# -- the command line -----------------------------------------------------------------------------

def crowe(*args, cwd=None):
    return subprocess.run([str(CROWE), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_crowe_backtest_json_end_to_end(tmp_path):
    out = tmp_path / "rev"
    run = crowe("backtest", ROOT / "policies" / "xs_reversal_v1.policy", "--format", "json",
                "--param", "formation=10", "--out", out, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    for key in ("metrics", "bars", "instruments", "out"):
        assert key in report
    assert all(isinstance(report["metrics"][k], float) for k in METRICS)
    assert report["out"] == str(out) and report["instruments"] == 5 and report["bars"] > 1000
    assert report["params"]["formation"] == 10
    for name in ("equity", "weights", "orders", "fills", "reasons", "tca"):
        table = pq.read_table(out / f"{name}.parquet")
        assert table.num_rows > 0
    tca = {k: np.asarray(v) for k, v in pq.read_table(out / "tca.parquet").to_pydict().items()
           if k not in ("ts", "symbol")}
    parts = tca["price_bps"] + tca["commission_bps"] + tca["spread_bps"] + tca["impact_bps"]
    np.testing.assert_allclose(tca["shortfall_bps"], parts, rtol=1e-12, equal_nan=True)
    assert 0 < report["metrics"]["fill_rate"] <= 1
    assert pq.read_table(out / "equity.parquet").num_rows == report["bars"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["final_equity"] == report["metrics"]["final_equity"]


BROKEN = """\
policy: broken
version: 1.0.0
owner: CR-001
features:
  r1: ret(clsoe, 1)
signal: {horizon: 1d, mu: r1, sigma: 1%}
sizing: {method: equal}
risk: {gross_max: 1, position_max: 0.5}
execution: {algo: market}
stand_down:
  data_gap: {max_missing: 5%, action: halt}
"""


@pytest.mark.parametrize("case", ["does_not_check", "missing_data", "unknown_param",
                                  "param_out_of_range"])
def test_crowe_backtest_errors_are_one_line(case, tmp_path):
    policy = ROOT / "policies" / "xs_reversal_v1.policy"
    args = {"does_not_check": [tmp_path / "broken.policy"],
            "missing_data": [policy, "--data", tmp_path / "nope.parquet"],
            "unknown_param": [policy, "--param", "lookbak=10"],
            "param_out_of_range": [policy, "--param", "formation=50"]}[case]
    (tmp_path / "broken.policy").write_text(BROKEN)
    run = crowe("backtest", *args, "--format", "json", "--out", tmp_path / "out", cwd=tmp_path)
    assert run.returncode == 2 and run.stdout == ""
    lines = run.stderr.splitlines()
    assert lines[0].startswith("error: ") and "Traceback" not in run.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1
    if case == "does_not_check":      # the diagnostics follow the one error line
        assert "E0401" in run.stderr and "did you mean `close`?" in run.stderr
    else:
        assert len(lines) == 1
    assert not (tmp_path / "out").exists()
