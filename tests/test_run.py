"""The run layer of `crowe backtest`: data whose bar size is not the policy's is refused, data
problems and instruments without volume are reported before the run, and `--start` warms up on
the bars before it and counts everything from it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest

from crowe.runtime.data import load_bars, to_ns, write_bars
from crowe.runtime.run import Prepared, RunError, data_warnings, load_panel, prepare_artifact

ROOT = Path(__file__).resolve().parent.parent
US_TECH = ROOT / "examples" / "data" / "us_tech_daily.parquet"
REVERSAL = ROOT / "policies" / "xs_reversal_v1.policy"
CROWE = Path(sys.executable).parent / "crowe"
TECH = ("AAPL", "FB", "GOOG", "IBM", "MSFT")
MINUTE = 60 * 10**9


def crowe(*args, cwd=None):
    return subprocess.run([str(CROWE), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def intraday(path: Path, step_ns: int, bars: int = 400, symbols=TECH) -> Path:
    """`bars` bars per symbol, `step_ns` apart within a session of 6.5 hours a day."""
    per_day = int(23_400 * 10**9 // step_ns)
    i = np.arange(bars)
    ts = to_ns("2020-01-06T14:30:00Z") + (i // per_day) * 86_400 * 10**9 + (i % per_day) * step_ns
    close = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 1e-3, bars)))
    n = len(symbols)
    price = np.repeat(close, n)
    write_bars(path, np.repeat(ts, n), list(symbols) * bars, price, price * 1.001,
               price * 0.999, price, np.full(bars * n, 1e5))
    return path


# -- the bar size ----------------------------------------------------------------------------------

def test_a_daily_policy_refuses_minute_bars(tmp_path):
    data = intraday(tmp_path / "minutes.parquet", MINUTE)
    with pytest.raises(RunError) as e:
        load_panel("from_data", str(data), None, None, "policy", 86_400)
    message = str(e.value)
    assert message.startswith(f"the policy trades 1d bars but `{data}` has 1m bars")
    assert "annualisation" in message and "`universe.bar: 1m`" in message
    assert "\n" not in message


def test_intraday_bars_must_be_the_policy_bar(tmp_path):
    five = intraday(tmp_path / "five.parquet", 5 * MINUTE)
    panel, _, _, first = load_panel("from_data", str(five), None, None, "policy", 300)
    assert panel.T == 400 and first == 0                  # overnight gaps do not matter
    with pytest.raises(RunError, match="trades 1m bars but .* has 5m bars"):
        load_panel("from_data", str(five), None, None, "policy", 60)
    with pytest.raises(RunError, match="trades 1h bars but .* has 1d bars"):
        load_panel("from_data", str(US_TECH), None, None, "policy", 3600)
    panel, *_ = load_panel("from_data", str(US_TECH), None, None, "policy", 86_400)
    assert panel.T == 3270                                # weekends and holidays are daily


def test_crowe_backtest_refuses_minute_data_for_a_daily_policy(tmp_path):
    data = intraday(tmp_path / "minutes.parquet", MINUTE)
    run = crowe("backtest", REVERSAL, "--data", data, "--out", tmp_path / "out", cwd=tmp_path)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("error: the policy trades 1d bars but ")
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_an_artifact_refuses_data_of_another_bar_size(tmp_path):
    from artifactkit import compiled, write
    path = write(tmp_path, compiled("xs_reversal_v1"))
    data = intraday(tmp_path / "minutes.parquet", MINUTE)
    with pytest.raises(RunError, match=r"^the artifact trades 1d bars but .* has 1m bars.*"
                                       r"compile the policy with `universe.bar: 1m`"):
        prepare_artifact(path, str(data), None, None, None, 1e6)
    prep, _ = prepare_artifact(path, str(US_TECH), "2010-01-04", None, None, 1e6)
    assert prep.start == int(np.searchsorted(prep.panel.ts, to_ns("2010-01-04")))


# -- --start and data warnings ------------------------------------------------------------------

def test_start_keeps_the_bars_before_it_for_the_warm_up():
    panel, _, _, first = load_panel("from_data", str(US_TECH), "2010-01-01", "2010-12-31",
                                    "policy", 86_400)
    full, _ = load_bars(US_TECH, end="2010-12-31")
    np.testing.assert_array_equal(panel.ts, full.ts)     # from the data's first bar
    assert panel.ts[first] == to_ns("2010-01-04") and panel.ts[first - 1] < to_ns("2010-01-01")
    with pytest.raises(RunError, match="no bars from --start 2014-01-01 .*its bars end"):
        load_panel("from_data", str(US_TECH), "2014-01-01", None, "policy", 86_400)
    with pytest.raises(RunError, match="to --end 2009-12-31"):
        load_panel("from_data", str(US_TECH), "2010-01-01", "2009-12-31", "policy", 86_400)


def closing_only(path: Path, symbol: str = "IBM", bad_row: bool = True) -> Path:
    """The bundled daily bars with `symbol`'s volume 0 everywhere and one inconsistent bar."""
    table = pq.read_table(US_TECH).to_pydict()
    volume = [0.0 if s == symbol else v for s, v in zip(table["symbol"], table["volume"])]
    high = list(table["high"])
    if bad_row:
        high[10] = table["low"][10] * 0.5
    write_bars(path, np.asarray(table["ts"], "datetime64[ns]"), table["symbol"], table["open"],
               high, table["low"], table["close"], volume)
    return path


def test_warnings_name_the_problems_before_a_run(tmp_path):
    data = closing_only(tmp_path / "close_only.parquet")
    panel, report, path, first = load_panel("from_data", str(data), "2005-01-01", None,
                                            "policy", 86_400)
    engine = SimpleNamespace(cfg=SimpleNamespace(participation_cap=0.1), warmup=first + 10)
    prep = Prepared(None, panel, report, path, first)
    lines = data_warnings(prep, engine)
    assert lines[0] == (f"`{path}` has data problems: 1 ohlc, 1 no_volume "
                        f"(`crowe data check {path}` lists each one)")
    assert lines[1].startswith("1 of 5 instruments (IBM) have zero or missing volume on most "
                               "bars: the market model fills at most 10% of a bar's volume")
    assert lines[2].startswith(f"only {first} bars before --start for a warm-up of "
                               f"{first + 10}: the policy cannot trade its first 10 bars")
    assert len(lines) == 3
    engine.warmup = 5000
    assert data_warnings(prep, engine)[2].startswith(
        "the data has 3,270 bars, no more than the warm-up of 5000: the policy cannot trade")

    clean, report, path, _ = load_panel("from_data", str(US_TECH), None, None, "policy", 86_400)
    engine.warmup = 20
    assert data_warnings(Prepared(None, clean, report, path, 0), engine) == []


def test_crowe_backtest_warns_warms_up_and_counts_from_start(tmp_path):
    data = closing_only(tmp_path / "close_only.parquet")
    out = tmp_path / "out"
    run = crowe("backtest", REVERSAL, "--data", data, "--start", "2010-01-01", "--end",
                "2011-12-31", "--format", "json", "--out", out, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2 and "1 ohlc, 1 no_volume" in warnings[0]
    assert "(IBM) have zero or missing volume" in warnings[1]
    doc = json.loads(run.stdout)
    panel, _ = load_bars(data, end="2011-12-31")
    first = int(np.searchsorted(panel.ts, to_ns("2010-01-01")))
    assert doc["start"] == "2010-01-04" and doc["end"] == "2011-12-30"
    assert doc["bars"] == panel.T - first and doc["warmup_bars_before_start"] == first
    assert doc["data_issues"] == {"ohlc": 1, "no_volume": 1} and len(doc["warnings"]) == 2
    assert doc["metrics"]["bars"] == doc["bars"]

    equity = pq.read_table(out / "equity.parquet").to_pydict()
    assert len(equity["ts"]) == doc["bars"] and str(equity["ts"][0].date()) == "2010-01-04"
    assert equity["equity"][0] == 1e6 and equity["cash"][0] == 1e6   # nothing filled before
    fills = pq.read_table(out / "fills.parquet").to_pydict()
    assert fills["ts"] and min(fills["ts"]) > equity["ts"][0]       # first fill after the start
    assert "IBM" not in fills["symbol"]                             # no volume, no fill
