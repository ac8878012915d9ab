"""CoNLL-2003 tagging, one tag per word predicted on the word's first subword: named entities
(`ner`, entity F1), chunks (`chunk`, chunk F1, as CoNLL-2000) and parts of speech (`pos`, word
accuracy); the three read the same files' columns."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from datasets import Dataset, DatasetDict

from ..atomic import atomic_write
from ..data.conll import label_list, load_conll
from ..errors import AlbertError
from ..metrics import MAIN_METRIC, accuracy, cross_entropy, format_ner_report, ner_scores
from .base import Task, split_of

log = logging.getLogger(__name__)
IGNORE = -100  # label of positions the loss skips: specials and non-first subwords


@dataclass
class NerPredictions:
    tags: list[list[str]]  # one predicted tag per word of every sentence
    report: str  # the per-type precision/recall/F1 table
    words_not_predicted: int  # words cut off by max_seq_length (or with no subwords): predicted "O"


class NerTask(Task):
    name = "ner"
    column = "ner"  # the CoNLL column the tags come from (albert.data.conll.COLUMNS)
    # A dev tag the training file lacks: an error for NER (a fixed set of 9: a typo), scored as
    # gold but left out of the loss for chunks and POS (CoNLL-2003's dev set has 2 words tagged
    # I-PRT, a chunk tag its training file never uses).
    unseen_tags_scored = False
    head = "token"
    main_metric = MAIN_METRIC["ner"]
    # Not in the ALBERT paper; the usual BERT-style CoNLL-2003 recipe.
    defaults = {"lr": 5e-5, "batch_size": 32, "epochs": 3, "warmup": 0.1, "dropout": 0.1,
                "max_seq_length": 256, "weight_decay": 0.01}
    model_keys = ("input_ids", "token_type_ids", "labels")
    prediction_suffix = ".txt"

    def load(self, data_dir: str | None = None, train_file: str | None = None,
             dev_file: str | None = None) -> DatasetDict:
        return load_conll(data_dir, train_file=train_file, dev_file=dev_file, column=self.column,
                          unseen_tags_scored=self.unseen_tags_scored)

    def label_names(self, raw: DatasetDict) -> list[str]:
        if "train" not in raw:
            raise AlbertError(f"the {self.name} label list comes from the training split, and there is none")
        return label_list(raw["train"])

    def texts(self, split: Dataset) -> Iterator[str]:
        for tokens in split["tokens"]:
            yield " ".join(tokens)

    def encode_context(self, raw: DatasetDict) -> dict[str, int]:
        return {tag: i for i, tag in enumerate(self.label_names(raw))}

    def encode(self, batch: dict[str, list], indices: list[int], tokenizer: Any, max_seq_length: int,
               context: dict[str, int]) -> dict[str, list]:
        out: dict[str, list] = {"input_ids": [], "token_type_ids": [], "labels": [], "word_ids": [], "length": []}
        for tokens, tags in zip(batch["tokens"], batch["tags"]):
            ids, word_of = tokenizer.encode_words(tokens)
            room = max_seq_length - 2  # [CLS] ... [SEP]
            ids, word_of = ids[:room], word_of[:room]
            input_ids, token_type_ids = tokenizer.build_inputs(ids)
            labels = [IGNORE] * len(input_ids)
            word_ids = [-1] * len(input_ids)  # the word whose tag this position predicts
            previous = -1
            for pos, word in enumerate(word_of, start=1):
                if word != previous:
                    tag = tags[word]
                    if tag not in context and not self.unseen_tags_scored:
                        raise AlbertError(f"{self.name} tag {tag!r} is not in the label list {list(context)}")
                    labels[pos], word_ids[pos] = context.get(tag, IGNORE), word
                previous = word
            out["input_ids"].append(input_ids)
            out["token_type_ids"].append(token_type_ids)
            out["labels"].append(labels)
            out["word_ids"].append(word_ids)
            out["length"].append(len(input_ids))
        return out

    def decode(self, features: Dataset, raw: Dataset, predicted_ids: list[np.ndarray],
               names: list[str]) -> tuple[list[list[str]], int]:
        """Per-word tags from per-position label ids; words without a position get "O"."""
        tags, missing = [], 0
        for word_ids, pred, tokens in zip(features["word_ids"], predicted_ids, raw["tokens"]):
            sentence = ["O"] * len(tokens)
            covered = 0
            for pos, word in enumerate(word_ids):
                if word >= 0:
                    sentence[word] = names[int(pred[pos])]
                    covered += 1
            missing += len(tokens) - covered
            tags.append(sentence)
        return tags, missing

    def evaluate(self, model: torch.nn.Module, features: Dataset | DatasetDict, raw: Dataset | DatasetDict, *,
                 batch_size: int = 64, device: str | torch.device | None = None,
                 precision: str = "fp32") -> tuple[dict[str, float], NerPredictions]:
        names = _names_of(model, raw)
        features, split = split_of(features), split_of(raw)
        logits = self.predict_raw(model, features, ("logits",), token_level=True, batch_size=batch_size,
                                  device=device, precision=precision)["logits"]
        tags, missing = self.decode(features, split, [x.argmax(-1) for x in logits], names)
        if missing:
            log.warning("%d words fell outside max_seq_length and were predicted O", missing)
        metrics, report = self.score(list(split["tags"]), tags)
        metrics["words_not_predicted"] = float(missing)
        # The validation loss: it still ranks models that tag every word O (F1 0).
        metrics["loss"] = cross_entropy(logits, features["labels"], ignore=IGNORE)
        return metrics, NerPredictions(tags, report, missing)

    def score(self, gold: list[list[str]], predicted: list[list[str]]) -> tuple[dict[str, float], str]:
        """The metrics of predicted tags against gold ones, and their report: span scores."""
        scores = ner_scores(gold, predicted)
        report = format_ner_report(scores)
        log.debug("%s scores:\n%s", self.name, report)
        return {"precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
                **{f"f1_{kind}": s["f1"] for kind, s in scores["per_type"].items()}}, report

    def metric_names(self, raw: DatasetDict) -> tuple[str, ...]:
        # seqeval's entity types: the tags' names without their B-/I- prefix.
        kinds = sorted({tag.split("-", 1)[-1] for tag in self.label_names(raw) if tag != "O"})
        return ("precision", "recall", "f1", *(f"f1_{kind}" for kind in kinds), "words_not_predicted", "loss")

    def report(self, metrics: dict[str, float], predictions: NerPredictions) -> str:
        """The per-type precision/recall/F1 table of an evaluation."""
        note = f"\n({predictions.words_not_predicted} words beyond max_seq_length were predicted O)" \
            if predictions.words_not_predicted else ""
        return predictions.report + note

    def write_predictions(self, predictions: NerPredictions, raw: Dataset | DatasetDict, path: str | Path) -> None:
        """CoNLL-style "token gold predicted" lines, a blank line after every sentence."""
        split = split_of(raw)
        with atomic_write(path) as f:
            for tokens, gold, pred in zip(split["tokens"], split["tags"], predictions.tags):
                for token, g, p in zip(tokens, gold, pred):
                    f.write(f"{token} {g} {p}\n")
                f.write("\n")


def _names_of(model: torch.nn.Module, raw: Dataset | DatasetDict) -> list[str]:
    """The label list featurize used (from the training split), else the model's id2label."""
    if isinstance(raw, DatasetDict) and "train" in raw:
        return label_list(raw["train"])
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if id2label:
        return [id2label[i] for i in range(len(id2label))]
    raise AlbertError("cannot name the predicted tags: there is no training split "
                      "and the model config has no id2label")


class ChunkTask(NerTask):
    """Chunking (CoNLL-2003's third column, IOB2): scored as NER is, by exact spans."""
    name = "chunk"
    column = "chunk"
    unseen_tags_scored = True
    main_metric = MAIN_METRIC["chunk"]


class PosTask(NerTask):
    """Part-of-speech tagging (CoNLL-2003's second column, 45 Penn Treebank tags): word accuracy."""
    name = "pos"
    column = "pos"
    unseen_tags_scored = True
    main_metric = MAIN_METRIC["pos"]

    def score(self, gold: list[list[str]], predicted: list[list[str]]) -> tuple[dict[str, float], str]:
        """Word accuracy, and its report."""
        flat_gold, flat_predicted = [t for seq in gold for t in seq], [t for seq in predicted for t in seq]
        value = accuracy(flat_gold, flat_predicted)
        return {"accuracy": value}, f"accuracy {value:.4f} over {len(flat_gold)} words"

    def metric_names(self, raw: DatasetDict) -> tuple[str, ...]:
        return ("accuracy", "words_not_predicted", "loss")
