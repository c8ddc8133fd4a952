"""The agent example's tools (examples/agent/tools.py) and data, without an LM: search finds the
passages a question needs, and the calculator computes arithmetic and refuses everything else."""

from __future__ import annotations

import importlib.util
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

AGENT = Path(__file__).resolve().parents[2] / "examples" / "agent"


@pytest.fixture
def tools() -> ModuleType:
    """A fresh copy of the module, so each test sees its index opened lazily (lmc itself keeps
    one index per corpus and process). Not put in `sys.modules`: no other test's `tools` clashes."""
    spec = importlib.util.spec_from_file_location("agent_example_tools", AGENT / "tools.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def records(split: str) -> list[dict[str, str]]:
    lines = (AGENT / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def titles(passages: list[str]) -> list[str]:
    return [passage.split(" | ", 1)[0] for passage in passages]


def test_search_finds_the_gold_passages_of_a_train_question(tools: ModuleType) -> None:
    (question,) = [r["question"] for r in records("train") if r["answer"] == "Oplismenus"]

    found = tools.search(question)

    # HotPotQA's gold titles for this question.
    assert {"Oplismenus", "Lavatera"} <= set(titles(found))
    assert len(found) == 3


def test_search_returns_title_and_text_best_first(tools: ModuleType) -> None:
    found = tools.search("Samantha Cristoforetti astronaut born", k=5)

    assert len(found) == 5
    assert found[0].startswith("Samantha Cristoforetti | Samantha Cristoforetti (] ; born 26")
    assert "1977" in found[0]


def test_search_refuses_k_below_one(tools: ModuleType) -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        tools.search("Roger Ebert", k=0)


def test_search_opens_the_library_once_for_many_threads(
    tools: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = []
    library_class = tools._Library

    def counting(path: Path) -> object:
        opened.append(path)
        return library_class(path)

    monkeypatch.setattr(tools, "_Library", counting)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(tools.search, ["Roger Ebert film critic"] * 16))

    assert opened == [tools.CORPUS]
    assert all(result == results[0] for result in results)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("(1969 - 1903) / 2", 33.0),
        ("1977 - 1938", 39.0),
        (" 2 ** 10 ", 1024.0),
        ("2 ** -1", 0.5),
        ("-3 + +4", 1.0),
        ("7 // 2", 3.0),
        ("-7 % 3", 2.0),
        ("1.5 * (2 + 2)", 6.0),
        ("10 ** 100", 1e100),
        ("-" * 99 + "1", -1.0),
    ],
)
def test_calculate_computes_arithmetic(tools: ModuleType, expression: str, value: float) -> None:
    result = tools.calculate(expression)

    assert result == pytest.approx(value)
    assert type(result) is float


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "found a function call: \"__import__('os')\""),
        ("__import__('os').system('true')", "found a function call"),
        ("x + 1", "found a name: 'x'"),
        ("math.pi", "found an attribute: 'math.pi'"),
        ("().__class__", "found an attribute"),
        ("abs(-1)", "found a function call: 'abs(-1)'"),
        ("[1, 2][0]", "found an index"),
        ("'a' * 3", "found a str value"),
        ("True + 1", "found a bool value"),
        ("1j", "found a complex value"),
        ("lambda: 1", "found an expression of kind Lambda"),
        ("1 << 1000", "found another operator: '1 << 1000'"),
        ("2 ^ 3", "'^' is not a power here; write **"),
        ("1,000 + 1", "found a tuple"),
        ("9**9**9", "the exponent 387420489 is larger than 1000"),
        ("2 ** 1001", "the exponent 1001 is larger than 1000"),
        ("10 ** 101", "10 ** 101 is larger than 10**100"),
        ("10.0 ** 400", "is larger than 10**100"),
        ("(10 ** 100) * 10", "a number in '(10 ** 100) * 10' is larger than 10**100"),
        ("1e308 * 10", "is larger than 10**100"),
        ("9" * 400, "a number is larger than 10**100"),
        ("(-8) ** (1 / 3)", "is a complex number"),
        ("1 / 0", "division by zero in '1 / 0'"),
        ("5 % (2 - 2)", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("1 +", "not an arithmetic expression: '1 +' (invalid syntax)"),
        ("", "the expression is empty"),
        ("1" + "+1" * 300, "longer than 500 characters"),
    ],
)
def test_calculate_refuses_what_is_not_bounded_arithmetic(
    tools: ModuleType, expression: str, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^calculate: .*{re.escape(message)}"):
        tools.calculate(expression)


def test_the_program_names_functions_the_module_has(tools: ModuleType) -> None:
    program = (AGENT / "program.lmp").read_text(encoding="utf-8")

    named = re.findall(r'"tools:(\w+)"', program)

    assert named == ["search", "calculate"]
    assert all(callable(getattr(tools, name)) for name in named)


def test_the_data_is_question_answer_records_over_a_small_corpus() -> None:
    corpus = (AGENT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    ids = [json.loads(line)["id"] for line in corpus]

    for split in ("train", "dev"):
        assert len(records(split)) == 12
        assert all(set(r) == {"question", "answer"} for r in records(split))
    assert len(ids) == len(set(ids)) == 1000
    assert (AGENT / "corpus.jsonl").stat().st_size < 1_000_000
