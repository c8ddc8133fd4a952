"""What both sides of the DSPy comparison share: the data slices and the metrics (stdlib only).

Imported by `bench/lmc_side.py` (project venv) and `bench/dspy_side.py` (the DSPy venv), so the
two systems see the same records and are scored by the same code.
"""

from __future__ import annotations

import json
import re
import resource
import string
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TASKS = ("gsm8k", "banking77", "hotpotqa", "fever")
# Records in and out (JSON keys): the inputs each program reads and the expected output.
INPUT_FIELD = {"gsm8k": "question", "banking77": "text", "hotpotqa": "question", "fever": "claim"}
OUTPUT_FIELD = {"gsm8k": "answer", "banking77": "label", "hotpotqa": "answer", "fever": "label"}
# The one-step program the speed and memory figures run (overhead, memory, Ray scaling).
QA_PROGRAM = """
signature AnswerQuestion {
    \"\"\"Answer the question.\"\"\"
    input  question: str
    output answer:   str
}

program QA(question: str) -> (answer: str) {
    gen = predict AnswerQuestion(question=question)
    return answer = gen.answer
}
"""


def _read(path: Path, limit: int) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                records.append(json.loads(line))
            if len(records) >= limit:
                break
    return records


def load_split(task: str, split: str, limit: int, data: Path = DATA) -> list[dict[str, str]]:
    """The first `limit` records of a split, reduced to {input field, expected output field}."""
    rows = _read(data / task / f"{split}.jsonl", limit)
    source_answer = "final_answer" if task == "gsm8k" else OUTPUT_FIELD[task]
    return [
        {INPUT_FIELD[task]: row[INPUT_FIELD[task]], OUTPUT_FIELD[task]: str(row[source_answer])}
        for row in rows
    ]


def labels(task: str = "banking77", data: Path = DATA) -> list[str]:
    found: list[str] = json.loads((data / task / "labels.json").read_text("utf-8"))
    return found


def _get(prediction: Any, name: str) -> Any:
    if prediction is None:
        return None
    if isinstance(prediction, dict):
        return prediction.get(name)
    return getattr(prediction, name, None)


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _number(value: Any) -> float | None:
    found = _NUMBER.findall(str(value)) if value is not None else []
    try:
        return float(found[-1].replace(",", "")) if found else None
    except ValueError:
        return None


def _normalize(text: Any) -> str:
    lowered = str(text).lower()
    no_punctuation = "".join(c for c in lowered if c not in string.punctuation)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", no_punctuation).split())


def gsm8k_metric(example: Any, prediction: Any, trace: Any = None) -> float:
    """The last number of the predicted answer equals the gold final answer."""
    expected, found = _number(example["answer"]), _number(_get(prediction, "answer"))
    return float(expected is not None and found is not None and abs(expected - found) < 1e-6)


def label_metric(example: Any, prediction: Any, trace: Any = None) -> float:
    """The predicted label is the gold one (banking77's intents, FEVER's verdicts)."""
    return float(str(_get(prediction, "label") or "").strip() == example["label"])


def hotpotqa_metric(example: Any, prediction: Any, trace: Any = None) -> float:
    """SQuAD-style token F1 of the predicted answer against the gold one."""
    truth = _normalize(example["answer"]).split()
    guess = _normalize(_get(prediction, "answer") or "").split()
    common = sum((Counter(truth) & Counter(guess)).values())
    if not truth or not guess or common == 0:
        return float(truth == guess)
    precision, recall = common / len(guess), common / len(truth)
    return 2 * precision * recall / (precision + recall)


METRICS: dict[str, Callable[..., float]] = {
    "gsm8k": gsm8k_metric,
    "banking77": label_metric,
    "hotpotqa": hotpotqa_metric,
    "fever": label_metric,
}


def compiles(config: dict[str, Any], task: str) -> bool:
    """Whether this run compiles `task`: `compile` is true (every task) or a list of tasks."""
    wanted = config.get("compile")
    return wanted is True or (isinstance(wanted, list) and task in wanted)


# The model server every benchmark ran on before there was a choice (`bench/run.py --server`).
DEFAULT_SERVER = "llama-cpp-python"


def peak_rss_mb() -> float:
    """This process's own peak resident set size, MB: Linux's `VmHWM`. Not `ru_maxrss`, which
    for a process started by fork and exec also counts the parent's memory at the fork (a child
    of a 200 MB process reports 213 MB where VmHWM says 13)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def say(message: str) -> None:
    """Progress goes to stderr; stdout carries the side's JSON result."""
    print(message, file=sys.stderr, flush=True)


_PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
# llama-cpp-python's server counts generated tokens in "runs", llama.cpp's in "tokens".
_GENERATE = re.compile(r"(?<!prompt )\beval time =\s*([\d.]+) ms /\s*(\d+) (?:runs|tokens)")
_PREFIX_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit")
# llama.cpp's server does not log what it reused. Per task it logs the tokens it evaluated and
# wrote, and what its context held when the task ended (prompt and reply, less the reply's last
# token, never evaluated): the rest of what it held it reused.
_TASK_EVALUATED = re.compile(r"task (\d+) \| prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens")
_TASK_WROTE = re.compile(r"task (\d+) \|\s+eval time =\s*[\d.]+ ms /\s*(\d+) tokens")
_TASK_HELD = re.compile(r"task (\d+) \| stop processing: n_tokens = (\d+)")


def _llama_cpp_reused(text: str) -> int:
    """The prompt tokens llama.cpp's server reused, over the tasks whose lines are all there (a
    task's last line may be written after its reply was sent)."""
    evaluated = dict(_TASK_EVALUATED.findall(text))
    wrote = dict(_TASK_WROTE.findall(text))
    held = _TASK_HELD.findall(text)
    return sum(
        int(n) + 1 - int(evaluated[task]) - int(wrote[task])
        for task, n in held
        if task in evaluated and task in wrote
    )


class ServerLog:
    """What the model server did, read from its log: per request, the prompt prefix it reused
    from the previous request and the tokens it evaluated and generated (llama-cpp-python's
    server prints all three; llama.cpp's the last two, and what its context held at the end).

    A prompt token the server reuses costs nothing, so the tokens *evaluated* are what a prompt
    layout really costs: a layout whose static part comes first is evaluated once, one that puts
    a long static part after the input is evaluated again on every call. The two sides run one
    after the other, so the lines between two marks are one side's."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, mark: int) -> dict[str, float]:
        with self.path.open(encoding="utf-8", errors="replace") as log:
            log.seek(mark)
            text = log.read()
        prompt = [(float(ms), int(n)) for ms, n in _PROMPT_EVAL.findall(text)]
        generated = [(float(ms), int(n)) for ms, n in _GENERATE.findall(text)]
        evaluated = sum(n for _, n in prompt)
        written = sum(n for _, n in generated)
        reused = sum(int(n) for n in _PREFIX_HIT.findall(text)) + _llama_cpp_reused(text)
        return {
            "requests": len(prompt),
            "reused_prompt_tokens": reused,
            "evaluated_prompt_tokens": evaluated,
            "generated_tokens": written,
            "prompt_eval_s": sum(ms for ms, _ in prompt) / 1000,
            "generate_s": sum(ms for ms, _ in generated) / 1000,
        }


def with_server_work(config: dict[str, Any], run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`run()`'s figures, with what the model server did meanwhile under "server" when the
    config names the server's log (`server_log`), and earlier attempts' time when the phase
    was resumed (`resumed`)."""
    if not config.get("server_log"):
        return resumed(config, run())
    log = ServerLog(config["server_log"])
    mark = log.mark()
    figures = run()
    return resumed(config, figures | {"server": log.since(mark)})


def in_phase(config: dict[str, Any], phase: str) -> dict[str, Any]:
    """The config one phase runs with: where the run has a replaying proxy (`bench/replay.py`),
    the phase's own door through it, so a stopped phase replays what it already got."""
    root = config.get("replay_root")
    return config | {"api_base": f"{root}/{phase}/v1", "phase": phase} if root else config


def resumed(config: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    """A phase's figures with the time its earlier, stopped attempts spent added to `wall_s`,
    and under "replay" how many of its calls were replayed rather than asked (the server's
    figures count only the calls asked); unchanged where nothing was replayed (an earlier
    attempt whose requests were not asked again, after a change to a prompt, did no work
    this one used)."""
    if not config.get("phase"):
        return figures
    url = f"{config['replay_root']}/{config['phase']}/replay"
    with urllib.request.urlopen(url, timeout=30) as reply:
        report = json.loads(reply.read())
    if not report["replayed_calls"]:
        return figures
    wall = float(figures["wall_s"]) + float(report["earlier_s"])
    figures = figures | {"wall_s": wall, "replay": report}
    if "examples_per_s" in figures:
        figures["examples_per_s"] = figures["n"] / wall if wall else 0.0
    return figures
