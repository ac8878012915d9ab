"""Fine-tuning: one task, one model, the shared training loop; everything a run needs to be
reproduced is written to its output directory.

Output directory:
  config.json    the fully resolved run configuration (`python train.py <dir>/config.json`)
  log.jsonl      every logged step and evaluation
  results.json   final and best metrics, steps, wall time, samples/s
  best/          the best model (HF format: config.json, model.safetensors, spiece.model)
  predictions.*  the best model's predictions on the validation split
  checkpoints/   resumable training state (`--resume`)
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .atomic import atomic_dir, write_json
from .cache import cache_root
from .config import PRESETS, preset
from .errors import AlbertError, require
from .runconfig import save_run_config
from .rundir import run_directory
from .train.options import TrainingOptions

log = logging.getLogger("albert")

HEAD_CLASSES = {"sequence": "AlbertForSequenceClassification", "token": "AlbertForTokenClassification",
                "span": "AlbertForQuestionAnswering"}


@dataclass(kw_only=True)
class FinetuneArgs(TrainingOptions):
    task: str
    model: str | None = None            # checkpoint directory or hub name
    preset: str | None = None           # random initialisation of this shape instead of --model
    tokenizer: str | None = None        # spiece.model or directory; default: the model's, else trained on the task
    vocab_size: int = 8000              # for a tokenizer trained on the task's text (random-init runs)
    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    max_seq_length: int | None = None
    dropout: float | None = None        # classifier dropout
    eval_batch_size: int = 64
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    predict: bool = True                # re-score the best model and write its predictions at the end
    # Dropouts of the encoder (the checkpoint's or the preset's value when unset), and the shape of a
    # --preset model (the preset's when unset): what a tuning sweep searches besides the optimizer.
    hidden_dropout: float | None = None
    attention_dropout: float | None = None
    num_hidden_layers: int | None = None
    hidden_size: int | None = None
    num_attention_heads: int | None = None
    intermediate_size: int | None = None
    embedding_size: int | None = None
    hidden_act: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        require(self.model is None or self.preset is None, "give --model or --preset, not both")
        require(self.preset is None or self.preset in PRESETS,
                f"--preset {self.preset!r} is unknown; choose one of {', '.join(PRESETS)}")
        require(self.eval_batch_size >= 1, f"--eval-batch-size must be >= 1, got {self.eval_batch_size}")
        require(self.dropout is None or 0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}")
        require(self.max_seq_length is None or self.max_seq_length >= 8,
                f"--max-seq-length must be >= 8, got {self.max_seq_length}")
        require(self.max_train_samples is None or self.max_train_samples >= 1, "--max-train-samples must be >= 1")
        require(self.max_eval_samples is None or self.max_eval_samples >= 1,
                f"--max-eval-samples must be >= 1, got {self.max_eval_samples}")
        require(self.vocab_size >= 100, f"--vocab-size must be >= 100, got {self.vocab_size}")
        for name in ("hidden_dropout", "attention_dropout"):
            value = getattr(self, name)
            require(value is None or 0 <= value < 1, f"--{name.replace('_', '-')} must be in [0, 1), got {value}")
        shape = [name for name in ARCHITECTURE if getattr(self, name) is not None]
        require(self.model is None or not shape, f"--{', --'.join(n.replace('_', '-') for n in shape)}: a --model "
                "checkpoint has its own architecture; architecture options apply to --preset runs")
        if self.preset is not None:
            preset(self.preset, **self.architecture())  # heads that do not divide the hidden size, ...: say so now

    def architecture(self) -> dict[str, Any]:
        """The model-config fields these options set (a --preset's shape, the encoder's dropouts)."""
        out = {name: getattr(self, name) for name in ARCHITECTURE if getattr(self, name) is not None}
        if self.hidden_dropout is not None:
            out["hidden_dropout_prob"] = self.hidden_dropout
        if self.attention_dropout is not None:
            out["attention_probs_dropout_prob"] = self.attention_dropout
        return out


# FinetuneArgs fields that are AlbertConfig fields of the same name: the shape of a --preset model.
ARCHITECTURE = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "embedding_size",
                "hidden_act")


def resolve(args: FinetuneArgs, task) -> FinetuneArgs:
    """Fill in the task's defaults (the ALBERT paper's fine-tuning table where it has one) and its
    metric."""
    d = task.defaults
    filled = dataclasses.replace(
        args,
        lr=args.lr if args.lr is not None else d["lr"],
        # `is not None`, not `or`: an explicit 0 must reach validate(), not become the default.
        batch_size=args.batch_size if args.batch_size is not None else d["batch_size"],
        max_seq_length=args.max_seq_length if args.max_seq_length is not None else d["max_seq_length"],
        warmup=args.warmup if args.warmup is not None else d["warmup"],
        weight_decay=args.weight_decay if args.weight_decay is not None else d.get("weight_decay", 0.0),
        dropout=args.dropout if args.dropout is not None else d.get("dropout", 0.1),
        metric=args.metric if args.metric is not None else task.main_metric,
        greater_is_better=args.greater_is_better if args.greater_is_better is not None else task.greater_is_better,
    )
    if filled.max_steps is None and filled.epochs is None:
        if d.get("max_steps"):
            filled.max_steps = d["max_steps"]
        else:
            filled.epochs = d.get("epochs", 3.0)
    if filled.preset is None and filled.model is None:
        raise AlbertError("give --model (a checkpoint directory or hub name) or --preset (random initialisation)")
    filled.validate()
    return filled


def load_tokenizer(args: FinetuneArgs, model_dir: Path | None, train_texts: Callable[[], Any]):
    """The model's own tokenizer, an explicit one, or (random-init runs) one trained on the task text."""
    from .tokenizer import Tokenizer, train_tokenizer

    if args.tokenizer:
        return Tokenizer.load(args.tokenizer)
    if model_dir is not None:
        if not (model_dir / "spiece.model").exists():
            raise AlbertError(f"{model_dir}: no spiece.model; pass --tokenizer")
        return Tokenizer.load(model_dir)
    texts = list(train_texts())
    key = hashlib.sha256(("\n".join(texts[:2000]) + f"|{len(texts)}|{args.vocab_size}").encode()).hexdigest()[:16]
    out = cache_root() / "tokenizers" / f"{args.task}-{key}"
    if (out / "spiece.model").exists():
        return Tokenizer.load(out)
    log.info("training a %d-piece SentencePiece vocabulary on the %s training text", args.vocab_size, args.task)
    return train_tokenizer(iter(texts), out, vocab_size=args.vocab_size)


def build_model(args: FinetuneArgs, task, raw, tokenizer, model_dir: Path | None):
    """The task's model: from the resolved checkpoint `model_dir`, else a random `--preset`."""
    from . import model as models

    cls = getattr(models, HEAD_CLASSES[task.head])
    num_labels = task.num_labels(raw)
    names = task.label_names(raw)
    id2label = {i: n for i, n in enumerate(names)} if names else None
    # Seeded for both starting points: a checkpoint's new head is initialised randomly too, and
    # the same command must give the same run (issue 12).
    torch.manual_seed(args.seed)
    if model_dir is not None:
        model = cls.from_pretrained(model_dir, num_labels=num_labels, id2label=id2label,
                                    classifier_dropout_prob=args.dropout, **args.architecture())
        if model.config.vocab_size < tokenizer.vocab_size:
            raise AlbertError(f"{args.model}: vocabulary of {model.config.vocab_size} is smaller than the "
                              f"tokenizer's {tokenizer.vocab_size}")
    else:
        # A random initialisation can have as many positions as the task asks for.
        positions = max(PRESETS[args.preset].get("max_position_embeddings", 512), args.max_seq_length)
        config = preset(args.preset, vocab_size=tokenizer.vocab_size, num_labels=num_labels, id2label=id2label,
                        classifier_dropout_prob=args.dropout, max_position_embeddings=positions,
                        **args.architecture())
        model = cls(config)
    if args.max_seq_length > model.config.max_position_embeddings:
        raise AlbertError(f"--max-seq-length {args.max_seq_length} exceeds the model's max_position_embeddings "
                          f"{model.config.max_position_embeddings}")
    return model


# Articles of SQuAD v1.1 dev used for training when no train file is at hand (48 in all): a
# stand-in for quick runs where train-v1.1.json cannot be had, never for reported scores.
SQUAD_DEV_TRAIN_ARTICLES = 40


def load_data(args: FinetuneArgs, task):
    raw = task.load(args.data_dir, train_file=args.train_file, dev_file=args.dev_file)
    if "train" in raw:
        return raw
    if task.name == "squad":
        from .data.squad import split_by_article

        log.warning("squad: no training file; training on the first %d articles of the dev set and "
                    "evaluating on the rest (pass --train-file train-v1.1.json for real scores)",
                    SQUAD_DEV_TRAIN_ARTICLES)
        return split_by_article(raw["validation"], SQUAD_DEV_TRAIN_ARTICLES)
    raise AlbertError(f"{args.task}: no training split found locally; pass --train-file")


def _subsample(split, n: int | None, seed: int):
    if n is None or n >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(n))


def run(args: FinetuneArgs, resume: bool = False,
        report: Callable[[int, dict[str, float]], bool] | None = None) -> dict[str, Any]:
    """Fine-tune and evaluate; returns the results also written to results.json.

    `report(step, metrics)` is called after every evaluation (the tuner uses it to prune)."""
    from .tasks import get_task
    from .train import Distributed

    task = get_task(args.task)
    args = resolve(args, task)
    if not args.progress:
        import datasets
        datasets.disable_progress_bars()
    dist = Distributed.from_env()
    # Locked for the whole run; everything is loaded and checked before config.json is written,
    # so a start that fails leaves the directory as it was (albert/rundir.py).
    with run_directory(args.output_dir, enabled=dist.is_main) as rundir:
        try:
            return _run(args, task, dist, resume, report, rundir.started)
        finally:
            dist.teardown()


def _run(args: FinetuneArgs, task, dist, resume: bool, report: Callable[[int, dict[str, float]], bool] | None,
         started_run: Callable[[], None]) -> dict[str, Any]:
    from .train.checkpoints import refuse_earlier_run

    out = Path(args.output_dir)
    if not resume and not args.overwrite:
        refuse_earlier_run(out)  # before config.json is replaced: it must keep describing that run

    model_dir = None
    if args.model:
        from .checkpoint import load_config, resolve as resolve_checkpoint
        model_dir = resolve_checkpoint(args.model)
        load_config(model_dir)  # no config.json, or not ALBERT: say so before asking for its tokenizer
    raw = load_data(args, task)
    # Evaluation examples do not depend on the training seed: runs (and tuning trials) that differ
    # only in seed are scored on the same examples, and share one feature cache.
    raw["validation"] = _subsample(raw["validation"], args.max_eval_samples, seed=0)
    tokenizer = load_tokenizer(args, model_dir, lambda: task.texts(raw["train"]))
    # Featurize all of train once (cached, shared by every run and tuning trial), then subsample
    # the features: the label set still comes from the whole training split.
    features = task.featurize(raw, tokenizer, args.max_seq_length, cache_root() / "features")
    features["train"] = _subsample(features["train"], args.max_train_samples, args.seed)
    model = build_model(args, task, raw, tokenizer, model_dir)

    def start() -> None:  # the trainer has restored its checkpoint or started over
        save_run_config(out / "config.json", "finetune", args)
        started_run()

    return _train(args, task, model, tokenizer, raw, features, dist, resume, report, start)


def _train(args: FinetuneArgs, task, model: torch.nn.Module, tokenizer, raw, features, dist, resume: bool,
           report: Callable[[int, dict[str, float]], bool] | None, on_start: Callable[[], None]) -> dict[str, Any]:
    from .train import Trainer

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        # The trainer already runs evaluation under its autocast.
        metrics, _ = task.evaluate(m, features["validation"], raw["validation"], batch_size=args.eval_batch_size)
        return metrics

    def save_best(m: torch.nn.Module, directory: Path) -> None:
        m.save_pretrained(directory)
        tokenizer.save(directory)

    train_rows = features["train"]
    lengths = task.lengths(train_rows)
    seq_len = int(sum(lengths) / max(1, len(lengths)))
    trainer = Trainer(model, args, train_rows, task.collate, dist=dist, lengths=lengths, evaluate=evaluate,
                      save_best=save_best, flops_per_token=model.flops_per_token(seq_len), on_evaluate=report,
                      on_start=on_start)
    started = time.time()
    results = {"task": args.task, "main_metric": task.main_metric, **trainer.train(resume=resume)}
    if args.predict:
        results["best"] = predict(args, task, trainer, features, raw, save_best)
    results["run_wall_time_s"] = round(time.time() - started, 2)
    write_json(Path(args.output_dir) / "results.json", results)
    return results


def predict(args: FinetuneArgs, task, trainer, features, raw, save_best) -> dict[str, float]:
    """Score the best model as saved (best/) on the training device, write its predictions, print
    the task's report."""
    out = Path(args.output_dir)
    best_dir = out / "best"
    if best_dir.exists():
        best = type(trainer.model).from_pretrained(best_dir).to(trainer.device)
    else:  # no evaluation ran: the final weights are the result
        best = trainer.model
        with atomic_dir(best_dir) as tmp:
            save_best(best, tmp)
    metrics, predictions = task.evaluate(best, features["validation"], raw["validation"],
                                         batch_size=args.eval_batch_size, precision=trainer.precision)
    task.write_predictions(predictions, raw["validation"], out / f"predictions{task.prediction_suffix}")
    text = task.report(metrics, predictions) if hasattr(task, "report") else None
    if text:
        print(text)
    return metrics
