"""The GBNF grammar a request's reply is held to, for a model that decodes under one: the
embedded model, and a llama.cpp server one runs (llama-cpp-python's or llama.cpp's own take a
`grammar` with the request). A JSON Schema is turned into GBNF by llama-cpp-python's converter,
the one its server uses for a `response_format`."""

from __future__ import annotations

from functools import cache

from lmc.backends.base import LMRequest


def reply_grammar(request: LMRequest) -> str | None:
    """The request's own grammar, or its JSON Schema's, after the plain-text reasoning it may
    open with; None when it asks for neither."""
    if request.grammar is not None:
        return request.grammar
    if request.json_schema is None:
        return None
    return schema_gbnf(request.json_schema, request.reasoning_first)


@cache
def schema_gbnf(schema: str, reasoning_first: int = 0) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf: str = json_schema_to_gbnf(schema)
    if not reasoning_first:
        return gbnf
    # Reasoning in lines, none opening with `{` (past its indent): the object begins the first
    # line that does, so the grammar knows where the reasoning ends without looking ahead, and
    # braces inside a line (LaTeX's `\frac{1}{2}`) are reasoning. At most one blank line in a
    # row: a model that wants to stop before its object writes it, not a run of blank lines.
    # Its length is not counted here: a bounded repetition of this makes llama.cpp's grammar
    # slow to check (a second a token, masking SmolLM2's vocabulary). The embedded model is held
    # to `reasoning_first` characters by its check (`grammar_check`); a server, by `max_tokens`.
    renamed = [
        "lmc-reply-object ::=" + line.removeprefix("root ::=")
        if line.startswith("root ::=")
        else line
        for line in gbnf.splitlines()
    ]
    return "\n".join(
        [
            "root ::= lmc-reasoning [ \\t]* lmc-reply-object",
            'lmc-reasoning ::= lmc-line ("\\n" "\\n"? lmc-line)* "\\n" "\\n"?',
            "lmc-line ::= [ \\t]* [^{ \\t\\n] [^\\n]*",
            *renamed,
        ]
    )
