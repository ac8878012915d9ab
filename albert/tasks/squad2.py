"""SQuAD v2.0: SQuAD v1.1's windows and spans, plus questions that have no answer.

An unanswerable question (and an answerable one whose answer lies outside a window) trains the
window's [CLS] position as its start and end, so [CLS]'s start + end logit is the "null score".
A question is answered "" (no answer) when its null score (the lowest over its windows, as
BERT's run_squad) beats its best span's score by more than `null_score_diff_threshold`; the
difference is kept per question as its no-answer score (`na_probs`, the official script's
na_prob.json), from which the official metric also finds the best threshold.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from ..atomic import write_json
from ..data.squad import load_squad
from ..metrics import MAIN_METRIC, squad_v2_metrics
from .base import split_of
from .squad import SquadTask, Words, gold_answers

# The no-answer score of a question none of whose windows holds a valid span (an empty context):
# far above any threshold, and still a number JSON can write.
NO_SPAN = 1e6


@dataclass
class Squad2Predictions:
    answers: dict[str, str]  # question id -> answer text, "" for no answer
    na_probs: dict[str, float]  # question id -> null score minus best span score


class Squad2Task(SquadTask):
    name = "squad2"
    main_metric = MAIN_METRIC["squad2"]
    # Lan et al. 2020, appendix table "Hyperparameters for ALBERT in downstream tasks" (SQuAD v2.0).
    defaults = {"lr": 3e-5, "batch_size": 48, "max_steps": 8144, "warmup": 814, "dropout": 0.1,
                "max_seq_length": 512, "weight_decay": 0.01}

    def __init__(self, null_score_diff_threshold: float = 0.0, **window_options):
        super().__init__(**window_options)
        self.null_score_diff_threshold = null_score_diff_threshold

    def load(self, data_dir: str | None = None, train_file: str | None = None,
             dev_file: str | None = None) -> DatasetDict:
        return load_squad(data_dir, train_file=train_file, dev_file=dev_file, version=2)

    def decode(self, features: Dataset, raw: Dataset, start_logits: list[np.ndarray],
               end_logits: list[np.ndarray]) -> Squad2Predictions:
        best = self.best_spans(features, start_logits, end_logits)
        null: dict[int, float] = {}
        for f, example in enumerate(features["example_index"]):
            score = float(start_logits[f][0] + end_logits[f][0])
            null[example] = min(score, null.get(example, score))
        answers, na_probs = {}, {}
        for i, (qid, context) in enumerate(zip(raw["id"], raw["context"])):
            diff = null[i] - best[i][0] if i in best else NO_SPAN
            na_probs[qid] = diff
            if diff > self.null_score_diff_threshold:
                answers[qid] = ""
            else:
                _, first, last = best[i]
                answers[qid] = Words.split(context).text(first, last, context)
        return Squad2Predictions(answers, na_probs)

    def evaluate(self, model: torch.nn.Module, features: Dataset | DatasetDict, raw: Dataset | DatasetDict, *,
                 batch_size: int = 64, device: str | torch.device | None = None,
                 precision: str = "fp32") -> tuple[dict[str, float], Squad2Predictions]:
        """The official v2.0 metric (exact, f1, HasAns_*, NoAns_*, best_* with thresholds)."""
        features, split = split_of(features), split_of(raw)
        logits = self.predict_raw(model, features, ("start_logits", "end_logits"), token_level=True,
                                  batch_size=batch_size, device=device, precision=precision)
        predictions = self.decode(features, split, logits["start_logits"], logits["end_logits"])
        metrics = squad_v2_metrics(predictions.answers, gold_answers(split), predictions.na_probs)
        return {k: float(v) for k, v in metrics.items()}, predictions

    def write_predictions(self, predictions: Squad2Predictions, raw: Dataset | DatasetDict,
                          path: str | Path) -> None:
        """predictions.json and, beside it, predictions_na_probs.json: what the official
        evaluate-v2.0.py reads as its prediction file and its --na-prob-file."""
        path = Path(path)
        write_json(path, predictions.answers)
        write_json(path.with_name(f"{path.stem}_na_probs.json"), predictions.na_probs)
