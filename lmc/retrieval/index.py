"""Retrieval indexes behind `retrieve`: built once per corpus content, kept on disk.

An index lives under `$LMC_CACHE_DIR/indexes/`, named by its kind, the corpus file's sha256 and the
text field; a changed corpus gets a new index. It is built in a temporary folder and renamed into
place, so a killed build never leaves a half-written index. `bm25` uses bm25s with English
stemming and stop words; `embeddings` (optional extra) uses all-MiniLM-L6-v2.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lmc.files import (
    DataError,
    cache_dir,
    jsonl_objects,
    make_cache_folder,
    read_bytes,
    temporary_folder,
)
from lmc.plugins import INDEX_KINDS, UnknownName

INDEX_FORMAT = 1


@dataclass(frozen=True)
class Corpus:
    """The passages of a JSONL corpus, one per record, and the content hash that names it."""

    path: Path
    text_field: str
    texts: tuple[str, ...]
    ids: tuple[str, ...]
    sha256: str


def read_corpus(
    path: Path, text_field: str = "text", progress: Callable[[int], None] = lambda n: None
) -> Corpus:
    """Every record's passage; a malformed record raises `DataError` naming its number."""
    raw = read_bytes(path)
    texts: list[str] = []
    ids: list[str] = []
    for where, record in jsonl_objects(raw.decode("utf-8"), path):
        if not isinstance(record.get(text_field), str):
            raise DataError(f"{where}: expected a JSON object with a string '{text_field}'")
        texts.append(record[text_field])
        ids.append(str(record.get("id", len(texts))))
        if len(texts) % 1000 == 0:
            progress(len(texts))
    if not texts:
        raise DataError(f"{path}: no passages; expected one JSON object per line")
    digest = hashlib.sha256(raw).hexdigest()
    return Corpus(path, text_field, tuple(texts), tuple(ids), digest)


class Index(Protocol):
    kind: str

    def search_ids(self, query: str, k: int) -> list[int]:
        """Positions in the corpus of the `k` best passages, best first."""
        ...


class Retriever:
    """What a `retrieve` step calls: an index and the passages it ranks."""

    def __init__(self, index: Index, corpus: Corpus):
        self.index = index
        self.corpus = corpus

    def search(self, query: str, k: int) -> list[str]:
        return [self.corpus.texts[i] for i in self.index.search_ids(query, k)]

    def search_ids(self, query: str, k: int) -> list[str]:
        return [self.corpus.ids[i] for i in self.index.search_ids(query, k)]


class BM25Index:
    kind = "bm25"

    def __init__(self, retriever: Any):
        import Stemmer

        self._retriever = retriever
        self._stemmer = Stemmer.Stemmer("english")
        self._lock = threading.Lock()

    @staticmethod
    def build(corpus: Corpus, folder: Path) -> None:
        import bm25s
        import Stemmer

        tokens = bm25s.tokenize(
            list(corpus.texts),
            stopwords="en",
            stemmer=Stemmer.Stemmer("english"),
            show_progress=False,
        )
        if not tokens.vocab:  # bm25s cannot index an empty vocabulary: said as the input it is
            raise DataError(
                f"{corpus.path}: no passage has a word bm25 can index (only stop words such as "
                f"'the', or no words at all, in '{corpus.text_field}')"
            )
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        retriever.save(str(folder))

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        import bm25s

        return cls(bm25s.BM25.load(str(folder)))

    def search_ids(self, query: str, k: int) -> list[int]:
        import bm25s

        with self._lock:  # the stemmer is not thread-safe
            tokens = bm25s.tokenize(
                [query], stopwords="en", stemmer=self._stemmer, show_progress=False
            )
        if not tokens.vocab:
            return []
        size = self._retriever.scores["num_docs"]
        found, _ = self._retriever.retrieve(tokens, k=min(k, size), show_progress=False)
        return [int(i) for i in found[0]]


def _index_class(kind: str) -> Any:
    """The index kind that builds an index from a corpus file (bm25, embeddings, a plug-in)."""
    try:
        found = INDEX_KINDS.load(kind)
    except UnknownName as error:
        raise DataError(str(error)) from None
    if not (hasattr(found, "build") and hasattr(found, "load")):
        raise DataError(
            f"a {kind} index is not built from a corpus file (a Python retriever is named in the "
            'program: index NAME = python("module:object")); expected bm25 or embeddings'
        )
    return found


def index_folder(kind: str, corpus: Corpus) -> Path:
    name = f"{kind}-v{INDEX_FORMAT}-{corpus.sha256[:20]}-{corpus.text_field}"
    return cache_dir() / "indexes" / name


def build_index(corpus: Corpus, kind: str) -> tuple[Path, bool]:
    """The folder of `corpus`'s index, and whether it had to be built now."""
    folder = index_folder(kind, corpus)
    if (folder / "complete").exists():
        return folder, False
    index_class = _index_class(kind)
    make_cache_folder(folder.parent)
    building = temporary_folder(folder)
    try:
        index_class.build(corpus, building)
        (building / "complete").write_text(corpus.sha256, encoding="utf-8")
        try:
            os.rename(building, folder)
        except OSError:
            # Another process finished the same index first; theirs is as good as ours.
            if not (folder / "complete").exists():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return folder, True


_OPEN: dict[tuple[str, str, str, int, int], Retriever] = {}
_OPENING = threading.Lock()


def open_retriever(path: Path, kind: str, text_field: str) -> Retriever:
    """A retriever for a corpus file, building its index if needed; once per process."""
    stat = path.stat() if path.exists() else None
    key = (
        str(path.resolve()),
        kind,
        text_field,
        stat.st_size if stat else 0,
        stat.st_mtime_ns if stat else 0,
    )
    with _OPENING:
        if key not in _OPEN:
            corpus = read_corpus(path, text_field)
            folder, _ = build_index(corpus, kind)
            _OPEN[key] = Retriever(_index_class(kind).load(folder), corpus)
        return _OPEN[key]
