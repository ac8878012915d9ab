"""The sweep's guarantees through `tune.py` itself, with the real fine-tuning objective (micro
models, a few dozen steps on made-up SST-2): kill -9 and --resume, Ctrl-C, --time-budget,
--confirm-top and the status lines. Each test runs tune.py as a user would, in a subprocess."""
from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthetic_text import WORDS, sst2_tsv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """SST-2 rows and a 200-piece vocabulary; 48 training rows in batches of 16 make 3-step epochs,
    so a trial evaluates and checkpoints every 3 steps."""
    from albert.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("tune-cli")
    (root / "sst2").mkdir()
    (root / "sst2" / "train.tsv").write_text(sst2_tsv(48, 1))
    (root / "sst2" / "dev.tsv").write_text(sst2_tsv(24, 2))
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(300)]
    train_tokenizer(lines, root / "spm", vocab_size=200)
    return root


def argv(inputs: Path, out: Path, *extra: object) -> list[str]:
    space = json.dumps({"lr": {"type": "loguniform", "low": 1e-4, "high": 3e-3}, "batch_size": [16]})
    return [sys.executable, str(REPO / "tune.py"), "--task", "sst2", "--preset", "micro", "--data-dir",
            str(inputs / "sst2"), "--tokenizer", str(inputs / "spm"), "--max-seq-length", "32", "--space", space,
            "--device", "cpu", "--output-dir", str(out), *map(str, extra)]


def env(inputs: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "ALBERT_CACHE": str(inputs / "cache"), "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1"}


def run(inputs: Path, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=env(inputs), capture_output=True, text=True, timeout=timeout)


def start(inputs: Path, args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as f:
        return subprocess.Popen(args, cwd=REPO, env=env(inputs), stdout=f, stderr=subprocess.STDOUT)


def wait_for(proc: subprocess.Popen, condition, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the sweep ended before the moment the test waits for"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def checkpoint_steps(trial: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (trial / "checkpoints").glob("step-*"))


def rows(sweep: Path) -> list[dict]:
    with open(sweep / "trials.csv") as f:
        return list(csv.DictReader(f))


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text[-3000:]


def test_kill_9_mid_trial_then_resume_continues_from_its_checkpoint(inputs, tmp_path):
    """Issue 28 item 1: a trial killed after a checkpoint (kill -9 of tune.py, its workers die with
    it) goes on from that checkpoint on --resume, not from step 0; the sweep's trials end with the
    metrics of an uninterrupted sweep, and nothing is repeated in their logs."""
    common = ["--scheduler", "random", "--budget", "2", "--max-resource", "12", "--seed", "3", "--no-progress"]
    reference = run(inputs, argv(inputs, tmp_path / "reference", *common))
    assert reference.returncode == 0, reference.stderr[-3000:]

    sweep = tmp_path / "killed"
    trial = sweep / "trials" / "00001"
    proc = start(inputs, argv(inputs, sweep, *common), tmp_path / "first.log")
    wait_for(proc, lambda: (trial / "checkpoints").is_dir() and any(6 <= s < 12 for s in checkpoint_steps(trial)))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(checkpoint_steps(trial))
    resumed = run(inputs, [sys.executable, str(REPO / "tune.py"), "--resume", str(sweep), "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    no_traceback(resumed.stderr)
    assert "removing checkpoints" not in resumed.stderr and "starting from scratch" not in resumed.stderr

    result = json.loads((trial / "results.json").read_text())
    assert result["resumed_from_step"] == killed_at and result["steps"] == 12
    logged = [json.loads(line)["step"] for line in (trial / "log.jsonl").read_text().splitlines()
              if json.loads(line)["type"] == "train"]
    assert logged == sorted(set(logged))  # every logged step once
    got, want = rows(sweep), rows(tmp_path / "reference")
    assert [(r["id"], r["state"], r["resource"], r["lr"]) for r in got] == \
           [(r["id"], r["state"], r["resource"], r["lr"]) for r in want]
    assert [float(r["accuracy"]) for r in got] == pytest.approx([float(r["accuracy"]) for r in want], abs=1e-9)
    for t in ("00001", "00002"):  # the same per-evaluation losses as the uninterrupted trials
        evals = [[json.loads(x).get("loss") for x in (d / "trials" / t / "log.jsonl").read_text().splitlines()
                  if json.loads(x)["type"] == "eval"] for d in (sweep, tmp_path / "reference")]
        assert evals[0] == pytest.approx(evals[1], rel=1e-6)
