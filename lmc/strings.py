"""How `.lmp` writes a string literal; shared by the printer and the type names."""

import re

_ESCAPED = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters a text file cannot carry unchanged: control characters (a reader's newline
# translation would turn `\r` into `\n`) and lone surrogates (not encodable as UTF-8).
_UNSAFE = re.compile(r'[\\"\x00-\x1f\x7f\ud800-\udfff]')


def quote(text: str) -> str:
    """`text` as a `"..."` literal that reads back identically from a UTF-8 file: `\\`, `"`,
    `\\n`, `\\r` and `\\t` are escaped, other control characters and surrogates as `\\uXXXX`."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return _ESCAPED.get(char) or f"\\u{ord(char):04x}"

    return f'"{_UNSAFE.sub(escape, text)}"'
