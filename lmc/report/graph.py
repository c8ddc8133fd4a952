"""The program graph `lmc show` draws, as SVG to put inline in a page."""

from __future__ import annotations

import graphviz
from markupsafe import Markup

from lmc.ir.graph import ProgramGraph
from lmc.ir.render import to_dot


def program_svg(graph: ProgramGraph) -> Markup | None:
    """The graph's picture as an `<svg>` element, or None when Graphviz cannot draw it (the page
    says so instead). Graphviz escapes every label it writes, so the SVG is safe to inline."""
    try:
        svg = to_dot(graph).pipe(format="svg", encoding="utf-8")
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError):
        return None
    # Inline SVG takes the element alone: the XML declaration and DOCTYPE before it are dropped.
    return Markup(svg[svg.index("<svg") :])
