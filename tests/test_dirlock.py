"""The directory lock, with real concurrent processes: a second process is refused with one line
naming the holder's pid (exit 2 from a command line), the lock goes away however the holder ends
(normally, by an exception, by kill -9), and children handed the lock work under it."""
from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from albert import dirlock
from albert.dirlock import LOCK_FILE, DirectoryLock, lock_directory
from albert.errors import AlbertError

REPO = Path(__file__).resolve().parents[1]

# A tiny command line: `python lockcli.py DIR MODE`. It takes the lock as a run would (cli_main:
# an AlbertError is one line on stderr and exit 2), says "locked <pid>", then per MODE:
#   once    release and exit 0         hold     wait for a line on stdin
#   raise   raise a RuntimeError        handover run `lockcli.py DIR once` as a child given the lock, then hold
#   sleep   sleep 10 minutes            orphan   start `lockcli.py DIR sleep` as a child given the lock,
#                                                print its pid, then sleep
SCRIPT = textwrap.dedent("""
    import subprocess, sys, time
    from albert.dirlock import lock_directory
    from albert.errors import cli_main

    @cli_main
    def main():
        directory, mode = sys.argv[1], sys.argv[2]
        with lock_directory(directory) as lock:
            print("locked", flush=True)
            if mode == "raise":
                raise RuntimeError("the run failed")
            if mode == "handover":
                child = subprocess.run([sys.executable, __file__, directory, "once"], capture_output=True,
                                       text=True, **lock.popen_kwargs())
                print("child", child.returncode, child.stdout.strip(), child.stderr.strip(), flush=True)
            if mode == "orphan":
                child = subprocess.Popen([sys.executable, __file__, directory, "sleep"], stdout=subprocess.PIPE,
                                         text=True, **lock.popen_kwargs())
                print("child", child.pid, child.stdout.readline().strip(), flush=True)
            if mode in ("sleep", "orphan"):
                time.sleep(600)
            if mode in ("hold", "handover"):
                sys.stdin.readline()
        return 0

    main()
""")


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "lockcli.py"
    path.write_text(SCRIPT)
    return path


def start(script: Path, directory: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(dirlock.ENV_VAR, None)
    return subprocess.Popen([sys.executable, str(script), str(directory), mode], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def holding(script: Path, directory: Path, mode: str = "hold") -> subprocess.Popen:
    """A process that has taken the lock (it said so)."""
    proc = start(script, directory, mode)
    line = proc.stdout.readline()
    assert line == "locked\n", (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def attempt(script: Path, directory: Path) -> tuple[int, str, str]:
    """Another process trying to take the lock: (exit status, stdout, stderr)."""
    proc = start(script, directory, "once")
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def refused_by(err: str, directory: Path, pid: int) -> str:
    """The single error line of a refused process, which names the directory and the holder's pid."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {directory}: in use by another process (pid {pid}"), lines[0]
    assert lines[0].endswith("; wait for it or use another --output-dir"), lines[0]
    return lines[0]


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate("\n", timeout=60)
    return proc.returncode, out, err


def test_second_process_is_refused_naming_the_holder_then_gets_it(script, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = holding(script, out)
    record = json.loads((out / LOCK_FILE).read_text())
    command = f"lockcli.py {out} hold"
    assert record["pid"] == holder.pid and record["command"] in (command, command[:77] + "...")

    code, stdout, err = attempt(script, out)
    assert code == 2 and stdout == ""
    line = refused_by(err, out, holder.pid)
    assert f"(pid {holder.pid}: {record['command']}); " in line  # and what it runs

    assert finish(holder)[0] == 0
    assert not (out / LOCK_FILE).exists()  # released and removed
    code, stdout, err = attempt(script, out)
    assert (code, stdout, err) == (0, "locked\n", "")


def test_released_when_the_holder_raises(script, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = holding(script, out, "raise")
    code, _, err = finish(holder)
    assert code == 1 and "RuntimeError: the run failed" in err
    assert attempt(script, out)[:2] == (0, "locked\n")


def test_kill_9_leaves_no_stale_lock(script, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = holding(script, out)
    assert attempt(script, out)[0] == 2
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    # The file is left behind with the dead holder's pid, but the lock went with the process.
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == holder.pid
    second = holding(script, out)
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == second.pid
    refused_by(attempt(script, out)[2], out, second.pid)
    assert finish(second)[0] == 0


def test_a_subprocess_child_works_under_the_parents_lock(script, tmp_path):
    """The child takes the lock its parent handed over (exit 0), and its release leaves the
    parent holding it: a third process is still refused."""
    out = tmp_path / "run"
    out.mkdir()
    parent = start(script, out, "handover")
    assert parent.stdout.readline() == "locked\n"
    assert parent.stdout.readline() == "child 0 locked \n"
    refused_by(attempt(script, out)[2], out, parent.pid)
    assert finish(parent)[0] == 0
    assert attempt(script, out)[0] == 0


def test_a_child_outliving_its_killed_parent_still_holds_the_lock(script, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    parent = holding(script, out, "orphan")
    _, child_pid, said = parent.stdout.readline().split()
    assert said == "locked"
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=60)
    try:
        line = refused_by(attempt(script, out)[2], out, parent.pid)
        assert f"pid {parent.pid}, which has exited; a process it started still holds the lock" in line
    finally:
        os.kill(int(child_pid), signal.SIGKILL)
    for _ in range(200):  # the child is not ours to wait for: poll until it has gone
        code = attempt(script, out)[0]
        if code == 0:
            break
    assert code == 0


def test_a_forged_handover_grants_nothing(script, tmp_path, monkeypatch):
    """A descriptor on the lock file that does not hold the lock (or on another file) is ignored."""
    out = tmp_path / "run"
    out.mkdir()
    holder = holding(script, out)
    try:
        for target in (out / LOCK_FILE, script):
            fd = os.open(target, os.O_RDONLY)
            try:
                monkeypatch.setenv(dirlock.ENV_VAR, json.dumps({os.path.realpath(out): fd}))
                with pytest.raises(AlbertError) as e:
                    lock_directory(out)
                assert f"(pid {holder.pid}" in str(e.value)
            finally:
                os.close(fd)
    finally:
        finish(holder)


def _take_in_child(lock: DirectoryLock | None, directory: str, conn) -> None:
    """A multiprocessing child: take the lock on `directory` and say how it went."""
    try:
        with lock_directory(directory):
            conn.send("locked")
    except AlbertError as e:
        conn.send(str(e))
    conn.close()


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_multiprocessing_child_works_under_the_lock(script, tmp_path, method):
    """spawn: the child receives the lock as a Process argument; fork: it inherits it. A child
    given nothing is refused like anyone else."""
    out = tmp_path / "run"
    ctx = mp.get_context(method)
    with lock_directory(out) as lock:
        for arg, expected in ((lock, "locked"), (None, f"{out}: in use by another process (pid {os.getpid()}")):
            if method == "fork" and arg is None:
                continue  # a forked child has everything its parent has, lock included
            ours, theirs = ctx.Pipe()
            child = ctx.Process(target=_take_in_child, args=(arg, str(out), theirs))
            child.start()
            said = ours.recv()
            child.join(60)
            assert said.startswith(expected), said
            assert child.exitcode == 0
        refused_by(attempt(script, out)[2], out, os.getpid())  # the children left it held
    assert attempt(script, out)[0] == 0


def test_nested_in_one_process(script, tmp_path):
    out = tmp_path / "run"
    with lock_directory(out):
        with lock_directory(out) as inner:
            assert inner.held
        refused_by(attempt(script, out)[2], out, os.getpid())  # the inner release kept it
    assert attempt(script, out)[0] == 0


def test_directory_made_for_the_lock_goes_when_left_empty(tmp_path):
    made = tmp_path / "a" / "b"
    with lock_directory(made):
        assert (made / LOCK_FILE).exists()
    assert not (tmp_path / "a").exists()
    with lock_directory(made):
        (made / "results.json").write_text("{}")
    assert sorted(p.name for p in made.iterdir()) == ["results.json"]  # the lock file went, the results stay


@pytest.mark.parametrize("case", ["a file", "under a file", "read-only", "no flock"])
def test_bad_places_are_one_line_errors(tmp_path, monkeypatch, case):
    f = tmp_path / "file"
    f.write_text("x")
    target, needle = {
        "a file": (f, f"{f}: exists and is not a directory"),
        "under a file": (f / "run", f"{f / 'run'}: cannot create the directory (Not a directory)"),
        "read-only": (tmp_path / "ro", f"{tmp_path / 'ro'}: cannot create .lock (Permission denied)"),
        "no flock": (tmp_path / "nfs" / "run", f"{tmp_path / 'nfs' / 'run'}: cannot lock .lock: the file system "
                     "does not support locks (No locks available); use a directory on a local disk"),
    }[case]
    if case == "read-only":
        target.mkdir()
        target.chmod(0o500)
        if os.geteuid() == 0:  # root writes anyway: have the file system refuse as it would anyone else
            real_open = os.open

            def refusing_open(path, *args, **kwargs):
                if Path(path).parent == target:
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
                return real_open(path, *args, **kwargs)
            monkeypatch.setattr(dirlock.os, "open", refusing_open)
    if case == "no flock":
        def flock(fd, op):
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
        monkeypatch.setattr(dirlock.fcntl, "flock", flock)
    try:
        with pytest.raises(AlbertError) as e:
            lock_directory(target)
    finally:
        if case == "read-only":
            target.chmod(0o700)
    assert str(e.value) == needle
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["file", "ro"] if case == "read-only" else ["file"])
