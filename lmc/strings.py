"""How `.lmp` writes a string literal; shared by the printer and the type names."""


def quote(text: str) -> str:
    """`text` as a `"..."` literal: only `\\`, `"` and newlines are escaped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
