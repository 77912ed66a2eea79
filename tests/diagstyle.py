"""The message style every diagnostic follows (STYLE.md item 5): a message, lowercase, no final
period, never a Python class name or a library's own wording; help lines where the family
promises one."""
from __future__ import annotations

import builtins
import inspect
import re

from crowe.dsl import ast, check, diagnostics, expr, policy, quantity, schema, types, yamlload
from crowe.dsl.diagnostics import Diagnostic
from crowe.stdlib import registry

# Families whose diagnostics always carry a help line: unknown names, keys, functions, choices.
HELP_REQUIRED = {"E0301", "E0305", "E0401", "E0405", "E0506"}


def _class_names() -> set[str]:
    """Names a message must never show: our classes, pydantic's and Python's exceptions."""
    modules = [ast, check, diagnostics, expr, policy, quantity, schema, types, yamlload, registry]
    names = {n for m in modules for n, obj in vars(m).items()
             if inspect.isclass(obj) and n[0].isupper() and n.upper() != n}
    names |= {n for n, obj in vars(builtins).items()
              if inspect.isclass(obj) and issubclass(obj, BaseException)}
    return names | {"NoneType", "BaseModel", "ValidationError", "PydanticCustomError"}


_FORBIDDEN = re.compile(r"\b(" + "|".join(sorted(_class_names(), key=len, reverse=True)) + r")\b")
_QUOTED = re.compile(r"`[^`]*`")
# Raw text of the libraries underneath: pydantic's, lark's and Python's own wording.
_LEAKS = re.compile(r"<class|Input should|Field required|\$END|Traceback|\bRPAR\b|\bLPAR\b"
                    r"|\bNAME\b|\bNUMBER\b|literal\[|list\[|dict\[")


def check_style(d: Diagnostic) -> list[str]:
    """What is wrong with the wording of one diagnostic (empty when nothing is)."""
    problems = []
    if not d.message.strip():
        problems.append("empty message")
    if d.message.rstrip().endswith("."):
        problems.append("message ends with a period")
    if d.code in HELP_REQUIRED and not d.help:
        problems.append("no help line")
    for part in (d.message, d.help or "", d.label or "", *(lb.message for lb in d.secondary)):
        words = _QUOTED.sub("``", part)  # user input, in backticks, may say anything
        if m := _FORBIDDEN.search(words) or _LEAKS.search(words):
            problems.append(f"shows `{m.group()}`: {part!r}")
    return problems
