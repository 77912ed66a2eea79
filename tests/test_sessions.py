"""Trading calendars (`universe.calendar`): the session fields of the bars against
exchange_calendars' own trading index, the intraday limit's day, `1d` in bars, annualisation,
an unknown calendar, bars outside the sessions, and TWAP over the rest of the session on the
bundled AAPL hourly bars."""
from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from click.testing import CliRunner

from crowe.dsl.policy import check_text
from crowe.dsl.quantity import Duration
from crowe.runtime import cli
from crowe.runtime.backtest import backtest
from crowe.runtime.bundled import default_data
from crowe.runtime.data import load_bars, write_bars
from crowe.runtime.engine import Engine
from crowe.runtime.paper.loop import PaperRunner
from crowe.runtime.run import RunError, check_sessions
from crowe.stdlib.execution import twap
from crowe.stdlib.limits import intraday
from crowe.stdlib.sessions import SessionError, clock, utc_clock

xc = pytest.importorskip("exchange_calendars")
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "policies" / "intraday_twap_v1.policy"
TEXT = EXAMPLE.read_text("utf-8")


def calendar(name: str, start="2014-01-01", end="2025-12-31"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xc.get_calendar(name, start=start, end=end)


def hourly_index(name: str, start: str, end: str):
    """exchange_calendars' own hourly bars (opening times, the last bar of a session cut at its
    close) and the session of each, as int64 ns and days."""
    cal = calendar(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx = cal.trading_index(start, end, period="1h", intervals=True, closed="left",
                                force=True)
        sessions = cal.minutes_to_sessions(idx.left)
    ts = idx.left.tz_convert("UTC").tz_localize(None).to_numpy("datetime64[ns]").astype(np.int64)
    return ts, sessions.to_numpy("datetime64[D]").astype(np.int64)


def ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


# -- the session fields ---------------------------------------------------------------------------

def test_session_fields_of_a_week_with_a_holiday_and_an_early_close():
    """Thanksgiving 2024-11-28 is closed and 2024-11-29 closes at 13:00 New York time: 4 bars
    (9:30 to 12:30), against 7 on a regular day."""
    ts, sessions = hourly_index("XNYS", "2024-11-25", "2024-12-02")
    got = clock("XNYS", ts, 3600)
    assert (got["session"] == sessions).all()
    days, counts = np.unique(sessions, return_counts=True)
    per_day = dict(zip(np.array(days, "datetime64[D]").astype(str), counts))
    assert per_day == {"2024-11-25": 7, "2024-11-26": 7, "2024-11-27": 7, "2024-11-29": 4,
                       "2024-12-02": 7}
    # bars after this one in its session, or at its last bar all the bars of the next one
    for i in range(len(ts)):
        after = int((sessions[i + 1:] == sessions[i]).sum())
        if after == 0:
            later = sessions[sessions > sessions[i]]
            if later.size == 0:
                continue
            after = int((sessions == later[0]).sum())
        assert got["session_left"][i] == after, i
    friday = sessions == np.datetime64("2024-11-29").astype(np.int64)
    assert list(got["session_left"][friday]) == [3, 2, 1, 7]


def test_daily_bars_carry_their_session_and_a_holiday_is_refused():
    days = np.array(["2024-11-26", "2024-11-27", "2024-11-29"], "datetime64[D]")
    got = clock("XNYS", days.astype("datetime64[ns]").astype(np.int64), 86_400)
    assert (got["session"] == days.astype(np.int64)).all() and (got["session_left"] == 1).all()
    with pytest.raises(SessionError, match="bar 1 at 2024-11-28 UTC is not a session"):
        clock("XNYS", np.array(["2024-11-27", "2024-11-28"], "datetime64[D]")
              .astype("datetime64[ns]").astype(np.int64), 86_400)


def test_the_intraday_limit_resets_at_the_session_not_at_utc_midnight():
    """Sydney in January (UTC+11) opens at 23:00 UTC the day before: the bars at 23:00 and at
    00:00 UTC are one session. Equity 100 at the last close, 99 at 23:00, 97.5 at 00:00: from
    the session's start that is 2.5% (fires at 2%); from UTC midnight only 1 - 97.5/99."""
    ts = np.array([ns("2025-01-07T04:00"), ns("2025-01-07T23:00"), ns("2025-01-08T00:00")])
    sessions = clock("XASX", ts, 3600)["session"]
    assert list(np.diff(sessions)) == [1, 0]
    utc = np.asarray(jax.device_get(utc_clock(jax.numpy.asarray(ts), 3600)[0]))
    assert list(np.diff(utc)) == [0, 1]
    limit = intraday.make(intraday.Settings(max=0.02, action="flatten"))
    update = jax.jit(lambda i, s: limit.update(i, s, None))

    def run(days):
        s, out = limit.init(None), []
        for E, prev, day in zip((100.0, 99.0, 97.5), (100.0, 100.0, 99.0), days):
            res, _, s = update({"E": jax.numpy.asarray(E), "prev_E": jax.numpy.asarray(prev),
                                "session": jax.numpy.asarray(day)}, s)
            out.append((bool(res["fired"]), float(res["drawdown"])))
        return out
    by_session, by_utc = run(sessions), run(utc)
    assert by_session[2] == (True, pytest.approx(0.025))
    assert by_utc[2] == (False, pytest.approx(1 - 97.5 / 99))


# -- durations and annualisation ------------------------------------------------------------------

def test_a_day_is_a_session_in_bars():
    """On hourly XNYS bars `1d` is a regular session's 7 bars (not 24), `5d` 35 and `1w` the
    calendar's 5 sessions; the example's windows and cooldown follow."""
    ts, sessions = hourly_index("XNYS", "2024-01-01", "2024-12-31")
    counts = np.unique(sessions, return_counts=True)[1]
    regular = int(np.bincount(counts).argmax())
    week = str(calendar("XNYS").weekmask).count("1")
    with_cal = check_text(TEXT, "x.policy").policy
    without = check_text(TEXT.replace("  calendar: XNYS\n", ""), "x.policy").policy
    b = with_cal.bar_seconds
    assert (regular, week) == (7, 5)
    assert [Duration(1, "d").bars(b), Duration(5, "d").bars(b), Duration(1, "w").bars(b),
            Duration(2, "h").bars(b)] == [regular, 5 * regular, week * regular, 2]
    assert with_cal.lookbacks["feature fast"] == regular - 1
    assert without.lookbacks["feature fast"] == 23
    assert with_cal.limits["from_peak"].cooldown == 5 * regular
    daily = check_text(TEXT.replace("bar: 1h", "bar: 1d"), "x.policy").policy.bar_seconds
    assert (Duration(1, "w").bars(daily), Duration(3, "d").bars(daily)) == (week, 3)


def test_annualisation_counts_the_calendars_bars_a_year():
    """Bars a year: exchange_calendars' hourly bars (and sessions) of 2015-2024, over those
    years; without a calendar, 252 days of 6.5 hours."""
    ts, _ = hourly_index("XNYS", "2015-01-01", "2024-12-31")
    years = (np.datetime64("2024-12-31") - np.datetime64("2015-01-01") + 1).astype(int) / 365.25
    engine = Engine.from_policy(check_text(TEXT, "x.policy").policy, ["AAPL"])
    assert engine.bars_per_year == pytest.approx(len(ts) / years, rel=1e-12)
    assert engine.calendar == "XNYS" and engine.bar_seconds == 3600
    sessions = len(calendar("XNYS").sessions_in_range("2015-01-01", "2024-12-31"))
    daily = check_text(TEXT.replace("bar: 1h", "bar: 1d"), "x.policy").policy
    assert Engine.from_policy(daily, ["AAPL"]).bars_per_year == pytest.approx(sessions / years)
    plain = check_text(TEXT.replace("  calendar: XNYS\n", ""), "x.policy").policy
    assert Engine.from_policy(plain, ["AAPL"]).bars_per_year == 252 * 6.5


# -- refusals -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, near", [("XNSY", "XNYS"), ("xnys", "XNYS"), ("XLNO", "XLON")])
def test_an_unknown_calendar_is_refused_with_a_suggestion(name, near):
    result = check_text(TEXT.replace("calendar: XNYS", f"calendar: {name}"), "x.policy")
    (d,) = result.errors
    assert d.code == "E0305" and f"`{name}` is not a trading calendar" in d.message
    assert f"did you mean `{near}`?" in d.help and d.span.line == TEXT[:TEXT.index(
        "calendar: XNYS")].count("\n") + 1


def test_an_alias_of_the_package_is_a_calendar():
    assert check_text(TEXT.replace("calendar: XNYS", "calendar: NYSE"), "x.policy").ok


def test_bars_stamped_at_their_close_are_refused_naming_the_first(tmp_path):
    """Hourly bars stamped at the end of each hour put the last bar of the day at 16:00 New
    York, the close: the backtest refuses the file (exit 2) and names that bar."""
    ts, _ = hourly_index("XNYS", "2024-11-25", "2024-11-26")
    stamped = ts + 3600 * 10**9
    n = len(ts)
    path = tmp_path / "late.parquet"
    write_bars(path, stamped.astype("datetime64[ns]"), ["AAPL"] * n, *([np.full(n, 100.0)] * 4),
               np.full(n, 1e6))
    result = CliRunner().invoke(cli.main, ["backtest", str(EXAMPLE), "--data", str(path),
                                           "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "bar 6 at 2024-11-25T21:30 UTC lies outside the sessions" in result.output
    assert "2 of 14 bars are outside" in result.output and "Traceback" not in result.output
    panel, _ = load_bars(path)
    with pytest.raises(RunError, match="universe.calendar: XNYS"):
        check_sessions(panel, str(path), "policy", 3600, "XNYS")


def test_paper_trading_refuses_a_bar_outside_the_sessions():
    engine = Engine.from_policy(check_text(TEXT, "x.policy").policy, ["AAPL"])
    runner = SimpleNamespace(engine=engine)
    assert PaperRunner.off_session(runner, ns("2024-11-26T14:30")) is None
    why = PaperRunner.off_session(runner, ns("2024-11-28T15:30"))     # Thanksgiving
    assert why is not None and "outside the sessions of the `XNYS` calendar" in why


# -- TWAP over the rest of the session ------------------------------------------------------------

def test_twap_without_a_horizon():
    s = twap.Settings(algo="twap")
    assert s.rest_of_session(3600) and not s.rest_of_session(86_400)
    assert s.horizon_bars(86_400) == 5          # daily bars: five bars, as before
    assert not twap.Settings(algo="twap", horizon=3).rest_of_session(3600)


@pytest.fixture(scope="module")
def example():
    policy = check_text(TEXT, str(EXAMPLE)).policy
    panel, _ = load_bars(default_data(["AAPL"], 3600), end="2024-10-15")
    engine = Engine.from_policy(policy, panel.symbols)
    return engine, panel, backtest(engine, panel)


def test_twap_works_each_parent_over_the_rest_of_its_session(example):
    """Every parent that nothing replaced sends equal children (within a share, whole shares)
    on each bar left in the session where its orders fill, and is done at that session's last
    bar, per exchange_calendars' own trading index."""
    engine, panel, result = example
    ts_ref, sess_ref = hourly_index("XNYS", "2024-08-01", "2024-10-31")
    last_bar = {int(s): int(ts_ref[sess_ref == s].max()) for s in np.unique(sess_ref)}
    session_of = dict(zip(ts_ref.tolist(), sess_ref.tolist()))
    orders, fills = result.out["order_qty"][:, 0], result.out["fill_qty"][:, 0]
    start, qty = result.out["parent_start"][:, 0], result.out["parent_qty"][:, 0]
    opened = [t for t in range(panel.T) if start[t] == t and qty[t] != 0]
    checked = 0
    for t in opened:
        left = int(engine.session_fields(panel.ts[t:t + 1])["session_left"][0])
        if t + left >= panel.T or (start[t:t + left] != t).any() or \
                fills[t + 1:t + left + 1].sum() != qty[t]:
            continue                 # replaced by a new target, or not filled (no volume)
        kids = orders[t:t + left]
        assert (np.sign(kids) == np.sign(qty[t])).all(), kids
        assert np.abs(kids).max() - np.abs(kids).min() <= 1, kids
        done = int(panel.ts[t + left])         # the bar of the last fill
        assert done == last_bar[session_of[done]], t
        checked += 1
    assert checked >= 5, checked


def test_the_example_annualises_by_the_calendar(example):
    engine, _, result = example
    e = result.out["equity"]
    r = e[1:] / e[:-1] - 1
    assert result.metrics["volatility"] == pytest.approx(
        np.std(r, ddof=1) * np.sqrt(engine.bars_per_year), rel=1e-9)


def test_paper_replay_adds_the_session_fields_and_refuses_an_after_hours_bar(example, tmp_path):
    """Paper trading on the hourly bars with one bar after the close (17:30 New York) slipped
    in: that bar is refused, and every other decision is the backtest's, bit for bit."""
    from crowe.runtime.paper.feed import ReplayFeed
    from crowe.runtime.paper.journal import Journal, decision_digest
    from paperkit.fixture import runtime_key, runtime_trust
    engine, panel, _ = example
    part = panel._take(slice(0, 60), slice(None))
    late = ns("2024-08-06T21:30")
    at = int(np.searchsorted(part.ts, late))
    ts = np.insert(part.ts, at, late)
    cols = {k: np.insert(getattr(part, k)[:, 0], at, getattr(part, k)[at - 1, 0])
            for k in ("open", "high", "low", "close", "volume")}
    path = tmp_path / "feed.parquet"
    write_bars(path, ts.astype("datetime64[ns]"), ["AAPL"] * len(ts), cols["open"],
               cols["high"], cols["low"], cols["close"], cols["volume"])
    summary = PaperRunner(engine, tmp_path / "state", "digest", signer=runtime_key(),
                          trusted=runtime_trust(), max_ahead_ns=None).run(
        ReplayFeed(str(path), ["AAPL"]))
    assert summary.refused == 1 and summary.processed == part.T
    ref = backtest(engine, part).out
    records, _ = Journal(tmp_path / "state").read()
    for t, rec in enumerate(records):
        assert rec["decision"] == decision_digest({k: ref[k][t] for k in ref}), t


def test_run_json_records_the_calendar(example):
    """A results directory says which calendar its bars were counted on: the annualisation and
    every `1d` window depend on it."""
    from crowe.runtime.manifest import build_manifest
    engine, panel, _ = example
    prep = SimpleNamespace(panel=panel, start=0, data_path="aapl_hourly.parquet",
                           report=SimpleNamespace(sha256="0" * 64))
    check = check_text(TEXT, str(EXAMPLE))
    period = build_manifest(str(EXAMPLE), engine, {}, prep, 1e6, {}, check=check)["period"]
    assert period["calendar"] == "XNYS"
