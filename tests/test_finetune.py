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
