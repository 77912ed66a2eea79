"""Every setting the schema accepts does what it says, or it is refused.

`schema_paths()` walks the policy schema (generated from the component registries) and lists
every setting a policy can write. Each one must appear in `VARIANTS` (a change of that setting
that must change the decisions of a backtest, or that the checker must refuse) or in `METADATA`
(identity that the artifact records and that no decision reads). A setting added to the schema
without behaviour, or without an entry here, fails `test_every_setting_is_covered`.
"""
from __future__ import annotations

import copy
import typing
import types as pytypes

import numpy as np
import pytest
import yaml
from pydantic import BaseModel

import componentkit
import simkit
from crowe.dsl.policy import check_text
from crowe.dsl.schema import PolicySpec, Rules
from crowe.runtime.data import load_bars
from crowe.runtime.engine import ParamError
from crowe.stdlib.detectors import condition

# -- the settings the schema accepts --------------------------------------------------------------


def _members(tp) -> list:
    if typing.get_origin(tp) is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (typing.Union, pytypes.UnionType):
        return [m for a in typing.get_args(tp) for m in _members(a)]
    return [tp]


def _is_model(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _walk(tp, prefix: str, out: list) -> None:
    models = [m for m in _members(tp) if _is_model(m)]
    tag = next((k for k in ("method", "algo") if models and k in models[0].model_fields), None)
    if tag is not None and prefix in ("sizing", "portfolio", "execution"):
        shared = {n for n, f in models[0].model_fields.items()
                  if all(m.model_fields.get(n) is not None and
                         m.model_fields[n].annotation is f.annotation for m in models)}
        shared.discard(tag)
        if len(models) == 1:
            shared = set()
        for m in models:
            name = typing.get_args(m.model_fields[tag].annotation)[0]
            _walk_model(m, f"{prefix}[{name}]", out, skip={tag} | shared)
        if shared:
            _walk_model(models[0], f"{prefix}[*]", out, only=shared)
        out.append(f"{prefix}.{tag}")
        return
    if models:
        _walk_model(models[0], prefix, out)
        return
    plain = [m for m in _members(tp) if m is not type(None)]
    t = plain[0] if plain else tp
    if typing.get_origin(t) is dict:
        value = typing.get_args(t)[1]
        if any(_is_model(m) for m in _members(value)):
            _walk(value, prefix + ".*", out)
        else:
            out.append(prefix + ".*")
        return
    out.append(prefix)


def _walk_model(m, prefix: str, out: list, skip=(), only=None) -> None:
    for n, f in m.model_fields.items():
        if n in skip or (only is not None and n not in only):
            continue
        key = f.alias or n
        _walk(f.annotation, f"{prefix}.{key}" if prefix else key, out)
    if issubclass(m, Rules):
        _walk_model(condition.Settings, prefix + ".*", out)


def schema_paths() -> list[str]:
    out: list[str] = []
    _walk_model(PolicySpec, "", out)
    return out


# -- the policies the variants start from ---------------------------------------------------------

SYMBOLS = ["AAPL", "GOOG", "IBM", "MSFT"]

# The smallest policy: each variant adds the component under test to it, so that no other
# component (a drawdown limit that halts for good, say) hides what the setting does.
MIN = {
    "policy": "walk", "version": "1.0.0", "owner": "CR-001",
    "universe": {"symbols": SYMBOLS, "bar": "1d"},
    "params": {"fast": {"default": 10, "range": [5, 30]},
               "slow": {"default": 50, "range": [30, 120]}},
    "features": {"r1": "ret(close, 1)", "vol": "stdev(r1, 20)",
                 "trend": "mean(close, fast) / mean(close, slow) - 1"},
    "signal": {"mu": "0.3 * trend * vol", "sigma": "vol"},
    "sizing": {"method": "kelly_tempered", "lambda": 0.5},
    "risk": {"gross_max": "150%", "position_max": "45%"},
    "execution": {"algo": "market", "participation_cap": "2%"},
    "stand_down": {"data_gap": {"max_missing": "10%", "action": "halt"}},
}


def plus(base: dict | None = None, **changes) -> dict:
    """A copy of `base` (MIN) with settings set at dotted paths (`risk__net_max`: `__` for a
    dot); None removes a setting."""
    d = copy.deepcopy(MIN if base is None else base)
    for path, value in changes.items():
        keys = path.split("__")
        node = d
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is None:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = copy.deepcopy(value)
    return d


OPTIMIZED = plus(sizing=None, signal={"horizon": "5d", "mu": "0.5 * trend * vol", "sigma": "vol"},
                 portfolio={"method": "mean_variance", "risk_aversion": 2,
                            "turnover_penalty": "2bps", "l1_penalty": "1bps",
                            "covariance": {"estimator": "ledoit_wolf", "window": 60},
                            "iterations": 50})
ALLOCATE = plus(sizing=None, signal={"mu": "0.5 * trend * vol", "sigma": "vol"})
HRP = plus(ALLOCATE, portfolio={"method": "hrp", "covariance": {"window": 60}})
PARITY = plus(ALLOCATE, portfolio={"method": "risk_parity", "covariance": {"window": 60}})
MINVAR = plus(ALLOCATE, portfolio={"method": "min_variance", "covariance": {"window": 60}})
KELLY = plus(OPTIMIZED, portfolio={"method": "kelly", "lambda": 0.5, "covariance": {"window": 60}})
SECTORS = plus(universe__sectors={"AAPL": "hardware", "GOOG": "internet", "IBM": "hardware",
                                  "MSFT": "software"}, risk__sector_max="70%")
VAR = plus(risk__var={"confidence": "95%", "window": 60, "max": "3%"})
ES = plus(risk__es={"confidence": "95%", "window": 60, "max": "4%"})
INTRADAY = plus(risk__drawdown={"intraday": {"max": "3%", "action": "reduce(50%)",
                                             "cooldown": "2d"}})
FROM_PEAK = plus(risk__drawdown={"from_peak": {"max": "20%", "action": "halt",
                                               "cooldown": "5d"}})
TRAILING = plus(risk__trailing_stop={"multiple": 2, "window": 20, "action": "reduce(50%)",
                                     "cooldown": "3d"})
LIMIT = plus(execution={"algo": "limit", "participation_cap": "2%", "limit_offset": "10bps"})
SCHEDULED = {"participation_cap": "2%", "rebalance": {"every": "1mo"}}
ALGOS = {a: plus(execution={"algo": a, **SCHEDULED, **extra}) for a, extra in (
    ("twap", {}), ("vwap", {}), ("is", {"risk_aversion": 1e-5}), ("limit_ladder", {}),
    ("pov", {"participation": "2%"}))}
TWAP = ALGOS["twap"]
GAP = plus(stand_down__data_gap={"max_missing": "10%", "action": "halt", "cooldown": "2d"})
SPIKE = plus(stand_down__vol_spike={"sigma": 3, "window": 20, "action": "exclude",
                                    "cooldown": "2d"})
STREAK = plus(stand_down__loss_streak={"losses": 3, "action": "reduce(50%)", "cooldown": "3d"})
DIP = plus(stand_down__dip={"when": "r1 < -3%", "action": "exclude", "cooldown": "3d"})
REGIME = plus(stand_down__regime={"window": 126, "refit": 21, "threshold": "80%",
                                  "action": "halt", "cooldown": "2d"})
CHANGE = plus(stand_down__change_point={"scale": "1%", "action": "halt", "cooldown": "2d"})
DRIFT = plus(stand_down__drift={"window": 21, "reference": 126, "ks_max": 0.4, "action": "halt",
                                "cooldown": "2d"})
SENTINEL = plus(stand_down__crash_sentinel={"window": 42, "z_window": 126, "reduce_above": 6,
                                            "flatten_above": 10, "action": "reduce(50%)",
                                            "cooldown": "5d"})
LOCATES = plus(compliance={"shorting": {"allowed": True, "locate_required": True,
                                        "locates": ["GOOG", "IBM", "MSFT"]}})
WEIGHT = plus(signal=None, sizing={"method": "weight", "weight": "where(trend > 0, 20%, -10%)"})
CONSTRAINED = plus(OPTIMIZED, universe__sectors=SECTORS["universe"]["sectors"],
                   features__mkt_beta="vol / cs_mean(vol)",
                   portfolio__constraints={"gross": "150%"})
STRESS = plus(SECTORS, risk__sector_max=None,
              risk__stress={"max": "5%", "window": 60, "scenarios": {
                  "crash": {"market": "-20%"}, "panic": {"vol": 2},
                  "chips": {"sector": {"hardware": "-30%"}}}})
FLIP = plus(compliance={"flip_guard": {"max_flips": 2, "window": 10}})
# Every order rule with a loose setting, for the variants that tighten one
ORDERS = plus(compliance={"max_order_shares": 10**7, "max_order_notional": 1e10,
                          "price_collar": "50%"})
# Hourly AAPL bars (the bundled `aapl_hourly.parquet`): a calendar turns `1d` into one session
HOURLY = plus(params=None, universe={"symbols": ["AAPL"], "bar": "1h"},
              features__trend="mean(close, 1d) / mean(close, 5d) - 1")
SIZES = {m: plus(sizing={"method": m, **extra}) for m, extra in (
    ("vol_target", {"vol_target": "10%"}), ("equal", {}), ("inverse_vol", {}))}


# Each entry: setting -> (base, variant, expectation[, panel]); the expectation is "changes"
# (the variant's decisions differ from the base's) or "refused" (the checker refuses it); the
# panel is "gappy" for the data-gap rule, which needs bars missing.
VARIANTS = {
    "universe.symbols": (MIN, plus(universe__symbols=SYMBOLS[:3]), "changes"),
    "universe.bar": (MIN, plus(universe__bar="1h"), "changes"),
    "universe.calendar": (HOURLY, plus(HOURLY, universe__calendar="XNYS"), "changes",
                          "hourly"),
    "universe.sectors.*": (SECTORS, plus(SECTORS, universe__sectors__MSFT="hardware"),
                           "changes"),
    "params.*.default": (MIN, plus(params__fast__default=20), "changes"),
    "features.*": (MIN, plus(features__vol="stdev(r1, 40)"), "changes"),
    "signal.horizon": (OPTIMIZED, plus(OPTIMIZED, signal__horizon="1d"), "changes"),
    "signal.mu": (MIN, plus(signal__mu="0.6 * trend * vol"), "changes"),
    "signal.sigma": (MIN, plus(signal__sigma="2 * vol"), "changes"),
    "signal.cost": (plus(gates={"edge": "prob_edge > 0.51"}),
                    plus(gates={"edge": "prob_edge > 0.51"}, signal__cost="10bps"), "changes"),
    "gates.*": (MIN, plus(gates={"edge": "prob_edge > 0.6"}), "changes"),
    "sizing.method": (MIN, SIZES["equal"], "changes"),
    "sizing[kelly_tempered].lambda": (MIN, plus(sizing__lambda=0.2), "changes"),
    "sizing[kelly_tempered].vol_target": (MIN, plus(sizing__vol_target="10%"), "changes"),
    "sizing[*].vol_window": (SIZES["inverse_vol"],
                             plus(SIZES["inverse_vol"], sizing__vol_window=20), "changes"),
    "sizing[vol_target].vol_target": (SIZES["vol_target"],
                                      plus(SIZES["vol_target"], sizing__vol_target="20%"),
                                      "changes"),
    "sizing[equal].vol_target": (SIZES["equal"], plus(SIZES["equal"], sizing__vol_target="5%"),
                                 "changes"),
    "sizing[equal].budget": (SIZES["equal"], plus(SIZES["equal"], sizing__budget="50%"),
                             "changes"),
    "sizing[inverse_vol].vol_target": (SIZES["inverse_vol"],
                                       plus(SIZES["inverse_vol"], sizing__vol_target="5%"),
                                       "changes"),
    "sizing[weight].weight": (WEIGHT, plus(WEIGHT, sizing__weight="where(trend > 0, 30%, 0)"),
                              "changes"),
    "sizing[weight].vol_target": (WEIGHT, plus(WEIGHT, sizing__vol_target="5%"), "changes"),
    "sizing[inverse_vol].budget": (SIZES["inverse_vol"],
                                   plus(SIZES["inverse_vol"], sizing__budget="50%"), "changes"),
    "portfolio.method": (OPTIMIZED, KELLY, "changes"),
    "portfolio[mean_variance].risk_aversion": (
        OPTIMIZED, plus(OPTIMIZED, portfolio__risk_aversion=20), "changes"),
    "portfolio[mean_variance].turnover_penalty": (
        OPTIMIZED, plus(OPTIMIZED, portfolio__turnover_penalty="50bps"), "changes"),
    "portfolio[mean_variance].l1_penalty": (
        OPTIMIZED, plus(OPTIMIZED, portfolio__l1_penalty="30bps"), "changes"),
    "portfolio[mean_variance].long_only": (
        OPTIMIZED, plus(OPTIMIZED, portfolio__long_only=True), "changes"),
    "portfolio[*].covariance.estimator": (
        OPTIMIZED, plus(OPTIMIZED, portfolio__covariance__estimator="sample"), "changes"),
    "portfolio[*].covariance.window": (
        OPTIMIZED, plus(OPTIMIZED, portfolio__covariance__window=30), "changes"),
    "portfolio[mean_variance].iterations": (
        OPTIMIZED, plus(OPTIMIZED, portfolio__iterations=3), "changes"),
    "portfolio[hrp].budget": (HRP, plus(HRP, portfolio__budget="50%"), "changes"),
    "portfolio[risk_parity].budget": (PARITY, plus(PARITY, portfolio__budget="50%"), "changes"),
    "portfolio[risk_parity].budgets.*": (PARITY, plus(PARITY, portfolio__budgets={"IBM": 3}),
                                         "changes"),
    "portfolio[risk_parity].iterations": (PARITY, plus(PARITY, portfolio__iterations=1),
                                          "changes"),
    "portfolio[min_variance].budget": (MINVAR, plus(MINVAR, portfolio__budget="50%"),
                                       "changes"),
    "portfolio[min_variance].long_only": (MINVAR, plus(MINVAR, portfolio__long_only=True),
                                          "changes"),
    "portfolio[min_variance].iterations": (MINVAR, plus(MINVAR, portfolio__iterations=3),
                                           "changes"),
    "portfolio[kelly].lambda": (KELLY, plus(KELLY, portfolio__lambda=0.2), "changes"),
    "portfolio[mean_variance].constraints.net": (
        CONSTRAINED, plus(CONSTRAINED, portfolio__constraints__net=["-5%", "5%"]), "changes"),
    "portfolio[mean_variance].constraints.gross": (
        CONSTRAINED, plus(CONSTRAINED, portfolio__constraints__gross="50%"), "changes"),
    "portfolio[mean_variance].constraints.sector_net": (
        CONSTRAINED, plus(CONSTRAINED, portfolio__constraints__sector_net=["-10%", "10%"]),
        "changes"),
    "portfolio[mean_variance].constraints.sector_gross": (
        CONSTRAINED, plus(CONSTRAINED, portfolio__constraints__sector_gross="30%"), "changes"),
    "portfolio[mean_variance].constraints.exposure.*": (
        CONSTRAINED, plus(CONSTRAINED, portfolio__constraints__exposure={"mkt_beta": [-0.1, 0.1]}),
        "changes"),
    "risk.position_max": (MIN, plus(risk__position_max="20%"), "changes"),
    "risk.sector_max": (SECTORS, plus(SECTORS, risk__sector_max="40%"), "changes"),
    "risk.net_max": (MIN, plus(risk__net_max="20%"), "changes"),
    "risk.gross_max": (MIN, plus(risk__gross_max="80%"), "changes"),
    "risk.var.confidence": (VAR, plus(VAR, risk__var__confidence="99%"), "changes"),
    "risk.var.window": (VAR, plus(VAR, risk__var__window=30), "changes"),
    "risk.var.max": (VAR, plus(VAR, risk__var__max="2%"), "changes"),
    "risk.es.confidence": (ES, plus(ES, risk__es__confidence="99%"), "changes"),
    "risk.es.window": (ES, plus(ES, risk__es__window=30), "changes"),
    "risk.es.max": (ES, plus(ES, risk__es__max="3%"), "changes"),
    "risk.var.method": (VAR, plus(VAR, risk__var__method="parametric"), "changes"),
    "risk.es.method": (ES, plus(ES, risk__es__method="parametric"), "changes"),
    "risk.stress.max": (STRESS, plus(STRESS, risk__stress__max="3%"), "changes"),
    "risk.stress.window": (STRESS, plus(STRESS, risk__stress__window=30), "changes"),
    "risk.stress.confidence": (STRESS, plus(STRESS, risk__stress__confidence="99.9%"),
                               "changes"),
    "risk.stress.scenarios.*.market": (
        STRESS, plus(STRESS, risk__stress__scenarios__crash__market="-80%"), "changes"),
    "risk.stress.scenarios.*.sector.*": (
        STRESS, plus(STRESS, risk__stress__scenarios__chips__sector={"hardware": "-90%"}),
        "changes"),
    "risk.stress.scenarios.*.vol": (
        STRESS, plus(STRESS, risk__stress__scenarios__panic__vol=4), "changes"),
    "risk.drawdown.intraday.action": (
        INTRADAY, plus(INTRADAY, risk__drawdown__intraday__action="flatten"), "changes"),
    "risk.drawdown.intraday.cooldown": (
        INTRADAY, plus(INTRADAY, risk__drawdown__intraday__cooldown="10d"), "changes"),
    "risk.drawdown.intraday.max": (
        INTRADAY, plus(INTRADAY, risk__drawdown__intraday__max="5%"), "changes"),
    "risk.drawdown.from_peak.action": (
        FROM_PEAK, plus(FROM_PEAK, risk__drawdown__from_peak__action="flatten"), "changes"),
    "risk.drawdown.from_peak.cooldown": (
        FROM_PEAK, plus(FROM_PEAK, risk__drawdown__from_peak__cooldown="60d"), "changes"),
    "risk.drawdown.from_peak.max": (
        FROM_PEAK, plus(FROM_PEAK, risk__drawdown__from_peak__max="30%"), "changes"),
    "risk.drawdown.from_peak.reset_peak_after_cooldown": (
        FROM_PEAK, plus(FROM_PEAK, risk__drawdown__from_peak__reset_peak_after_cooldown=True),
        "changes"),
    "risk.trailing_stop.action": (
        TRAILING, plus(TRAILING, risk__trailing_stop__action="flatten"), "changes"),
    "risk.trailing_stop.cooldown": (
        TRAILING, plus(TRAILING, risk__trailing_stop__cooldown="10d"), "changes"),
    "risk.trailing_stop.multiple": (
        TRAILING, plus(TRAILING, risk__trailing_stop__multiple=1), "changes"),
    "risk.trailing_stop.window": (
        TRAILING, plus(TRAILING, risk__trailing_stop__window=40), "changes"),
    "execution.algo": (MIN, plus(execution__algo="twap"), "changes"),
    "execution[*].remainder": (TWAP, plus(TWAP, execution__remainder="cancel"), "changes"),
    "execution[*].rebalance.every": (TWAP, plus(TWAP, execution__rebalance={"every": "1w"}),
                                     "changes"),
    "execution[*].rebalance.drift": (TWAP, plus(TWAP, execution__rebalance__drift="5%"),
                                     "changes"),
    "execution[twap].horizon": (TWAP, plus(TWAP, execution__horizon="10d"), "changes"),
    "execution[vwap].horizon": (ALGOS["vwap"], plus(ALGOS["vwap"], execution__horizon=10),
                                "changes"),
    "execution[is].horizon": (ALGOS["is"], plus(ALGOS["is"], execution__horizon=10),
                              "changes"),
    "execution[is].risk_aversion": (ALGOS["is"], plus(ALGOS["is"],
                                                      execution__risk_aversion=1e-3), "changes"),
    "execution[limit_ladder].horizon": (ALGOS["limit_ladder"],
                                        plus(ALGOS["limit_ladder"], execution__horizon=2),
                                        "changes"),
    "execution[pov].participation": (ALGOS["pov"], plus(ALGOS["pov"],
                                                        execution__participation="0.01%"),
                                     "changes"),
    "execution[*].participation_cap": (MIN, plus(execution__participation_cap="0.01%"),
                                       "changes"),
    "execution[*].price": (MIN, plus(execution__price="vwap"), "changes"),
    "execution[*].costs.commission": (MIN, plus(execution__costs={"commission": "10bps"}),
                                      "changes"),
    "execution[*].costs.half_spread": (MIN, plus(execution__costs={"half_spread": "10bps"}),
                                       "changes"),
    "execution[*].costs.impact": (MIN, plus(execution__costs={"impact": 1.0}), "changes"),
    "execution[*].costs.borrow": (MIN, plus(execution__costs={"borrow": "5%"}), "changes"),
    "execution[*].costs.financing": (MIN, plus(execution__costs={"financing": "20%"}),
                                     "changes"),
    "execution[*].max_orders_per_bar": (MIN, plus(execution__max_orders_per_bar=1), "changes"),
    "execution[*].max_orders_per_minute": (MIN, plus(execution__max_orders_per_minute=1),
                                           "changes"),
    "execution[limit].limit_offset": (LIMIT, plus(LIMIT, execution__limit_offset="1%"),
                                      "changes"),
    "stand_down.data_gap.action": (
        GAP, plus(GAP, stand_down__data_gap__action="flatten"), "changes", "gappy"),
    "stand_down.data_gap.cooldown": (
        GAP, plus(GAP, stand_down__data_gap__cooldown="20d"), "changes", "gappy"),
    "stand_down.data_gap.max_missing": (
        GAP, plus(GAP, stand_down__data_gap__max_missing="30%"), "changes", "gappy"),
    "stand_down.vol_spike.action": (
        SPIKE, plus(SPIKE, stand_down__vol_spike__action="reduce(50%)"), "changes"),
    "stand_down.vol_spike.cooldown": (
        SPIKE, plus(SPIKE, stand_down__vol_spike__cooldown="10d"), "changes"),
    "stand_down.vol_spike.sigma": (SPIKE, plus(SPIKE, stand_down__vol_spike__sigma=2),
                                   "changes"),
    "stand_down.vol_spike.window": (SPIKE, plus(SPIKE, stand_down__vol_spike__window=60),
                                    "changes"),
    "stand_down.loss_streak.action": (
        STREAK, plus(STREAK, stand_down__loss_streak__action="halt"), "changes"),
    "stand_down.loss_streak.cooldown": (
        STREAK, plus(STREAK, stand_down__loss_streak__cooldown="10d"), "changes"),
    "stand_down.loss_streak.losses": (
        STREAK, plus(STREAK, stand_down__loss_streak__losses=2), "changes"),
    "stand_down.regime.series": (
        REGIME, plus(REGIME, stand_down__regime__series="quantile(r1, 0.5)"), "changes"),
    "stand_down.regime.window": (
        REGIME, plus(REGIME, stand_down__regime__window=189), "changes"),
    "stand_down.regime.refit": (
        REGIME, plus(REGIME, stand_down__regime__refit=10), "changes"),
    "stand_down.regime.threshold": (
        REGIME, plus(REGIME, stand_down__regime__threshold="95%"), "changes"),
    "stand_down.regime.min_ratio": (
        REGIME, plus(REGIME, stand_down__regime__min_ratio=2), "changes"),
    "stand_down.regime.action": (
        REGIME, plus(REGIME, stand_down__regime__action="reduce(50%)"), "changes"),
    "stand_down.regime.cooldown": (
        REGIME, plus(REGIME, stand_down__regime__cooldown="10d"), "changes"),
    "stand_down.change_point.series": (
        CHANGE, plus(CHANGE, stand_down__change_point__series="quantile(r1, 0.5)"), "changes"),
    "stand_down.change_point.scale": (
        CHANGE, plus(CHANGE, stand_down__change_point__scale="3%"), "changes"),
    "stand_down.change_point.expected_run": (
        CHANGE, plus(CHANGE, stand_down__change_point__expected_run=50), "changes"),
    "stand_down.change_point.short_run": (
        CHANGE, plus(CHANGE, stand_down__change_point__short_run=5), "changes"),
    "stand_down.change_point.threshold": (
        CHANGE, plus(CHANGE, stand_down__change_point__threshold="30%"), "changes"),
    "stand_down.change_point.action": (
        CHANGE, plus(CHANGE, stand_down__change_point__action="reduce(50%)"), "changes"),
    "stand_down.change_point.cooldown": (
        CHANGE, plus(CHANGE, stand_down__change_point__cooldown="10d"), "changes"),
    "stand_down.drift.series": (
        DRIFT, plus(DRIFT, stand_down__drift__series="vol"), "changes"),
    "stand_down.drift.window": (
        DRIFT, plus(DRIFT, stand_down__drift__window=42), "changes"),
    "stand_down.drift.reference": (
        DRIFT, plus(DRIFT, stand_down__drift__reference=252), "changes"),
    "stand_down.drift.psi_max": (
        DRIFT, plus(DRIFT, stand_down__drift__psi_max=0.5), "changes"),
    "stand_down.drift.ks_max": (
        DRIFT, plus(DRIFT, stand_down__drift__ks_max=0.25), "changes"),
    "stand_down.drift.action": (
        DRIFT, plus(DRIFT, stand_down__drift__action="reduce(50%)"), "changes"),
    "stand_down.drift.cooldown": (
        DRIFT, plus(DRIFT, stand_down__drift__cooldown="10d"), "changes"),
    "stand_down.crash_sentinel.window": (
        SENTINEL, plus(SENTINEL, stand_down__crash_sentinel__window=63), "changes"),
    "stand_down.crash_sentinel.z_window": (
        SENTINEL, plus(SENTINEL, stand_down__crash_sentinel__z_window=252), "changes"),
    "stand_down.crash_sentinel.reduce_above": (
        SENTINEL, plus(SENTINEL, stand_down__crash_sentinel__reduce_above=4), "changes"),
    "stand_down.crash_sentinel.flatten_above": (
        SENTINEL, plus(SENTINEL, stand_down__crash_sentinel__flatten_above=8), "changes"),
    "stand_down.crash_sentinel.action": (
        SENTINEL, plus(SENTINEL, stand_down__crash_sentinel__action="halt"), "changes"),
    "stand_down.crash_sentinel.cooldown": (
        SENTINEL, plus(SENTINEL, stand_down__crash_sentinel__cooldown="20d"), "changes"),
    "stand_down.*.action": (DIP, plus(DIP, stand_down__dip__action="reduce(90%)"), "changes"),
    "stand_down.*.cooldown": (DIP, plus(DIP, stand_down__dip__cooldown="20d"), "changes"),
    "stand_down.*.when": (DIP, plus(DIP, stand_down__dip__when="r1 < -1%"), "changes"),
    "compliance.restricted": (MIN, plus(compliance__restricted=["GOOG"]), "changes"),
    "compliance.shorting.allowed": (MIN, plus(compliance__shorting={"allowed": False}),
                                    "changes"),
    "compliance.shorting.locate_required": (
        LOCATES, plus(LOCATES, compliance__shorting__locate_required=False), "changes"),
    "compliance.shorting.locates": (
        LOCATES, plus(LOCATES, compliance__shorting__locates=["IBM"]), "changes"),
    "compliance.max_order_shares": (ORDERS, plus(ORDERS, compliance__max_order_shares=500),
                                    "changes"),
    "compliance.max_order_notional": (ORDERS, plus(ORDERS, compliance__max_order_notional=2e4),
                                      "changes"),
    "compliance.price_collar": (ORDERS, plus(ORDERS, compliance__price_collar="3%"), "changes"),
    "compliance.flip_guard.max_flips": (FLIP, plus(FLIP, compliance__flip_guard__max_flips=4),
                                        "changes"),
    "compliance.flip_guard.window": (FLIP, plus(FLIP, compliance__flip_guard__window=40),
                                     "changes"),
    "execution[*].exits.stop_loss": (MIN, plus(execution__exits={"stop_loss": "3%"}),
                                     "changes"),
    "execution[*].exits.take_profit": (MIN, plus(execution__exits={"take_profit": "4%"}),
                                       "changes"),
    "execution[*].exits.trailing_stop": (MIN, plus(execution__exits={"trailing_stop": "2 atr"}),
                                         "changes"),
    "execution[*].lot": (MIN, plus(execution__lot="fractional"), "changes"),
}
FRAGILITY = plus(stand_down__fragility={"epsilon": "10bps", "max_change": "10%", "action": "halt",
                                        "cooldown": "2d"})
VARIANTS.update({
    "stand_down.fragility.epsilon": (
        FRAGILITY, plus(FRAGILITY, stand_down__fragility__epsilon="1%"), "changes"),
    "stand_down.fragility.max_change": (
        FRAGILITY, plus(FRAGILITY, stand_down__fragility__max_change="5%"), "changes"),
    "stand_down.fragility.action": (
        FRAGILITY, plus(FRAGILITY, stand_down__fragility__action="reduce(50%)"), "changes"),
    "stand_down.fragility.cooldown": (
        FRAGILITY, plus(FRAGILITY, stand_down__fragility__cooldown="10d"), "changes"),
})

# Identity and documentation: recorded in the artifact's manifest, read by no decision.
METADATA = {"policy", "version", "owner", "description", "params.*.doc"}
# Settings whose behaviour is a refusal at run time, proven here by calling it.
BOUNDS = {"params.*.range"}

# The action and cooldown of each limit and rule but the generic ones (`rule_changes`).
RULE_LEVEL = {f"{r}.{s}" for r in (
    "risk.drawdown.intraday",
    "risk.trailing_stop",
    "stand_down.data_gap",
    "stand_down.vol_spike",
    "stand_down.loss_streak",
    "stand_down.regime",
    "stand_down.change_point",
    "stand_down.drift",
    "stand_down.crash_sentinel",
    "stand_down.fragility",
) for s in ("action", "cooldown")}

# Settings that only their component reads, each proven on the component run alone over the
# inputs the step gave it in the base's backtest (`componentkit`): one small compile instead of a
# whole backtest's. Every setting in neither set changes the decisions of a whole backtest.
COMPONENT_LEVEL = {
    "compliance.max_order_shares",
    "compliance.max_order_notional",
    "compliance.price_collar",
    "compliance.flip_guard.max_flips",
    "compliance.flip_guard.window",
    "execution[is].horizon",
    "execution[is].risk_aversion",
    "execution[limit].limit_offset",
    "execution[pov].participation",
    "portfolio[*].covariance.estimator",
    "portfolio[*].covariance.window",
    "portfolio[hrp].budget",
    "portfolio[kelly].lambda",
    "portfolio[mean_variance].constraints.gross",
    "portfolio[mean_variance].constraints.net",
    "portfolio[mean_variance].constraints.sector_gross",
    "portfolio[mean_variance].constraints.sector_net",
    "portfolio[mean_variance].iterations",
    "portfolio[mean_variance].l1_penalty",
    "portfolio[mean_variance].long_only",
    "portfolio[mean_variance].risk_aversion",
    "portfolio[mean_variance].turnover_penalty",
    "portfolio[min_variance].budget",
    "portfolio[min_variance].iterations",
    "portfolio[min_variance].long_only",
    "portfolio[risk_parity].budget",
    "portfolio[risk_parity].budgets.*",
    "portfolio[risk_parity].iterations",
    "risk.drawdown.from_peak.max",
    "risk.drawdown.from_peak.reset_peak_after_cooldown",
    "risk.drawdown.intraday.max",
    "risk.es.confidence",
    "risk.es.max",
    "risk.es.method",
    "risk.es.window",
    "risk.gross_max",
    "risk.position_max",
    "risk.sector_max",
    "risk.stress.confidence",
    "risk.stress.max",
    "risk.stress.scenarios.*.market",
    "risk.stress.scenarios.*.sector.*",
    "risk.stress.scenarios.*.vol",
    "risk.stress.window",
    "risk.trailing_stop.multiple",
    "risk.trailing_stop.window",
    "risk.var.confidence",
    "risk.var.max",
    "risk.var.method",
    "risk.var.window",
    "sizing[equal].budget",
    "sizing[inverse_vol].budget",
    "sizing[inverse_vol].vol_target",
    "sizing[kelly_tempered].lambda",
    "sizing[vol_target].vol_target",
    "stand_down.change_point.expected_run",
    "stand_down.change_point.scale",
    "stand_down.change_point.short_run",
    "stand_down.change_point.threshold",
    "stand_down.crash_sentinel.flatten_above",
    "stand_down.crash_sentinel.reduce_above",
    "stand_down.crash_sentinel.window",
    "stand_down.crash_sentinel.z_window",
    "stand_down.drift.ks_max",
    "stand_down.drift.psi_max",
    "stand_down.drift.reference",
    "stand_down.drift.window",
    "stand_down.loss_streak.losses",
    "stand_down.regime.min_ratio",
    "stand_down.regime.refit",
    "stand_down.regime.threshold",
    "stand_down.regime.window",
    "stand_down.vol_spike.sigma",
}


# -- the tests ------------------------------------------------------------------------------------

def test_every_setting_is_covered():
    paths = schema_paths()
    assert len(paths) == len(set(paths))
    missing = sorted(set(paths) - set(VARIANTS) - METADATA - BOUNDS)
    stale = sorted((set(VARIANTS) | METADATA | BOUNDS) - set(paths))
    assert not missing, f"settings without a test of their behaviour: {missing}"
    assert not stale, f"tests of settings the schema no longer has: {stale}"


@pytest.fixture(scope="module")
def panels():
    from crowe.runtime.bundled import default_data
    p, _ = load_bars(default_data(SYMBOLS), start="2005-01-01", end="2009-06-30",
                     symbols=SYMBOLS)
    valid = np.array(p.valid)
    valid[300:306, 1] = False            # one instrument in four missing for six bars
    valid[700:703, 2] = False
    gappy = simkit.Panel(ts=p.ts, symbols=p.symbols, valid=valid,
                         **{f: np.where(valid, getattr(p, f), np.nan)
                            for f in ("open", "high", "low", "close", "volume")})
    hourly, _ = load_bars(default_data(["AAPL"], 3600), end="2024-10-31")
    return {"bundled": p, "gappy": gappy, "hourly": hourly}


_RUNS: dict[str, componentkit.Tapped] = {}


def tapped(policy: dict, panel, key: str) -> componentkit.Tapped:
    """The backtest of `policy` with its components' calls recorded (one compile per policy;
    base and variant are compared as recorded runs both, so that like is compared with like)."""
    key = key + yaml.safe_dump(policy, sort_keys=True)
    if key not in _RUNS:
        symbols = policy["universe"]["symbols"]
        _RUNS[key] = componentkit.Tapped.of(simkit.check(policy), symbols, panel.select(symbols))
    return _RUNS[key]


def decisions(policy: dict, panel, key: str) -> dict:
    return tapped(policy, panel, key).out


def _same(a: dict, b: dict) -> bool:
    keys = ("order_qty", "limit_price", "fill_qty", "fill_price", "weights", "trading_state",
            "reasons", "portfolio_reasons", "equity")
    return all(a[k].shape == b[k].shape and np.array_equal(a[k], b[k], equal_nan=True)
               for k in keys)


_REPLAYS: dict = {}


def component_changes(path: str, base: dict, variant: dict, panel, which: str) -> None:
    """The setting at `path` is read by one component only: that component of the variant, run
    alone over the inputs the step gave the base's component at every bar of the base's
    backtest, hands the step other outputs (or reasons) than the base's component replayed the
    same way. That replay of the base's component gives back what the step recorded, to 1e-12
    (the recording is whole: every input, in order, and the component's own state)."""
    b, v = simkit.check(base), simkit.check(variant)
    changed = componentkit.changed(b, v)
    assert changed is not None and len(changed) == 1, \
        f"`{path}`: the variant should change the settings of one component, not {changed}"
    key, kind = changed[0], changed[0][0]
    run = tapped(base, panel, which)
    out, hits = run.recorded(key)
    if (id(run), key) not in _REPLAYS:
        again = run.replay(key, b)
        assert componentkit.same(again[0], out, rtol=1e-12) and \
            componentkit.same(again[1], hits), f"{key} replayed is not what the step recorded"
        _REPLAYS[id(run), key] = again
    # like with like: both replays are the same program but for the setting
    out, hits = _REPLAYS[id(run), key]
    got, got_hits = run.replay(key, v)
    assert not (componentkit.same(componentkit.consumed(kind, got),
                                  componentkit.consumed(kind, out))
                and componentkit.same(got_hits, hits)), \
        f"`{path}` changed nothing that {key} hands the step on the bundled data"


def _active(fired: np.ndarray, cooldown: int) -> np.ndarray:
    """A rule's active mask at each bar from its verdicts, as the step keeps it: active when it
    fires or while the cooldown of its last firing runs."""
    cd, out = np.zeros(fired.shape[1:], np.int64), np.zeros(fired.shape, bool)
    for t, f in enumerate(fired):
        out[t] = f | (cd > 0)
        cd = np.where(f, cooldown, np.maximum(cd - 1, 0))
    return out


def rule_changes(path: str, base: dict, variant: dict, panel, which: str) -> None:
    """The action or cooldown of one limit or rule: the step applies both in one place for every
    limit and rule (`StepBuilder.monitors`), and the generic variants (`stand_down.*.action`,
    `stand_down.*.cooldown`, `risk.drawdown.from_peak.action`, `...cooldown`) prove on whole
    backtests that other actions and cooldowns give other decisions. What is left to prove per
    rule is that it is in force at some bar of the base's backtest (its action then acts), and
    for a cooldown that the two cooldowns keep it in force on different bars."""
    b, v = simkit.check(base), simkit.check(variant)
    changed = componentkit.changed(b, v)
    assert changed is not None and len(changed) == 1, changed
    kind, name = changed[0]
    info_b, info_v = (getattr(p, kind + "s")[name] for p in (b, v))
    fired = np.asarray(tapped(base, panel, which).recorded(changed[0])[0]["fired"], bool)
    assert fired.any(), f"`{path}`: the {kind} `{name}` never fires on the bundled data"
    if path.endswith(".action"):
        assert info_b.action != info_v.action and info_b.cooldown == info_v.cooldown
    else:
        assert path.endswith(".cooldown") and info_b.action == info_v.action
        assert not np.array_equal(_active(fired, info_b.cooldown),
                                  _active(fired, info_v.cooldown)), \
            f"`{path}`: both cooldowns keep `{name}` in force on the same bars"


@pytest.mark.parametrize("path", sorted(VARIANTS))
def test_setting_changes_the_decisions_or_is_refused(path, panels):
    base, variant, expect, *which = VARIANTS[path]
    text = yaml.safe_dump(variant, sort_keys=False)
    result = check_text(text, "<variant>")
    if expect == "refused":
        assert not result.ok, f"`{path}`: the variant checks clean"
        assert any(d.code in ("E0305", "E0306") for d in result.errors), result.errors
        return
    assert result.ok, "\n".join(str(d) for d in result.errors)
    if path == "universe.bar":
        # a bar size is a promise about the data: it converts every duration to bars, and a
        # run on data of another bar size is refused (tests/test_run.py)
        assert result.policy.bar_seconds == 3600 != simkit.check(base).bar_seconds
        return
    which = which[0] if which else "bundled"
    panel = panels[which]
    if path in COMPONENT_LEVEL:
        component_changes(path, base, variant, panel, which)
        return
    if path in RULE_LEVEL:
        rule_changes(path, base, variant, panel, which)
        return
    assert not _same(decisions(base, panel, which), decisions(variant, panel, which)), \
        f"`{path}` changed nothing on the bundled data"


def test_component_level_settings_are_variants():
    assert COMPONENT_LEVEL | RULE_LEVEL <= set(VARIANTS) and not COMPONENT_LEVEL & RULE_LEVEL
    assert all(VARIANTS[p][2] == "changes" for p in COMPONENT_LEVEL | RULE_LEVEL)


def test_parameter_ranges_refuse_values_outside_them():
    engine = simkit.Sim.of(MIN, SYMBOLS).engine
    engine.params({"fast": 30})
    with pytest.raises(ParamError):
        engine.params({"fast": 31})
