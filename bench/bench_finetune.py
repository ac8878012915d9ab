"""CoNLL-2003 NER fine-tuning, one epoch, side by side with transformers.

Three runs from the same initial weights, same data, batch size, lr, schedule, clipping and AdamW:
  albert        albert's Trainer: length-grouped batches, each padded to its own longest row,
                AdamW over torch's foreach (fused on CUDA) kernels
  albert-random the same Trainer with group_by_length=False (random batches), so that the gain
                splits into batching (albert vs albert-random) and model + loop (albert-random
                vs transformers)
  transformers  transformers' AlbertForTokenClassification (SDPA attention) in a plain PyTorch
                loop: random batches, each padded to its own longest row, torch.optim.AdamW with
                its default implementation, linear warmup/decay, clipping at 1.0
  albert-cudnn  (on CUDA) albert, with SDPA free to pick cuDNN's attention kernel, which builds an
                execution graph for each new batch length; the model's default leaves it out

Both models read the same features: the CoNLL text tokenized with albert's tokenizer (a
SentencePiece vocabulary trained on the training text, as `finetune.py --preset` does; cached
under $ALBERT_CACHE). Times exclude model construction and the trainer's final checkpoint, and
include data loading.

  python bench/bench_finetune.py --shape small --max-steps 30               # CPU smoke run
  python bench/bench_finetune.py --device cuda --precision bf16             # base shape, one epoch

Prints a table and one SUMMARY line with the ratio, and writes a JSON record to --out.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albert.config import preset  # noqa: E402
from albert.finetune import FinetuneArgs, cache_root, load_tokenizer  # noqa: E402
from albert.model import AlbertForTokenClassification  # noqa: E402
from albert.optim import make_schedule, param_groups  # noqa: E402
from albert.tasks import get_task  # noqa: E402
from albert.train import Trainer, TrainingOptions  # noqa: E402
from bench_model import autocast, sync  # noqa: E402


def load_features(max_seq_length: int, vocab_size: int, max_train_samples: int | None):
    task = get_task("ner")
    raw = task.load()
    tokenizer = load_tokenizer(FinetuneArgs(task="ner", output_dir="-", vocab_size=vocab_size), None,
                               lambda: task.texts(raw["train"]))
    features = task.featurize(raw, tokenizer, max_seq_length, cache_root() / "features")
    train = features["train"]
    if max_train_samples is not None and max_train_samples < len(train):
        train = train.shuffle(seed=0).select(range(max_train_samples))
    names = task.label_names(raw)
    return task, train.select_columns(list(task.model_keys) + ["length"]), tokenizer, names


def padding_stats(batches: list[list[int]], lengths: np.ndarray) -> dict:
    """Rows, real tokens and padded tokens (rows x the batch's longest) of a list of batches."""
    real = sum(int(lengths[b].sum()) for b in batches)
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    return {"rows": sum(len(b) for b in batches), "tokens": real, "padded_tokens": padded,
            "padding_fraction": 1 - real / padded}


def warm_up(model: torch.nn.Module, batch: dict, device: torch.device, precision: str) -> None:
    """One forward/backward without an optimizer step (weights unchanged): CUDA/BLAS start-up
    costs are paid before any timed run, not by whichever model happens to go first."""
    model.train()
    with autocast(device, precision):
        loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    sync(device)


def run_albert(model, train, task, lengths, args, device, group_by_length: bool, workdir: Path) -> dict:
    cfg = TrainingOptions(output_dir=str(workdir), lr=args.lr, batch_size=args.batch_size,
                      epochs=None if args.max_steps else 1.0,
                      max_steps=args.max_steps, warmup=0.1, weight_decay=0.01, max_grad_norm=1.0,
                      precision=args.precision, device=str(device), group_by_length=group_by_length,
                      seed=args.seed, num_workers=args.num_workers, log_every=10**9, keep_last=1,
                      overwrite=True, progress=False, compile=args.compile)
    trainer = Trainer(model, cfg, train, task.collate, lengths=lengths)
    trainer.sampler.set_epoch(0)
    plan = [mb for step in trainer.sampler.steps()[:trainer.total_steps] for mb in step]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    results = trainer.train()
    rec = padding_stats(plan, lengths)
    rec["time_s"] = rec["rows"] / results["train_samples_per_s"]  # the trainer's own clock: no checkpointing
    rec["steps"] = results["steps"]
    if device.type == "cuda":
        rec["peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return rec


def run_transformers(model, train, task, lengths, args, device) -> dict:
    g = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=g,
                                         collate_fn=task.collate, num_workers=args.num_workers,
                                         pin_memory=device.type == "cuda")
    total = min(len(loader), args.max_steps or len(loader))
    # The same weight-decay split (none on biases and LayerNorm) and schedule as albert's run.
    opt = torch.optim.AdamW(param_groups(model, 0.01, args.lr), lr=args.lr, eps=1e-6)
    sched = make_schedule(opt, math.ceil(0.1 * total), total)
    model.train()
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batches, rows, tokens, padded = 0, 0, 0, 0
    sync(device)
    start = time.perf_counter()
    for batch in loader:
        mask = batch["attention_mask"]
        rows += mask.shape[0]
        tokens += int(mask.sum())
        padded += mask.numel()
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with autocast(device, args.precision):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        batches += 1
        if batches >= total:
            break
    sync(device)
    rec = {"rows": rows, "tokens": tokens, "padded_tokens": padded, "padding_fraction": 1 - tokens / padded,
           "time_s": time.perf_counter() - start, "steps": batches}
    if device.type == "cuda":
        rec["peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--shape", default="base", help="model preset (base, small, tiny, ...)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-seq-length", type=int, default=256)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--max-steps", type=int, default=None, help="stop each run after this many steps (quick runs)")
    ap.add_argument("--max-train-samples", type=int, default=None)
    ap.add_argument("--num-workers", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="rounds of the three runs, alternated; medians reported")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile albert's model (its runs' times then include compiling, once per shape)")
    ap.add_argument("--runs", nargs="+", default=None, choices=["transformers", "albert", "albert-random", "albert-cudnn"],
                    help="runs, in order (default: transformers albert albert-random, and albert-cudnn on CUDA)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="bench/results/finetune.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.runs is None:
        args.runs = ["transformers", "albert", "albert-random"] + (["albert-cudnn"] if device.type == "cuda" else [])
    import transformers

    task, train, tokenizer, names = load_features(args.max_seq_length, args.vocab_size, args.max_train_samples)
    lengths = np.asarray(train["length"])
    config = preset(args.shape, vocab_size=tokenizer.vocab_size, num_labels=len(names),
                    id2label=dict(enumerate(names)), classifier_dropout_prob=0.1,
                    max_position_embeddings=max(512, args.max_seq_length))
    torch.manual_seed(args.seed)
    ours = AlbertForTokenClassification(config)
    initial = {k: v.clone() for k, v in ours.state_dict().items()}
    with tempfile.TemporaryDirectory() as d:
        ours.save_pretrained(d)
        hf = transformers.AlbertForTokenClassification.from_pretrained(d, attn_implementation="sdpa")
    ours.to(device)
    hf.to(device)
    probe = task.collate([train[i] for i in range(min(args.batch_size, len(train)))])
    warm_up(ours, probe, device, args.precision)
    warm_up(hf, probe, device, args.precision)

    hf_initial = {k: v.clone() for k, v in hf.state_dict().items()}
    times: dict[str, list[dict]] = {name: [] for name in args.runs}
    with tempfile.TemporaryDirectory() as workdir:
        for r in range(args.repeats):
            for name in args.runs:
                if name == "transformers":
                    hf.load_state_dict(hf_initial)
                    rec = run_transformers(hf, train, task, lengths, args, device)
                else:
                    ours.load_state_dict(initial)
                    ours.set_attention_impl("sdpa-cudnn" if name == "albert-cudnn" else "sdpa")
                    rec = run_albert(ours, train, task, lengths, args, device, name != "albert-random",
                                     Path(workdir) / f"{name}-{r}")
                times[name].append(rec)
                print(f"round {r + 1}/{args.repeats} {name:<14} {rec['time_s']:8.2f} s  {rec['steps']} steps  "
                      f"padding {rec['padding_fraction']:.1%}", flush=True)

    summary = {}
    for name, recs in times.items():
        t = statistics.median(r["time_s"] for r in recs)
        rec = dict(recs[0])
        rec.update(time_s=t, samples_per_s=rec["rows"] / t, tokens_per_s=rec["tokens"] / t,
                   all_times_s=[r["time_s"] for r in recs])
        summary[name] = rec
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({dev_name}), threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}; shape {args.shape}, batch {args.batch_size}, {args.precision}, "
          f"{len(train)} training rows")
    print(f"{'run':<14} {'time s':>8} {'samples/s':>10} {'tokens/s':>10} {'padding':>8} {'peak MiB':>9}")
    for name, r in summary.items():
        mem = f"{r['peak_mem_mib']:>9.0f}" if "peak_mem_mib" in r else f"{'-':>9}"
        print(f"{name:<14} {r['time_s']:>8.2f} {r['samples_per_s']:>10.1f} {r['tokens_per_s']:>10.0f} "
              f"{r['padding_fraction']:>8.1%} {mem}")
    ratios = {}
    if "transformers" in summary and "albert" in summary:
        ratios["albert_vs_transformers"] = summary["transformers"]["time_s"] / summary["albert"]["time_s"]
    if "transformers" in summary and "albert-random" in summary:
        ratios["model_and_loop"] = summary["transformers"]["time_s"] / summary["albert-random"]["time_s"]
    if "albert" in summary and "albert-random" in summary:
        ratios["length_grouping"] = summary["albert-random"]["time_s"] / summary["albert"]["time_s"]
    if "albert" in summary and "albert-cudnn" in summary:
        ratios["no_cudnn_attention"] = summary["albert-cudnn"]["time_s"] / summary["albert"]["time_s"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": str(device), "device_name": dev_name, "threads": torch.get_num_threads(),
                               "torch": torch.__version__, "transformers": transformers.__version__,
                               "python": platform.python_version(), "settings": vars(args),
                               "train_rows": len(train), "runs": summary, "ratios": ratios}, indent=2))
    steps = summary[args.runs[0]]["steps"]
    what = f"{steps} steps" if args.max_steps else "one epoch"
    print(f"SUMMARY finetune ner {args.shape} {args.precision} {device.type} batch {args.batch_size}, {what}: "
          + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
