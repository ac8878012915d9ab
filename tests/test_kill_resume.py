"""kill -9 at random moments, then --resume until done: nothing lost, nothing done twice.

Each test runs a command as a subprocess, kills it with SIGKILL several times (at a random
logged step, while a checkpoint or best/ is being written, at a random time that may fall in
start-up, tokenizer training or evaluation), resumes it with --resume, and finally compares its
log with an uninterrupted run with the same seed: every step once, the same losses to 1e-6.
The figures (kills, where they landed, steps lost) are printed (`pytest -s`) and asserted.

Slow (several minutes on 2 CPUs): `pytest -m slow tests/test_kill_resume.py`.
"""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from albert.train.checkpoints import CheckpointStore

pytestmark = pytest.mark.slow

from synthetic_text import WORDS, conll_text, sst2_tsv  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("KILL_SEED", time.time_ns() % 100_000))


# --- data --------------------------------------------------------------------------------------

def sentences(n: int, rng: random.Random) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "." for _ in range(n)]


def corpus_text(n_docs: int, seed: int) -> str:
    rng = random.Random(seed)
    return "\n\n".join(" ".join(sentences(rng.randint(2, 8), rng)) for _ in range(n_docs)) + "\n"


# --- processes ---------------------------------------------------------------------------------

def environment(cache: Path) -> dict[str, str]:
    return {**os.environ, "ALBERT_CACHE": str(cache), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


class Launcher:
    """Starts a command with its output in files; keeps what the last one printed for errors."""

    def __init__(self, logs: Path, env: dict[str, str]):
        self.logs, self.env, self.count = logs, env, 0
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, argv: list[object]) -> subprocess.Popen:
        self.count += 1
        self.last = self.logs / f"launch-{self.count:02d}.txt"
        with open(self.last, "w") as out:
            return subprocess.Popen([sys.executable, *map(str, argv)], cwd=REPO, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT)

    def run(self, argv: list[object], timeout: float = 900) -> float:
        """Runs the command to its end; its wall time in seconds."""
        started = time.monotonic()
        proc = self.start(argv)
        assert proc.wait(timeout=timeout) == 0, self.last.read_text()[-3000:]
        return time.monotonic() - started


def read_log(out: Path) -> list[dict]:
    path = out / "log.jsonl"
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:  # the line the kill cut short
                pass
    return records


def last_logged_step(out: Path) -> int:
    return max((r["step"] for r in read_log(out) if r.get("type") == "train"), default=0)


def train_records(out: Path) -> dict[int, dict]:
    records = [r for r in read_log(out) if r["type"] == "train"]
    steps = [r["step"] for r in records]
    assert len(steps) == len(set(steps)), f"steps logged twice: {sorted(s for s in steps if steps.count(s) > 1)}"
    return {r["step"]: r for r in records}


def eval_records(out: Path) -> dict[int, dict]:
    records = [r for r in read_log(out) if r["type"] == "eval"]
    assert len(records) == len({r["step"] for r in records}), "an evaluation logged twice"
    return {r["step"]: r for r in records}


def assert_same_run(out: Path, ref: Path, keys: tuple[str, ...]) -> None:
    got, want = train_records(out), train_records(ref)
    assert sorted(got) == sorted(want) == list(range(1, len(want) + 1))
    for step, r in want.items():
        for k in keys:
            if r.get(k) is not None or got[step].get(k) is not None:
                assert abs(got[step][k] - r[k]) < 1e-6, (step, k, got[step][k], r[k])
    got_eval, want_eval = eval_records(out), eval_records(ref)
    assert sorted(got_eval) == sorted(want_eval)
    for step, r in want_eval.items():
        for k, v in r.items():
            if isinstance(v, float):
                assert abs(got_eval[step][k] - v) < 1e-6, (step, k)


def _checkpoints(out: Path) -> CheckpointStore:
    return CheckpointStore(out / "checkpoints", 2, "")


def wait_until(proc: subprocess.Popen, condition, timeout: float) -> bool:
    """Poll every 2 ms; True when the condition held while the process was still running."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if condition():
            return True
        time.sleep(0.002)
    return proc.poll() is None


def kill_repeatedly(launcher: Launcher, fresh: list, resume: list, out: Path, total_steps: int, save_every: int,
                    strategies: list[str], rng: random.Random, duration: float) -> list[dict]:
    """Start, kill -9 by each strategy in turn, restart with --resume; then run to the end.
    `duration`: the uninterrupted run's wall time, which bounds the random moments."""
    kills: list[dict] = []
    argv = fresh
    for strategy in strategies:
        proc = launcher.start(argv)
        argv = resume
        started = time.monotonic()
        if strategy == "step":
            target = min(total_steps - 1, last_logged_step(out) + rng.randint(1, 12))
            hit = wait_until(proc, lambda: last_logged_step(out) >= target, 300)
        elif strategy == "checkpoint":  # while a step-N directory is being written (by this process)
            ckpts = out / "checkpoints"
            hit = wait_until(proc, lambda: ckpts.is_dir() and any(ckpts.glob(f".step-*.tmp-{proc.pid}-*")), 300)
        elif strategy == "best":  # while best/ is being written
            hit = wait_until(proc, lambda: out.is_dir() and any(out.glob(f".best.tmp-{proc.pid}-*")), 300)
        else:  # any moment: start-up, data, tokenizer, training, evaluation, saving
            # A share of the uninterrupted run's time, not fixed seconds: a resumed run has less
            # left to do, and on a fast machine it can end before a fixed delay is up.
            delay = rng.uniform(0.05, 0.5) * duration
            hit = wait_until(proc, lambda: time.monotonic() - started > delay, 300)
        if not hit:
            assert proc.wait(timeout=600) == 0, launcher.last.read_text()[-3000:]
            break  # finished before the kill came
        temporaries = sorted(p.name for p in (out / "checkpoints").glob(f".step-*.tmp-{proc.pid}-*")) \
            if (out / "checkpoints").is_dir() else []
        mid_best = any(out.glob(f".best.tmp-{proc.pid}-*"))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        store = _checkpoints(out)
        steps = store.steps()
        for _, path in steps:  # a kill never leaves a visible checkpoint that does not verify
            assert store.verify(path) is None, (path, store.verify(path))
        at = last_logged_step(out)
        resumed_from = steps[0][0] if steps else 0
        kills.append({"strategy": strategy, "after_s": round(time.monotonic() - started, 2), "logged_step": at,
                      "newest_checkpoint": resumed_from, "mid_checkpoint_write": bool(temporaries), "mid_best_write": mid_best,
                      "steps_lost": max(0, at - resumed_from)})
    launcher.run(resume)
    return kills


def report(name: str, kills: list[dict]) -> None:
    print(f"\n{name}: seed {SEED}, {len(kills)} kills "
          f"({sum(k['mid_checkpoint_write'] for k in kills)} during a checkpoint write), "
          f"max steps lost {max((k['steps_lost'] for k in kills), default=0)}")
    for k in kills:
        print("  ", json.dumps(k))


# --- fine-tuning ---------------------------------------------------------------------------------

def test_finetune_survives_kill_9(tmp_path):
    rng = random.Random(SEED)
    data = tmp_path / "ner"
    data.mkdir()
    (data / "train.txt").write_text(conll_text(120, 1))
    (data / "valid.txt").write_text(conll_text(30, 2))
    total, save_every = 150, 2
    common = ["finetune.py", "--task", "ner", "--preset", "micro", "--data-dir", data, "--vocab-size", "200",
              "--max-seq-length", "64", "--batch-size", "4", "--lr", "3e-4", "--max-steps", total,
              "--eval-every", "15", "--save-every", save_every, "--log-every", "1", "--seed", "11",
              "--no-progress"]
    launcher = Launcher(tmp_path / "logs", environment(tmp_path / "cache"))
    ref, out = tmp_path / "reference", tmp_path / "killed"
    duration = launcher.run([*common, "--output-dir", ref])

    strategies = ["time", "best", "step", "checkpoint", "step", "checkpoint", "time", "step", "checkpoint", "best",
                  "step", "time"]
    kills = kill_repeatedly(launcher, [*common, "--output-dir", out], [*common, "--output-dir", out, "--resume"],
                            out, total, save_every, strategies, rng, duration)
    report("finetune ner", kills)
    assert len(kills) >= 8 and sum(k["mid_checkpoint_write"] for k in kills) >= 1
    assert all(k["steps_lost"] <= save_every for k in kills), kills
    assert_same_run(out, ref, ("loss", "lr", "grad_norm"))
    results, want = (json.loads((d / "results.json").read_text()) for d in (out, ref))
    assert results["steps"] == total and results["best_step"] == want["best_step"]
    assert abs(results["best_metric"] - want["best_metric"]) < 1e-9
    assert (out / "best" / "model.safetensors").read_bytes() == (ref / "best" / "model.safetensors").read_bytes()
    assert [p.name for _, p in _checkpoints(out).steps()] == [p.name for _, p in _checkpoints(ref).steps()]
    assert not list((out / "checkpoints").glob(".*")) and not list(out.glob(".best*"))


# --- pretraining ---------------------------------------------------------------------------------

def test_pretrain_survives_kill_9(tmp_path):
    rng = random.Random(SEED + 1)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text(300, 3))
    total, save_every = 60, 2
    common = ["pretrain.py", "--corpus", corpus, "--preset", "micro", "--vocab-size", "200", "--max-seq-length",
              "64", "--batch-size", "8", "--max-steps", total, "--eval-every", "20", "--eval-examples", "32",
              "--save-every", save_every, "--log-every", "1", "--seed", "5", "--num-proc", "1", "--no-progress",
              "--device", "cpu"]  # bytes are compared: on a GPU, bf16 and non-deterministic kernels would differ
    launcher = Launcher(tmp_path / "logs", environment(tmp_path / "cache"))
    ref, out = tmp_path / "reference", tmp_path / "killed"
    duration = launcher.run([*common, "--output-dir", ref])

    strategies = ["time", "best", "step", "checkpoint", "time", "step", "checkpoint", "step"]
    kills = kill_repeatedly(launcher, [*common, "--output-dir", out], [*common, "--output-dir", out, "--resume"],
                            out, total, save_every, strategies, rng, duration)
    report("pretrain", kills)
    # On a loaded machine the resumed runs can reach step 60 before the fifth kill; the first four
    # already cover every moment (a time, the best save, a step, mid-checkpoint write).
    assert len(kills) >= 4 and {k["strategy"] for k in kills} >= {"time", "best", "step", "checkpoint"}, kills
    assert all(k["steps_lost"] <= save_every for k in kills), kills
    assert_same_run(out, ref, ("loss", "mlm_loss", "sop_loss", "lr"))
    assert (out / "final" / "model.safetensors").read_bytes() == (ref / "final" / "model.safetensors").read_bytes()
    assert (out / "tokenizer" / "spiece.model").read_bytes() == (ref / "tokenizer" / "spiece.model").read_bytes()
    assert not list((out / "checkpoints").glob(".*")) and not list(out.glob(".final*"))


# --- tuning --------------------------------------------------------------------------------------

def _query(sweep: Path, sql: str) -> list:
    """Rows of sweep.db, read-only; none while the database is still being created."""
    if not (sweep / "sweep.db").exists():
        return []
    con = sqlite3.connect(f"file:{sweep / 'sweep.db'}?mode=ro", uri=True, timeout=10)
    try:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(sql)]
    except sqlite3.OperationalError as e:  # no tables yet
        if "no such table" in str(e):
            return []
        raise
    finally:
        con.close()


def _trials(sweep: Path) -> list[dict]:
    return _query(sweep, "SELECT * FROM trials ORDER BY id")


def _results(sweep: Path) -> list[tuple]:
    return [(r["trial_id"], r["resource"], r["source"]) for r in _query(sweep, "SELECT * FROM results")]


def sweep_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """An SST-2 data folder and a 200-piece vocabulary for a sweep of micro models."""
    from albert.tokenizer import train_tokenizer

    data = tmp_path / "sst2"
    data.mkdir()
    (data / "train.tsv").write_text(sst2_tsv(240, 1))
    (data / "dev.tsv").write_text(sst2_tsv(60, 2))
    spm = tmp_path / "spm"
    train_tokenizer(sentences(400, random.Random(0)), spm, vocab_size=200)
    return data, spm


def test_tune_survives_kill_9(tmp_path):
    rng = random.Random(SEED + 2)
    data, spm = sweep_inputs(tmp_path)
    budget = 6
    common = ["tune.py", "--task", "sst2", "--preset", "micro", "--data-dir", data, "--tokenizer", spm,
              "--max-seq-length", "32", "--budget", budget, "--max-resource", "9", "--eta", "3", "--workers", "1",
              "--seed", "4", "--device", "cpu", "--no-progress"]
    launcher = Launcher(tmp_path / "logs", environment(tmp_path / "cache"))
    ref, sweep = tmp_path / "reference", tmp_path / "killed"
    duration = launcher.run([*common, "--output-dir", ref])

    kills = []
    argv = [*common, "--output-dir", sweep]
    for k in range(4):
        proc = launcher.start(argv)
        argv = ["tune.py", "--resume", sweep, "--no-progress"]
        started = time.monotonic()
        results_before = len(_results(sweep))
        if k % 2:  # a random moment
            delay = rng.uniform(0.05, 0.4) * duration  # a share of the uninterrupted sweep's time
            hit = wait_until(proc, lambda: time.monotonic() - started > delay, 300)
        else:  # right after a worker's result was recorded: the next job has just started
            want = results_before + rng.randint(1, 3)
            hit = wait_until(proc, lambda: len(_results(sweep)) >= want, 300)
        if not hit:
            assert proc.wait(timeout=600) == 0, launcher.last.read_text()[-3000:]
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)
        states = [t["state"] for t in _trials(sweep)]
        kills.append({"after_s": round(time.monotonic() - started, 2), "trials": len(states),
                      "running": states.count("running"), "results": len(_results(sweep))})
    launcher.run(["tune.py", "--resume", sweep, "--no-progress"])
    report("tune sst2", [{**k, "steps_lost": 0, "mid_checkpoint_write": False} for k in kills])
    assert len(kills) >= 2

    trials, want = _trials(sweep), _trials(ref)
    with open(sweep / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == budget == len(trials)  # no trial lost ...
    assert sorted(t["sample_index"] for t in trials) == list(range(budget))  # ... or started twice
    assert all(t["state"] in ("completed", "pruned") for t in trials), [t["state"] for t in trials]
    results = [r for r in _results(sweep) if r[2] == "result"]
    assert len(results) == len(set(results))  # every rung result recorded once
    # the interrupted sweep made the same decisions and reached the same metrics
    assert [(t["sample_index"], t["state"], t["resource"]) for t in trials] == \
           [(t["sample_index"], t["state"], t["resource"]) for t in want]
    for a, b in zip(trials, want):
        assert abs(a["metric"] - b["metric"]) < 1e-6, (a, b)
        train_records(Path(a["checkpoint"]))  # no step of any trial logged twice
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["finished"] and summary["tried"] == budget
