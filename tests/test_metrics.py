import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crowe.runtime import metrics
from crowe.runtime.metrics import KEYS, compute_metrics, drawdown_series

NAN = float("nan")


def zeros(n):
    return [0.0] * n


def run(equity, bars_per_year=252.0, **series):
    n = len(equity)
    args = {k: series.get(k, zeros(n)) for k in ("gross", "net", "traded_notional", "costs")}
    return compute_metrics(equity, **args, bars_per_year=bars_per_year)


# -- an independent implementation: plain Python over lists --------------------------------------

def reference(equity, gross, net, traded, costs, bpy):
    rets = [equity[i] / equity[i - 1] - 1 for i in range(1, len(equity))]
    n = len(rets)
    mean = sum(rets) / n
    var = sum((x - mean) ** 2 for x in rets) / (n - 1)
    down = math.sqrt(sum(min(x, 0.0) ** 2 for x in rets) / n)
    peak, worst = equity[0], 0.0
    for x in equity:
        peak = max(peak, x)
        worst = max(worst, (peak - x) / peak)
    years = n / bpy
    cagr = math.exp(math.log(equity[-1] / equity[0]) / years) - 1
    wins = [x for x in rets if x > 0]
    losses = [x for x in rets if x < 0]
    prev = [equity[0]] + list(equity[:-1])
    return dict(
        total_return=(equity[-1] - equity[0]) / equity[0], annualized_return=cagr,
        volatility=math.sqrt(var * bpy), sharpe=mean / math.sqrt(var) * math.sqrt(bpy),
        sortino=mean / down * math.sqrt(bpy), calmar=cagr / worst, max_drawdown=worst,
        hit_rate=len(wins) / (len(wins) + len(losses)), avg_win=sum(wins) / len(wins),
        avg_loss=sum(losses) / len(losses),
        turnover=sum(t / p for t, p in zip(traded, prev)) / len(traded) * bpy,
        avg_gross=sum(g / e for g, e in zip(gross, equity)) / len(equity),
        avg_net=sum(x / e for x, e in zip(net, equity)) / len(equity),
        costs_paid=math.fsum(costs), final_equity=equity[-1], bars=len(equity))


def equity_curves():
    steps = st.floats(-0.2, 0.25).filter(lambda x: abs(x) > 1e-6)
    return st.lists(steps, min_size=3, max_size=40).filter(
        lambda r: any(x < 0 for x in r) and any(x > 0 for x in r)).map(_compound)


def _compound(rets):
    out = [1e6]
    for r in rets:
        out.append(out[-1] * (1 + r))
    return out


@settings(max_examples=150, deadline=None)
@given(equity_curves(), st.data(), st.sampled_from([252.0, 52.0, 12.0]))
def test_against_the_reference(equity, data, bpy):
    n = len(equity)
    series = {k: data.draw(st.lists(st.floats(lo, 1e7), min_size=n, max_size=n))
              for k, lo in (("gross", 0.0), ("net", -1e7), ("traded_notional", 0.0), ("costs", 0.0))}
    got = run(equity, bpy, **series)
    want = reference(equity, series["gross"], series["net"], series["traded_notional"],
                     series["costs"], bpy)
    assert list(got) == list(KEYS)
    for key in KEYS:
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key


# -- hand-computed ---------------------------------------------------------------------------------

def test_small_hand_computed_case():
    # returns 0.1, -0.1, 21/99; peak 110 -> trough 99 is a 10% drawdown; 3 bars is one year here
    m = run([100.0, 110.0, 99.0, 120.0], bars_per_year=3.0,
            gross=[0.0, 55.0, 99.0, 60.0], net=[0.0, 55.0, -49.5, 0.0],
            traded_notional=[0.0, 50.0, 154.0, 99.0], costs=[0.0, 0.5, 0.25, 0.25])
    r = [0.1, -0.1, 21 / 99]
    mean, sd = sum(r) / 3, math.sqrt(sum((x - sum(r) / 3) ** 2 for x in r) / 2)
    expect = dict(total_return=0.2, annualized_return=0.2, max_drawdown=0.1, calmar=2.0,
                  volatility=sd * math.sqrt(3), sharpe=mean / sd * math.sqrt(3),
                  sortino=mean / math.sqrt(0.01 / 3) * math.sqrt(3), hit_rate=2 / 3,
                  avg_win=(0.1 + 21 / 99) / 2, avg_loss=-0.1,
                  turnover=(0.0 + 0.5 + 1.4 + 1.0) / 4 * 3,  # 50/100, 154/110, 99/99
                  avg_gross=(0.0 + 0.5 + 1.0 + 0.5) / 4, avg_net=(0.0 + 0.5 - 0.5 + 0.0) / 4,
                  costs_paid=1.0, final_equity=120.0, bars=4.0)
    for key, value in expect.items():
        assert m[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_drawdown_series_hand_computed():
    dd = drawdown_series([100.0, 120.0, 90.0, 60.0, 130.0, 117.0])
    np.testing.assert_allclose(dd, [0.0, 0.0, 0.25, 0.5, 0.0, 0.1], rtol=1e-14, atol=1e-15)
    assert drawdown_series([]).shape == (0,)


def test_drawdown_series_edge_cases():
    dd = drawdown_series([100.0, NAN, 50.0, -10.0, math.inf])
    assert dd[0] == 0.0 and math.isnan(dd[1]) and dd[2] == 0.5 and math.isnan(dd[4])
    assert dd[3] == pytest.approx(1.1)  # below zero equity: more than 100% down
    assert np.isnan(drawdown_series([-5.0, -1.0])).all()  # no positive peak


def test_doctests():
    assert doctest.testmod(metrics).failed == 0


# -- degenerate cases ------------------------------------------------------------------------------

def test_empty_series():
    m = run([])
    assert m["bars"] == 0.0 and m["costs_paid"] == 0.0
    assert all(math.isnan(m[k]) for k in KEYS if k not in ("bars", "costs_paid"))


def test_single_bar():
    m = run([100.0], gross=[50.0], traded_notional=[20.0], costs=[1.0])
    assert (m["total_return"], m["max_drawdown"], m["final_equity"], m["bars"]) == (0, 0, 100, 1)
    assert (m["avg_gross"], m["turnover"], m["costs_paid"]) == (0.5, 0.2 * 252, 1.0)
    for key in ("annualized_return", "volatility", "sharpe", "sortino", "calmar", "hit_rate",
                "avg_win", "avg_loss"):
        assert math.isnan(m[key]), key


def test_flat_equity_has_zero_ratios():
    m = run([100.0] * 5)
    for key in ("total_return", "annualized_return", "volatility", "sharpe", "sortino", "calmar",
                "max_drawdown"):
        assert m[key] == 0.0, key
    assert all(math.isnan(m[k]) for k in ("hit_rate", "avg_win", "avg_loss"))


def test_riskless_growth_has_undefined_ratios():
    m = run([100.0 * 1.01 ** i for i in range(6)])  # constant return: std is rounding noise
    assert m["volatility"] < 1e-12
    assert math.isnan(m["sharpe"]) and math.isnan(m["sortino"]) and math.isnan(m["calmar"])
    assert (m["max_drawdown"], m["hit_rate"]) == (0.0, 1.0) and math.isnan(m["avg_loss"])


def test_drawdown_noise_is_no_drawdown():
    assert math.isnan(run([100.0, 110.0, 110.0 * (1 - 1e-15), 120.0])["calmar"])
    assert run([100.0, 110.0, 110.0 * (1 - 1e-9), 120.0])["calmar"] > 1e6


def test_no_losing_bar_with_volatility():
    m = run([100.0, 101.0, 105.0, 106.0])
    assert m["sharpe"] > 0 and math.isnan(m["sortino"]) and math.isnan(m["calmar"])


def test_steady_decline_has_defined_negative_ratios():
    m = run([100.0, 90.0, 81.0, 70.0])
    assert m["sharpe"] < 0 and m["sortino"] < 0 and m["calmar"] < 0
    assert m["hit_rate"] == 0.0 and math.isnan(m["avg_win"])


def test_ruin():
    m = run([100.0, 50.0, 0.0, 0.0], traded_notional=[0.0, 10.0, 10.0, 10.0])
    assert (m["total_return"], m["annualized_return"], m["max_drawdown"]) == (-1.0, -1.0, 1.0)
    assert m["avg_loss"] == -0.75 and m["hit_rate"] == 0.0  # returns -0.5, -1; then undefined
    assert m["turnover"] == pytest.approx((0.1 + 0.2) / 3 * 252)  # bars after ruin left out
    assert all(math.isfinite(m[k]) or math.isnan(m[k]) for k in KEYS)


def test_non_positive_start():
    m = run([0.0, 10.0, 20.0])
    assert math.isnan(m["total_return"]) and math.isnan(m["annualized_return"])
    assert m["hit_rate"] == 1.0 and m["avg_win"] == 1.0  # only the 10 -> 20 bar has a return


def test_missing_equity_propagates_nan():
    m = run([100.0, NAN, 120.0, math.inf])
    assert math.isnan(m["final_equity"]) and math.isnan(m["total_return"])
    for key in ("volatility", "sharpe", "sortino", "max_drawdown", "hit_rate", "turnover"):
        assert math.isnan(m[key]), key


def test_overflowing_growth():
    m = run([1.0, 1e300])
    assert m["annualized_return"] == math.inf and math.isnan(m["calmar"])  # no drawdown
    assert m["total_return"] == pytest.approx(1e300)
    assert run([1.0, 1e300, 0.5e300])["calmar"] == math.inf


@pytest.mark.parametrize("bad", [
    dict(equity=[1.0, 2.0], gross=[0.0]), dict(equity=[[1.0, 2.0]], gross=[[0.0, 0.0]]),
])
def test_shape_errors(bad):
    args = dict(equity=[1.0], gross=[0.0], net=[0.0], traded_notional=[0.0], costs=[0.0])
    args.update(bad)
    with pytest.raises(ValueError, match="one-dimensional"):
        compute_metrics(**args)


@pytest.mark.parametrize("bpy", [0.0, -1.0, NAN, math.inf, "252"])
def test_bars_per_year_errors(bpy):
    with pytest.raises(ValueError, match="bars_per_year"):
        run([1.0, 2.0], bars_per_year=bpy)
