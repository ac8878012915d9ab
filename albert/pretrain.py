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
import itertools
import json
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

# Peak learning rates per optimizer for the default batch sizes here; ALBERT used LAMB at
# 0.00176 with batch 4096, and LAMB's per-layer trust ratio keeps small batches stable near 1e-3.
DEFAULT_LR = {"lamb": 1e-3, "adamw": 1e-4}


@dataclass(kw_only=True)
class PretrainArgs(TrainingOptions):
    corpus: str = "wiki"                 # "wiki", "wikitext-103", or local files / a directory / a glob
    preset: str = "tiny"
    tokenizer: str | None = None         # an existing spiece.model or checkpoint directory
    vocab_size: int = 30000
    tokenizer_sample: int = 300_000      # paragraphs sampled to train the vocabulary
    max_seq_length: int = 128
    max_predictions: int = 20
    short_seq_prob: float = 0.1
    dupe_factor: int = 1
    max_docs: int | None = None          # only the first documents (quick runs)
    eval_examples: int = 1000
    num_proc: int | None = None
    # Pretraining defaults for the shared training options:
    optimizer: str = "lamb"
    batch_size: int = 64
    max_steps: int = 10_000
    warmup: float = 0.025
    weight_decay: float = 0.01
    schedule: str = "polynomial"
    eval_every: int = 500
    seed: int = 12345
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        require(self.preset in PRESETS, f"--preset {self.preset!r} is unknown; choose one of {', '.join(PRESETS)}")
        require(self.vocab_size >= 100, f"--vocab-size must be >= 100, got {self.vocab_size}")
        require(self.max_seq_length >= 16, f"--max-seq-length must be >= 16, got {self.max_seq_length}")
        limit = PRESETS[self.preset].get("max_position_embeddings", 512)
        require(self.max_seq_length <= limit,
                f"--max-seq-length {self.max_seq_length} exceeds the {self.preset} preset's "
                f"max_position_embeddings {limit}")
        require(0 <= self.short_seq_prob <= 1, f"--short-seq-prob must be in [0, 1], got {self.short_seq_prob}")
        require(self.max_predictions >= 1, f"--max-predictions must be >= 1")
        require(self.max_docs is None or self.max_docs >= 1, "--max-docs must be >= 1")
        require(self.tokenizer_sample >= 1, f"--tokenizer-sample must be >= 1, got {self.tokenizer_sample}")
        require(self.dupe_factor >= 1, f"--dupe-factor must be >= 1, got {self.dupe_factor}")
        require(self.eval_examples >= 1, f"--eval-examples must be >= 1, got {self.eval_examples}")
        require(self.num_proc is None or self.num_proc >= 1, f"--num-proc must be >= 1, got {self.num_proc}")


def get_tokenizer(args: PretrainArgs, corpus, out: Path):
    """This run's vocabulary: tokenizer/ in the output directory, made once."""
    from .tokenizer import Tokenizer, train_tokenizer

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
    log.info("training a %d-piece SentencePiece vocabulary on %d paragraphs of %s",
             args.vocab_size, args.tokenizer_sample, corpus.name)
    texts = itertools.islice(corpus.texts("train"), args.tokenizer_sample)
    return train_tokenizer(texts, own, vocab_size=args.vocab_size, seed=args.seed)


def run(args: PretrainArgs, resume: bool = False) -> dict[str, Any]:
    from .data.corpus import resolve_corpus
    from .tokenizer import Tokenizer
    from .train import Distributed
    from .train.checkpoints import refuse_earlier_run
    from .train.distributed import resolve_device

    args.validate()
    if not args.progress:
        import datasets
        datasets.disable_progress_bars()
    args = dataclasses.replace(args, lr=args.lr if args.lr is not None else DEFAULT_LR[args.optimizer],
                               metric=args.metric or "loss",
                               greater_is_better=bool(args.greater_is_better))
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
            corpus = resolve_corpus(args.corpus)
            tokenizer = get_tokenizer(args, corpus, out) if dist.is_main else None
            dist.barrier()  # the other ranks load the vocabulary rank 0 made
            tokenizer = tokenizer or Tokenizer.load(out / "tokenizer")
            return _pretrain(args, corpus, tokenizer, dist, resume, rundir.started)
    finally:
        dist.teardown()


def _pretrain(args: PretrainArgs, corpus, tokenizer, dist, resume: bool, started_run: Callable[[], None]
              ) -> dict[str, Any]:
    from .data.pretraining import IndexedExamples, NgramMasker, pretraining_collate
    from .model import AlbertForPreTraining
    from .tasks.pretraining import HeldOut, step_metrics
    from .train import Trainer

    out = Path(args.output_dir)
    config = _model_config(args, tokenizer, resume)
    train, held = _examples(args, corpus, tokenizer, dist)
    masker = NgramMasker.from_tokenizer(tokenizer, seed=args.seed, max_predictions=args.max_predictions)
    torch.manual_seed(args.seed)
    model = AlbertForPreTraining(config)

    def export(m: torch.nn.Module, directory: Path) -> None:
        m.save_pretrained(directory)
        tokenizer.save(directory)

    lengths = [len(x) for x in train["input_ids"]] if len(train) <= 2_000_000 else None
    seq_len = int(sum(lengths) / len(lengths)) if lengths else args.max_seq_length
    mask_fraction = min(args.max_predictions, 0.15 * seq_len) / max(seq_len, 1)
    held_out = HeldOut(IndexedExamples(held), functools.partial(pretraining_collate, masker=masker),
                       batch_size=max(args.batch_size, 64))

    def start() -> None:  # the trainer has restored its checkpoint or started over
        write_json(out / "model_config.json", config.to_hf_dict())
        save_run_config(out / "config.json", "pretrain", args)
        started_run()

    trainer = Trainer(model, args, IndexedExamples(train), functools.partial(pretraining_collate, masker=masker),
                      dist=dist,
                      lengths=lengths, evaluate=held_out, save_best=export, step_metrics=step_metrics,
                      flops_per_token=model.flops_per_token(seq_len, head_fraction=mask_fraction), on_start=start)
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
    from .data.pretraining import build_pretraining_dataset

    build = functools.partial(build_pretraining_dataset, corpus, tokenizer, max_seq_length=args.max_seq_length,
                              cache_dir=cache_root() / "pretraining", num_proc=args.num_proc, seed=args.seed,
                              dupe_factor=args.dupe_factor, short_seq_prob=args.short_seq_prob)
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
