"""The real market data bundled with the project (see `examples/data/README.md`)."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

DATA_DIR = Path(__file__).resolve().parent.parent / "examples" / "data"
# In order of preference: the longest history first.
FILES = ("us_tech_daily.parquet", "sp500_2010.parquet")


def bundled_files() -> list[Path]:
    return [DATA_DIR / f for f in FILES if (DATA_DIR / f).is_file()]


def symbols_in(path: Path) -> set[str]:
    return set(pq.read_table(path, columns=["symbol"]).column("symbol").unique().to_pylist())


def default_data(symbols) -> Path | None:
    """The first bundled file holding every listed symbol (any file when the policy takes its
    universe from the data), or None when there is none."""
    for path in bundled_files():
        if symbols == "from_data" or set(symbols) <= symbols_in(path):
            return path
    return None
