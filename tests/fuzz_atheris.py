"""Coverage-guided fuzzing of lmc's readers with atheris: `.lmp` text, artifacts, JSONL files.

    python tests/fuzz_atheris.py lmp|artifact|jsonl [libFuzzer options, e.g. -runs=100000]

Any exception that is not `lmc.LmcError` is a crash: atheris prints it with the input that
caused it (saved as crash-*), and exits non-zero. `tests/test_fuzz.py` runs each target briefly.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["lmc"]):
    import lmc
    from lmc.errors import LmcError
    from lmc.retrieval.index import read_corpus
    from lmc.runtime.data import load_dataset
    from lmc.runtime.trace import read_trace_lines, trace_panel
    from lmc.syntax.parser import parse
    from lmc.syntax.printer import print_module

FOLDER = Path(tempfile.mkdtemp(prefix="lmc-fuzz-"))
FIELDS = lmc.loads(
    'signature S = "question, n: int -> answer"\n'
    "program P(question: str, n: int) -> (answer: str) {\n"
    "    s = predict S(question=question, n=n)\n    return answer = s.answer\n}\n"
).inputs


def lmp(data: bytes) -> None:
    # Bytes that are not UTF-8 become lone surrogates, as they would in a file name or argv.
    text = data.decode("utf-8", "surrogateescape")
    try:
        print_module(parse(text, "fuzz.lmp"))
        lmc.loads(text).to_lmp()
    except LmcError:
        pass


def artifact(data: bytes) -> None:
    path = FOLDER / "fuzz.json"
    path.write_bytes(data)
    try:
        lmc.load(path).to_lmp()
    except LmcError:
        pass


def jsonl(data: bytes) -> None:
    path = FOLDER / "fuzz.jsonl"
    path.write_bytes(data)
    for read in (lambda: load_dataset(path, FIELDS, ["answer"]), lambda: read_corpus(path)):
        try:
            read()
        except LmcError:
            pass
    try:
        for _, call in read_trace_lines(path):
            trace_panel(call)
    except LmcError:
        pass


TARGETS = {"lmp": lmp, "artifact": artifact, "jsonl": jsonl}
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def seeds(target: str) -> Path:
    """A corpus to start from, so the fuzzer mutates real programs, artifacts and records
    rather than finding the grammar from nothing."""
    corpus = FOLDER / f"seeds-{target}"
    corpus.mkdir()
    for number, source in enumerate(sorted(EXAMPLES.glob("*/program.lmp"))):
        if target == "lmp":
            (corpus / f"{number}.lmp").write_bytes(source.read_bytes())
        elif target == "artifact":
            try:
                lmc.load(source).save(corpus / f"{number}.json")
            except LmcError:
                continue
    if target == "jsonl":
        for number, data in enumerate(sorted(EXAMPLES.glob("*/*.jsonl"))):
            lines = data.read_bytes().splitlines(keepends=True)[:3]
            (corpus / f"{number}.jsonl").write_bytes(b"".join(lines))
    return corpus


if __name__ == "__main__":
    os.environ.setdefault("LMC_CACHE_DIR", str(FOLDER / "cache"))
    name, options = sys.argv[1], sys.argv[2:]
    if not any(not o.startswith("-") for o in options):
        options.append(str(seeds(name)))
    atheris.Setup([sys.argv[0], *options], TARGETS[name])
    atheris.Fuzz()
