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
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import write_json
from .config import PRESETS, preset
from .errors import AlbertError, require
from .finetune import cache_root
from .runconfig import TrainingOptions, save_run_config

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
    power: float = 1.0
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
        require(self.optimizer in DEFAULT_LR, f"--optimizer must be one of {', '.join(DEFAULT_LR)}")
        require(self.vocab_size >= 100, f"--vocab-size must be >= 100, got {self.vocab_size}")
        require(self.max_seq_length >= 16, f"--max-seq-length must be >= 16, got {self.max_seq_length}")
        limit = PRESETS[self.preset].get("max_position_embeddings", 512)
        require(self.max_seq_length <= limit,
                f"--max-seq-length {self.max_seq_length} exceeds the {self.preset} preset's "
                f"max_position_embeddings {limit}")
        require(0 <= self.short_seq_prob <= 1, f"--short-seq-prob must be in [0, 1], got {self.short_seq_prob}")
        require(self.max_predictions >= 1, f"--max-predictions must be >= 1")
        require(self.max_docs is None or self.max_docs >= 1, "--max-docs must be >= 1")


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


class HeldOut:
    """Held-out MLM loss/accuracy and SOP loss/accuracy, with the same masks every time.

    The held-out labels need not be balanced: one-sentence chunks always get label 1 (segment B
    from another document), and short held-out documents have many of them. So besides plain
    accuracy it reports the majority-class share (what answering the commoner label scores) and
    balanced accuracy (mean recall over the two labels), whose chance level is 0.5 whatever the
    label shares."""

    def __init__(self, dataset, collate, batch_size: int):
        self.dataset, self.collate, self.batch_size = dataset, collate, batch_size

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        from sklearn.metrics import balanced_accuracy_score  # only evaluation needs scikit-learn

        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        mlm_loss = mlm_correct = mlm_count = sop_loss = rows = 0.0
        sop_pred, sop_gold = [], []
        for start in range(0, len(self.dataset), self.batch_size):
            idx = list(range(start, min(start + self.batch_size, len(self.dataset))))
            examples = self.dataset.__getitems__(idx)
            batch = {k: v.to(device) for k, v in self.collate(examples, epoch=0, indices=idx).items()}
            out = model(**batch)
            # mlm_logits (B, P, V) at the masked-position slots; label -100 on unused slots.
            labels = batch["mlm_labels"]
            scored = labels != -100
            mlm_loss += float(torch.nn.functional.cross_entropy(out.mlm_logits.flatten(0, 1).float(), labels.flatten(),
                                                                reduction="sum"))
            mlm_correct += float(((out.mlm_logits.argmax(-1) == labels) & scored).sum())
            mlm_count += int(scored.sum())
            sol = batch["sentence_order_label"]
            sop_loss += float(torch.nn.functional.cross_entropy(out.sop_logits.float(), sol, reduction="sum"))
            sop_pred.append(out.sop_logits.argmax(-1).cpu())
            sop_gold.append(sol.cpu())
            rows += len(idx)
        model.train(was_training)
        mlm = mlm_loss / max(mlm_count, 1)
        pred, gold = (torch.cat(x).numpy() if x else np.zeros(0, dtype=np.int64) for x in (sop_pred, sop_gold))
        sop_correct = float((pred == gold).sum())
        return {"mlm_loss": mlm, "mlm_accuracy": mlm_correct / max(mlm_count, 1), "mlm_perplexity": math.exp(min(mlm, 50)),
                "sop_loss": sop_loss / max(rows, 1), "sop_accuracy": sop_correct / max(rows, 1),
                "sop_balanced_accuracy": float(balanced_accuracy_score(gold, pred)) if rows else 0.0,
                "sop_majority": float(np.bincount(gold).max() / rows) if rows else 0.0,
                "loss": mlm + sop_loss / max(rows, 1)}


def step_metrics(output, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    # Computed on the device and read back once (one host sync), on logging steps only.
    values: dict[str, torch.Tensor] = {}
    if output.mlm_loss is not None:
        labels = batch["mlm_labels"]
        scored = labels != -100
        values["mlm_loss"] = output.mlm_loss.detach().float()
        values["mlm_accuracy"] = ((output.mlm_logits.argmax(-1) == labels) & scored).sum() / scored.sum().clamp(min=1)
    if output.sop_loss is not None:
        values["sop_loss"] = output.sop_loss.detach().float()
        values["sop_accuracy"] = (output.sop_logits.argmax(-1) == batch["sentence_order_label"]).float().mean()
    if not values:
        return {}
    return dict(zip(values, torch.stack([v.float() for v in values.values()]).tolist()))


def run(args: PretrainArgs, resume: bool = False) -> dict[str, Any]:
    from .data.corpus import resolve_corpus
    from .data.pretraining import IndexedExamples, NgramMasker, build_pretraining_dataset, pretraining_collate
    from .model import AlbertForPreTraining
    from .trainer import Distributed, Trainer, refuse_earlier_run

    args.validate()
    if not args.progress:
        import datasets
        datasets.disable_progress_bars()
    if args.lr is None:
        args = dataclasses.replace(args, lr=DEFAULT_LR[args.optimizer])
    out = Path(args.output_dir)
    dist = Distributed()
    is_main = dist.is_main
    if is_main:
        if not resume and not args.overwrite:
            refuse_earlier_run(out)  # before config.json and tokenizer/ are replaced
        out.mkdir(parents=True, exist_ok=True)
        save_run_config(out / "config.json", "pretrain", args)

    corpus = resolve_corpus(args.corpus)
    tokenizer = get_tokenizer(args, corpus, out) if is_main else None
    tokenizer = _share_tokenizer(tokenizer, out)

    config = preset(args.preset, vocab_size=tokenizer.vocab_size, max_position_embeddings=max(
        args.max_seq_length, PRESETS[args.preset].get("max_position_embeddings", 512)))
    saved = out / "model_config.json"
    if resume and saved.exists():
        before = json.loads(saved.read_text())
        if before.get("vocab_size") != config.vocab_size:
            raise AlbertError(f"{out}: the checkpoints there have a vocabulary of {before.get('vocab_size')}, "
                              f"this run's tokenizer has {config.vocab_size}; use a new --output-dir or the same tokenizer")
    if is_main:
        write_json(saved, config.to_hf_dict())

    cache = cache_root() / "pretraining"
    build = functools.partial(build_pretraining_dataset, corpus, tokenizer, max_seq_length=args.max_seq_length,
                              cache_dir=cache, num_proc=args.num_proc, seed=args.seed, dupe_factor=args.dupe_factor,
                              short_seq_prob=args.short_seq_prob)
    # Under torchrun rank 0 builds the example cache while the others wait, then they load it.
    if not dist.is_main:
        dist.barrier()
    train = build("train", max_docs=args.max_docs)
    held = build("valid", max_docs=None if args.max_docs is None else max(50, args.max_docs // 20))
    if dist.is_main:
        dist.barrier()
    held = held.select(range(min(len(held), args.eval_examples)))
    if len(train) == 0:
        raise AlbertError(f"corpus {args.corpus}: no pretraining examples could be built")
    masker = NgramMasker.from_tokenizer(tokenizer, seed=args.seed, max_predictions=args.max_predictions)
    collate = functools.partial(pretraining_collate, masker=masker)

    torch.manual_seed(args.seed)
    model = AlbertForPreTraining(config)
    cfg = args.train_config(power=args.power, metric="loss", greater_is_better=False, group_by_length=True)

    def export(m: torch.nn.Module, directory: Path) -> None:
        m.save_pretrained(directory)
        tokenizer.save(directory)

    lengths = [len(x) for x in train["input_ids"]] if len(train) <= 2_000_000 else None
    seq_len = int(sum(lengths) / len(lengths)) if lengths else args.max_seq_length
    mask_fraction = min(args.max_predictions, 0.15 * seq_len) / max(seq_len, 1)
    trainer = Trainer(model, cfg, IndexedExamples(train), collate, lengths=lengths,
                      evaluate=HeldOut(IndexedExamples(held), collate, batch_size=max(args.batch_size, 64)),
                      save_best=export, step_metrics=step_metrics,
                      flops_per_token=model.flops_per_token(seq_len, head_fraction=mask_fraction),
                      progress=args.progress)
    started = time.time()
    results = trainer.train(resume=resume)
    if dist.is_main:
        export(trainer.model, out / "final")
        results = {"corpus": args.corpus, "train_examples": len(train), "held_out_examples": len(held),
                   "parameters": model.num_parameters(), **results, "run_wall_time_s": round(time.time() - started, 2)}
        write_json(out / "results.json", results)
    return results


def _share_tokenizer(tokenizer, out: Path):
    """Under torchrun only rank 0 trains the vocabulary; the others wait, then load it."""
    from .tokenizer import Tokenizer
    from .trainer import Distributed

    d = Distributed()
    if not d.enabled:
        return tokenizer
    d.setup(torch.device("cpu") if not torch.cuda.is_available() else torch.device("cuda", d.local_rank))
    d.barrier()
    return tokenizer if tokenizer is not None else Tokenizer.load(out / "tokenizer")
