"""Source spans and the errors lmc reports about a user's program.

Every error names `file:line:column`, says what was expected, and shows the source line with a caret
under the place. Errors are collected, not raised one at a time, so a user sees every mistake in a
file in one run.
"""

from __future__ import annotations

import linecache
from collections.abc import Iterable
from dataclasses import dataclass, field

from lmc.errors import InputError
from lmc.strings import printable


def source_lines(text: str) -> list[str]:
    """`text`'s lines as the parser counts them: split at line feeds only (`splitlines` also
    splits at U+2028, form feeds and more, and would put an error under another line)."""
    lines = text.split("\n")
    return lines[:-1] if text.endswith("\n") else lines


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file; 1-based lines and columns, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NO_SPAN = Span("<builder>", 0, 0, 0, 0)


def span_field() -> Span:
    """A dataclass field holding a span that structural equality ignores."""
    return field(default=NO_SPAN, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    span: Span
    message: str
    severity: str = "error"

    def render(self, source: str | None) -> str:
        """`file:line:col: error: message`, then the source line and a caret under the place."""
        head = f"{self.span}: {self.severity}: {self.message}"
        if source is None or self.span.line < 1:
            return head
        lines = source_lines(source)
        if self.span.line > len(lines):
            return head
        raw = lines[self.span.line - 1].expandtabs(1)
        start = max(self.span.column, 1)
        if self.span.end_line == self.span.line and self.span.end_column > start:
            width = self.span.end_column - start
        else:
            width = 1
        width = max(1, min(width, len(raw) - start + 1))
        # Control characters in the line are shown escaped; the caret stays under the place.
        text = printable(raw)
        width = max(1, len(printable(raw[start - 1 : start - 1 + width])))
        start = len(printable(raw[: start - 1])) + 1
        gutter = str(self.span.line)
        pad = " " * len(gutter)
        caret = "^" + "~" * (width - 1)
        return f"{head}\n {gutter} | {text}\n {pad} | {' ' * (start - 1)}{caret}"


class ProgramError(InputError):
    """Errors in a program's text (or in a Python program's declarations), each a diagnostic at
    its file, line and column; all of a file's errors are collected before one is raised."""

    def __init__(self, diagnostics: Iterable[Diagnostic], sources: dict[str, str] | None = None):
        self.diagnostics = tuple(diagnostics)
        self.sources = dict(sources or {})
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render(self._source(d.span.file)) for d in self.diagnostics)

    def _source(self, file: str) -> str | None:
        if file in self.sources:
            return self.sources[file]
        # Errors in Python programs (the builder API) point into the user's .py files.
        lines = linecache.getlines(file) if not file.startswith("<") else []
        return "".join(lines) or None


class Diagnostics:
    """Collects errors in source order, once each (unrolled loops would otherwise repeat them)."""

    def __init__(self) -> None:
        self._items: dict[tuple[Span, str], Diagnostic] = {}

    def error(self, span: Span, message: str) -> None:
        self._items.setdefault((span, message), Diagnostic(span, message))

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        for d in diagnostics:
            self._items.setdefault((d.span, d.message), d)

    def __bool__(self) -> bool:
        return bool(self._items)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self._items.values(), key=lambda d: (d.span.file, d.span.line, d.span.column))

    def raise_if_any(self, sources: dict[str, str]) -> None:
        if self._items:
            raise ProgramError(self.sorted(), sources)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A `; did you mean 'x'?` suffix when a candidate is close enough, else ''."""
    import difflib

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def quoted_list(names: Iterable[str]) -> str:
    items = [f"'{n}'" for n in names]
    if not items:
        return "none"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]
