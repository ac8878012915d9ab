"""Run directories: where a run goes when the user names none, which model a fine-tuning run
starts from when it names none, and one process per directory for the life of a run.

- A new run without --output-dir gets `runs/<kind>-<YYYYmmdd-HHMMSS>` under the current directory,
  claimed by creating it, so a second run (even in the same second, even concurrently) gets
  another one (`-2`, `-3`, ...) and never writes over the first.
- `finetune.py` without --model or --preset starts from the newest local pretraining run's
  `final/` (`runs/pretrain-*/final`), else from the hub's albert-base-v2.

A run's output directory for the life of the run: one process at a time, and left as it was
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
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from .dirlock import lock_directory
from .errors import AlbertError


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


RUNS = Path("runs")
HUB_DEFAULT = "albert-base-v2"


def claim_run_dir(kind: str, root: str | os.PathLike = RUNS, now: float | None = None) -> Path:
    """Create and return a new directory `root/<kind>-<time>` (with `-2`, `-3`... when taken)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise AlbertError("under torchrun give --output-dir: every process must write to the same directory")
    root = Path(root)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            path = root / (f"{kind}-{stamp}" if n == 1 else f"{kind}-{stamp}-{n}")
            try:
                path.mkdir()  # atomic: of two runs racing for one name, one gets it
                return path
            except FileExistsError:
                continue
    except OSError as e:
        raise AlbertError(f"{root}: cannot create a run directory ({e.strerror or e}); pass --output-dir") from None
    raise AlbertError(f"{root}: no free name for a {kind} run directory; pass --output-dir")


def output_dir_or_claim(output_dir: str | None, kind: str, resume: bool) -> str:
    """The run's --output-dir, or a new default one claimed for it (said in the log). A resume
    must name the run it continues."""
    if output_dir:
        return output_dir
    if resume:
        raise AlbertError("--resume needs --output-dir: the run to continue")
    claimed = str(claim_run_dir(kind))
    logging.getLogger("albert").info("output directory: %s (pass --output-dir to choose)", claimed)
    return claimed


def newest_pretraining_run(root: str | os.PathLike = RUNS) -> Path | None:
    """The `final/` model of the most recently finished pretraining run under `root`, if any."""
    finals = [p for p in Path(root).glob("pretrain-*/final") if (p / "config.json").is_file()]
    return max(finals, key=lambda p: (p.stat().st_mtime, p.as_posix()), default=None)


def default_model(root: str | os.PathLike = RUNS) -> tuple[str, str]:
    """The model a fine-tuning run (or sweep) starts from when neither --model nor --preset is
    given, and a line saying so. The hub model is only named here; fetching it may fail, and the
    caller turns that into `hub_unavailable`'s hint."""
    local = newest_pretraining_run(root)
    if local is not None:
        return str(local), f"no --model or --preset: starting from {local}, the newest pretraining run in {root}/"
    return HUB_DEFAULT, (f"no --model or --preset, and no pretraining run in {root}/: starting from "
                         f"{HUB_DEFAULT} (Hugging Face hub)")


def hub_unavailable(error: AlbertError) -> AlbertError:
    """The one line for a default hub model that cannot be had (offline)."""
    return AlbertError(f"no --model or --preset given, no pretraining run in {RUNS}/, and {HUB_DEFAULT} cannot be "
                       f"fetched ({str(error).split('(', 1)[-1].rstrip(')')}); run `python pretrain.py --corpus wiki` "
                       f"first, or pass --model DIR or --preset tiny")
