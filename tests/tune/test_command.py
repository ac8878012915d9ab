"""tune.py's options at the command line: every refusal is one line, exit 2, before anything is
written; --resume applies what may change and refuses, in one line, what would change the search."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from albert.tune.storage import Storage
from albert.tune.sweep import SweepSettings, run_sweep

REPO = Path(__file__).resolve().parents[2]


def tune(*args, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "tune.py"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("args, message", [
    (["--sampler", "tpe"], "--sampler must be one of random, gp, got 'tpe'"),
    (["--sampler", "gp", "--acquisition", "eii"], "--acquisition must be one of ei, pi, ucb, got 'eii'"),
    (["--sampler", "gp", "--initial-trials", "0"], "--initial-trials must be a positive integer, got 0"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
    (["--device", "tpu"], "--device must be cpu, cuda or auto, got 'tpu'"),
    (["--space", '{"hidden_size": [64, 128]}', "--model", "{tmp}/no-model"],
     "--space: hidden_size: a --model checkpoint has its own architecture"),
    (["--space", '{"max_steps": {"type": "int", "low": 10, "high": 20}}'],
     "--space: max_steps is the resource --scheduler asha allocates"),
    (["--space", '{"num_attention_heads": [3, 5]}'],
     "no valid configuration in 100 draws (the last: num_attention_heads"),
])
def test_refused_before_anything_is_written(tmp_path, args, message):
    out = tmp_path / "sweep"
    base = ["--task", "sst2", "--output-dir", out, "--no-progress"]
    if "--model" not in args:
        base += ["--preset", "tiny"]
    line = one_error_line(tune(*base, *[str(a).replace("{tmp}", str(tmp_path)) for a in args]))
    assert message in line, line
    assert not out.exists()  # so the corrected command just works, no "already holds a sweep"


@pytest.fixture()
def finished_sweep(tmp_path):
    settings = SweepSettings(sweep_dir=str(tmp_path / "sweep"), task="rte", budget=4, max_resource=3, eta=3,
                             progress=False, fixed={"synthetic_sleep_ms": 0})
    run_sweep(settings)
    return settings


def test_resume_refuses_search_changes_in_one_line(finished_sweep):
    result = tune("--resume", finished_sweep.sweep_dir, "--sampler", "gp", "--seed", "3", "--scheduler", "random",
                  "--space", '{"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-4}}', "--no-progress")
    line = one_error_line(result)
    for difference in ("sampler 'random', not 'gp'", "seed 0, not 3", "scheduler 'asha', not 'random'",
                       "space {"):
        assert difference in line, line
    assert "cannot change on --resume" in line
    store = Storage.open(finished_sweep.sweep_dir)
    assert store.count() == 4  # nothing ran
    store.close()


def test_resume_applies_budget_and_workers_and_says_so(finished_sweep):
    result = tune("--resume", finished_sweep.sweep_dir, "--budget", "6", "--workers", "2", "--sampler", "random",
                  "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr and "budget 4 -> 6, workers 1 -> 2" in result.stderr
    summary = json.loads((Path(finished_sweep.sweep_dir) / "summary.json").read_text())
    assert summary["tried"] == 6 and summary["budget"] == 6
    store = Storage.open(finished_sweep.sweep_dir)
    assert store.meta()["settings"]["workers"] == 2 and store.count() == 6
    store.close()
