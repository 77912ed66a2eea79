"""Bar loading, validation and alignment; the bundled data; `crowe data check`."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from crowe.runtime import cli
from crowe.runtime.data import (DataError, Panel, align, bar_label, bar_spacing, load_bars,
                                same_bar_size, to_ns, write_bars)

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "examples" / "data"
CROWE = Path(sys.executable).parent / "crowe"
DAY = 86_400 * 10**9


def day(d: str) -> int:
    return to_ns(d)


def bars(**changes) -> dict[str, list]:
    """A clean long table: MSFT and AAPL on 3 days, IBM (a late listing) on the last two."""
    table = {
        "ts": ["2020-01-02", "2020-01-02", "2020-01-03", "2020-01-03", "2020-01-06",
               "2020-01-06", "2020-01-03", "2020-01-06"],
        "symbol": ["MSFT", "AAPL", "MSFT", "AAPL", "MSFT", "AAPL", "IBM", "IBM"],
        "open": [10.0, 20.0, 11.0, 21.0, 12.0, 22.0, 30.0, 31.0],
        "high": [10.5, 20.5, 11.5, 21.5, 12.5, 22.5, 30.5, 31.5],
        "low": [9.5, 19.5, 10.5, 20.5, 11.5, 21.5, 29.5, 30.5],
        "close": [10.2, 20.2, 11.2, 21.2, 12.2, 22.2, 30.2, 31.2],
        "volume": [100.0, 200.0, 110.0, 210.0, 120.0, 220.0, 0.0, 310.0],
    }
    for key, (row, value) in changes.items():
        table[key] = list(table[key])
        table[key][row] = value
    return table


def write(path: Path, table: dict) -> Path:
    ts = np.array(table["ts"], dtype="datetime64[D]")
    write_bars(path, ts, *(table[c] for c in ("symbol", "open", "high", "low", "close", "volume")))
    return path


def load(tmp_path: Path, **changes):
    return load_bars(write(tmp_path / "bars.parquet", bars(**changes)))


def issues_of(report) -> list[tuple[str, int]]:
    return [(i.kind, i.row) for i in report.issues]


def assert_same_panel(a: Panel, b: Panel) -> None:
    assert a.symbols == b.symbols
    np.testing.assert_array_equal(a.ts, b.ts)
    for name in ("open", "high", "low", "close", "volume", "valid"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# -- alignment ---------------------------------------------------------------------------------

def test_align_shapes_order_and_late_listing():
    panel = align(bars())
    assert (panel.T, panel.N) == (3, 3)
    assert panel.symbols == ("AAPL", "IBM", "MSFT")
    assert panel.ts.dtype == np.int64
    assert list(panel.ts) == [day("2020-01-02"), day("2020-01-03"), day("2020-01-06")]
    np.testing.assert_array_equal(panel.valid, [[True, False, True], [True, True, True],
                                                [True, True, True]])
    np.testing.assert_array_equal(panel.close, [[20.2, np.nan, 10.2], [21.2, 30.2, 11.2],
                                                [22.2, 31.2, 12.2]])
    assert panel.volume[1, 1] == 0.0  # no volume is a valid bar
    assert np.isnan(panel.open[0, 1])


def test_panel_is_read_only_and_selects_and_slices():
    panel = align(bars())
    with pytest.raises(ValueError):
        panel.close[0, 0] = 1.0
    sub = panel.select(["MSFT", "IBM"])
    assert sub.symbols == ("IBM", "MSFT")
    np.testing.assert_array_equal(sub.close, panel.close[:, 1:])
    with pytest.raises(KeyError, match="GOOG"):
        panel.select(["GOOG"])
    part = panel.slice("2020-01-03", "2020-01-03")
    assert part.T == 1 and part.ts[0] == day("2020-01-03")
    assert panel.slice(start_ts=day("2020-01-04")).T == 1


def test_timestamps_of_any_unit_and_zone_become_utc_ns(tmp_path):
    stamps = pa.array([0, 3600], pa.timestamp("s", tz="America/New_York"))
    table = pa.table({"ts": stamps, "symbol": ["A", "A"], "open": [1, 1], "high": [1, 1],
                      "low": [1, 1], "close": [1, 1], "volume": pa.array([5, 6], pa.int32())})
    pq.write_table(table, tmp_path / "tz.parquet")
    panel, report = load_bars(tmp_path / "tz.parquet")
    assert list(panel.ts) == [0, 3600 * 10**9]
    assert report.ok and report.first_ts == "1970-01-01T00:00:00Z"


# -- issues ------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, kind, row", [
    ({"close": (3, -21.0)}, "bad_price", 3),
    ({"open": (4, 0.0)}, "bad_price", 4),
    ({"high": (0, float("nan"))}, "bad_price", 0),
    ({"low": (6, float("inf"))}, "bad_price", 6),
    ({"volume": (5, -1.0)}, "bad_volume", 5),
    ({"volume": (2, float("nan"))}, "bad_volume", 2),
    ({"high": (1, 20.1)}, "ohlc", 1),       # high below close
    ({"low": (7, 31.3)}, "ohlc", 7),        # low above close
    ({"open": (2, 11.6)}, "ohlc", 2),       # open above high
])
def test_each_bad_bar_is_reported_with_its_row_and_invalid(tmp_path, changes, kind, row):
    panel, report = load(tmp_path, **changes)
    assert issues_of(report) == [(kind, row)]
    table = bars()
    t = panel.ts.tolist().index(day(table["ts"][row]))
    n = panel.symbols.index(table["symbol"][row])
    assert not panel.valid[t, n] and np.isnan(panel.close[t, n])
    assert report.invalid_bars == 1 and panel.valid.sum() == 7
    assert str(row) in report.render_text()


def test_ohlc_tolerates_float_rounding(tmp_path):
    _, report = load(tmp_path, high=(0, 10.2 * (1 - 1e-12)))
    assert report.ok


@pytest.mark.parametrize("column, kind_message", [("ts", "no `ts`"), ("symbol", "no `symbol`")])
def test_missing_key_is_reported_and_not_placed(tmp_path, column, kind_message):
    table = bars()
    table[column] = list(table[column])
    table[column][6] = None
    panel, report = load_bars(write(tmp_path / "bars.parquet", table))
    assert issues_of(report) == [("missing", 6)]
    assert kind_message in report.issues[0].message
    assert not panel.valid[1, panel.symbols.index("IBM")]


def test_duplicates_mark_both_bars_invalid(tmp_path):
    table = bars()
    for key in table:
        table[key] = list(table[key]) + [table[key][4]]  # row 8 repeats row 4 (MSFT 2020-01-06)
    panel, report = load_bars(write(tmp_path / "bars.parquet", table))
    assert issues_of(report) == [("duplicate", 4), ("duplicate", 8)]
    assert "rows 4, 8" in report.issues[0].message
    assert not panel.valid[2, 2] and np.isnan(panel.close[2, 2])
    assert report.invalid_bars == 1


def test_a_duplicate_that_is_also_out_of_order_is_reported_as_both(tmp_path):
    table = bars()
    for key in table:
        table[key] = list(table[key]) + [table[key][2]]  # row 8 repeats row 2, after 2020-01-06
    _, report = load_bars(write(tmp_path / "bars.parquet", table))
    assert issues_of(report) == [("duplicate", 2), ("unsorted", 8), ("duplicate", 8)]


def test_unsorted_rows_are_reported_but_the_panel_is_the_sorted_one(tmp_path):
    table = bars()
    order = [4, 1, 2, 3, 0, 5, 7, 6]  # MSFT 01-06 first; IBM 01-06 before 01-03
    shuffled = {k: [v[i] for i in order] for k, v in table.items()}
    panel, report = load_bars(write(tmp_path / "shuffled.parquet", shuffled))
    assert issues_of(report) == [("unsorted", 2), ("unsorted", 4), ("unsorted", 7)]
    assert "2020-01-06" in report.issues[0].message
    assert_same_panel(panel, load(tmp_path)[0])


def test_random_file_orders_give_the_same_panel(tmp_path):
    table = bars(close=(3, -1.0))
    expected = align(table)
    rng = np.random.default_rng(7)
    for _ in range(5):
        order = rng.permutation(len(table["ts"]))
        assert_same_panel(align({k: [v[i] for i in order] for k, v in table.items()}), expected)


def test_instruments_without_volume_are_reported_and_stay_valid(tmp_path):
    panel, report = load(tmp_path, volume=(7, 0.0))      # IBM: 0 on both of its bars
    assert issues_of(report) == [("no_volume", None)]
    issue = report.issues[0]
    assert issue.symbol == "IBM" and issue.ts is None
    assert "volume is 0 or missing on 2 of its 2 bars" in issue.message
    assert "would never fill" in issue.message
    assert panel.valid[1:, panel.symbols.index("IBM")].all()    # the bars stay usable
    assert report.counts == {"no_volume": 1} and not report.ok
    assert "all rows  IBM  -  no_volume: volume is 0" in report.render_text()

    table = bars(volume=(0, 0.0))
    table["volume"][2] = float("nan")                   # MSFT: 0, missing, 120
    _, report = load_bars(write(tmp_path / "most.parquet", table))
    assert issues_of(report) == [("no_volume", None), ("bad_volume", 2)]
    assert report.issues[0].symbol == "MSFT" and "rarely fill" in report.issues[0].message
    _, report = load(tmp_path)                          # IBM 0 on one bar of two: not most
    assert report.ok


def test_the_bar_size_of_the_data():
    daily = np.array([to_ns(d) for d in ("2020-01-02", "2020-01-03", "2020-01-06",
                                         "2020-01-07", "2020-01-08")])
    assert bar_spacing(daily) == 86_400 and bar_spacing(daily[:1]) is None
    weekly = daily[0] + np.arange(5) * 7 * DAY
    assert bar_spacing(weekly) == 7 * 86_400
    assert same_bar_size(86_400, 20 * 3600) and same_bar_size(86_400, 4 * 86_400)
    assert not same_bar_size(86_400, 60) and not same_bar_size(86_400, 7 * 86_400)
    assert same_bar_size(7 * 86_400, 7 * 86_400) and same_bar_size(300, 300)
    assert not same_bar_size(300, 60) and not same_bar_size(60, 300)
    assert [bar_label(x) for x in (60, 300, 3600, 5400, 86_400, 3 * 86_400, 7 * 86_400, 30,
                                   0.5)] == ["1m", "5m", "1h", "90m", "1d", "1d", "1w", "30s",
                                             "0.5s"]


# -- filters -----------------------------------------------------------------------------------

def test_date_filters_are_inclusive(tmp_path):
    path = write(tmp_path / "bars.parquet", bars())
    panel, report = load_bars(path, start="2020-01-03", end="2020-01-06")
    assert panel.T == 2 and report.rows == 6 and report.first_ts == "2020-01-03"
    panel, _ = load_bars(path, end="2020-01-03")
    assert list(panel.ts) == [day("2020-01-02"), day("2020-01-03")]


def test_a_date_only_end_includes_that_whole_day(tmp_path):
    ts = np.array(["2020-01-02T14:30", "2020-01-02T21:00", "2020-01-03T14:30"], "datetime64[ns]")
    ones = [1.0] * 3
    write_bars(tmp_path / "intraday.parquet", ts, ["A"] * 3, ones, ones, ones, ones, ones)
    panel, report = load_bars(tmp_path / "intraday.parquet", end="2020-01-02")
    assert panel.T == 2 and report.last_ts == "2020-01-02T21:00:00Z"
    assert panel.slice(end_ts="2020-01-02T14:30:00Z").T == 1


def test_symbol_filter_keeps_the_requested_universe(tmp_path):
    path = write(tmp_path / "bars.parquet", bars())
    panel, _ = load_bars(path, symbols=["MSFT", "IBM"], end="2020-01-02")
    assert panel.symbols == ("IBM", "MSFT") and panel.T == 1
    assert not panel.valid[:, 0].any()  # IBM has no bar yet, but stays in the universe
    with pytest.raises(DataError, match="no bars for symbols `GOOG`"):
        load_bars(path, symbols=["GOOG"])


# -- unusable files ----------------------------------------------------------------------------

def test_missing_columns_give_a_clear_error(tmp_path):
    table = pa.table({"Date": pa.array([0], pa.timestamp("s")), "symbol": ["A"], "open": [1.0],
                      "high": [1.0], "low": [1.0]})
    pq.write_table(table, tmp_path / "cols.parquet")
    with pytest.raises(DataError) as e:
        load_bars(tmp_path / "cols.parquet")
    message = str(e.value)
    assert "cols.parquet" in message
    assert "missing columns `ts`, `close`, `volume`" in message
    assert "found `Date`, `symbol`" in message and "rename `Date` to `ts`" in message
    assert "\n" not in message


def test_wrong_column_type_is_an_error(tmp_path):
    table = pa.table({"ts": pa.array([0], pa.timestamp("s")), "symbol": ["A"], "open": [1.0],
                      "high": [1.0], "low": [1.0], "close": ["1.0"], "volume": [1]})
    pq.write_table(table, tmp_path / "types.parquet")
    with pytest.raises(DataError, match="column `close` has type string; expected numbers"):
        load_bars(tmp_path / "types.parquet")


def test_unusable_files_are_data_errors(tmp_path):
    (tmp_path / "bars.csv").write_text("ts,symbol,open\n2020-01-01,A,1\n")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_bars(tmp_path / "bars.csv")
    with pytest.raises(DataError, match="no such file"):
        load_bars(tmp_path / "absent.parquet")
    write_bars(tmp_path / "empty.parquet", np.array([], "datetime64[D]"), [], [], [], [], [], [])
    with pytest.raises(DataError, match="has no rows"):
        load_bars(tmp_path / "empty.parquet")
    with pytest.raises(DataError, match="ISO date"):
        load_bars(write(tmp_path / "bars.parquet", bars()), start="01/02/2020")


def test_a_million_rows_load(tmp_path):
    """The loader's fast path on a large sorted file (its speed: bench/)."""
    T, N = 2_000, 500
    ts = np.repeat(np.arange(T, dtype=np.int64) * DAY, N)
    symbol = np.tile(np.array([f"S{j:03d}" for j in range(N)]), T)
    # a random walk: independent draws would jump 2x between bars, which is a split-like jump
    steps = np.random.default_rng(0).normal(0, 0.01, (T, N))
    close = (15 * np.exp(np.cumsum(steps, axis=0))).ravel()
    write_bars(tmp_path / "big.parquet", ts, symbol, close, close * 1.01, close * 0.99, close,
               close)
    panel, report = load_bars(tmp_path / "big.parquet")
    assert (panel.T, panel.N) == (T, N) and report.ok and panel.valid.all()


# -- bundled data --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["us_tech_daily.parquet", "sp500_2010.parquet",
                                  "aapl_hourly.parquet"])
def test_bundled_files_load_with_finite_prices_on_valid_bars(name):
    panel, report = load_bars(BUNDLED / name)
    assert panel.valid.any()
    for field in ("open", "high", "low", "close", "volume"):
        assert np.isfinite(getattr(panel, field)[panel.valid]).all()
    assert (panel.close[panel.valid] > 0).all()
    assert (BUNDLED / name).stat().st_size < 3_000_000


def test_us_tech_is_clean_adjusted_and_has_a_late_listing():
    panel, report = load_bars(BUNDLED / "us_tech_daily.parquet")
    assert panel.symbols == ("AAPL", "FB", "GOOG", "IBM", "MSFT") and panel.T == 3270
    assert report.ok
    fb = panel.symbols.index("FB")
    assert panel.valid[:, fb].sum() == 196 and not panel.valid[:3074, fb].any()
    returns = panel.close[1:] / panel.close[:-1] - 1
    split = panel.ts.tolist().index(day("2005-02-28"))  # AAPL 2:1
    assert abs(returns[split - 1, 0]) < 0.1


def test_sp500_problems_are_reported():
    panel, report = load_bars(BUNDLED / "sp500_2010.parquet")
    assert (panel.T, panel.N) == (245, 524)
    assert report.counts == {"ohlc": 78, "split": 3} and report.invalid_bars == 78
    sectors = (BUNDLED / "sectors.csv").read_text().splitlines()
    assert sectors[0] == "symbol,sector" and len(sectors) > 400


# -- crowe data check ----------------------------------------------------------------------------

def crowe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CROWE), *args], capture_output=True, text=True, timeout=60)


def test_check_exit_codes_and_json(tmp_path):
    clean = crowe("data", "check", str(BUNDLED / "us_tech_daily.parquet"))
    assert clean.returncode == 0, clean.stderr
    assert "issues: none" in clean.stdout

    bad = write(tmp_path / "bad.parquet", bars(close=(3, -21.0)))
    found = crowe("data", "check", str(bad), "--format", "json")
    assert found.returncode == 1
    doc = json.loads(found.stdout)
    assert {"path", "rows", "symbols", "bars", "issues", "counts", "coverage",
            "invalid_bars", "first_ts", "last_ts"} <= doc.keys()
    assert doc["counts"] == {"bad_price": 1}
    assert doc["issues"][0] == {"kind": "bad_price", "row": 3, "symbol": "AAPL",
                                "ts": "2020-01-03", "message": doc["issues"][0]["message"]}
    assert doc["coverage"]["IBM"]["missing"] == 1

    text = crowe("data", "check", str(bad))
    assert text.returncode == 1 and "row 3  AAPL  2020-01-03  bad_price" in text.stdout

    close_only = write(tmp_path / "close_only.parquet", bars(volume=(7, 0.0)))
    text = crowe("data", "check", str(close_only))
    assert text.returncode == 1 and "issues: 1 no_volume" in text.stdout
    assert "IBM  -  no_volume: volume is 0 or missing on 2 of its 2 bars" in text.stdout
    doc = json.loads(crowe("data", "check", str(close_only), "--format", "json").stdout)
    assert doc["counts"] == {"no_volume": 1} and doc["issues"][0]["row"] is None


@pytest.mark.parametrize("name", ["absent.parquet", "notes.txt"])
def test_check_unusable_file_exits_2_with_one_line(tmp_path, name):
    (tmp_path / "notes.txt").write_text("not bars")
    result = crowe("data", "check", str(tmp_path / name))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_unexpected_errors_print_no_traceback(monkeypatch):
    def boom(path):
        raise RuntimeError("boom")

    import crowe.runtime.data as data_module         # `crowe data check` imports it lazily
    monkeypatch.setattr(data_module, "load_bars", boom)
    result = CliRunner().invoke(cli.main, ["data", "check", "x.parquet"])
    assert result.exit_code == 2
    assert "error: internal error: boom" in result.output
    assert "Traceback" not in result.output


# -- integrity: page checksums and the file's SHA-256 ---------------------------------------------

def _flip_close(path: Path, value: float) -> None:
    """Flip one mantissa bit of the stored float64 `value` in an uncompressed file."""
    import struct
    blob = bytearray(path.read_bytes())
    at = blob.find(struct.pack("<d", value))
    assert at > 0
    blob[at + 5] ^= 0x04
    path.write_bytes(bytes(blob))


def test_a_flipped_bit_in_a_data_page_is_refused(tmp_path):
    path = tmp_path / "bars.parquet"
    write_bars(path, ["2024-01-02", "2024-01-03"], ["AAA", "AAA"], [75.0, 75.0],
               [76.0, 76.0], [74.0, 74.0], [75.05, 75.5], [1e3, 1e3], compression="none")
    _, report = load_bars(path)
    assert report.ok and len(report.sha256) == 64
    _flip_close(path, 75.05)
    with pytest.raises(DataError, match="does not match its checksum"):
        load_bars(path)
    result = CliRunner().invoke(cli.main, ["data", "check", str(path)])
    assert result.exit_code == 2 and "damaged" in result.output
    assert "issues: none" not in result.output and "Traceback" not in result.output


def test_bundled_files_carry_page_checksums(tmp_path):
    """Every bundled bar file is written with page checksums: a bit flipped inside a data page
    is refused (a checksum or decoding error), never read as another price."""
    import shutil
    data = Path(__file__).resolve().parent.parent / "examples" / "data"
    for name in ("us_tech_daily.parquet", "sp500_2010.parquet", "aapl_hourly.parquet"):
        copy = tmp_path / name
        shutil.copy(data / name, copy)
        md = pq.ParquetFile(copy).metadata.row_group(0)
        col = md.column(list(md.to_dict()["columns"][i]["path_in_schema"]
                             for i in range(md.num_columns)).index("close"))
        blob = bytearray(copy.read_bytes())
        blob[col.data_page_offset + col.total_compressed_size // 2] ^= 0x10
        copy.write_bytes(bytes(blob))
        with pytest.raises(DataError, match="damaged|cannot read"):
            load_bars(copy)


def test_data_check_names_the_file_by_its_sha256(tmp_path):
    import hashlib
    path = tmp_path / "bars.parquet"
    write_bars(path, ["2024-01-02"], ["AAA"], [1.0], [1.0], [1.0], [1.0], [1.0])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    result = CliRunner().invoke(cli.main, ["data", "check", str(path), "--format", "json"])
    assert json.loads(result.output)["sha256"] == digest
    assert f"sha256: {digest}" in CliRunner().invoke(cli.main, ["data", "check",
                                                                str(path)]).output
