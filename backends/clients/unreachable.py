"""A client for work that lowers prompts but must never send one: a report rendering a step's
prompt, or `lmc opt` without data. Calling it raises the caller's own error, so a mistake shows
up as what the user needs to do (or as a bug), never as a silent empty reply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lmc.backends.base import LMRequest, LMResponse


@dataclass(frozen=True)
class Unreachable:
    identity: str
    refusal: Callable[[], BaseException]
    constrains: bool = False
    enforces_schema: bool = False
    max_concurrency: int = 1

    def chat_template(self) -> str | None:
        return None

    def complete(self, request: LMRequest) -> LMResponse:
        raise self.refusal()
