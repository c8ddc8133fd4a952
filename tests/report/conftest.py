"""Shared by the report tests: a compile on a `FakeLM` (no real model) that leaves an artifact and
its report, an evaluation of a `literal` classifier, and a reader of the pages' elements."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from programs import QA

from lmc.backends.base import LMRequest
from lmc.backends.clients.fake import FakeLM
from lmc.cli.main import EXIT_OK, main

CLASSIFY = """\
signature Classify {
    input  text:  str
    output label: literal["pos", "neg", "neutral"]
}

program Sentiment(text: str) -> (label: literal["pos", "neg", "neutral"]) {
    c = predict Classify(text=text)
    return label = c.label
}
"""

PIPELINE = "bootstrap-demos{candidates=3},instruction-search{candidates=3},prune-demos"


def qa_reply(request: LMRequest) -> str:
    """Proposes an instruction when asked for one; answers `qN` with `aN` once the prompt has
    demos, except every fourth question, which stays wrong (so some dev examples are missed)."""
    if "instruction" in (request.json_schema or ""):
        tip = request.messages[-1].content.rsplit("tip:\n", 1)[-1].split("\n\n")[0]
        return json.dumps({"instruction": f"Answer in a few words. {tip}"})
    asked = [m.content for m in request.messages if m.content.startswith("question:\n")]
    question = asked[-1].split("\n", 1)[1].split("\n\n", 1)[0]
    right = len(request.messages) > 2 and int(question[1:]) % 4 != 0
    return json.dumps({"answer": "a" + question[1:] if right else "no idea"})


def sentiment_reply(request: LMRequest) -> str:
    """`pos` for text with "good", `neg` for "bad", and `pos` for the rest (neutral is missed)."""
    text = request.messages[-1].content
    return json.dumps({"label": "neg" if "bad" in text else "pos"})


def use_lm(monkeypatch: pytest.MonkeyPatch, reply: Any) -> FakeLM:
    lm = FakeLM(reply, identity="fake-model")
    monkeypatch.setattr("lmc.runtime.context.open_lm", lambda model, api_base=None: lm)
    return lm


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Compiled:
    folder: Path
    artifact: Path
    report: Path


@pytest.fixture
def compiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Compiled:
    """`lmc compile ... --report` of a one-step QA program, run from inside `tmp_path`."""
    monkeypatch.chdir(tmp_path)
    use_lm(monkeypatch, qa_reply)
    Path("qa.lmp").write_text(QA, encoding="utf-8")
    qa = [{"question": f"q{n}", "answer": f"a{n}"} for n in range(1, 29)]
    write_jsonl(Path("train.jsonl"), qa[:12])
    write_jsonl(Path("dev.jsonl"), qa[12:])
    command = ["compile", "qa.lmp", "--train", "train.jsonl", "--dev", "dev.jsonl"]
    command += ["--metric", "exact_match(answer)", "-p", PIPELINE]
    assert main([*command, "-o", "qa.json", "--report", "qa.html"]) == EXIT_OK
    return Compiled(tmp_path, tmp_path / "qa.json", tmp_path / "qa.html")


@pytest.fixture
def evaluated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`lmc eval ... --report` of a `literal` classifier; the page's path."""
    monkeypatch.chdir(tmp_path)
    use_lm(monkeypatch, sentiment_reply)
    Path("sentiment.lmp").write_text(CLASSIFY, encoding="utf-8")
    rows = [("good day", "pos"), ("bad day", "neg"), ("a day", "neutral"), ("so good", "pos")]
    write_jsonl(Path("data.jsonl"), [{"text": t, "label": label} for t, label in rows])
    command = ["eval", "sentiment.lmp", "--data", "data.jsonl", "--metric", "exact_match(label)"]
    assert main([*command, "--report", "eval.html"]) == EXIT_OK
    return tmp_path / "eval.html"


@dataclass(frozen=True)
class Element:
    tag: str
    attrs: dict[str, str]
    within: tuple[str, ...]  # the ids of the elements it is in, outermost first
    text: str = ""


class Elements(HTMLParser):
    """Every element of a page, with the sections it is in, and the text directly inside."""

    VOID = frozenset({"meta", "br", "link", "img", "input", "hr"})

    def __init__(self, page: str):
        super().__init__()
        self.found: list[Element] = []
        self._open: list[tuple[str, str | None, int]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        within = tuple(i for _, i, _ in self._open if i)
        self.found.append(Element(tag, values, within))
        if tag not in self.VOID:
            self._open.append((tag, values.get("id"), len(self.found) - 1))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            opened, _, _ = self._open.pop()
            if opened == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open:
            index = self._open[-1][2]
            element = self.found[index]
            self.found[index] = Element(
                element.tag, element.attrs, element.within, element.text + data
            )

    def all(self, tag: str, within: str | None = None, cls: str | None = None) -> list[Element]:
        """The elements named `tag`, inside the element with id `within`, of class `cls`."""
        return [
            e
            for e in self.found
            if e.tag == tag
            and (within is None or within in e.within)
            and (cls is None or cls in e.attrs.get("class", "").split())
        ]
