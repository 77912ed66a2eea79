"""`crowe data import` and the split-like jumps that `crowe data check` flags: layouts, column
mapping, time zones, adjustment (against the source's own numbers and hand-computed cases),
and a one-line error for every bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from crowe.runtime.cli import main
from crowe.runtime.data import align, load_bars, split_jumps, to_ns

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "examples" / "data"


def crowe(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def rows(path: Path) -> dict:
    return pq.read_table(path).to_pydict()


# -- split-like jumps ----------------------------------------------------------------------------

def test_split_jumps_need_the_open_and_the_close_at_a_split_ratio():
    close = {"SPLIT": [100, 102, 51.5, 52], "REVERSE": [10, 10, 20.2, 20.1],
             "THREE_TWO": [90, 90, 60.3, 60], "CRASH": [100, 100, 50, 50],
             "PLAIN": [100, 101, 102, 103]}
    opens = {**close, "CRASH": [100, 100, 99, 50]}          # the crash happened in the session
    n = 4
    table = {"ts": np.repeat(np.arange(n) * 86_400 * 10**9, len(close)),
             "symbol": list(close) * n,
             "open": [opens[s][t] for t in range(n) for s in close],
             "close": [close[s][t] for t in range(n) for s in close]}
    table["high"] = np.maximum(table["open"], table["close"])
    table["low"] = np.minimum(table["open"], table["close"])
    table["volume"] = np.ones(len(table["close"]))
    jumps = split_jumps(align(table))
    assert [(j.symbol, j.t, j.factor, j.label) for j in jumps] == [
        ("REVERSE", 2, 2.0, "1-for-2 reverse split"), ("SPLIT", 2, 0.5, "2-for-1 split"),
        ("THREE_TWO", 2, 1 / 1.5, "3-for-2 split")]


def test_data_check_flags_the_unadjusted_splits_of_the_sp500_set():
    panel, report = load_bars(BUNDLED / "sp500_2010.parquet")
    splits = [(i.symbol, i.ts) for i in report.issues if i.kind == "split"]
    assert splits == [("GIS", "2010-06-09"), ("DHR", "2010-06-14"), ("STR", "2010-07-01")]
    gis = panel.symbols.index("GIS")
    assert panel.valid[:, gis].all()                              # flagged, not invalidated


# -- adjustment ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sp500_csv(tmp_path_factory):
    """GIS (2-for-1 on 2010-06-09), DHR (2-for-1 on 2010-06-14) and IBM, as a CSV with the
    column names of a download (Date, Ticker, ...)."""
    table = pq.read_table(BUNDLED / "sp500_2010.parquet")
    keep = pa.compute.is_in(table["symbol"], value_set=pa.array(["GIS", "DHR", "IBM"]))
    table = table.filter(keep)
    out = tmp_path_factory.mktemp("sp") / "three.csv"
    renamed = table.rename_columns(["Date", "Ticker", "Open", "High", "Low", "Close", "Volume"])
    pcsv.write_csv(renamed.set_column(0, "Date", renamed["Date"].cast(pa.string())), out)
    return out, table.to_pydict()


def test_import_adjusts_splits_by_their_ratio(sp500_csv, tmp_path):
    src, raw = sp500_csv
    out = tmp_path / "bars.parquet"
    run = crowe("data", "import", src, "-o", out, "--adjust", "splits")
    assert run.exit_code == 0, run.output                       # no split left: clean
    assert "adjusted 2 split-like jumps: GIS 2010-06-09 (2-for-1 split), DHR 2010-06-14" \
        in run.output
    got = rows(out)
    cut = {"GIS": to_ns("2010-06-09"), "DHR": to_ns("2010-06-14"), "IBM": None}
    want = sorted(
        (to_ns(str(t)), s, c * (0.5 if cut[s] and to_ns(str(t)) < cut[s] else 1.0),
         v * (2.0 if cut[s] and to_ns(str(t)) < cut[s] else 1.0))
        for t, s, c, v in zip(raw["ts"], raw["symbol"], raw["close"], raw["volume"]))
    have = [(to_ns(t), s, c, v) for t, s, c, v in
            zip(got["ts"], got["symbol"], got["close"], got["volume"])]
    assert [h[:2] for h in have] == [w[:2] for w in want]
    np.testing.assert_allclose([h[2:] for h in have], [w[2:] for w in want], rtol=1e-15)
    panel, report = load_bars(out)
    gis = panel.symbols.index("GIS")
    day = int(np.searchsorted(panel.ts, to_ns("2010-06-09")))
    assert abs(panel.close[day, gis] / panel.close[day - 1, gis] - 1) < 0.01


def test_import_adjusts_by_the_adjusted_close(tmp_path):
    src = csv(tmp_path / "a.csv", "Date,Symbol,Open,High,Low,Close,Adj Close,Volume\n"
              "2010-01-04,AAA,10,11,9,10,5,1000\n"
              "2010-01-05,AAA,10,11,9,10.5,5.25,1000\n"
              "2010-01-06,AAA,5.2,5.6,5,5.3,5.3,2000\n")
    out = tmp_path / "a.parquet"
    run = crowe("data", "import", src, "-o", out, "--adjust", "adjusted")
    assert run.exit_code == 0, run.output
    got = rows(out)
    assert got["open"] == [5.0, 5.0, 5.2] and got["high"] == [5.5, 5.5, 5.6]
    assert got["close"] == [5.0, 5.25, 5.3] and got["volume"] == [2000.0, 2000.0, 2000.0]
    plain = crowe("data", "import", src, "-o", tmp_path / "p.parquet")
    assert plain.exit_code == 1                               # the jump is flagged as a split
    assert "not used: `--adjust adjusted`" in plain.output and "2-for-1 split" in plain.output
    assert rows(tmp_path / "p.parquet")["close"] == [10.0, 10.5, 5.3]


# -- layouts, columns and time -------------------------------------------------------------------

def test_a_parquet_bar_file_imports_to_the_same_panel(tmp_path):
    out = tmp_path / "tech.parquet"
    assert crowe("data", "import", BUNDLED / "us_tech_daily.parquet", "-o", out).exit_code == 0
    a, _ = load_bars(BUNDLED / "us_tech_daily.parquet")
    b, report = load_bars(out)
    assert report.ok and a.symbols == b.symbols and (a.ts == b.ts).all()
    for name in ("open", "high", "low", "close", "volume", "valid"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_wide_close_columns(tmp_path):
    src = csv(tmp_path / "w.csv", "date,AAA,BBB\n01/04/2010,10,20\n01/05/2010,,21\n"
              "01/06/2010,11,22\n")
    out = tmp_path / "w.parquet"
    run = crowe("data", "import", src, "-o", out, "--ts-format", "%m/%d/%Y", "--format", "json")
    assert run.exit_code == 1                                   # close-only: no volume
    result = json.loads(run.output)
    assert result["layout"] == "wide" and result["check"]["counts"] == {"no_volume": 2}
    got = rows(out)
    assert got["symbol"] == ["AAA", "BBB", "BBB", "AAA", "BBB"]   # the empty cell is no bar
    assert got["close"] == got["open"] == got["low"] == [10, 20, 21, 11, 22]
    assert [str(t)[:10] for t in got["ts"]] == ["2010-01-04"] * 2 + ["2010-01-05"] + \
        ["2010-01-06"] * 2


def test_time_zones(tmp_path):
    src = csv(tmp_path / "t.csv", "when,px\n2010-01-04 09:30:00,10\n2010-07-01 09:30:00,11\n")
    out = tmp_path / "t.parquet"
    run = crowe("data", "import", src, "-o", out, "--ts", "when", "--close", "px", "--name",
                "XYZ", "--tz", "America/New_York")
    assert run.exit_code == 1, run.output                      # no volume column
    stamps = pq.read_table(out)["ts"]
    assert stamps.type == pa.timestamp("ns", tz="UTC")
    assert [to_ns(t) for t in stamps.to_pylist()] == \
        [to_ns("2010-01-04T14:30:00Z"), to_ns("2010-07-01T13:30:00Z")]   # EST, then EDT
    offset = csv(tmp_path / "o.csv", "ts,symbol,close,volume\n2010-01-04T09:30:00-05:00,X,1,5\n"
                 "2010-01-04T15:00:00Z,X,1,5\n")
    assert crowe("data", "import", offset, "-o", tmp_path / "o.parquet").exit_code == 0
    assert [to_ns(t) for t in rows(tmp_path / "o.parquet")["ts"]] == \
        [to_ns("2010-01-04T14:30:00Z"), to_ns("2010-01-04T15:00:00Z")]
    days = csv(tmp_path / "d.csv", "date,symbol,close,volume\n2010-01-04,X,1,5\n")
    run = crowe("data", "import", days, "-o", tmp_path / "d.parquet", "--tz", "Asia/Tokyo")
    assert run.exit_code == 0 and "days have no time zone" in run.output
    assert pq.read_table(tmp_path / "d.parquet")["ts"].type == pa.date32()


# -- errors --------------------------------------------------------------------------------------

def test_every_bad_input_is_one_line(tmp_path):
    good = csv(tmp_path / "g.csv", "date,symbol,close,volume\n2010-01-04,X,1,5\n")
    exists = tmp_path / "exists.parquet"
    exists.write_bytes(b"")
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\xff\xfe\x00\x01" * 10)
    cases = [
        ((tmp_path / "none.csv", "-o", tmp_path / "x.parquet"), "no such file"),
        ((tmp_path, "-o", tmp_path / "x.parquet"), "is a directory"),
        ((good, "-o", tmp_path), "is a directory"),
        ((good, "-o", exists), "pass --force"),
        ((good, "-o", tmp_path / "no" / "x.parquet"), "does not exist"),
        ((garbage, "-o", tmp_path / "x.parquet"), "cannot be read as CSV"),
        ((csv(tmp_path / "h.csv", "date,symbol,close\n"), "-o", tmp_path / "x.parquet"),
         "has no rows"),
        ((csv(tmp_path / "n.csv", "a,b\n1,2\n"), "-o", tmp_path / "x.parquet"),
         "has no time column"),
        ((good, "-o", tmp_path / "x.parquet", "--close", "px"), "has no column `px`"),
        ((csv(tmp_path / "s.csv", "date,symbol,close\n2010-01-04,X,abc\n"), "-o",
          tmp_path / "x.parquet"), "`abc` is not a number"),
        ((csv(tmp_path / "b.csv", "date,symbol,close\nyesterday,X,1\n"), "-o",
          tmp_path / "x.parquet"), "row 0: `yesterday` is not an ISO date"),
        ((good, "-o", tmp_path / "x.parquet", "--ts-format", "%d.%m.%Y"),
         "does not match --ts-format"),
        ((good, "-o", tmp_path / "x.parquet", "--tz", "Mars/Base"), "is not a time zone"),
        ((good, "-o", tmp_path / "x.parquet", "--adjust", "adjusted"),
         "needs an adjusted close column"),
        ((csv(tmp_path / "1.csv", "date,close\n2010-01-04,1\n"), "-o", tmp_path / "x.parquet"),
         "has no symbol column"),
        ((csv(tmp_path / "2.csv", "date\n2010-01-04\n"), "-o", tmp_path / "x.parquet"),
         "has only the time column"),
    ]
    for args, message in cases:
        run = crowe("data", "import", *args)
        assert run.exit_code == 2, (args, run.output)
        assert run.output.startswith("error: ") and message in run.output, run.output
        assert run.output.count("\n") == 1 and "Traceback" not in run.output
    assert not (tmp_path / "x.parquet").exists()
