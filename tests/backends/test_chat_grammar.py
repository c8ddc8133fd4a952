"""The chat backend's grammar and its parser agree: every reply the grammar lets a model write,
the parser reads, so a model held to the grammar never writes a reply that is then refused.

The grammar is read here as a regular expression (the chat grammar has no recursion: each rule
is expanded in place), which is how llama.cpp reads its literals, classes and repetitions.
"""

from __future__ import annotations

import json
import re

import pytest

from lmc.backends.base import ReplyError, StepView
from lmc.backends.chat import ChatBackend, marker_grammar
from lmc.signatures import FieldSpec, SignatureSpec
from lmc.types import STR, ListOf, OptionalOf, ToolCall

# A GBNF body's parts: a literal, a character class, a repetition, an operator, a rule's name.
_PART = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|\{\d*,?\d*\}|[()|?*+]|[\w-]+)')


def grammar_pattern(grammar: str) -> re.Pattern[str]:
    """The replies `grammar` allows, as a pattern (GBNF's classes and repetitions read as
    Python's; a literal is JSON text; a rule's name is its body, in place)."""
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines())

    def expand(name: str) -> str:
        out = []
        for part in _PART.findall(rules[name]):
            if part.startswith('"'):
                out.append(re.escape(json.loads(part)))
            elif part == "(":
                out.append("(?:")
            elif part.startswith("[") or part[0] in "){|?*+":
                out.append(part)
            else:
                out.append(f"(?:{expand(part)})")
        return "".join(out)

    return re.compile(expand("root"), re.DOTALL)


def view(output: FieldSpec) -> StepView:
    return StepView(SignatureSpec("S", (FieldSpec("q", STR),), (output,), None), "predict")


def reply(name: str, value: str) -> str:
    return f"[[ ## {name} ## ]]\n{value}\n\n[[ ## completed ## ]]"


def parsed(step: StepView, text: str) -> object:
    try:
        return ChatBackend().parse(step, text)
    except ReplyError:
        return None


ITEMS = FieldSpec("items", ListOf(STR))
# Every ASCII character alone in a string, written raw; and the escapes the grammar allows.
RAW = [chr(code) for code in range(0x80) if chr(code) not in '"\\']
ESCAPED = ["\\n", "\\t", '\\"', "\\\\"]


@pytest.mark.parametrize(
    "output",
    [
        ITEMS,
        FieldSpec("maybe", OptionalOf(ListOf(STR))),
        FieldSpec("action", ToolCall((("note", (("text", STR),)),))),
    ],
    ids=["list", "optional-list", "tool-call"],
)
def test_every_string_the_chat_grammar_allows_the_parser_reads(output: FieldSpec) -> None:
    step = view(output)
    allowed = grammar_pattern(marker_grammar(step.outputs))
    for inner in RAW + ESCAPED:
        string = f'"a{inner}b"'
        value = (
            f'{{"tool": "note", "args": {{"text": {string}}}}}'
            if isinstance(output.type, ToolCall)
            else f"[{string}]"
        )
        text = reply(output.name, value)
        if allowed.fullmatch(text):
            assert parsed(step, text) is not None, repr(inner)


def test_a_raw_tab_in_a_lists_string_is_refused_by_the_grammar_as_by_the_parser() -> None:
    step = view(ITEMS)
    allowed = grammar_pattern(marker_grammar(step.outputs))
    raw, escaped = reply("items", '["a\tb"]'), reply("items", '["a\\tb"]')

    assert not allowed.fullmatch(raw)
    assert parsed(step, raw) is None
    assert allowed.fullmatch(escaped)
    assert parsed(step, escaped) == {"items": ["a\tb"]}


def test_the_grammar_refuses_every_raw_control_character_in_a_string() -> None:
    allowed = grammar_pattern(marker_grammar((ITEMS,)))
    refused = [c for c in RAW if not allowed.fullmatch(reply("items", f'["a{c}b"]'))]
    assert refused == [chr(code) for code in range(0x20)] + ["\x7f"]
