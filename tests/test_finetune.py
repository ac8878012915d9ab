"""The fine-tuning recipe's own logic (its end-to-end runs are in test_cli.py, train/test_checkpoints.py
and test_kill_resume.py): the final predictions come from best/, on the training device."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from albert.config import preset
from albert.finetune import FinetuneArgs, predict
from albert.model import AlbertForTokenClassification

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])]


class SpyTask:
    prediction_suffix = ".txt"

    def __init__(self):
        self.scored = []

    def evaluate(self, model, features, raw, *, batch_size, precision):
        param = next(model.parameters())
        self.scored.append((param.device, model.classifier.weight.detach().cpu().clone(), precision))
        return {"f1": 0.5}, ["O"]

    def write_predictions(self, predictions, raw, path):
        path.write_text("\n".join(predictions))

    def report(self, metrics, predictions):
        return None


def _model(seed: int) -> AlbertForTokenClassification:
    torch.manual_seed(seed)
    return AlbertForTokenClassification(preset("micro", vocab_size=50, num_labels=3))


@pytest.mark.parametrize("device", DEVICES)
def test_predictions_score_best_on_the_training_device(tmp_path, device):
    best = _model(1)
    best.save_pretrained(tmp_path / "best")
    trainer = SimpleNamespace(model=_model(0).to(device), device=torch.device(device), precision="fp32")
    task = SpyTask()
    args = FinetuneArgs(task="ner", output_dir=str(tmp_path), eval_batch_size=4)
    metrics = predict(args, task, trainer, {"validation": None}, {"validation": None}, save_best=None)
    (where, weight, precision), = task.scored
    assert metrics == {"f1": 0.5} and where.type == torch.device(device).type and precision == "fp32"
    assert torch.equal(weight, best.classifier.weight) and not torch.equal(weight, trainer.model.classifier.weight.cpu())
    assert (tmp_path / "predictions.txt").read_text() == "O"


def test_without_an_evaluation_the_final_weights_are_saved_as_best(tmp_path):
    trainer = SimpleNamespace(model=_model(0), device=torch.device("cpu"), precision="fp32")
    task = SpyTask()
    args = FinetuneArgs(task="ner", output_dir=str(tmp_path))
    predict(args, task, trainer, {"validation": None}, {"validation": None},
            save_best=lambda m, d: m.save_pretrained(d))
    assert (tmp_path / "best" / "model.safetensors").is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert torch.equal(task.scored[0][1], trainer.model.classifier.weight)


# --- the same command twice: the same run ------------------------------------------------------

@pytest.fixture(scope="module")
def task_data(tmp_path_factory):
    """Small made-up data for one task of each kind, and a pretrained-style checkpoint (backbone
    and MLM head only: every task's head is new) with its tokenizer."""
    from albert.model import AlbertForPreTraining
    from albert.tokenizer import train_tokenizer
    from synthetic_text import conll_text, prose, squad_json, sst2_tsv, stsb_tsv

    root = tmp_path_factory.mktemp("tasks")
    files = {"ner": {"train.txt": conll_text(40, 1), "valid.txt": conll_text(12, 2)},
             "sst2": {"train.tsv": sst2_tsv(40, 1), "dev.tsv": sst2_tsv(12, 2)},
             "stsb": {"train.tsv": stsb_tsv(40, 1), "dev.tsv": stsb_tsv(12, 2)},
             "squad": {"train-v1.1.json": squad_json(4, 1), "dev-v1.1.json": squad_json(2, 2)}}
    for task, named in files.items():
        (root / task).mkdir()
        for name, text in named.items():
            (root / task / name).write_text(text)
    tok = train_tokenizer(prose(200, 0).split("\n\n"), root / "spm", vocab_size=300)
    torch.manual_seed(0)
    AlbertForPreTraining(preset("micro", vocab_size=tok.vocab_size)).save_pretrained(root / "model")
    tok.save(root / "model")
    return root


def _one_run(root, tmp_path, task: str, start: str, name: str) -> tuple[list[float], dict]:
    import json

    from albert.finetune import run

    # Whatever ran before in this process (here: the first run) must not matter, as between two
    # separate commands: a non-deterministic seed for torch's global generator.
    torch.seed()
    origin = {"model": str(root / "model")} if start == "model" else {"preset": "micro", "vocab_size": 100}
    out = tmp_path / name
    run(FinetuneArgs(task=task, **origin, data_dir=str(root / task), output_dir=str(out), max_seq_length=64,
                     batch_size=4, max_steps=4, eval_every=2, log_every=1, seed=7, device="cpu", progress=False))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    results = json.loads((out / "results.json").read_text())
    return [r["loss"] for r in log if r["type"] == "train"], {k: results[k] for k in ("best", "final", "best_step")}


@pytest.mark.parametrize("start", ["model", "preset"])
@pytest.mark.parametrize("task", ["ner", "sst2", "stsb", "squad"])
def test_the_same_command_twice_gives_the_same_run(task_data, tmp_path, monkeypatch, task, start):
    """Issue 12: the new head of a --model run was initialised before any seed was set, so two
    identical commands differed from step 1 (2.2677 vs 2.3184)."""
    monkeypatch.setenv("ALBERT_CACHE", str(task_data / "cache"))
    first_losses, first = _one_run(task_data, tmp_path, task, start, "first")
    again_losses, again = _one_run(task_data, tmp_path, task, start, "again")
    assert len(first_losses) == 4 and first_losses == again_losses
    assert first == again and first["final"]


def test_train_py_of_a_sweeps_best_config_reproduces_the_trial(task_data, tmp_path):
    """Issue 12: a sweep's best trial scored 0.0391 and `train.py best/config.json` 0.0270. The
    trial ran as three jobs (rungs 1, 2 and 4 steps, resumed from its checkpoints); the retrain
    runs the 4 steps at once, and must land on the same weights and the same score."""
    import json
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "ALBERT_CACHE": str(task_data / "cache"), "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    sweep = tmp_path / "sweep"
    tune = subprocess.run([sys.executable, "tune.py", "--task", "stsb", "--model", task_data / "model", "--data-dir",
                           task_data / "stsb", "--max-seq-length", "64", "--budget", "2", "--max-resource", "4",
                           "--eta", "2", "--workers", "1", "--seed", "3", "--device", "cpu", "--no-progress",
                           "--output-dir", sweep], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert tune.returncode == 0, tune.stderr[-3000:]
    best = json.loads((sweep / "best" / "best.json").read_text())
    assert best["resource"] == 4
    # With the thread count of the sweep's one worker (albert/tune/sweep/runner.py: cores / workers): CPU
    # kernels sum in an order that depends on it, which moves weights by ~1e-7 of their size.
    threads = str(max(1, (os.cpu_count() or 1) // 1))
    retrain = subprocess.run([sys.executable, "train.py", sweep / "best" / "config.json"], cwd=repo,
                             env={**env, "OMP_NUM_THREADS": threads}, capture_output=True, text=True, timeout=900)
    assert retrain.returncode == 0, retrain.stderr[-3000:]
    again = json.loads((sweep / "best" / "retrain" / "results.json").read_text())
    assert again["steps"] == 4 and again["final"][again["main_metric"]] == best["metric"]
    trial, rerun = (torch.load(d / "checkpoints" / "step-4" / "model.pt")
                    for d in (sweep / "best", sweep / "best" / "retrain"))
    assert trial.keys() == rerun.keys() and all(torch.equal(trial[k], rerun[k]) for k in trial)


# ----- default resolution (albert/defaults.py holds the rules; test_defaults.py their numbers)

def _resolve(model_config=None, task="sst2", **options):
    from albert.finetune import resolve
    from albert.tasks import get_task

    start = {} if model_config is not None else {"preset": "tiny"}
    return resolve(FinetuneArgs(task=task, **{"model": "m"} if model_config is not None else {}, **start, **options),
                   get_task(task), model_config)


def test_a_random_initialisation_gets_a_rate_that_moves_it():
    args, notes = _resolve(max_steps=300)
    assert args.lr == 1e-3 and args.warmup == 0.06 and args.max_seq_length == 512 and args.batch_size == 32
    assert "lr 0.001 (random initialisation of hidden size 128)" in notes[0] and "warmup 0.06" in notes[0]


def test_a_published_size_keeps_the_papers_table():
    args, notes = _resolve(preset("base", num_labels=2))
    assert args.lr == 1e-5 and args.warmup == 0.06 and args.max_steps == 20935
    assert "lr 1e-05 (the task's (the ALBERT paper's table))" in notes[0] and "20935 steps" in notes[0]


def test_a_small_pretrained_model_gets_its_size_rule_and_its_positions():
    args, notes = _resolve(preset("tiny", max_position_embeddings=128), task="ner")
    assert args.lr == 1e-3 and args.warmup == 0.1 and args.max_seq_length == 128
    # The measured length for the CPU recipe's model (README), not the task's 3 epochs.
    assert (args.max_steps, args.epochs) == (1000, None)
    assert "1000 steps (a pretrained model of hidden size 128)" in notes[0]
    assert notes[-1].startswith("note: max_seq_length 128: the task's default 256 cut to the model's")


def test_what_the_user_gives_wins_and_is_not_reported_as_a_default():
    args, notes = _resolve(preset("tiny", max_position_embeddings=128), task="ner", lr=3e-4, warmup=50,
                           max_seq_length=64, batch_size=8, max_steps=10)
    assert (args.lr, args.warmup, args.max_seq_length, args.batch_size, args.max_steps) == (3e-4, 50, 64, 8, 10)
    assert notes == []
