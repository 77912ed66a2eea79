"""Checker bugs found by the golden and property tests, one test each, on a small valid policy
with one line changed."""
from __future__ import annotations

import pytest

from crowe.dsl.diagnostics import did_you_mean, render_text
from crowe.dsl.policy import check_text

BASE = """\
policy: regress_v1
version: 1.0.0
owner: CR-001
universe: {symbols: [AAPL, MSFT, IBM], bar: 1d}
params:
  lookback: {default: 20, range: [5, 60]}
features:
  r1:  ret(close, 1)
  vol: stdev(r1, lookback)
signal:
  horizon: 1d
  mu:    0.1 * vol
  sigma: vol
gates:
  calm: vol < 5%
sizing: {method: equal}
risk:
  gross_max: 100%
  net_max: 50%
  position_max: 5%
  drawdown: {from_peak: {max: 10%, action: halt}}
execution: {algo: market}
stand_down:
  data_gap: {max_missing: 5%, action: halt}
compliance:
  restricted: [IBM]
"""


def check(old: str, new: str):
    assert old in BASE
    return check_text(BASE.replace(old, new, 1), "r.policy")


def codes(result) -> list[str]:
    return [d.code for d in result.diagnostics]


def test_base_is_clean():
    assert check("", "").diagnostics == []


@pytest.mark.parametrize("old, new", [
    ("sigma: vol", "sigma: 0.02"),                   # a number is an expression
    ("calm: vol < 5%", "calm: true"),                # so is a boolean
    ("mu:    0.1 * vol", "mu:    0"),
])
def test_numbers_and_booleans_are_expressions(old, new):
    result = check(old, new)
    assert [d for d in result.diagnostics if d.is_error] == []


def test_an_empty_expression_is_e0205_like_an_empty_string():
    assert codes(check("calm: vol < 5%", "calm:")) == ["E0205"]
    assert codes(check("calm: vol < 5%", 'calm: ""')) == ["E0205"]


@pytest.mark.parametrize("line", ["  max_order_notional: " + "9" * 400,
                                  "  max_order_shares: " + "9" * 400])
def test_huge_integers_are_diagnostics(line):
    result = check("  restricted: [IBM]", "  restricted: [IBM]\n" + line)
    assert codes(result) == ["E0304"]


@pytest.mark.parametrize("old, new, message, help", [
    ("action: halt}}", "action: reduce}}", "`reduce` takes one argument, the share of "
     "exposure to remove", "write `reduce(50%)`"),
    ("action: halt}}", "action: halt(5)}}", "`halt` takes no argument", "write `halt`"),
])
def test_actions_written_with_wrong_arguments(old, new, message, help):
    [d] = check(old, new).diagnostics
    assert (d.code, d.message, d.help) == ("E0508", message, help)


def test_units_mixed_in_a_call():
    [d] = check("sigma: vol", "sigma: clip(vol, close, 1)").diagnostics
    assert d.message == "cannot mix dimensionless and price in `clip`"


def test_fractional_unit_exponents_read_as_decimals():
    [d] = check("sigma: vol", "sigma: (vol * close) ^ 0.3 / close").diagnostics
    assert d.code == "E0603" and d.message.endswith("found price^-0.7")


def test_quoting_help_shows_the_value_as_written():
    [d] = check("restricted: [IBM]", "restricted: [IBM, 7203]").diagnostics
    assert (d.code, d.help) == ("E0303", 'quote it (`"7203"`) to make it text')
    [d] = check("version: 1.0.0", "version: 1.0").diagnostics
    assert d.help == "write three numbers as text, such as `1.0.0`"


def test_a_number_for_a_choice_is_a_type_error():
    [d] = check("symbols: [AAPL, MSFT, IBM]", "symbols: 42").diagnostics
    assert (d.code, d.message) == ("E0303", "expected `from_data`, found the number `42`")


def test_quantity_advice_goes_in_the_help_line():
    [d] = check("bar: 1d", "bar: 1 day").diagnostics
    assert d.message == "`1 day` is not a duration"
    assert d.help == "write e.g. `5d`, `30m`, `1h` or a whole number of bars"


def test_did_you_mean_completes_a_short_word():
    assert did_you_mean("kelly", ["kelly_tempered", "vol_target", "equal"]) == "kelly_tempered"
    assert did_you_mean("vol", ["vol_target", "vol_window"]) is None  # ambiguous
    assert did_you_mean("eq", ["equal"]) is None                      # too short to tell


def test_two_labels_on_one_line_share_it():
    result = check("vol: stdev(r1, lookback)", "vol: stdev(r1, lookback")
    [d] = result.diagnostics
    text = render_text(d, result.source)
    assert text.count("vol: stdev(r1, lookback") == 1
    assert "never closed" in text and "expression ends here" in text


def test_one_broken_gate_does_not_hide_another():
    result = check("  calm: vol < 5%", "  calm: [vol]\n  edge: prob_edge > theta")
    assert sorted(codes(result)) == ["E0303", "E0401"]


@pytest.mark.parametrize("old, new, code", [
    ("sigma: vol", "sigma: 0", "E0510"),                          # can never trade
    ("sigma: vol", "sigma: -1%", "E0510"),
    ("sizing: {method: equal}", "sizing: {method: inverse_vol, vol_window: 1}", "E0304"),
    ("sizing: {method: equal}", "sizing: {method: equal, vol_window: 20}", "E0304"),   # unread
    ("sizing: {method: equal}", "sizing: {method: equal, lambda: 0.3}", "E0301"),
    ("execution: {algo: market}", "execution: {algo: market, limit_offset: 3bps}", "E0301"),
    ("execution: {algo: market}", "execution: {algo: pov, participation: 20%}", "E0304"),
    ("execution: {algo: market}", "execution: {algo: market, horizon: 5}", "E0301"),
    ("execution: {algo: market}", "execution: {algo: twap, horizon: 36h}", "E0702"),
    ("execution: {algo: market}", "execution: {algo: market, rebalance: {every: 2mon}}",
     "E0304"),
    ("horizon: 1d", "horizon: 5d", "E0306"),                      # nothing reads it
    ("bar: 1d}", "bar: 1d, calendar: XNSY}", "E0305"),           # not a trading calendar
    ("restricted: [IBM]", "restricted: [IBM]\n  wash_trade_prevention: true", "E0306"),
    ("max: 10%, action: halt}", "max: 10%, action: halt, method: parametric}", "E0301"),
])
def test_settings_without_behaviour_or_that_can_never_trade_are_refused(old, new, code):
    result = check(old, new)
    assert code in codes(result), codes(result)
    assert all(d.help for d in result.errors if d.code in ("E0301", "E0306"))


def test_a_setting_of_another_method_names_its_owner():
    result = check("sizing: {method: equal}", "sizing: {method: kelly_tempered, lambda: 0.3, "
                   "budget: 50%}")
    (d,) = [d for d in result.errors if d.code == "E0301"]
    assert "`budget`" in d.message and "`kelly_tempered`" in d.message
    assert "`equal`" in d.help and "`inverse_vol`" in d.help


@pytest.mark.parametrize("method, refused", [("hrp", True), ("risk_parity", True),
                                              ("min_variance", True), ("kelly, lambda: 0.5", False),
                                              ("mean_variance", False)])
def test_a_horizon_is_refused_where_the_portfolio_method_does_not_read_it(method, refused):
    text = BASE.replace("horizon: 1d", "horizon: 5d").replace(
        "sizing: {method: equal}", f"portfolio: {{method: {method}}}")
    result = check_text(text, "r.policy")
    assert codes(result) == (["E0306"] if refused else []), codes(result)
    if refused:
        assert "does not read the forecast" in result.errors[0].message


def test_sizing_and_portfolio_together_are_refused():
    result = check("sizing: {method: equal}", "sizing: {method: equal}\nportfolio: "
                   "{method: mean_variance}")
    assert "E0314" in codes(result)


# -- contradictions a risk officer would want reported (issue 13) -------------------------------

def test_a_fully_restricted_universe_can_never_trade():
    result = check("  restricted: [IBM]", "  restricted: [IBM, MSFT, AAPL]")
    assert codes(result) == ["E0510"]
    assert "every symbol of the universe is restricted" in result.diagnostics[0].message
    assert codes(check("  restricted: [IBM]", "  restricted: [IBM, MSFT]")) == []


@pytest.mark.parametrize("net", ["0", "0%", "0bps"])
def test_long_only_with_a_net_limit_of_zero_allows_no_position(net):
    result = check("  restricted: [IBM]", "  restricted: [IBM]\n  shorting: {allowed: false}"
                   ).source.text.replace("net_max: 50%", f"net_max: {net}")
    result = check_text(result, "r.policy")
    assert codes(result) == ["E0510"]
    d = result.diagnostics[0]
    assert d.span.line == BASE.splitlines().index("  net_max: 50%") + 1
    assert [lb.message for lb in d.secondary] == ["shorting not allowed"]
    # with shorts, a net limit of 0 is a market-neutral book
    assert codes(check("  net_max: 50%", f"  net_max: {net}")) == []


def test_a_long_only_portfolio_with_a_net_limit_of_zero():
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "policies" / "mv_sector_v1.policy"
            ).read_text("utf-8")
    assert "net_max: 20%" in text and "portfolio:\n" in text
    text = text.replace("net_max: 20%", "net_max: 0").replace("portfolio:\n",
                                                              "portfolio:\n  long_only: true\n")
    result = check_text(text, "mv.policy")
    assert codes(result) == ["E0510"]
    assert [lb.message for lb in result.diagnostics[0].secondary] == ["a long-only portfolio"]


def test_a_symbol_restricted_and_located_is_a_warning():
    result = check("  restricted: [IBM]", "  restricted: [IBM]\n  shorting: {allowed: true, "
                   "locate_required: true, locates: [MSFT, IBM]}")
    assert codes(result) == ["W0305"]
    d = result.diagnostics[0]
    assert "`IBM` is restricted and also listed for locates" == d.message
    assert result.source.text[d.span.start:d.span.end] == "IBM"     # in the locates
    assert result.source.text[:d.span.start].endswith("locates: [MSFT, ")
