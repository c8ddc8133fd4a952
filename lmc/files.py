"""Files: where lmc keeps its caches, which files are artifacts, writes that never leave a
half-written file behind, and reading the user's files (`.lmp` source; JSON and JSONL: datasets,
corpora, traces, artifacts) with errors that name the file and the line or record. Light on
purpose: the command line imports it before anything else.

What lmc reads as JSON has limits, checked before the value is used (the README lists them):
a record (one line of a JSONL file) or an artifact is at most `MAX_JSON_CHARS` characters, nests
arrays and objects at most `MAX_JSON_DEPTH` deep, writes whole numbers of at most 4,300 digits
(Python's own limit on reading them) and holds no lone surrogate (`"\\ud800"`: text no file or
terminal can carry).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

from lmc.errors import InputError


def cache_dir() -> Path:
    """Where lmc keeps what it can rebuild: LM cache, indexes, checkpoints (`$LMC_CACHE_DIR`)."""
    return Path(os.environ.get("LMC_CACHE_DIR") or Path.home() / ".cache" / "lmc")


class CacheUnusable(InputError):
    """A cache lmc cannot use: `$LMC_CACHE_DIR` naming a file, a folder where the LM cache file
    goes, a cache file that is not a database. The message names it and what to do."""


def make_cache_folder(folder: Path) -> None:
    """Make `folder` (under `cache_dir()`) if it is missing; `CacheUnusable` if it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocking = next((p for p in (folder, *folder.parents) if p.exists()), folder)
        why = (
            "is a file, not a folder"
            if not blocking.is_dir()
            else f"cannot make folders in it ({error.strerror})"
        )
        raise CacheUnusable(
            f"{blocking}: {why}; lmc keeps its caches there: set LMC_CACHE_DIR to a folder it "
            "may write"
        ) from None


def is_artifact_path(path: str | os.PathLike[str]) -> bool:
    """Whether a program file argument names an artifact (`.json`) rather than `.lmp` text."""
    return os.fspath(path).lower().endswith(".json")


# A temporary beside the file it will become: `.NAME.PID.RANDOM.tmp`, so that the next write of
# NAME can tell one whose process was killed (remove it) from one being written now (keep it).
_TEMPORARY_TAIL = re.compile(r"(\d+)\.[a-z0-9_]{8}\.tmp")
# What lmc named them before they carried the process: `.NAME.RANDOM`; removed once a day old.
_UNTAGGED_TAIL = re.compile(r"[a-z0-9_]{8}")
_UNTAGGED_AGE_S = 24 * 3600


def temporary_file(target: Path) -> tuple[int, Path]:
    """A new hidden file beside `target` (its handle, open for writing, and path), to be renamed
    over `target` when complete; what killed writes of `target` left behind is removed first."""
    remove_stale_temporaries(target)
    handle, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp"
    )
    return handle, Path(name)


def temporary_folder(target: Path) -> Path:
    """A new hidden folder beside `target`, as `temporary_file` makes a file."""
    remove_stale_temporaries(target)
    return Path(
        tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
    )


def remove_stale_temporaries(target: Path) -> None:
    """Remove the temporaries beside `target` whose process is gone: a write killed (kill -9, a
    power cut) between making its temporary and renaming it leaves one, which nothing else
    would ever remove. A temporary of a process still running is left alone."""
    prefix = f".{target.name}."
    try:
        entries = [e for e in os.scandir(target.parent) if e.name.startswith(prefix)]
    except OSError:
        return
    now = time.time()
    for entry in entries:
        tail = entry.name[len(prefix) :]
        tagged = _TEMPORARY_TAIL.fullmatch(tail)
        if tagged is not None:
            if _running(int(tagged.group(1))):
                continue
        elif _UNTAGGED_TAIL.fullmatch(tail) is None:
            continue
        else:
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime < _UNTAGGED_AGE_S:
                    continue
            except OSError:
                continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass  # another process removed it first, or it is not ours to remove


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or not a process id: leave it
    return True


def write_atomically(target: Path, data: bytes) -> None:
    """Write to a temporary file beside `target`, then rename it over `target`.

    A symbolic link is followed (its target is rewritten), and an existing file keeps its mode.
    A device or pipe (`/dev/null`, `/dev/stdout`, a FIFO) is written in place instead.
    """
    if written_in_place(target):
        # Renaming a temporary over a device would put a regular file where the device node was
        # (root's `--out /dev/null` replaced /dev/null), and there is no file to keep whole.
        # Opened by the name given: `/dev/stdout` resolves to no path when stdout is a pipe.
        with open(target, "wb") as file:
            file.write(data)
        return
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    handle, temporary = temporary_file(target)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            # On disk before the rename: after a power cut, some filesystems (XFS) would
            # otherwise bring the renamed file back empty, the old one gone.
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable, where the system can open and sync a folder."""
    with suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


class UnwritablePath(InputError):
    """A file lmc was asked to write that it cannot: a folder, a path through a file, a folder
    without write permission. The message names the path and why."""


def check_writable(path: str | os.PathLike[str], *, in_place: bool = False) -> None:
    """Raise `UnwritablePath` unless a file can be written at `path` the way lmc writes files
    (missing folders made): beside it and renamed over it (`write_atomically`), or with
    `in_place` opened and written where it is (a trace); a device or pipe always in place.
    Nothing is created: a command calls this for every file it will write before it spends an
    LM call. A symbolic link is checked where it leads, which is where the file is written."""
    given = Path(path)
    target = given
    # A link to a device stays as given: `/dev/stdout` leads to no path when stdout is a pipe.
    if given.is_symlink() and not written_in_place(given):
        try:
            # As `write_atomically` resolves it (and `open` follows it, in place): the new file
            # goes in the folder the link leads to, not the link's own.
            target = given.resolve()
        except (OSError, RuntimeError):  # a loop of links (RuntimeError before Python 3.13)
            raise UnwritablePath(
                f"{os.fspath(path)}: cannot write it (a symbolic link in a loop; expected one "
                "that leads to a file)"
            ) from None
    why = _unwritable(target, in_place=in_place)
    if why is not None:
        via = f"it links to {_shown(target)}; " if target is not given else ""
        raise UnwritablePath(f"{os.fspath(path)}: cannot write it ({via}{why})")


def written_in_place(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is something that exists and is no regular file or folder: a device or
    pipe (`/dev/null`, `/dev/stdout`, a FIFO), which lmc opens and writes where it is."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def one_file(written: str | os.PathLike[str], other: str | os.PathLike[str]) -> bool:
    """Whether writing `written` would overwrite the file `other` names: the same file where both
    exist (however each is spelt: a link, `./`, a hard link), else the same path once resolved.
    A pipe, terminal or device is never one file with anything: writing to it destroys nothing
    (`--data /dev/stdin --out /dev/stdout` on one terminal is fine)."""
    paths = (Path(written), Path(other))
    if any(path.exists() and not path.is_file() for path in paths):
        return False
    if all(path.exists() for path in paths):
        return os.path.samefile(*paths)
    # realpath, not Path.resolve: a loop of links is then a path like any other (which
    # `check_writable` refuses), not a RuntimeError.
    return os.path.realpath(paths[0]) == os.path.realpath(paths[1])


def _unwritable(target: Path, *, in_place: bool) -> str | None:
    if target.is_dir():
        return "it is a folder; expected a file name"
    if written_in_place(target):
        # Only the device itself is written: a user may not write in /dev, yet /dev/null is
        # theirs to write.
        return None if os.access(target, os.W_OK) else "no permission to write it"
    # The folder the file goes in, or the nearest one that exists if it is still to be made.
    folder = target.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{_shown(folder)} is a file, not a folder"
    if not target.exists():
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"no permission to write in {_shown(folder)}"
        return None
    if not os.access(target, os.W_OK):
        return "no permission to write it"
    # A file written in place needs only itself writable. The others are refused, not written
    # in place: lmc writes their new text beside them and renames it over them so that a write
    # that fails (a full disk, a kill) leaves the old file whole; in place it would be lost.
    if not in_place and not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"no permission to write in {_shown(folder)}, where lmc writes the new file before "
            "renaming it over this one"
        )
    return None


def _shown(path: Path) -> str:
    """A path as the user would name it: relative to the working folder where it is inside it."""
    try:
        return os.fspath(path.relative_to(Path.cwd())) or "."
    except ValueError:
        return os.fspath(path)


class DataError(InputError):
    """Bad input data: a message that names the file and record, or the `--input` field."""


MAX_JSON_CHARS = 16_000_000
MAX_JSON_DEPTH = 100


class JSONUnreadable(ValueError):
    """JSON text that lmc does not read; the message says why, in words, with the line and column
    where there is one. Raised by `json_value`; each reader turns it into its own error, naming
    the file and the record."""

    def __init__(self, message: str, decode_error: json.JSONDecodeError | None = None):
        super().__init__(message)
        self.decode_error = decode_error


_LONG_NUMBER = re.compile(f"-?\\d{{{sys.get_int_max_str_digits() + 1},}}")
# A `\\uD800`-`\\uDFFF` escape, or a surrogate itself (text from the command line may hold one):
# only then can a decoded string hold a lone surrogate.
_MAY_HOLD_SURROGATE = re.compile("\\\\u[dD][89abcdefABCDEF]|[\ud800-\udfff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_value(text: str, *, surrogates: bool = False) -> Any:
    """`text` as a JSON value, within lmc's limits (see the module's docstring); raises
    `JSONUnreadable` saying what is wrong. `surrogates=True` lets lone surrogates through (a
    trace records what a server sent; its viewer escapes them)."""
    if len(text) > MAX_JSON_CHARS:
        raise JSONUnreadable(
            f"{len(text):,} characters long; lmc reads JSON of up to {MAX_JSON_CHARS:,} characters"
        )
    try:
        value = json.loads(text, parse_constant=_not_a_json_value)
    except _NotAJSONValue as constant:
        raise JSONUnreadable(
            f"invalid JSON ({constant} is not a JSON value; a number is finite, or write null)"
        ) from None
    except json.JSONDecodeError as error:
        where = (
            f"line {error.lineno}, column {error.colno}"
            if "\n" in text.strip()
            else (f"column {error.colno}")
        )
        raise JSONUnreadable(f"invalid JSON ({error.msg} at {where})", error) from None
    except RecursionError:
        raise JSONUnreadable(_too_deep()) from None
    except ValueError:  # a whole number longer than Python reads
        raise JSONUnreadable(_long_number(text)) from None
    _check_value(value, check_surrogates=not surrogates and bool(_MAY_HOLD_SURROGATE.search(text)))
    return value


class _NotAJSONValue(ValueError):
    """`NaN`, `Infinity` or `-Infinity`: Python's JSON reader takes them, JSON has none, and
    lmc could not write one back (a demo, an artifact) as text any reader takes."""


def _not_a_json_value(name: str) -> Any:
    raise _NotAJSONValue(name)


def _too_deep() -> str:
    return (
        f"JSON nested more than {MAX_JSON_DEPTH} levels deep; lmc reads at most "
        f"{MAX_JSON_DEPTH} levels of arrays and objects"
    )


def _long_number(text: str) -> str:
    found = _LONG_NUMBER.search(text)
    limit = sys.get_int_max_str_digits()
    if found is None:
        return f"a number too long to read; expected whole numbers of at most {limit:,} digits"
    line = text.count("\n", 0, found.start()) + 1
    column = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
    where = f"line {line}, column {column}" if "\n" in text.strip() else f"column {column}"
    digits = len(found.group().lstrip("-"))
    return (
        f"a number of {digits:,} digits at {where}; expected whole numbers of at most "
        f"{limit:,} digits"
    )


def _check_value(value: Any, *, check_surrogates: bool) -> None:
    """Nesting depth, and (when the text has surrogate escapes) no lone surrogate; walked
    without recursion."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.items()
        elif isinstance(item, list):
            children = ((None, x) for x in item)
        else:
            if check_surrogates and isinstance(item, str):
                _no_lone_surrogate(item)
            continue
        if depth > MAX_JSON_DEPTH:
            raise JSONUnreadable(_too_deep())
        for key, child in children:
            if check_surrogates and isinstance(key, str):
                _no_lone_surrogate(key)
            if isinstance(child, dict | list) or check_surrogates:
                pending.append((child, depth + 1))


def _no_lone_surrogate(text: str) -> None:
    found = _LONE_SURROGATE.search(text)
    if found is not None:
        raise JSONUnreadable(
            f"a lone surrogate \\u{ord(found.group()):04x} in a string; expected Unicode text "
            "(a \\ud800-\\udfff escape is only valid as half of a pair)"
        )


# The byte-order mark Windows editors write at the start of UTF-8 files: valid UTF-8, but not
# part of the text. lmc removes one at the start of a file it reads (data, corpora, traces,
# `.lmp` source, artifacts); one anywhere else is read as what it is.
UTF8_BOM = b"\xef\xbb\xbf"


# The byte-order marks of UTF-32 and UTF-16 (what Notepad's "Unicode" and PowerShell's `>`
# write), little-endian then big: a file that starts with one is text, in another encoding.
# UTF-32's first: its little-endian mark starts with UTF-16's.
_OTHER_MARKS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def other_encoding(start: bytes) -> str | None:
    """`UTF-16` or `UTF-32` when a file whose first bytes are `start` looks to be in it: by its
    byte-order mark, else (saved without one) by the NUL bytes those write beside each ASCII
    character; None when it looks like neither."""
    for mark, name in _OTHER_MARKS:
        if start.startswith(mark):
            return name
    sample = start[:64]
    for width, name in ((4, "UTF-32"), (2, "UTF-16")):
        units = [sample[i : i + width] for i in range(0, len(sample) - width + 1, width)]
        for ascii_at in (0, width - 1):  # little-endian, big-endian
            # Nearly every unit one ASCII byte and NULs: a character beyond ASCII fills more.
            fits = sum(1 for u in units if 0 < u[ascii_at] < 0x80 and u.count(0) == width - 1)
            if len(units) >= 2 and fits * 10 >= len(units) * 9:
                return name
    return None


class NotUTF8(ValueError):
    """Bytes that are not UTF-8 text, and where the first bad one is: its line, its column (from
    1, in characters, as lmc counts every column) and its value; `encoding` is `UTF-16` or
    `UTF-32` when the file looks like it, and `hint` then says to save it as UTF-8."""

    def __init__(self, raw: bytes, start: int, encoding: str | None = None) -> None:
        self.line_start = raw.rfind(b"\n", 0, start) + 1  # the offset its line starts at
        self.line = raw.count(b"\n", 0, start) + 1
        # Everything before the first bad byte decodes: its characters give the column.
        self.column = len(raw[self.line_start : start].decode("utf-8")) + 1
        self.byte = raw[start]
        self.encoding = encoding
        self.hint = f"; the file looks like {encoding}: save it as UTF-8" if encoding else ""
        super().__init__(
            f"not UTF-8 text (byte 0x{self.byte:02x} at column {self.column}){self.hint}"
        )


def utf8_text(raw: bytes, *, file_start: bool = True) -> str:
    """`raw` as text; `NotUTF8` says where the first byte that is not UTF-8 is. A file's
    leading `UTF8_BOM` is for the caller to remove first, so that columns count from the first
    character. `file_start`: `raw` is where a file starts (not a later line of it), so that a
    UTF-16 or UTF-32 file is told by its first bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        encoding = other_encoding(raw) if file_start else None
        raise NotUTF8(raw, error.start, encoding) from None
    if file_start and b"\x00" in raw[:64]:
        encoding = other_encoding(raw)
        if encoding is not None:
            # UTF-16 without a mark, of ASCII text, decodes: as a NUL after each character. No
            # file lmc reads may hold a NUL, and this says why the text is not what was written.
            raise NotUTF8(raw, raw.index(b"\x00"), encoding)
    return text


def file_text(path: str | os.PathLike[str]) -> str:
    """A whole text file (`.lmp` source, an artifact) less a leading byte-order mark; `NotUTF8`
    places a byte that is not UTF-8, `OSError` says why the file cannot be read."""
    return utf8_text(Path(path).read_bytes().removeprefix(UTF8_BOM))


class UnreadableSource(InputError):
    """A `.lmp` file lmc cannot read as text: missing, a folder, unreadable, or not UTF-8 (its
    first bad byte placed as `file:line:column`, where an editor goes to fix it)."""


def read_source(path: str | os.PathLike[str]) -> str:
    """A `.lmp` file's text, less a leading byte-order mark; `UnreadableSource` says why it
    cannot be read. The one way lmc reads a program's text, for the command line and for
    `lmc.load` alike, so both say the same of a bad file."""
    return read_marked_source(path)[1]


def read_marked_source(path: str | os.PathLike[str]) -> tuple[bytes, str]:
    """`read_source`, and the byte-order mark the file starts with (`UTF8_BOM`, or none):
    `lmc fmt -w` writes it back, so that the editor that wrote it finds the file as it was."""
    name = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
        mark = UTF8_BOM if raw.startswith(UTF8_BOM) else b""
        return mark, utf8_text(raw.removeprefix(mark))
    except FileNotFoundError:
        raise UnreadableSource(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UnreadableSource(f"{name}: is a folder, expected a .lmp file") from None
    except NotUTF8 as bad:
        raise UnreadableSource(
            f"{name}:{bad.line}:{bad.column}: not UTF-8 text (byte 0x{bad.byte:02x}){bad.hint}"
        ) from None
    except OSError as error:
        raise UnreadableSource(f"{name}: cannot read it ({error.strerror})") from None


def read_bytes(path: Path, *, records: bool = True) -> bytes:
    """A JSONL file's bytes, checked to be UTF-8 text, less a leading byte-order mark;
    `DataError` says why it cannot be read. A byte that is not UTF-8 is placed by its line
    and, with `records` (data, corpora: not a trace), by its record, as other bad records are."""
    try:
        raw = path.read_bytes().removeprefix(UTF8_BOM)
        utf8_text(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a JSONL file") from None
    except NotUTF8 as bad:
        record = _records_in(raw[: bad.line_start].decode("utf-8")) + 1 if records else None
        raise not_utf8_line(path, bad.line, record, bad) from None
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror})") from None
    return raw


def not_utf8_line(path: Path, line: int, record: int | None, bad: NotUTF8) -> DataError:
    """The error for a JSONL file's byte that is not UTF-8, on line `line` (record `record`)."""
    where = f"record {record} (line {line})" if record is not None else f"line {line}"
    return DataError(f"{path}: {where}: {bad}")


def _records_in(text: str) -> int:
    """How many records JSONL text holds: its lines that are not blank."""
    return sum(1 for _, line in jsonl_lines(text) if line.strip())


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """Each line of JSONL text with its 1-based number. Lines end at `\\n` only (with an
    optional `\\r`): JSON strings may hold U+2028 and the other breaks `splitlines` splits at."""
    for number, line in enumerate(text.split("\n"), 1):
        yield number, line.removesuffix("\r")


def jsonl_objects(text: str, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each record (a non-blank line) as a JSON object, with where it is: `file: record N`."""
    return jsonl_line_objects((line for _, line in jsonl_lines(text)), path)


def jsonl_line_objects(lines: Iterable[str], path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """`jsonl_objects` of lines already split (a file read a line at a time)."""
    number = 0
    for line in lines:
        if not line.strip():
            continue
        number += 1
        where = f"{path}: record {number}"
        try:
            value = json_value(line)
        except JSONUnreadable as error:
            what = f"expected a JSON object, found {error}" if error.decode_error else error
            raise DataError(f"{where}: {what}") from None
        if not isinstance(value, dict):
            raise DataError(f"{where}: expected a JSON object, found {type(value).__name__}")
        yield where, value
