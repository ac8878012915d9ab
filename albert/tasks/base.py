"""What every fine-tuning task provides: data, features, batches, evaluation and predictions.

A task turns raw rows (from `albert.data.*`) into model features once, caches them on disk, and
scores a model on them. The trainer and the tuner only talk to this interface.
"""
from __future__ import annotations

import hashlib
import json
import logging
from functools import partial
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import numpy as np
import torch
from datasets import Dataset, DatasetDict, load_from_disk

from ..atomic import atomic_dir
from ..data.batching import pad_batch
from ..errors import AlbertError
from ..train.precision import autocast

log = logging.getLogger(__name__)

INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
PAD_MULTIPLE = 8  # batches are padded to a multiple of this length


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of the tokenizer's model file and settings: a new vocabulary means new features."""
    own = getattr(tokenizer, "fingerprint", None)
    if own is not None:
        return own() if callable(own) else str(own)
    proto = getattr(tokenizer, "_proto", None)
    if proto is None:
        raise AlbertError(f"cannot fingerprint tokenizer of type {type(tokenizer).__name__} for the feature cache")
    h = hashlib.sha256(proto)
    h.update(repr((getattr(tokenizer, "do_lower_case", None), getattr(tokenizer, "keep_accents", None))).encode())
    return h.hexdigest()


def split_of(data: Dataset | DatasetDict, split: str = "validation") -> Dataset:
    """Evaluation takes one split; accept the whole DatasetDict too and use its `split`."""
    if isinstance(data, DatasetDict):
        if split not in data:
            raise AlbertError(f"no {split!r} split among {', '.join(data)}")
        return data[split]
    return data


class Task:
    """Base class; subclasses fill in the class attributes and the `encode` / scoring methods."""

    name: str
    head: str  # "sequence" | "token" | "span": which Albert*For* model it needs
    main_metric: str
    greater_is_better: bool = True
    # Fine-tuning defaults: lr, batch_size, max_steps or epochs, warmup (an int is a number of
    # steps, a float below 1 a fraction of all steps), dropout (classifier), max_seq_length, weight_decay.
    defaults: dict[str, Any]
    version: ClassVar[int] = 1  # bump when featurize changes, to invalidate cached features
    model_keys: ClassVar[tuple[str, ...]] = ("input_ids", "token_type_ids", "labels")
    prediction_suffix: ClassVar[str] = ".txt"  # extension of the file write_predictions writes

    def __init__(self) -> None:
        self.defaults = dict(type(self).defaults)  # a caller may edit its copy, never the class's

    # ----- data

    def load(self, data_dir: str | None = None, train_file: str | None = None,
             dev_file: str | None = None) -> DatasetDict:
        raise NotImplementedError

    def num_labels(self, raw: DatasetDict) -> int:
        names = self.label_names(raw)
        return len(names) if names is not None else 1

    def label_names(self, raw: DatasetDict) -> list[str] | None:
        return None

    def texts(self, split: Dataset) -> Iterator[str]:
        """The raw text of a split, e.g. to train a tokenizer on when none is given."""
        raise NotImplementedError

    # ----- features

    def feature_params(self) -> dict[str, Any]:
        """Settings besides max_seq_length that change the features (SQuAD's doc_stride...)."""
        return {}

    def encode(self, batch: dict[str, list], indices: list[int], tokenizer: Any, max_seq_length: int,
               context: Any) -> dict[str, list]:
        """Tokenize a batch of raw rows into feature rows (a row may give several features)."""
        raise NotImplementedError

    def encode_context(self, raw: DatasetDict) -> Any:
        """Whatever `encode` needs from the whole data set (e.g. the label list)."""
        return None

    def cache_key(self, raw: DatasetDict, tokenizer: Any, max_seq_length: int) -> str:
        # The raw splits' fingerprints hash their content (for local files: what was parsed from
        # them), so edited data files or a subsample give new features, and equal data reuses them.
        parts = {
            "task": self.name, "version": self.version, "max_seq_length": max_seq_length,
            "params": self.feature_params(), "tokenizer": tokenizer_fingerprint(tokenizer),
            "data": {split: ds._fingerprint for split, ds in sorted(raw.items())},
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]

    def featurize(self, raw: DatasetDict, tokenizer: Any, max_seq_length: int,
                  cache_dir: str | Path | None = None) -> DatasetDict:
        """Tokenized features of every split, from `cache_dir` when they were made before."""
        key = self.cache_key(raw, tokenizer, max_seq_length)
        target = Path(cache_dir) / f"{self.name}-{key}" if cache_dir is not None else None
        if target is not None and (target / "dataset_dict.json").is_file():
            log.info("features for %s from cache %s", self.name, target)
            return load_from_disk(str(target))
        context = self.encode_context(raw)
        encode = partial(self.encode, tokenizer=tokenizer, max_seq_length=max_seq_length, context=context)
        features = DatasetDict({
            split: ds.map(encode, batched=True, with_indices=True, remove_columns=ds.column_names,
                          keep_in_memory=True, new_fingerprint=f"{key}-{split}",
                          desc=f"tokenizing {self.name} {split}")
            for split, ds in raw.items()
        })
        if target is None:
            return features
        # replace=False: a parallel tuning trial that saved the same features first is as good as us.
        with atomic_dir(target, replace=False) as tmp:
            features.save_to_disk(str(tmp))
        return load_from_disk(str(target))

    # ----- batches

    def collate(self, rows: list[dict], *, epoch: int = 0, indices: Sequence[int] = ()) -> dict[str, torch.Tensor]:
        """Model inputs and targets, padded to the batch's longest row rounded up to a multiple of 8
        (tensor-core tiles, and fewer shapes for a compiled model; length-grouped batches keep the
        extra padding small), without an attention mask when no row is padded (the model then
        takes SDPA's flash kernel). (`epoch` and `indices`, which the trainer always passes, are not
        needed: nothing here is random.)"""
        return pad_batch([{k: r[k] for k in self.model_keys if k in r} for r in rows], multiple_of=PAD_MULTIPLE,
                         mask_unpadded=False)

    def lengths(self, features: Dataset) -> list[int]:
        return list(features["length"])

    # ----- evaluation

    def predict_raw(self, model: torch.nn.Module, features: Dataset, outputs: Sequence[str], *,
                    token_level: bool, batch_size: int = 64, device: str | torch.device | None = None,
                    precision: str = "fp32",
                    reduce: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, list[np.ndarray]]:
        """Run the model over `features` and return each of `outputs` per feature row, in row order.

        Batches are formed longest-first so that each one pads little. Token-level outputs are cut
        to each row's own length; `reduce` (e.g. argmax) is applied to each batch before it is kept.
        """
        device = torch.device(device) if device is not None else next(model.parameters()).device
        amp = autocast(precision, device)
        lengths = np.asarray(self.lengths(features))
        order = np.argsort(-lengths, kind="stable")
        inputs = features.select_columns([k for k in ("input_ids", "token_type_ids") if k in features.column_names])
        results: dict[str, list] = {name: [None] * len(features) for name in outputs}
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), amp:
                for start in range(0, len(order), batch_size):
                    idx = order[start:start + batch_size].tolist()
                    rows = as_rows(inputs[idx])
                    # The task's own collate: a multiple-choice row holds one sequence per option.
                    batch = {k: v.to(device) for k, v in self.collate(rows).items() if k in INPUT_KEYS}
                    out = model(**batch)
                    for name in outputs:
                        values = getattr(out, name).float().cpu().numpy()
                        if reduce is not None:
                            values = reduce(values)
                        for j, i in enumerate(idx):
                            results[name][i] = values[j, : lengths[i]] if token_level else values[j]
        finally:
            model.train(was_training)
        return results

    def evaluate(self, model: torch.nn.Module, features: Dataset | DatasetDict, raw: Dataset | DatasetDict, *,
                 batch_size: int = 64, device: str | torch.device | None = None,
                 precision: str = "fp32") -> tuple[dict[str, float], Any]:
        """(metrics, predictions) of `model` on one split (the "validation" split of a DatasetDict)."""
        raise NotImplementedError

    def metric_names(self, raw: DatasetDict) -> tuple[str, ...]:
        """The names `evaluate` reports (what --metric may choose from), known before any
        training: a --metric it will not report is refused before anything is written."""
        raise NotImplementedError

    def write_predictions(self, predictions: Any, raw: Dataset | DatasetDict, path: str | Path) -> None:
        raise NotImplementedError

    def report(self, metrics: dict[str, float], predictions: Any) -> str | None:
        """A human-readable table of an evaluation, where the metrics alone say too little (NER)."""
        return None


def as_rows(columns: dict[str, Sequence]) -> list[dict]:
    """{column: values} -> [{column: value}]."""
    return [dict(zip(columns, values)) for values in zip(*columns.values())]
