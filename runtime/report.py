"""Human-readable summaries of backtests."""
from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

PERCENT = {"total_return", "annualized_return", "volatility", "max_drawdown", "hit_rate",
           "avg_win", "avg_loss", "avg_gross", "avg_net", "trade_win_rate", "trade_avg_win",
           "trade_avg_loss", "trade_best", "trade_worst", "fill_rate"}
ORDER = ("total_return", "annualized_return", "volatility", "sharpe", "sortino", "calmar",
         "max_drawdown", "hit_rate", "avg_win", "avg_loss", "turnover", "avg_gross", "avg_net",
         "costs_paid", "avg_shortfall_bps", "fill_rate", "final_equity", "bars", "trades",
         "trade_win_rate", "trade_avg_win", "trade_avg_loss", "trade_best", "trade_worst",
         "trade_avg_bars", "profit_factor")
LABELS = {"total_return": "total return", "annualized_return": "annualised return",
          "max_drawdown": "max drawdown", "hit_rate": "hit rate (per bar)",
          "avg_win": "average winning bar", "avg_loss": "average losing bar",
          "avg_gross": "average gross", "avg_net": "average net",
          "costs_paid": "costs paid", "final_equity": "final equity",
          "trades": "trades (closed)", "trade_win_rate": "win rate (per trade)",
          "trade_avg_win": "average winning trade", "trade_avg_loss": "average losing trade",
          "trade_best": "best trade", "trade_worst": "worst trade",
          "trade_avg_bars": "average bars held", "profit_factor": "profit factor",
          "avg_shortfall_bps": "average shortfall (bps)", "fill_rate": "fill rate"}
COUNTS = {"bars", "trades"}


def fmt_metric(name: str, value: float) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if name in PERCENT:
        return f"{value:.2%}"
    if name in ("costs_paid", "final_equity"):
        return f"{value:,.2f}"
    if name in COUNTS:
        return f"{int(value):,}"
    if name == "trade_avg_bars":
        return f"{value:.1f}"
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
