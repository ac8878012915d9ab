"""ALBERT in plain PyTorch.

Factorized embeddings (vocab -> E -> H), one or a few transformer layers whose parameters are
shared across all depths, post-LayerNorm blocks as in the paper, and the task heads.

Parameter names are our own (`embed`, `encoder.groups.{g}.layers.{i}.qkv`, ...); the table in
`albert/checkpoint.py` maps them to and from Hugging Face transformers' names.
"""
from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from . import checkpoint
from .config import ACTIVATIONS, AlbertConfig
from .errors import AlbertError, cli_main


@dataclass
class ModelOutput:
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    mlm_logits: torch.Tensor | None = None
    sop_logits: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    sop_loss: torch.Tensor | None = None


class Embeddings(nn.Module):
    """Word + position + token-type embeddings at width E, LayerNorm, then projection E -> H."""

    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.embedding_size, padding_idx=c.pad_token_id)
        self.position = nn.Embedding(c.max_position_embeddings, c.embedding_size)
        self.token_type = nn.Embedding(c.type_vocab_size, c.embedding_size)
        self.norm = nn.LayerNorm(c.embedding_size, eps=c.layer_norm_eps)
        self.drop = nn.Dropout(c.hidden_dropout_prob)
        self.proj = nn.Linear(c.embedding_size, c.hidden_size)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        T = input_ids.shape[1]
        x = self.word(input_ids) + self.position.weight[:T]
        if token_type_ids is None:
            x = x + self.token_type.weight[0]
        else:
            x = x + self.token_type(token_type_ids)
        return self.proj(self.drop(self.norm(x)))


ATTENTION_IMPLS = ("sdpa", "sdpa-cudnn", "eager")
# SDPA's kernels for "sdpa": all but cuDNN's, which builds an execution graph for every new shape,
# and length-grouped fine-tuning batches come in dozens of shapes (bench/README.md, "GPU").
# Flash attention has no per-shape set-up. "sdpa-cudnn" lets torch choose among all of them.
SDPA_KERNELS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
CUDNN_DEVICES = ("cuda",)  # where SDPA may pick cuDNN: elsewhere the kernel choice is left alone, at no cost


def _eager_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                     dropout_p: float) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v written out, the reference SDPA is measured against (bench/)."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if mask is not None:  # True = attend
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = F.dropout(scores.softmax(-1), dropout_p) if dropout_p > 0 else scores.softmax(-1)
    return probs @ v


class Layer(nn.Module):
    """One transformer block, post-LN: x = LN(x + attn(x)); x = LN(x + ffn(x)).

    `attention_impl` ("sdpa", "sdpa-cudnn" or "eager") is a runtime switch, not part of the
    config: SDPA's fused kernels but cuDNN's by default, all of them, or the written-out softmax
    for comparison (`set_attention_impl`)."""

    attention_impl = "sdpa"

    def __init__(self, c: AlbertConfig):
        super().__init__()
        H = c.hidden_size
        self.n_heads = c.num_attention_heads
        self.qkv = nn.Linear(H, 3 * H)  # q, k and v in one matmul
        self.attn_out = nn.Linear(H, H)
        self.attn_norm = nn.LayerNorm(H, eps=c.layer_norm_eps)
        self.ffn_in = nn.Linear(H, c.intermediate_size)
        self.ffn_out = nn.Linear(c.intermediate_size, H)
        self.ffn_norm = nn.LayerNorm(H, eps=c.layer_norm_eps)
        self.act = ACTIVATIONS[c.hidden_act]
        self.attn_drop = c.attention_probs_dropout_prob
        self.drop = nn.Dropout(c.hidden_dropout_prob)

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, H) -> q, k, v as (B, heads, T, H / heads) views of one fused matmul's output.

        Split at dim 2 of (B, T, 3, heads, d), then transposed: in the backward pass the three
        gradients are stacked straight into the matmul output's layout. Splitting a (3, B, heads,
        T, d) permutation instead gives the same views but copies the stacked gradients once more
        per layer application, to make them contiguous."""
        B, T, H = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, H // self.n_heads).unbind(2)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, H = x.shape
        q, k, v = self.project_qkv(x)
        p = self.attn_drop if self.training else 0.0
        if self.attention_impl == "eager":
            a = _eager_attention(q, k, v, mask, p)
        else:
            leave_cudnn_out = self.attention_impl == "sdpa" and q.device.type in CUDNN_DEVICES
            with sdpa_kernel(SDPA_KERNELS) if leave_cudnn_out else contextlib.nullcontext():
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        a = a.transpose(1, 2).reshape(B, T, H)
        x = self.attn_norm(x + self.drop(self.attn_out(a)))
        # The reference TF code applies dropout to the FFN output too; transformers leaves it out.
        # With ALBERT v2's zero dropout the two agree.
        return self.ffn_norm(x + self.drop(self.ffn_out(self.act(self.ffn_in(x)))))


class LayerGroup(nn.Module):
    """`inner_group_num` layers that run in sequence and share one set of parameters per depth."""

    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.inner_group_num))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x


class Encoder(nn.Module):
    """L layer applications over G parameter groups: layer i uses group int(i / (L / G))."""

    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.groups = nn.ModuleList(LayerGroup(c) for _ in range(c.num_hidden_groups))
        self.schedule = [c.group_of_layer(i) for i in range(c.num_hidden_layers)]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for g in self.schedule:
            x = self.groups[g](x, mask)
        return x


def attention_bias(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, T) 1/0 padding mask -> boolean (B, 1, 1, T) mask for SDPA, or None for None.

    Whether a batch has padding at all is decided on the host, where the batch is made: a
    collate leaves `attention_mask` out when no row is padded (`pad_batch(..., mask_unpadded=
    False)`), and SDPA may then take its flash kernel. Looking at the mask here would read a
    value back from the device: a host sync every step, and a graph break under torch.compile."""
    if attention_mask is None:
        return None
    return attention_mask[:, None, None, :].bool()


class AlbertPreTrainedModel(nn.Module):
    """Shared behaviour: initialisation, loading/saving HF checkpoints, FLOP counts."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.config = config

    # --- initialisation, as ALBERT: N(0, initializer_range), LayerNorm 1/0, zero biases ---
    def init_weights(self) -> None:
        """Initialise every parameter of the model afresh."""
        self._init_modules(self.modules())

    def _init_head(self) -> None:
        """Initialise what a head adds; its backbone initialised itself when it was built, and
        drawing its weights a second time would only waste the first draw."""
        self._init_modules(m for name, child in self.named_children() if name != "backbone"
                           for m in child.modules())

    def _init_modules(self, modules: Iterable[nn.Module]) -> None:
        std = self.config.initializer_range
        for m in modules:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, std)
                if m.padding_idx is not None:
                    with torch.no_grad():
                        m.weight[m.padding_idx].zero_()
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, MLMHead):
                nn.init.zeros_(m.bias)

    # --- checkpoints (the mapping lives in checkpoint.py) ---
    @classmethod
    def from_pretrained(cls, path: str | Path, **config_overrides: Any):
        return checkpoint.load_pretrained(cls, path, **config_overrides)

    def save_pretrained(self, directory: str | Path) -> None:
        checkpoint.save_pretrained(self, directory)

    def set_attention_impl(self, impl: str) -> None:
        """Attention kernel of every layer: "sdpa" (fused, no cuDNN: the default), "sdpa-cudnn"
        (fused, cuDNN's kernel where torch prefers it) or "eager" (plain softmax)."""
        if impl not in ATTENTION_IMPLS:
            raise AlbertError(f"attention_impl must be one of {', '.join(ATTENTION_IMPLS)}, got {impl!r}")
        for m in self.modules():
            if isinstance(m, Layer):
                m.attention_impl = impl

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self, seq_len: int, head_fraction: float = 1.0) -> float:
        """Training FLOPs per token (forward + backward = 3x forward; 2 FLOPs per multiply-add).

        Parameters are shared but compute is not: every one of the L * inner_group_num layer
        applications counts. `head_fraction` is the share of tokens the output head runs on
        (0.15-ish for MLM at masked positions only)."""
        c = self.config
        H, E, I = c.hidden_size, c.embedding_size, c.intermediate_size
        n_layers = c.num_hidden_layers * c.inner_group_num
        matmul = n_layers * (4 * H * H + 2 * H * I) + E * H
        attention = n_layers * 2 * seq_len * H  # QK^T and AV, multiply-adds per token
        head = self._head_matmul_params() * head_fraction
        return 6.0 * (matmul + attention + head)

    def _head_matmul_params(self) -> int:
        return 0

    def layer_depths(self) -> dict[str, int]:
        """Depth of each parameter for layer-wise LR decay: embeddings 0, encoder group g at
        g + 1 (shared layers share a depth), pooler and heads on top."""
        top = self.config.num_hidden_groups + 1
        depths = {}
        for name, _ in self.named_parameters():
            local = name.removeprefix("backbone.")
            if local.startswith("embed."):
                depths[name] = 0
            elif local.startswith("encoder.groups."):
                depths[name] = int(local.split(".")[2]) + 1
            else:
                depths[name] = top
        return depths


class AlbertModel(AlbertPreTrainedModel):
    """The backbone: embeddings, shared encoder, optional pooler (tanh(W h_[CLS]))."""

    def __init__(self, config: AlbertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embed = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.init_weights()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> ModelOutput:
        h = self.encoder(self.embed(input_ids, token_type_ids), attention_bias(attention_mask))
        pooled = torch.tanh(self.pooler(h[:, 0])) if self.pooler is not None else None
        return ModelOutput(last_hidden_state=h, pooler_output=pooled)


class MLMHead(nn.Module):
    """H -> E dense, activation, LayerNorm, then logits through the (tied) word embeddings."""

    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.embedding_size)
        self.act = ACTIVATIONS[c.hidden_act]
        self.norm = nn.LayerNorm(c.embedding_size, eps=c.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))

    def forward(self, h: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        return F.linear(self.norm(self.act(self.dense(h))), word_embeddings, self.bias)


def _mlm(head: MLMHead, h: torch.Tensor, word: torch.Tensor, labels: torch.Tensor | None,
         positions: torch.Tensor | None = None, position_labels: torch.Tensor | None = None
         ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """MLM logits and loss; the head runs only at masked positions when they are known, because
    the vocab projection is the largest matmul of a small ALBERT and 85% of its rows would be
    thrown away.

    - `positions` (B, P) with `position_labels` (B, P): the training path. P is fixed (the
      masker's max_predictions), padded with any position and label -100; the head runs on a
      gather of B x P rows, so shapes do not depend on the data and nothing is read back from the
      device (CUDA graphs can capture it). Logits (B, P, V).
    - `labels` (B, T), -100 where nothing is predicted (transformers' layout): the head runs at
      the labelled positions, picked by a boolean index, which reads the count back from the
      device. Logits (number labelled, V), in row-major order.
    - neither: logits at every position (B, T, V), no loss."""
    if positions is not None:
        if position_labels is None:
            raise AlbertError("mlm_positions needs mlm_labels (the original ids, -100 on padding)")
        rows = h.gather(1, positions.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
        logits = head(rows, word)
        targets = position_labels.reshape(-1)
        summed = F.cross_entropy(logits.float().flatten(0, 1), targets, ignore_index=-100, reduction="sum")
        return logits, summed / (targets != -100).sum().clamp(min=1)
    if labels is None:
        return head(h, word), None
    selected = labels != -100
    logits = head(h[selected], word)
    # The mean written as sum / count, so that a batch with nothing masked gives a zero loss
    # (still part of the graph) without a branch on the count, which torch.compile cannot trace.
    loss = F.cross_entropy(logits.float(), labels[selected], reduction="sum") / selected.sum().clamp(min=1)
    return logits, loss


class AlbertForPreTraining(AlbertPreTrainedModel):
    """MLM head (tied to the word embeddings) + sentence-order prediction head; loss = MLM + SOP.

    MLM targets come either as `mlm_positions` + `mlm_labels` (B, P), what the pretraining
    collate gives, or as full-length `labels` (B, T) as in transformers (see `_mlm`)."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.backbone = AlbertModel(config)
        self.mlm = MLMHead(config)
        self.sop_drop = nn.Dropout(config.classifier_dropout_prob or 0.0)
        # Sized by num_labels (2 for sentence order) as transformers does, so its checkpoints load.
        self.sop = nn.Linear(config.hidden_size, config.num_labels)
        self._init_head()

    def _head_matmul_params(self) -> int:
        c = self.config
        return c.hidden_size * c.embedding_size + c.embedding_size * c.vocab_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                sentence_order_label: torch.Tensor | None = None, mlm_positions: torch.Tensor | None = None,
                mlm_labels: torch.Tensor | None = None) -> ModelOutput:
        out = self.backbone(input_ids, attention_mask, token_type_ids)
        mlm_logits, mlm_loss = _mlm(self.mlm, out.last_hidden_state, self.backbone.embed.word.weight, labels,
                                    mlm_positions, mlm_labels)
        sop_logits = self.sop(self.sop_drop(out.pooler_output))
        sop_loss = None
        if sentence_order_label is not None:
            sop_loss = F.cross_entropy(sop_logits.float(), sentence_order_label.view(-1))
        losses = [x for x in (mlm_loss, sop_loss) if x is not None]
        return ModelOutput(loss=sum(losses) if losses else None, mlm_logits=mlm_logits, sop_logits=sop_logits,
                           mlm_loss=mlm_loss, sop_loss=sop_loss, last_hidden_state=out.last_hidden_state,
                           pooler_output=out.pooler_output)


class AlbertForMaskedLM(AlbertPreTrainedModel):
    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.backbone = AlbertModel(config, add_pooling_layer=False)
        self.mlm = MLMHead(config)
        self._init_head()

    def _head_matmul_params(self) -> int:
        c = self.config
        return c.hidden_size * c.embedding_size + c.embedding_size * c.vocab_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                mlm_positions: torch.Tensor | None = None, mlm_labels: torch.Tensor | None = None) -> ModelOutput:
        out = self.backbone(input_ids, attention_mask, token_type_ids)
        logits, loss = _mlm(self.mlm, out.last_hidden_state, self.backbone.embed.word.weight, labels,
                            mlm_positions, mlm_labels)
        return ModelOutput(loss=loss, logits=logits, mlm_logits=logits, last_hidden_state=out.last_hidden_state)


class AlbertForSequenceClassification(AlbertPreTrainedModel):
    """Classifier on the pooled [CLS] vector; num_labels == 1 means regression (MSE)."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.backbone = AlbertModel(config)
        self.drop = nn.Dropout(config.classifier_dropout_prob or 0.0)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self._init_head()

    def _head_matmul_params(self) -> int:
        return self.config.hidden_size * (self.config.hidden_size + self.config.num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> ModelOutput:
        out = self.backbone(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.drop(out.pooler_output))
        loss = None
        if labels is not None:
            if self.config.num_labels == 1:
                loss = F.mse_loss(logits.float().squeeze(-1), labels.float())
            elif labels.dtype.is_floating_point:  # multi-label targets
                loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
            else:
                loss = F.cross_entropy(logits.float(), labels.view(-1))
        return ModelOutput(loss=loss, logits=logits, pooler_output=out.pooler_output)


class AlbertForMultipleChoice(AlbertForSequenceClassification):
    """One score per option: the sequence classifier with one output over the pooled output of
    each option's sequence. Inputs (B, options, T); logits (B, options); cross-entropy over options."""

    def __init__(self, config: AlbertConfig):
        # One score per option, as transformers' head (options have no label names).
        super().__init__(config.replace(num_labels=1, id2label=None))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> ModelOutput:
        b, k, t = input_ids.shape
        flat = [x.reshape(b * k, t) if x is not None else None for x in (input_ids, attention_mask, token_type_ids)]
        out = super().forward(*flat)
        logits = out.logits.view(b, k)
        loss = F.cross_entropy(logits.float(), labels.view(-1)) if labels is not None else None
        return ModelOutput(loss=loss, logits=logits, pooler_output=out.pooler_output)


class AlbertForTokenClassification(AlbertPreTrainedModel):
    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.backbone = AlbertModel(config, add_pooling_layer=False)
        p = config.classifier_dropout_prob
        self.drop = nn.Dropout(config.hidden_dropout_prob if p is None else p)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self._init_head()

    def _head_matmul_params(self) -> int:
        return self.config.hidden_size * self.config.num_labels

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> ModelOutput:
        out = self.backbone(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.drop(out.last_hidden_state))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1))
        return ModelOutput(loss=loss, logits=logits)


class AlbertForQuestionAnswering(AlbertPreTrainedModel):
    """Span extraction: a start and an end logit per token."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.backbone = AlbertModel(config, add_pooling_layer=False)
        self.qa = nn.Linear(config.hidden_size, 2)
        self._init_head()

    def _head_matmul_params(self) -> int:
        return self.config.hidden_size * 2

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, start_positions: torch.Tensor | None = None,
                end_positions: torch.Tensor | None = None) -> ModelOutput:
        out = self.backbone(input_ids, attention_mask, token_type_ids)
        start_logits, end_logits = self.qa(out.last_hidden_state).unbind(-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            # Positions outside the window (clamped to T) are ignored, as in transformers.
            T = start_logits.shape[1]
            s = start_positions.view(-1).clamp(0, T)
            e = end_positions.view(-1).clamp(0, T)
            loss = (F.cross_entropy(start_logits.float(), s, ignore_index=T)
                    + F.cross_entropy(end_logits.float(), e, ignore_index=T)) / 2
        return ModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits)


HEADS: dict[str, type[AlbertPreTrainedModel]] = {
    cls.__name__: cls for cls in (AlbertModel, AlbertForPreTraining, AlbertForMaskedLM,
                                  AlbertForSequenceClassification, AlbertForMultipleChoice,
                                  AlbertForTokenClassification, AlbertForQuestionAnswering)
}


# --- command line: python -m albert.model DIR [--head CLASS] -----------------------------------

def main(argv: list[str] | None = None) -> int:
    """Check that a checkpoint loads: print its shape, parameter count and what did not match."""
    ap = argparse.ArgumentParser(prog="python -m albert.model", description=main.__doc__)
    ap.add_argument("path", help="checkpoint directory or hub name")
    ap.add_argument("--head", choices=sorted(HEADS), help="class to load (default: the config's architectures)")
    args = ap.parse_args(argv)
    directory = checkpoint.resolve(args.path)
    config = checkpoint.load_config(directory)
    head = args.head or next((a for a in (config.architectures or []) if a in HEADS), "AlbertModel")
    model = HEADS[head].from_pretrained(directory)
    c = model.config
    print(f"{head}: {model.num_parameters():,} parameters; vocab {c.vocab_size}, E {c.embedding_size}, "
          f"H {c.hidden_size}, {c.num_hidden_layers} layers over {c.num_hidden_groups} group(s) x "
          f"{c.inner_group_num}, {c.num_attention_heads} heads, FFN {c.intermediate_size}, {c.hidden_act}")
    print(f"load: {model.load_report}")
    return 0


if __name__ == "__main__":
    cli_main(main)()
