"""Source files and spans.

A `Span` is a half-open range of character offsets into one `SourceFile`, with the 1-based line and
column of both ends precomputed so that diagnostics never need the text to say where they are.
Spans ride along on every node but never take part in equality or hashing (see `compiler.ir`).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Span:
    """Where something is: a file name, character offsets and 1-based line/column of both ends."""

    file: str
    start: int
    end: int
    line: int
    column: int
    end_line: int
    end_column: int

    def join(self, other: "Span") -> "Span":
        """The smallest span covering both (same file)."""
        a, b = (self, other) if self.start <= other.start else (other, self)
        last = b if b.end >= a.end else a
        return Span(self.file, a.start, last.end, a.line, a.column, last.end_line, last.end_column)


@dataclass(eq=False)
class SourceFile:
    """The text of one policy file and a line index for offset -> (line, column)."""

    path: str
    text: str
    _line_starts: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        starts = [0]
        for i, ch in enumerate(self.text):
            if ch == "\n":
                starts.append(i + 1)
        self._line_starts = starts

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset, clamped to the text."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def span(self, start: int, end: int | None = None) -> Span:
        """A span from character offsets; `end` defaults to one character after `start`."""
        end = start + 1 if end is None else end
        end = max(end, start)
        line, col = self.position(start)
        end_line, end_col = self.position(end)
        return Span(self.path, start, end, line, col, end_line, end_col)

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        if line < 1 or line > len(self._line_starts):
            return ""
        start = self._line_starts[line - 1]
        stop = self.text.find("\n", start)
        return self.text[start:] if stop < 0 else self.text[start:stop]

    def offset(self, line: int, column: int) -> int:
        """The character offset of a 1-based (line, column)."""
        line = max(1, min(line, len(self._line_starts)))
        return min(self._line_starts[line - 1] + column - 1, len(self.text))

    def whole_file(self) -> Span:
        return self.span(0, 0)
