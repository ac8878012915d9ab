"""A run's output directory: one process at a time, and a start that fails leaves it as it was
found. The mechanism on its own, then at the command line with real processes: a second
finetune.py into a running one's directory is refused naming the holder's pid while the first
finishes intact; kill -9 of the holder, then --resume, succeeds; bad output paths (a file, a path
under a file, a read-only directory) are one line and leave nothing behind, for finetune.py and
pretrain.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from albert.dirlock import LOCK_FILE
from albert.errors import AlbertError
from albert.rundir import run_directory
from albert.train.checkpoints import CheckpointStore

from synthetic_text import conll_text, prose
from test_cli import cli, the_error

REPO = Path(__file__).resolve().parents[1]


# --- the mechanism ------------------------------------------------------------------------------

def test_a_failed_start_takes_away_only_what_it_wrote(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("earlier run")
    with pytest.raises(AlbertError, match="no training data"):
        with run_directory(out):
            (out / "tokenizer").mkdir()
            (out / "tokenizer" / "spiece.model").write_text("x")
            (out / "model_config.json").write_text("{}")
            raise AlbertError("no training data")
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert (out / "config.json").read_text() == "earlier run"


def test_a_started_run_keeps_everything_and_a_new_directory_goes_when_left_empty(tmp_path):
    out = tmp_path / "a" / "run"
    with pytest.raises(KeyboardInterrupt):
        with run_directory(out) as start:
            (out / "log.jsonl").write_text("")
            start.started()
            raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == ["log.jsonl"]  # the lock file went with the lock
    fresh = tmp_path / "b" / "run"
    with pytest.raises(AlbertError):
        with run_directory(fresh):
            (fresh / "config.json").write_text("{}")
            raise AlbertError("bad option")
    assert not (tmp_path / "b").exists()


# --- at the command line ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ner(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("ner")
    (data / "train.txt").write_text(conll_text(60, 1))
    (data / "valid.txt").write_text(conll_text(20, 2))
    return data


def finetune_argv(data: Path, out: Path, *extra: object) -> list[str]:
    return [sys.executable, "finetune.py", "--task", "ner", "--preset", "micro", "--data-dir", str(data),
            "--vocab-size", "150", "--max-seq-length", "32", "--batch-size", "4", "--log-every", "1",
            "--no-progress", "--device", "cpu", "--output-dir", str(out), *map(str, extra)]


def environment(cache: Path) -> dict[str, str]:
    return {**os.environ, "ALBERT_CACHE": str(cache), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1"}


def wait_for(proc: subprocess.Popen, condition, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def logged_steps(out: Path) -> list[int]:
    steps = []
    for line in (out / "log.jsonl").read_text().splitlines() if (out / "log.jsonl").exists() else []:
        try:
            record = json.loads(line)
        except ValueError:  # cut short by a kill
            continue
        if record["type"] == "train":
            steps.append(record["step"])
    return steps


def test_a_second_run_into_a_running_ones_directory_is_refused_and_the_first_finishes_intact(ner, tmp_path):
    """The first run is paused (SIGSTOP) once it has logged a step, so the second certainly
    arrives while it holds the directory; it is refused before touching anything."""
    out, env = tmp_path / "run", environment(tmp_path / "cache")
    first = subprocess.Popen(finetune_argv(ner, out, "--max-steps", 12, "--save-every", 4), cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(first, lambda: len(logged_steps(out)) >= 1)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        second = subprocess.run(finetune_argv(ner, out, "--max-steps", 5, "--lr", "1e-3"), cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == 2 and second.stdout == "", second.stderr
        [line] = second.stderr.splitlines()
        assert line.startswith(f"error: {out}: in use by another process (pid {first.pid}: finetune.py --task ner ")
        assert line.endswith("); wait for it or use another --output-dir")
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert logged_steps(out) == list(range(1, 13))
    assert json.loads((out / "results.json").read_text())["steps"] == 12
    assert json.loads((out / "config.json").read_text())["args"]["max_steps"] == 12
    store = CheckpointStore(out / "checkpoints")
    assert [s for s, _ in store.steps()] == [12, 8] and all(store.verify(p) is None for _, p in store.steps())
    assert not (out / LOCK_FILE).exists()


def test_kill_9_of_the_holder_then_resume_succeeds(ner, tmp_path):
    out, env = tmp_path / "run", environment(tmp_path / "cache")
    argv = finetune_argv(ner, out, "--max-steps", 10, "--save-every", 2)
    holder = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(holder, lambda: (out / "checkpoints").is_dir() and bool(CheckpointStore(out / "checkpoints").steps()))
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == holder.pid  # left behind, but not held
    saved = CheckpointStore(out / "checkpoints").steps()[0][0]
    resumed = subprocess.run([*argv, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr and "in use" not in resumed.stderr
    assert logged_steps(out) == list(range(1, 11)) and saved >= 2
    assert json.loads((out / "results.json").read_text())["steps"] == 10
    assert not (out / LOCK_FILE).exists()


def test_resume_without_a_checkpoint_says_so_and_starts_from_step_0(ner, tmp_path, capsys, monkeypatch):
    """Decided: --resume is the answer after any kill, even one before the first checkpoint."""
    monkeypatch.setenv("ALBERT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    code, _, err = cli(capsys, monkeypatch, *finetune_argv(ner, out, "--max-steps", 2, "--resume")[1:])
    assert code == 0, err
    assert f"warning: {out}: no checkpoint to resume from; starting from step 0" in err.splitlines()
    assert logged_steps(out) == [1, 2]


@pytest.fixture
def read_only(tmp_path):
    """A directory nobody may write into, root included (chattr +i where chmod does not stop root)."""
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o555)
    immutable = False
    try:
        (target / "probe").touch()
    except PermissionError:
        pass
    else:
        (target / "probe").unlink()
        if subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode != 0:
            target.chmod(0o755)
            pytest.skip("cannot make a directory read-only for this user")
        immutable = True
    yield target
    if immutable:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    target.chmod(0o755)


@pytest.mark.parametrize("script", ["finetune.py", "pretrain.py"])
@pytest.mark.parametrize("place", ["a file", "under a file", "read-only", "under a read-only directory"])
def test_bad_output_paths_are_one_line_and_leave_nothing(ner, tmp_path, read_only, capsys, monkeypatch, script,
                                                          place):
    monkeypatch.setenv("ALBERT_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "file"
    f.write_text("x")
    out, needle = {"a file": (f, f"{f}: exists and is not a directory"),
                   "under a file": (f / "run", f"{f / 'run'}: cannot create the directory (Not a directory)"),
                   "read-only": (read_only, f"{read_only}: cannot create .lock ("),
                   "under a read-only directory": (read_only / "run", f"{read_only / 'run'}: cannot create the "
                                                                      "directory (")}[place]
    if script == "finetune.py":
        args = finetune_argv(ner, out, "--max-steps", 2)[2:]
    else:
        corpus = tmp_path / "corpus.txt"
        corpus.write_text(prose(40, 1))
        args = ["--corpus", corpus, "--preset", "micro", "--vocab-size", "120", "--max-steps", "2", "--no-progress",
                "--output-dir", out]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = cli(capsys, monkeypatch, script, *args)
    assert code == 2
    assert the_error(err).startswith(f"error: {needle}"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not list(read_only.iterdir())
    assert f.read_text() == "x"
