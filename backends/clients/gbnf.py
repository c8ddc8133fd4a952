"""The GBNF grammar a request's reply is held to, for a model that decodes under one: the
embedded model, and a llama.cpp server one runs (llama-cpp-python's or llama.cpp's own take a
`grammar` with the request). A JSON Schema is turned into GBNF by llama-cpp-python's converter,
the one its server uses for a `response_format`."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from lmc.backends.base import LMRequest


def reply_grammar(request: LMRequest, *, steered: bool = True) -> str | None:
    """The request's own grammar, or its JSON Schema's, after the plain-text reasoning it may
    open with; None when it asks for neither.

    `steered` says the decoder ends a reasoning that will not end by itself with its object
    (the embedded model's check does). A server cannot: there a reply may stop after its
    reasoning, since a model held from stopping writes on to `max_tokens` (Qwen boxed its
    answer, then wrote 7,000 more characters); the repair call then asks for the object."""
    if request.grammar is not None:
        return request.grammar
    if request.json_schema is None:
        return None
    return schema_gbnf(request.json_schema, request.reasoning_first, object_required=steered)


@cache
def schema_gbnf(schema: str, reasoning_first: int = 0, *, object_required: bool = True) -> str:
    gbnf = _json_schema_to_gbnf(_numbers_as_text(json.loads(schema)))
    # llama-cpp-python's converter lets a raw new line into a string, which JSON does not: Qwen
    # opened `"answer": "` and wrote new lines to `max_tokens`, never closing it. llama.cpp's own
    # converter keeps control characters out, as here.
    gbnf = gbnf.replace(r'char ::= [^"\\] |', r'char ::= [^"\\\x7F\x00-\x1F] |', 1)
    if not reasoning_first:
        return gbnf
    # Reasoning in lines, none opening with `{` (past its indent): the object begins the first
    # line that does, so the grammar knows where the reasoning ends without looking ahead, and
    # braces inside a line (LaTeX's `\frac{1}{2}`) are reasoning. At most one blank line in a
    # row: a model that wants to stop before its object writes it, not a run of blank lines.
    # Its length is not counted here: a bounded repetition of this makes llama.cpp's grammar
    # slow to check (a second a token, masking SmolLM2's vocabulary). The embedded model is held
    # to `reasoning_first` characters by its check (`grammar_check`); a server, by `max_tokens`.
    # After the object, the close of the code fence a model opened for it: held from `"}` and a
    # new line there, Qwen went on inside the string, `"220.0000…`, to its bound.
    renamed = [
        "lmc-reply-object ::=" + line.removeprefix("root ::=")
        if line.startswith("root ::=")
        else line
        for line in gbnf.splitlines()
    ]
    return "\n".join(
        [
            "root ::= lmc-reasoning [ \\t]* lmc-reply-object lmc-reply-end"
            if object_required
            else "root ::= lmc-reasoning ([ \\t]* lmc-reply-object lmc-reply-end)?",
            'lmc-reasoning ::= lmc-line ("\\n" "\\n"? lmc-line)* "\\n" "\\n"?',
            "lmc-line ::= [ \\t]* [^{ \\t\\n] [^\\n]*",
            'lmc-reply-end ::= "\\n"? ("```" "\\n"?)?',
            *renamed,
        ]
    )


def _json_schema_to_gbnf(schema: dict[str, Any]) -> str:
    """llama-cpp-python's converter, but for how it writes a constant (a literal's choice, a
    key): it left a `\\` as it was, which GBNF reads as an escape (`literal["say \\"hi\\""]`
    ended the literal early, a grammar llama.cpp refuses), and wrote a character past U+FFFF
    as the two surrogate escapes JSON uses, which no token matches (an emoji choice could
    never be written)."""
    from llama_cpp import llama_grammar

    make: Any = llama_grammar.SchemaConverter  # untyped
    converter = make(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    converter._format_literal = _gbnf_literal
    converter._generate_constant_rule = lambda value: _gbnf_literal(
        json.dumps(value, ensure_ascii=False)
    )
    converter.visit(converter.resolve_refs(schema, "stdin"), "")
    gbnf: str = converter.format_grammar()
    return gbnf


def _gbnf_literal(text: str) -> str:
    return '"' + "".join(_GBNF_ESCAPES.get(c, c) for c in text) + '"'


# What a GBNF string literal escapes; every other character stands for itself, UTF-8 included.
_GBNF_ESCAPES = {"\\": "\\\\", '"': '\\"', "\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _numbers_as_text(schema: Any) -> Any:
    """The schema with a JSON number allowed wherever free text is, as the parser allows (it
    reads a number as its text). Held to a string, a model that would write `{"answer": 220}`
    is made to open a quote, and Qwen went on `"220.0000…` to the string's bound."""
    if isinstance(schema, list):
        return [_numbers_as_text(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    inner = {key: _numbers_as_text(value) for key, value in schema.items()}
    constrained = {"enum", "const", "pattern", "format"} & inner.keys()
    if inner.get("type") != "string" or constrained:
        return inner
    return {"anyOf": [inner, {"type": "number"}]}
