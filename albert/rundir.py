"""A run's output directory for the life of the run: one process at a time, and left as it was
found by a run that fails to start.

    with run_directory(out) as rundir:   # refused, naming the holder's pid, while another process runs in `out`
        ...                              # resolve everything (data, tokenizer, model); a failure here takes
                                         # away whatever this start put into `out`
        rundir.started()                 # from here on, what the run writes stays, failure or not

A start that fails (a bad option found late, missing data, a checkpoint that does not fit, Ctrl-C)
used to leave a config.json and an empty log.jsonl for a run that never happened, or a trained
vocabulary that the next, corrected, start silently reused. Only entries that appeared after the
lock was taken are removed: nobody else can have written them, and nothing that was there is
touched. The lock itself is albert/dirlock.py.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from .dirlock import lock_directory


class RunStart:
    """What a start has put into the directory, until `started()` says the run is under way."""

    def __init__(self, directory: Path, enabled: bool) -> None:
        self.directory, self.enabled = directory, enabled
        self.before = set(os.listdir(directory)) if enabled else set()
        self.is_started = False

    def started(self) -> None:
        self.is_started = True

    def roll_back(self) -> None:
        if not self.enabled or self.is_started:
            return
        with contextlib.suppress(OSError):
            for name in set(os.listdir(self.directory)) - self.before:
                path = self.directory / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()


@contextlib.contextmanager
def run_directory(output_dir: str | os.PathLike, *, enabled: bool = True) -> Iterator[RunStart]:
    """Hold the lock on `output_dir` (created if missing) for the block, and roll back what the
    block wrote if it raises before `started()`. `enabled=False` (torchrun ranks other than 0,
    which write nothing) does neither."""
    directory = Path(output_dir)
    if not enabled:
        yield RunStart(directory, enabled=False)
        return
    with lock_directory(directory):
        start = RunStart(directory, enabled=True)
        try:
            yield start
        except BaseException:
            start.roll_back()
            raise
