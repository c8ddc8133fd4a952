"""What a backend and an LM client exchange: the request a step lowers to and the reply.

A request is a frozen value: the cache keys on it, the trace records it, and its static part (the
prompt prefix that does not depend on a call's inputs) is byte-identical across calls of a step.
"""

from __future__ import annotations

import json
import operator
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from lmc.errors import RecordFailure
from lmc.ir.graph import StepParams
from lmc.signatures import FieldSpec, ModuleKind, SignatureSpec

Role = Literal["system", "user", "assistant"]
T = TypeVar("T")

# The tokens a reply may take unless the step or its backend says otherwise.
REPLY_TOKENS = 512


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class LMRequest:
    """One LM call: chat `messages`, or a raw `prompt` (rendered from `messages` by the model's
    chat template, which a client then sends instead); optionally constrained.

    `json_schema` asks for a JSON object of that schema; with `reasoning_first`, the reply opens
    with up to that many characters of plain-text reasoning, and the object begins the first
    line that opens with `{`.
    `grammar` (GBNF) constrains the reply's text where the model runs locally. Decoding
    parameters are part of the request.
    """

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    json_schema: str | None = None  # JSON text, so the request stays hashable and byte-stable
    # A chain of thought written inside a JSON string comes out as a plan, not a working: Qwen
    # 2.5-Coder-1.5B wrote 92 tokens a GSM8K problem that way and got 2 of 10 right; in the chat
    # backend's plain-text sections, 253 tokens and 6 of 10 (bench/results/optimizers/notes.md).
    reasoning_first: int = 0
    grammar: str | None = None
    temperature: float = 0.0
    max_tokens: int = REPLY_TOKENS
    stop: tuple[str, ...] = ()
    # Which of a step's `n` samples this is: samples differ in nothing else, and each must be
    # its own draw, not the cached first one.
    sample: int = 0

    @property
    def reply_schema(self) -> str | None:
        """The JSON Schema the whole reply is, for a server to hold it to: none when the reply
        opens with plain-text reasoning, which a schema cannot describe."""
        return None if self.reasoning_first else self.json_schema

    def to_json(self) -> dict[str, Any]:
        """The rendered request as plain data: what the cache keys on and the trace shows."""
        data: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.messages:
            data["messages"] = [{"role": m.role, "content": m.content} for m in self.messages]
        if self.prompt is not None:
            data["prompt"] = self.prompt
        if self.json_schema is not None:
            data["json_schema"] = json.loads(self.json_schema)
        if self.reasoning_first:
            data["reasoning_first"] = self.reasoning_first
        if self.grammar is not None:
            data["grammar"] = self.grammar
        if self.stop:
            data["stop"] = list(self.stop)
        if self.sample:
            data["sample"] = self.sample
        return data


@dataclass(frozen=True, slots=True)
class LMResponse:
    """A reply and what it cost. `reused_prompt_tokens` is how many of the `prompt_tokens` the
    model did not evaluate because an earlier prompt it still held began the same way (the
    embedded model's previous prompt; a server's prefix cache): None when the model does not
    say, which is not the same as none reused. `loops_closed` counts the strings the model
    looped in and the embedded model closed (`grammar_check`): a reply cut short there."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False
    reused_prompt_tokens: int | None = None
    loops_closed: int = 0


def system_in_first_turn(messages: tuple[Message, ...]) -> tuple[Message, ...] | None:
    """The messages with the system message read at the head of the first user turn, for a
    model whose chat template refuses a system role (Gemma's; Mistral's wants user and assistant
    turns alone); None when there is no system message to move."""
    if not messages or messages[0].role != "system":
        return None
    system, rest = messages[0], messages[1:]
    if rest and rest[0].role == "user":
        return (Message("user", f"{system.content}\n\n{rest[0].content}"), *rest[1:])
    return (Message("user", system.content), *rest)


def shared_prefix_length(first: Sequence[object], second: Sequence[object]) -> int:
    """How many leading items two sequences (prompts' tokens, say) have in common."""
    differ = (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    return next(differ, min(len(first), len(second)))


class LMCallFailed(RecordFailure):
    """An LM call that got no usable reply: the model unreachable, the server refusing the call
    or saying something that is not a completion, after every retry the failure allowed. The
    message says which model and what went wrong, on one line; `step` names the step whose call
    it was, once the runtime knows it."""

    def __init__(self, message: str, *, step: str | None = None):
        super().__init__(f"step '{step}': {message}" if step else message)
        self.message = message
        self.step = step

    def at_step(self, step: str) -> LMCallFailed:
        """The same failure, its message naming the step (subclasses keep this signature)."""
        return type(self)(self.message, step=step)


class LMClient(Protocol):
    """A model that answers requests. Implementations: `lmc.backends.clients`."""

    @property
    def identity(self) -> str:
        """What the cache keys on for this model: its file hash or name, never a secret."""
        ...

    @property
    def constrains(self) -> bool:
        """Whether it enforces a `grammar` (GBNF) while decoding: the local model."""
        ...

    @property
    def enforces_schema(self) -> bool:
        """Whether a `json_schema` is enforced while decoding: the local model, and a server one
        runs oneself (an `api_base`), which turns it into a grammar. Backends then bound its
        strings and lists, so a small model cannot loop inside one until it runs out of tokens."""
        ...

    @property
    def max_concurrency(self) -> int:
        """How many calls may run at once (1 for an in-process model)."""
        ...

    def chat_template(self) -> str | None:
        """The model's own chat template (jinja2), for the completion backend."""
        ...

    def complete(self, request: LMRequest) -> LMResponse: ...


@dataclass(frozen=True, slots=True)
class StepView:
    """What a backend needs of a step: its signature, module kind and learned parameters."""

    signature: SignatureSpec
    module: ModuleKind
    params: StepParams = field(default_factory=StepParams)

    @property
    def instruction(self) -> str:
        if self.params.instruction is not None:
            return self.params.instruction
        if self.signature.instruction is not None:
            return self.signature.instruction
        inputs = ", ".join(f"`{f.name}`" for f in self.signature.inputs)
        outputs = ", ".join(f"`{f.name}`" for f in self.outputs)
        return f"Given the fields {inputs}, produce the fields {outputs}."

    @property
    def inputs(self) -> tuple[FieldSpec, ...]:
        return self.signature.inputs

    @property
    def outputs(self) -> tuple[FieldSpec, ...]:
        return self.signature.outputs_for(self.module)


class ReplyError(Exception):
    """A reply that does not fit the step's output fields; keeps the raw reply."""

    def __init__(self, message: str, reply: str):
        super().__init__(message)
        self.message = message
        self.reply = reply


class StaticParts:
    """What a backend made from a step alone (its prompt's static part, its reply's schema or
    grammar), kept so the calls of a step do not make it again.

    Keyed by a tuple of immutable values (a step's signature, module and learned parameters;
    what the LM enforces), so nothing invalidates an entry: new parameters are a new key. A key
    is first looked up by the identity of its values (a step's calls share the same objects, and
    hashing a signature with its demos costs more than making a prompt's prefix), then by
    equality. At most `limit` entries, the oldest dropped first: a step with nearest demos is
    shown other parameters on each call. A key that cannot be hashed (a demo holding a list) is
    made every time.
    """

    def __init__(self, limit: int = 256):
        self.limit = limit
        self._by_value: dict[tuple[Any, ...], Any] = {}
        # id of each value -> (the key, the value): an entry holds its key's objects, so their
        # ids cannot be reused by other objects while it is kept.
        self._by_identity: dict[tuple[int, ...], tuple[tuple[Any, ...], Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], make: Callable[[], T]) -> T:
        ids = tuple(map(id, key))
        with self._lock:
            found = self._by_identity.get(ids)
        if found is not None and all(map(operator.is_, found[0], key)):
            same: T = found[1]
            return same
        try:
            with self._lock:
                value: T = self._by_value[key]
        except KeyError:
            value = make()
        except TypeError:  # unhashable: nothing to remember it by
            return make()
        with self._lock:
            self._by_value[key] = value
            self._by_identity[ids] = (key, value)
            for kept in (self._by_value, self._by_identity):
                while len(kept) > self.limit:
                    del kept[next(iter(kept))]
        return value


class Backend(ABC):
    """Lowers a step to the request an LM wants and parses its reply into typed fields."""

    name: ClassVar[str]

    @property
    def static_parts(self) -> StaticParts:
        """This backend's own `StaticParts` (made on first use: a backend written as a plugin
        need not call an `__init__` of ours)."""
        parts: StaticParts | None = self.__dict__.get("_static_parts")
        if parts is None:
            parts = self.__dict__.setdefault("_static_parts", StaticParts())
        return parts

    @abstractmethod
    def lower(self, step: StepView, inputs: dict[str, Any], lm: LMClient) -> LMRequest: ...

    @abstractmethod
    def parse(self, step: StepView, reply: str) -> dict[str, Any]:
        """Typed output values; raises `ReplyError` when the reply does not fit."""

    @abstractmethod
    def repair(
        self, step: StepView, request: LMRequest, reply: str, error: ReplyError, lm: LMClient
    ) -> LMRequest:
        """The one follow-up request that shows the model its reply and what was wrong."""

    def parse_repaired(self, step: StepView, reply: str, first_reply: str) -> dict[str, Any]:
        """Typed output values from the reply to `repair`'s request, which answers for
        `first_reply` (a backend may take from it what the follow-up did not repeat)."""
        return self.parse(step, reply)
