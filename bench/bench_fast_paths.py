"""Each fast path of the model, the optimizers and the data feed, measured on and off in one process.

Every comparison runs the "off" and "on" variants alternately (after a warm-up of each) and
reports the median time and the speedup on/off; a fast path that does not pay off on this
device shows a speedup below 1 and is reported as such.

  qkv          one fused q/k/v projection (ours) vs three Linear modules (transformers' layout)
  attention    SDPA (fused kernels) vs the written-out softmax(q k^T / sqrt(d)) v
  mlm_head     MLM head at the masked positions only vs on every token (transformers)
  autocast     fp32 vs bf16 autocast (CPU bf16 needs AVX512-BF16/AMX hardware to pay off)
  cast_cache   autocast's weight-cast cache on vs off: how many times a shared layer's weights are
               cast per forward, the time, and the gradient error each gives against fp32
  mask         the padding-mask path: mask=None, an all-ones mask (albert drops it after a host
               sync so that SDPA keeps its flash kernel) and a mask with padding (no flash kernel)
  adamw        optimizer step: for-loop vs foreach vs fused AdamW
  lamb         optimizer step: per-parameter LAMB vs albert's foreach Lamb (same numbers)
  compile      eager vs torch.compile (steady state; compile time reported apart)
  batching     padding of a CoNLL-2003 epoch, length-grouped vs random batches (data only;
               bench_finetune.py times it)
  loader       collating CoNLL-2003 batches: DataLoader workers 0 vs 2; pinned vs pageable
               host-to-device copies on CUDA

  python bench/bench_fast_paths.py --shape small --repeats 3                  # CPU smoke run
  python bench/bench_fast_paths.py --device cuda --precision bf16 --batch 64 --seq 128
  python bench/bench_fast_paths.py --device cuda --only compile --compile-mode reduce-overhead

Writes a JSON record (device, versions, settings, figures) to --out.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albert.config import preset  # noqa: E402
from albert.model import HEADS, Layer  # noqa: E402
from albert.optim import Lamb, param_groups  # noqa: E402
from bench_model import autocast, batch_for, sync  # noqa: E402

SECTIONS = ("qkv", "attention", "mlm_head", "autocast", "cast_cache", "mask", "adamw", "lamb", "compile",
            "batching", "loader")


# --- measuring --------------------------------------------------------------------------------
class Timings(dict):
    """Median seconds per variant; `.best` holds the minima (the least disturbed run on a busy machine)."""

    def __init__(self, median: dict[str, float], best: dict[str, float]):
        super().__init__(median)
        self.best = best


def compare(variants: dict[str, Callable[[], object]], device: torch.device, repeats: int,
            warmup: int = 1) -> Timings:
    """Median seconds per call of each variant, measured alternately so drift hits all alike."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
    return Timings({k: statistics.median(v) for k, v in times.items()}, {k: min(v) for k, v in times.items()})


class Report:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, section: str, what: str, off: str, on: str, t: dict[str, float], note: str = "") -> None:
        row = {"section": section, "what": what, "off": off, "on": on, "off_ms": t[off] * 1e3,
               "on_ms": t[on] * 1e3, "speedup": t[off] / t[on], "note": note}
        best = getattr(t, "best", None)
        if best:
            row.update(off_min_ms=best[off] * 1e3, on_min_ms=best[on] * 1e3, speedup_of_minima=best[off] / best[on])
        self.rows.append(row)
        print(f"{section:<11} {what:<34} {off:>12} {row['off_ms']:>10.2f} ms  {on:>12} {row['on_ms']:>10.2f} ms  "
              f"{row['speedup']:>5.2f}x" + (f" (minima {row['speedup_of_minima']:.2f}x)" if best else "")
              + (f" {note}" if note else ""), flush=True)

    def note(self, section: str, what: str, **figures) -> None:
        self.rows.append({"section": section, "what": what, **figures})
        print(f"{section:<11} {what:<34} " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                      for k, v in figures.items()), flush=True)


# --- model variants ---------------------------------------------------------------------------
class SeparateQKVLayer(Layer):
    """Layer with q, k and v as three Linear modules (three matmuls, three weight gradients)."""

    def project_qkv(self, x: torch.Tensor):
        B, T, H = x.shape
        return tuple(lin(x).view(B, T, self.n_heads, H // self.n_heads).transpose(1, 2)
                     for lin in (self.q, self.k, self.v))


def split_qkv(model: nn.Module) -> nn.Module:
    """A copy of `model` whose layers have separate q/k/v projections with the same weights."""
    model = copy.deepcopy(model)
    for m in model.modules():
        if type(m) is Layer:
            H = m.qkv.in_features
            for i, name in enumerate("qkv"):
                lin = nn.Linear(H, H, device=m.qkv.weight.device)
                with torch.no_grad():
                    lin.weight.copy_(m.qkv.weight[i * H:(i + 1) * H])
                    lin.bias.copy_(m.qkv.bias[i * H:(i + 1) * H])
                setattr(m, name, lin)
            del m.qkv
            m.__class__ = SeparateQKVLayer
    return model


def make_model(head: str, args, device: torch.device) -> nn.Module:
    config = preset(args.shape, vocab_size=30000, num_labels=2 if head == "AlbertForPreTraining" else 9,
                    max_position_embeddings=max(512, args.seq))
    torch.manual_seed(0)
    return HEADS[head](config).to(device)


def train_step(model: nn.Module, batch: dict, device: torch.device, precision: str,
               loss_fn: Callable | None = None, cache_enabled: bool = True) -> Callable[[], None]:
    """One optimizer step (foreach AdamW, as the trainer's on CPU)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, foreach=True)
    model.train()

    def step() -> None:
        with autocast(device, precision, cache_enabled):
            loss = model(**batch).loss if loss_fn is None else loss_fn(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def infer(model: nn.Module, inputs: dict, device: torch.device, precision: str) -> Callable[[], None]:
    model.eval()

    @torch.inference_mode()
    def run() -> None:
        with autocast(device, precision):
            model(**inputs)

    return run


def inputs_of(batch: dict) -> dict:
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}


def mlm_on_all_tokens(model: nn.Module, batch: dict) -> torch.Tensor:
    """transformers' way: logits for every position, loss over the masked ones."""
    out = model(**inputs_of(batch))
    labels = torch.full_like(batch["input_ids"], -100)
    real = batch["mlm_labels"] != -100  # padding slots point at position 0: leave it alone
    rows = torch.arange(len(labels), device=labels.device)[:, None].expand_as(real)
    labels[rows[real], batch["mlm_positions"][real]] = batch["mlm_labels"][real]
    mlm = F.cross_entropy(out.mlm_logits.float().view(-1, out.mlm_logits.shape[-1]), labels.view(-1))
    return mlm + F.cross_entropy(out.sop_logits.float(), batch["sentence_order_label"])


# --- sections ---------------------------------------------------------------------------------
def bench_qkv(args, device, report: Report) -> None:
    for head in ("AlbertForPreTraining",):
        fused = make_model(head, args, device)
        separate = split_qkv(fused)
        batch = batch_for(head, args.batch, args.seq, device, hf=False)
        with torch.no_grad():
            fused.eval(), separate.eval()
            a, b = fused(**batch).loss, separate(**batch).loss
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), (a, b)
        t = compare({"separate": train_step(separate, batch, device, args.precision),
                     "fused": train_step(fused, batch, device, args.precision)}, device, args.repeats)
        report.add("qkv", f"train {head.removeprefix('AlbertFor')}", "separate", "fused", t)
        t = compare({"separate": infer(separate, inputs_of(batch), device, args.precision),
                     "fused": infer(fused, inputs_of(batch), device, args.precision)}, device, args.repeats)
        report.add("qkv", "infer AlbertModel", "separate", "fused", t)


def bench_attention(args, device, report: Report) -> None:
    head = "AlbertForPreTraining"
    sdpa = make_model(head, args, device)
    eager = copy.deepcopy(sdpa)
    eager.set_attention_impl("eager")
    batch = batch_for(head, args.batch, args.seq, device, hf=False)
    t = compare({"eager": train_step(eager, batch, device, args.precision),
                 "sdpa": train_step(sdpa, batch, device, args.precision)}, device, args.repeats)
    report.add("attention", "train PreTraining", "eager", "sdpa", t)
    t = compare({"eager": infer(eager, inputs_of(batch), device, args.precision),
                 "sdpa": infer(sdpa, inputs_of(batch), device, args.precision)}, device, args.repeats)
    report.add("attention", "infer", "eager", "sdpa", t)
    if device.type == "cuda":
        peaks = {}
        for name, m in (("eager", eager), ("sdpa", sdpa)):
            torch.cuda.reset_peak_memory_stats(device)
            train_step(m, batch, device, args.precision)()
            peaks[name] = torch.cuda.max_memory_allocated(device) / 2**20
        report.note("attention", "train peak memory MiB", **peaks)


def bench_mlm_head(args, device, report: Report) -> None:
    head = "AlbertForPreTraining"
    model = make_model(head, args, device)
    other = copy.deepcopy(model)
    batch = batch_for(head, args.batch, args.seq, device, hf=False)
    masked = int((batch["mlm_labels"] != -100).sum())
    t = compare({"all tokens": train_step(other, batch, device, args.precision, loss_fn=mlm_on_all_tokens),
                 "masked only": train_step(model, batch, device, args.precision)}, device, args.repeats)
    report.add("mlm_head", f"train PreTraining ({masked / batch['input_ids'].numel():.0%} masked)",
               "all tokens", "masked only", t)


def bench_autocast(args, device, report: Report) -> None:
    low = "fp16" if args.precision == "fp16" else "bf16"
    if device.type == "cpu" and low == "fp16":
        low = "bf16"
    for head in ("AlbertForPreTraining",):
        model = make_model(head, args, device)
        other = copy.deepcopy(model)
        batch = batch_for(head, args.batch, args.seq, device, hf=False)
        t = compare({"fp32": train_step(model, batch, device, "fp32"),
                     low: train_step(other, batch, device, low)}, device, args.repeats)
        report.add("autocast", f"train {head.removeprefix('AlbertFor')}", "fp32", low, t)
        t = compare({"fp32": infer(model, inputs_of(batch), device, "fp32"),
                     low: infer(other, inputs_of(batch), device, low)}, device, args.repeats)
        report.add("autocast", "infer", "fp32", low, t)


class WeightCasts(TorchDispatchMode):
    """Counts dtype casts (aten._to_copy) whose source is one of the given parameters."""

    def __init__(self, params: dict[int, str]):
        super().__init__()
        self.params, self.counts = params, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._to_copy.default and isinstance(args[0], torch.Tensor):
            name = self.params.get(args[0].data_ptr())
            if name is not None and (kwargs or {}).get("dtype") not in (None, args[0].dtype):
                self.counts[name] = self.counts.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def bench_cast_cache(args, device, report: Report) -> None:
    """autocast caches the low-precision copy of a leaf tensor that requires grad for the rest of
    the autocast region, so the weights of ALBERT's shared layer should be cast once per forward,
    not once per layer application. Counted here, and timed, with the cache on and off."""
    low = "fp16" if args.precision == "fp16" and device.type == "cuda" else "bf16"
    head = "AlbertForPreTraining"
    model = make_model(head, args, device)
    batch = batch_for(head, args.batch, args.seq, device, hf=False)
    ptrs = {p.data_ptr(): n for n, p in model.named_parameters()}
    qkv = next(n for n in ptrs.values() if n.endswith("layers.0.qkv.weight"))
    applications = model.config.num_hidden_layers * model.config.inner_group_num // model.config.num_hidden_groups
    grads = {}
    model.eval()  # no dropout: the gradients below differ only by precision
    for cache in (True, False):
        counter = WeightCasts(ptrs)
        with counter, autocast(device, low, cache):
            loss = model(**batch).loss
        loss.backward()
        grads[cache] = {n: p.grad.clone() for n, p in model.named_parameters()}
        model.zero_grad(set_to_none=True)
        report.note("cast_cache", f"forward casts, cache {'on' if cache else 'off'}",
                    shared_qkv_weight=counter.counts.get(qkv, 0), all_weights=sum(counter.counts.values()),
                    layer_applications=applications)
    loss = model(**batch).loss
    loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model.train()
    for cache in (True, False):
        g = grads[cache][qkv]
        err = ((g - ref[qkv]).norm() / ref[qkv].norm()).item()
        report.note("cast_cache", f"shared qkv grad error vs fp32, cache {'on' if cache else 'off'}", rel_err=err)
    other = copy.deepcopy(model)
    t = compare({"cache off": train_step(other, batch, device, low, cache_enabled=False),
                 "cache on": train_step(model, batch, device, low, cache_enabled=True)}, device, args.repeats)
    report.add("cast_cache", f"train PreTraining {low}", "cache off", "cache on", t)


def bench_mask(args, device, report: Report) -> None:
    """A batch without padding runs with mask=None (the collate leaves the mask out), which lets
    SDPA use its flash kernel; an all-ones mask is applied as given (no host sync to drop it), and
    a real padding mask rules the flash kernel out."""
    model = make_model("AlbertModel", args, device)
    batch = batch_for("AlbertModel", args.batch, args.seq, device, hf=False)
    ids, types = batch["input_ids"], batch["token_type_ids"]
    ones = torch.ones_like(ids)
    padded = ones.clone()
    padded[0, -1] = 0  # one padded key: the mask must be applied
    variants = {}
    for name, mask in (("padded", padded), ("all ones", ones), ("none", None)):
        variants[name] = infer(model, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
                               device, args.precision)
    t = compare(variants, device, args.repeats)
    report.add("mask", "infer, mask with padding vs none", "padded", "none", t)
    report.add("mask", "infer, all-ones mask vs none", "all ones", "none", t)


def bench_adamw(args, device, report: Report) -> None:
    model = make_model("AlbertForPreTraining", args, device)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    variants = {}
    kinds = {"for-loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}
    for name, kw in kinds.items():
        m = copy.deepcopy(model)
        for p, q in zip(model.parameters(), m.parameters()):
            q.grad = p.grad.clone()
        opt = torch.optim.AdamW(param_groups(m, 0.01, 1e-4), lr=1e-4, eps=1e-6, **kw)
        try:
            opt.step()
        except RuntimeError as e:  # fused AdamW not built for this device
            report.note("adamw", f"{name} AdamW unavailable", error=str(e)[:80])
            continue
        variants[name] = opt.step
    t = compare(variants, device, max(args.repeats, 10))
    n = sum(p.numel() for p in model.parameters())
    report.add("adamw", f"step, {n / 1e6:.1f}M params", "for-loop", "foreach", t)
    if "fused" in t:
        report.add("adamw", f"step, {n / 1e6:.1f}M params", "for-loop", "fused", t)


class PerParameterLamb(torch.optim.Optimizer):
    """The same LAMB as albert.optim.Lamb (no bias correction), one parameter at a time."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, trust_ratio=True))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                update = m / (v.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                ratio = 1.0
                if group["trust_ratio"]:
                    w, u = p.norm(), update.norm()
                    ratio = torch.where((w > 0) & (u > 0), w / u, torch.ones_like(w))
                p.add_(update * (ratio * -group["lr"]))


def bench_lamb(args, device, report: Report) -> None:
    model = make_model("AlbertForPreTraining", args, device)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    copies = {}
    for name in ("per-parameter", "foreach"):
        m = copy.deepcopy(model)
        for p, q in zip(model.parameters(), m.parameters()):
            q.grad = p.grad.clone()
        cls = PerParameterLamb if name == "per-parameter" else Lamb
        copies[name] = (m, cls(param_groups(m, 0.01, 1e-3), lr=1e-3))
    for m, opt in copies.values():
        opt.step()
    a, b = (torch.cat([p.flatten() for p in m.parameters()]) for m, _ in copies.values())
    same = torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    t = compare({name: opt.step for name, (_, opt) in copies.items()}, device, max(args.repeats, 10))
    report.add("lamb", "step", "per-parameter", "foreach", t, note="" if same else "RESULTS DIFFER")


def bench_compile(args, device, report: Report) -> None:
    """The MLM head gathers a fixed number of masked positions, so the pretraining step has static
    shapes; the graph count is reported with and without dynamo's capture of data-dependent
    operators (it should not matter any more)."""
    head = "AlbertForPreTraining"
    model = make_model(head, args, device)
    batch = batch_for(head, args.batch, args.seq, device, hf=False)
    for capture in (False, True):
        torch._dynamo.config.capture_dynamic_output_shape_ops = capture
        explained = torch._dynamo.explain(model)(**batch)
        report.note("compile", f"graphs, capture_dynamic_output_shape_ops={capture}",
                    graphs=explained.graph_count, breaks=explained.graph_break_count)
    torch._dynamo.reset()
    model.zero_grad(set_to_none=True)
    other = copy.deepcopy(model)
    compiled = torch.compile(other, mode=args.compile_mode)
    eager_step, compiled_step = (train_step(model, batch, device, args.precision),
                                 train_step(compiled, batch, device, args.precision))
    t0 = time.perf_counter()
    compiled_step()
    sync(device)
    first = time.perf_counter() - t0
    compiled_step()  # a second call: some modes (CUDA graphs) record on it
    t = compare({"eager": eager_step, "compiled": compiled_step}, device, args.repeats)
    report.add("compile", f"train {head.removeprefix('AlbertFor')} ({args.compile_mode or 'default'})",
               "eager", "compiled", t, note=f"first call (compiling) {first:.1f} s")
    t0 = time.perf_counter()
    run = infer(compiled, inputs_of(batch), device, args.precision)
    run()
    sync(device)
    first = time.perf_counter() - t0
    t = compare({"eager": infer(model, inputs_of(batch), device, args.precision), "compiled": run},
                device, args.repeats)
    report.add("compile", "infer", "eager", "compiled", t, note=f"first call (compiling) {first:.1f} s")


def _conll():
    from bench_finetune import load_features

    return load_features(256, 8000, None)


def bench_batching(args, device, report: Report) -> None:
    import numpy as np

    from albert.data.batch_order import LengthGroupedSampler
    from bench_finetune import padding_stats

    _, train, _, _ = _conll()
    lengths = np.asarray(train["length"])
    for batch_size in sorted({32, args.batch}):
        stats = {}
        for name, lens in (("random", None), ("grouped", lengths)):
            sampler = LengthGroupedSampler(len(lengths), batch_size, lengths=lens, seed=0)
            stats[name] = padding_stats([mb for step in sampler.steps() for mb in step], lengths)
        report.note("batching", f"CoNLL epoch, batch {batch_size}",
                    random_padding=stats["random"]["padding_fraction"],
                    grouped_padding=stats["grouped"]["padding_fraction"],
                    padded_tokens_ratio=stats["random"]["padded_tokens"] / stats["grouped"]["padded_tokens"])


def bench_loader(args, device, report: Report) -> None:
    """Steady state: the loaders (and their worker processes) are made once and warmed up; the
    workers' start-up is reported apart."""
    task, train, _, _ = _conll()
    n_batches = 100

    def feed(workers: int, pin: bool) -> Callable[[], None]:
        loader = torch.utils.data.DataLoader(train, batch_size=32, shuffle=True, collate_fn=task.collate,
                                             num_workers=workers, pin_memory=pin, persistent_workers=workers > 0,
                                             generator=torch.Generator().manual_seed(0))

        def run() -> None:
            for i, b in enumerate(loader):
                if device.type == "cuda":
                    b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
                if i + 1 == n_batches:
                    break
            sync(device)
        return run

    variants = {"0 workers": feed(0, False), "2 workers": feed(2, False)}
    t0 = time.perf_counter()
    variants["2 workers"]()
    report.note("loader", "2 workers: start + 100 batches", seconds=time.perf_counter() - t0)
    t = compare(variants, device, args.repeats)
    report.add("loader", f"{n_batches} CoNLL batches of 32", "0 workers", "2 workers", t)
    if device.type == "cuda":
        t = compare({"pageable": feed(0, False), "pinned": feed(0, True)}, device, args.repeats)
        report.add("loader", f"{n_batches} batches + H2D copy", "pageable", "pinned", t)
        big = batch_for("AlbertForPreTraining", args.batch, args.seq, torch.device("cpu"), hf=False)
        pinned = {k: v.pin_memory() for k, v in big.items()}

        def copy_of(b: dict) -> Callable[[], None]:
            return lambda: [v.to(device, non_blocking=True) for v in b.values()]
        t = compare({"pageable": copy_of(big), "pinned": copy_of(pinned)}, device, 20)
        report.add("loader", f"H2D copy of a b{args.batch} s{args.seq} batch", "pageable", "pinned", t)


# --- main -------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                    help="precision of the comparisons other than autocast/cast_cache")
    ap.add_argument("--shape", default="base")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=None)
    ap.add_argument("--skip", nargs="+", choices=SECTIONS, default=[])
    ap.add_argument("--compile-mode", default=None,
                    help="torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="bench/results/fast_paths.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sections = [s for s in (args.only or SECTIONS) if s not in args.skip]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), threads {torch.get_num_threads()}, torch {torch.__version__}; "
          f"shape {args.shape}, batch {args.batch}, seq {args.seq}, {args.precision}, repeats {args.repeats}")
    report = Report()
    for s in sections:
        globals()[f"bench_{s}"](args, device, report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": str(device), "device_name": name, "threads": torch.get_num_threads(),
                               "torch": torch.__version__, "python": platform.python_version(),
                               "settings": vars(args), "results": report.rows}, indent=2))


if __name__ == "__main__":
    main()
