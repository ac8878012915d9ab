"""The pretraining data path against the training step: is the loader off the critical path?

  collate   masking + padding a batch (pretraining_collate), ms per batch, this checkout
            against a baseline checkout (--baseline DIR, e.g. the commit before the batch
            masker), alternating the two on the same rows
  loader    the trainer's own loader alone (albert.train.feed.Feed: one DataLoader for the run,
            collate told the epoch and the indices), samples/s with 0 and with N worker processes
            (started once, kept across epochs, prefetching), start-up apart
  step      the pretraining model's training step (forward, backward, LAMB) on one of those
            batches, samples/s, for the loader figures to be read against

Rows are real: SOP examples built from $ALBERT_DATA/wiki/wiki-valid.txt.gz with a vocabulary
trained on it (both cached under $ALBERT_CACHE/bench-data).

  python bench/bench_data.py --baseline /path/to/old/checkout
  python bench/bench_data.py --batch 128 --seq 128 --workers 2 --step-presets tiny base --step-batch 8
"""
from __future__ import annotations

import argparse
import functools
import inspect
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from albert.data.corpus import resolve_corpus  # noqa: E402
from albert.data.pretraining import (IndexedExamples, NgramMasker, build_pretraining_dataset,  # noqa: E402
                                     pretraining_collate)
from albert.tokenizer import Tokenizer, train_tokenizer  # noqa: E402


def cache_dir() -> Path:
    return Path(os.environ.get("ALBERT_CACHE", Path.home() / ".cache" / "albert")) / "bench-data"


def wiki_rows(seq: int, vocab: int):
    """(dataset, tokenizer): SOP examples of the wiki validation split."""
    data = Path(os.environ.get("ALBERT_DATA", REPO.parent / "shared" / "data"))
    corpus = resolve_corpus("wiki", data)
    spm = cache_dir() / f"spm-{vocab}"
    if (spm / "spiece.model").exists():
        tokenizer = Tokenizer.load(spm)
    else:
        texts = itertools.chain.from_iterable(corpus.paragraphs("valid"))
        tokenizer = train_tokenizer(itertools.islice(texts, 20000), spm, vocab_size=vocab)
    dataset = build_pretraining_dataset(corpus, tokenizer, "valid", seq, cache_dir() / "sop", num_proc=1)
    return dataset, tokenizer


def baseline_collate(checkout: Path, word_start: np.ndarray, seed: int):
    """The baseline checkout's collate, imported under another package name, and a function
    calling it the way the trainer does (its signature decides how)."""
    link_dir = Path(tempfile.mkdtemp())
    (link_dir / "albert_baseline").symlink_to(checkout / "albert", target_is_directory=True)
    sys.path.insert(0, str(link_dir))
    import importlib

    module = importlib.import_module("albert_baseline.data.pretraining")
    masker = module.NgramMasker(word_start, seed=seed)
    fn = module.pretraining_collate
    if "indices" in inspect.signature(fn).parameters:
        return lambda rows, epoch, indices: fn(rows, masker, epoch=epoch, indices=indices)
    # Before: rows carried their index and the epoch was positional.
    return lambda rows, epoch, indices: fn([{**r, "index": i} for r, i in zip(rows, indices)], masker, epoch)


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def bench_collate(args, dataset, word_start) -> dict:
    data = IndexedExamples(dataset)
    masker = NgramMasker(word_start, seed=0)
    variants = {"this checkout": lambda rows, epoch, indices: pretraining_collate(rows, masker, epoch=epoch,
                                                                                  indices=indices)}
    if args.baseline:
        variants["baseline"] = baseline_collate(Path(args.baseline).resolve(), word_start, 0)
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(data), args.batch, replace=False).tolist() for _ in range(args.batches)]
    fetched = [data.__getitems__(b) for b in batches]
    times = {name: [] for name in variants}
    for name, fn in variants.items():  # warm-up
        fn(fetched[0], 0, batches[0])
    for epoch in range(args.repeats):
        for name, fn in variants.items():
            t = time.perf_counter()
            for rows, idx in zip(fetched, batches):
                fn(rows, epoch, idx)
            times[name].append((time.perf_counter() - t) / len(batches))
    out = {name: {"ms_per_batch": median_ms(t), "all_ms": [x * 1e3 for x in t]} for name, t in times.items()}
    if "baseline" in out:
        out["speedup"] = out["baseline"]["ms_per_batch"] / out["this checkout"]["ms_per_batch"]
    return out


def bench_loader(args, dataset, word_start) -> dict:
    """The trainer's own loader (albert.train.feed.Feed: persistent workers, prefetch), over
    random batches of `args.batch`, one epoch per repeat; the first batch of the first epoch
    (worker start-up) is timed apart."""
    from albert.data.batch_order import LengthGroupedSampler
    from albert.train.feed import Feed

    collate = functools.partial(pretraining_collate, masker=NgramMasker(word_start, seed=0))
    out = {}
    for workers in sorted({0, args.workers}):
        sampler = LengthGroupedSampler(len(dataset), args.batch, seed=1)
        feed = Feed(IndexedExamples(dataset), collate, sampler, seed=1, rank=0, num_workers=workers)
        try:
            t = time.perf_counter()
            next(feed.epoch(0, 0))
            start_s = time.perf_counter() - t
            rates = []
            for epoch in range(args.repeats):
                t = time.perf_counter()
                count = sum(mb.rows for step in feed.epoch(epoch, 0) for mb in step)
                rates.append(count / (time.perf_counter() - t))
        finally:
            feed.close()
        out[f"{workers} workers"] = {"samples_per_s": statistics.median(rates), "all": rates,
                                     "first_batch_s": start_s, "batches": sampler.num_steps}
    return out


def bench_step(args, dataset, word_start, vocab: int) -> dict:
    from albert.config import preset
    from albert.model import AlbertForPreTraining
    from albert.optim import make_optimizer

    masker = NgramMasker(word_start, seed=0)
    data = IndexedExamples(dataset)
    idx = list(range(args.step_batch))
    batch = pretraining_collate(data.__getitems__(idx), masker, epoch=0, indices=idx)
    out = {}
    for name in args.step_presets:
        torch.manual_seed(0)
        model = AlbertForPreTraining(preset(name, vocab_size=vocab, max_position_embeddings=512))
        opt = make_optimizer(model, "lamb", 1e-3)

        def step():
            model(**batch).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        step()
        times = []
        for _ in range(args.step_repeats):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        s = statistics.median(times)
        out[name] = {"batch": args.step_batch, "s_per_step": s, "samples_per_s": args.step_batch / s}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", help="another checkout whose pretraining_collate to compare against")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--batches", type=int, default=10, help="batches per collate timing")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--step-presets", nargs="*", default=["tiny", "base"])
    ap.add_argument("--step-batch", type=int, default=8)
    ap.add_argument("--step-repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip", nargs="*", default=[], choices=["collate", "loader", "step"])
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "data-cpu.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset, tokenizer = wiki_rows(args.seq, args.vocab)
    word_start = tokenizer.word_start_mask()
    lengths = np.array([len(x) for x in dataset["input_ids"]])
    print(f"{len(dataset)} wiki-valid SOP examples, seq {args.seq} (mean length {lengths.mean():.1f}, "
          f"{(lengths == args.seq).mean():.0%} full); torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs")
    report = {"settings": vars(args), "python": platform.python_version(), "torch": torch.__version__,
              "cpus": os.cpu_count(), "threads": torch.get_num_threads()}
    if "collate" not in args.skip:
        report["collate"] = r = bench_collate(args, dataset, word_start)
        for name in ("baseline", "this checkout"):
            if name in r:
                print(f"collate (mask + pad), batch {args.batch}: {name:<14} {r[name]['ms_per_batch']:7.2f} ms per batch")
        if "speedup" in r:
            print(f"SUMMARY collate: {r['speedup']:.2f}x faster than the baseline "
                  f"({r['baseline']['ms_per_batch']:.1f} -> {r['this checkout']['ms_per_batch']:.1f} ms per batch of {args.batch})")
    if "loader" not in args.skip:
        report["loader"] = r = bench_loader(args, dataset, word_start)
        for name, x in r.items():
            print(f"loader alone, {name}: {x['samples_per_s']:9.0f} samples/s (first batch after {x['first_batch_s']:.2f} s)")
    if "step" not in args.skip:
        report["step"] = r = bench_step(args, dataset, word_start, tokenizer.vocab_size)
        for name, x in r.items():
            print(f"training step, {name} b{x['batch']}: {x['samples_per_s']:9.1f} samples/s ({x['s_per_step']:.3f} s per step)")
        if "loader" in report:
            best = max(v["samples_per_s"] for v in report["loader"].values())
            for name, x in r.items():
                print(f"SUMMARY loader vs step ({name}): the loader feeds {best / x['samples_per_s']:.0f}x what the "
                      f"step consumes on this CPU")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
