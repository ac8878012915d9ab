"""A full disk, for real: runs whose output directory is a small tmpfs that fills while they
write log.jsonl, best/, a checkpoint or pretraining's final/. Each ends with one line naming what
it could not write and "No space left on device", exit status 2, no traceback, and no temporary
file or directory left behind. (Mounting needs root; elsewhere these tests are skipped.)

The tmpfs is sized from a run on the ordinary disk: what the run writes before the target, plus
less than the target needs."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthetic_text import conll_text, prose

REPO = Path(__file__).resolve().parents[1]
PAGE = 4096
LOCK = PAGE  # the run's .lock file


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from albert.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("full-disk")
    (root / "ner").mkdir()
    (root / "ner" / "train.txt").write_text(conll_text(60, 1))
    (root / "ner" / "valid.txt").write_text(conll_text(20, 2))
    (root / "corpus.txt").write_text(prose(60, 3))
    train_tokenizer(prose(200, 0).split("\n\n"), root / "spm", vocab_size=150)
    return root


def command(inputs: Path, kind: str, out: Path) -> list[str]:
    if kind == "pretrain":
        args = ["pretrain.py", "--corpus", inputs / "corpus.txt", "--preset", "micro", "--vocab-size", "150",
                "--max-steps", "2", "--eval-every", "2"]
    else:
        args = ["finetune.py", "--task", "ner", "--preset", "micro", "--tokenizer", inputs / "spm", "--data-dir",
                inputs / "ner", "--max-seq-length", "32", "--max-steps", "4", "--eval-every", "4", "--log-every", "1"]
    return [sys.executable, *map(str, args), "--no-progress", "--output-dir", str(out)]


def run(inputs: Path, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ALBERT_CACHE": str(inputs / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    """Each command's run on the ordinary disk: what it writes, and how much of it."""
    root = tmp_path_factory.mktemp("reference")
    for kind in ("finetune", "pretrain"):
        result = run(inputs, command(inputs, kind, root / kind))
        assert result.returncode == 0, result.stderr[-3000:]
    return root


def usage(*paths: Path) -> int:
    """Bytes the files under `paths` take on a tmpfs (whole pages)."""
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return sum(-(-f.stat().st_size // PAGE) * PAGE for f in files)


@contextlib.contextmanager
def tmpfs(where: Path, size: int):
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'not root'}): no real full disk")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# target -> (command, the reference's files written before it, bytes of the target that fit, the error)
CASES = {
    "log": ("finetune", ["config.json"], 0, "{out}/log.jsonl: cannot write the log (No space left on device)"),
    "best": ("finetune", ["config.json", "log.jsonl"], 4 * PAGE,
             "{out}/best: cannot write the best model (No space left on device); the previous best/ is intact"),
    "checkpoint": ("finetune", ["config.json", "log.jsonl", "best"], 8 * PAGE,
                   "{out}/checkpoints/step-4: cannot write the checkpoint (No space left on device); "
                   "no earlier checkpoint exists"),
    "final": ("pretrain", ["config.json", "model_config.json", "log.jsonl", "tokenizer", "checkpoints", "best"],
              4 * PAGE, "{out}/final: cannot write (No space left on device)"),
}


@pytest.mark.parametrize("target", CASES)
def test_a_full_disk_is_one_line_naming_what_could_not_be_written(inputs, reference, tmp_path, target):
    kind, before, fits, message = CASES[target]
    size = usage(*(reference / kind / name for name in before)) + LOCK + fits
    with tmpfs(tmp_path / "disk", size) as disk:
        out = disk / "run"
        result = run(inputs, command(inputs, kind, out))
        assert result.returncode == 2, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert errors == [f"error: {message.format(out=out)}"], result.stderr[-3000:]
        assert result.stderr.strip().splitlines()[-1] == errors[0]
        leftovers = [p.name for p in out.rglob(".*") if p.name != ".lock"]
        assert leftovers == []  # no temporary file or directory of the write that failed
        if kind == "finetune":  # (pretraining's trainer writes its results.json before final/)
            assert not (out / "results.json").exists()
