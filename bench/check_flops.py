"""Check `model.flops_per_token` (the MFU numerator) against a hand count and against the FLOPs
torch itself counts (torch.utils.flop_counter) in one real training step.

  python bench/check_flops.py                      # base shape, seq 128, pretraining head
  python bench/check_flops.py --seq 512

The hand count, per token and per layer application (multiply-adds; FLOPs = 2x, training = 3x
forward, so 6 FLOPs per multiply-add):
  q, k, v, output projections  4 H^2        feed-forward      2 H I
  attention scores q k^T       T H          attention x v     T H
and once per token: the embedding projection E H, and the MLM head (H E + E V) on the share of
tokens it runs on (the masked 15%). The pooler and SOP head run once per sequence (left out).
The counted step uses the eager attention (written-out matmuls), which the flop counter sees;
its count of the CPU SDPA kernel is zero.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albert.config import preset  # noqa: E402
from albert.model import AlbertForPreTraining  # noqa: E402
from bench_model import batch_for  # noqa: E402


def hand_count(c, seq: int, head_fraction: float) -> dict[str, float]:
    """Multiply-adds per token, forward, by component."""
    H, E, I, V = c.hidden_size, c.embedding_size, c.intermediate_size, c.vocab_size
    L = c.num_hidden_layers * c.inner_group_num
    return {"qkvo projections": L * 4 * H * H, "feed-forward": L * 2 * H * I, "attention (qk, av)": L * 2 * seq * H,
            "embedding projection": E * H, "MLM head": (H * E + E * V) * head_fraction}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="base")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    config = preset(args.shape, vocab_size=30000, max_position_embeddings=max(512, args.seq))
    torch.manual_seed(0)
    model = AlbertForPreTraining(config)
    model.set_attention_impl("eager")
    batch = batch_for("AlbertForPreTraining", args.batch, args.seq, torch.device("cpu"), hf=False)
    tokens = args.batch * args.seq
    fraction = float((batch["labels"] != -100).sum()) / tokens

    counter = FlopCounterMode(display=False)
    with counter:
        model(**batch).loss.backward()
    counted = counter.get_total_flops() / tokens

    parts = hand_count(config, args.seq, fraction)
    print(f"{args.shape}: H={config.hidden_size} E={config.embedding_size} I={config.intermediate_size} "
          f"V={config.vocab_size} layer applications={config.num_hidden_layers * config.inner_group_num}, "
          f"seq {args.seq}, masked {fraction:.1%}")
    print(f"{'component':<24} {'MACs/token':>14} {'train FLOPs/token':>18}")
    for name, macs in parts.items():
        print(f"{name:<24} {macs:>14,.0f} {6 * macs:>18,.0f}")
    hand = 6 * sum(parts.values())
    model_fpt = model.flops_per_token(args.seq, head_fraction=fraction)
    print(f"{'total (hand)':<24} {sum(parts.values()):>14,.0f} {hand:>18,.0f}")
    print(f"model.flops_per_token: {model_fpt:,.0f}   torch flop counter: {counted:,.0f} per token "
          f"(counter / model = {counted / model_fpt:.4f})")
    print(f"SUMMARY flops_per_token {args.shape} seq {args.seq}: model {model_fpt / 1e6:.1f} MFLOP, hand "
          f"{hand / 1e6:.1f}, counted {counted / 1e6:.1f} ({counted / model_fpt - 1:+.2%})")


if __name__ == "__main__":
    main()
