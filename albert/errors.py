"""User-facing errors and warnings.

Anything the user can fix (a bad path, a malformed file, an impossible option) raises
`AlbertError`; the command-line entry points print its message on one line and exit with
status 2 instead of showing a traceback. What a run recovers from (a skipped step, a damaged
checkpoint) is a `TrainingWarning`, printed as one `warning: ...` line.
"""
from __future__ import annotations

import functools
import logging
import sys
import warnings
from typing import Callable, TypeVar

EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., int | None])


class AlbertError(Exception):
    """An error caused by the user's input: its message names the file, line or option."""


class TrainingDiverged(AlbertError):
    """Training produced non-finite losses or weights it cannot recover from. A user error like
    the others (the lr, warmup or precision are the usual fix), but one the tuner records as a
    failed trial rather than as a broken sweep setting."""


class TrainingWarning(UserWarning):
    """Something went wrong that training recovers from (a skipped step, a bad checkpoint)."""


def require(condition: bool, message: str) -> None:
    """Raise `AlbertError(message)` unless `condition` holds (option checks read as a list)."""
    if not condition:
        raise AlbertError(message)


def located(path: object, line: int | None, problem: str) -> AlbertError:
    """An `AlbertError` that says where: `path:line: problem`."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return AlbertError(f"{where}: {problem}")


def _show_albert_log() -> None:
    """Our INFO/WARNING messages go to stderr, one line each; other libraries keep their own setting."""
    logger = logging.getLogger("albert")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _one_line_warnings() -> None:
    """Our warnings (a skipped step, a damaged checkpoint) print as `warning: ...`, one line each."""
    default = warnings.showwarning
    if getattr(default, "_albert", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.split(".")[0] == "albert":
            print(f"warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    show._albert = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def cli_main(fn: F) -> Callable[..., None]:
    """Wrap a command-line `main` so user errors exit 2 with one line on stderr."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> None:
        _show_albert_log()
        _one_line_warnings()
        try:
            code = fn(*args, **kwargs)
        except AlbertError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        sys.exit(code or 0)

    return wrapper
