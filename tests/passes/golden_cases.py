"""The golden cases of the passes: what a case is made of, and how one runs.

A case is a few files in `tests/passes/golden/<pass>/`, all named after it:

- `<case>.lmp`, the program in. A first comment line `# pass: NAME{option=value,...}` gives the
  pass's options, in the pipeline syntax users write (NAME must be the folder's pass); without
  it the pass runs with its defaults. The program's `metric` declaration scores it, else
  `exact_match(answer)`.
- `<case>.train.jsonl` and `<case>.dev.jsonl`, its data, optional: a case with one of the two
  uses it as both (prune-demos, for one, reads only dev), and without either the pass gets no
  data (the structural passes that make no LM call need none).
- `<case>.replies.json`, the fake LM's script, optional: without it any LM call fails the test.
- `<case>.expected`, what the test compares: the program the pass returns, in the IR's text form,
  then what the pass said and, when the case has data, the dev metric before and after it and the
  LM calls it made, all as `# ` comments.

A new case is only new files. The pass runs under the pass manager, as in a compile: the program
is verified and scored on dev first (so a pass's own score of its input is free, as it is there).

The script is a JSON list of rules; the first that matches a call answers it:

    {"why": "...", "input": "Hamlet", "shown": "Shakespeare", "reply": {"answer": "..."}}

`input` is text the call's input values contain, `shown` text the prompt shows before them (the
instruction, field descriptions and demos), `sample` which of a sampled step's draws the call is
(0 for a step that is not sampled); all are optional, `why` is for the reader. The reply
is the JSON object of the fields the call asks for, taken from `reply`: one rule can answer every
step that reaches it. The script speaks the `json` backend, the default.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmc
from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.ir.graph import ProgramGraph
from lmc.ir.text import print_program
from lmc.passes.base import CompileContext, Pass
from lmc.passes.manager import run_pipeline
from lmc.passes.pipeline import parse_pipeline
from lmc.passes.record import PassRecord
from lmc.runtime.data import Dataset, hash_records, load_dataset
from lmc.runtime.metrics import Metric, builtin

GOLDEN = Path(__file__).parent / "golden"

# Every file of a case ends in one of these; anything else in a golden folder is a mistake.
SUFFIXES = (".lmp", ".expected", ".train.jsonl", ".dev.jsonl", ".replies.json")

PASS_LINE = "# pass: "
RULE_KEYS = {"why", "input", "shown", "sample", "reply"}


def case_paths() -> list[Path]:
    return sorted(GOLDEN.glob("*/*.lmp"))


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def beside(path: Path, suffix: str) -> Path:
    """The file of the case at `path` that ends in `suffix`."""
    return path.with_name(path.stem + suffix)


# The fake LM ---------------------------------------------------------------------------------------


def scripted(rules: list[dict[str, Any]], source: str) -> Callable[[LMRequest], str]:
    """A fake LM's reply function from a case's script (see the module's docstring)."""

    def reply(request: LMRequest) -> str:
        assert request.json_schema is not None, f"{source}: the script speaks the json backend"
        asked = list(json.loads(request.json_schema)["properties"])
        shown = "\n".join(m.content for m in request.messages[:-1])
        # The last message is the call's inputs, then the json backend's closing line, which
        # names the output fields: only the inputs are matched.
        given = request.messages[-1].content.rpartition("\n\n")[0]
        for number, rule in enumerate(rules, 1):
            sample = rule.get("sample", request.sample)
            if (
                rule.get("input", "") in given
                and rule.get("shown", "") in shown
                and (sample == request.sample)
            ):
                missing = [name for name in asked if name not in rule["reply"]]
                # Raised, not answered badly: a wrong script must fail the test, not score 0.
                assert not missing, f"{source}: rule {number} matches but has no {missing}"
                text = json.dumps({name: rule["reply"][name] for name in asked})
                if request.reasoning_first:  # a chain of thought: its reasoning comes first
                    text = f"{rule['reply'].get('reasoning', '')}\n\n{text}"
                return text
        raise AssertionError(f"{source}: no rule matches a call with inputs\n{given}")

    return reply


def fake_lm(path: Path) -> FakeLM:
    script = beside(path, ".replies.json")
    if not script.exists():
        return FakeLM(())  # any LM call fails the test: the case says it needs none
    rules = json.loads(script.read_text(encoding="utf-8"))
    for number, rule in enumerate(rules, 1):
        # A misspelt condition would be ignored, and the rule would answer every call.
        unknown = sorted(set(rule) - RULE_KEYS)
        assert not unknown, f"{script.name}: rule {number}: unknown {unknown}; known {RULE_KEYS}"
        assert "reply" in rule, f"{script.name}: rule {number} has no reply"
    return FakeLM(scripted(rules, script.name))


# The pass, its data and metric ---------------------------------------------------------------------


def make_pass(path: Path) -> Pass:
    """The folder's pass, with the options of the program's `# pass:` line."""
    first_line = path.read_text(encoding="utf-8").partition("\n")[0]
    spec = first_line.removeprefix(PASS_LINE) if first_line.startswith(PASS_LINE) else ""
    [a_pass] = parse_pipeline(spec or path.parent.name)
    assert a_pass.name == path.parent.name, f"{path.name}: '{spec}' is not {path.parent.name}"
    return a_pass


def metric_of(program: lmc.Program) -> Metric:
    declared = program.ir.metric
    return builtin(declared.name, declared.field) if declared else builtin("exact_match", "answer")


def datasets(path: Path, program: lmc.Program, metric: Metric) -> tuple[Dataset, Dataset] | None:
    """The case's train and dev sets; a case with one of the two files uses it as both."""
    found = [
        load_dataset(file, program.inputs, (metric.field,)) if file.exists() else None
        for file in (beside(path, ".train.jsonl"), beside(path, ".dev.jsonl"))
    ]
    train, dev = found[0] or found[1], found[1] or found[0]
    return (train, dev) if train is not None and dev is not None else None


def no_data(name: str) -> Dataset:
    return Dataset(name, (), (), hash_records([]))


@dataclass
class Case:
    path: Path
    program: lmc.Program
    a_pass: Pass
    lm: FakeLM
    context: CompileContext
    has_data: bool

    @property
    def id(self) -> str:
        return case_id(self.path)


def load_case(path: Path, lm: FakeLM | None = None) -> Case:
    """A case ready to run; `lm` replaces the case's own fake LM."""
    program = lmc.load(path)
    metric = metric_of(program)
    data = datasets(path, program, metric)
    train, dev = data if data is not None else (no_data("train"), no_data("dev"))
    lm = lm if lm is not None else fake_lm(path)
    run = lmc.configure(lm, cache=False)  # every call reaches the fake, so calls can be counted
    context = CompileContext(run=run, teacher=run, train=train, dev=dev, metric=metric)
    return Case(path, program, make_pass(path), lm, context, data is not None)


@dataclass
class Outcome:
    program: ProgramGraph
    said: list[str]
    record: PassRecord


def run_case(case: Case) -> Outcome:
    """The case's pass on its program, under the pass manager, as a one-pass compile."""
    said: list[str] = []
    context = dataclasses.replace(case.context, say=said.append)
    result = run_pipeline(case.program.ir, [case.a_pass], context)
    [record] = result.records
    return Outcome(result.program, said, record)


def render(case: Case, outcome: Outcome) -> str:
    """What `<case>.expected` holds: the program, what the pass said, and on data what it bought
    and cost. Corpus paths are relative to the case's folder."""
    lines = [f"# {message}\n" for message in outcome.said]
    if case.has_data:
        record = outcome.record
        lines.append(
            f"# dev metric {record.metric_before:.3f} -> {record.metric_after:.3f}, "
            f"{record.calls} LM calls\n"
        )
    return print_program(outcome.program, str(case.path.parent)) + "".join(lines)
