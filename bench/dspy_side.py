"""The DSPy side of the comparison: run by `bench/run.py` with `bench/.venv-dspy/bin/python`.

    bench/.venv-dspy/bin/python bench/dspy_side.py < config.json > result.json

The same config and result shape as `bench/lmc_side.py`; the tasks are written in plain DSPy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dspy
from common import (
    DATA,
    INPUT_FIELD,
    METRICS,
    compiles,
    in_phase,
    labels,
    load_split,
    peak_rss_mb,
    resumed,
    say,
    with_server_work,
)
from dspy.utils.exceptions import AdapterParseError


class _Counting:
    """An adapter that counts the replies its parser rejects."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.parses = 0
        self.failures = 0

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        with self.lock:
            self.parses += 1
        try:
            parsed: dict[str, Any] = super().parse(signature, completion)  # type: ignore[misc]
        except AdapterParseError:
            with self.lock:
                self.failures += 1
            raise
        return parsed


class CountingChatAdapter(_Counting, dspy.ChatAdapter):
    """DSPy's default adapter (each reply it cannot parse is re-asked through JSONAdapter, DSPy's
    fallback: a second LM call)."""


class CountingJSONAdapter(_Counting, dspy.JSONAdapter):
    """DSPy's JSONAdapter (its structured-output mode; no fallback)."""


ADAPTERS = {"chat": CountingChatAdapter, "json": CountingJSONAdapter}


class SolveMath(dspy.Signature):
    """Solve the math word problem. Give the final answer as a number."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="The final numeric answer only.")


class GenerateAnswer(dspy.Signature):
    """Answer the question using only the retrieved context."""

    context: list[str] = dspy.InputField(desc="Relevant passages.")
    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="A short factual answer, a few words.")


def classify_signature() -> type[dspy.Signature]:
    # Built from a dict: with postponed annotations a class body could not see the Literal.
    label_type = Literal[tuple(labels())]  # type: ignore[valid-type]
    return dspy.make_signature(
        {"text": (str, dspy.InputField()), "label": (label_type, dspy.OutputField())},
        "Classify the customer's banking message into its intent.",
        signature_name="ClassifyIntent",
    )


def verify_signature() -> type[dspy.Signature]:
    """bench/tasks/fever.lmp's signature, word for word."""
    label_type = Literal[tuple(labels("fever"))]  # type: ignore[valid-type]
    return dspy.make_signature(
        {"claim": (str, dspy.InputField()), "label": (label_type, dspy.OutputField())},
        "Decide whether the claim is supported or refuted by what is known about the world, "
        "or whether there is not enough information to tell.",
        signature_name="VerifyClaim",
    )


class BM25:
    """bm25s over the corpus's `text` field with English stemming and stop words, as lmc's
    `bm25` index builds it; `search` returns the top-k passages' text."""

    def __init__(self, corpus: Path):
        import bm25s
        import Stemmer

        self.texts = [
            json.loads(line)["text"] for line in corpus.open(encoding="utf-8") if line.strip()
        ]
        self.stemmer = Stemmer.Stemmer("english")
        self.lock = threading.Lock()
        tokens = bm25s.tokenize(
            self.texts, stopwords="en", stemmer=self.stemmer, show_progress=False
        )
        self.retriever = bm25s.BM25()
        self.retriever.index(tokens, show_progress=False)

    def search(self, query: str, k: int) -> list[str]:
        import bm25s

        with self.lock:
            tokens = bm25s.tokenize(
                [query], stopwords="en", stemmer=self.stemmer, show_progress=False
            )
            if not tokens.vocab:
                return []
            found, _ = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return [self.texts[int(i)] for i in found[0]]


class RAG(dspy.Module):
    def __init__(self, index: BM25, k: int = 3):
        super().__init__()
        self.index, self.k = index, k
        self.generate_answer = dspy.ChainOfThought(GenerateAnswer)

    def forward(self, question: str) -> dspy.Prediction:
        context = self.index.search(question, self.k)
        return self.generate_answer(context=context, question=question)


def make_program(task: str, index: BM25 | None) -> dspy.Module:
    if task == "gsm8k":
        return dspy.ChainOfThought(SolveMath)
    if task == "banking77":
        return dspy.Predict(classify_signature())
    if task == "fever":
        return dspy.Predict(verify_signature())
    assert index is not None
    return RAG(index)


def examples(task: str, split: str, limit: int) -> list[dspy.Example]:
    input_field = INPUT_FIELD[task]
    return [
        dspy.Example(**record).with_inputs(input_field) for record in load_split(task, split, limit)
    ]


def overhead_us(calls: int) -> float:
    """Microseconds per one-step Predict call on DSPy's DummyLM (answers in turn)."""
    lm = dspy.utils.DummyLM([{"answer": "Paris"}] * (calls + 1))
    qa = dspy.Predict("question -> answer")
    with dspy.context(lm=lm):
        qa(question="warm up")
        started = time.perf_counter()
        for i in range(calls):
            qa(question=f"question {i}")
    return (time.perf_counter() - started) / calls * 1e6


def _usage(history: list[dict[str, Any]]) -> tuple[int, int]:
    prompt = completion = 0
    for entry in history:
        usage = entry.get("usage") or {}
        prompt += int(usage.get("prompt_tokens") or 0)
        completion += int(usage.get("completion_tokens") or 0)
    return prompt, completion


def _reused(history: list[dict[str, Any]]) -> int | None:
    reused = 0
    for entry in history:
        details = (entry.get("usage") or {}).get("prompt_tokens_details")
        # litellm's usage holds a dict, or its own object, depending on its version
        cached = (
            details.get("cached_tokens")
            if isinstance(details, dict)
            else getattr(details, "cached_tokens", None)
        )
        if not isinstance(cached, int):
            return None
        reused += cached
    return reused


SERVER = "llamacpp"  # the benchmark's server, as declared to DSPy


def declare_server(api_base: str) -> None:
    """Declare the benchmark's llama-cpp-python server to DSPy, as DSPy's docs say to reach a
    server whose spellings differ from OpenAI's (`dspy.lm15.register_provider`).

    For an `openai/` model DSPy 3.4's native client speaks OpenAI's current dialect and sends
    the reply limit as `max_completion_tokens`, which llama-cpp-python's server ignores: replies
    ran on to the end of the context (3,861 tokens on SmolLM2 with `max_tokens=512`). Declared
    with OpenAI's dialect but `max_tokens` as the limit's name, DSPy keeps its native client
    (no litellm), and every other field of its requests is as before."""
    from dspy import lm15

    dialect = dataclasses.replace(
        lm15.OpenAIChatCompat.preset("openai"), max_tokens_field="max_tokens"
    )
    access = lm15.AccessPolicy(provider=SERVER, auth_modes=("bearer",), base_url=api_base)
    lm15.register_provider(lm15.ProviderDefinition.chat(access, compat=dialect), replace=True)


class Meter:
    """A fresh LM and adapter per phase, so each phase's calls and parse failures are its own."""

    def __init__(self, config: dict[str, Any], adapter: str = "chat"):
        declare_server(config["api_base"])
        self.lm = dspy.LM(
            f"{SERVER}/bench",
            api_base=config["api_base"],
            api_key="x",
            cache=False,
            temperature=0,
            max_tokens=512,  # lmc's default per call
        )
        self.adapter = ADAPTERS[adapter]()


def _score(
    config: dict[str, Any],
    program: dspy.Module,
    task: str,
    devset: list[dspy.Example],
    adapter: str = "chat",
) -> dict[str, Any]:
    """Run the program over `devset` once, scored by the shared metric, with the run's costs
    (and what the model server evaluated, when its log is named)."""
    return with_server_work(config, lambda: _run_scored(config, program, task, devset, adapter))


def _run_scored(
    config: dict[str, Any],
    program: dspy.Module,
    task: str,
    devset: list[dspy.Example],
    adapter: str,
) -> dict[str, Any]:
    meter = Meter(config, adapter)
    metric = METRICS[task]
    failed = 0
    lock = threading.Lock()

    def guarded(**inputs: Any) -> Any:
        nonlocal failed
        try:
            return program(**inputs)
        except Exception:  # a reply unusable even after the JSONAdapter fallback
            with lock:
                failed += 1
            return dspy.Prediction()

    started = time.perf_counter()
    with dspy.context(lm=meter.lm, adapter=meter.adapter):
        result = dspy.Evaluate(
            devset=devset,
            metric=metric,
            num_threads=int(config.get("concurrency", 4)),
            display_progress=False,
            provide_traceback=False,
        )(guarded)
    wall = time.perf_counter() - started
    prompt, completion = _usage(meter.lm.history)
    return {
        "metric": float(result.score) / 100,
        "scores": [float(score or 0.0) for _, _, score in result.results],
        "n": len(devset),
        "failed_examples": failed,
        "format_failures": meter.adapter.failures,
        "format_failure_rate": meter.adapter.failures / meter.adapter.parses
        if meter.adapter.parses
        else 0.0,
        "calls": len(meter.lm.history),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        # The prompt tokens the server reused from its prefix cache, where every reply said
        # (`usage.prompt_tokens_details.cached_tokens`); None where the server does not say.
        "reused_prompt_tokens": _reused(meter.lm.history),
        "wall_s": wall,
        "examples_per_s": len(devset) / wall if wall else 0.0,
    }


def run_task(config: dict[str, Any], task: str, index: BM25 | None) -> dict[str, Any]:
    limit = int(config["limit"])
    program = make_program(task, index)
    dev = examples(task, "dev", limit)
    say(f"[dspy] {task}: zero-shot on {len(dev)} dev examples")
    row: dict[str, Any] = {"zero_shot": _score(config, program, task, dev)}
    say(f"[dspy] {task}: zero-shot {row['zero_shot']['metric']:.3f}")
    if compiles(config, task):
        train = examples(task, "train", limit)
        meter = Meter(config)
        say(f"[dspy] {task}: BootstrapFewShotWithRandomSearch, {len(train)} train / {len(dev)} dev")
        started = time.perf_counter()
        with dspy.context(lm=meter.lm, adapter=meter.adapter):
            compiled = optimizer("rs", config, task).compile(program, trainset=train, valset=dev)
        wall = time.perf_counter() - started
        prompt, completion = _usage(meter.lm.history)
        row["compile"] = {
            "calls": len(meter.lm.history),
            "tokens": prompt + completion,
            "wall_s": wall,
            "dev": _score(config, compiled, task, dev),
            "test": _score(config, compiled, task, examples(task, "test", limit)),
        }
        say(f"[dspy] {task}: compiled dev {row['compile']['dev']['metric']:.3f}")
    return row


def optimizer(name: str, config: dict[str, Any], task: str) -> Any:
    """DSPy's optimizers as issue 16's benchmark runs them: random search over bootstrapped demo
    sets at its documented settings, and MIPROv2 at `auto="light"`."""
    threads = int(config.get("concurrency", 4))
    if name == "rs":
        return dspy.BootstrapFewShotWithRandomSearch(
            metric=METRICS[task],
            max_bootstrapped_demos=4,
            max_labeled_demos=4,
            num_candidate_programs=4,
            num_threads=threads,
            # An unparseable reply scores 0 and the search goes on, as in lmc; DSPy's default
            # (10 errors) would abort the whole compile on a small model.
            max_errors=10**6,
        )
    return dspy.MIPROv2(
        metric=METRICS[task], auto="light", num_threads=threads, max_errors=10**6, seed=9
    )


OPTIMIZER_NAMES = {
    "rs": "BootstrapFewShotWithRandomSearch(max_bootstrapped_demos=4, max_labeled_demos=4, "
    "num_candidate_programs=4)",
    "mipro": 'MIPROv2(auto="light")',
}


def compare_optimizers(config: dict[str, Any], index: BM25 | None) -> dict[str, Any]:
    """Issue 16's comparison, DSPy's half: zero-shot on test, then each optimizer's compile
    (calls, tokens, wall time) and its program on test. Each finished phase is written to
    `config["partial"]` at once, and phases already there are not run again."""
    task, sizes, adapter = config["task"], config["sizes"], config.get("adapter", "chat")
    partial = Path(config["partial"])
    row: dict[str, Any] = (
        json.loads(partial.read_text(encoding="utf-8")) if partial.exists() else {}
    )
    row |= {"adapter": adapter, "version": dspy.__version__}
    program = make_program(task, index)
    test = examples(task, "test", sizes["test"])
    if "zero_shot" not in row:
        say(f"[dspy] {task}: zero-shot on {len(test)} test examples ({adapter} adapter)")
        row["zero_shot"] = _score(in_phase(config, "dspy-zero-shot"), program, task, test, adapter)
        partial.write_text(json.dumps(row), encoding="utf-8")
    say(f"[dspy] {task}: zero-shot test {row['zero_shot']['metric']:.3f}")
    train = examples(task, "train", sizes["train"])
    dev = examples(task, "dev", sizes["dev"])
    for name in config["optimizers"]:
        if name in row.get("optimizers", {}):
            continue
        # The compiled program is kept before its test run, which a stop must not cost it.
        kept = partial.with_suffix(f".{name}.program.json")
        if name in row.get("compiled", {}) and kept.exists():
            compiled = make_program(task, index)
            compiled.load(str(kept))
            figures = row["compiled"][name]
            say(f"[dspy] {task}: {name}'s compiled program saved in {kept.name}")
        else:
            compile_config = in_phase(config, f"dspy-{name}-compile")
            compiled, figures = compile_with(
                name, compile_config, task, program, train, dev, adapter
            )
            compiled.save(str(kept))
            row.setdefault("compiled", {})[name] = figures
            partial.write_text(json.dumps(row), encoding="utf-8")
        test_config = in_phase(config, f"dspy-{name}-test")
        found = figures | {"test": _score(test_config, compiled, task, test, adapter)}
        row.setdefault("optimizers", {})[name] = found
        partial.write_text(json.dumps(row), encoding="utf-8")
        say(
            f"[dspy] {task}: {name} spent {found['calls']} calls in {found['wall_s']:.0f} s; "
            f"test {found['test']['metric']:.3f}"
        )
    return row


def compile_with(
    name: str,
    config: dict[str, Any],
    task: str,
    program: dspy.Module,
    train: list[dspy.Example],
    dev: list[dspy.Example],
    adapter: str,
) -> tuple[dspy.Module, dict[str, Any]]:
    """One optimizer's compiled program, and what compiling it cost."""
    meter = Meter(config, adapter)
    say(f"[dspy] {task}: {OPTIMIZER_NAMES[name]}, {len(train)} train / {len(dev)} dev")
    started = time.perf_counter()
    with dspy.context(lm=meter.lm, adapter=meter.adapter):
        compiled = optimizer(name, config, task).compile(
            program.deepcopy(), trainset=train, valset=dev
        )
    wall = time.perf_counter() - started
    prompt, completion = _usage(meter.lm.history)
    figures = {
        "optimizer": OPTIMIZER_NAMES[name],
        "calls": len(meter.lm.history),
        "tokens": prompt + completion,
        "wall_s": wall,
    }
    return compiled, resumed(config, figures)


def main() -> None:
    config = json.load(sys.stdin)
    os.environ.setdefault("OPENAI_API_KEY", "x")
    result: dict[str, Any] = {"version": dspy.__version__}
    # DSPy's optimizers print their progress; stdout must carry only the result.
    with contextlib.redirect_stdout(sys.stderr):
        calls = int(config.get("overhead_calls", 1000))
        if calls:
            repeats = int(config.get("overhead_repeats", 1))  # the best of so many rounds
            say(f"[dspy] overhead: {calls} calls on DummyLM, best of {repeats}")
            result["overhead_us"] = min(overhead_us(calls) for _ in range(repeats))
        tasks = config["tasks"]
        index = BM25(DATA / "hotpotqa" / "corpus.jsonl") if "hotpotqa" in tasks else None
        if config.get("experiment") == "optimizers":
            result["tasks"] = {config["task"]: compare_optimizers(config, index)}
        else:
            result["tasks"] = {task: run_task(config, task, index) for task in tasks}
        result["peak_rss_mb"] = peak_rss_mb()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
