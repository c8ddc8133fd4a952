"""Golden tests: every rejection in `tests/syntax/golden/rejections/` renders exactly as expected.

Each `<case>.lmp` holds a small program with a mistake (or several, for the "all errors at once"
case); `<case>.expected` holds the exact `ProgramError.render()` text. Run with `LMC_UPDATE_GOLDEN=1`
to (re)write the expected files from the current behaviour, then review every one by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lmc.diagnostics import ProgramError
from lmc.ir.graph import StepNode
from lmc.ir.lower import load_text

GOLDEN = Path(__file__).parent / "golden" / "rejections"
CASES = sorted(GOLDEN.glob("*.lmp"))
UPDATE = os.environ.get("LMC_UPDATE_GOLDEN") == "1"


def _strip_one_newline(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


def test_there_are_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_rejection_renders_as_expected(case: Path) -> None:
    text = case.read_text(encoding="utf-8")
    with pytest.raises(ProgramError) as caught:
        load_text(text, case.name)
    rendered = caught.value.render()
    expected_file = case.with_suffix(".expected")
    if UPDATE:
        expected_file.write_text(rendered + "\n", encoding="utf-8")
    assert expected_file.exists(), f"missing {expected_file.name}; run with LMC_UPDATE_GOLDEN=1"
    expected = _strip_one_newline(expected_file.read_text(encoding="utf-8"))
    assert rendered == expected


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_every_error_names_this_file(case: Path) -> None:
    with pytest.raises(ProgramError) as caught:
        load_text(case.read_text(encoding="utf-8"), case.name)
    diagnostics = caught.value.diagnostics
    assert diagnostics
    for d in diagnostics:
        assert d.span.file == case.name
        assert d.span.line >= 1
        assert d.span.column >= 1


# Valid programs from the language spec load without error ----------------------------------------

RAG = '''
signature GenerateAnswer {
    """Answer the question using only the retrieved context."""   # the task instruction
    input  context:  list[str]  "Relevant passages."              # a field
    input  question: str
    output answer:   str        "A short factual answer, a few words."
}

index wiki = bm25("corpus.jsonl", text="text")     # path is relative to the .lmp file

program RAG(question: str) -> (answer: str) {
    passages = retrieve wiki(query=question, k=3)
    gen = chain_of_thought GenerateAnswer(context=passages, question=question)
    return answer = gen.answer
}

metric exact_match(answer)            # builtin metric over an output field
'''

SHORT = """
signature Summarize = "document: str -> summary: str"

program Brief(document: str) -> (summary: str) {
    s = predict Summarize(document=document)
    return summary = s.summary
}
"""

MULTI_HOP = """
signature GenerateQuery = "context: list[str], question -> query"
signature GenerateAnswer = "context: list[str], question -> answer"

index wiki = bm25("corpus.jsonl", text="text")

program MultiHop(question: str) -> (answer: str) {
    context = []
    for i in range(2) {
        q = chain_of_thought GenerateQuery(context=context, question=question)
        context = context + retrieve wiki(query=q.query, k=3)
    }
    a = chain_of_thought GenerateAnswer(context=context, question=question)
    return answer = a.answer
}
"""

TYPES = """
signature Classify {
    input  review: str
    input  tags: list[list[str]]
    input  note: str?
    output label: literal["positive", "negative"]
    output score: float
}

program Sentiment(review: str, tags: list[list[str]]) -> (label: literal["positive", "negative"]) {
    c = predict Classify(review=review, tags=tags, note="be brief")
    return label = c.label
}
"""

FORWARD = """
program Forward(x: str) -> (y: str) {
    a = predict "x -> y"(x=b.y)
    b = predict "x -> y"(x=x)
    return y = a.y
}
"""


@pytest.mark.parametrize(
    ("source", "program"),
    [
        (RAG, "RAG"),
        (SHORT, "Brief"),
        (MULTI_HOP, "MultiHop"),
        (TYPES, "Sentiment"),
        (FORWARD, "Forward"),
    ],
    ids=["rag", "short_signature", "multi_hop", "types", "forward_reference"],
)
def test_valid_spec_programs_load(source: str, program: str) -> None:
    checked = load_text(source, "valid.lmp")
    assert program in checked.graphs


def test_multi_hop_unrolls_both_iterations() -> None:
    graph = load_text(MULTI_HOP, "valid.lmp").graphs["MultiHop"]
    steps = [n for n in graph.nodes() if isinstance(n, StepNode)]
    # Two unrolled copies of `q` sharing one set of learnable parameters, then `a`.
    assert sorted(n.param_key for n in steps) == ["a", "q", "q"]


# Known package bugs, kept visible until fixed --------------------------------------------------

DUPLICATE_PARAMETER = """
program QA(question: str, question: str) -> (answer: str) {
    gen = predict "question -> answer"(question=question)
    return answer = gen.answer
}
"""


def test_duplicate_parameter_is_reported_not_crashed() -> None:
    with pytest.raises(ProgramError) as caught:
        load_text(DUPLICATE_PARAMETER, "duplicate_parameter.lmp")
    assert "parameter 'question' is declared twice" in caught.value.render()
