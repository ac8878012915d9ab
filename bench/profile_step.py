"""Where one training step's time goes: our model's step (forward, backward, AdamW) under
torch.profiler, after a warm-up, at the shape bench_model.py measures.

  python bench/profile_step.py --device cuda --precision bf16 --shape base --batch 128 --seq 128
  python bench/profile_step.py --shape micro --batch 2 --seq 32          # CPU: top operators

On CUDA it prints the step's wall time (median, synchronised, outside the profiler), the GPU
kernels' summed time per step and the rest of the step, when no kernel ran (a large idle share
means the step is bound by the host launching kernels, which CUDA graphs remove; a small one
that the kernels themselves are the cost, which fusion (torch.compile) cuts unless they are
matrix products), the kernel time by class (matrix products, attention, normalisation,
elementwise, softmax/loss/reductions, optimizer, copies and indexing, other), kernels launched
per step and the slowest kernels. On a CPU, the operators with the most self time. Writes a JSON
record to --out and SUMMARY lines.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_fast_paths import make_model, train_step  # noqa: E402
from bench_model import batch_for, sync, timed  # noqa: E402

# First match wins: flash-attention kernels are CUTLASS code too, so attention is tried first.
# Kernel names carry template arguments such as "{lambda()#1}": no pattern may match inside
# those ("lamb" did, and put casts and GELU under the optimizer in the first H200 profile).
KERNEL_CLASSES = (
    ("attention", r"flash|fmha|attention|efficient_attn|_sdpa_"),
    ("matmul", r"gemm|cutlass|xmma|nvjet|wgmma|cublas|sm90_|sm80_"),
    ("optimizer", r"multi_tensor_apply|fused_adam"),
    ("normalisation", r"layer_?norm|layernorm|rms_?norm|gammabeta"),
    ("softmax/loss/reduction", r"softmax|nll|cross_entropy|reduce_kernel|sum_functor|mean_|norm_kernel"),
    ("copy/cast/index", r"copy|memcpy|memset|cat|index|gather|scatter|embedding|fill|arange"),
    ("elementwise", r"elementwise|vectorized|unrolled|gelu|tanh|dropout|mul|add|where"),
)


def kernel_class(name: str) -> str:
    low = name.lower()
    return next((cls for cls, pattern in KERNEL_CLASSES if re.search(pattern, low)), "other")


def profile_steps(step, device: torch.device, steps: int) -> profile:
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    return prof


def kernel_table(prof: profile, steps: int, top: int) -> dict:
    """Per-step GPU kernel time by class and the slowest kernels (summed over launches)."""
    by_name: dict[str, list[float]] = defaultdict(list)
    for e in prof.events():
        if e.device_type == DeviceType.CUDA:
            by_name[e.name].append(e.time_range.elapsed_us() / 1e3)
    classes: dict[str, float] = defaultdict(float)
    for name, times in by_name.items():
        classes[kernel_class(name)] += sum(times) / steps
    kernels = sorted(((sum(t) / steps, len(t) / steps, n) for n, t in by_name.items()), reverse=True)
    rows = [{"ms": ms, "calls": calls, "class": kernel_class(n), "name": n[:240]} for ms, calls, n in kernels]
    return {"kernel_ms": sum(classes.values()), "launches": sum(len(t) for t in by_name.values()) / steps,
            "classes_ms": dict(sorted(classes.items(), key=lambda kv: -kv[1])),
            "top": rows[:top], "kernels": rows}  # all of them, so that they can be classed again


def operator_table(prof: profile, steps: int, top: int) -> dict:
    rows = sorted(prof.key_averages(), key=lambda a: -a.self_cpu_time_total)[:top]
    return {"top": [{"ms": a.self_cpu_time_total / 1e3 / steps, "calls": a.count / steps, "name": a.key} for a in rows]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast precision")
    ap.add_argument("--shape", default="base", help="model preset (micro, tiny, small, base, ...)")
    ap.add_argument("--head", default="AlbertForPreTraining", help="model head to train")
    ap.add_argument("--batch", type=int, default=128, help="rows per step")
    ap.add_argument("--seq", type=int, default=128, help="tokens per row")
    ap.add_argument("--steps", type=int, default=3, help="steps profiled (after --warmup)")
    ap.add_argument("--warmup", type=int, default=3, help="steps run before timing and profiling")
    ap.add_argument("--top", type=int, default=20, help="kernels (operators on a CPU) listed")
    ap.add_argument("--out", default="bench/results/profile.json", help="JSON record")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    model = make_model(args.head, args, device)
    step = train_step(model, batch_for(args.head, args.batch, args.seq, device, hf=False), device, args.precision)
    wall_ms = statistics.median(timed(step, device, max(3, args.steps), args.warmup)) * 1e3
    prof = profile_steps(step, device, args.steps)
    record = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
              else platform.processor() or platform.machine(), "torch": torch.__version__, "settings": vars(args),
              "step_ms": wall_ms, "tokens_per_s": args.batch * args.seq / wall_ms * 1e3}
    what = f"{args.head.removeprefix('AlbertFor')} {args.shape} b{args.batch} s{args.seq} {args.precision}"
    print(f"step {what}: {wall_ms:.2f} ms ({record['tokens_per_s']:,.0f} tokens/s)")
    if device.type == "cuda":
        table = kernel_table(prof, args.steps, args.top)
        idle = max(0.0, 1 - table["kernel_ms"] / wall_ms)
        record.update(table, gpu_idle_share=idle)
        print(f"kernels {table['kernel_ms']:.2f} ms per step, {table['launches']:.0f} launches; GPU idle {idle:.0%} of the step")
        for cls, ms in table["classes_ms"].items():
            print(f"  {cls:<24} {ms:8.2f} ms  {ms / table['kernel_ms']:6.1%}")
        summary = ", ".join(f"{cls} {ms / table['kernel_ms']:.0%}" for cls, ms in list(table["classes_ms"].items())[:4])
        print(f"SUMMARY profile {what}: step {wall_ms:.1f} ms, kernels {table['kernel_ms']:.1f} ms "
              f"({table['launches']:.0f} launches), GPU idle {idle:.0%}; {summary}")
    else:
        record.update(operator_table(prof, args.steps, args.top))
        print(f"SUMMARY profile {what}: step {wall_ms:.1f} ms; top operator {record['top'][0]['name']}")
    for row in record["top"]:
        print(f"  {row['ms']:8.3f} ms  x{row['calls']:<5.0f} {row.get('class', ''):<14} {row['name'][:110]}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
