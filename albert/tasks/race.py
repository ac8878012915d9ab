"""RACE: multiple choice over an article, a question and four options; one score per option.

Each option makes one sequence, `[CLS] article [SEP] question-with-option [SEP]`, as
google-research/albert's race_utils: a question with a blank ("_") gets the option in the blank,
others get it appended; the question part keeps its last `max_qa_length` tokens (at most half of
max_seq_length) and the article is cut to fit. The model (`AlbertForMultipleChoice`) scores every option from its pooled output.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from ..atomic import atomic_write
from ..data.batching import pad_batch
from ..data.race import LETTERS, LEVELS, load_race
from ..errors import AlbertError
from ..metrics import MAIN_METRIC, accuracy, cross_entropy
from .base import PAD_MULTIPLE, Task, split_of


class RaceTask(Task):
    name = "race"
    head = "choice"
    main_metric = MAIN_METRIC["race"]
    # Lan et al. 2020, appendix table (RACE: batch 32, 12000 steps, 1000 warmup, 512 tokens), with
    # the learning rate of google-research/albert's README for the v2 models (albert-base-v2 and
    # up): 1e-5 and no dropout, as the paper's rate made the v2 models diverge.
    defaults = {"lr": 1e-5, "batch_size": 32, "max_steps": 12000, "warmup": 1000, "dropout": 0.0,
                "max_seq_length": 512, "weight_decay": 0.01}
    model_keys = ("input_ids", "token_type_ids", "labels")
    prediction_suffix = ".tsv"

    def __init__(self, max_qa_length: int = 128):
        super().__init__()
        self.max_qa_length = max_qa_length

    def load(self, data_dir: str | None = None, train_file: str | None = None,
             dev_file: str | None = None) -> DatasetDict:
        """RACE's train/ and dev/ directories (`dev_file` may name another, e.g. RACE/test)."""
        return load_race(data_dir, train_dir=train_file, dev_dir=dev_file)

    def texts(self, split: Dataset) -> Iterator[str]:
        yield from dict.fromkeys(split["article"])  # each article once, not once per question
        for question, options in zip(split["question"], split["options"]):
            yield question
            yield from options

    def feature_params(self) -> dict[str, Any]:
        return {"max_qa_length": self.max_qa_length}

    def encode(self, batch: dict[str, list], indices: list[int], tokenizer: Any, max_seq_length: int,
               context: Any) -> dict[str, list]:
        out: dict[str, list] = {"input_ids": [], "token_type_ids": [], "labels": [], "length": []}
        articles: dict[str, list[int]] = {}  # the questions of one article share its tokens
        for article, question, options, label in zip(batch["article"], batch["question"], batch["options"],
                                                      batch["label"]):
            if article not in articles:
                articles[article] = tokenizer.encode(article)
            ids, types = [], []
            for option in options:
                qa = question.replace("_", option) if "_" in question else f"{question} {option}"
                # At most half the sequence, so that a short max_seq_length still sees the article.
                qa_ids = tokenizer.encode(qa)[-min(self.max_qa_length, max_seq_length // 2):]
                room = max_seq_length - len(qa_ids) - 3  # [CLS] article [SEP] qa [SEP]
                if room <= 0:
                    raise AlbertError(f"max_seq_length {max_seq_length} leaves no room for the article after a "
                                      f"{len(qa_ids)}-token question and option")
                input_ids, token_type_ids = tokenizer.build_inputs(articles[article][:room], qa_ids)
                ids.append(input_ids)
                types.append(token_type_ids)
            out["input_ids"].append(ids)
            out["token_type_ids"].append(types)
            out["labels"].append(int(label))
            out["length"].append(max(len(x) for x in ids))
        return out

    def collate(self, rows: list[dict], *, epoch: int = 0, indices: Sequence[int] = ()) -> dict[str, torch.Tensor]:
        """(rows, options, T) inputs: every option of every row padded to the batch's longest
        sequence (rounded up to a multiple of 8); labels (rows,) where the rows have them."""
        options = len(rows[0]["input_ids"])
        flat = [{k: r[k][o] for k in ("input_ids", "token_type_ids") if k in r}
                for r in rows for o in range(options)]
        batch = {k: v.view(len(rows), options, -1) for k, v in
                 pad_batch(flat, multiple_of=PAD_MULTIPLE, mask_unpadded=False).items()}
        if "labels" in rows[0]:
            batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.long)
        return batch

    def evaluate(self, model: torch.nn.Module, features: Dataset | DatasetDict, raw: Dataset | DatasetDict, *,
                 batch_size: int = 64, device: str | torch.device | None = None,
                 precision: str = "fp32") -> tuple[dict[str, float], np.ndarray]:
        """Accuracy over all questions and over the middle- and high-school parts, and the loss."""
        features, split = split_of(features), split_of(raw)
        # Four sequences per row: a quarter of the rows per batch keeps the evaluation's memory.
        logits = np.stack(self.predict_raw(model, features, ("logits",), token_level=False,
                                           batch_size=max(1, batch_size // len(LETTERS)), device=device,
                                           precision=precision)["logits"])
        labels = np.asarray(features["labels"])
        preds = logits.argmax(-1)
        levels = np.asarray(split["level"])
        metrics = {"accuracy": accuracy(preds, labels)}
        for level in LEVELS:
            if (levels == level).any():
                metrics[f"accuracy_{level}"] = accuracy(preds[levels == level], labels[levels == level])
        return {**metrics, "loss": cross_entropy(logits, labels)}, preds

    def write_predictions(self, predictions: np.ndarray, raw: Dataset | DatasetDict, path: str | Path) -> None:
        """"id<TAB>level<TAB>prediction<TAB>answer" lines, the options as letters A-D."""
        split = split_of(raw)
        with atomic_write(path) as f:
            f.write("id\tlevel\tprediction\tanswer\n")
            for row_id, level, pred, label in zip(split["id"], split["level"], predictions, split["label"]):
                f.write(f"{row_id}\t{level}\t{LETTERS[int(pred)]}\t{LETTERS[int(label)]}\n")
