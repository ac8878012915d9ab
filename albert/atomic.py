"""Atomic writes: a crash (or kill -9) never leaves a half-written file or directory behind.

Write into a temporary file (or directory) beside the target, fsync it, then rename it over
the target; rename is atomic on POSIX file systems, so readers see the old one or the new one.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Iterator

from .errors import AlbertError


_umask_lock = threading.Lock()

# Below this many free bytes a file system counts as full: a writer that reports a full disk in
# its own words (torch's zip writer: "unexpected pos ..."; safetensors: "IoError(... StorageFull)")
# is then said to have found no space.
FULL_BELOW_BYTES = 1 << 20


class WriteError(AlbertError):
    """A file or directory could not be written (a full disk, a read-only mount); `reason` is why,
    in words ("No space left on device")."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: cannot write ({reason})")
        self.path, self.reason = Path(path), reason


def as_os_error(e: BaseException, where: str | os.PathLike) -> OSError:
    """`e`, raised by a writer of a file under `where`, as an OSError: ENOSPC when the file system
    is full however the writer put it. Call it before the partial file is removed (which frees
    the space)."""
    if isinstance(e, OSError):
        return e
    try:
        full = shutil.disk_usage(where).free < FULL_BELOW_BYTES
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return OSError(errno.EIO, " ".join(str(e).split())[:200] or type(e).__name__)


def current_umask() -> int:
    """The process's umask, read without changing it where the kernel shows it (Linux), else by
    setting and restoring it under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _as_if_created(path: str | os.PathLike, directory: bool) -> None:
    """mkstemp and mkdtemp create 0600 and 0700 whatever the umask; the file or directory they made
    becomes the target, so give it the mode a plain open() or mkdir() would have."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically.
    For writers that want a file name (torch.save, safetensors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        try:
            yield Path(tmp)
            # After the writer: safetensors' save_file replaces the file with a 0600 one of its own.
            _as_if_created(tmp, directory=False)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:  # a full disk, a read-only mount: one line naming the file
            raise WriteError(path, e.strerror or str(e)) from None
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_tree(root: Path) -> None:
    """Flush every file under `root`, then the directories' entries, to disk."""
    for parent, _, files in os.walk(root, topdown=False):
        for name in files:
            with open(os.path.join(parent, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(parent))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield a new, empty directory beside `path` to write into. When the block succeeds, every
    file in it is fsynced and it is renamed to `path`, which therefore appears complete or not at
    all; when the block raises, it is removed.

    An existing `path` is replaced (`replace=True`; the old one is moved aside, then removed) or
    kept (`replace=False`: another process wrote the same content first, e.g. two tuning trials
    building one feature cache; ours is dropped). A kill -9 can leave the temporaries behind,
    named `.NAME.tmp-*` and `.NAME.old-*`: a directory's only writer sweeps them with
    `remove_temporaries`; shared caches leave them (another process may be writing one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    except OSError as e:
        raise WriteError(path, e.strerror or str(e)) from None
    try:
        try:
            _as_if_created(tmp, directory=True)
            yield tmp
            _fsync_tree(tmp)  # a full disk can surface only here, when the written pages are flushed
        except OSError as e:  # from the writer or the flush: one line naming the directory
            raise WriteError(path, e.strerror or str(e)) from None
        except WriteError as e:  # a file in it (atomic_path names the temporary directory's)
            raise WriteError(path, e.reason) from None
        if replace and path.exists():
            old = tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))  # as unique as tmp
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except OSError:
                os.replace(old, path)  # put the old one back
                raise
            shutil.rmtree(old, ignore_errors=True)
        elif not path.exists():
            try:
                os.rename(tmp, path)
            except OSError:
                if replace or not path.exists():  # not a concurrent writer that got there first
                    raise
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when it was renamed


def remove_temporaries(parent: str | os.PathLike, name: str = "*") -> None:
    """Delete what `atomic_dir` calls cut short by a kill left in `parent` (for targets matching the
    glob `name`). Only for directories with one writer at a time."""
    for pattern in (f".{name}.tmp-*", f".{name}.old-*"):
        for stale in Path(parent).glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
        yield f


def read_json_object(path: str | os.PathLike, missing: str = "no such file") -> dict[str, Any]:
    """A JSON object from `path`; a missing, unreadable or non-object file is a one-line error."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AlbertError(f"{path}: {missing}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AlbertError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise AlbertError(f"{path}: expected a JSON object")
    return d


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")
