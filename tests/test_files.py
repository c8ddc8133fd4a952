"""Temporaries that killed writes leave behind are removed by the next write of the same file,
and only those: a temporary whose process is still running is being written. Which paths name
one file, so that a command never writes over a file it reads. What may be written: a device or
pipe in place (never replaced), any other file beside it and renamed over it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmc.files import (
    UnwritablePath,
    check_writable,
    one_file,
    other_encoding,
    remove_stale_temporaries,
    temporary_file,
    write_atomically,
)


def dead_pid() -> int:
    """The process id of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_temporary_names_the_file_and_its_process(tmp_path: Path) -> None:
    handle, path = temporary_file(tmp_path / "out.jsonl")
    os.close(handle)

    assert path.parent == tmp_path
    assert path.name.startswith(f".out.jsonl.{os.getpid()}.")
    assert path.name.endswith(".tmp")


def test_the_temporaries_of_processes_that_are_gone_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "fever.json"
    killed = tmp_path / f".fever.json.{dead_pid()}.ab12cd_3.tmp"
    killed.write_bytes(b"")
    killed_folder = tmp_path / f".fever.json.{dead_pid()}.zz99yy88.tmp"
    killed_folder.mkdir()
    (killed_folder / "half-built").write_text("x", encoding="utf-8")
    old_style = tmp_path / ".fever.json.k3j4h5g6"  # as lmc named them before they had a pid
    old_style.write_bytes(b"")
    day_and_more = time.time() - 25 * 3600
    os.utime(old_style, (day_and_more, day_and_more))

    remove_stale_temporaries(target)

    assert not killed.exists()
    assert not killed_folder.exists()
    assert not old_style.exists()


def test_what_is_not_a_stale_temporary_of_this_file_is_left_alone(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        kept = [
            tmp_path / f".fever.json.{sleeper.pid}.ab12cd_3.tmp",  # its process is running
            tmp_path / f".fever.json.{os.getpid()}.ab12cd_3.tmp",  # this process's own
            tmp_path / ".fever.json.k3j4h5g6",  # old-style, but young: may be being written
            tmp_path / f".fever.json.123.{dead_pid()}.ab12cd_3.tmp",  # a temporary of another file
            tmp_path / f".other.json.{dead_pid()}.ab12cd_3.tmp",
            tmp_path / ".fever.json.notes",
            tmp_path / "fever.json",
        ]
        for path in kept:
            path.write_bytes(b"")

        remove_stale_temporaries(tmp_path / "fever.json")

        assert [p for p in kept if not p.exists()] == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_atomic_write_clears_what_a_killed_one_left(tmp_path: Path) -> None:
    leftover = tmp_path / f".fever.json.{dead_pid()}.ab12cd_3.tmp"
    leftover.write_bytes(b'{"half": ')

    write_atomically(tmp_path / "fever.json", b"{}")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["fever.json"]


def test_one_file_however_it_is_spelt_linked_or_yet_to_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("data.jsonl").write_text("{}\n", encoding="utf-8")
    Path("other.jsonl").write_text("{}\n", encoding="utf-8")
    Path("link.jsonl").symlink_to("data.jsonl")
    os.link("data.jsonl", "hard.jsonl")
    Path("sub").mkdir()

    assert one_file("data.jsonl", tmp_path / "sub" / ".." / "data.jsonl")
    assert one_file("link.jsonl", "data.jsonl")
    assert one_file("hard.jsonl", "data.jsonl")
    assert one_file("new.jsonl", "./new.jsonl")  # two outputs, neither written yet
    assert not one_file("other.jsonl", "data.jsonl")  # the same text is not the same file
    assert not one_file("new.jsonl", "data.jsonl")


def test_a_device_is_one_file_with_nothing() -> None:
    # Writing to a terminal, pipe or device destroys nothing: `--data /dev/stdin --out
    # /dev/stdout` may well be one terminal.
    assert not one_file("/dev/null", "/dev/null")


def null_device(path: Path) -> Path:
    """A device node like /dev/null at `path` (the test is skipped where none can be made): a
    test that wrote over the real /dev/null by mistake would break the machine for the rest."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


def test_a_device_is_written_in_place_not_replaced(tmp_path: Path) -> None:
    # Root's `lmc eval --out /dev/null` renamed a regular file over /dev/null.
    device = null_device(tmp_path / "null")

    write_atomically(device, b"results\n")

    assert stat.S_ISCHR(device.lstat().st_mode)
    assert os.listdir(tmp_path) == ["null"]  # no temporary made beside it


def test_a_pipe_is_written_in_place_to_its_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so that the write does not wait
    try:
        write_atomically(fifo, b"results\n")
        assert os.read(reader, 100) == b"results\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


@pytest.fixture
def no_folder_writable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user who may write no folder (tests run as root, who may write all); files and
    devices stay writable."""
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: not os.path.isdir(path) and real_access(path, mode)
    )


@pytest.mark.usefixtures("no_folder_writable")
def test_a_device_needs_no_permission_to_write_in_its_folder(tmp_path: Path) -> None:
    check_writable("/dev/null")  # only checked: nothing is written
    check_writable(null_device(tmp_path / "null"))


@pytest.mark.usefixtures("no_folder_writable")
def test_a_file_in_a_folder_lmc_may_not_write_in_is_refused_unless_written_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("old.jsonl").write_text("{}\n", encoding="utf-8")

    # Its new text goes beside it and is renamed over it, so a failed write leaves it whole.
    with pytest.raises(UnwritablePath) as refused:
        check_writable("old.jsonl")
    assert str(refused.value) == (
        "old.jsonl: cannot write it (no permission to write in ., where lmc writes the new file "
        "before renaming it over this one)"
    )
    check_writable("old.jsonl", in_place=True)  # a trace, opened where it is
    with pytest.raises(UnwritablePath, match=r"^new.jsonl: .*\(no permission to write in \.\)$"):
        check_writable("new.jsonl", in_place=True)


def test_a_link_is_checked_in_the_folder_it_leads_to_where_its_new_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for folder in ("open", "locked"):
        Path(folder).mkdir()
        Path(folder, "out.json").write_text("{}", encoding="utf-8")
    Path("open/to-locked.json").symlink_to("../locked/out.json")
    Path("locked/to-open.json").symlink_to("../open/out.json")
    # A user who may write every file, and every folder but `locked` (tests run as root).
    real_access = os.access
    locked = os.path.realpath("locked")
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode: os.path.realpath(path) != locked and real_access(path, mode),
    )

    with pytest.raises(UnwritablePath) as refused:
        check_writable("open/to-locked.json")
    assert str(refused.value) == (
        "open/to-locked.json: cannot write it (it links to locked/out.json; no permission to "
        "write in locked, where lmc writes the new file before renaming it over this one)"
    )
    check_writable("open/to-locked.json", in_place=True)  # opened where it leads, not replaced
    check_writable("locked/to-open.json")
    write_atomically(Path("locked/to-open.json"), b"[]")
    assert Path("open/out.json").read_bytes() == b"[]"
    assert Path("locked/to-open.json").is_symlink()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_user_who_may_not_write_in_dev_may_write_dev_null() -> None:
    check_writable("/dev/null")


@pytest.mark.parametrize(
    ("start", "encoding"),
    [
        ('{"q": "é"}'.encode("utf-16"), "UTF-16"),
        ('{"q": "é"}'.encode("utf-16-be"), "UTF-16"),  # é is ASCII's NUL and one byte too
        ('{"q": "a"}'.encode("utf-32-be"), "UTF-32"),
        ('{"q": "a"}'.encode("utf-32-le"), "UTF-32"),
        ('{"q": "café"}'.encode(), None),
        ('{"q": "café"}'.encode("latin-1"), None),
        (b"SQLite format 3\x00\x10\x00\x01\x01\x00@  \x00\x00\x00\x02" + bytes(40), None),
        (b"{}", None),
    ],
    ids=["UTF-16", "UTF-16BE", "UTF-32BE", "UTF-32LE", "UTF-8", "Latin-1", "a database", "short"],
)
def test_a_utf16_or_utf32_file_is_told_by_its_first_bytes(
    start: bytes, encoding: str | None
) -> None:
    # What the error for a file lmc cannot read as UTF-8 says it looks like: never a guess that
    # sends a user to convert a file that is no text at all.
    assert other_encoding(start) == encoding
