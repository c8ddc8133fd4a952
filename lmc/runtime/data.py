"""Program inputs from the command line and from JSONL datasets, checked against their types.

Every record of a dataset is checked before the first LM call, so a bad record costs nothing and
is reported as `file: record N: what was expected`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lmc.backends.schema import InvalidValues, validate
from lmc.files import (
    UTF8_BOM,
    DataError,
    JSONUnreadable,
    NotUTF8,
    json_value,
    jsonl_line_objects,
    jsonl_objects,
    not_utf8_line,
    read_bytes,
    utf8_text,
)
from lmc.signatures import FieldSpec
from lmc.types import STR, OneOf, OptionalOf


def coerce(fields: tuple[FieldSpec, ...], values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The program's inputs from `values` (extra keys, such as expected outputs, are ignored)."""
    missing = [f.name for f in fields if f.name not in values]
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        raise DataError(
            f"{where}: missing {names}; the program takes "
            + ", ".join(f"{f.name}: {f.type}" for f in fields)
        )
    try:
        return validate(fields, {f.name: values[f.name] for f in fields})
    except InvalidValues as error:
        raise DataError(f"{where}: {error}") from None


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
        if _SURROGATE.search(text):
            # Bytes that are not UTF-8 reach Python's argv as lone surrogates.
            raise DataError(f"--input {name}: not UTF-8 text; expected a UTF-8 value")
        values[name] = text if _is_text(field) else _json_or_text(text, name)
    return coerce(fields, values, "--input")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _is_text(field: FieldSpec) -> bool:
    t = field.type.inner if isinstance(field.type, OptionalOf) else field.type
    return t == STR or isinstance(t, OneOf)


def _json_or_text(text: str, name: str) -> Any:
    """The value as JSON; text that is not JSON at all is taken as written (the type check then
    says what was expected), but JSON beyond lmc's limits is refused."""
    try:
        return json_value(text)
    except JSONUnreadable as error:
        if error.decode_error is not None:
            return text
        raise DataError(f"--input {name}: {error}") from None


@dataclass(frozen=True)
class StreamedRecords:
    """A dataset's typed inputs, read from its file a record at a time each time it is iterated,
    so a run holds no more of it than the records in flight. `checked_records` made it, having
    checked every record once. A pipe (`--data /dev/stdin`) can be read only once, so its bytes
    are copied to an unnamed temporary file (`spool`) that is read instead; messages still
    name `path`."""

    path: Path
    fields: tuple[FieldSpec, ...]
    count: int
    spool: IO[bytes] | None = None

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # Checked already; a record that fails now was changed in the file since.
        for where, value in _file_objects(self.path, self.spool):
            yield coerce(self.fields, value, where)


def checked_records(path: Path, fields: tuple[FieldSpec, ...]) -> StreamedRecords:
    """Every record of a JSONL file checked (the first bad one raises `DataError` naming its
    number), none kept: the records, to be read again as a run needs them."""
    spool = _spooled(path)
    count = 0
    for where, value in _file_objects(path, spool):
        coerce(fields, value, where)
        count += 1
    if not count:
        raise DataError(f"{path}: no records; expected one JSON object per line")
    return StreamedRecords(path, fields, count, spool)


def _spooled(path: Path) -> IO[bytes] | None:
    """A copy of what a pipe or other stream holds, to read as often as a file; None for a
    file (or a path that is no file at all, which reading reports)."""
    try:
        if not path.exists() or path.is_file() or path.is_dir():
            return None
        spool = tempfile.TemporaryFile()
        with path.open("rb") as stream:
            shutil.copyfileobj(stream, spool)
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror})") from None
    return spool


def _file_objects(
    path: Path, spool: IO[bytes] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """`jsonl_objects` of a file (or its `spool`) read a line at a time; the same errors, by
    the same names."""
    try:
        if spool is not None:
            spool.seek(0)
            yield from jsonl_line_objects(_text_lines(spool, path), path)
            return
        with path.open("rb") as file:
            # A binary file splits at `\n` only, as `jsonl_lines` does.
            yield from jsonl_line_objects(_text_lines(file, path), path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a JSONL file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror})") from None


def _text_lines(file: Iterable[bytes], path: Path) -> Iterator[str]:
    """Each line of a JSONL file as text, as `read_bytes` reads the file: less a leading
    byte-order mark, and a byte that is not UTF-8 placed by its record and line."""
    records = 0
    for number, raw in enumerate(file, 1):
        try:
            first = number == 1
            line = utf8_text(raw.removeprefix(UTF8_BOM) if first else raw, file_start=first)
        except NotUTF8 as bad:
            raise not_utf8_line(path, number, records + 1, bad) from None
        line = line.removesuffix("\n").removesuffix("\r")
        records += bool(line.strip())
        yield line


@dataclass(frozen=True)
class Dataset:
    """Examples (whole records: inputs and expected outputs) and each one's typed inputs."""

    name: str
    examples: tuple[dict[str, Any], ...]
    inputs: tuple[dict[str, Any], ...]
    sha256: str
    # Each example's record number in the data it was read from (from 1); empty when they are
    # 1, 2, 3... A subset keeps them, so that dev split from `--train` names the train file's.
    numbers: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.examples)

    def number(self, index: int) -> int:
        """Example `index`'s record number in the data it was read from."""
        return self.numbers[index] if self.numbers else index + 1

    def subset(self, indexes: Sequence[int], name: str | None = None) -> Dataset:
        examples = tuple(self.examples[i] for i in indexes)
        inputs = tuple(self.inputs[i] for i in indexes)
        numbers = tuple(self.number(i) for i in indexes)
        return Dataset(name or self.name, examples, inputs, hash_records(examples), numbers)


def hash_records(records: Sequence[Mapping[str, Any]]) -> str:
    text = "\n".join(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records)
    # Records built in Python may hold lone surrogates (files cannot: `json_value`).
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def split(data: Dataset, seed: int, dev_share: float = 0.5) -> tuple[Dataset, Dataset]:
    """Train and dev parts of one dataset, the same for the same seed."""
    order = list(range(len(data)))
    random.Random(f"split:{seed}").shuffle(order)
    cut = len(order) - max(1, round(len(order) * dev_share))
    return data.subset(sorted(order[:cut]), "train"), data.subset(sorted(order[cut:]), "dev")


def load_dataset(
    path: Path, fields: tuple[FieldSpec, ...], expected: Sequence[str] = ()
) -> Dataset:
    """Every record of a JSONL file, checked: inputs typed, `expected` fields present.

    The first bad record raises `DataError` as `file: record N: what was expected`.
    """
    examples, inputs = [], []
    for where, value in jsonl_objects(read_bytes(path).decode("utf-8"), path):
        inputs.append(coerce(fields, value, where))
        for name in expected:
            if name not in value:
                raise DataError(
                    f"{where}: missing the expected '{name}' that the metric compares with "
                    "the program's output"
                )
        examples.append(value)
    if not examples:
        raise DataError(f"{path}: no records; expected one JSON object per line")
    return Dataset(path.stem, tuple(examples), tuple(inputs), hash_records(examples))
