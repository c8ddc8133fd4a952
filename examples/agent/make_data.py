"""Make the agent example's data from the team's HotPotQA files; re-running gives the same bytes.

    python examples/agent/make_data.py [--source ../shared/data/hotpotqa]

- `train.jsonl`, `dev.jsonl`: `{"question", "answer"}` records. From each HotPotQA split, the
  first `PER_SPLIT` questions in file order whose answer is short (at most `MAX_ANSWER_WORDS`
  words, and not "yes" or "no"), then the hand-written arithmetic questions of `ARITHMETIC`.
- `corpus.jsonl`: the passages those questions were asked with (their gold passages and their
  distractor-setting paragraphs), filled up to `CORPUS_SIZE` passages with a seeded sample of the
  rest; lines copied unchanged, in the source corpus's order.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "data" / "hotpotqa"

PER_SPLIT = 10
MAX_ANSWER_WORDS = 2
CORPUS_SIZE = 1000
SEED = 0


@dataclass(frozen=True)
class Fact:
    """A year stated in a passage."""

    passage_id: str
    year: int


@dataclass(frozen=True)
class Arithmetic:
    """A hand-written question whose answer is `minuend.year - subtrahend.year`, both years read
    from the gold passages of HotPotQA question `based_on`."""

    question: str
    minuend: Fact
    subtrahend: Fact
    based_on: str

    @property
    def answer(self) -> str:
        return str(self.minuend.year - self.subtrahend.year)


# HotPotQA's train and dev splits hold one question that needs arithmetic ("How many more singles
# titles did Kim Warwick win than Jorge Lozano?", answer "three singles titles"), so these are
# written by hand over the birth, death and release years of comparison questions' gold passages.
ARITHMETIC = {
    "train": [
        Arithmetic(
            "How many years after Jean-Loup Chrétien was Samantha Cristoforetti born?",
            Fact("hp03717", 1977),  # Samantha Cristoforetti (born 26 April 1977 ...)
            Fact("hp02217", 1938),  # Jean-Loup Chrétien (born 20 August 1938)
            based_on="5a726b0f5542997f827839be",
        ),
        Arithmetic(
            "How many years apart were Virginia Woolf and Emma Bull born?",
            Fact("hp01473", 1954),  # Emma Bull (born December 13, 1954)
            Fact("hp04653", 1882),  # Virginia Woolf (... 25 January 1882 - 28 March 1941)
            based_on="5a7be2595542997c3ec972ac",
        ),
    ],
    "dev": [
        Arithmetic(
            "How many years before The Muppet Christmas Carol was Bedknobs and Broomsticks"
            " released?",
            Fact("hp04303", 1992),  # The Muppet Christmas Carol is a 1992 ... film
            Fact("hp00701", 1971),  # Bedknobs and Broomsticks is a 1971 ... film
            based_on="5a738225554299623ed4abc3",
        ),
        Arithmetic(
            "How old was Arthur Conan Doyle when he died?",
            Fact("hp00531", 1930),  # (22 May 1859 - 7 July 1930): his birthday had passed
            Fact("hp00531", 1859),
            based_on="5a7b7ff75542995eb53be93d",
        ),
    ],
}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def is_short(answer: str) -> bool:
    return len(answer.split()) <= MAX_ANSWER_WORDS and answer.lower() not in ("yes", "no")


def write_records(path: Path, records: list[dict[str, str]]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the HotPotQA folder")
    source: Path = parser.parse_args().source

    corpus_lines = (source / "corpus.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    passages = {json.loads(line)["id"]: line for line in corpus_lines}
    wanted: set[str] = set()

    for split, arithmetic in ARITHMETIC.items():
        questions = read_jsonl(source / f"{split}.jsonl")
        by_id = {q["id"]: q for q in questions}
        chosen = [q for q in questions if is_short(q["answer"])][:PER_SPLIT]
        records = [{"question": q["question"], "answer": q["answer"]} for q in chosen]
        for q in chosen:
            wanted.update(q["context_passage_ids"])
        for item in arithmetic:
            base = by_id[item.based_on]
            for fact in (item.minuend, item.subtrahend):
                if fact.passage_id not in base["gold_passage_ids"]:
                    raise SystemExit(f"{item.question!r}: {fact.passage_id} is not a gold passage")
                if str(fact.year) not in json.loads(passages[fact.passage_id])["text"]:
                    raise SystemExit(f"{item.question!r}: {fact.passage_id} lacks {fact.year}")
            records.append({"question": item.question, "answer": item.answer})
            wanted.update(base["context_passage_ids"])
        write_records(HERE / f"{split}.jsonl", records)

    rest = sorted(set(passages) - wanted)
    wanted.update(random.Random(SEED).sample(rest, CORPUS_SIZE - len(wanted)))
    kept = [line for line in corpus_lines if json.loads(line)["id"] in wanted]
    (HERE / "corpus.jsonl").write_text("".join(kept), encoding="utf-8")


if __name__ == "__main__":
    main()
