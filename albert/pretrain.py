"""Pretraining: SentencePiece vocabulary, sentence-order pairs, n-gram masking, MLM + SOP,
on the shared training loop (LAMB, AMP, exact resume, torchrun).

Output directory:
  config.json       the run configuration (`python train.py <dir>/config.json`)
  tokenizer/        the SentencePiece model trained for this run (or a copy of --tokenizer)
  best/             the model with the lowest held-out loss so far, HF format with spiece.model
  final/            the final model in HF format with spiece.model
  log.jsonl, results.json, checkpoints/
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import datasets
import torch

from . import defaults
from .atomic import atomic_dir, write_json
from .cache import cache_root
from .config import PRESETS, preset
from .data.corpus import resolve_corpus
from .data.pretraining import IndexedExamples, NgramMasker, build_pretraining_dataset, pretraining_collate
from .defaults import Device, detect_device, pretrain_lr, pretrain_optimizer, pretrain_recipe, recipes_table
from .errors import AlbertError, require
from .model import AlbertForPreTraining
from .progress import Meter, counted
from .runconfig import save_run_config
from .rundir import output_dir_or_claim, run_directory
from .tasks.pretraining import HeldOut, step_metrics
from .tokenizer import Tokenizer, train_tokenizer
from .train import Distributed, Trainer
from .train.budget import Budget, clock_time, fix_budget_steps, format_duration, parse_duration, saved_length
from .train.checkpoints import refuse_earlier_run
from .train.distributed import resolve_device
from .train.options import TrainingOptions

log = logging.getLogger("albert")

ALBERT_MASK_PROB = 0.15  # the paper's masking rate; held-out examples are always masked at it


@dataclass(kw_only=True)
class PretrainArgs(TrainingOptions):
    corpus: str = "wiki"                 # "wiki", "wikitext-103", or local files / a directory / a glob
    # None: the device's recipe (albert/defaults.py, pretrain_recipe) fills it in.
    preset: str | None = None
    tokenizer: str | None = None         # an existing spiece.model or checkpoint directory
    vocab_size: int | None = None
    tokenizer_sample: int = 300_000      # paragraphs sampled to train the vocabulary
    max_seq_length: int | None = None
    mask_prob: float | None = None
    max_predictions: int | None = None   # default: mask_prob x max_seq_length, rounded up
    short_seq_prob: float = 0.1
    dupe_factor: int = 1
    max_docs: int | None = None          # only the first documents (quick runs)
    eval_examples: int = 1000
    num_proc: int | None = None
    # Pretraining defaults for the shared training options (None: the device's recipe's):
    optimizer: str | None = None
    batch_size: int | None = None
    max_steps: int | None = None
    warmup: float | None = None
    weight_decay: float = 0.01
    schedule: str | None = None
    eval_every: int | None = None
    seed: int = 12345
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """The options' checks; None is allowed where the device's recipe fills the value in."""
        super().validate()
        require(self.preset is None or self.preset in PRESETS,
                f"--preset {self.preset!r} is unknown; choose one of {', '.join(PRESETS)}")
        require(self.vocab_size is None or self.vocab_size >= 100, f"--vocab-size must be >= 100, got {self.vocab_size}")
        require(self.max_seq_length is None or self.max_seq_length >= 16,
                f"--max-seq-length must be >= 16, got {self.max_seq_length}")
        limit = PRESETS[self.preset].get("max_position_embeddings", 512) if self.preset else 512
        require(self.max_seq_length is None or self.max_seq_length <= limit,
                f"--max-seq-length {self.max_seq_length} exceeds the {self.preset} preset's "
                f"max_position_embeddings {limit}")
        require(0 <= self.short_seq_prob <= 1, f"--short-seq-prob must be in [0, 1], got {self.short_seq_prob}")
        require(self.mask_prob is None or 0 < self.mask_prob < 1, f"--mask-prob must be in (0, 1), got {self.mask_prob}")
        require(self.eval_every is None or self.eval_every >= 0, f"--eval-every must be >= 0, got {self.eval_every}")
        require(self.max_predictions is None or self.max_predictions >= 1, "--max-predictions must be >= 1")
        require(self.max_docs is None or self.max_docs >= 1, "--max-docs must be >= 1")
        require(self.tokenizer_sample >= 1, f"--tokenizer-sample must be >= 1, got {self.tokenizer_sample}")
        require(self.dupe_factor >= 1, f"--dupe-factor must be >= 1, got {self.dupe_factor}")
        require(self.eval_examples >= 1, f"--eval-examples must be >= 1, got {self.eval_examples}")
        require(self.num_proc is None or self.num_proc >= 1, f"--num-proc must be >= 1, got {self.num_proc}")


# The command-line help of the pretraining options (and of the training options whose default differs here).
HELP = {
    "corpus": "wiki ($ALBERT_DATA/wiki shards, else the hub), wikitext-103, or local text files, a directory or "
              "a glob (.gz ok; a blank line ends a document)",
    "preset": "model shape: tiny, small, base, large, xlarge, xxlarge, micro (default: the device's recipe, see below)",
    "tokenizer": "an existing spiece.model or checkpoint directory instead of training a vocabulary "
                 "(default: train one on the corpus)",
    "epochs": "passes over the examples, used when --max-steps is not given (default: none, --max-steps decides)",
    "vocab_size": "pieces of the SentencePiece vocabulary trained for this run (without --tokenizer) (default: the device's recipe, see below)",
    "tokenizer_sample": "paragraphs of the corpus the vocabulary is trained on",
    "max_seq_length": "tokens per pretraining example ([CLS] A [SEP] B [SEP]) (default: the device's recipe, see below)",
    "mask_prob": "share of each training example's tokens masked for MLM (ALBERT: 0.15); the held-out "
                 "examples are always masked at 0.15, so held-out MLM figures compare across runs (default: the device's recipe, see below)",
    "max_predictions": "at most this many masked tokens per example (default: --mask-prob x "
                       "--max-seq-length, rounded up, as BERT advises: 20 at 0.15 x 128)",
    "short_seq_prob": "share of examples given a random shorter length, like fine-tuning inputs",
    "dupe_factor": "copies of the corpus with different sentence pairings (masks are redrawn every epoch anyway)",
    "max_docs": "only the first N documents of the corpus (quick runs; default: all)",
    "eval_examples": "held-out examples scored at each evaluation (MLM and SOP loss and accuracy)",
    "num_proc": "processes that build the examples (default: min(4, CPUs); 1 with --max-docs)",
    "output_dir": "the run directory: config.json, tokenizer/, log.jsonl, checkpoints/, best/, final/ "
                  "(default: a new runs/pretrain-<date>-<time>)",
    "lr": "peak learning rate (default: the recipe's for its optimizer and batch; with another, by optimizer, "
          "model size and global batch; see below)",
    "batch_size": "rows per micro-batch per process; global batch = batch_size x grad_accum x processes (default: the device's recipe, see below)",
    "optimizer": "lamb (ALBERT's, for large batches) or adamw (default: the device's recipe, see below)",
    "max_steps": "optimizer steps to train (default: as many as the recipe's --time-budget allows)",
    "time_budget": "train to a wall-clock budget: 45m, 2h, 90s or seconds, counted from the command's start "
                   "(vocabulary and examples included). The run measures its step rate on a few probe steps, "
                   "then fixes --max-steps so that it ends within the budget, evaluations and saves included; "
                   "config.json records the steps (default: the recipe's, 1h, when no --max-steps or --epochs)",
    "warmup": "linear warmup: a fraction of the steps if < 1, else a number of steps (default: the device's recipe, see below)",
    "schedule": "learning-rate decay after warmup: linear, polynomial, constant, or wsd (warmup-stable-decay: "
                "the peak held until the last --decay-fraction of the steps) (default: the device's recipe, see below)",
    "eval_every": "evaluate on the held-out examples every N steps; 0: at the end of each epoch and of training"
                  " (default: the device's recipe, see below)",
    "metric": "the held-out metric that picks best/ (default: loss, lower is better)",
    "greater_is_better": "whether a larger --metric is better (default: no, for the loss)",
}


def defaults_table() -> str:
    """The learning-rate rule, as `pretrain.py --help` shows it."""
    rows = "\n".join(f"  {opt:6} {'hidden size <= ' if size == 'small' else 'hidden size >  '}"
                      f"{defaults.SMALL_MODEL_HIDDEN}: " + ", ".join(f"{lr:g} at global batch {b}" for b, lr in
                                                                     sorted(anchors.items()))
                      for (opt, size), anchors in defaults.PRETRAIN_LR.items())
    return f"""defaults by device: what `pretrain.py --corpus wiki` runs with no other option (explicit options win;
the run prints the recipe, why, the steps and its end time when it starts):
{recipes_table()}
  CPU: the README's CPU recipe, measured on 2 cores (one hour: CoNLL-2003 F1 0.727 after fine-tuning,
  0.585 from random weights). GPU: chosen by the GPU's memory from Cramming's and MosaicBERT's short-budget
  choices, not yet measured. Both are a 1-hour budget: a faster machine trains more steps.

default peak learning rate (--lr) when the optimizer or the global batch is not the recipe's: by optimizer,
model size (the preset's hidden size: micro 32, tiny 128, small 256, base 768, ...) and global batch
(batch_size x grad_accum x processes):
{rows}
  between two batch sizes the lr is interpolated log-linearly; beyond them it stays constant.
  The run logs the lr it chose."""


def apply_recipe(args: PretrainArgs, device: Device) -> tuple[PretrainArgs, list[str]]:
    """Fill the options left out (None) from the device's recipe (albert/defaults.py); explicit
    options win. The recipe's lr belongs to its optimizer and global batch: with another of
    either, the lr rule (pretrain_lr) decides. The recipe's time budget applies only when no
    --max-steps or --epochs is given. Returns the filled-in options and the start-up block."""
    recipe = pretrain_recipe(device)
    v = recipe.values
    given = {k for k in v if getattr(args, k) is not None}
    filled = {k: value for k, value in v.items() if k not in given and k not in ("lr", "optimizer", "time_budget")}
    if args.max_steps is None and args.epochs is None and args.time_budget is None:
        filled["time_budget"] = v["time_budget"]
    args = dataclasses.replace(args, **filled)
    args = dataclasses.replace(args, optimizer=args.optimizer or v["optimizer"])
    if args.lr is None:
        if args.optimizer == v["optimizer"] and _global_batch(args) == v["batch_size"]:
            args = dataclasses.replace(args, lr=v["lr"])
        else:
            args = dataclasses.replace(args, lr=_default_lr(args))
    quality = "measured" if recipe.measured else "unmeasured: chosen by reasoning, not yet run on a GPU"
    shown = {"preset": args.preset, "vocabulary": f"{args.vocab_size} pieces" if not args.tokenizer else args.tokenizer,
             "batch": args.batch_size, "mask": args.mask_prob, "optimizer": f"{args.optimizer} lr {args.lr:g}",
             "warmup": f"{args.warmup:g}" + (" of the steps" if args.warmup < 1 else " steps"),
             "schedule": args.schedule, "sequence length": args.max_seq_length,
             "eval every": f"{args.eval_every} steps"}
    lines = [f"recipe: the {recipe.name} ({quality}), for {recipe.why}",
             "  " + ", ".join(f"{k} {val}" for k, val in shown.items())]
    # A repeat by train.py gives every option; those equal to the recipe's are the recipe.
    differ = sorted(k for k in given if getattr(args, k) != v[k])
    if differ:
        lines.append("  given, so not the recipe's: " +
                     ", ".join(f"--{k.replace('_', '-')} {getattr(args, k)}" for k in differ))
    return args, lines


def predictions(mask_prob: float, args: PretrainArgs) -> int:
    """Masked tokens allowed per example at `mask_prob`: --max-predictions when given (the
    held-out masks too, so that an explicit cap applies everywhere), else enough for the rate."""
    if args.max_predictions is not None:
        return args.max_predictions
    return math.ceil(round(mask_prob * args.max_seq_length, 6))


def _global_batch(args: PretrainArgs) -> int:
    return args.batch_size * args.grad_accum * int(os.environ.get("WORLD_SIZE", "1"))


def _default_optimizer(args: PretrainArgs) -> str:
    """LAMB for large global batches, AdamW for small ones (albert/defaults.py); logged."""
    optimizer, why = pretrain_optimizer(_global_batch(args))
    log.info("optimizer %s (the default for %s)", optimizer, why)
    return optimizer


def _default_lr(args: PretrainArgs) -> float:
    """The peak learning rate for this optimizer, model size and global batch (albert/defaults.py); logged."""
    global_batch = _global_batch(args)
    hidden = PRESETS[args.preset or "tiny"].get("hidden_size", 768)
    lr, why = pretrain_lr(args.optimizer, hidden, global_batch)
    steps = (f"{args.schedule_steps} steps" if args.schedule_steps else
             f"{args.max_steps} steps" if args.max_steps else f"{args.epochs:g} epochs" if args.epochs else
             "the steps the time budget allows")
    log.info("lr %g (the default for %s), warmup %s, %s schedule over %s", lr, why, args.warmup, args.schedule, steps)
    return lr


VOCABULARY_CACHE_VERSION = 1  # raise when the vocabulary training or its normalisation changes


def get_tokenizer(args: PretrainArgs, corpus, out: Path):
    """This run's vocabulary: tokenizer/ in the output directory, made once (or copied from the
    cache of vocabularies trained with the same corpus, sample, size and seed)."""
    own = out / "tokenizer"
    if args.tokenizer:
        tok = Tokenizer.load(args.tokenizer)
        if (own / "spiece.model").exists() and Tokenizer.load(own).vocab_size != tok.vocab_size:
            raise AlbertError(f"{args.tokenizer}: vocabulary of {tok.vocab_size} differs from the "
                              f"{Tokenizer.load(own).vocab_size} this run in {out} was started with")
        tok.save(own)
        return tok
    if (own / "spiece.model").exists():
        return Tokenizer.load(own)
    # Training is seeded: the same corpus, sample, size and seed give the same vocabulary, so a
    # second run copies it instead of spending minutes (of its time budget) training it again.
    key = hashlib.sha256(json.dumps([VOCABULARY_CACHE_VERSION, corpus.fingerprint("train"), args.tokenizer_sample,
                                     args.vocab_size, args.seed]).encode()).hexdigest()[:20]
    cached = cache_root() / "tokenizers" / f"pretrain-{key}"
    if (cached / "spiece.model").exists():
        log.info("vocabulary: %d pieces from the cache (%s: the same corpus, sample, size and seed)",
                 args.vocab_size, cached)
        tok = Tokenizer.load(cached)
        tok.save(own)
        return tok
    log.info("training a %d-piece SentencePiece vocabulary on %d paragraphs of %s",
             args.vocab_size, args.tokenizer_sample, corpus.name)
    reading = Meter("vocabulary: reading paragraphs", total=args.tokenizer_sample, unit="paragraphs",
                    enabled=args.progress)
    training: list[Meter] = []

    def texts():
        yield from counted(itertools.islice(corpus.texts("train"), args.tokenizer_sample), reading)
        # SentencePiece has read them all: its training (silent, in C++) starts now.
        training.append(Meter(f"vocabulary: training {args.vocab_size} pieces", enabled=args.progress))

    try:
        tok = train_tokenizer(texts(), own, vocab_size=args.vocab_size, seed=args.seed)
        tok.save(cached)
        return tok
    finally:
        reading.close()
        for meter in training:
            meter.close()


def run(args: PretrainArgs, resume: bool = False, started: float | None = None,
        device: Device | None = None) -> dict[str, Any]:
    """Pretrain. `started` (time.time()): when the command started, the start of a time budget
    (default: now); `device`: the description the recipe is chosen by (default: detected)."""
    started = time.time() if started is None else started
    args.validate()
    if not args.progress or not sys.stderr.isatty():
        # Off a terminal datasets' bars are carriage-return noise in a log; ours print lines.
        datasets.disable_progress_bars()
    corpus = resolve_corpus(args.corpus)  # a missing corpus is said before a directory is made
    args, recipe_lines = apply_recipe(args, device or detect_device(args.device))
    args = dataclasses.replace(args, metric=args.metric or "loss", greater_is_better=bool(args.greater_is_better))
    args.validate()
    require(args.metric in HeldOut.METRICS,  # now, not at the first evaluation --eval-every steps in
            f"--metric {args.metric!r}: the held-out evaluation reports {', '.join(HeldOut.METRICS)}")
    args = dataclasses.replace(args, output_dir=output_dir_or_claim(args.output_dir, "pretrain", resume))
    budget = None
    if args.max_steps is None and args.epochs is None:
        # A resumed budgeted run keeps the steps it fixed; a fresh one measures them.
        kept = saved_length(args.output_dir, args.time_budget) if resume else None
        args = dataclasses.replace(args, **(kept or {}))
        budget = Budget(parse_duration(args.time_budget), started) if kept is None else None
        recipe_lines.append(f"  length: {args.max_steps} steps, fixed by this run's time budget of {args.time_budget}"
                            if kept
                            else f"  length: a time budget of {format_duration(budget.seconds)}; the steps are fixed "
                            "once the step rate is measured (after the vocabulary and the examples); ends by "
                            f"{clock_time(budget.deadline)}")
    else:
        recipe_lines.append(f"  length: {args.max_steps} steps" if args.max_steps else f"  length: {args.epochs:g} epochs")
    for line in recipe_lines:
        log.info("%s", line)
    out = Path(args.output_dir)
    dist = Distributed.from_env()
    # Set up now: under torchrun the ranks wait for rank 0's vocabulary and examples.
    dist.setup(resolve_device(args.device, dist.local_rank))
    try:
        # Locked for the whole run (rank 0, the only writer); a start that fails takes away what it
        # wrote (tokenizer/), so a corrected start does not reuse it (albert/rundir.py).
        with run_directory(out, enabled=dist.is_main) as rundir:
            if dist.is_main and not resume and not args.overwrite:
                refuse_earlier_run(out)  # its checkpoints, config.json and tokenizer/ must stay
            tokenizer = get_tokenizer(args, corpus, out) if dist.is_main else None
            dist.barrier()  # the other ranks load the vocabulary rank 0 made
            tokenizer = tokenizer or Tokenizer.load(out / "tokenizer")
            results = _pretrain(args, corpus, tokenizer, dist, resume, rundir.started, budget)
        # The directory goes back to the caller (it may be a default one), not into results.json.
        return {**results, "output_dir": args.output_dir} if results else results
    finally:
        dist.teardown()


def _pretrain(args: PretrainArgs, corpus, tokenizer, dist, resume: bool, started_run: Callable[[], None],
              budget: Budget | None = None) -> dict[str, Any]:
    out = Path(args.output_dir)
    config = _model_config(args, tokenizer, resume)
    train, held = _examples(args, corpus, tokenizer, dist)
    word_start = tokenizer.word_start_mask()
    masker = NgramMasker(word_start, seed=args.seed, mask_prob=args.mask_prob,
                         max_predictions=predictions(args.mask_prob, args))
    # Held out at ALBERT's rate whatever the training rate, so that runs compare on the same masks.
    held_masker = NgramMasker(word_start, seed=args.seed, mask_prob=ALBERT_MASK_PROB,
                              max_predictions=predictions(ALBERT_MASK_PROB, args))
    if dist.is_main:
        log.info("masking %g of each training example's tokens (at most %d), the held-out ones %g",
                 args.mask_prob, masker.max_predictions, ALBERT_MASK_PROB)
    torch.manual_seed(args.seed)
    model = AlbertForPreTraining(config)

    def export(m: torch.nn.Module, directory: Path) -> None:
        m.save_pretrained(directory)
        tokenizer.save(directory)

    lengths = [len(x) for x in train["input_ids"]] if len(train) <= 2_000_000 else None
    seq_len = int(sum(lengths) / len(lengths)) if lengths else args.max_seq_length
    mask_fraction = min(masker.max_predictions, args.mask_prob * seq_len) / max(seq_len, 1)
    collate = functools.partial(pretraining_collate, masker=masker)
    held_out = HeldOut(IndexedExamples(held), functools.partial(pretraining_collate, masker=held_masker),
                       batch_size=max(args.batch_size, 64))

    def start() -> None:  # the trainer has restored its checkpoint or started over
        write_json(out / "model_config.json", config.to_hf_dict())
        save_run_config(out / "config.json", "pretrain", args)
        started_run()

    def make_trainer(m: torch.nn.Module, options: PretrainArgs, **hooks: Any):
        return Trainer(m, options, IndexedExamples(train), collate, dist=dist, lengths=lengths, evaluate=held_out,
                       save_best=export, step_metrics=step_metrics,
                       flops_per_token=m.flops_per_token(seq_len, head_fraction=mask_fraction), **hooks)

    pace = None
    if budget is not None:
        args, pace = fix_budget_steps(budget, make_trainer, model, args, dist)

    def move_end(ends: list[list[int]]) -> None:  # the budget's pace moved the end: config.json says so
        save_run_config(out / "config.json", "pretrain",
                        dataclasses.replace(args, max_steps=ends[-1][1], schedule_ends=ends))

    trainer = make_trainer(model, args, on_start=start, pace=pace, on_move_end=move_end)
    started = time.time()
    results = trainer.train(resume=resume)
    if dist.is_main:
        with atomic_dir(out / "final") as tmp:
            export(trainer.model, tmp)
        results = {"corpus": args.corpus, "train_examples": len(train), "held_out_examples": len(held),
                   "parameters": model.num_parameters(), **results, "run_wall_time_s": round(time.time() - started, 2)}
        write_json(out / "results.json", results)
    return results


def _model_config(args: PretrainArgs, tokenizer, resume: bool):
    """The model's shape (written to model_config.json when the run starts); a resume must keep
    the vocabulary size."""
    out = Path(args.output_dir)
    config = preset(args.preset, vocab_size=tokenizer.vocab_size, max_position_embeddings=max(
        args.max_seq_length, PRESETS[args.preset].get("max_position_embeddings", 512)))
    saved = out / "model_config.json"
    if resume and saved.exists():
        before = json.loads(saved.read_text())
        if before.get("vocab_size") != config.vocab_size:
            raise AlbertError(f"{out}: the checkpoints there have a vocabulary of {before.get('vocab_size')}, "
                              f"this run's tokenizer has {config.vocab_size}; use a new --output-dir or the same tokenizer")
    return config


def _examples(args: PretrainArgs, corpus, tokenizer, dist):
    """The training and held-out sentence-order pairs (from the cache when built before)."""
    build = functools.partial(build_pretraining_dataset, corpus, tokenizer, max_seq_length=args.max_seq_length,
                              cache_dir=cache_root() / "pretraining", num_proc=args.num_proc, seed=args.seed,
                              dupe_factor=args.dupe_factor, short_seq_prob=args.short_seq_prob,
                              progress=args.progress and dist.is_main)
    # Under torchrun rank 0 builds the example cache while the others wait, then they load it.
    if not dist.is_main:
        dist.barrier()
    train = build("train", max_docs=args.max_docs)
    held = build("valid", max_docs=None if args.max_docs is None else max(50, args.max_docs // 20))
    if dist.is_main:
        dist.barrier()
    if len(train) == 0:
        raise AlbertError(f"corpus {args.corpus}: no pretraining examples could be built")
    return train, held.select(range(min(len(held), args.eval_examples)))
