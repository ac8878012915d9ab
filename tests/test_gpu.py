"""What only a GPU shows: AMP training steps in bf16 and fp16 (LAMB and fused AdamW under a
GradScaler), exact resume on CUDA with deterministic settings, several tuning trials sharing one
GPU. Marked `gpu` and skipped without CUDA: `pytest -m gpu tests/test_gpu.py` on a GPU machine
(bench/gpu_check.py runs them there).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from synthetic_text import conll_text
from test_kill_resume import corpus_text, sweep_inputs, train_records

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

REPO = Path(__file__).resolve().parents[1]
# Deterministic kernels (cuBLAS workspace, scatter/gather and attention backward) for the whole run.
DETERMINISTIC = ("import runpy, sys, torch; torch.use_deterministic_algorithms(True); sys.argv = sys.argv[1:]; "
                 "runpy.run_path(sys.argv[0], run_name='__main__')")


def run(argv: list, tmp_path: Path, deterministic: bool = False, timeout: float = 300) -> None:
    # The repository goes in front of PYTHONPATH, not in its place: on the GPU machine it also holds
    # the packages gpu_check.py installs from carried wheels (datasets), and without them every
    # command here failed to start (H200, 2026-11-28).
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "ALBERT_CACHE": str(tmp_path / "cache"), "PYTHONPATH": path, "PYTHONUNBUFFERED": "1",
           "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    cmd = [sys.executable, *(["-c", DETERMINISTIC] if deterministic else []), *map(str, argv)]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]


def pretrain_args(tmp_path: Path, out: Path, steps: int) -> list:
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        corpus.write_text(corpus_text(300, 3))
    return ["pretrain.py", "--corpus", corpus, "--preset", "micro", "--vocab-size", "200", "--max-seq-length", "64",
            "--batch-size", "16", "--max-steps", steps, "--eval-every", "1000", "--eval-examples", "32",
            "--log-every", "1", "--seed", "5", "--num-proc", "1", "--no-progress", "--device", "cuda",
            "--output-dir", out]


def losses(out: Path) -> list[float]:
    return [r["loss"] for _, r in sorted(train_records(out).items())]


@pytest.mark.parametrize("entry,precision", [("pretrain", "fp16"), ("pretrain", "bf16"), ("finetune", "fp16")])
def test_amp_training_steps(tmp_path, entry, precision):
    # fp16 goes through the GradScaler: LAMB takes its scale and overflow flag (no read-back),
    # fused AdamW likewise; bf16 needs no scaler. Every logged loss is finite and it falls.
    out = tmp_path / "run"
    if entry == "pretrain":
        argv = [*pretrain_args(tmp_path, out, 40), "--precision", precision]
    else:
        data = tmp_path / "ner"
        data.mkdir()
        (data / "train.txt").write_text(conll_text(200, 1))
        (data / "valid.txt").write_text(conll_text(40, 2))
        argv = ["finetune.py", "--task", "ner", "--preset", "micro", "--data-dir", data, "--vocab-size", "200",
                "--max-seq-length", "64", "--batch-size", "16", "--lr", "1e-3", "--max-steps", "40", "--log-every", "1",
                "--eval-every", "40", "--seed", "3", "--no-progress", "--no-predict", "--device", "cuda",
                "--precision", precision, "--output-dir", out]
    run(argv, tmp_path)
    results = json.loads((out / "results.json").read_text())
    assert results["precision"] == precision and results["device"].startswith("cuda")
    got = losses(out)
    assert len(got) == 40 and all(math.isfinite(x) for x in got)
    assert sum(got[-5:]) / 5 < sum(got[:5]) / 5


def test_exact_resume_on_cuda(tmp_path):
    # With deterministic kernels, a run resumed from its step-8 checkpoint logs exactly the
    # losses of the uninterrupted run and ends with the same weights, byte for byte.
    ref = tmp_path / "reference"
    run([*pretrain_args(tmp_path, ref, 16), "--save-every", "8", "--keep-last", "3"], tmp_path, deterministic=True)
    cut = tmp_path / "resumed"
    shutil.copytree(ref, cut)
    shutil.rmtree(cut / "checkpoints" / "step-16")
    for leftover in ("final", "best"):
        shutil.rmtree(cut / leftover, ignore_errors=True)
    (cut / "results.json").unlink()
    run([*pretrain_args(tmp_path, cut, 16), "--save-every", "8", "--keep-last", "3", "--resume"], tmp_path,
        deterministic=True)
    assert losses(cut) == losses(ref)
    assert (cut / "final" / "model.safetensors").read_bytes() == (ref / "final" / "model.safetensors").read_bytes()


def test_trials_share_one_gpu(tmp_path):
    data, spm = sweep_inputs(tmp_path)
    sweep = tmp_path / "sweep"
    run(["tune.py", "--task", "sst2", "--preset", "micro", "--data-dir", data, "--tokenizer", spm,
         "--max-seq-length", "32", "--budget", "6", "--max-resource", "9", "--eta", "3", "--trials-per-gpu", "3",
         "--seed", "4", "--device", "cuda", "--no-progress", "--output-dir", sweep], tmp_path)
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["finished"] and summary["tried"] == 6
    rows = (sweep / "trials.csv").read_text().splitlines()
    assert len(rows) == 7 and not any("failed" in r for r in rows[1:]), rows
