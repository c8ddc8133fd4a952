"""Pages from templates: the jinja2 environment every report renders through, and writing one."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from lmc.files import UnwritablePath, write_atomically


@cache
def _environment() -> Environment:
    # Autoescape everything: program text, data and model replies are shown, never obeyed.
    return Environment(
        loader=PackageLoader("lmc.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def render_page(template: str, context: dict[str, Any]) -> str:
    """The page `template` (a file under `lmc/report/templates`) shows for `context`."""
    return _environment().get_template(template).render(context)


def write_page(path: str | os.PathLike[str], page: str) -> Path:
    """Write the page atomically; an unwritable path is the user's input error, naming it."""
    target = Path(path)
    try:
        write_atomically(target, page.encode("utf-8"))
    except OSError as error:
        raise UnwritablePath(f"{target}: cannot write it ({error.strerror})") from None
    return target
