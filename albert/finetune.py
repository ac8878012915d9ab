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
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import datasets
import torch

from . import defaults
from . import model as models
from .atomic import atomic_dir, write_json
from .cache import cache_root
from .checkpoint import load_config
from .checkpoint import resolve as resolve_checkpoint
from .config import PRESETS, preset
from .data.squad import split_by_article
from .errors import AlbertError, require
from .progress import Meter
from .runconfig import save_run_config
from .rundir import default_model, hub_unavailable, output_dir_or_claim, run_directory
from .tasks import TASK_NAMES, get_task
from .tokenizer import Tokenizer, train_tokenizer
from .train import Distributed, Trainer
from .train.budget import Budget, clock_time, fix_budget_steps, format_duration, parse_duration, saved_length
from .train.checkpoints import refuse_earlier_run
from .train.options import TrainingOptions

log = logging.getLogger("albert")

HEAD_CLASSES = {"sequence": "AlbertForSequenceClassification", "token": "AlbertForTokenClassification",
                "span": "AlbertForQuestionAnswering", "choice": "AlbertForMultipleChoice"}


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


# The command-line help of the fine-tuning options (and of the training options whose default differs here).
HELP = {
    "task": "one of the table below: ner (CoNLL-2003); the GLUE tasks sst2, mrpc, rte, cola, stsb, qnli, mnli, qqp, "
            "wnli; squad (SQuAD v1.1), squad2 (SQuAD v2.0); race (RACE)",
    "model": "checkpoint directory (HF format) or hub name to start from (default: the newest "
             "runs/pretrain-*/final here, else albert-base-v2)",
    "preset": "start from a random initialisation of this shape instead of --model: tiny, small, base, large, "
              "xlarge, xxlarge, micro (default: none, start from --model)",
    "tokenizer": "spiece.model or a directory holding one (default: the model's; for --preset, a vocabulary "
                 "trained on the task's text)",
    "vocab_size": "pieces of the vocabulary trained on the task's text (--preset runs without --tokenizer)",
    "data_dir": "task data directory (default: $ALBERT_DATA/<task>, else the Hugging Face hub)",
    "train_file": "training file instead of the data directory's (default: the data directory's)",
    "dev_file": "validation file instead of the data directory's (default: the data directory's)",
    "output_dir": "where the run writes config.json, log.jsonl, results.json, best/ and predictions "
                  "(default: a new runs/finetune-<task>-<date>-<time>)",
    "lr": "peak learning rate (default: by task and starting point, see below)",
    "batch_size": "rows per micro-batch per process (default: the task's, see below)",
    "max_steps": "optimizer steps; overrides --epochs (default: the task's, see below)",
    "epochs": "passes over the training data when --max-steps is not given (default: the task's)",
    "warmup": "linear warmup: a fraction of the steps if < 1, else a number of steps, capped at the run's "
              "length with a warning (default: the task's fraction, see below)",
    "weight_decay": "decoupled weight decay, skipping biases and LayerNorm weights (default: the task's, 0.01)",
    "max_seq_length": "tokens per example (default: the task's, cut to the model's max_position_embeddings)",
    "dropout": "classifier dropout (default: the task's, see below)",
    "eval_batch_size": "rows per evaluation batch",
    "max_train_samples": "use only this many training examples, drawn with --seed (quick runs; default: all)",
    "max_eval_samples": "score only this many validation examples, the same ones for every seed (default: all)",
    "predict": "re-score best/ at the end and write its predictions on the validation split",
    "metric": "the evaluation metric that picks best/ (default: the task's, see below)",
    "greater_is_better": "whether a larger --metric is better (default: the task metric's direction)",
    "hidden_dropout": "dropout in the encoder's layers (default: the model's, 0 for ALBERT checkpoints)",
    "attention_dropout": "dropout of the attention probabilities (default: the model's, 0 for ALBERT checkpoints)",
    "num_hidden_layers": "--preset runs: layers of the encoder (default: the preset's)",
    "hidden_size": "--preset runs: width of the encoder (default: the preset's)",
    "num_attention_heads": "--preset runs: attention heads; must divide --hidden-size (default: the preset's)",
    "intermediate_size": "--preset runs: width of the feed-forward layer (default: the preset's)",
    "embedding_size": "--preset runs: width of the factorized embeddings (default: the preset's)",
    "hidden_act": "--preset runs: activation, one of gelu_new, gelu, relu, silu, ... (default: the preset's)",
}


def resolve(args: FinetuneArgs, task, model_config: Any = None) -> tuple[FinetuneArgs, list[str]]:
    """Fill in the defaults (albert/defaults.py): the task's table (the ALBERT paper's where it has
    one), its warmup as a fraction of the run, a learning rate by starting point and model size,
    max_seq_length cut to the model's positions; and the task's metric. `model_config` is the
    --model checkpoint's AlbertConfig (None for a --preset run). Returns the filled-in options and
    lines that say what was chosen, for the log."""
    if args.preset is None and args.model is None:
        raise AlbertError("give --model (a checkpoint directory or hub name) or --preset (random initialisation)")
    d = task.defaults
    pretrained = model_config is not None
    hidden = model_config.hidden_size if pretrained else _preset_value(args, "hidden_size", 768)
    lr, lr_why = defaults.finetune_lr(d["lr"], pretrained=pretrained, hidden_size=hidden)
    seq, seq_note = defaults.max_seq_length(d["max_seq_length"], model_config.max_position_embeddings
                                            if pretrained else None)
    filled = dataclasses.replace(
        args,
        lr=args.lr if args.lr is not None else lr,
        # `is not None`, not `or`: an explicit 0 must reach validate(), not become the default.
        batch_size=args.batch_size if args.batch_size is not None else d["batch_size"],
        max_seq_length=args.max_seq_length if args.max_seq_length is not None else seq,
        warmup=args.warmup if args.warmup is not None else defaults.warmup_fraction(d),
        weight_decay=args.weight_decay if args.weight_decay is not None else d.get("weight_decay", 0.0),
        dropout=args.dropout if args.dropout is not None else d.get("dropout", 0.1),
        metric=args.metric if args.metric is not None else task.main_metric,
        greater_is_better=args.greater_is_better if args.greater_is_better is not None else task.greater_is_better,
    )
    steps, steps_why = defaults.finetune_steps(pretrained=pretrained, hidden_size=hidden)
    if filled.max_steps is None and filled.epochs is None and filled.time_budget is None:
        if steps:
            filled.max_steps = steps
        elif d.get("max_steps"):
            filled.max_steps = d["max_steps"]
        else:
            filled.epochs = d.get("epochs", 3.0)
    filled.validate()
    chosen = [f"lr {filled.lr:g} ({lr_why})" if args.lr is None else None,
              f"warmup {filled.warmup:g} of the steps (the task's)" if args.warmup is None else None,
              f"batch size {filled.batch_size}" if args.batch_size is None else None,
              f"max_seq_length {filled.max_seq_length}" if args.max_seq_length is None and not seq_note else None,
              (f"{filled.max_steps} steps ({steps_why})" if filled.max_steps else f"{filled.epochs:g} epochs")
              if args.max_steps is None and args.epochs is None and args.time_budget is None else None]
    chosen = [c for c in chosen if c]
    notes = [f"{task.name} defaults: {'; '.join(chosen)}"] if chosen else []
    if seq_note and args.max_seq_length is None:
        notes.append(f"note: {seq_note}")
    return filled, notes


def defaults_table() -> str:
    """The per-task defaults and the rules that adapt them, as `finetune.py --help` shows them."""
    rows = [("task", "metric", "lr (base+)", "batch", "length", "warmup", "max_seq_length", "dropout")]
    for name in TASK_NAMES:
        task = get_task(name)
        d = task.defaults
        length = f"{d['max_steps']} steps" if d.get("max_steps") else f"{d.get('epochs', 3):g} epochs"
        rows.append((name, task.main_metric, f"{d['lr']:g}", str(d["batch_size"]), length,
                     f"{defaults.warmup_fraction(d):g}", str(d["max_seq_length"]), f"{d.get('dropout', 0.1):g}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
    random_lr = ", ".join(f"{lr:g} at hidden size {h}" for h, lr in sorted(defaults.RANDOM_INIT_LR.items()))
    small_lr = ", ".join(f"{lr:g} at hidden size {h}" for h, lr in sorted(defaults.SMALL_PRETRAINED_LR.items()))
    return f"""defaults per task (the ALBERT paper's fine-tuning table; warmup as a fraction of the steps):
{table}

how the defaults adapt to the starting point:
  --model, hidden size {defaults.PAPER_HIDDEN} or more (albert-base-v2 and up): the lr above
  --model, a smaller pretrained model: lr {small_lr}
  --preset (random initialisation; the paper's rates barely move it): lr {random_lr}
  in between, the lr is interpolated log-linearly in the hidden size
  max_seq_length: the task's, cut to the model's max_position_embeddings (a --preset model gets
  as many positions as the task wants); an explicit --max-seq-length above them is an error
  no --model and no --preset: the newest runs/pretrain-*/final here, else albert-base-v2 (hub)
  --max-steps or --epochs replace the task's length; the warmup fraction follows the run's length"""


def _preset_value(args: FinetuneArgs, key: str, default: Any) -> Any:
    return PRESETS[args.preset].get(key, default) if args.preset in PRESETS else default


def load_tokenizer(args: FinetuneArgs, model_dir: Path | None, train_texts: Callable[[], Any]):
    """The model's own tokenizer, an explicit one, or (random-init runs) one trained on the task text."""
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
    with Meter("vocabulary", enabled=args.progress):
        return train_tokenizer(iter(texts), out, vocab_size=args.vocab_size)


def build_model(args: FinetuneArgs, task, raw, tokenizer, model_dir: Path | None):
    """The task's model: from the resolved checkpoint `model_dir`, else a random `--preset`."""
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
        log.warning("squad: no training file; training on the first %d articles of the dev set and "
                    "evaluating on the rest (pass --train-file train-v1.1.json for real scores)",
                    SQUAD_DEV_TRAIN_ARTICLES)
        return split_by_article(raw["validation"], SQUAD_DEV_TRAIN_ARTICLES)
    raise AlbertError(f"{args.task}: no training split found locally; pass --train-file")


def _starting_point(args: FinetuneArgs) -> tuple[str | None, Path | None, Any]:
    """(--model, its directory, its config); all None for a --preset run. With neither given, the
    newest local pretraining run (by its absolute path), else the hub's albert-base-v2 (rundirs.py)."""
    if args.preset is not None:
        return None, None, None
    name, defaulted = args.model, args.model is None
    if defaulted:
        name, line = default_model()
        if Path(name).is_dir():
            name = str(Path(name).resolve())  # config.json must name it from anywhere
    try:
        model_dir = resolve_checkpoint(name)
    except AlbertError as e:
        raise hub_unavailable(e) if defaulted and not Path(name).exists() else e
    if defaulted:
        log.info("%s", line)
    # No config.json, or not ALBERT: say so before asking for its tokenizer.
    return name, model_dir, load_config(model_dir)


def _subsample(split, n: int | None, seed: int):
    if n is None or n >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(n))


def run(args: FinetuneArgs, resume: bool = False,
        report: Callable[[int, dict[str, float]], bool] | None = None, started: float | None = None) -> dict[str, Any]:
    """Fine-tune and evaluate; returns the results also written to results.json.

    `report(step, metrics)` is called after every evaluation (the tuner uses it to prune).
    `started` (time.time()): when the command started, the start of a --time-budget (default: now)."""
    started = time.time() if started is None else started
    task = get_task(args.task)
    args.validate()  # the user's options, before anything is fetched or written
    model, model_dir, model_config = _starting_point(args)
    args, notes = resolve(dataclasses.replace(args, model=model), task, model_config)
    if not args.progress or not sys.stderr.isatty():
        # Off a terminal datasets' bars are carriage-return noise in a log; ours print lines.
        datasets.disable_progress_bars()
    args = dataclasses.replace(args, output_dir=output_dir_or_claim(args.output_dir, f"finetune-{task.name}", resume))
    budget = None
    if args.max_steps is None and args.epochs is None:  # a time budget fixes the steps
        kept = saved_length(args.output_dir, args.time_budget) if resume else None
        args = dataclasses.replace(args, **(kept or {}))
        budget = Budget(parse_duration(args.time_budget), started) if kept is None else None
        notes.append(f"{task.name}: {args.max_steps} steps, fixed by this run's time budget of {args.time_budget}"
                     if kept else
                     f"{task.name}: a time budget of {format_duration(budget.seconds)}; the steps are fixed once the "
                     f"step rate is measured; ends by {clock_time(budget.deadline)}")
    dist = Distributed.from_env()
    # Locked for the whole run; everything is loaded and checked before config.json is written,
    # so a start that fails leaves the directory as it was (albert/rundir.py).
    with run_directory(args.output_dir, enabled=dist.is_main) as rundir:
        try:
            results = _recipe(args, task, model_dir, notes, dist, resume, report, rundir.started, budget)
        finally:
            dist.teardown()
    # The directory goes back to the caller (it may be a default one), not into results.json.
    return {**results, "output_dir": args.output_dir}


def _recipe(args: FinetuneArgs, task, model_dir: Path | None, notes: list[str], dist, resume: bool,
            report: Callable[[int, dict[str, float]], bool] | None, started_run: Callable[[], None],
            budget: Budget | None = None) -> dict[str, Any]:
    """The fine-tuning recipe, top to bottom: data, tokenizer and features, the model, the
    trainer (which makes the optimizer and schedule), training, and the best model's predictions."""
    out = Path(args.output_dir)
    if not resume and not args.overwrite:
        refuse_earlier_run(out)  # before config.json is replaced: it must keep describing that run

    raw = load_data(args, task)
    # The metric that picks best/ depends on the task (and NER's per-type F1s on the data's tags):
    # checked now, before a whole epoch is trained to its first evaluation.
    names = task.metric_names(raw)
    require(args.metric in names, f"--metric {args.metric!r}: the {task.name} evaluation reports "
                                  f"{', '.join(names)}")
    # Evaluation examples do not depend on the training seed: runs (and tuning trials) that differ
    # only in seed are scored on the same examples, and share one feature cache.
    raw["validation"] = _subsample(raw["validation"], args.max_eval_samples, seed=0)
    tokenizer = load_tokenizer(args, model_dir, lambda: task.texts(raw["train"]))
    # Featurize all of train once (cached, shared by every run and tuning trial), then subsample
    # the features: the label set still comes from the whole training split.
    features = task.featurize(raw, tokenizer, args.max_seq_length, cache_root() / "features")
    features["train"] = _subsample(features["train"], args.max_train_samples, args.seed)
    model = build_model(args, task, raw, tokenizer, model_dir)
    for line in notes:  # now that the run has started: a user error before it stays one line on stderr
        log.info("%s", line)

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

    def make_trainer(m: torch.nn.Module, options: FinetuneArgs, on_start: Callable[[], None] | None = None,
                     **budgeting: Any):
        return Trainer(m, options, train_rows, task.collate, dist=dist, lengths=lengths, evaluate=evaluate,
                       save_best=save_best, flops_per_token=m.flops_per_token(seq_len),
                       on_evaluate=report if on_start else None, on_start=on_start, **budgeting)

    pace = None
    if budget is not None:  # a probe of a copy of the model fixes the steps
        args, pace = fix_budget_steps(budget, make_trainer, model, args, dist)
    final = args

    def start() -> None:  # the trainer has restored its checkpoint or started over
        save_run_config(out / "config.json", "finetune", final)
        started_run()

    def move_end(ends: list[list[int]]) -> None:  # the budget's pace moved the end: config.json says so
        save_run_config(out / "config.json", "finetune",
                        dataclasses.replace(final, max_steps=ends[-1][1], schedule_ends=ends))

    trainer = make_trainer(model, args, on_start=start, pace=pace, on_move_end=move_end)
    started = time.time()
    results = {"task": args.task, "main_metric": task.main_metric, **trainer.train(resume=resume)}
    if args.predict:
        results["best"] = predict(args, task, trainer, features, raw, save_best)
    results["run_wall_time_s"] = round(time.time() - started, 2)
    write_json(out / "results.json", results)
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
