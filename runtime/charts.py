"""The report's charts: matplotlib figures rendered to inline SVG strings.

Each function takes plain arrays (``ts`` as datetime64) and returns one ``<svg>`` element,
without the XML prolog, ready to be written into an HTML page. Text stays text
(``svg.fonttype: none``) so the files are small and crisp at any zoom; each chart has its own
hash salt, so the ids of two charts on one page never collide; and no date is written into the
SVG, so the same results render to the same bytes.
"""
from __future__ import annotations

import io
import re

import numpy as np

WIDTH = 9.0            # inches; the page scales the SVG to its column
BLUE, GREY, RED, GREEN = "#1f5fa8", "#7a7a7a", "#b8322a", "#2e7d32"
STATE_COLOURS = {"ACTIVE": "#4caf50", "REDUCING": "#f0b429", "HALTED": "#e07a1f",
                 "FLATTENING": "#b8322a"}


def _figure(rows: int = 1, height: float = 3.0, left: float = 0.9, bottom: float = 0.4,
            dates: bool = True):
    """Margins in inches, fixed rather than computed by a layout engine (which would double
    the time to draw a chart)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(WIDTH, height))
    fig.subplots_adjust(left=left / WIDTH, right=1 - 0.15 / WIDTH, top=1 - 0.12 / height,
                        bottom=bottom / height, hspace=0.12 * rows)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    if dates:
        import matplotlib.dates as mdates
        locator = mdates.AutoDateLocator()
        axes[-1].xaxis.set_major_locator(locator)
        axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for ax in axes:
        ax.grid(True, color="#e5e5e5", linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes


def _svg(fig, name: str) -> str:
    import matplotlib
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"crowe-{name}",
                                "path.simplify": True}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"<svg ", f'<svg class="chart" data-chart="{name}" ', text, count=1)


def _thin(ts, y, most: int = 1500):
    """At most about ``most`` points: each bucket of bars keeps its highest value (a drawdown
    keeps its deepest point), so the shape a reader sees is the same at a fraction of the
    size."""
    ts, y = np.asarray(ts), np.asarray(y, float)
    k = -(-y.size // most)
    if k <= 1:
        return ts, y
    n = y.size // k * k
    head = np.fmax.reduce(y[:n].reshape(-1, k), axis=1)
    return np.r_[ts[:n:k], ts[n:]], np.r_[head, y[n:]]


def _money(ax) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _percent(ax, axis: str = "y") -> None:
    from matplotlib.ticker import PercentFormatter
    getattr(ax, f"{axis}axis").set_major_formatter(PercentFormatter(1.0))


def equity(ts, equity_, benchmark=None, label: str = "", log: bool = False) -> str:
    """Equity and the benchmark scaled to the same starting capital (log scale when asked)."""
    fig, (ax,) = _figure(height=3.4)
    ax.plot(ts, equity_, color=BLUE, linewidth=1.2, label="strategy")
    if benchmark is not None:
        ax.plot(ts, benchmark, color=GREY, linewidth=1.0, label=f"benchmark: {label}")
    if log:
        ax.set_yscale("log")
    _money(ax)
    ax.set_ylabel("equity" + (" (log scale)" if log else ""))
    ax.legend(loc="upper left", frameon=False)
    return _svg(fig, "equity-log" if log else "equity")


def drawdown(ts, dd, bench_dd=None) -> str:
    """Underwater curve: the drawdown from the running peak, below zero."""
    fig, (ax,) = _figure(height=2.4)
    x, y = _thin(ts, dd)
    ax.fill_between(x, -y, 0, color=RED, alpha=0.35, linewidth=0, label="strategy")
    ax.plot(x, -y, color=RED, linewidth=0.8)
    if bench_dd is not None:
        bx, by = _thin(ts, bench_dd)
        ax.plot(bx, -by, color=GREY, linewidth=0.8, label="benchmark")
    ax.set_ylabel("drawdown")
    _percent(ax)
    ax.legend(loc="lower left", frameon=False)
    return _svg(fig, "drawdown")


def rolling(ts, sharpe, vol, window: int) -> str:
    """Rolling Sharpe ratio and volatility (annualised) over ``window`` bars."""
    fig, (a, b) = _figure(2, height=3.6)
    a.plot(ts, sharpe, color=BLUE, linewidth=1.0)
    a.axhline(0, color=GREY, linewidth=0.6)
    a.set_ylabel(f"Sharpe ({window} bars)")
    b.plot(ts, vol, color=BLUE, linewidth=1.0)
    b.set_ylabel(f"volatility ({window} bars)")
    if len(ts) > 1:
        b.set_xlim(ts[0], ts[-1])            # also when the window is longer than the run
    _percent(b)
    return _svg(fig, "rolling")


def exposure(ts, gross, net, turnover, window: int) -> str:
    """Gross and net exposure (fractions of equity) and the rolling annualised turnover."""
    fig, (a, b) = _figure(2, height=3.6)
    a.plot(ts, gross, color=BLUE, linewidth=1.0, label="gross")
    a.plot(ts, net, color=GREEN, linewidth=1.0, label="net")
    a.axhline(0, color=GREY, linewidth=0.6)
    a.set_ylabel("exposure")
    a.legend(loc="upper left", frameon=False)
    _percent(a)
    b.plot(ts, turnover, color=GREY, linewidth=1.0)
    b.set_ylabel(f"turnover ({window} bars, annualised)")
    _percent(b)
    return _svg(fig, "exposure")


def costs(ts, trading, borrow) -> str:
    """Cumulative costs in currency: trading (commission, spread, impact) and borrow."""
    fig, (ax,) = _figure(height=2.4)
    ax.plot(ts, np.cumsum(trading), color=RED, linewidth=1.0,
            label="commission, spread and impact")
    ax.plot(ts, np.cumsum(borrow), color=GREY, linewidth=1.0, label="borrow and financing")
    ax.set_ylabel("cumulative costs")
    _money(ax)
    ax.legend(loc="upper left", frameon=False)
    return _svg(fig, "costs")


def states(ts, names) -> str:
    """The trading state of each bar as coloured spans on one line."""
    import matplotlib.dates as mdates
    fig, (ax,) = _figure(height=1.3, bottom=0.75)
    x = mdates.date2num(np.asarray(ts, "datetime64[s]"))
    step = np.median(np.diff(x)) if x.size > 1 else 1.0
    edges = np.r_[x, x[-1] + step] if x.size else x
    names = np.asarray(names, object)
    change = np.flatnonzero(np.r_[True, names[1:] != names[:-1]]) if names.size else []
    for k, i in enumerate(change):
        j = change[k + 1] if k + 1 < len(change) else names.size
        colour = STATE_COLOURS.get(str(names[i]), GREY)
        ax.broken_barh([(edges[i], edges[j] - edges[i])], (0, 1), color=colour, linewidth=0)
    for state, colour in STATE_COLOURS.items():
        ax.bar([np.nan], [np.nan], color=colour, label=state)
    ax.set_yticks([])
    ax.grid(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4, frameon=False)
    return _svg(fig, "states")


def reasons(names, counts) -> str:
    """A horizontal bar for each reason: how many instrument-bars it was set on."""
    longest = max((len(n) for n in names), default=1)
    fig, (ax,) = _figure(height=0.7 + 0.26 * max(len(names), 1), left=0.3 + 0.075 * longest,
                         bottom=0.5, dates=False)
    y = np.arange(len(names))[::-1]
    ax.barh(y, counts, color=BLUE)
    ax.set_yticks(y, names)
    ax.set_xlabel("instrument-bars with the reason set")
    ax.grid(True, axis="x")
    ax.grid(False, axis="y")
    return _svg(fig, "reasons")


def trade_returns(returns) -> str:
    """A histogram of closed trades' returns on the capital they put to work."""
    fig, (ax,) = _figure(height=2.4, bottom=0.5, dates=False)
    r = np.asarray(returns, float)
    edges = np.histogram_bin_edges(r, bins=min(40, max(5, int(np.sqrt(r.size)) * 2)))
    ax.hist([r[r > 0], r[r <= 0]], bins=edges, stacked=True, color=[GREEN, RED],
            label=["winning trades", "losing trades"])
    ax.set_xlabel("trade return")
    ax.set_ylabel("trades")
    _percent(ax, "x")
    ax.legend(loc="upper right", frameon=False)
    return _svg(fig, "trades")
