"""Target weights written as an expression (`sizing: {method: weight}`), and the views of the book
an expression can read (`position`, `weight`, `bars_held`, `entry_price`), through compiled
backtests.

The references are computed from what the backtest reports (positions, fills, equity), by a
numpy transcription of the documented rules: the values the step handed to the expressions are
then seen through the decisions they drive (a rule's reason bit, a gate's, the target weights).
"""
from __future__ import annotations

import numpy as np
import pytest

import simkit
from crowe.dsl.policy import check_text

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
T = 120


@pytest.fixture(scope="module")
def panel():
    rng = np.random.default_rng(11)
    close = simkit.random_walk(rng, T, len(SYMBOLS), vol=0.02)
    invalid = rng.random(close.shape) < 0.03
    return simkit.ohlc_panel(rng, close, invalid=invalid, symbols=SYMBOLS)


def holdings(pos, fq, fp):
    """bars_held and entry_price after each bar's fills: an open or a flip starts at the fill
    (0 bars, the fill's price), an add averages in by shares, anything else keeps the entry and
    counts one more bar; flat is 0 bars and no entry."""
    held = np.zeros(pos.shape, int)
    entry = np.full(pos.shape, np.nan)
    for t in range(pos.shape[0]):
        for i in range(pos.shape[1]):
            before = pos[t - 1, i] if t else 0.0
            after, h0, e0 = pos[t, i], held[t - 1, i] if t else 0, entry[t - 1, i] if t else 0
            if after == 0:
                continue
            if before == 0 or np.sign(before) != np.sign(after):
                entry[t, i] = fp[t, i]
            elif abs(after) > abs(before):
                held[t, i] = h0 + 1
                entry[t, i] = (abs(before) * e0 + abs(fq[t, i]) * fp[t, i]) / abs(after)
            else:
                held[t, i], entry[t, i] = h0 + 1, e0
    return held, entry


# -- one policy: an SMA crossover sized by weight, with gates and exits on the holding -------------

BOOK = simkit.policy_dict(
    universe={"symbols": SYMBOLS, "bar": "1d"},
    signal=None,
    params={"fast": {"default": 3, "range": [2, 10]}, "slow": {"default": 8, "range": [5, 30]}},
    features={"fast_ma": "mean(close, fast)", "slow_ma": "mean(close, slow)",
              "up": "crossed_above(fast_ma, slow_ma)",
              "down": "crossed_below(fast_ma, slow_ma)"},
    sizing={"method": "weight",
            # `+ 0 * ret(slow_ma)`: no weight while the averages are missing (their warm-up, a gap)
            "weight": "where(up, 40%, where(down, -5%, where(position > 0, 40%, -5%))) "
                      "+ 0 * ret(slow_ma)"},
    gates={"light": "weight < 22%", "few": "position < 2000"},
    risk={"gross_max": 0.6, "position_max": 0.3},
    stand_down={"data_gap": {"max_missing": 0.99, "action": "halt"},
                "held": {"when": "bars_held >= 6", "action": "exclude"},
                "stop": {"when": "close < 98% * entry_price", "action": "exclude"}})


@pytest.fixture(scope="module")
def book(panel):
    sim = simkit.Sim.of(BOOK, SYMBOLS)
    engine, out = sim.engine, sim.run(panel)
    return engine, out, lambda name: (out["reasons"] & simkit.flag(engine, name)) != 0


def test_views_of_the_book_are_what_the_fills_made(book, panel):
    _, out, bit = book
    pos, fq, fp = out["positions"], out["fill_qty"], out["fill_price"]
    held, entry = holdings(pos, fq, fp)
    flips = (pos[1:] * pos[:-1] < 0).sum()
    adds = ((np.abs(pos[1:]) > np.abs(pos[:-1])) & (pos[1:] * pos[:-1] > 0)).sum()
    assert flips > 3 and adds > 3, "the run must flip and add for this test to mean anything"
    np.testing.assert_array_equal(bit("rule:held"), held >= 6)
    with np.errstate(invalid="ignore"):
        stop = panel.close < 0.98 * entry
    np.testing.assert_array_equal(bit("rule:stop"), stop)
    weight = pos * simkit.last_valid_close(panel) / out["equity"][:, None]
    np.testing.assert_array_equal(bit("gate:light"), ~(np.nan_to_num(weight) < 0.22))
    np.testing.assert_array_equal(bit("gate:few"), ~(pos < 2000))
    for name in ("rule:held", "rule:stop", "gate:light", "gate:few"):
        assert 3 < bit(name).sum() < bit(name).size - 3, name


def test_an_exit_on_the_holding_closes_the_position(book, panel):
    """`bars_held >= 6` excludes the instrument: its target is 0, and the next bar's fill
    closes the position (when both bars trade)."""
    _, out, _ = book
    pos = out["positions"]
    held, _ = holdings(pos, out["fill_qty"], out["fill_price"])
    due = (held >= 6) & panel.valid
    assert due.sum() > 3 and np.all(out["weights"][due] == 0)
    nxt = due[:-1] & panel.valid[1:]
    assert nxt.sum() > 3 and np.all(pos[1:][nxt] == 0)


def sma(x, n):
    out = np.full(x.shape, np.nan)
    for t in range(n - 1, x.shape[0]):
        out[t] = x[t - n + 1:t + 1].mean(0)
    return out


def reduce_only(w, w_cur):
    same = np.sign(w) == np.sign(w_cur)
    return np.where(same, np.sign(w_cur) * np.minimum(np.abs(w), np.abs(w_cur)), 0.0)


def test_weight_sizing_targets_the_expression_under_every_gate_rule_and_cap(book, panel):
    """The expression, then the gates (reduce only), the exits (0), the position cap (clip)
    and the gross cap (scale), on every warm bar where all instruments are valid."""
    _, out, bit = book
    d = sma(panel.close, 3) - sma(panel.close, 8)
    prev = np.vstack([np.full((1, d.shape[1]), np.nan), d[:-1]])
    with np.errstate(invalid="ignore"):
        up, down = (d > 0) & (prev <= 0), (d < 0) & (prev >= 0)
    pos = out["positions"]
    expr = np.where(up, 0.4, np.where(down, -0.05, np.where(pos > 0, 0.4, -0.05)))
    slow = sma(panel.close, 8)
    expr = np.nan_to_num(expr + 0 * (slow / np.vstack([np.full((1, 4), np.nan), slow[:-1]])))
    w_cur = pos * simkit.last_valid_close(panel) / out["equity"][:, None]
    gates = ~bit("gate:light") & ~bit("gate:few")
    want = np.where(gates, expr, reduce_only(expr, w_cur))
    want = np.where(bit("rule:held") | bit("rule:stop"), 0.0, want)
    capped = np.clip(want, -0.3, 0.3)
    gross = np.abs(capped).sum(1, keepdims=True)
    want = capped * np.where(gross > 0.6, 0.6 / np.maximum(gross, 0.6), 1.0)
    w = out["weights"]
    clean = ~bit("warmup").any(1) & panel.valid.all(1)
    assert clean.sum() > 30 and (gross[:, 0] > 0.6)[clean].sum() > 3
    assert up[clean].sum() > 3 and down[clean].sum() > 3
    np.testing.assert_allclose(w[clean], want[clean], rtol=1e-12, atol=1e-15)
    # the caps hold on every bar, and say so
    assert np.all(np.abs(w) <= 0.3 + 1e-12) and np.all(np.abs(w).sum(1) <= 0.6 + 1e-12)
    assert bit("position_cap")[clean].any() and bit("gross_cap")[clean].any()
    assert np.isnan(out["mu"]).all(), "no forecast: the results say so"


def test_a_missing_weight_is_no_position(book, panel):
    _, out, bit = book
    missing = bit("no_weight")
    slow = sma(panel.close, 8)
    slow = slow / np.vstack([np.full((1, slow.shape[1]), np.nan), slow[:-1]])
    warm = ~bit("warmup")
    assert missing.sum() > 5
    np.testing.assert_array_equal(missing, warm & panel.valid & ~np.isfinite(slow))
    assert np.all(out["weights"][missing] == 0)


# -- the checker ----------------------------------------------------------------------------------

def codes(policy: dict) -> list[tuple[str, str]]:
    import yaml
    result = check_text(yaml.safe_dump(policy, sort_keys=False), "t.policy")
    return [(d.code, d.message) for d in result.errors]


@pytest.mark.parametrize("expr, code, words", [
    ("skew(r1, 2)", "E0502", "at least 3"),
    ("kurt(r1, 3)", "E0502", "at least 4"),
    ("corr(r1, r1, 1)", "E0502", "at least 2"),
    ("acf(r1, 5, 5)", "E0502", "a lag shorter than its window"),
    ("acf(r1, 5, lag=0)", "E0502", "positive whole number"),
    ("beta(close, r1, 5) + r1", "E0601", "cannot add"),
    ("crossed_above(close, r1)", "E0601", "mix"),
    ("atr(close, 5)", "E0504", "at most 1"),
    ("position + close", "E0601", "cannot add"),
    ("entry_price + 0 * r1 + 1d", "E0601", "cannot add"),
])
def test_misuse_of_the_new_functions_is_reported(expr, code, words):
    policy = simkit.policy_dict(features={"r1": "ret(close, 1)", "f": expr},
                                gates={"g": "f == f"})
    found = codes(policy)
    assert any(c == code and words in m for c, m in found), found


def test_the_views_of_the_book_are_reserved_names():
    features = simkit.policy_dict(features={"r1": "ret(close, 1)", "weight": "r1"})
    assert ("E0404", "feature `weight` has the name of a view of the book") in codes(features)
    params = simkit.policy_dict(params={"bars_held": {"default": 5, "range": [1, 9]}})
    assert ("E0404", "parameter `bars_held` shadows a built-in name") in codes(params)


def test_the_units_of_the_new_functions():
    """`beta` is x's unit over y's, `atr` a price, `bars_held` bars: a well-typed use checks."""
    policy = simkit.policy_dict(features={
        "r1": "ret(close, 1)", "b": "beta(close, volume, 5) * volume / close",
        "a": "atr(14) / close", "h": "bars_held / 1d", "rs": "rsi(close, 14) / 100",
        "x": "where(crossed_below(close, entry_price), 1, 0)"},
        gates={"g": "b + a + h + rs + x + r1 > 0"})
    assert codes(policy) == []


def test_weight_sizing_needs_a_dimensionless_number_and_the_others_a_signal():
    base = dict(BOOK, gates={}, stand_down=BOOK["stand_down"])
    assert codes(base) == []
    price = dict(base, sizing={"method": "weight", "weight": "close"})
    assert [c for c, _ in codes(price)] == ["E0603"]
    cond = dict(base, sizing={"method": "weight", "weight": "close > open"})
    assert [c for c, _ in codes(cond)] == ["E0509"]
    no_signal = dict(base, sizing={"method": "equal"})
    assert ("E0302", "missing section `signal`") in codes(no_signal)
    mu = dict(base, gates={"edge": "prob_edge > 0.5"})
    assert [c for c, _ in codes(mu)] == ["E0402"]
