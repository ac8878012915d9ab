"""GLUE sentence and sentence-pair tasks: one [CLS] prediction per example (STS-B: a regression)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from ..atomic import atomic_write
from ..data.glue import layout, load_glue
from ..metrics import MAIN_METRIC, cross_entropy, glue_metric_names, glue_metrics, mean_squared_error
from .base import Task, split_of


def _defaults(lr: float, batch_size: int, dropout: float, max_steps: int, warmup: int) -> dict[str, Any]:
    return {"lr": lr, "batch_size": batch_size, "max_steps": max_steps, "warmup": warmup, "dropout": dropout,
            "max_seq_length": 512, "weight_decay": 0.01}


# Lan et al. 2020, appendix table "Hyperparameters for ALBERT in downstream tasks"; lr, batch size,
# steps and warmup steps match google-research/albert run_glue.sh (which has no WNLI: its row is
# the paper's table alone).
GLUE_DEFAULTS = {
    "cola": _defaults(1e-5, 16, 0.0, 5336, 320),
    "sst2": _defaults(1e-5, 32, 0.0, 20935, 1256),
    "mrpc": _defaults(2e-5, 32, 0.0, 800, 200),
    "rte": _defaults(3e-5, 32, 0.1, 800, 200),
    "stsb": _defaults(2e-5, 16, 0.1, 3598, 214),
    "qnli": _defaults(1e-5, 32, 0.0, 33112, 1986),
    "mnli": _defaults(3e-5, 128, 0.0, 10000, 1000),
    "qqp": _defaults(5e-5, 128, 0.1, 14000, 1000),
    "wnli": _defaults(2e-5, 16, 0.1, 2000, 250),
}


class GlueTask(Task):
    head = "sequence"
    model_keys = ("input_ids", "token_type_ids", "labels")
    prediction_suffix = ".tsv"

    def __init__(self, name: str):
        self.name = name
        self.layout = layout(name)
        self.main_metric = MAIN_METRIC[name]
        self.defaults = dict(GLUE_DEFAULTS[name])  # per instance: one class serves every GLUE task

    @property
    def is_regression(self) -> bool:
        return self.layout.label_names is None

    def load(self, data_dir: str | None = None, train_file: str | None = None,
             dev_file: str | None = None) -> DatasetDict:
        return load_glue(self.name, data_dir, train_file=train_file, dev_file=dev_file)

    def label_names(self, raw: DatasetDict | None = None) -> list[str] | None:
        names = self.layout.label_names
        return list(names) if names is not None else None

    def texts(self, split: Dataset) -> Iterator[str]:
        for first, second in zip(split["sentence1"], split["sentence2"]):
            yield first
            if second is not None:
                yield second

    def encode(self, batch: dict[str, list], indices: list[int], tokenizer: Any, max_seq_length: int,
               context: Any) -> dict[str, list]:
        out: dict[str, list] = {"input_ids": [], "token_type_ids": [], "labels": [], "length": []}
        for first, second, label in zip(batch["sentence1"], batch["sentence2"], batch["label"]):
            encoded = tokenizer(first, second, max_length=max_seq_length)
            out["input_ids"].append(encoded["input_ids"])
            out["token_type_ids"].append(encoded["token_type_ids"])
            out["labels"].append(float(label) if self.is_regression else int(label))
            out["length"].append(len(encoded["input_ids"]))
        return out

    def evaluate(self, model: torch.nn.Module, features: Dataset | DatasetDict, raw: Dataset | DatasetDict, *,
                 batch_size: int = 64, device: str | torch.device | None = None,
                 precision: str = "fp32") -> tuple[dict[str, float], np.ndarray]:
        features = split_of(features)
        logits = np.stack(self.predict_raw(model, features, ("logits",), token_level=False, batch_size=batch_size,
                                           device=device, precision=precision)["logits"])
        labels = np.asarray(features["labels"])
        preds = logits[:, 0] if self.is_regression else logits.argmax(-1)
        # The validation loss beside the task's metrics: it still ranks models whose predictions
        # are all one class (a tuner's first rung), where accuracy or MCC cannot.
        loss = mean_squared_error(preds, labels) if self.is_regression else cross_entropy(logits, labels)
        metrics = glue_metrics(self.name, preds, labels)
        if len(self.layout.dev_sets) > 1:  # MNLI: each dev set's metrics too (accuracy_matched, ...)
            dev_set = np.asarray([row_id.split("-", 1)[0] for row_id in split_of(raw)["id"]])
            for name, _ in self.layout.dev_sets:
                if (dev_set == name).any():
                    mask = dev_set == name
                    metrics.update({f"{k}_{name}": v for k, v in glue_metrics(self.name, preds[mask], labels[mask]).items()})
        return {**metrics, "loss": loss}, preds

    def metric_names(self, raw: DatasetDict) -> tuple[str, ...]:
        return (*glue_metric_names(self.name), "loss")

    def write_predictions(self, predictions: np.ndarray, raw: Dataset | DatasetDict, path: str | Path) -> None:
        """GLUE's submission layout: "index<TAB>prediction", label names for RTE/QNLI, scores for STS-B."""
        split = split_of(raw)
        names = self.layout.label_names
        with atomic_write(path) as f:
            f.write("index\tprediction\n")
            for row_id, pred in zip(split["id"], predictions):
                if self.is_regression:
                    value = f"{float(pred):.3f}"
                elif self.layout.labels_are_names:
                    value = names[int(pred)]
                else:
                    value = str(int(pred))
                f.write(f"{row_id}\t{value}\n")
