"""One process per directory: an exclusive lock on a run's or a sweep's output directory.

Two runs writing into one directory destroy each other's checkpoints and logs while both
"succeed". `lock_directory(dir)` takes an exclusive `flock` on `dir/.lock` for as long as the
lock is held; a second process is refused with one line naming the holder:

    runs/x: in use by another process (pid 1234: finetune.py --task ner ...); wait for it or use another --output-dir

The operating system drops a flock when the last descriptor of the open file is closed, so a
holder that dies, even by `kill -9`, never leaves a stale lock behind. The lock file records
the holder's pid, host and command for that message; the holder removes it on release.

Child processes that work under their parent's lock (sweep workers) inherit it rather than
take it again, and they hold it for real: a lock is an open file description, so

- a forked child already has it (`lock_directory` in the child finds it),
- a `multiprocessing` child gets it by receiving the `DirectoryLock` as a Process argument
  (pickling passes the descriptor, as multiprocessing does for its own pipes),
- a `subprocess` child gets it with `Popen(..., **lock.popen_kwargs())` (the descriptor plus an
  environment variable naming it).

Whatever route, the child checks that the descriptor it was given refers to the lock file and
holds the lock (flock on it succeeds), so a stale or forged environment variable grants
nothing. An inherited lock stays held until the last process holding it exits or its owner
releases it: a child that outlives a parent killed with -9 still keeps other runs out.

File systems without flock (some NFS mounts, FUSE) get a one-line error, not a silent run
without a lock.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from multiprocessing import reduction
from pathlib import Path
from typing import Any, Mapping

from .errors import AlbertError

LOCK_FILE = ".lock"
# JSON {"<real path of the directory>": <descriptor number>}: locks handed to an exec'd child.
ENV_VAR = "ALBERT_INHERITED_LOCKS"
DEFAULT_ADVICE = "wait for it or use another --output-dir"

# The locks this process holds, by the real path of their directory; a forked child inherits it.
_held: dict[str, "DirectoryLock"] = {}


class DirectoryLock:
    """An exclusive lock on `directory` (created if missing). Use as a context manager:

        with lock_directory(out):
            ...  # nobody else runs in `out` until this block ends (or this process dies)

    `advice` ends the refusal message. Acquiring a lock this process (or the parent that handed
    it over) already holds succeeds and its release leaves the lock to the original holder.
    """

    def __init__(self, directory: str | os.PathLike, advice: str = DEFAULT_ADVICE) -> None:
        self.directory = Path(directory)
        self.advice = advice
        self.fd: int | None = None
        self._pid = os.getpid()    # a forked copy of an owner must not unlock for everyone
        self._owner = False        # took the lock itself: releasing removes the file and unlocks
        self._close = False        # this object's descriptor is its own to close
        self._created: list[Path] = []

    @property
    def path(self) -> Path:
        return self.directory / LOCK_FILE

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> "DirectoryLock":
        if self.held:
            return self
        self._make_directory()
        key = os.path.realpath(self.directory)
        if key in _held and _holds(_held[key].fd, self.path):
            self.fd = _held[key].fd  # this process holds it already (nested, or inherited by fork)
            return self
        inherited = _from_environment(key, self.path)
        if inherited is not None:
            self.fd, self._close = inherited, True
        else:
            try:
                self.fd = self._take()
            except BaseException:
                self._remove_created()
                raise
            self._owner = self._close = True
        self._pid = os.getpid()
        _held[key] = self
        return self

    def release(self) -> None:
        if not self.held:
            return
        fd, self.fd = self.fd, None
        key = os.path.realpath(self.directory)
        if _held.get(key) is self:
            del _held[key]
        if not self._close:
            return  # the descriptor belongs to the lock that was acquired first in this process
        if self._owner and os.getpid() == self._pid:
            # Remove the file while still holding the lock; `_take` retries if it locked a removed file.
            with contextlib.suppress(OSError):
                if _same_file(fd, self.path):
                    os.unlink(self.path)
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        self._remove_created()

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # --- handing the lock to child processes ----------------------------------------------------
    def popen_kwargs(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """`subprocess.Popen` arguments that hand this lock to the child: `env` (default: ours)
        with the descriptor named in it, and the descriptor kept open across exec."""
        if not self.held:
            raise RuntimeError(f"{self.directory}: handing over a lock that is not held")
        env = dict(os.environ if env is None else env)
        given = json.loads(env.get(ENV_VAR) or "{}")
        given[os.path.realpath(self.directory)] = self.fd
        env[ENV_VAR] = json.dumps(given)
        return {"env": env, "pass_fds": (self.fd,)}

    def __reduce__(self):
        """Pickled for a multiprocessing child, the lock travels as a duplicate of its descriptor."""
        if not self.held:
            raise RuntimeError(f"{self.directory}: handing over a lock that is not held")
        return _adopt, (str(self.directory), self.advice, reduction.DupFd(self.fd))

    # --- taking it -------------------------------------------------------------------------------
    def _make_directory(self) -> None:
        missing = [p for p in (self.directory, *self.directory.parents) if not p.exists()]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise AlbertError(f"{self.directory}: exists and is not a directory") from None
        except OSError as e:
            raise AlbertError(f"{self.directory}: cannot create the directory ({e.strerror or e})") from None
        self._created = missing  # deepest first, so that release can remove them in order

    def _remove_created(self) -> None:
        """A run refused at the start (or that wrote nothing) leaves no empty directory behind."""
        for d in self._created:
            with contextlib.suppress(OSError):
                d.rmdir()
        self._created = []

    def _take(self) -> int:
        for attempt in range(100):
            made = False
            try:
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                    made = True
                except FileExistsError:
                    fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                if attempt == 99:
                    raise AlbertError(f"{self.directory}: keeps disappearing; another process removes it") from None
                self._make_directory()  # an earlier holder that had created it just removed it, empty
                continue
            except OSError as e:
                raise AlbertError(f"{self.directory}: cannot create {LOCK_FILE} ({e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                message = self._refusal(fd)
                os.close(fd)
                raise AlbertError(message) from None
            except OSError as e:
                os.close(fd)
                if made:  # nobody can hold a lock that cannot be taken: the file is only ours
                    with contextlib.suppress(OSError):
                        os.unlink(self.path)
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL):
                    raise AlbertError(f"{self.directory}: cannot lock {LOCK_FILE}: the file system does not "
                                      f"support locks ({e.strerror}); use a directory on a local disk") from None
                raise AlbertError(f"{self.directory}: cannot lock {LOCK_FILE} ({e.strerror or e})") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the previous holder removed the file as we opened it: lock the new one
        else:
            raise AlbertError(f"{self.directory}: cannot lock {LOCK_FILE}: it keeps being replaced")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        except OSError as e:  # a full disk: the lock would hold, but nobody could say whose it is
            os.close(fd)
            raise AlbertError(f"{self.directory}: cannot write {LOCK_FILE} ({e.strerror or e})") from None
        return fd

    def _refusal(self, fd: int) -> str:
        record = None
        for _ in range(20):  # the holder writes its record just after locking: give it a moment
            with contextlib.suppress(OSError, ValueError):
                record = json.loads(os.pread(fd, 4096, 0).decode())
            if isinstance(record, dict) and "pid" in record:
                break
            time.sleep(0.05)
        if not isinstance(record, dict) or "pid" not in record:
            return f"{self.directory}: in use by another process; {self.advice}"
        who = f"pid {record['pid']}"
        if record.get("host") not in (None, socket.gethostname()):
            who += f" on {record['host']}"
        elif not _alive(record["pid"]):
            who += ", which has exited; a process it started still holds the lock"
        if record.get("command"):
            who += f": {record['command']}"
        return f"{self.directory}: in use by another process ({who}); {self.advice}"


def lock_directory(directory: str | os.PathLike, advice: str = DEFAULT_ADVICE) -> DirectoryLock:
    """Take the exclusive lock on `directory` (see `DirectoryLock`); raises `AlbertError` naming
    the holder's pid if another process has it."""
    return DirectoryLock(directory, advice).acquire()


def _adopt(directory: str, advice: str, dup: Any) -> DirectoryLock:
    """Unpickling a handed-over lock in the child: hold the received descriptor if it holds the lock."""
    lock = DirectoryLock(directory, advice)
    fd = dup.detach()
    if not _holds(fd, lock.path):
        os.close(fd)
        return lock  # not held: acquiring it then takes its own lock or is refused
    lock.fd, lock._close = fd, True
    _held[os.path.realpath(directory)] = lock
    return lock


def _from_environment(key: str, path: Path) -> int | None:
    """The descriptor a parent handed over for this directory, if it really holds its lock."""
    try:
        fd = json.loads(os.environ.get(ENV_VAR) or "{}").get(key)
    except (ValueError, AttributeError):
        return None
    if isinstance(fd, int) and _holds(fd, path):
        os.set_inheritable(fd, False)
        return fd
    return None


def _holds(fd: int | None, path: Path) -> bool:
    """Whether `fd` is open on the lock file at `path` and holds its lock (a flock on the
    description that holds it succeeds; on any other description it fails)."""
    if fd is None or not _same_file(fd, path):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


def _command() -> str:
    text = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else ""
    return text if len(text) <= 80 else text[:77] + "..."
