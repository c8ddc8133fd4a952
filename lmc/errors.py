"""One error tree: everything lmc raises on purpose is an `LmcError`, in one of two kinds.

- `InputError`: what the user gave is wrong (a program's text, a dataset, an artifact, a pipeline,
  a metric, a budget, a model string, a command-line option, a callable or plug-in named that
  cannot be imported); fix it and run again. `lmc` exits 2 and prints the message alone (a
  program's errors with their source lines), never a traceback.
- `RunError`: the input was fine and the work failed (a step's reply unusable after repair, an LM
  unreachable, a model file, a retrieval index, a pass that broke the program, the LM-call
  budget spent); `lmc` exits 1.

A module declares its own subclasses (`DataError`, `StepFailed`, ...) where they are raised, so
callers can catch narrowly; the command line maps the two kinds to exit codes in one place.
This module imports nothing, so every layer may use it.
"""

from __future__ import annotations


class LmcError(Exception):
    """Any error lmc raises on purpose; its message is meant for the user as it is."""


class InputError(LmcError):
    """The user's input is wrong: exit 2."""


class RunError(LmcError):
    """The input was fine and the work failed: exit 1."""


class RecordFailure(RunError):
    """The work for one record failed (a step's reply, a function, an LM call after its retries)
    while the rest may well succeed: a dataset run marks that record failed and goes on."""

    reply: str | None = None  # the model's raw reply, where that was what failed


# What the user's code (a function step, a tool, a retriever, a metric, a module imported for
# one) may raise that fails only what it was called for: any exception, and `SystemExit` too,
# since a `sys.exit()` in a metric or a tool must not end a run that has finished work.
# KeyboardInterrupt still stops the run.
USER_CODE_ERRORS = (Exception, SystemExit)


def what_it_raised(error: BaseException) -> str:
    """What the user's code did, to follow its name: `raised ValueError: no digits`, or
    `called sys.exit(3)`."""
    if isinstance(error, SystemExit):
        return f"called sys.exit({'' if error.code is None else repr(error.code)})"
    return f"raised {type(error).__name__}: {error}"
