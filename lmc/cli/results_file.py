"""`lmc run --data IN --out OUT`: the results file, kept as work finishes and picked up again.

One JSON line per record (`{"record": N, "inputs": ..., "outputs": ...}`, or `"error"` and
`"reply"` for a record that failed), appended and flushed the moment the record finishes, in
input order: a run that is killed, or stopped by `--max-errors`, loses no finished record.

A rerun onto the same file resumes (unless `--no-resume`): records whose earlier result is there
and succeeded, for the same inputs, are not run again; failed and missing ones are, and their
lines go at the end. When the run is over, a file whose lines left input order, or that holds
superseded failures, is rewritten in order through a temporary file renamed into place, so a
kill during the rewrite leaves the previous file whole; a temporary file a killed rewrite left
behind is removed by the next run.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from lmc.files import (
    DataError,
    json_value,
    remove_stale_temporaries,
    write_atomically,
    written_in_place,
)
from lmc.strings import json_text


def record_line(
    index: int,
    inputs: dict[str, Any],
    outputs: dict[str, Any] | None = None,
    error: str | None = None,
    reply: str | None = None,
) -> str:
    line: dict[str, Any] = {"record": index + 1, "inputs": inputs}
    if error is None:
        line["outputs"] = outputs
    else:
        line["error"] = error
        line["reply"] = reply
    # Printed when there is no --out: control characters a reply holds are escaped (and a lone
    # surrogate a server sent would not encode in the file otherwise); it reads back the same.
    return json_text(line)


def _blank(raw: bytes) -> bool:
    """Whether a line of the results file holds nothing but whitespace (someone's edit, a
    joined file): skipped by reading it and by rewriting it alike, so the two never disagree."""
    return not raw.decode("utf-8", errors="replace").strip()


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, ensure_ascii=False) == json.dumps(
        b, sort_keys=True, ensure_ascii=False
    )


class ResultsFile:
    def __init__(self, path: Path, records: Iterable[dict[str, Any]], count: int, *, resume: bool):
        """`records` are the data's inputs (read once, to check a resumed file's lines against
        them: a file the data streams from need not be held), `count` how many there are."""
        self.path = path
        self.count = count
        # The indexes of records whose earlier result succeeded.
        self.done: set[int] = set()
        self._in_order = True  # whether the file's lines are one per record, in input order
        # A device or pipe (`--out /dev/null`, a FIFO) is written in place and never rewritten;
        # it holds no earlier results, and reading a pipe would take what its reader is owed.
        self._in_place = written_in_place(path)
        if not self._in_place:
            remove_stale_temporaries(self.path)  # what a rewrite killed midway left behind
        appending = resume and path.exists() and not self._in_place
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Opened to append, never emptied, until no other run is found writing it.
            self._file: IO[str] = path.open("w" if self._in_place else "a", encoding="utf-8")
        except OSError as error:
            raise DataError(f"{path}: cannot write the results: {error.strerror}") from None
        try:
            if not self._in_place:
                self._take_or_refuse()
            if appending:
                self._read_earlier(records)
            elif not self._in_place:
                self._file.truncate(0)
        except BaseException:
            self._file.close()
            raise
        self._last = max(self.done, default=-1)

    def _take_or_refuse(self) -> None:
        """Hold the file for this run: two runs on one `--out` would run the same records, and
        the first to finish would rename its rewrite over the file the other still writes."""
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(
                f"{self.path}: another lmc run is writing these results; let it finish (this "
                "command then resumes after it), or give another --out"
            ) from None

    def _read_earlier(self, records: Iterable[dict[str, Any]]) -> None:
        seen: list[int] = []
        # Record index -> (line number, the inputs written there) of every earlier line, to be
        # checked against the data's record.
        written: dict[int, list[tuple[int, Any]]] = {}
        complete = 0  # bytes up to the end of the last whole line
        with self.path.open("rb") as file:
            for number, raw in enumerate(file, 1):
                if not raw.endswith(b"\n"):
                    break  # a line a kill cut short: dropped below, and its record run again
                complete += len(raw)
                if _blank(raw):
                    continue
                text = raw.decode("utf-8", errors="replace")
                index, inputs, succeeded = self._earlier_line(number, text, len(seen))
                written.setdefault(index, []).append((number, inputs))
                seen.append(index)
                if succeeded:
                    self.done.add(index)
                else:
                    self.done.discard(index)
        self._check_inputs(written, records)
        if complete < self.path.stat().st_size:
            os.truncate(self.path, complete)
        self._in_order = seen == list(range(len(seen))) and len(self.done) == len(seen)

    def _earlier_line(self, number: int, text: str, results_before: int) -> tuple[int, Any, bool]:
        """The record index of one earlier line, checked to be one of this data's, the inputs
        written there, and whether it succeeded. `results_before`: how many result lines came
        before it."""
        try:
            # Within lmc's JSON limits (a RecursionError otherwise); lone surrogates are what a
            # server sent, written escaped.
            line = json_value(text, surrogates=True)
            index = int(line["record"]) - 1
        except (ValueError, KeyError, TypeError):
            raise DataError(self._not_a_result(number, results_before)) from None
        if not 0 <= index < self.count:
            self._other_inputs(number, index)
        return index, line.get("inputs"), "error" not in line

    def _not_a_result(self, number: int, results_before: int) -> str:
        """What to do about a line that is no result: `--no-resume` overwrites the whole file,
        so it is offered last, as what loses the file; first what keeps it."""
        where = f"{self.path}: line {number}: not a result line of lmc run"
        if not results_before:
            # Another file (the user's data, a results file of another tool): the --out path is
            # likely a slip, and the file is theirs.
            return (
                f"{where}, so the file holds something else; write the results elsewhere with "
                "another --out (--no-resume would overwrite the file)"
            )
        # lmc's results, with a line someone edited or joined in: mending it keeps them.
        are = "is" if results_before == 1 else "are"
        return (
            f"{where}, after {results_before} that {are}; mend or remove it to resume, keeping "
            "those results (--no-resume would start over, overwriting them)"
        )

    def _check_inputs(
        self, written: dict[int, list[tuple[int, Any]]], records: Iterable[dict[str, Any]]
    ) -> None:
        """Each earlier line holds its record's inputs; else the first line that does not
        (by line number) is named."""
        wrong: list[tuple[int, int]] = []
        for index, record in enumerate(records):
            for number, inputs in written.get(index, ()):
                if not _same(inputs, record):
                    wrong.append((number, index))
        if wrong:
            self._other_inputs(*min(wrong))

    def _other_inputs(self, number: int, index: int) -> None:
        raise DataError(
            f"{self.path}: line {number}: record {index + 1} has other inputs than the "
            "data's; these are results of another dataset. Pass --no-resume to overwrite "
            "them, or give another --out"
        )

    def write(self, index: int, line: str) -> None:
        """A finished record's line, at the end of the file, on disk before the next one."""
        if index < self._last:
            self._in_order = False
        self._last = max(self._last, index)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close; put the lines in input order if a resumed run left them out of it."""
        self._file.close()
        if not self._in_order and not self._in_place:
            self._rewrite_in_order()

    def _rewrite_in_order(self) -> None:
        latest: dict[int, bytes] = {}
        with self.path.open("rb") as file:
            for raw in file:
                # Skipped as reading skipped them: a blank line is no record's result.
                if not _blank(raw):
                    latest[int(json.loads(raw)["record"]) - 1] = raw
        write_atomically(self.path, b"".join(latest[i] for i in sorted(latest)))
