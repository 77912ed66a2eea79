"""The HTML page of `crowe report` (`crowe.runtime.htmlreport` reads the results)."""
from __future__ import annotations

import math

import numpy as np

from . import charts
from .htmlreport import ROLLING, TOP_REASONS, Results, esc, monthly_returns, reason_counts, \
    returns, rolling_stats
from .manifest import rerun_command
from .metrics import drawdown_series
from .report import fmt_metric
from .trades import round_trips

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
margin:0;background:#f6f6f4}
main{max-width:1000px;margin:0 auto;padding:18px 24px 40px;background:#fff}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#ddd;padding-bottom:4px}.sub{color:#666;margin:0 0 12px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{padding:3px 8px;text-align:right;border-bottom:1px solid #eee}
th{font-weight:600;color:#444}td.l,th.l{text-align:left}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 32px}
.kv td:first-child{text-align:left;color:#555}.kv td{text-align:left}
code{font:12px ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
svg.chart{width:100%;height:auto;display:block}
.note{background:#fff6e0;border-left:3px solid #f0b429;padding:6px 10px}
input.toggle{margin-left:12px}.scale-log{display:none}
#log:checked~.charts .scale-lin{display:none}#log:checked~.charts .scale-log{display:block}
.months td{min-width:44px}
"""


def render(res: Results, bench: dict | None, note: str | None) -> str:
    m, run = res.metrics, res.run
    eq = res.equity
    ts, equity = eq["ts"], eq["equity"].astype(float)
    parts = [f"<h1>{esc(run['policy']['name'])} {esc(run['policy']['version'])}</h1>",
             f"<p class=sub>backtest from {esc(run['period']['start'])} to "
             f"{esc(run['period']['end'])}, {int(run['period']['bars']):,} bars, "
             f"{len(run['data']['symbols'])} instruments</p>"]
    if note:
        parts.append(f"<p class=note>{esc(note)}</p>")
    parts += [_summary(m), _identity(run), _equity_section(ts, equity, bench),
              _risk_section(ts, equity, run, bench), _monthly(ts, equity),
              _exposure_section(res, ts, equity, run), _trades_section(res, m),
              _states_section(ts, eq["trading_state"]), _reasons_section(res)]
    body = "\n".join(parts)
    title = f"{run['policy']['name']} {run['policy']['version']}: backtest report"
    return (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content=\"width=device-width,initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n"
            f"<body><main>\n{body}\n</main></body></html>\n")


def _kv(rows) -> str:
    cells = "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table class=kv>{cells}</table>"


SUMMARY = (("total_return", "total return"), ("annualized_return", "annualised return"),
           ("volatility", "volatility"), ("sharpe", "Sharpe"), ("sortino", "Sortino"),
           ("calmar", "Calmar"), ("max_drawdown", "max drawdown"),
           ("hit_rate", "hit rate (per bar)"), ("avg_win", "average winning bar"),
           ("avg_loss", "average losing bar"), ("turnover", "turnover (annual)"),
           ("avg_gross", "average gross"), ("avg_net", "average net"),
           ("costs_paid", "costs paid"), ("final_equity", "final equity"))


def _summary(m: dict) -> str:
    rows = [(label, esc(fmt_metric(k, _num(m.get(k))))) for k, label in SUMMARY]
    half = (len(rows) + 1) // 2
    return (f"<h2>Performance</h2><div class=grid>{_kv(rows[:half])}{_kv(rows[half:])}</div>")


def _identity(run: dict) -> str:
    pol, data, period = run["policy"], run["data"], run["period"]
    rows = [("policy", esc(f"{pol['name']} {pol['version']}")),
            ("source", _code(pol.get("source") or "(from the artifact)")),
            ("source SHA-256", _code(pol.get("source_sha256"))),
            ("IR SHA-256", _code(pol.get("ir_sha256"))),
            ("artifact", _code(pol.get("artifact"))),
            ("artifact digest", _code(pol.get("artifact_digest"))),
            ("parameters", esc(", ".join(f"{k} = {v:g}" for k, v in run["params"].items())
                               or "none")),
            ("initial capital", esc(f"{run['cash']:,.2f}")),
            ("data", _code(data["path"])), ("data SHA-256", _code(data["sha256"])),
            ("period", esc(f"{period['start']} to {period['end']} "
                           f"({int(period['bars']):,} bars counted)")),
            ("warm-up", esc(f"{period['warmup']} bars; {period['warmup_bars_before_start']:,}"
                            f" bars from {period['first_bar']} simulated before the start, "
                            "not traded")),
            ("command", _code(run["command"]["line"])),
            ("to repeat it", _code(rerun_command(run))),
            ("versions", esc(", ".join(f"{k} {v}" for k, v in run["versions"].items()))),
            ("written", esc(run.get("created", "")))]
    return "<h2>Run</h2>" + _kv(rows)


def _code(value) -> str:
    return "&mdash;" if value is None else f"<code>{esc(value)}</code>"


def _equity_section(ts, equity, bench) -> str:
    b = None if bench is None else bench["equity"]
    label = "" if bench is None else bench["label"]
    lin = charts.equity(ts, equity, b, label)
    log = charts.equity(ts, equity, b, label, log=True)
    return ("<h2>Equity</h2><input type=radio name=scale id=lin checked class=toggle>"
            "<label for=lin>linear</label> <input type=radio name=scale id=log class=toggle>"
            "<label for=log>log scale</label>"
            f"<div class=charts><div class=scale-lin>{lin}</div>"
            f"<div class=scale-log>{log}</div></div>"
            + _benchmark_table(equity, b, label))


def _benchmark_table(equity, bench, label) -> str:
    if bench is None:
        return ""
    rows = []
    for name, curve in (("strategy", equity), (label, bench)):
        total = curve[-1] / curve[0] - 1.0
        mdd = float(np.nanmax(drawdown_series(curve)))
        rows.append(f"<tr><td class=l>{esc(name)}</td><td>{total:.2%}</td><td>{mdd:.2%}</td>"
                    "</tr>")
    return ("<table><tr><th class=l></th><th>total return</th><th>max drawdown</th></tr>"
            + "".join(rows) + "</table>")


def _risk_section(ts, equity, run, bench) -> str:
    bpy = float(run["period"].get("bars_per_year", 252.0))
    sharpe, vol = rolling_stats(returns(equity), ROLLING, bpy)
    bench_dd = None if bench is None else drawdown_series(bench["equity"])
    return ("<h2>Drawdown</h2>" + charts.drawdown(ts, drawdown_series(equity), bench_dd)
            + f"<h2>Rolling Sharpe and volatility</h2><p class=sub>over {ROLLING} bars, "
              f"annualised with {bpy:g} bars a year</p>" + charts.rolling(ts, sharpe, vol, ROLLING))


def _monthly(ts, equity) -> str:
    table = monthly_returns(ts, equity)
    names = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
             "Year")
    head = "<tr><th class=l></th>" + "".join(f"<th>{n}</th>" for n in names) + "</tr>"
    rows = []
    for year in sorted(table):
        cells = "".join(_month_cell(table[year].get(mo)) for mo in range(1, 14))
        rows.append(f"<tr><th class=l>{year}</th>{cells}</tr>")
    return "<h2>Monthly returns</h2><table class=months>" + head + "".join(rows) + "</table>"


def _month_cell(value) -> str:
    if value is None or not math.isfinite(value):
        return "<td></td>"
    if abs(value) < 0.0005:                   # shows as 0.0%: no colour, no sign
        return "<td>0.0%</td>"
    strength = min(abs(value) / 0.10, 1.0)
    colour = (46, 125, 50) if value > 0 else (184, 50, 42)
    bg = f"rgba({colour[0]},{colour[1]},{colour[2]},{0.08 + 0.5 * strength:.2f})"
    return f"<td style=\"background:{bg}\">{value:.1%}</td>"


def _exposure_section(res: Results, ts, equity, run) -> str:
    eq = res.equity
    bpy = float(run["period"].get("bars_per_year", 252.0))
    prev = np.r_[equity[:1], equity[:-1]]
    with np.errstate(all="ignore"):
        per_bar = np.where(prev > 0, eq["traded_notional"] / prev, np.nan)
    kernel = np.ones(ROLLING) / ROLLING
    turnover = np.full(per_bar.size, np.nan)
    if per_bar.size >= ROLLING:
        turnover[ROLLING - 1:] = np.convolve(np.nan_to_num(per_bar), kernel, "valid") * bpy
    trading, borrow = eq["costs"].astype(float), eq["borrow"].astype(float)
    rows = [("commission, spread and impact", f"{trading.sum():,.2f}"),
            ("borrow and financing", f"{borrow.sum():,.2f}"),
            ("total", f"{trading.sum() + borrow.sum():,.2f}"),
            ("as a share of the initial capital",
             f"{(trading.sum() + borrow.sum()) / equity[0]:.2%}" if equity[0] > 0 else "n/a"),
            ("traded notional", f"{eq['traded_notional'].sum():,.2f}")]
    return ("<h2>Exposure and turnover</h2>" + charts.exposure(ts, eq["gross"], eq["net"],
                                                               turnover, ROLLING)
            + "<h2>Costs</h2>" + charts.costs(ts, trading, borrow) + _kv(rows))


def _trades_section(res: Results, m: dict) -> str:
    trades = report_trades(res)
    closed = [t for t in trades if t.closed]
    rows = [("closed trades", f"{int(_num(m.get('trades'), 0)):,}"),
            ("still open at the end", f"{int(_num(m.get('open_trades'), 0)):,}"),
            ("win rate (per trade)", _pct(m.get("trade_win_rate"))),
            ("average win", _pct(m.get("trade_avg_win"))),
            ("average loss", _pct(m.get("trade_avg_loss"))),
            ("best trade", _pct(m.get("trade_best"))),
            ("worst trade", _pct(m.get("trade_worst"))),
            ("average holding time", _bars(m.get("trade_avg_bars"))),
            ("profit factor", _fixed(m.get("profit_factor")))]
    text = ("<h2>Trades</h2><p class=sub>a trade is one instrument's round trip from flat to "
            "flat; returns are net of trading costs, on the capital the trade put to work</p>"
            + _kv(rows))
    if closed:
        text += charts.trade_returns([t.ret for t in closed])
        text += _trade_table(closed)
    return text


def report_trades(res: Results):
    """The round trips of the results' fills (the same trades as the metrics count)."""
    f, symbols = res.fills, list(res.run["data"]["symbols"])
    if not f.get("ts", np.array([])).size:
        return []
    bar = np.searchsorted(res.equity["ts"], f["ts"])
    index = {s: i for i, s in enumerate(symbols)}
    inst = np.array([index[s] for s in f["symbol"]])
    return round_trips(bar, inst, f["qty"], f["price"], f["cost"], symbols)


def _trade_table(closed) -> str:
    ranked = sorted(closed, key=lambda t: t.pnl)
    pick = ranked[-5:][::-1] + ([] if len(ranked) <= 5 else ranked[:min(5, len(ranked) - 5)])
    rows = "".join(
        f"<tr><td class=l>{esc(t.symbol)}</td><td class=l>{'long' if t.side > 0 else 'short'}"
        f"</td><td>{t.bars}</td><td>{t.pnl:,.2f}</td><td>{t.ret:.2%}</td></tr>" for t in pick)
    return ("<p class=sub>the best and the worst trades</p><table><tr><th class=l>symbol</th>"
            "<th class=l>side</th><th>bars held</th><th>P&amp;L</th><th>return</th></tr>"
            + rows + "</table>")


def _states_section(ts, states) -> str:
    names, counts = np.unique(np.asarray(states, object).astype(str), return_counts=True)
    rows = [(n, f"{c:,} bars ({c / max(len(states), 1):.1%})") for n, c in zip(names, counts)]
    return "<h2>Trading state</h2>" + charts.states(ts, states) + _kv(rows)


def _reasons_section(res: Results) -> str:
    found = reason_counts(res)
    if not found:
        return "<h2>Reasons</h2><p>no reason was set on any bar</p>"
    top = found[:TOP_REASONS]
    rows = "".join(f"<tr><td class=l><code>{esc(n)}</code></td><td class=l>{esc(k)}</td>"
                   f"<td>{i:,}</td><td>{b:,}</td></tr>" for n, k, i, b in top)
    return ("<h2>Reasons that bound most often</h2><p class=sub>gates that closed, caps and "
            "limits that bound, rules that fired: instrument-bars with each reason set, and "
            "bars on which it was set for some instrument or the whole book</p>"
            + charts.reasons([n for n, *_ in top], [i for _, _, i, _ in top])
            + "<table><tr><th class=l>reason</th><th class=l>kind</th>"
              "<th>instrument-bars</th><th>bars</th></tr>" + rows + "</table>")


def _num(value, default=math.nan) -> float:
    return default if value is None else float(value)


def _pct(value) -> str:
    v = _num(value)
    return f"{v:.2%}" if math.isfinite(v) else "n/a"


def _fixed(value) -> str:
    v = _num(value)
    return f"{v:.2f}" if math.isfinite(v) else "n/a"


def _bars(value) -> str:
    v = _num(value)
    return f"{v:.1f} bars" if math.isfinite(v) else "n/a"
