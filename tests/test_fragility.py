"""The fragility detector (the adversarial data validator): its statistic against an independent
numpy recomputation of the same corruptions, on the component (a weight function of every bar
field) and through a compiled backtest of a policy whose weights flip on a tiny price change,
where it fires and halts the book, and stays quiet on a calm one."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simkit
from crowe.stdlib.component import Ctx
from crowe.stdlib.detectors import fragility
from crowe.stdlib.states import HALTED

jax.config.update("jax_enable_x64", True)

N, EPS = 5, 0.002


def _toy_np(f, ok):
    """A weight function of every field, normalised over the instruments present (so a drop
    moves the others)."""
    body = (f["close"] - f["open"]) / (f["high"] - f["low"] + 1e-3 * f["close"])
    g = np.where(ok, np.tanh((f["close"] / 100 - 1) * 50 + body) * np.log(f["volume"]), 0.0)
    return np.where(ok, g / max(np.abs(g).sum(), 1e-12), 0.0)


def _toy_jnp(f, ok):
    body = (f["close"] - f["open"]) / (f["high"] - f["low"] + 1e-3 * f["close"])
    g = jnp.where(ok, jnp.tanh((f["close"] / 100 - 1) * 50 + body) * jnp.log(f["volume"]), 0.0)
    return jnp.where(ok, g / jnp.maximum(jnp.abs(g).sum(), 1e-12), 0.0)


def _reference(bar, ok, prev):
    """The five corruptions written out one by one, and the largest L1 change of the book."""
    w = _toy_np(bar, ok)
    prices = ("open", "high", "low", "close")
    scaled = lambda k: {**{p: bar[p] * k for p in prices}, "volume": bar["volume"]}  # noqa
    alt = np.array([1 + EPS if i % 2 == 0 else 1 - EPS for i in range(N)])
    i = int(np.argmax(np.where(ok, np.abs(w), -1)))
    drop_ok = ok.copy()
    drop_ok[i] = False
    stale_ok = ok & np.isfinite(prev)
    stale = {**{p: prev for p in prices}, "volume": bar["volume"]}
    changes = [np.abs(_toy_np(scaled(1 + EPS), ok) - w).sum(),
               np.abs(_toy_np(scaled(1 - EPS), ok) - w).sum(),
               np.abs(_toy_np(scaled(alt), ok) - w).sum(),
               np.abs(np.delete(_toy_np(bar, drop_ok) - w, i)).sum(),
               np.abs(_toy_np(stale, stale_ok) - w).sum()]
    return max(changes), int(np.argmax(changes))


def test_statistic_equals_a_numpy_recomputation_of_the_corruptions():
    ctx = Ctx(N, 252.0, 1, (False,) * N, (True,) * N, (0,) * N, 1, 1.0, 1.0)
    t = fragility.make(fragility.Settings(epsilon=EPS, max_change=0.9, action="halt"))
    run = jax.jit(lambda bar, ok, prev: t.update(
        {"targets": _toy_jnp, "bar": bar, "ok": ok, "prev_close": prev}, (), ctx)[0])
    rng = np.random.default_rng(3)
    worst = 0.0
    fired = set()
    for _ in range(25):
        close = 100 * np.exp(rng.normal(0, 0.01, N))
        open_ = close * np.exp(rng.normal(0, 0.003, N))
        bar = {"open": open_, "close": close,
               "high": np.maximum(open_, close) * (1 + 0.004 * rng.random(N)),
               "low": np.minimum(open_, close) * (1 - 0.004 * rng.random(N)),
               "volume": rng.uniform(1e5, 1e6, N)}
        ok = rng.random(N) > 0.15
        prev = np.where(rng.random(N) > 0.15, close * np.exp(rng.normal(0, 0.01, N)), np.nan)
        bar = {k: np.where(ok, v, np.nan) for k, v in bar.items()}
        out = run(bar, ok, prev)
        ref, which = _reference(bar, ok, prev)
        worst = max(worst, abs(float(out["change"]) - ref))
        assert int(out["worst"]) == which
        assert bool(out["fired"]) == (ref > 0.9)
        fired.add(bool(out["fired"]))
    assert worst < 1e-12, worst
    assert fired == {True, False}        # both verdicts were exercised


# -- through a backtest: weights that flip on a tiny price change -----------------------------

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
T, EPISODE = 70, slice(35, 45)
THRESHOLD = simkit.policy_dict(
    universe={"symbols": SYMBOLS, "bar": "1d"}, signal=None, features={"r1": "ret(close, 1)"},
    sizing={"method": "weight", "weight": "where(close > 100, 25%, 0)"},
    # room under the gross cap: a dropped instrument held at its drifted mark moves no other
    risk={"gross_max": 2.0, "position_max": 1.0},
    stand_down={"data_gap": {"max_missing": 0.99, "action": "halt"},
                "fragility": {"epsilon": "10bps", "max_change": 0.2, "action": "halt"}})


@pytest.fixture(scope="module")
def runs():
    sim = simkit.Sim.of(THRESHOLD, SYMBOLS)
    rng = np.random.default_rng(5)
    calm = simkit.random_walk(rng, T, len(SYMBOLS), vol=0.004, start=130.0)
    near = calm.copy()
    near[EPISODE] = 100 * (1 + rng.uniform(-5e-4, 5e-4, (10, len(SYMBOLS))))
    out = {}
    for name, close in (("calm", calm), ("near", near)):
        panel = simkit.ohlc_panel(rng, close, symbols=SYMBOLS)
        out[name] = (close, sim.run(panel))
    return sim.engine, out


def _backtest_reference(close, warm):
    """The weight function of the policy, `0.25 * (close > 100)`, under the five corruptions."""
    f = lambda c: 0.25 * (c > 100)   # noqa: E731
    alt = np.where(np.arange(close.shape[1]) % 2 == 0, 1.001, 0.999)
    ref = np.zeros(close.shape[0])
    for t in range(1, close.shape[0]):
        c, w = close[t], f(close[t])
        if warm[t]:
            ref[t] = max(np.abs(f(c * 1.001) - w).sum(), np.abs(f(c * 0.999) - w).sum(),
                         np.abs(f(c * alt) - w).sum(), np.abs(f(close[t - 1]) - w).sum())
    return ref


def test_fires_near_the_threshold_halts_and_stays_quiet_when_calm(runs):
    engine, out = runs
    warmup = simkit.flag(engine, "warmup")
    for name, (close, res) in out.items():
        warm = (res["reasons"] & warmup).sum(axis=1) == 0
        stat = res["detector:fragility.change"]
        np.testing.assert_allclose(stat, _backtest_reference(close, warm), atol=1e-15)
    calm, near = out["calm"][1], out["near"][1]
    assert (calm["detector:fragility.change"] == 0).all()
    assert (calm["trading_state"] != HALTED).all()
    fired = near["detector:fragility.change"] > 0.2
    assert fired[EPISODE].all() and not fired[:EPISODE.start].any()
    assert (near["trading_state"][EPISODE] == HALTED).all()
    rule = simkit.flag(engine, "rule:fragility")
    assert (near["portfolio_reasons"][EPISODE] & rule).all()
