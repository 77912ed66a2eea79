"""The real market data bundled with the project (see `examples/data/README.md`)."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

DATA_DIR = Path(__file__).resolve().parent.parent / "examples" / "data"
# In order of preference: the longest history first.
FILES = ("us_tech_daily.parquet", "sp500_2010.parquet", "aapl_hourly.parquet")
# The bar size of each file that is not daily, in seconds.
BAR_SECONDS = {"aapl_hourly.parquet": 3600}


def bundled_files(bar_seconds: int | None = None) -> list[Path]:
    """The bundled bar files (of one bar size, when given)."""
    return [DATA_DIR / f for f in FILES if (DATA_DIR / f).is_file() and
            (bar_seconds is None or BAR_SECONDS.get(f, 86_400) == bar_seconds)]


def symbols_in(path: Path) -> set[str]:
    return set(pq.read_table(path, columns=["symbol"]).column("symbol").unique().to_pylist())


def default_data(symbols, bar_seconds: int = 86_400) -> Path | None:
    """The first bundled file of the bar size holding every listed symbol (any file when the
    policy takes its universe from the data), or None when there is none."""
    for path in bundled_files(bar_seconds):
        if symbols == "from_data" or set(symbols) <= symbols_in(path):
            return path
    return None


class UniverseError(Exception):
    """A `from_data` universe whose bar file cannot be found or read."""


def universe_symbols(policy, data: str | None) -> tuple[tuple[str, ...], str]:
    """The universe the step is bound to, in the order the backtest uses (sorted), and where
    it came from: the policy's list, or the symbols of a bar file."""
    listed = policy.spec.universe.symbols
    if listed != "from_data":
        return tuple(sorted(set(listed))), "policy"
    from .data import DataError, load_bars
    path = data if data is not None else default_data("from_data", int(policy.bar_seconds))
    if path is None:
        raise UniverseError("the universe is `from_data` and no bundled data file exists; "
                            "pass one with --data")
    try:
        panel, _ = load_bars(path)
    except DataError as e:
        raise UniverseError(str(e)) from None
    return tuple(panel.symbols), "data"
