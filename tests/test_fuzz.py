"""Fuzzing what users hand lmc: `.lmp` text, artifacts and JSONL files (datasets, corpora, traces).

Whatever the input, lmc either takes it or raises its own error (`lmc.LmcError`: the command line
turns it into exit 2 and one message); anything else escaping is a bug, shown as a traceback.
Hypothesis drives each reader with arbitrary text and bytes, with token soup of the `.lmp`
grammar, and with mutations of valid programs, artifacts and records, which reach deeper than
noise. `tests/fuzz_atheris.py` runs the same targets under atheris (coverage-guided), briefly, in
the last test here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import modules

import lmc
from lmc.cli.eval import metric_from_json
from lmc.compiler.artifact import CompileInfo, artifact_to_json
from lmc.errors import LmcError
from lmc.files import JSONUnreadable, json_value
from lmc.ir.graph import Demo, StepParams
from lmc.passes.record import PassRecord
from lmc.retrieval.index import read_corpus
from lmc.runtime.data import load_dataset
from lmc.runtime.trace import read_trace_lines, trace_panel
from lmc.syntax.lark_parser import KEYWORDS
from lmc.syntax.parser import parse
from lmc.syntax.printer import print_module

# Modest by default, to keep the suite fast; `LMC_FUZZ_EXAMPLES=20000` for a long hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("LMC_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

QA = """\
signature Answer {
    \"\"\"Answer the question.\"\"\"
    input  question: str
    input  context:  list[str] "Passages."
    output answer:   literal["yes", "no"]
    output score:    float?
}

index wiki = bm25("corpus.jsonl", text="text")

program QA(question: str, n: int) -> (answer: literal["yes", "no"]) {
    for i in range(2) {
        passages = retrieve wiki(query=question, k=2)
        gen = chain_of_thought Answer(question=question, context=passages + ["x"])
    }
    return answer = gen.answer
}

metric exact_match(answer)
"""


def must_be_lmcs(action: Any, *args: Any) -> Any:
    """`action(*args)`, which may raise lmc's own errors and nothing else."""
    try:
        return action(*args)
    except LmcError:
        return None


# .lmp text -----------------------------------------------------------------------------------

_PUNCTUATION = [*"{}()[],.:=+-?", "->", '"""', '"', "#", "\n", "\\"]
tokens = st.one_of(
    st.sampled_from(sorted(KEYWORDS) + _PUNCTUATION + ["str", "int", "list", "literal", "T"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True),
    st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,3})?", fullmatch=True),
    st.text(max_size=6).map(json.dumps),
)
token_soup = st.lists(tokens, max_size=60).map(" ".join)


@st.composite
def mutated(draw: st.DrawFn, sources: st.SearchStrategy[str]) -> str:
    """A valid text with a few slices deleted, duplicated or replaced."""
    text = draw(sources)
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 20)))
        how = draw(st.sampled_from(["delete", "duplicate", "replace"]))
        if how == "delete":
            text = text[:start] + text[end:]
        elif how == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        else:
            text = text[:start] + draw(st.one_of(tokens, st.text(max_size=4))) + text[end:]
    return text


lmp_texts = st.one_of(
    st.text(),
    st.text(st.characters(codec="utf-8")),  # lone surrogates and controls too
    token_soup,
    mutated(st.just(QA)),
    mutated(modules().map(print_module)),
)


def check_lmp(text: str) -> None:
    """What `lmc check`, `lmc fmt` and `lmc run` do with a file's text."""
    module = must_be_lmcs(parse, text, "fuzz.lmp")
    if module is not None:
        formatted = print_module(module)
        must_be_lmcs(parse, formatted, "fuzz.lmp")
    program = must_be_lmcs(lmc.loads, text)
    if program is not None:
        program.to_lmp()


@FUZZ
@given(lmp_texts)
def test_the_parser_and_checker_raise_only_lmcs_errors(text: str) -> None:
    check_lmp(text)


# artifacts -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def artifact() -> dict[str, Any]:
    """A real artifact as a JSON object: QA compiled with an instruction, a demo, a pass log."""
    graph = lmc.loads(QA).ir.copy()
    graph.params["gen"] = StepParams(
        instruction="Answer like a librarian.",
        demos=(Demo((("question", "q"), ("context", ("p",)), ("answer", "yes"))),),
    )
    record = PassRecord("bootstrap-demos", {"max_demos": 4}, 0.5, 0.75, 12, 2, 3400, 80, 2.5, 1)
    info = CompileInfo(
        "local", "json", {"train": "ab" * 32}, {"name": "exact_match", "field": "answer"}, (record,)
    )
    return artifact_to_json(graph, info, os.getcwd())


ARTIFACT = artifact()


@st.composite
def artifact_documents(draw: st.DrawFn) -> bytes:
    """An artifact with one place (a key, or a value at any depth) replaced."""
    document = json.loads(json.dumps(ARTIFACT))
    node: Any = document
    path = []
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append((node, key))
        node = node[key]
    if path:
        parent, key = path[-1]
        what = draw(st.sampled_from(["value", "delete", "program text"]))
        if what == "value":
            parent[key] = draw(json_values)
        elif what == "delete":
            del parent[key]
        else:
            parent[key] = draw(mutated(st.just(ARTIFACT["program"])))
    else:
        document[draw(st.text(max_size=6))] = draw(json_values)
    return json.dumps(document, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


artifact_bytes = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    artifact_documents(),
    mutated(st.just(json.dumps(ARTIFACT, indent=2))).map(
        lambda text: text.encode("utf-8", "surrogatepass")
    ),
)


@FUZZ
@given(data=artifact_bytes)
def test_the_artifact_loader_raises_only_lmcs_errors(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "fuzz.json"
    path.write_bytes(data)

    program = must_be_lmcs(lmc.load, path)
    if program is not None:
        program.to_lmp()
        if program.compiled is not None and program.compiled.metric is not None:
            must_be_lmcs(metric_from_json, program.compiled.metric)


# JSONL files -------------------------------------------------------------------------------------

GOOD_RECORDS = [
    {"question": "Who wrote Hamlet?", "n": 3, "answer": "yes", "text": "Shakespeare wrote it."},
    {"question": "a\u2028b", "n": -1, "answer": "no", "text": "", "id": 7},
]
TRACE_LINE = {
    "record": 1,
    "step": "gen",
    "backend": "json",
    "model": "fake",
    "attempt": 1,
    "request": {"messages": [{"role": "user", "content": "hi"}]},
    "reply": '{"answer": "yes"}',
    "parsed": {"answer": "yes"},
    "error": None,
    "prompt_tokens": 3,
    "completion_tokens": 4,
    "latency_s": 0.1,
    "cached": False,
}
GOOD_LINES = "".join(json.dumps(r) + "\n" for r in [*GOOD_RECORDS, TRACE_LINE])

jsonl_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(json_values.map(json.dumps), max_size=5).map(lambda lines: "\n".join(lines).encode()),
    mutated(st.just(GOOD_LINES)).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.lists(
        st.dictionaries(st.sampled_from([*TRACE_LINE, "kind", "text", "n"]), json_values),
        max_size=4,
    ).map(lambda lines: "".join(json.dumps(line) + "\n" for line in lines).encode()),
)


def read_all(path: Path) -> None:
    """Every reader of JSONL files, as the commands use them."""
    program = lmc.loads(QA)
    must_be_lmcs(load_dataset, path, program.inputs, ["answer"])
    must_be_lmcs(read_corpus, path)
    calls = must_be_lmcs(read_trace_lines, path) or []
    for _, call in calls:
        must_be_lmcs(trace_panel, call)


@FUZZ
@given(data=jsonl_bytes)
def test_the_jsonl_readers_raise_only_lmcs_errors(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(data)

    read_all(path)


@FUZZ
@given(st.text(st.characters(codec="utf-8")) | json_values.map(json.dumps))
def test_json_value_reads_or_says_why(text: str) -> None:
    try:
        json_value(text)
    except JSONUnreadable:
        pass


# atheris -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["lmp", "artifact", "jsonl"])
def test_atheris_finds_nothing_but_lmcs_errors_in_a_short_run(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    done = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parent / "fuzz_atheris.py"),
            target,
            "-runs=3000",
            "-max_len=512",
            "-seed=1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LMC_CACHE_DIR": str(tmp_path / "cache"), "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
