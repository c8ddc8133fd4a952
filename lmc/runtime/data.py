"""Program inputs from the command line and from JSONL datasets, checked against their types.

Every record of a dataset is checked before the first LM call, so a bad record costs nothing and
is reported as `file: record N: what was expected`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lmc.backends.schema import validate
from lmc.signatures import FieldSpec
from lmc.types import STR, OneOf, OptionalOf


class DataError(Exception):
    """Bad input data: a message that names the file and record, or the `--input` field."""


def coerce(fields: tuple[FieldSpec, ...], values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The program's inputs from `values` (extra keys, such as expected outputs, are ignored)."""
    missing = [f.name for f in fields if f.name not in values]
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        raise DataError(
            f"{where}: missing {names}; the program takes "
            + ", ".join(f"{f.name}: {f.type}" for f in fields)
        )
    checked = validate(fields, {f.name: values[f.name] for f in fields})
    if isinstance(checked, str):
        raise DataError(f"{where}: {checked}")
    return checked


def parse_cli_inputs(fields: tuple[FieldSpec, ...], pairs: list[str]) -> dict[str, Any]:
    """`--input FIELD=VALUE ...`: text fields take the value as written, others read it as JSON."""
    by_name = {f.name: f for f in fields}
    values: dict[str, Any] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals:
            raise DataError(f"--input {pair}: expected FIELD=VALUE")
        field = by_name.get(name)
        if field is None:
            raise DataError(
                f"--input {name}: the program has no input '{name}'; it takes " + ", ".join(by_name)
            )
        values[name] = text if _is_text(field) else _json_or_text(text)
    return coerce(fields, values, "--input")


def _is_text(field: FieldSpec) -> bool:
    t = field.type.inner if isinstance(field.type, OptionalOf) else field.type
    return t == STR or isinstance(t, OneOf)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def read_records(path: Path, fields: tuple[FieldSpec, ...]) -> list[dict[str, Any]]:
    """Every record's inputs; the first bad record raises `DataError` naming its number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason})") from None
    records = []
    number = 0
    for line in lines:
        if not line.strip():
            continue
        number += 1
        where = f"{path}: record {number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{where}: expected a JSON object, found invalid JSON "
                f"({error.msg} at column {error.colno})"
            ) from None
        if not isinstance(value, dict):
            raise DataError(f"{where}: expected a JSON object, found {type(value).__name__}")
        records.append(coerce(fields, value, where))
    return records
