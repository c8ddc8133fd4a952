"""Gold-passage recall of each retrieval index kind on a QA set with gold passage ids.

    .venv/bin/python bench/retrieval_recall.py [--corpus shared/data/hotpotqa/corpus.jsonl]
        [--data shared/data/hotpotqa/dev.jsonl] [--kinds bm25,embeddings] [--k 2,5,10] [--fresh]

For each kind and k: hit@k, the share of questions with at least one gold passage in the top k,
and recall@k, the mean share of a question's gold passages in the top k. Queries go through
`lmc.retrieval.open_retriever(...).search_ids`, as a `retrieve` step's do. `--fresh` builds every
index in a new temporary cache, so the build time is a real build, not a cache hit.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hotpotqa"


def read_questions(path: Path) -> list[tuple[str, set[str]]]:
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            questions.append((record["question"], set(record["gold_passage_ids"])))
    return questions


def measure(
    corpus: Path, questions: list[tuple[str, set[str]]], kind: str, ks: list[int], field: str
) -> dict[str, float]:
    from lmc.retrieval.index import build_index, open_retriever, read_corpus

    started = time.perf_counter()
    _, built = build_index(read_corpus(corpus, field), kind)
    build_seconds = time.perf_counter() - started
    retriever = open_retriever(corpus, kind, field)
    retriever.search_ids(questions[0][0], 1)  # load what loads lazily (the embedding model)
    top = max(ks)
    started = time.perf_counter()
    found = [retriever.search_ids(question, top) for question, _ in questions]
    query_ms = (time.perf_counter() - started) / len(questions) * 1000
    row: dict[str, float] = {"build_s": build_seconds, "built": float(built), "query_ms": query_ms}
    for k in ks:
        hits = [len(gold & set(ids[:k])) for ids, (_, gold) in zip(found, questions, strict=True)]
        row[f"hit@{k}"] = sum(h > 0 for h in hits) / len(questions)
        row[f"recall@{k}"] = sum(
            h / len(gold) for h, (_, gold) in zip(hits, questions, strict=True)
        ) / len(questions)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DATA / "corpus.jsonl")
    parser.add_argument("--data", type=Path, default=DATA / "dev.jsonl")
    parser.add_argument("--field", default="text", help="the corpus's text field")
    parser.add_argument("--kinds", default="bm25,embeddings")
    parser.add_argument("--k", default="2,5,10", help="comma-separated cut-offs")
    parser.add_argument("--fresh", action="store_true", help="build in a new temporary cache")
    args = parser.parse_args()
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    ks = sorted({int(k) for k in args.k.split(",")})
    if args.fresh:
        fresh = tempfile.TemporaryDirectory(prefix="lmc-recall-")
        os.environ["LMC_CACHE_DIR"] = fresh.name  # removed when the process ends
    questions = read_questions(args.data)
    corpus_size = sum(1 for line in args.corpus.open(encoding="utf-8") if line.strip())
    print(f"{len(questions)} questions from {args.data}; {corpus_size} passages in {args.corpus}")

    columns = [f"{name}@{k}" for name in ("hit", "recall") for k in ks]
    header = f"{'kind':<12}" + "".join(f"{c:>11}" for c in columns)
    header += f"{'build s':>10}{'query ms':>10}"
    print(header)
    print("-" * len(header))
    for kind in kinds:
        row = measure(args.corpus, questions, kind, ks, args.field)
        build = f"{row['build_s']:.1f}" if row["built"] else "cached"
        print(
            f"{kind:<12}"
            + "".join(f"{row[c]:>11.3f}" for c in columns)
            + f"{build:>10}{row['query_ms']:>10.1f}"
        )


if __name__ == "__main__":
    main()
