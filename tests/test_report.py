"""`crowe report`, `crowe backtest --report` and `run.json`: what a results directory records,
the per-trade statistics (against a hand-computed case), the report's numbers against
independent computations, its errors, and the page itself opened in headless Chromium."""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from crowe.runtime.cli import main
from crowe.runtime.htmlreport import (ReportError, benchmark_curve, load_results,
                                      monthly_returns, returns, rolling_stats, write_report)
from crowe.runtime.manifest import rerun_command
from crowe.runtime.metrics import compute_metrics
from crowe.runtime.reportpage import report_trades
from crowe.runtime.trades import TRADE_KEYS, round_trips, trade_metrics

ROOT = Path(__file__).resolve().parent.parent
SMALL = """\
policy: small_trend
version: 1.0.0
owner: CR-001
universe: {symbols: from_data, bar: 1d}
params:
  window: {default: 40, range: [10, 100]}
features:
  r1:  ret(close, 1)
  vol: stdev(r1, 20)
  mom: ret(close, window)
signal:
  horizon: 1d
  mu:    0.2 * mom / window
  sigma: vol
gates:
  edge: prob_edge > 0.52
sizing: {method: equal, budget: 100%}
risk: {gross_max: 100%, net_max: 60%, position_max: 30%}
execution: {algo: market, participation_cap: 10%}
stand_down:
  data_gap:  {max_missing: 10%, action: halt}
  vol_spike: {sigma: 4, window: 20, action: exclude}
"""
US_TECH = ROOT / "examples" / "data" / "us_tech_daily.parquet"
CHARTS = {"equity", "equity-log", "drawdown", "rolling", "exposure", "costs", "trades",
          "states", "reasons"}
SCREENSHOT = ROOT / "build" / "test-artifacts" / "report.png"


def crowe(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """One backtest with --report of a small policy (a gate, caps, a stand-down rule, so the
    policy is cheap to compile): warm-up before --start, a parameter override."""
    where = tmp_path_factory.mktemp("report")
    policy = where / "small_trend.policy"
    policy.write_text(SMALL)
    out = where / "out"
    run = crowe("backtest", policy, "--data", US_TECH, "--start", "2004-01-01", "--end",
                "2008-12-31", "--param", "window=30", "--out", out, "--report",
                "--format", "json")
    assert run.exit_code == 0, run.output
    return out, json.loads(run.stdout)


# -- run.json ------------------------------------------------------------------------------------

def test_run_json_records_what_ran(results):
    out, printed = results
    run = json.loads((out / "run.json").read_text())
    assert run["format"] == "crowe-run/1"
    pol = run["policy"]
    policy = out.parent / "small_trend.policy"
    assert (pol["name"], pol["version"], pol["source"]) == ("small_trend", "1.0.0", str(policy))
    assert pol["source_sha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()
    assert len(pol["ir_sha256"]) == 64 and pol["artifact_digest"] is None
    assert run["params"] == {"window": 30}
    assert run["data"] == {"path": str(US_TECH), "symbols": ["AAPL", "GOOG", "IBM", "MSFT"],
                           "sha256": hashlib.sha256(US_TECH.read_bytes()).hexdigest()}
    period = run["period"]
    assert (period["first_bar"], period["start"], period["end"]) == \
        ("2000-03-01", "2004-01-02", "2008-12-31")
    assert period["bars"] == printed["bars"] == pq.read_metadata(out / "equity.parquet").num_rows
    assert period["warmup_bars_before_start"] == printed["warmup_bars_before_start"] > 0
    assert period["warmup"] == printed["warmup"] and period["bars_per_year"] == 252.0
    assert period["calendar"] is None
    assert run["command"]["line"] == shlex.join(run["command"]["argv"])   # in-process: pytest's
    assert run["command"]["cwd"] == os.getcwd()
    assert {"crowe", "python", "jax", "jaxlib", "numpy", "pyarrow"} <= set(run["versions"])
    for name, digest in run["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert set(run["files"]) >= {"equity.parquet", "fills.parquet", "metrics.json"}
    assert printed["files"]["run"] == str(out / "run.json")
    assert printed["files"]["report"] == str(out / "report.html")


def test_the_recorded_command_repeats_the_run(results, tmp_path):
    from crowe.runtime.manifest import _exact
    assert [float(_exact(x)) for x in (0.1 + 0.2, 1e6, 3, 1 / 3)] == [0.1 + 0.2, 1e6, 3, 1 / 3]
    assert (_exact(1e6), _exact(30)) == ("1000000", "30")
    out, _ = results
    args = shlex.split(rerun_command(json.loads((out / "run.json").read_text())))
    assert args[:3] == ["crowe", "backtest", str(out.parent / "small_trend.policy")]
    again = crowe(*args[1:], "--out", tmp_path / "again")
    assert again.exit_code == 0, again.output
    first = json.loads((out / "metrics.json").read_text())
    assert json.loads((tmp_path / "again" / "metrics.json").read_text()) == first


# -- trades --------------------------------------------------------------------------------------

def test_trades_against_a_hand_computed_case():
    # A: buy 10 @ 100 (cost 1), buy 10 @ 110 (1), sell 5 @ 120 (0.5), sell 15 @ 90 (1.5): flat
    # B: short 10 @ 50 (1), buy 20 @ 40 (2): closes the short and opens a long of 10 at the same
    #    bar, the cost split 1 / 1; sell 10 @ 45 (1): flat. C: buy 4 @ 10, still open.
    fills = [(0, "A", 10, 100, 1), (1, "B", -10, 50, 1), (2, "A", 10, 110, 1),
             (3, "A", -5, 120, 0.5), (4, "B", 20, 40, 2), (5, "A", -15, 90, 1.5),
             (6, "C", 4, 10, 0), (7, "B", -10, 45, 1)]
    symbols = ["A", "B", "C"]
    bar, sym, qty, price, cost = zip(*fills)
    trades = round_trips(bar, [symbols.index(s) for s in sym], qty, price, cost, symbols)
    a_pnl = -(10 * 100 + 10 * 110 - 5 * 120 - 15 * 90) - 4.0        # -154
    short_pnl = 10 * 50 - 10 * 40 - 1 - 1                           # 98
    long_pnl = -10 * 40 + 10 * 45 - 1 - 1                           # 48
    got = [(t.symbol, t.side, t.entry_bar, t.exit_bar, t.pnl, t.entry_notional) for t in trades]
    assert got[:3] == [("A", 1, 0, 5, a_pnl, 2100.0), ("B", -1, 1, 4, short_pnl, 500.0),
                       ("B", 1, 4, 7, long_pnl, 400.0)]
    assert (trades[3].symbol, trades[3].closed) == ("C", False) and math.isnan(trades[3].pnl)
    m = trade_metrics(trades)
    assert list(m) == list(TRADE_KEYS)
    rets = [a_pnl / 2100, short_pnl / 500, long_pnl / 400]
    assert m["trades"] == 3 and m["open_trades"] == 1
    assert m["trade_win_rate"] == pytest.approx(2 / 3)
    assert m["trade_avg_win"] == pytest.approx((rets[1] + rets[2]) / 2)
    assert m["trade_avg_loss"] == pytest.approx(rets[0])
    assert (m["trade_best"], m["trade_worst"]) == (pytest.approx(0.196), pytest.approx(rets[0]))
    assert m["trade_avg_bars"] == pytest.approx((5 + 3 + 3) / 3)
    assert m["profit_factor"] == pytest.approx((98 + 48) / 154)


def test_no_trades_and_no_losers_are_nan_not_errors():
    m = trade_metrics([])
    assert m["trades"] == 0 and all(math.isnan(m[k]) for k in TRADE_KEYS[2:])
    m = trade_metrics(round_trips([0, 1], [0, 0], [1, -1], [10, 11], [0, 0], ["A"]))
    assert (m["trades"], m["trade_win_rate"], m["trade_avg_win"]) == (1, 1.0, 0.1)
    assert math.isnan(m["profit_factor"]) and math.isnan(m["trade_avg_loss"])


def test_the_backtest_metrics_count_the_trades_the_report_shows(results):
    out, printed = results
    m = printed["metrics"]
    trades = report_trades(load_results(out))
    assert m["trades"] == sum(t.closed for t in trades) > 5
    assert m["open_trades"] == sum(not t.closed for t in trades)
    expected = trade_metrics(trades)
    assert all(m[k] == pytest.approx(expected[k], nan_ok=True) for k in TRADE_KEYS)


# -- the report's numbers ------------------------------------------------------------------------

def test_monthly_returns_compound_to_the_total_return(results):
    out, printed = results
    res = load_results(out)
    table = monthly_returns(res.equity["ts"], res.equity["equity"])
    assert sorted(table) == [2004, 2005, 2006, 2007, 2008]
    months = [v for year in table.values() for k, v in year.items() if k <= 12]
    assert len(months) == 60
    assert np.prod([1 + v for v in months]) - 1 == pytest.approx(
        printed["metrics"]["total_return"], rel=1e-9)
    years = [table[y][13] for y in table]
    assert np.prod([1 + v for v in years]) - 1 == pytest.approx(
        printed["metrics"]["total_return"], rel=1e-9)


def test_rolling_sharpe_is_the_metric_of_each_window(results):
    res = load_results(results[0])
    e = res.equity["equity"]
    sharpe, vol = rolling_stats(returns(e), 63, 252.0)
    assert np.isnan(sharpe[:63]).all()           # bar 0 has no return; 63 returns from bar 63
    for t in (63, 400, e.size - 1):
        ref = compute_metrics(e[t - 63:t + 1], *[np.zeros(64)] * 4, bars_per_year=252.0)
        assert sharpe[t] == pytest.approx(ref["sharpe"], rel=1e-9)
        assert vol[t] == pytest.approx(ref["volatility"], rel=1e-9)


def test_benchmarks_against_the_data_file(results):
    res = load_results(results[0])
    table = pq.read_table(US_TECH).to_pydict()
    ts = res.equity["ts"].astype("datetime64[D]")
    close = {}
    for t, s, c in zip(table["ts"], table["symbol"], table["close"]):
        close[(np.datetime64(t, "D"), s)] = c
    e0 = res.equity["equity"][0]
    ibm, _ = benchmark_curve(res, "IBM")
    want = np.array([close[(t, "IBM")] for t in ts]) / close[(ts[0], "IBM")] * e0
    np.testing.assert_allclose(ibm["equity"], want, rtol=1e-12)
    bh, _ = benchmark_curve(res, "buy_and_hold")       # all five trade from 2004-08-19 on
    held = [s for s in res.run["data"]["symbols"] if (ts[0], s) in close]
    assert held == ["AAPL", "IBM", "MSFT"] and bh["label"].startswith("buy and hold of 3 ")
    want = sum(np.array([close[(t, s)] for t in ts]) / close[(ts[0], s)] for s in held) / 3
    np.testing.assert_allclose(bh["equity"], want * e0, rtol=1e-12)
    assert benchmark_curve(res, "none") == (None, None)


# -- errors --------------------------------------------------------------------------------------

def test_report_errors_are_one_line(results, tmp_path):
    out, _ = results
    cases = [((tmp_path / "nowhere",), "is not a directory"),
             ((tmp_path,), "has no run.json"),
             ((out, "--benchmark", "XYZ"), "--benchmark `XYZ` is not a symbol of"),
             ((out, "-o", tmp_path), "is a directory")]
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "fills.parquet").write_bytes(b"not parquet")
    cases.append(((broken,), "is not a readable Parquet file"))
    for args, message in cases:
        run = CliRunner().invoke(main, ["report", *map(str, args)])
        assert run.exit_code == 2, run.output
        assert message in run.output and "Traceback" not in run.output
        assert run.output.startswith("error: ") and run.output.count("\n") == 1


def test_a_changed_data_file_is_refused_for_an_explicit_benchmark(results, tmp_path):
    out, _ = results
    copy = tmp_path / "cs"
    shutil.copytree(out, copy)
    data = tmp_path / "bars.parquet"
    shutil.copy(US_TECH, data)
    run = json.loads((copy / "run.json").read_text())
    run["data"]["path"] = str(data)
    (copy / "run.json").write_text(json.dumps(run))
    with data.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ReportError, match="has changed since the run"):
        write_report(str(copy), benchmark="IBM")
    bench, note = benchmark_curve(load_results(copy), "buy_and_hold")   # the default: a note
    assert bench is None and "has changed since the run" in note


# -- the page in a browser -----------------------------------------------------------------------

def chromium_or_skip() -> str:
    from browserkit import find_chromium
    found = find_chromium()
    if found is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install "
                        "chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium) and CI is not set; "
                    "CI runs this test")
    return found


def test_the_report_renders_in_a_browser(results):
    from browserkit import Browser
    exe = chromium_or_skip()
    out, _ = results
    page_path = out / "report.html"
    text = page_path.read_text()
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\((?!#)", text)
    with Browser(exe) as browser:
        page = browser.open(page_path.as_uri())
        charts = page.evaluate("""[...document.querySelectorAll('svg.chart')].map(s => {
            const r = s.getBoundingClientRect();
            return [s.dataset.chart, s.querySelectorAll('path, rect, text, use').length,
                    r.width, r.height]; })""")
        assert {c[0] for c in charts} == CHARTS and len(charts) == len(CHARTS)
        assert all(n > 10 for _, n, _, _ in charts)
        shown = {name for name, _, w, h in charts if w > 100 and h > 50}
        assert shown == CHARTS - {"equity-log"}               # until the log scale is chosen
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(page.screenshot(full_page=True))
        page.evaluate("document.getElementById('log').click()")
        size = page.evaluate("""(() => { const r = document.querySelector(
            'svg[data-chart="equity-log"]').getBoundingClientRect(); return [r.width, r.height];
            })()""")
        assert size[0] > 100 and size[1] > 50
        assert page.console_errors() == []
        assert page.requests() == [page_path.as_uri()]       # nothing but the page itself
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_chromium_the_browser_test_skips_only_outside_ci(monkeypatch):
    import browserkit
    monkeypatch.setattr(browserkit, "find_chromium", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        chromium_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"\.ci/run installs it"):
        chromium_or_skip()


def test_reason_counts_against_a_count_of_the_tables(results):
    from collections import Counter
    from crowe.runtime.htmlreport import reason_counts
    out, _ = results
    reasons = pq.read_table(out / "reasons.parquet").to_pylist()
    book = pq.read_table(out / "equity.parquet").to_pylist()
    per_instrument = Counter(n for row in reasons for n in row["reasons"])
    pairs = {(row["ts"], n) for row in reasons for n in row["reasons"]} | \
        {(row["ts"], n) for row in book for n in row["portfolio_reasons"]}
    per_bar = Counter(n for _, n in pairs)
    got = reason_counts(load_results(out))
    assert {n: (i, b) for n, _, i, b in got} == \
        {n: (per_instrument[n], per_bar[n]) for n in per_bar}
    assert [i for _, _, i, _ in got] == sorted((i for _, _, i, _ in got), reverse=True)
    assert {"gate:edge", "position_cap"} <= {n for n, *_ in got}
