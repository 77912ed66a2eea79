"""Diagnostics: every problem the checker finds, with a stable code, a span and a hint.

Messages follow one style: lowercase, no final period, user input in backticks, details in the
help line, never a Python class name. The same object renders as text (with the source line and
a caret underline) and as JSON. Every code is one of the catalogue's (`codes.CODES`).

    error[E0401]: unknown name `clsoe`
      --> cs_momentum.policy:12:11
       |
    12 |   r1: ret(clsoe, 1)
       |           ^~~~~ not defined
       |
       = help: did you mean `close`?
"""
from __future__ import annotations

import difflib
import enum
import json
from dataclasses import dataclass
from typing import Iterable, Sequence

from .codes import CODES
from .source import SourceFile, Span


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Label:
    """A secondary place that explains the primary one (`first defined here`)."""

    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    help: str | None = None
    label: str | None = None
    secondary: tuple[Label, ...] = ()

    @property
    def severity(self) -> Severity:
        return Severity.WARNING if self.code.startswith("W") else Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_json(self) -> dict:
        s = self.span
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "file": s.file,
            "line": s.line,
            "column": s.column,
            "end_line": s.end_line,
            "end_column": s.end_column,
            "help": self.help,
            "labels": [
                {"message": lb.message, "file": lb.span.file, "line": lb.span.line,
                 "column": lb.span.column, "end_line": lb.span.end_line,
                 "end_column": lb.span.end_column}
                for lb in self.secondary
            ],
        }


class Diagnostics:
    """An ordered collection that passes append to; it never raises on a user error, only on
    a code that is not in the catalogue (a bug of the pass that adds it)."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def add(self, code: str, message: str, span: Span, help: str | None = None,
            label: str | None = None, secondary: Sequence[Label] = ()) -> Diagnostic:
        if code not in CODES:
            raise ValueError(f"diagnostic code {code!r} is not in the catalogue "
                             "(crowe.dsl.codes.CODES)")
        d = Diagnostic(code, message, span, help, label, tuple(secondary))
        self.items.append(d)
        return d

    def extend(self, items: Iterable[Diagnostic]) -> None:
        self.items.extend(items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        seen, out = set(), []
        for d in sorted(self.items, key=lambda d: (d.span.file, d.span.start, d.code)):
            key = (d.code, d.message, d.span.file, d.span.start, d.span.end)
            if key not in seen:
                seen.add(key)
                out.append(d)
        return out

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt `word`, or None when nothing is close."""
    cands = sorted(set(candidates))
    best = difflib.get_close_matches(word, cands, n=1, cutoff=0.6)
    if not best:
        lowered = {c.lower(): c for c in cands}
        if word.lower() in lowered:
            return lowered[word.lower()]
        # a name cut short (`kelly` for `kelly_tempered`), when it can only be one
        longer = [c for c in cands if len(word) >= 3 and c.lower().startswith(word.lower())]
        return longer[0] if len(longer) == 1 else None
    return best[0]


def suggestion(word: str, candidates: Iterable[str]) -> str | None:
    """A help line `did you mean `x`?` or None."""
    best = did_you_mean(word, candidates)
    return f"did you mean `{best}`?" if best else None


def closest_names(word: str, candidates: Iterable[str], n: int = 3) -> str | None:
    """A help line naming up to `n` candidates close to `word`, closest first, or None when
    none is close.

    >>> closest_names("mena", ["mean", "demean", "max", "ret"])
    'did you mean `mean` or `demean`?'
    """
    cands = sorted(set(candidates))
    near = difflib.get_close_matches(word, cands, n=n, cutoff=0.6)
    best = did_you_mean(word, cands)
    if best is not None and best not in near:
        near = [best] + near[:n - 1]
    if not near:
        return None
    names = [f"`{c}`" for c in near]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"did you mean {listed}?"


# ---------------------------------------------------------------------------------------------
# Rendering

MAX_SHOWN = 100   # characters of a source line shown; a longer one is cut around the span


def _gutter_width(diag: Diagnostic) -> int:
    lines = [diag.span.line] + [lb.span.line for lb in diag.secondary]
    return len(str(max(lines)))


def _snippet(source: SourceFile | None, span: Span, text: str | None, width: int,
             mark: str) -> list[str]:
    pad = " " * width
    if source is None or span.line < 1:
        return []
    line = source.line_text(span.line).expandtabs(1)
    if span.end_line == span.line:
        length = max(1, span.end_column - span.column)
    else:
        length = max(1, len(line) - span.column + 1)
    line, column, length = _window(line, span.column, length)
    underline = mark + "~" * (length - 1) if mark == "^" else mark * length
    out = [f"{str(span.line).rjust(width)} | {line}",
           f"{pad} | {' ' * (column - 1)}{underline}{(' ' + text) if text else ''}"]
    return out


def _window(line: str, column: int, length: int) -> tuple[str, int, int]:
    """A line longer than `MAX_SHOWN` cut to the part around the span, `...` marking each cut:
    (the text shown, the span's column in it, its length in it)."""
    if len(line) <= MAX_SHOWN:
        return line, column, length
    length = min(length, MAX_SHOWN - 10)
    context = (MAX_SHOWN - length) // 2
    start = max(0, min(column - 1 - context, len(line) - MAX_SHOWN))
    stop = start + MAX_SHOWN
    head = "..." if start > 0 else ""
    tail = "..." if stop < len(line) else ""
    return head + line[start:stop] + tail, column - start + len(head), length


def render_text(diag: Diagnostic, source: SourceFile | None = None) -> str:
    """Render one diagnostic in the rustc/mypy style with its source line and a caret."""
    width = _gutter_width(diag)
    pad = " " * width
    s = diag.span
    out = [f"{diag.severity.value}[{diag.code}]: {diag.message}",
           f"{pad}--> {s.file}:{s.line}:{s.column}"]
    body = _snippet(source, s, diag.label, width, "^")
    shown = s.line
    for lb in diag.secondary:
        lines = _snippet(source, lb.span, lb.message, width, "-")
        body += lines[1:] if lb.span.line == shown else lines  # one line, two underlines
        shown = lb.span.line
    if body:
        out.append(f"{pad} |")
        out.extend(body)
    if diag.help:
        out.append(f"{pad} |")
        out.append(f"{pad} = help: {diag.help}")
    return "\n".join(out)


def render_json(diags: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diags], indent=2)
