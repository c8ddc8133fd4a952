"""A deterministic stand-in LM for unit tests and overhead benchmarks; never a user's default."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lmc.backends.base import LMRequest, LMResponse, shared_prefix_length


@dataclass
class FakeLM:
    """Answers from a list of replies in turn, or from a function of the request."""

    replies: Iterable[str] | Callable[[LMRequest], str] = ()
    identity: str = "fake"
    constrains: bool = False
    max_concurrency: int = 64
    template: str | None = None
    # Report, as the embedded model does, the prompt tokens shared with the previous request
    # (its rendered text's common prefix, 4 characters a token); else reuse is not reported.
    prefix_cache: bool = False
    requests: list[LMRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not callable(self.replies):
            self._queue = list(self.replies)
        self._previous = ""  # the last request, rendered: what the next one's prefix is compared to

    @property
    def enforces_schema(self) -> bool:
        return self.constrains

    def chat_template(self) -> str | None:
        return self.template

    def complete(self, request: LMRequest) -> LMResponse:
        self.requests.append(request)
        rendered = str(request.to_json())
        reused = None
        if self.prefix_cache:
            reused = shared_prefix_length(self._previous, rendered) // 4
        self._previous = rendered
        if callable(self.replies):
            text = self.replies(request)
        elif self._queue:
            text = self._queue.pop(0)
        else:
            raise AssertionError("FakeLM ran out of replies")
        return LMResponse(
            text=text,
            prompt_tokens=len(rendered) // 4,
            completion_tokens=len(text) // 4,
            reused_prompt_tokens=reused,
        )
