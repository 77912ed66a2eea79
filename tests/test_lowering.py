"""Every function of the policy language, lowered to JAX and run over bars, against a
straightforward numpy reference.

One policy declares each call as a feature; `simkit.FeatureRunner` lowers every feature as a
root of its own (the same passes as `to_ir`, then `Lowering.evaluate` scanned over the bars) and
returns its value at every bar. The bars are random walks with invalid bars scattered in
(`valid` false, a NaN close on a bar marked valid, a negative open, and one bar where every
instrument is missing), so the references must produce NaN exactly where a window holds a
missing value.

The oscillators and window statistics (`rsi`, `atr`, `corr`, `beta`, `skew`, `kurt`, `acf`) are compared
with scipy where scipy has the statistic (`pearsonr`, `linregress`, `skew` and `kurtosis` with
`bias=False`) and with numpy transcriptions of the textbook definitions otherwise (Wilder's
recursion for RSI and ATR, the Box-Jenkins sample autocorrelation), all with `close`.

Comparisons: `exact` is bit-for-bit (`assert_array_equal`, NaN positions included) for
operations that are one IEEE operation or a selection (lag, delta, ret, min, max, abs, sign,
clip, minimum, maximum, where, any, all, share); `close` is `rtol=1e-12` for sums and ratios
evaluated in a different order (rolling and cross-sectional statistics, ranks, EMA), `ulp` is
`rtol=1e-14` for transcendental functions (XLA's and numpy's `log`/`exp` may differ in the
last bit), and the turbulence index, a linear solve, gets `rtol=1e-9`. Every comparison also
requires the NaN pattern to match.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.special import ndtr
from scipy.stats import kurtosis, linregress, pearsonr, rankdata
from scipy.stats import skew as stats_skew

import simkit
from crowe.stdlib.registry import FUNCTIONS

T, N = 48, 4

FEATURES = {
    "r1": "ret(close, 1)",
    "ret3": "ret(close, 3)",
    "logret2": "logret(close, 2)",
    "lag2": "lag(close, 2)",
    "lagv": "lag(volume)",
    "delta4": "delta(close, 4)",
    "mean_w": "mean(close, w)",
    "lag_w": "lag(close, w)",
    "sd_w": "stdev(r1, w)",
    "mean_3d": "mean(close, 3d)",
    "sum5": "sum(r1, 5)",
    "sd5": "stdev(r1, 5)",
    "var5": "var(r1, 5)",
    "min4": "min(low, 4)",
    "max4": "max(high, 4)",
    "ema3": "ema(close, 3)",
    "ema_w": "ema(r1, w)",
    "zs_t": "zscore(close, 6)",
    "zs_x": "zscore(r1)",
    "rank_r": "rank(r1)",
    "rank_ties": "rank(clip(r1, -0.5%, 0.5%))",
    "dm": "demean(r1)",
    "q25": "quantile(r1, 0.25)",
    "qp": "quantile(r1, q)",
    "csm": "cs_mean(r1)",
    "anyup": "any(r1 > 0)",
    "allup": "all(r1 > -1%)",
    "shareup": "share(r1 > 0)",
    "turb": "turbulence(r1, 8)",
    "turb_w": "turbulence(r1, w)",
    "absr": "abs(r1)",
    "sqrtc": "sqrt(close)",
    "logc": "log(close)",
    "expr": "exp(r1)",
    "sgn": "sign(r1)",
    "clp": "clip(r1, -1%, 1%)",
    "mn": "minimum(open, close)",
    "mx": "maximum(open, close)",
    "wh": "where(r1 > 0, close, open)",
    "ncdf": "normcdf(r1 / 0.02)",
    "pw": "(close / open) ^ 2",
    "sel": "if r1 > 0 then 1 else -1",
    "rsi5": "rsi(close, 5)",
    "rsi_w": "rsi(close, w)",
    "atr4": "atr(4)",
    "corr6": "corr(r1, logret(open, 1), 6)",
    "beta_m": "beta(r1, csm, 6)",
    "beta_p": "beta(close, open, w)",
    "skew7": "skew(r1, 7)",
    "kurt8": "kurt(r1, 8)",
    "acf2": "acf(r1, 8, 2)",
    "acf_w": "acf(r1, 10, lag=w)",
    "up_x": "crossed_above(close, mean(close, 3))",
    "down_x": "crossed_below(r1, 0)",
    "hmm": "regime_prob(r1, 16, 8, 1.5)",
}

WHOLE = {      # whole-number operands whose result is real
    "r1": "ret(close, 1)",
    "half": "7 / 2 + 0 * r1",
    "inv": "2 ^ -1 + 0 * r1",
    "tiny": "close * 10 ^ -4",
    "huge": "10 ^ 20 + 0 * r1",
    "winv": "w ^ -1 + 0 * r1",
    "ncdf_w": "normcdf(w) + 0 * r1",
    "sqrt_w": "sqrt(w) + 0 * r1",
    "clip_w": "clip(w, 1, 3) + 0 * r1",
    "q_max": "quantile(close, 1)",
}


@pytest.fixture(scope="module")
def runner():
    policy = simkit.policy_dict(
        params={"w": {"default": 5, "range": [2, 12]}, "q": {"default": 0.25, "range": [0, 1]}},
        features=FEATURES)
    return simkit.FeatureRunner.of(policy, N)


@pytest.fixture(scope="module")
def whole(bars):
    policy = simkit.policy_dict(params={"w": {"default": 5, "range": [2, 12]}}, features=WHOLE)
    return simkit.FeatureRunner.of(policy, N).values(bars[0])


@pytest.fixture(scope="module")
def bars():
    """The panel, and the fields as the policy sees them (NaN on every unusable bar)."""
    rng = np.random.default_rng(7)
    close = simkit.random_walk(rng, T, N, vol=np.array([0.01, 0.02, 0.015, 0.03]))
    invalid = rng.random((T, N)) < 0.06
    invalid[20] = True                     # a bar where nothing trades
    panel = simkit.ohlc_panel(rng, close, invalid=invalid)
    # unusable bars that the loader would have caught but the step must guard against itself
    arrays = {k: np.array(getattr(panel, k)) for k in ("open", "high", "low", "close", "volume")}
    valid = np.array(panel.valid)
    arrays["close"][30, 1] = np.nan        # marked valid, NaN close
    arrays["open"][35, 2] = -1.0           # marked valid, negative open
    arrays["volume"][40, 3] = np.inf       # marked valid, infinite volume
    panel = simkit.Panel(ts=panel.ts, symbols=panel.symbols, valid=valid, **arrays)
    ok = valid.copy()
    for k in ("open", "high", "low", "close"):
        with np.errstate(invalid="ignore"):
            ok &= np.isfinite(arrays[k]) & (arrays[k] > 0)
    ok &= np.isfinite(arrays["volume"]) & (arrays["volume"] >= 0)
    assert (ok != valid).sum() == 3
    fields = {k: np.where(ok, v, np.nan) for k, v in arrays.items()}
    return panel, fields, ok


@pytest.fixture(scope="module")
def got(runner, bars):
    return runner.values(bars[0])


def exact(a, b):
    np.testing.assert_array_equal(a, b)


def close(a, b, rtol=1e-12):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-15, equal_nan=True)
    assert np.array_equal(np.isnan(a), np.isnan(b))


def ulp(a, b):
    close(a, b, rtol=1e-14)


# -- numpy references -----------------------------------------------------------------------------

def lagged(x, n):
    out = np.full_like(x, np.nan)
    out[n:] = x[:-n]
    return out


def windows(x, n):
    """[T, N, n] windows ending at each bar, NaN-padded before the first bar."""
    pad = np.vstack([np.full((n - 1, x.shape[1]), np.nan), x])
    return np.stack([pad[t:t + n] for t in range(x.shape[0])]).transpose(0, 2, 1)


def rolling(x, n, f):
    with np.errstate(all="ignore"):
        return np.array([[f(w) if np.all(np.isfinite(w)) else np.nan for w in row]
                         for row in windows(x, n)])


def ema(x, n):
    """Closed form: after valid inputs v1..vm, (1-a)^(m-1) v1 + sum_j a (1-a)^(m-j) vj; NaN on a
    missing input and before the n-th valid one."""
    a = 2.0 / (n + 1)
    out = np.full_like(x, np.nan)
    for i in range(x.shape[1]):
        seen = []
        for t in range(x.shape[0]):
            if not np.isfinite(x[t, i]):
                continue
            seen.append(x[t, i])
            m = len(seen)
            if m >= n:
                w = np.array([(1 - a) ** (m - 1)] + [a * (1 - a) ** (m - j) for j in
                                                      range(2, m + 1)])
                out[t, i] = w @ np.array(seen)
    return out


def cross(x, f):
    out = np.full_like(x, np.nan)
    for t in range(x.shape[0]):
        ok = np.isfinite(x[t])
        if ok.any():
            out[t, ok] = f(x[t, ok])
    return out


def reduce(x, f):
    out = np.full(x.shape, np.nan)
    for t in range(x.shape[0]):
        ok = np.isfinite(x[t])
        out[t] = f(x[t, ok]) if ok.any() else np.nan
    return out


def zscore_x(v):
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else np.full_like(v, np.nan)


def rank_x(v):
    return (rankdata(v, method="average") - 1) / max(len(v) - 1, 1)


def turbulence(x, n, shrink=0.1):
    out = np.full(x.shape, np.nan)
    for t in range(n, x.shape[0]):
        past = x[t - n:t]
        ok = np.all(np.isfinite(past), axis=0) & np.isfinite(x[t])
        if ok.sum() <= 1:
            continue
        p = past[:, ok]
        cov = np.cov(p, rowvar=False, ddof=1)
        cov = (1 - shrink) * cov + shrink * np.diag(np.diag(cov))
        d = x[t, ok] - p.mean(0)
        out[t] = d @ np.linalg.solve(cov, d) / ok.sum()
    return out


def test_every_function_of_the_language_is_covered():
    called = {m for e in FEATURES.values() for m in re.findall(r"([a-z_]+)\(", e)}
    assert set(FUNCTIONS) <= called, sorted(set(FUNCTIONS) - called)


# -- time series ----------------------------------------------------------------------------------

def test_returns_lags_and_deltas(got, bars):
    _, f, _ = bars
    c, v = f["close"], f["volume"]
    exact(got["r1"], c / lagged(c, 1) - 1)
    exact(got["ret3"], c / lagged(c, 3) - 1)
    ulp(got["logret2"], np.log(c / lagged(c, 2)))
    exact(got["lag2"], lagged(c, 2))
    exact(got["lagv"], lagged(v, 1))
    exact(got["delta4"], c - lagged(c, 4))


def test_rolling_statistics(got, bars):
    _, f, _ = bars
    c, r1 = f["close"], f["close"] / lagged(f["close"], 1) - 1
    close(got["mean_w"], rolling(c, 5, np.mean))
    close(got["mean_3d"], rolling(c, 3, np.mean))
    close(got["sum5"], rolling(r1, 5, np.sum))
    close(got["sd5"], rolling(r1, 5, lambda w: np.std(w, ddof=1)))
    close(got["var5"], rolling(r1, 5, lambda w: np.var(w, ddof=1)))
    exact(got["min4"], rolling(f["low"], 4, np.min))
    exact(got["max4"], rolling(f["high"], 4, np.max))
    close(got["zs_t"], rolling(c, 6, lambda w: (w[-1] - w.mean()) / np.std(w, ddof=1)))


def test_windows_hold_nan_exactly_while_a_gap_is_inside(got, bars):
    _, f, ok = bars
    # close[30, 1] is missing: mean(close, 5) is NaN on bars 30..34 and defined again at 35
    # when the rest of that window is valid
    assert np.isnan(got["mean_w"][30:35, 1]).all()
    gap = ~ok[:, 1]
    expect = np.array([not gap[max(t - 4, 0):t + 1].any() and t >= 4 for t in range(T)])
    assert np.array_equal(np.isfinite(got["mean_w"][:, 1]), expect)


def test_ema(got, bars):
    _, f, _ = bars
    close(got["ema3"], ema(f["close"], 3))
    close(got["ema_w"], ema(f["close"] / lagged(f["close"], 1) - 1, 5))


def test_window_parameters_take_their_runtime_value(runner, bars):
    """A window given by a parameter is a traced value: other values run the same compiled
    function, up to the range maximum that sized the buffers."""
    panel, f, _ = bars
    r1 = f["close"] / lagged(f["close"], 1) - 1
    for w in (2, 9, 12):
        got = runner.values(panel, w=w)
        close(got["mean_w"], rolling(f["close"], w, np.mean))
        close(got["sd_w"], rolling(r1, w, lambda x: np.std(x, ddof=1)))
        exact(got["lag_w"], lagged(f["close"], w))
        close(got["ema_w"], ema(r1, w))
        close(got["turb_w"], turbulence(r1, w), rtol=1e-9)


def test_a_window_its_buffer_cannot_hold_fails_closed(runner, bars):
    """Parameters reach the step as arrays, so nothing stops a sweep from passing a window
    beyond the range that sized the buffers (13 rows for close and for r1 here, from
    `lag(close, w)` and `turbulence(r1, w)` at w <= 12) or below 1: the value is NaN, never a
    statistic over the wrong bars."""
    panel, f, _ = bars
    for w in (14, 40, 0, -3):
        got = runner.values(panel, w=w)
        for name in ("mean_w", "sd_w", "lag_w", "turb_w", "beta_p", "acf_w") + \
                (("rsi_w",) if w < 1 else ()):      # Wilder's average reads no buffer
            if (name, w) == ("lag_w", 0):
                exact(got[name], f["close"])       # the current bar: not a missing window
            else:
                assert np.isnan(got[name]).all(), (w, name)


# -- cross-sections -------------------------------------------------------------------------------

def test_cross_sections(got, bars):
    _, f, _ = bars
    r1 = f["close"] / lagged(f["close"], 1) - 1
    close(got["zs_x"], cross(r1, zscore_x))
    close(got["dm"], cross(r1, lambda v: v - v.mean()))
    close(got["rank_r"], cross(r1, rank_x))


def test_rank_with_ties(got, bars):
    _, f, _ = bars
    r1 = f["close"] / lagged(f["close"], 1) - 1
    clipped = np.clip(r1, -0.005, 0.005)
    ranks = cross(clipped, rank_x)
    ties = [t for t in range(T) if len(set(clipped[t][np.isfinite(clipped[t])])) <
            np.isfinite(clipped[t]).sum()]
    assert len(ties) >= 5, "the data must hold ties for this test to mean anything"
    close(got["rank_ties"], ranks)
    for t in ties:      # tied values share one rank, bit for bit
        for v in set(clipped[t][np.isfinite(clipped[t])]):
            assert len(set(got["rank_ties"][t][clipped[t] == v])) == 1


def test_reductions(got, bars):
    _, f, ok = bars
    r1 = f["close"] / lagged(f["close"], 1) - 1
    close(got["q25"], reduce(r1, lambda v: np.quantile(v, 0.25)))
    close(got["qp"], reduce(r1, lambda v: np.quantile(v, 0.25)))
    close(got["csm"], reduce(r1, np.mean))
    with np.errstate(invalid="ignore"):
        up, above = (r1 > 0) & ok, (r1 > -0.01) & ok
    one = lambda v: np.broadcast_to(v[:, None], (T, N))   # noqa: E731
    exact(got["anyup"], one(up.any(1)).astype(float))
    exact(got["allup"], one((above | ~ok).all(1)).astype(float))
    exact(got["shareup"], one(up.sum(1) / np.maximum(ok.sum(1), 1)))


def test_quantile_level_is_a_runtime_parameter(runner, bars):
    panel, f, _ = bars
    r1 = f["close"] / lagged(f["close"], 1) - 1
    for q in (0.0, 0.6, 1.0):
        close(runner.values(panel, q=q)["qp"], reduce(r1, lambda v: np.quantile(v, q)))


def test_turbulence(got, bars):
    _, f, _ = bars
    r1 = f["close"] / lagged(f["close"], 1) - 1
    ref = turbulence(r1, 8)
    assert np.isfinite(ref).sum() > 10
    close(got["turb"], ref, rtol=1e-9)


# -- elementwise ----------------------------------------------------------------------------------

def test_elementwise(got, bars):
    _, f, _ = bars
    c, o = f["close"], f["open"]
    r1 = c / lagged(c, 1) - 1
    with np.errstate(invalid="ignore"):
        exact(got["absr"], np.abs(r1))
        ulp(got["sqrtc"], np.sqrt(c))
        ulp(got["logc"], np.log(c))
        ulp(got["expr"], np.exp(r1))
        exact(got["sgn"], np.sign(r1))
        exact(got["clp"], np.clip(r1, -0.01, 0.01))
        exact(got["mn"], np.minimum(o, c))
        exact(got["mx"], np.maximum(o, c))
        exact(got["wh"], np.where(r1 > 0, c, o))
        close(got["ncdf"], ndtr(r1 / 0.02), rtol=1e-14)
        ulp(got["pw"], (c / o) ** 2)
        exact(got["sel"], np.where(r1 > 0, 1.0, -1.0))


def test_the_step_sees_the_same_values(bars):
    """The feature runner is the step's lowering: the compiled step's `mu` is the same number."""
    panel, f, _ = bars
    policy = simkit.policy_dict(features={"r1": "ret(close, 1)", "z": "zscore(close, 6)"},
                                signal={"horizon": "1d", "mu": "z * 0.01", "sigma": "1%"})
    sim = simkit.Sim.of(policy, panel.symbols)
    ref = rolling(f["close"], 6, lambda w: (w[-1] - w.mean()) / np.std(w, ddof=1)) * 0.01
    close(sim.run(panel)["mu"], ref)


def test_whole_number_operands_give_real_results(whole, bars):
    """`^` and `/` are real-valued even between integers (`10 ^ -4` is 1e-4, not an integer
    power), and functions take integer parameters and literals."""
    _, f, _ = bars
    r1 = f["close"] / lagged(f["close"], 1) - 1
    zero = 0 * r1
    exact(whole["half"], 3.5 + zero)
    exact(whole["inv"], 0.5 + zero)
    ulp(whole["tiny"], f["close"] * 10.0 ** -4)
    ulp(whole["huge"], 1e20 + zero)
    exact(whole["winv"], 0.2 + zero)
    close(whole["ncdf_w"], ndtr(5.0) + zero, rtol=1e-14)
    ulp(whole["sqrt_w"], np.sqrt(5.0) + zero)
    exact(whole["clip_w"], 3.0 + zero)
    exact(whole["q_max"], reduce(f["close"], np.max))


# -- oscillators, dependence and shape statistics, crossings ------------------------------------

def wilder(v, n):
    """Wilder (1978): the first average is the mean of the first n valid values, then
    avg = (avg * (n - 1) + v) / n; a missing value is skipped (NaN at its bar)."""
    out = np.full_like(v, np.nan)
    for i in range(v.shape[1]):
        seen, avg = [], None
        for t in range(v.shape[0]):
            if not np.isfinite(v[t, i]):
                continue
            seen.append(v[t, i])
            if len(seen) == n:
                avg = np.mean(seen)
            elif len(seen) > n:
                avg = (avg * (n - 1) + v[t, i]) / n
            if avg is not None:
                out[t, i] = avg
    return out


def rsi(c, n):
    d = c - lagged(c, 1)
    with np.errstate(invalid="ignore"):
        g, loss = wilder(np.where(np.isnan(d), np.nan, np.maximum(d, 0)), n), \
            wilder(np.where(np.isnan(d), np.nan, np.maximum(-d, 0)), n)
        return np.where(g + loss == 0, 50.0, 100.0 - 100.0 / (1.0 + g / loss))


def pairwise(x, y, n, f):
    wx, wy = windows(x, n), windows(y, n)
    out = np.full(x.shape, np.nan)
    for t in range(x.shape[0]):
        for i in range(x.shape[1]):
            a, b = wx[t, i], wy[t, i]
            if np.all(np.isfinite(a)) and np.all(np.isfinite(b)):
                out[t, i] = f(a, b)
    return out


def acf(w, k):
    d = w - w.mean()
    return (d[k:] * d[:-k]).sum() / (d * d).sum()


def test_rsi_is_wilders(got, runner, bars):
    panel, f, _ = bars
    ref = rsi(f["close"], 5)
    assert np.isfinite(ref).sum() > 100
    close(got["rsi5"], ref)
    assert np.nanmin(got["rsi5"]) >= 0 and np.nanmax(got["rsi5"]) <= 100
    close(runner.values(panel, w=9)["rsi_w"], rsi(f["close"], 9))


def test_rsi_reference_by_hand():
    """Changes +1, +1, -1, 0, -1 with n = 3: the seed G = 2/3, L = 1/3 (RSI 200/3); then
    G = (2/3 * 2 + 0) / 3 = 4/9, L = 2/9 (200/3 again); then G = 8/27, L = (4/9 + 1) / 3 = 13/27
    (RSI 800/21)."""
    c = np.array([[10.0], [11.0], [12.0], [11.0], [11.0], [10.0]])
    np.testing.assert_allclose(rsi(c, 3)[3:, 0], [200 / 3, 200 / 3, 800 / 21], rtol=1e-14)
    assert np.isnan(rsi(c, 3)[:3]).all()
    assert rsi(np.full((5, 1), 7.0), 3)[4, 0] == 50.0


def test_atr_is_wilders_average_true_range(got, bars):
    _, f, _ = bars
    pc = lagged(f["close"], 1)
    with np.errstate(invalid="ignore"):
        tr = np.maximum(np.maximum(f["high"] - f["low"], np.abs(f["high"] - pc)),
                        np.abs(f["low"] - pc))
    ref = wilder(tr, 4)
    assert np.isfinite(ref).sum() > 100
    close(got["atr4"], ref)


def test_corr_and_beta_match_scipy(got, runner, bars):
    panel, f, _ = bars
    r1 = f["close"] / lagged(f["close"], 1) - 1
    lo = np.log(f["open"] / lagged(f["open"], 1))
    ref = pairwise(r1, lo, 6, lambda a, b: pearsonr(a, b).statistic)
    assert np.isfinite(ref).sum() > 50
    close(got["corr6"], ref)
    m = np.broadcast_to(reduce(r1, np.mean), r1.shape)
    close(got["beta_m"], pairwise(r1, m, 6, lambda a, b: linregress(b, a).slope))
    for w in (2, 5, 12):
        close(runner.values(panel, w=w)["beta_p"],
              pairwise(f["close"], f["open"], w, lambda a, b: linregress(b, a).slope))


def test_skew_and_kurt_match_scipy_without_bias(got, bars):
    _, f, _ = bars
    r1 = f["close"] / lagged(f["close"], 1) - 1
    ref = rolling(r1, 7, lambda w: stats_skew(w, bias=False))
    assert np.isfinite(ref).sum() > 50
    close(got["skew7"], ref)
    close(got["kurt8"], rolling(r1, 8, lambda w: kurtosis(w, fisher=True, bias=False)))


def test_acf_is_the_sample_autocorrelation(got, runner, bars):
    panel, f, _ = bars
    r1 = f["close"] / lagged(f["close"], 1) - 1
    ref = rolling(r1, 8, lambda w: acf(w, 2))
    assert np.isfinite(ref).sum() > 50
    close(got["acf2"], ref)
    for w in (1, 9):
        close(runner.values(panel, w=w)["acf_w"], rolling(r1, 10, lambda x: acf(x, w)))
    for w in (10, 12, 0):      # a lag the window cannot hold fails closed
        assert np.isnan(runner.values(panel, w=w)["acf_w"]).all()


def test_crossings(got, bars):
    _, f, _ = bars
    c = f["close"]
    r1 = c / lagged(c, 1) - 1
    with np.errstate(invalid="ignore"):
        d = c - rolling(c, 3, np.mean)
        up = (d > 0) & (lagged(d, 1) <= 0)
        e = r1 - 0
        down = (e < 0) & (lagged(e, 1) >= 0)
    assert up.sum() > 5 and down.sum() > 5
    exact(got["up_x"], up.astype(float))
    exact(got["down_x"], down.astype(float))


# -- the regime probability -----------------------------------------------------------------------

def regime_reference(x, n, refit, min_ratio):
    """hmmlearn's GaussianHMM fitted on the last n observed values every `refit` observations
    (from `regime.start`), its posterior of the last observation of each prefix of the fit's
    window, for the higher-variance state; 0 below the variance ratio, the value held on a bar
    without an observation, NaN before the first fit."""
    from hmmlearn.hmm import GaussianHMM
    from crowe.stdlib.detectors import regime
    seen = np.flatnonzero(np.isfinite(x))
    obs = x[seen]
    value, out, model, start = np.nan, np.full(len(x), np.nan), None, 0
    for k, t in enumerate(seen):
        if k + 1 >= n and (model is None or (k + 1 - n) % refit == 0):
            start = k + 1 - n
            pi, A, mu, var = (np.asarray(a) for a in regime.start(obs[start:k + 1]))
            model = GaussianHMM(2, "diag", n_iter=regime.ITERATIONS, tol=-np.inf,
                                init_params="", params="stmc", covars_prior=0.0,
                                implementation="scaling")
            model.startprob_, model.transmat_ = pi, A
            model.means_, model.covars_ = mu[:, None], var[:, None]
            model.fit(obs[start:k + 1, None])
        if model is not None:
            v = model.covars_.ravel()
            off = int(np.argmax(v))
            prob = model.predict_proba(obs[start:k + 1, None])[-1, off]
            value = prob if v[off] / v[1 - off] >= min_ratio else 0.0
        out[t] = value
        if k + 1 < len(seen):
            out[t + 1:seen[k + 1]] = value
    out[seen[-1] + 1:] = value
    return out


def test_regime_prob_is_hmmlearns_posterior(got, bars):
    pytest.importorskip("hmmlearn")
    _, f, _ = bars
    r1 = f["close"] / lagged(f["close"], 1) - 1
    x = reduce(r1, np.mean)[:, 0]
    ref = regime_reference(x, 16, 8, 1.5)
    assert np.isfinite(ref).sum() > 20 and (ref > 0).any() and (ref == 0).any()
    np.testing.assert_allclose(got["hmm"][:, 0], ref, atol=1e-9)
    np.testing.assert_array_equal(got["hmm"], np.repeat(got["hmm"][:, :1], N, axis=1))
