"""The fine-tuning recipe's own logic (its end-to-end runs are in test_cli.py, train/test_checkpoints.py
and test_kill_resume.py): the final predictions come from best/, on the training device."""
from __future__ import annotations

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
    assert args.lr == 1e-3 and args.warmup == 0.1 and args.max_seq_length == 128 and args.epochs == 3
    assert notes[-1].startswith("note: max_seq_length 128: the task's default 256 cut to the model's")


def test_what_the_user_gives_wins_and_is_not_reported_as_a_default():
    args, notes = _resolve(preset("tiny", max_position_embeddings=128), task="ner", lr=3e-4, warmup=50,
                           max_seq_length=64, batch_size=8, max_steps=10)
    assert (args.lr, args.warmup, args.max_seq_length, args.batch_size, args.max_steps) == (3e-4, 50, 64, 8, 10)
    assert notes == []
