"""`crowe-compile --explain CODE`: the long explanation of each diagnostic code.

Each entry says why the checker refuses (or warns about) what it found, shows a small policy
fragment that has the problem, and the same fragment fixed. `codes.CODES` gives the one-line
meaning; this module the longer story. Every code in the catalogue has an entry
(`tests/test_checker_options.py`), so a new code cannot ship without one; an entry may come
before its code (a branch that has not merged the code yet).

    >>> print(explain("E0401").splitlines()[0])
    E0401: a name that is not a defined value
"""
from __future__ import annotations

from dataclasses import dataclass

from .codes import CODES


@dataclass(frozen=True)
class Explanation:
    why: str        # what the checker found and why it matters
    example: str    # a fragment with the problem
    fix: str        # the same fragment fixed, or what to do


def _e(why: str, example: str, fix: str) -> Explanation:
    return Explanation(why.strip(), example.strip("\n"), fix.strip("\n"))


EXPLANATIONS: dict[str, Explanation] = {
    "E0002": _e("""
A policy file holds at most 1 MiB. A larger file is almost always a data file passed by mistake,
or a policy that embeds a table that belongs in a data file. The checker does not read past the
limit.""", """
$ crowe-compile --check examples/data/sp500_2010.parquet""", """
Check the `.policy` file itself; keep long tables (symbols, sectors) short, or in the data."""),
    "E0003": _e("""
A policy is UTF-8 text. The file has a byte sequence that is not UTF-8, often because an editor
saved it as UTF-16 or Latin-1. The position is the first bad byte.""", """
policy: café_v1      # saved as Latin-1: the byte 0xe9 is not UTF-8""", """
Save the file as UTF-8 (in most editors: "Save with encoding", UTF-8)."""),
    "E0004": _e("""
The file contains a NUL byte (0x00), which plain text never does: it is a binary file, or text
saved as UTF-16.""", """
p\\x00o\\x00l\\x00i\\x00c\\x00y\\x00:    # UTF-16 text""", """
Save the policy as UTF-8 text."""),
    "E0005": _e("""
A number contains a digit of another script (Arabic-Indic, Bengali, full-width...). It looks like
a number a reviewer can read, but it is not the number they read, so the checker refuses it
rather than guess.""", """
risk:
  gross_max: １50%""", """
risk:
  gross_max: 150%"""),
    "E0101": _e("""
The text is not well-formed YAML: a missing `:`, bad indentation, an unclosed quote or bracket,
a tab used for indentation, or a value that starts with a YAML symbol. The position is where the
YAML reader stopped; the help line says what is usually wrong there.""", """
features:
  r1: ret(close, 1)
   vol: stdev(r1, 63)""", """
features:
  r1: ret(close, 1)
  vol: stdev(r1, 63)"""),
    "E0102": _e("""
A key appears twice in one mapping. Most YAML readers silently keep the last one, so half of
what the author wrote would be ignored; the checker refuses instead and points at both.""", """
features:
  mom: ret(close, 126)
  mom: ret(close, 252)""", """
features:
  mom: ret(close, 126)
  mom_long: ret(close, 252)"""),
    "E0103": _e("""
YAML anchors (`&name`) and aliases (`*name`) copy one part of a document into another. A policy
is reviewed line by line, so every value is written out where it applies.""", """
risk:
  drawdown:
    intraday: &dd {max: 2%, action: flatten}
    from_peak: *dd""", """
risk:
  drawdown:
    intraday: {max: 2%, action: flatten}
    from_peak: {max: 2%, action: flatten}"""),
    "E0104": _e("""
YAML tags (`!!str`, `!custom`) change how a value is read. Policies do not use them: a value is
text or a number by how it is written, and quotes make text.""", """
version: !!str 1.0.0""", """
version: "1.0.0\""""),
    "E0105": _e("""
YAML 1.1 readers (PyYAML, many editors) read the words `yes`, `no`, `on`, `off`, `y` and `n` as
booleans, YAML 1.2 readers as text. The same file would mean different things to different
tools, so an unquoted one is refused.""", """
compliance:
  shorting: {allowed: yes}""", """
compliance:
  shorting: {allowed: true}"""),
    "E0106": _e("""
YAML 1.1 reads `1:30` as the base-60 number 90 (a sexagesimal time). Write what is meant: a
duration such as `90m`, or quoted text.""", """
signal:
  horizon: 1:30""", """
signal:
  horizon: 90m"""),
    "E0107": _e("""
The YAML is nested deeper than a policy ever needs (32 levels). Reading stops there, so that no
input can exhaust memory or the stack.""", """
a: {b: {c: {d: {e: ...}}}}   # 33 levels""", """
Flatten the structure: sections nest two or three levels deep."""),
    "E0108": _e("""
A policy file is one mapping of sections (`policy:`, `universe:`, `features:`...). The document
is empty, or its top level is a list or a single value.""", """
- policy: cs_mom_v1
- version: 1.0.0""", """
policy: cs_mom_v1
version: 1.0.0"""),
    "E0109": _e("""
The file holds more than one YAML document (a `---` line between them). A policy is one
document, so a reviewer never reads a part that the compiler ignores.""", """
policy: a
---
policy: b""", """
Keep one document per file: remove the `---` line, or split the file in two."""),
    "E0110": _e("""
A number with a leading zero (`017`) is octal in YAML 1.1 (15) and decimal in YAML 1.2 (17).
The checker refuses the ambiguity.""", """
params:
  lookback: {default: 063, range: [21, 252]}""", """
params:
  lookback: {default: 63, range: [21, 252]}"""),
    "E0111": _e("""
Keys of a mapping are names. A number, a boolean, a list or a missing key before `:` cannot
name a feature, parameter or setting.""", """
features:
  1: ret(close, 1)""", """
features:
  r1: ret(close, 1)"""),
    "E0201": _e("""
An expression (a feature, `mu`, `sigma`, a gate, a `when` condition) does not parse: an
operator without an operand, two values without an operator, a character that is not part of
the language. The caret points where parsing stopped and the help line says what could come
there.""", """
features:
  mom: ret(close, 126) ret(close, 21)""", """
features:
  mom: ret(close, 126) - ret(close, 21)"""),
    "E0202": _e("""
A number carries a suffix that is not a unit. Fractions take `%` or `bps`; windows and
durations take `s`, `m`, `h`, `d` or `w`.""", """
gates:
  calm: sigma < 3pct""", """
gates:
  calm: sigma < 3%"""),
    "E0203": _e("""
The expression nests parentheses, calls or operators deeper than the limit (48 levels). Such an
expression cannot be reviewed; name its parts as features.""", """
features:
  f: abs(abs(abs(abs(...))))   # 49 levels""", """
features:
  inner: abs(r1)
  f: abs(inner)"""),
    "E0204": _e("""
The expression is longer than the limit (4,000 characters).""", """
features:
  f: r1 + r1 + r1 + ...   # 4,001 characters""", """
Split it into named features and combine those."""),
    "E0205": _e("""
A place that takes an expression is empty.""", """
features:
  mom:""", """
features:
  mom: ret(close, 126)"""),
    "E0206": _e("""
Comparisons do not chain: `a < b < c` is ambiguous (Python reads it as `a < b and b < c`, most
languages as `(a < b) < c`), so it is refused.""", """
gates:
  band: 0 < mu < 5%""", """
gates:
  band: 0 < mu and mu < 5%"""),
    "E0207": _e("""
Parentheses do not balance: a `(` is never closed, or a `)` closes nothing. The caret points at
the parenthesis to fix, not at the end of the expression.""", """
features:
  mom: (ret(close, 126) - ret(close, 21)""", """
features:
  mom: ret(close, 126) - ret(close, 21)"""),
    "E0208": _e("""
A reserved keyword (`if`, `then`, `else`, `and`, `or`, `not`, `true`, `false`) is used as a
name, or a positional argument follows a keyword argument in a call.""", """
features:
  f: clip(r1, lo=-1, 1)""", """
features:
  f: clip(r1, -1, 1)"""),
    "E0301": _e("""
A section or setting name is not one the schema knows: usually a typo, or a setting of another
method than the one chosen. The help line names the closest known key, or the method the
setting belongs to.""", """
sizing:
  method: kelly_tempered
  lamda: 0.3""", """
sizing:
  method: kelly_tempered
  lambda: 0.3"""),
    "E0302": _e("""
A required section or setting is missing. A policy needs `policy`, `version`, `owner`,
`signal` (with `mu` and `sigma`), `risk`, `execution` and `stand_down`; a rule needs its
`action`.""", """
policy: cs_mom_v1
version: 1.0.0
owner: CR-008
# no signal, risk, execution or stand_down""", """
Add the section; the help line shows a minimal one, e.g.
signal: {mu: 0.1 * vol, sigma: vol}"""),
    "E0303": _e("""
A value is of the wrong kind: text where a number goes, a number where a mapping or a list
goes, and so on.""", """
risk:
  var: 1.5%""", """
risk:
  var: {confidence: 99%, window: 250, max: 1.5%}"""),
    "E0304": _e("""
A value is of the right kind but out of range or badly formed: a fraction above its limit, a
window of zero, a malformed duration or version. A bare number is a fraction (`1.5` is 150%), so
the help line suggests `%` when that is what was meant.""", """
risk:
  position_max: 25""", """
risk:
  position_max: 25%"""),
    "E0305": _e("""
A value must be one of a fixed set of choices (a sizing method, an execution algorithm, an
estimator) and is not. The help line names the closest choice or lists them all.""", """
execution:
  algo: twapp""", """
execution:
  algo: twap"""),
    "E0306": _e("""
The setting or choice is one users know from other tools but that no component implements here
yet, or a setting that would change nothing in this policy. Every setting the checker accepts
changes decisions, so it is refused with advice rather than silently ignored.""", """
signal:
  horizon: 5d         # no sizing method reads the horizon""", """
Remove the setting, or choose a component that uses it (the help line says which)."""),
    "E0310": _e("""
The policy declares no gross or no position limit. Fail closed: a limit an author forgot is a
compile error, never "unlimited".""", """
risk:
  net_max: 50%""", """
risk:
  gross_max: 150%
  position_max: 5%
  net_max: 50%"""),
    "E0311": _e("""
There is no stand-down rule for data gaps, so the policy would trade on stale or missing bars.""",
       """
stand_down:
  vol_spike: {sigma: 4, window: 63, action: exclude}""", """
stand_down:
  data_gap: {max_missing: 5%, action: halt}
  vol_spike: {sigma: 4, window: 63, action: exclude}"""),
    "E0312": _e("""
A limit is larger than the gross limit, so it can never bind: a net, sector or position cap
above `gross_max` is almost always a typo.""", """
risk:
  gross_max: 100%
  net_max: 200%""", """
risk:
  gross_max: 100%
  net_max: 20%"""),
    "E0313": _e("""
`sector_max` caps the exposure of each sector, but the universe names no sectors
(`universe.sectors`), so there is nothing to cap. (Symbols left out of `sectors` share one
`unknown` sector, capped like the others.)""", """
universe:
  symbols: [AAPL, XOM]
risk:
  sector_max: 30%""", """
universe:
  symbols: [AAPL, XOM]
  sectors: {AAPL: technology, XOM: energy}
risk:
  sector_max: 30%"""),
    "E0314": _e("""
Two sections set the same thing, and only one can win: `sizing` and `portfolio` both set the
target weights.""", """
sizing: {method: equal}
portfolio: {method: mean_variance}""", """
Keep one of them: `portfolio: {method: mean_variance}`."""),
    "E0320": _e("""
A parameter's range is empty (low above high) or does not contain its default, so a sweep over
the range would never run the default policy.""", """
params:
  lookback: {default: 300, range: [63, 252]}""", """
params:
  lookback: {default: 126, range: [63, 252]}"""),
    "E0401": _e("""
An expression uses a name that is not a bar field (`open high low close volume`), a parameter,
a feature, or (in `gates` and `stand_down`) a signal value. Usually a typo; the help line names
the closest defined name.""", """
features:
  r1: ret(clsoe, 1)""", """
features:
  r1: ret(close, 1)"""),
    "E0402": _e("""
A signal value (`mu`, `sigma`, `prob_edge`) is used where it does not exist yet: features and
the signal itself are computed before the signal, so only `gates` and `stand_down` can read it.""",
       """
features:
  edge: prob_edge * 2""", """
gates:
  edge: prob_edge > 0.55"""),
    "E0403": _e("""
Features depend on each other in a cycle, so none of them can be computed first.""", """
features:
  a: lag(b, 1)
  b: a + r1""", """
features:
  a: lag(r1, 1)
  b: a + r1"""),
    "E0404": _e("""
A feature or parameter has the name of a bar field, a function, a signal value or another
definition, so every use of the name would be ambiguous.""", """
features:
  close: ret(close, 1)""", """
features:
  r1: ret(close, 1)"""),
    "E0405": _e("""
A call names a function that does not exist. The help line lists the closest function names
(the README lists them all), or says when the name is a value or an action rather than a
function.""", """
features:
  vol: stddev(r1, 63)""", """
features:
  vol: stdev(r1, 63)"""),
    "E0501": _e("""
An operand has the wrong type: a number where a condition goes (`and`, `or`, `not`, `if`) or a
condition where a number goes (`+`, `*`, comparisons).""", """
gates:
  both: mu and sigma""", """
gates:
  both: mu > 0 and sigma < 3%"""),
    "E0502": _e("""
A window (the `n` of `mean(x, n)`, `ret(x, n)`...) must be a positive whole number, a duration
such as `20d`, or an integer parameter: the compiler sizes its history buffer from it.""", """
features:
  m: mean(close, 2.5)""", """
features:
  m: mean(close, 20)"""),
    "E0503": _e("""
A gate or a `when` condition must be true or false; a number is not.""", """
gates:
  edge: prob_edge""", """
gates:
  edge: prob_edge > 0.55"""),
    "E0504": _e("""
A call has too many arguments, or lacks a required one. The help line shows the signature.""",
       """
features:
  vol: stdev(r1)""", """
features:
  vol: stdev(r1, 63)"""),
    "E0506": _e("""
A keyword argument is not one the function takes, or is given twice.""", """
features:
  m: mean(close, window=20)""", """
features:
  m: mean(close, n=20)"""),
    "E0507": _e("""
An argument is of the wrong kind: a constant where a per-bar value goes, a single value per bar
where a cross-section over the instruments goes (`zscore(x)` without a window ranks across
instruments), and so on.""", """
features:
  z: zscore(5)""", """
features:
  z: zscore(mom)"""),
    "E0508": _e("""
An action is unknown, or does not fit its rule or limit: `exclude` acts on one instrument, so a
portfolio-wide rule cannot use it; `reduce(x)` takes the share of exposure to remove, between
0% and 100%.""", """
stand_down:
  data_gap: {max_missing: 5%, action: stop}""", """
stand_down:
  data_gap: {max_missing: 5%, action: halt}"""),
    "E0509": _e("""
`mu` and `sigma` are numbers (an expected return and its standard deviation); a condition is
not.""", """
signal:
  mu: mom > 0
  sigma: vol""", """
signal:
  mu: 0.1 * sign(mom) * vol
  sigma: vol"""),
    "E0510": _e("""
With this value the policy can never trade: every symbol restricted, a predictive standard
deviation of 0 or less, a net limit of 0 on a long-only book. The checker refuses a policy that
would silently do nothing.""", """
signal:
  mu: 0.1 * vol
  sigma: 0""", """
signal:
  mu: 0.1 * vol
  sigma: vol"""),
    "E0601": _e("""
Values of different units are combined: a price plus a return, shares compared with currency.
Returns, `%` and `bps` are dimensionless; `close` is a price, `volume` shares, `close * volume`
currency.""", """
features:
  f: close + ret(close, 1)""", """
features:
  f: ret(close, 1) + ret(close, 5)"""),
    "E0602": _e("""
A function receives an argument of a unit it does not take: `exp`, `sqrt`, `normcdf` take
dimensionless values, for instance.""", """
features:
  f: exp(close)""", """
features:
  f: exp(ret(close, 1))"""),
    "E0603": _e("""
`mu` and `sigma` must be dimensionless returns, since sizing reads them as fractions of
capital; a price or a currency amount is not one.""", """
signal:
  mu: mean(close, 20)
  sigma: vol""", """
signal:
  mu: ret(close, 20) * 0.1
  sigma: vol"""),
    "E0701": _e("""
The expression reads future bars (a negative lag or window). A decision at bar t may only see
data up to the close of bar t.""", """
features:
  fwd: lag(close, -5)""", """
features:
  past: lag(close, 5)"""),
    "E0702": _e("""
A window, horizon or cooldown written as a duration is not a whole number of bars at the
policy's bar size (`36h` on daily bars), or is longer than the limit of 10,000 bars.""", """
universe: {bar: 1d}
signal:
  horizon: 36h""", """
universe: {bar: 1d}
signal:
  horizon: 2d"""),
    "W0101": _e("""
A feature is defined but no expression uses it. It costs compute every bar and misleads a
reviewer about what the policy depends on.""", """
features:
  r1: ret(close, 1)
  unused: mean(close, 5)""", """
Remove it, or use it in `signal`, `gates` or `stand_down`."""),
    "W0102": _e("""
A parameter is declared but no expression uses it, so sweeping it would change nothing.""", """
params:
  theta: {default: 0.55, range: [0.5, 0.7]}""", """
Remove it, or use it: `gates: {edge: prob_edge > theta}`."""),
    "W0301": _e("""
No net exposure limit: the book may end up all long or all short within the gross limit.""", """
risk:
  gross_max: 150%
  position_max: 5%""", """
risk:
  gross_max: 150%
  position_max: 5%
  net_max: 50%"""),
    "W0302": _e("""
A restricted symbol is not in the universe, so the restriction does nothing: often a typo in
the ticker.""", """
universe: {symbols: [AAPL, MSFT]}
compliance: {restricted: [APPL]}""", """
compliance: {restricted: [AAPL]}"""),
    "W0303": _e("""
No drawdown limit: nothing stops the policy from losing without bound from its peak.""", """
risk:
  gross_max: 100%
  position_max: 5%""", """
risk:
  gross_max: 100%
  position_max: 5%
  drawdown:
    from_peak: {max: 15%, action: halt, cooldown: 10d}"""),
    "W0304": _e("""
Locates are listed but shorting is not allowed, so they are never used.""", """
compliance:
  shorting: {allowed: false, locates: [XOM]}""", """
compliance:
  shorting: {allowed: true, locate_required: true, locates: [XOM]}"""),
    "W0305": _e("""
A symbol is both restricted and listed for locates: the restriction wins, so the locate is
never used, and one of the two lists is probably wrong.""", """
compliance:
  restricted: [XOM]
  shorting: {locate_required: true, locates: [XOM]}""", """
Remove the symbol from one of the lists."""),
    "W0306": _e("""
`max_order_notional` caps the value of one order, but the cap is so large that no order of a
real book reaches it: an order is at most twice the position limit (or the gross limit) of the
equity, so the cap could only bind for a book of more equity than any book has. It reads as a
control that protects, and it does not.""", """
risk:
  position_max: 5%
compliance:
  max_order_notional: 5000000000000""", """
compliance:
  max_order_notional: 250000    # the largest single order you would accept"""),
    "E0315": _e("""
A risk budget names a symbol that is not in the universe (often a misspelt one): that budget
would weigh nothing, and the symbol it was meant for would get the default budget of 1.""", """
portfolio:
  method: risk_parity
  budgets: {IMB: 2}""", """
portfolio:
  method: risk_parity
  budgets: {IBM: 2}"""),
    "E0330": _e("""
The optimizer's constraints contradict each other or the rest of the policy, so no book meets
them: a net range outside the gross bound (a net exposure is at most the gross exposure), a
short net range on a long-only book, more net exposure than the instruments can hold at the
position limit, or sector net ranges that cannot add up within the net range. The optimizer
would never find a solution and the policy would never trade.""", """
portfolio:
  method: mean_variance
  constraints: {net: [20%, 30%], gross: 10%}""", """
portfolio:
  method: mean_variance
  constraints: {net: [-5%, 5%], gross: 10%}"""),
    "W0330": _e("""
A constraint's range excludes 0, so the empty book breaks it: while nothing may trade (the
warm-up, a data gap, a halt) the optimizer finds no book, targets 0 and reports `unsolved`.""",
                """
portfolio:
  method: mean_variance
  constraints: {net: [5%, 10%]}""", """
portfolio:
  method: mean_variance
  constraints: {net: [0%, 10%]}"""),
}


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.splitlines())


def explain(code: str) -> str:
    """The long explanation of `code` as text; raises KeyError for an unknown code."""
    code = code.strip().upper()
    e = EXPLANATIONS[code]
    return (f"{code}: {CODES[code]}\n\n{e.why}\n\nExample:\n\n{_indent(e.example)}\n\n"
            f"Fix:\n\n{_indent(e.fix)}\n")
