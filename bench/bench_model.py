"""Model throughput side by side with transformers' ALBERT: same shape, same weights, same inputs,
measured in the same process, alternating the two so that machine drift hits both alike.

  python bench/bench_model.py                       # CPU: base shape, seq 128, fp32
  python bench/bench_model.py --device cuda --precision bf16 --seq 128 512 --batch 64

Prints a table and one summary line per measurement with the ratio (ours / transformers), and
writes a JSON record (device, versions, settings, figures) to --out.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albert.config import preset  # noqa: E402
from albert.model import HEADS  # noqa: E402
from albert.train.precision import peak_flops  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return times


def make_pair(head: str, shape: str, seq: int, device: torch.device, num_labels: int = 9):
    import transformers

    config = preset(shape, vocab_size=30000, num_labels=num_labels, max_position_embeddings=max(512, seq))
    hf_config = transformers.AlbertConfig(**{k: v for k, v in config.to_hf_dict().items()
                                             if k not in ("model_type", "id2label", "label2id")},
                                          num_labels=num_labels)
    hf_config._attn_implementation = "sdpa"  # transformers' default where available
    torch.manual_seed(0)
    hf = getattr(transformers, head)(hf_config)
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d)
        ours = HEADS[head].from_pretrained(d)
    return ours.to(device), hf.to(device)


def batch_for(head: str, batch: int, seq: int, device: torch.device, hf: bool) -> dict[str, torch.Tensor]:
    """The same inputs for both models, each in its own training layout. Pretraining: 15% of the
    tokens masked at random; transformers takes full-length labels (-100 elsewhere), ours the
    masked positions as the pretraining collate gives them (mlm_positions / mlm_labels, a fixed
    number of slots per row). No row is padded, so ours gets no attention_mask, as from the
    collate (transformers drops an all-ones mask itself)."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 30000, (batch, seq), generator=g)
    types = torch.zeros_like(ids)
    types[:, seq // 2:] = 1
    out = {"input_ids": ids, "token_type_ids": types}
    if hf:
        out["attention_mask"] = torch.ones_like(ids)
    if head == "AlbertForPreTraining":
        pick = torch.rand(ids.shape, generator=g) < 0.15
        if hf:
            out["labels"] = torch.where(pick, ids, -100)
        else:
            out["mlm_positions"], out["mlm_labels"] = masked_positions(pick, ids)
        out["sentence_order_label"] = torch.randint(0, 2, (batch,), generator=g)
    elif head == "AlbertForTokenClassification":
        out["labels"] = torch.randint(0, 9, ids.shape, generator=g)
    return {k: v.to(device) for k, v in out.items()}


def masked_positions(pick: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) boolean choice -> (B, P) positions (padded with 0) and their ids (-100 on padding),
    P the most any row has."""
    slots = int(pick.sum(1).max())
    order = torch.argsort((~pick).to(torch.int8), dim=1, stable=True)[:, :slots]  # chosen positions first, ascending
    taken = torch.arange(slots)[None, :] < pick.sum(1, keepdim=True)
    return torch.where(taken, order, 0), torch.where(taken, ids.gather(1, order), -100)


def autocast(device: torch.device, precision: str, cache_enabled: bool = True):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache_enabled)


def train_step_fn(model, batch, device, precision):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, foreach=True)
    model.train()

    def step():
        with autocast(device, precision):
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def infer_fn(model, batch, device, precision):
    model.eval()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}

    @torch.inference_mode()
    def run():
        with autocast(device, precision):
            model(**inputs)

    return run


def measure(kind: str, head: str, shape: str, batch: int, seq: int, device, precision: str, repeats: int,
            warmup: int) -> dict:
    ours, hf = make_pair(head, shape, seq, device, num_labels=2 if head == "AlbertForPreTraining" else 9)
    b_ours = batch_for(head, batch, seq, device, hf=False)
    b_hf = batch_for(head, batch, seq, device, hf=True)
    make = train_step_fn if kind == "train" else infer_fn
    f_ours, f_hf = make(ours, b_ours, device, precision), make(hf, b_hf, device, precision)
    t_ours, t_hf, mem = [], [], {}
    for name, fn, sink in (("albert", f_ours, t_ours), ("transformers", f_hf, t_hf)):
        fn()  # compile/warm caches for both before timing either
    for r in range(repeats):  # alternate to share drift
        for name, fn, sink in (("albert", f_ours, t_ours), ("transformers", f_hf, t_hf)):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            sink.extend(timed(fn, device, 1, warmup if r == 0 else 0))
            if device.type == "cuda":
                mem[name] = torch.cuda.max_memory_allocated() / 2**20
    tokens = batch * seq
    ours_s, hf_s = statistics.median(t_ours), statistics.median(t_hf)
    rec = {"kind": kind, "head": head, "shape": shape, "batch": batch, "seq": seq, "precision": precision,
           "albert_s": ours_s, "transformers_s": hf_s, "albert_tokens_per_s": tokens / ours_s,
           "transformers_tokens_per_s": tokens / hf_s, "ratio": hf_s / ours_s, "repeats": repeats,
           # On a shared machine the fastest run of each is the least disturbed one.
           "ratio_of_minima": min(t_hf) / min(t_ours), "albert_all_s": t_ours, "transformers_all_s": t_hf}
    if mem:
        rec["peak_mem_mib"] = mem
    if kind == "train":
        fpt = ours.flops_per_token(seq, head_fraction=0.15 if head == "AlbertForPreTraining" else 1.0)
        rec["albert_tflops"] = fpt * tokens / ours_s / 1e12
        rec["transformers_tflops"] = fpt * tokens / hf_s / 1e12
        peak = peak_flops(device, precision)
        if peak is not None:
            rec["albert_mfu"] = fpt * tokens / ours_s / peak
            rec["transformers_mfu"] = fpt * tokens / hf_s / peak
    del ours, hf
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--shape", default="base")
    ap.add_argument("--seq", type=int, nargs="+", default=[128])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--infer-batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--heads", nargs="+", default=["AlbertForPreTraining", "AlbertForTokenClassification"])
    ap.add_argument("--out", default="bench/results/model.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    import transformers

    records = []
    for seq in args.seq:
        for head in args.heads:
            records.append(measure("train", head, args.shape, args.batch, seq, device, args.precision,
                                   args.repeats, args.warmup))
        for b in args.infer_batch:
            records.append(measure("infer", "AlbertModel", args.shape, b, seq, device, args.precision,
                                   args.repeats, args.warmup))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"{'what':<40} {'albert tok/s':>13} {'hf tok/s':>11} {'ratio':>6}")
    for r in records:
        what = f"{r['kind']} {r['head'].replace('AlbertFor', '')} {r['shape']} b{r['batch']} s{r['seq']} {r['precision']}"
        print(f"{what:<40} {r['albert_tokens_per_s']:>13.0f} {r['transformers_tokens_per_s']:>11.0f} {r['ratio']:>5.2f}x"
              + (f"  latency {r['albert_s'] * 1e3:.1f} vs {r['transformers_s'] * 1e3:.1f} ms" if r["batch"] == 1 else "")
              + (f"  peak MiB {r['peak_mem_mib']['albert']:.0f} vs {r['peak_mem_mib']['transformers']:.0f}"
                 if "peak_mem_mib" in r else "")
              + (f"  MFU {r['albert_mfu']:.1%} vs {r['transformers_mfu']:.1%}" if "albert_mfu" in r else ""))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": str(device), "device_name": name, "threads": torch.get_num_threads(),
                               "torch": torch.__version__, "transformers": transformers.__version__,
                               "python": platform.python_version(), "settings": vars(args),
                               "records": records}, indent=2))
    for r in records:
        print(f"SUMMARY {r['kind']} {r['head']} {r['shape']} seq {r['seq']} batch {r['batch']} {r['precision']}: "
              f"{r['ratio']:.2f}x transformers ({r['albert_tokens_per_s']:.0f} vs {r['transformers_tokens_per_s']:.0f} tok/s; "
              f"ratio of the fastest runs {r['ratio_of_minima']:.2f}x)")


if __name__ == "__main__":
    main()
