"""Sweeps, independent instruments and walk-forward on real bundled data: every sweep member's
decisions are the single backtest's with the same parameters, bit for bit; a walk-forward's
choices and out-of-sample run use only earlier bars, and the book carries across folds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from crowe.dsl.policy import check_path
from crowe.runtime.backtest import backtest, make_runner
from crowe.runtime.bundled import default_data
from crowe.runtime.cli import main
from crowe.runtime.data import load_bars
from crowe.runtime.engine import RECORD, RECORD_N, Engine
from crowe.runtime.metrics import KEYS
from crowe.runtime.sweep import (BatchRunner, GridError, parse_grid, sweep,
                                 sweep_instruments)
from crowe.runtime.stress import (StressError, parse_scenario, run_episode, run_shock,
                                  shocked)
from crowe.runtime.walkforward import WalkForwardError, folds, parse_span, walk_forward

ROOT = Path(__file__).parent.parent
POLICY = ROOT / "policies" / "ts_trend_v1.policy"
END = "2005-06-30"                       # 1,340 bars; GOOG lists in 2004
GRID = ["fast=10,30", "slow=100,150"]
START = 300                              # the bars before it warm up
ALL = RECORD + RECORD_N + ("fill_qty", "fill_price", "fill_cost")


@pytest.fixture(scope="module")
def setup():
    policy = check_path(str(POLICY)).policy
    symbols = policy.spec.universe.symbols
    panel = load_bars(default_data(symbols))[0].select(symbols).slice(None, END)
    engine = Engine.from_policy(policy, panel.symbols)
    combos = parse_grid(GRID, engine.param_specs)
    return policy, panel, engine, combos, BatchRunner(engine, 3)


def same(a, b) -> bool:
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def test_every_sweep_member_is_its_single_backtest_bit_for_bit(setup):
    """Orders, fills, weights, reasons and equity of each member equal `backtest` with its
    parameters (its own runner, compiled apart), and so do the metrics; the last batch is
    short (3 + 1 runs in batches of 3)."""
    _, panel, engine, combos, runner = setup
    from crowe.runtime.engine import panel_bars
    bars = {k: np.asarray(v) for k, v in panel_bars(panel).items()}
    params = [engine.params(c) for c in combos]
    records = []
    for i in (0, 3):
        _, rec = runner(params[i:i + 3], [engine.init_carry()] * len(params[i:i + 3]), bars,
                        quiet=START, keep=ALL)
        records += [{k: v[j] for k, v in rec.items()} for j in range(len(params[i:i + 3]))]
    result = sweep(engine, panel, combos, START, runner=runner)
    traded, own = 0, make_runner(engine)
    for c, rec, metrics in zip(combos, records, result.metrics):
        single = backtest(engine, panel, engine.params(c), runner=own, start=START)
        bad = [k for k in ALL if not same(rec[k][START:], single.out[k])]
        assert not bad, (c, bad)
        assert metrics == single.metrics or all(
            metrics[k] == single.metrics[k] or np.isnan(metrics[k]) and
            np.isnan(single.metrics[k]) for k in KEYS), c
        traded += np.count_nonzero(single.out["order_qty"])
    assert traded > 0
    assert len({m["final_equity"] for m in result.metrics}) == len(combos)


def test_independent_instruments_are_one_instrument_backtests(setup):
    policy, panel, _, combos, _ = setup
    sub = panel.select(["AAPL", "MSFT"])
    result = sweep_instruments(policy, sub, combos[:2], 1e6, START)
    assert result.symbols == ["AAPL", "AAPL", "MSFT", "MSFT"]
    engines = {s: Engine.from_policy(policy, [s]) for s in ("AAPL", "MSFT")}
    runners = {s: make_runner(e) for s, e in engines.items()}
    # the grid sweeps `slow` alone: `fast` is one value shared by the batch, and so is the
    # state that does not depend on `slow` (fast average, rings, marks, bar counter)
    from crowe.runtime import sweep as sw
    (_, runner), = sw._RUNNERS.values()
    assert runner.swept == ("slow",) and not all(runner.mask)
    from crowe.runtime.engine import panel_bars
    bars = {k: np.asarray(v)[None] for k, v in panel_bars(sub.select(["MSFT"])).items()}
    _, rec = runner([runner.engine.params(c) for c in combos[:2]],
                    [runner.engine.init_carry()] * 2, bars, quiet=START, keep=ALL)
    for j, (sym, c, eq) in enumerate(zip(result.symbols, result.combos, result.equity)):
        engine = engines[sym]
        single = backtest(engine, sub.select([sym]), engine.params(c), runner=runners[sym],
                          start=START)
        assert same(eq, single.out["equity"]), (sym, c)
        if sym == "MSFT":      # every record, not only equity
            bad = [k for k in ALL if not same(rec[k][j - 2][START:], single.out[k])]
            assert not bad, (sym, c, bad)
    table = result.table()
    assert table.column("symbol").to_pylist() == result.symbols
    assert set(KEYS) <= set(table.column_names)


@pytest.mark.parametrize("item, message", [
    ("fast=1:10:1", "1 lies outside the declared range of `fast`, [5, 60]"),
    ("slow=300", "outside the declared range of `slow`"),
    ("speed=5", "the policy has no parameter `speed` (parameters: `fast`, `slow`)"),
    ("fast=10.5", "`fast` takes whole numbers"),
    ("fast=20:10:5", "LO <= HI"),
    ("fast", "is not NAME=LO:HI:STEP"),
])
def test_grids_outside_the_declared_ranges_are_refused(setup, item, message):
    with pytest.raises(GridError, match=None) as e:
        parse_grid([item], setup[2].param_specs)
    assert message in str(e.value)


def test_grid_ranges_include_both_ends(setup):
    grid = parse_grid(["fast=10:20:5", "slow=100,150"], setup[2].param_specs)
    assert grid == [{"fast": f, "slow": s} for f in (10, 15, 20) for s in (100, 150)]


def test_crowe_sweep_writes_one_row_per_combination(setup, tmp_path):
    out = tmp_path / "sw"
    grid = ["fast=10:30:10", "slow=100"]          # 3 runs: the fixture's batch program
    res = CliRunner().invoke(main, ["sweep", str(POLICY), "--grid", grid[0], "--grid", grid[1],
                                    "--end", END, "--out", str(out), "--equity"])
    assert res.exit_code == 0, res.output
    assert "best by sharpe" in res.output and "PBO" in res.output
    table = pq.read_table(out / "sweep.parquet")
    assert table.num_rows == 3 and set(KEYS) <= set(table.column_names)
    combos = parse_grid(grid, setup[2].param_specs)
    ref = sweep(setup[2], setup[1], combos, runner=setup[4])
    assert table.column("sharpe").to_pylist() == [m["sharpe"] for m in ref.metrics]
    assert table.column("fast").to_pylist() == [10, 20, 30]
    assert pq.read_table(out / "equity.parquet").num_rows == 3 * setup[1].T
    _check_run_json(out, "sweep", {"equity.parquet", "overfit.json", "sweep.parquet"})


def _check_run_json(out, kind: str, files: set) -> None:
    """The results directory names its policy, data (by SHA-256) and files, as a backtest's."""
    import hashlib
    import json
    run = json.loads((out / "run.json").read_text())
    assert run["kind"] == kind and run["policy"]["name"] == "ts_trend_v1"
    assert run["data"]["sha256"] == hashlib.sha256(
        open(run["data"]["path"], "rb").read()).hexdigest()
    assert set(run["files"]) == files
    for name, digest in run["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    bad = CliRunner().invoke(main, ["sweep", str(POLICY), "--grid", "fast=2:4:1",
                                    "--end", END, "--out", str(out)])
    assert bad.exit_code == 2 and "outside the declared range" in bad.output


# -- walk-forward -----------------------------------------------------------------------------

def test_walk_forward_uses_only_past_bars_and_carries_the_book(setup):
    _, panel, engine, combos, runner = setup
    fl = folds(panel.ts, 0, parse_span("2y", "--train"), parse_span("1y", "--test"))
    assert len(fl) >= 3 and all(f.train[1] == f.test[0] for f in fl)
    wf = walk_forward(engine, panel, combos, fl, "sharpe", runner=runner)
    # the choice is the in-sample best, from a sweep of the training window alone
    res = sweep(engine, panel._take(slice(0, fl[1].train[1]), slice(None)), combos,
                fl[1].train[0], runner=runner)
    sharpes = [m["sharpe"] for m in res.metrics]
    assert wf.chosen[1] == combos[int(np.nanargmax(sharpes))]
    # later bars change nothing before them: cut the data after fold 1's test window
    cut = panel._take(slice(0, fl[1].test[1]), slice(None))
    early = walk_forward(engine, cut, combos, fl[:2], "sharpe", runner=runner)
    n = fl[1].test[1] - fl[0].test[0]
    assert early.chosen == wf.chosen[:2] and same(early.equity, wf.equity[:n])
    # the book carries: positions at a fold's first bar are those at the previous one's last
    assert not np.any(wf.positions[0][0])
    for (_, last), (first, _) in zip(wf.positions, wf.positions[1:]):
        assert same(first, last)
    assert any(np.any(p[1]) for p in wf.positions)
    assert wf.equity.shape == (sum(f.test[1] - f.test[0] for f in fl),)


def test_walk_forward_windows_must_fit_the_data(setup):
    with pytest.raises(WalkForwardError, match="too short"):
        folds(setup[1].ts, 0, parse_span("6y", "--train"), parse_span("1y", "--test"))
    with pytest.raises(WalkForwardError, match="not a span"):
        parse_span("3 years", "--train")


# -- stress -----------------------------------------------------------------------------------

def test_shocks_change_the_bars_as_documented(setup):
    panel = setup[1]
    t = 500
    gap = shocked(panel, parse_scenario("gap:-10%"), t, {"IBM"})
    i = panel.symbols.index("IBM")
    np.testing.assert_array_equal(gap.open[t:, i], panel.open[t:, i] * 0.9)
    np.testing.assert_array_equal(gap.close[:t], panel.close[:t])
    np.testing.assert_array_equal(np.delete(gap.close, i, 1), np.delete(panel.close, i, 1))
    vol = shocked(panel, parse_scenario("vol:3x:20"), t)
    c, v = panel.close[:, i], vol.close[:, i]
    r, rv = c[1:] / c[:-1] - 1, v[1:] / v[:-1] - 1
    np.testing.assert_allclose(rv[t - 1:t + 19], 3 * r[t - 1:t + 19], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rv[t + 19:], r[t + 19:], rtol=1e-9, atol=1e-12)
    assert np.array_equal(v[:t], c[:t])
    dry = shocked(panel, parse_scenario("drought:20"), t)
    np.testing.assert_array_equal(dry.volume[t:t + 20], panel.volume[t:t + 20] * 0.1)
    halt = shocked(panel, parse_scenario("halt:5"), t)
    assert not halt.valid[t:t + 5].any() and np.isnan(halt.close[t:t + 5]).all()
    assert np.array_equal(halt.valid[t + 5:], panel.valid[t + 5:])


def test_a_halt_of_every_instrument_stands_the_policy_down(setup):
    _, panel, engine, _, runner = setup
    params, t = engine.params(), 700
    rows = run_shock(engine, panel, params, parse_scenario("halt:5"), t, START,
                     runner=runner.single)
    base = backtest(engine, panel, params, runner=runner.single, start=START)
    e = base.out["equity"][t - START:]
    before = base.out["equity"][t - START - 1]
    assert rows[0].final_equity == base.out["equity"][-1]
    assert rows[0].max_drawdown == pytest.approx(
        np.max(1 - e / np.maximum.accumulate(np.r_[before, e])[1:]), rel=1e-12)
    assert "rule:data_gap" in rows[1].fired and "rule:data_gap" not in rows[0].fired


@pytest.mark.parametrize("text, message", [
    ("flash2010", "does not cover flash2010"), ("gap:-150%", "strictly between"),
    ("crash", "is not a scenario"),
])
def test_scenarios_the_data_cannot_serve_are_refused(setup, text, message):
    _, panel, engine, _, runner = setup
    with pytest.raises(StressError, match=message):
        run_episode(engine, panel, engine.params(), parse_scenario(text), runner.single)


def test_rolling_and_anchored_folds_by_the_calendar(setup):
    ts = setup[1].ts
    day = lambda i: str(np.datetime64(int(ts[i]), "ns").astype("datetime64[D]"))  # noqa: E731
    rolling = folds(ts, 0, parse_span("1y", "--train"), parse_span("6mo", "--test"))
    anchored = folds(ts, 0, parse_span("1y", "--train"), parse_span("6mo", "--test"),
                     anchored=True)
    assert [day(f.test[0]) for f in rolling[:3]] == ["2001-03-01", "2001-09-04", "2002-03-01"]
    assert [day(f.train[0]) for f in rolling[:3]] == ["2000-03-01", "2000-09-01", "2001-03-01"]
    assert {f.train[0] for f in anchored} == {0}
    assert [f.test for f in anchored] == [f.test for f in rolling]
    assert all(a.test[1] == b.test[0] for a, b in zip(rolling, rolling[1:]))


def test_crowe_walkforward_and_stress_end_to_end(setup, tmp_path):
    import json
    grid = ["--grid", "fast=10:30:10", "--grid", "slow=100"]       # the fixture's batch of 3
    res = CliRunner().invoke(main, ["walkforward", str(POLICY), *grid, "--train", "2y",
                                    "--test", "1y", "--end", END, "--out", str(tmp_path / "wf"),
                                    "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [f["test_start"] for f in out["folds"]][:2] == ["2002-03-01", "2003-03-03"]
    assert {"fast", "slow", "is_sharpe", "oos_sharpe", "is_dsr", "is_pbo"} <= set(out["folds"][0])
    oos = pq.read_table(tmp_path / "wf" / "oos_equity.parquet")
    folds_of_bars = oos.column("fold").to_pylist()
    assert folds_of_bars == sorted(folds_of_bars)
    assert set(folds_of_bars) == set(range(len(out["folds"])))
    res = CliRunner().invoke(main, ["stress", str(POLICY), "--scenario", "halt:5", "--end", END,
                                    "--start", "2001-06-01", "--at", "2003-06-02",
                                    "--out", str(tmp_path / "st")])
    assert res.exit_code == 0, res.output
    assert "unshocked" in res.output and "rule:data_gap" in res.output
    _check_run_json(tmp_path / "wf", "walkforward",
                    {"folds.parquet", "oos_equity.parquet", "walkforward.json"})
    _check_run_json(tmp_path / "st", "stress", {"stress.json"})


def test_the_batch_shares_exactly_the_state_of_parameter_independent_nodes(setup):
    """The batch program's split of the carry (found on the whole compiled step) agrees with
    the compiler's dependence pass on the expression state: sweeping `fast` alone shares the
    rings, sums and EMA of everything `fast` does not reach, the bar counter included."""
    import jax
    from crowe.compiler.program import to_ir
    from crowe.compiler.step import StepBuilder, Universe
    from crowe.runtime.sweep import batched_state
    policy, panel, engine, _, _ = setup
    pir = to_ir(policy)
    low = StepBuilder(pir, Universe.bind(pir, panel.symbols)).low
    paths = [tuple(getattr(k, "key", getattr(k, "idx", None)) for k in path) for path, _ in
             jax.tree_util.tree_flatten_with_path(engine.init_carry())[0]]
    for swept in (["fast"], ["fast", "slow"]):
        mask = batched_state(engine, swept)
        x = [(p[2], p[3], m) for p, m in zip(paths, mask) if p[:2] == ("state", "x")]
        found = {part: sorted({k for q, k, _ in x if q == part} -    # every leaf of it shared
                              {k for q, k, m in x if q == part and m})
                 for part in ("ring", "ema", "bad", "sum")}
        assert found == low.shared_state(swept), swept
        shared = {p for p, m in zip(paths, mask) if not m}
        assert ("state", "t") in shared and ("state", "last_close") in shared
        assert ("state", "cash") not in shared and ("qty",) not in shared
    assert low.shared_state(["fast"])["ema"] and not low.shared_state(["fast", "slow"])["ema"]
