"""Human-readable summaries of backtests."""
from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

PERCENT = {"total_return", "annualized_return", "volatility", "max_drawdown", "hit_rate",
           "avg_win", "avg_loss", "avg_gross", "avg_net", "fill_rate"}
ORDER = ("total_return", "annualized_return", "volatility", "sharpe", "sortino", "calmar",
         "max_drawdown", "hit_rate", "avg_win", "avg_loss", "turnover", "avg_gross", "avg_net",
         "costs_paid", "avg_shortfall_bps", "fill_rate", "final_equity", "bars")
LABELS = {"total_return": "total return", "annualized_return": "annualised return",
          "max_drawdown": "max drawdown", "hit_rate": "hit rate", "avg_win": "average win",
          "avg_loss": "average loss", "avg_gross": "average gross", "avg_net": "average net",
          "costs_paid": "costs paid", "final_equity": "final equity",
          "avg_shortfall_bps": "average shortfall (bps)", "fill_rate": "fill rate"}


def fmt_metric(name: str, value: float) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if name in PERCENT:
        return f"{value:.2%}"
    if name in ("costs_paid", "final_equity"):
        return f"{value:,.2f}"
    if name == "bars":
        return f"{int(value):,}"
    return f"{value:.3f}"


def render_summary(header: dict, metrics: dict, console: Console) -> None:
    info = Table.grid(padding=(0, 2))
    for k, v in header.items():
        info.add_row(f"[bold]{k}[/bold]", str(v))
    console.print(info)
    table = Table(show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ORDER:
        if name in metrics:
            table.add_row(LABELS.get(name, name), fmt_metric(name, metrics[name]))
    console.print(table)
