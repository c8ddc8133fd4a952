"""`--trace`: every LM call of a run as one JSON line (rendered request, raw reply, parsed fields),
and `lmc trace show` to read them."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from lmc.backends.base import LMRequest, LMResponse
from lmc.errors import InputError
from lmc.files import (
    DataError,
    JSONUnreadable,
    UnwritablePath,
    check_writable,
    json_value,
    jsonl_lines,
    read_bytes,
    written_in_place,
)
from lmc.strings import json_text, printable


def record_number(index: int | None) -> int | None:
    """A record as a trace names it: counted from 1, as the data file's records, the results
    file and every error are."""
    return None if index is None else index + 1


def call_line(
    *,
    record: int | None,
    step: str,
    backend: str,
    model: str,
    attempt: int,
    request: LMRequest,
    response: LMResponse,
    parsed: dict[str, Any] | None,
    error: str | None,
) -> dict[str, Any]:
    """One LM call as a trace line (and as `inspect_history` shows it); `reused_prompt_tokens`
    only where the model said how many prompt tokens it reused, `loops_closed` only where the
    embedded model closed a string the model looped in."""
    line: dict[str, Any] = {
        "record": record_number(record),
        "step": step,
        "backend": backend,
        "model": model,
        "attempt": attempt,
        "request": request.to_json(),
        "reply": response.text,
        "parsed": parsed,
        "error": error,
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "latency_s": round(response.latency_s, 4),
        "cached": response.cached,
    }
    if response.reused_prompt_tokens is not None:
        line["reused_prompt_tokens"] = response.reused_prompt_tokens
    if response.loops_closed:
        line["loops_closed"] = response.loops_closed
    return line


class CallHistory:
    """A context's latest LM calls, for `lmc.inspect_history`. Each is kept as the parts of its
    trace line (`call_line`'s arguments) and made into the line only when read: most runs never
    read their history, and rendering a request costs more than the rest of a call's bookkeeping.
    Lines made elsewhere (a cluster's worker sends its calls as lines) are kept as they are.
    """

    def __init__(self, limit: int):
        # (parts, None) for a call made here, (None, line) for a line made elsewhere
        self._calls: deque[tuple[dict[str, Any] | None, dict[str, Any] | None]] = deque(
            maxlen=limit
        )

    def add(self, parts: dict[str, Any]) -> None:
        """One call, as the keyword arguments of `call_line`."""
        self._calls.append((parts, None))

    def extend(self, lines: Iterable[dict[str, Any]]) -> None:
        """Calls made elsewhere, as their trace lines."""
        self._calls.extend((None, line) for line in lines)

    def __len__(self) -> int:
        return len(self._calls)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return _line(self._calls[index])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (_line(call) for call in list(self._calls))


def _line(call: tuple[dict[str, Any] | None, dict[str, Any] | None]) -> dict[str, Any]:
    parts, line = call
    if parts is not None:
        return call_line(**parts)
    assert line is not None  # one of the two is always there
    return line


class TraceWriter:
    """Appends one JSON object per LM call; lines from concurrent calls never interleave. With
    `append` (a resumed run) the trace goes on after the earlier one, less a line a kill cut
    short; otherwise it starts empty."""

    def __init__(self, path: str | Path, *, append: bool = False):
        self.path = Path(path)
        check_writable(self.path, in_place=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if append and not written_in_place(self.path):
                _drop_a_cut_line(self.path)
            self._file: TextIO = self.path.open("a" if append else "w", encoding="utf-8")
        except OSError as error:
            raise UnwritablePath(f"{path}: cannot write it ({error.strerror})") from None
        self._lock = threading.Lock()

    def call(self, line: dict[str, Any]) -> None:
        """One LM call, as `call_line` describes it."""
        self._write(line)

    def retrieval(
        self, *, record: int | None, step: str, index: str, query: str, k: int, passages: list[str]
    ) -> None:
        line = {
            "record": record_number(record),
            "step": step,
            "kind": "retrieval",
            "index": index,
            "query": query,
            "k": k,
            "passages": passages,
        }
        self._write(line)

    def function(
        self,
        *,
        record: int | None,
        step: str,
        function: str,
        inputs: dict[str, Any],
        outputs: dict[str, Any] | None,
        seconds: float,
        error: str | None,
    ) -> None:
        line = {
            "record": record_number(record),
            "step": step,
            "kind": "function",
            "function": function,
            "inputs": inputs,
            "outputs": outputs,
            "seconds": round(seconds, 4),
            "error": error,
        }
        self._write(line)

    def trajectory(
        self,
        *,
        record: int | None,
        step: str,
        inputs: dict[str, Any],
        turns: list[dict[str, Any]],
        error: str | None = None,
    ) -> None:
        """An agent's run, after its calls: each turn's thought, tool call and observation, and
        what it failed with (None if it answered), the turns being those it took before."""
        line = {
            "record": record_number(record),
            "step": step,
            "kind": "trajectory",
            "inputs": inputs,
            "turns": turns,
            "error": error,
        }
        self._write(line)

    def write(self, line: dict[str, Any]) -> None:
        """A line as another writer made it (a `TraceLines` of a cluster's worker)."""
        self._write(line)

    def _write(self, line: dict[str, Any]) -> None:
        # Lone surrogates a server sent would not encode as UTF-8: escaped, like control characters.
        text = json_text(line, default=str)
        with self._lock:
            self._file.write(text + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class TraceLines(TraceWriter):
    """The lines a trace would get, kept in memory: a cluster's worker sends them with the
    record they belong to, and the process that runs the job writes them to its trace."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _write(self, line: dict[str, Any]) -> None:
        with self._lock:
            self.lines.append(line)

    def close(self) -> None:
        pass


TRACE_KEYS = ("step", "backend", "model", "attempt", "request", "reply")
RETRIEVAL_KEYS = ("step", "index", "query", "k", "passages")
FUNCTION_KEYS = ("step", "function", "inputs", "outputs", "seconds", "error")
TRAJECTORY_KEYS = ("step", "inputs", "turns")
# A trace line's keys by its `kind`; an LM call's line has no kind.
_KEYS_OF_KIND = {
    "retrieval": RETRIEVAL_KEYS,
    "function": FUNCTION_KEYS,
    "trajectory": TRAJECTORY_KEYS,
}


class TraceError(InputError):
    """A file that is not an lmc trace; says which line."""


def read_trace(path: Path) -> list[dict[str, Any]]:
    """The calls in a trace file; a malformed line raises `TraceError` naming its line number."""
    return [call for _, call in read_trace_lines(path)]


def read_trace_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Each call in a trace file with its line number."""
    try:
        text = read_bytes(path, records=False).decode("utf-8")  # a trace's errors name lines
    except DataError as error:
        raise TraceError(str(error).replace("expected a JSONL file", "expected a trace")) from None
    calls = []
    for number, line in jsonl_lines(text):
        if not line.strip():
            continue
        try:
            # A trace records what a server sent, lone surrogates included; they are shown escaped.
            call = json_value(line, surrogates=True)
        except JSONUnreadable as error:
            what = f"not JSON ({error.decode_error.msg})" if error.decode_error else str(error)
            raise TraceError(f"{path}: line {number}: {what}") from None
        kind = str(call.get("kind")) if isinstance(call, dict) else ""
        keys = _KEYS_OF_KIND.get(kind, TRACE_KEYS)
        missing = [k for k in keys if not isinstance(call, dict) or k not in call]
        if missing:
            raise TraceError(
                f"{path}: line {number}: not an lmc trace line (expected the keys "
                f"{', '.join(TRACE_KEYS)}; written by lmc run --trace)"
            )
        calls.append((number, call))
    return calls


def show_trace(calls: list[dict[str, Any]], console: Console) -> None:
    for call in calls:
        console.print(trace_panel(call))


def trace_panel(call: dict[str, Any]) -> Panel:
    """One call drawn as a panel; a line whose values have the wrong shapes (a trace not written
    by lmc) raises `TraceError`."""
    where = f"record {call['record']} · " if call.get("record") is not None else ""
    show = _SHOW_KIND.get(str(call.get("kind")), _show_call)
    try:
        return show(call, where)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise TraceError(
            f"not an lmc trace line ({type(error).__name__}: {error}; written by lmc run --trace)"
        ) from None


def _show_retrieval(call: dict[str, Any], where: str) -> Panel:
    lines = [_text(f"query: {call['query']}", style="bold")]
    lines += [_text(f"[{i}] {p}") for i, p in enumerate(call["passages"], 1)]
    title = f"{where}{call['step']} · retrieve {call['index']} · k={call['k']}"
    return Panel(Group(*lines), title=printable(title), title_align="left")


def _show_call(call: dict[str, Any], where: str) -> Panel:
    status = "cached" if call.get("cached") else f"{call.get('latency_s', 0):.2f}s"
    reused = call.get("reused_prompt_tokens")
    reuse = f" ({reused} reused)" if isinstance(reused, int) else ""
    title = (
        f"{where}{call['step']} · {call['backend']} · {call['model']} · attempt "
        f"{call['attempt']} · {call['prompt_tokens']}+{call['completion_tokens']} tokens{reuse}"
        f" · {status}"
    )
    parts: list[Any] = []
    request = call["request"]
    for message in request.get("messages", []):
        parts.append(_text(f"── {message['role']} ──", style="bold cyan"))
        parts.append(_text(message["content"]))
    if "prompt" in request:
        parts.append(_text("── prompt ──", style="bold cyan"))
        parts.append(_text(request["prompt"]))
    parts.append(_text("── reply ──", style="bold green"))
    parts.append(_text(call["reply"]))
    if call.get("error"):
        parts.append(_text(f"── could not be used: {call['error']}", style="bold red"))
    elif call.get("parsed") is not None:
        parts.append(_text("── fields ──", style="bold magenta"))
        for name, value in call["parsed"].items():
            parts.append(_text(f"{name} = {json_text(value)}"))
    return Panel(Group(*parts), title=printable(title), title_align="left")


def _show_trajectory(call: dict[str, Any], where: str) -> Panel:
    turns = call["turns"]
    failed = " · failed" if call.get("error") else ""
    title = f"{where}{call['step']} · agent · {len(turns)} turns{failed}"
    parts: list[Any] = [_text(f"{k} = {_json(v)}", style="bold") for k, v in call["inputs"].items()]
    for i, turn in enumerate(turns, 1):
        parts.append(_text(f"── turn {i} ──", style="bold cyan"))
        parts.append(_text(f"thought: {turn.get('thought', '')}"))
        parts.append(_text(f"call: {turn.get('tool')}({_json(turn.get('args', {}))})", "green"))
        observation = turn.get("observation")
        style = "red" if isinstance(observation, str) and observation.startswith("error:") else ""
        parts.append(_text(f"observed: {_json(observation)}", style))
    if call.get("error"):
        parts.append(_text(f"── failed: {call['error']}", style="bold red"))
    return Panel(Group(*parts), title=printable(title), title_align="left")


def _text(text: str, style: str = "") -> Text:
    """A line of a trace, escaped where a terminal would act on it: replies, prompts and data
    may hold `\x1b[...` sequences and other control characters."""
    return Text(printable(text), style)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json_text(value)


def _show_function(call: dict[str, Any], where: str) -> Panel:
    title = f"{where}{call['step']} · call {call['function']} · {call['seconds']:.3f}s"
    parts: list[Any] = [_text("── inputs ──", style="bold cyan")]
    parts += [_text(f"{k} = {json_text(v)}") for k, v in call["inputs"].items()]
    if call.get("error"):
        parts.append(_text(f"── raised: {call['error']}", style="bold red"))
    else:
        parts.append(_text("── outputs ──", style="bold magenta"))
        outputs = call.get("outputs") or {}
        parts += [_text(f"{k} = {json_text(v)}") for k, v in outputs.items()]
    return Panel(Group(*parts), title=printable(title), title_align="left")


# How each kind of trace line is drawn; an LM call's line has no kind.
_SHOW_KIND = {
    "retrieval": _show_retrieval,
    "function": _show_function,
    "trajectory": _show_trajectory,
}


def _drop_a_cut_line(path: Path) -> None:
    """Cut an earlier trace back to its last whole line (a kill may have stopped a write)."""
    with suppress(FileNotFoundError), path.open("rb+") as file:
        end = position = file.seek(0, os.SEEK_END)
        while position > 0:
            start = max(0, position - 65536)
            file.seek(start)
            chunk = file.read(position - start)
            if position == end and chunk.endswith(b"\n"):
                return
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                file.truncate(start + newline + 1)
                return
            position = start
        file.truncate(0)
