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


@pytest.mark.slow  # the default suite stays under 10 minutes on 2 cores; run with -m slow
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


def db_rows(sweep: Path, sql: str) -> list[tuple]:
    """Rows of sweep.db, read-only (none while it is being created)."""
    import sqlite3

    if not (sweep / "sweep.db").exists():
        return []
    con = sqlite3.connect(f"file:{sweep / 'sweep.db'}?mode=ro", uri=True, timeout=10)
    try:
        return list(con.execute(sql))
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def configurations(sweep: Path) -> list[tuple]:
    return [(r["id"], r["lr"]) for r in rows(sweep)]


@pytest.mark.slow  # the default suite stays under 10 minutes on 2 cores; run with -m slow
def test_gp_sweep_killed_and_resumed_tries_the_configurations_of_an_uninterrupted_one(inputs, tmp_path):
    """kill -9 after the GP has begun to propose, then --resume: the same configurations, in order."""
    common = ["--sampler", "gp", "--initial-trials", "2", "--budget", "4", "--min-resource", "3", "--max-resource",
              "6", "--eta", "2", "--seed", "5", "--no-progress"]
    reference = run(inputs, argv(inputs, tmp_path / "reference", *common))
    assert reference.returncode == 0, reference.stderr[-3000:]
    sweep = tmp_path / "killed"
    proc = start(inputs, argv(inputs, sweep, *common), tmp_path / "first.log")
    wait_for(proc, lambda: len(db_rows(sweep, "SELECT id FROM trials")) >= 3)  # the first GP proposal
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = run(inputs, [sys.executable, str(REPO / "tune.py"), "--resume", str(sweep), "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    no_traceback(resumed.stderr)
    assert configurations(sweep) == configurations(tmp_path / "reference") and len(configurations(sweep)) == 4
    how = db_rows(sweep, "SELECT info FROM proposals ORDER BY trial_id")
    assert [json.loads(i)["how"] for (i,) in how][2:] == ["model", "model"]  # the GP, not a fallback


def test_ctrl_c_once_lets_the_running_jobs_finish(inputs, tmp_path):
    """One SIGINT: no new job starts, the two running ones finish and are recorded, exit 130 with
    the command that continues the sweep."""
    sweep = tmp_path / "sweep"
    # Trials of 150 steps: long enough that both are still training when the signal arrives.
    proc = start(inputs, argv(inputs, sweep, "--scheduler", "random", "--budget", "6", "--max-resource", "150",
                              "--workers", "2", "--no-progress"), tmp_path / "out.log")
    wait_for(proc, lambda: len(db_rows(sweep, "SELECT id FROM trials WHERE state = 'running'")) == 2
             and len(list(sweep.glob("trials/*/log.jsonl"))) == 2)  # both are training
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=300) == 130
    output = (tmp_path / "out.log").read_text()
    no_traceback(output)
    assert f"interrupted; continue with: python tune.py --resume {sweep}" in output
    states = db_rows(sweep, "SELECT state, resource FROM trials ORDER BY id")
    assert states == [("completed", 150), ("completed", 150)], states  # finished, and nothing new started
    assert json.loads((sweep / "summary.json").read_text())["stop_reason"] == "interrupt"


def test_confirm_top_retrains_the_best_with_more_seeds(inputs, tmp_path):
    sweep = tmp_path / "sweep"
    result = run(inputs, argv(inputs, sweep, "--scheduler", "random", "--budget", "2", "--max-resource", "3",
                              "--confirm-top", "1", "--confirm-seeds", "2", "--no-progress"))
    assert result.returncode == 0, result.stderr[-3000:]
    no_traceback(result.stderr)
    table = rows(sweep)
    confirm = [r for r in table if r["kind"] == "confirm"]
    assert len(table) == 4 and len(confirm) == 2 and {r["state"] for r in confirm} == {"completed"}
    summary = json.loads((sweep / "summary.json").read_text())
    (top,) = summary["confirm"]
    assert len(top["metrics"]) == 3 and summary["best"]["trial_id"] == top["trial_id"]  # picked by the mean
    assert {r["lr"] for r in confirm} == {next(r["lr"] for r in table if int(r["id"]) == top["trial_id"])}


def test_time_budget_stops_starting_trials(inputs, tmp_path):
    sweep = tmp_path / "sweep"
    began = time.monotonic()
    result = run(inputs, argv(inputs, sweep, "--scheduler", "random", "--budget", "50", "--max-resource", "3",
                              "--time-budget", "3", "--no-progress"))
    assert result.returncode == 0, result.stderr[-3000:]
    no_traceback(result.stderr)
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["stop_reason"] == "time" and 1 <= summary["tried"] < 50
    assert set(summary["states"]) == {"completed"}  # the job running at the deadline finished
    assert time.monotonic() - began < 240


@pytest.mark.slow  # the default suite stays under 10 minutes on 2 cores; run with -m slow
def test_a_status_line_at_least_every_10_s_off_a_terminal(inputs, tmp_path):
    """Off a terminal (a pipe) the sweep prints a status line per finished job and at least every
    10 s, with an ETA once steps have been measured. The sweep is far longer than the 30 s the
    test watches it, on any machine, and is then stopped."""
    sweep = tmp_path / "sweep"
    log = tmp_path / "out.log"
    proc = start(inputs, argv(inputs, sweep, "--scheduler", "random", "--budget", "100", "--max-resource", "100000"),
                 log)
    time.sleep(30)
    proc.kill()
    proc.wait()
    lines = [line for line in log.read_text().splitlines() if line.startswith("[sweep]")]
    elapsed = [parse_duration(line.rsplit("|", 1)[1].split(",")[0]) for line in lines]
    assert elapsed and elapsed[-1] >= 20, lines  # the sweep had started within the first 10 s
    gaps = [b - a for a, b in zip([0, *elapsed], elapsed)]
    assert max(gaps) <= 12, lines  # 10 s, and a second or two of a job's evaluation
    assert any("ETA ~" in line for line in lines), lines


def parse_duration(text: str) -> int:
    """'1 min 05 s' / '42 s' (albert.progress.duration) -> seconds."""
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    return numbers[0] * 60 + numbers[1] if "min" in text else numbers[0]
