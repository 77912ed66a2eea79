"""Every diagnostic code, each with its one meaning: the catalogue `Diagnostics.add` checks.

A code names one kind of problem and never changes meaning; the message says the particulars
(which name, which value) and the help line what to do. `E` codes are errors, `W` codes warnings;
the first two digits are the family, the stage that finds the problem. The README's table of
codes is checked against this one (`tests/test_codes.py`).
"""
from __future__ import annotations

FAMILIES = {
    "E00": "the file: size, encoding",
    "E01": "YAML: syntax, duplicate keys, anchors, tags, YAML 1.1 traps, document shape",
    "E02": "expression syntax",
    "E03": "schema: sections, settings, values, and the limits a policy must declare",
    "E04": "names",
    "E05": "types and arguments",
    "E06": "units",
    "E07": "look-ahead and windows",
    "W01": "unused definitions",
    "W03": "risk and compliance settings that are weak or have no effect",
}

CODES = {
    "E0002": "the file is larger than a policy may be (1 MiB)",
    "E0003": "the file is not valid UTF-8",
    "E0004": "the file contains a NUL byte",
    "E0005": "a digit that is not one of the ASCII digits 0-9",
    "E0101": "the text is not well-formed YAML",
    "E0102": "a key appears twice in one mapping",
    "E0103": "a YAML anchor or alias",
    "E0104": "a YAML tag",
    "E0105": "an unquoted word that YAML 1.1 reads as a boolean (`yes`, `no`, `on`, `off`)",
    "E0106": "an unquoted value that YAML 1.1 reads as a base-60 number (`1:30`)",
    "E0107": "YAML nested deeper than the limit",
    "E0108": "the document is empty or not a mapping of sections",
    "E0109": "more than one YAML document in the file",
    "E0110": "a number with a leading zero",
    "E0111": "a mapping key that is not a name",
    "E0201": "an expression that does not parse",
    "E0202": "an unknown unit suffix",
    "E0203": "an expression nested deeper than the limit",
    "E0204": "an expression longer than the limit",
    "E0205": "an empty expression",
    "E0206": "chained comparisons",
    "E0207": "unbalanced parentheses",
    "E0208": "a reserved keyword used as a name, or a positional argument after a keyword one",
    "E0301": "an unknown section or setting",
    "E0302": "a required section or setting is missing",
    "E0303": "a value of the wrong kind (text, number, list or mapping)",
    "E0304": "a value that is out of range or badly formed",
    "E0305": "a value that is not one of the allowed choices",
    "E0306": "a setting or choice that is not available (no component implements it)",
    "E0310": "no gross or position limit",
    "E0311": "no stand-down rule for data gaps",
    "E0312": "a limit larger than the gross limit",
    "E0313": "a sector limit without a sector for each symbol",
    "E0314": "sections that conflict: both set the same thing",
    "E0320": "a parameter whose range is empty or excludes its default",
    "E0401": "a name that is not a defined value",
    "E0402": "a signal value used where it is not available",
    "E0403": "features that depend on each other in a cycle",
    "E0404": "a name that clashes with a built-in or another definition",
    "E0405": "an unknown function",
    "E0501": "an operand or condition of the wrong type",
    "E0502": "a window that is not a positive integer constant or integer parameter",
    "E0503": "a gate or rule condition that is not true or false",
    "E0504": "too many arguments, or a required one missing",
    "E0506": "an unknown or repeated keyword argument",
    "E0507": "an argument of the wrong kind (constant, per-bar value, cross-section)",
    "E0508": "an action that is unknown or does not fit its rule or limit",
    "E0509": "a signal value that is a boolean, not a number",
    "E0510": "a value with which the policy can never trade",
    "E0601": "values of different units combined",
    "E0602": "an argument whose unit the function does not take",
    "E0603": "a signal value that is not a dimensionless return",
    "E0701": "an expression that reads future bars",
    "E0702": "a window or duration that is not a whole number of bars, or is beyond the limit",
    "W0101": "a feature that is never used",
    "W0102": "a parameter that is never used",
    "W0301": "no net exposure limit",
    "W0302": "a restricted symbol that is not in the universe",
    "W0303": "no drawdown limit",
    "W0304": "locates listed while shorting is not allowed",
    "W0305": "a symbol both restricted and listed for locates",
    "W0306": "an order notional cap so large that no order of a real book reaches it",
}


def family(code: str) -> str:
    """The family a code belongs to: its letter and first two digits (`E0401` -> `E04`)."""
    return code[:3]
