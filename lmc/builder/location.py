"""Where in the user's Python code a builder call was made, so errors point there."""

from __future__ import annotations

import inspect
import os
import sys
from types import FrameType

from lmc.diagnostics import Span

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_span() -> Span:
    """The span of the innermost call outside the lmc package, with its columns (Python 3.11+)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return Span("<python>", 0, 0, 0, 0)
    info = inspect.getframeinfo(frame, context=0)
    positions = info.positions
    line = info.lineno
    if positions is None or positions.col_offset is None or positions.lineno != line:
        return Span(info.filename, line, 1, line, 1)
    column = positions.col_offset + 1
    same_line = positions.end_lineno == line and positions.end_col_offset is not None
    end_column = positions.end_col_offset + 1 if same_line else column + 1  # type: ignore[operator]
    return Span(info.filename, line, column, line, end_column)
