"""Text that must survive where it goes: a `.lmp` string literal (shared by the printer and the
type names), and text lmc prints to a terminal (replies, data, artifacts, source lines).

A terminal acts on some characters instead of showing them: `\\x1b[2J` clears the screen,
`\\x1b]0;...\\x07` retitles the window, `\\r` overwrites the line, U+009B is a CSI on its own,
U+202E shows what follows reversed ("Trojan Source"). Whatever lmc prints that came from a reply,
a dataset, an artifact or a trace goes through `printable` (or `json_text`): it is seen, escaped,
and never obeyed.
"""

import re
from typing import Any

_ESCAPED = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters a terminal may act on rather than show: C0 controls but tab and line feed, DEL, C1
# controls (U+0080-U+009F), bidirectional embeddings, overrides and isolates; and lone surrogates,
# which no UTF-8 file or terminal can carry.
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_TERMINAL_UNSAFE = re.compile(f"[{_CONTROL}]")
# In a `.lmp` literal, also `\` and `"`, and line breaks and tabs (a reader's newline translation
# would turn `\r` into `\n`, so every line break is escaped).
_UNSAFE = re.compile(f'[\\\\"\t\n{_CONTROL}]')
# What `json.dumps` leaves as it is (it escapes C0 controls itself).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def quote(text: str) -> str:
    """`text` as a `"..."` literal that reads back identically from a UTF-8 file: `\\`, `"`,
    `\\n`, `\\r` and `\\t` are escaped, other control characters and surrogates as `\\uXXXX`."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return _ESCAPED.get(char) or f"\\u{ord(char):04x}"

    return f'"{_UNSAFE.sub(escape, text)}"'


def is_printable(text: str) -> bool:
    """Whether `text` prints as it is: nothing in it a terminal would act on."""
    return _TERMINAL_UNSAFE.search(text) is None


def printable(text: str) -> str:
    """`text` safe to print to a terminal: each character a terminal would act on rather than
    show is written as an escape (`\\x1b`, `\\r`, `\\u202e`); line breaks and tabs stay."""
    return _TERMINAL_UNSAFE.sub(_escape_control, text)


def _escape_control(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code == 0x0D:
        return "\\r"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def json_text(value: Any, **options: Any) -> str:
    """`json.dumps(value, ensure_ascii=False)` that any UTF-8 file and any terminal carries: the
    characters `printable` escapes are `\\uXXXX` escapes here, which read back as the same value
    (they only ever occur inside JSON strings)."""
    import json  # here: `lmc --help` loads this module, and needs no JSON

    text = json.dumps(value, ensure_ascii=False, **options)
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(value: Any) -> Any:
    """`value` (JSON-like: dicts, lists, strings) with each lone surrogate replaced by U+FFFD. A
    model may write half a `\\ud83d\\ude00` escape; kept, the half would make the results,
    artifact or demo that holds it a file no UTF-8 reader (lmc's included) accepts."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {key: without_lone_surrogates(item) for key, item in value.items()}
    if type(value) in (list, tuple):  # exactly: a named tuple is built otherwise
        return type(value)(without_lone_surrogates(item) for item in value)
    return value
