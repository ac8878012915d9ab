"""Loading and saving Hugging Face ALBERT checkpoints.

The table below is the one place that speaks transformers' parameter names. Each row maps
one of our tensors to the transformers tensor(s) it is made from; a tuple of names means
they are concatenated along dim 0 (our fused q/k/v projection).

Loading never executes code from a checkpoint: safetensors first, and `.bin` files through
`torch.load(weights_only=True)`.

This module knows parameter names, not model classes: a model is any module with a `config`
and, for the task heads, a `backbone` submodule (`albert.model` builds on this module, never
the other way round).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from huggingface_hub import snapshot_download
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import as_os_error, atomic_path
from .config import AlbertConfig
from .errors import AlbertError

log = logging.getLogger("albert")

Theirs = str | tuple[str, ...]

# (ours, theirs): backbone tensors, relative to the backbone ("albert." in transformers).
BACKBONE_TABLE: list[tuple[str, Theirs]] = [
    ("embed.word.weight", "embeddings.word_embeddings.weight"),
    ("embed.position.weight", "embeddings.position_embeddings.weight"),
    ("embed.token_type.weight", "embeddings.token_type_embeddings.weight"),
    ("embed.norm.weight", "embeddings.LayerNorm.weight"),
    ("embed.norm.bias", "embeddings.LayerNorm.bias"),
    ("embed.proj.weight", "encoder.embedding_hidden_mapping_in.weight"),
    ("embed.proj.bias", "encoder.embedding_hidden_mapping_in.bias"),
    ("pooler.weight", "pooler.weight"),
    ("pooler.bias", "pooler.bias"),
]

# One shared layer: ours under "encoder.groups.{g}.layers.{i}.",
# theirs under "encoder.albert_layer_groups.{g}.albert_layers.{i}.".
LAYER_TABLE: list[tuple[str, Theirs]] = [
    ("qkv.weight", ("attention.query.weight", "attention.key.weight", "attention.value.weight")),
    ("qkv.bias", ("attention.query.bias", "attention.key.bias", "attention.value.bias")),
    ("attn_out.weight", "attention.dense.weight"),
    ("attn_out.bias", "attention.dense.bias"),
    ("attn_norm.weight", "attention.LayerNorm.weight"),
    ("attn_norm.bias", "attention.LayerNorm.bias"),
    ("ffn_in.weight", "ffn.weight"),
    ("ffn_in.bias", "ffn.bias"),
    ("ffn_out.weight", "ffn_output.weight"),
    ("ffn_out.bias", "ffn_output.bias"),
    ("ffn_norm.weight", "full_layer_layer_norm.weight"),
    ("ffn_norm.bias", "full_layer_layer_norm.bias"),
]
OUR_LAYER = "encoder.groups.{g}.layers.{i}."
THEIR_LAYER = "encoder.albert_layer_groups.{g}.albert_layers.{i}."

# Heads, at the top level of both.
HEAD_TABLE: list[tuple[str, Theirs]] = [
    ("mlm.dense.weight", "predictions.dense.weight"),
    ("mlm.dense.bias", "predictions.dense.bias"),
    ("mlm.norm.weight", "predictions.LayerNorm.weight"),
    ("mlm.norm.bias", "predictions.LayerNorm.bias"),
    ("mlm.bias", "predictions.bias"),
    ("sop.weight", "sop_classifier.classifier.weight"),
    ("sop.bias", "sop_classifier.classifier.bias"),
    ("classifier.weight", "classifier.weight"),
    ("classifier.bias", "classifier.bias"),
    ("qa.weight", "qa_outputs.weight"),
    ("qa.bias", "qa_outputs.bias"),
]

# In checkpoints but not parameters of ours: the legacy position-ids buffer, and the MLM
# decoder, which is tied to the word embeddings (weight) and to predictions.bias (bias).
IGNORED = {"embeddings.position_ids", "predictions.decoder.weight", "predictions.decoder.bias"}

OUR_BACKBONE, THEIR_BACKBONE = "backbone.", "albert."

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def mapping(config: AlbertConfig, has_backbone: bool) -> dict[str, Theirs]:
    """Our full parameter name -> transformers' name(s), expanded for this config's groups."""
    ours, theirs = (OUR_BACKBONE, THEIR_BACKBONE) if has_backbone else ("", "")
    table: dict[str, Theirs] = {}

    def add(o: str, t: Theirs, our_prefix: str, their_prefix: str) -> None:
        table[our_prefix + o] = tuple(their_prefix + x for x in t) if isinstance(t, tuple) else their_prefix + t

    for o, t in BACKBONE_TABLE:
        add(o, t, ours, theirs)
    for g in range(config.num_hidden_groups):
        for i in range(config.inner_group_num):
            for o, t in LAYER_TABLE:
                add(o, t, ours + OUR_LAYER.format(g=g, i=i), theirs + THEIR_LAYER.format(g=g, i=i))
    for o, t in HEAD_TABLE:
        add(o, t, "", "")
    return table


@dataclass
class LoadReport:
    """What a load did not match, by name: shown to the user, kept on `model.load_report`."""

    initialised: list[str] = field(default_factory=list)  # ours, not in the checkpoint
    unused: list[str] = field(default_factory=list)  # theirs, not consumed

    def __str__(self) -> str:
        parts = []
        if self.initialised:
            parts.append("newly initialised (not in the checkpoint): " + ", ".join(self.initialised))
        if self.unused:
            parts.append("unused tensors in the checkpoint: " + ", ".join(self.unused))
        return "; ".join(parts) or "all tensors matched"

    @property
    def only_heads(self) -> bool:
        """Whether every mismatch is outside the embeddings and the encoder: a task head (or the
        pooler) new to this model, or a pretraining head it does not use. That is what starting
        a task from a pretrained checkpoint always gives, not something to warn about."""
        return not any(("embeddings" in k or "encoder" in k) for k in self.initialised + self.unused)


# --- reading ---------------------------------------------------------------------------------

def resolve(path: str | os.PathLike) -> Path:
    """A local checkpoint directory, or a hub name fetched through the Hugging Face cache."""
    p = Path(path)
    if p.is_dir():
        return p
    if p.exists():
        raise AlbertError(f"{p}: expected a checkpoint directory (config.json + model.safetensors), got a file")
    name = str(path)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local:
        raise AlbertError(f"{p}: no such checkpoint directory")
    patterns = ["config.json", "*.safetensors", "*.safetensors.index.json", "spiece.model",
                "tokenizer.json", "tokenizer_config.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]
    try:
        return Path(snapshot_download(name, allow_patterns=patterns))
    except Exception as e:  # offline, unknown repo, gated, ...: one line, not a traceback
        raise AlbertError(f"{name!r} is not a local directory and could not be fetched from the Hugging Face hub "
                          f"or found in its cache ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                          ) from None


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a HF checkpoint directory: safetensors or .bin, single file or sharded."""
    for name in WEIGHT_FILES:
        f = directory / name
        if not f.exists():
            continue
        if name.endswith(".index.json"):
            try:
                index = json.loads(f.read_text(encoding="utf-8"))
                shards = sorted(set(index["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
                raise AlbertError(f"{f}: not a valid shard index ({e})") from None
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(_read_file(directory / shard))
            return state
        return _read_file(f)
    raise AlbertError(f"{directory}: no weights found (looked for {', '.join(WEIGHT_FILES)})")


def _read_file(f: Path) -> dict[str, torch.Tensor]:
    if not f.exists():
        raise AlbertError(f"{f}: weight file listed in the index is missing")
    if f.suffix == ".safetensors":

        try:
            return load_file(str(f))
        except (SafetensorError, OSError, RuntimeError, ValueError) as e:
            raise AlbertError(f"{f}: corrupt or truncated safetensors file ({str(e).splitlines()[0]})") from None
    try:
        obj = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated zip archives, refused globals
        raise AlbertError(f"{f}: cannot read PyTorch weights ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise AlbertError(f"{f}: expected a dict of tensors")
    return obj


def load_config(directory: Path, **overrides: Any) -> AlbertConfig:
    f = directory / "config.json"
    if not f.exists():
        raise AlbertError(f"{directory}: no config.json; not a Hugging Face ALBERT checkpoint directory")
    config = AlbertConfig.from_json_file(f)
    if overrides:
        if "id2label" in overrides and "num_labels" not in overrides and overrides["id2label"]:
            overrides["num_labels"] = len(overrides["id2label"])
        if "num_labels" in overrides and "id2label" not in overrides:
            overrides["id2label"] = None
        config = config.replace(**overrides)
    return config


def has_backbone(model: nn.Module) -> bool:
    """A task head keeps the backbone under `backbone.` (transformers: `albert.`); a bare
    backbone has its tensors at the top level."""
    return isinstance(getattr(model, "backbone", None), nn.Module)


def load_pretrained(cls: type[nn.Module], path: str | os.PathLike, **overrides: Any):
    """Build `cls` from a HF checkpoint directory (or hub name), mapping every tensor by the table."""
    directory = resolve(path)
    config = load_config(directory, **overrides)
    state = read_state_dict(directory)
    model = cls(config)
    report = load_state(model, state, source=str(directory))
    model.load_report = report
    if report.initialised or report.unused:
        # A sweep loads the checkpoint once per trial: the expected head swap goes to the log only.
        level = logging.INFO if report.only_heads else logging.WARNING
        log.log(level, "%s from %s: %s", cls.__name__, directory, report)
    return model


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> LoadReport:
    """Copy tensors named as transformers names them into `model`, checking every shape."""
    head = has_backbone(model)
    # transformers writes a bare AlbertModel without the "albert." prefix, and heads with it.
    prefixed = any(k.startswith(THEIR_BACKBONE) for k in state)
    if head and not prefixed:
        state = {(k if _is_head_key(k) else THEIR_BACKBONE + k): v for k, v in state.items()}
    elif not head and prefixed:
        state = {k.removeprefix(THEIR_BACKBONE): v for k, v in state.items()}

    table = mapping(model.config, head)
    ours = model.state_dict()
    used: set[str] = set()
    report = LoadReport()
    new_state = {}
    for name, target in ours.items():
        theirs = table.get(name)
        if theirs is None:
            raise AlbertError(f"internal: no mapping for parameter {name}")
        names = theirs if isinstance(theirs, tuple) else (theirs,)
        if not all(n in state for n in names):
            report.initialised.append(name)
            continue
        parts = [state[n] for n in names]
        tensor = torch.cat(parts, 0) if len(parts) > 1 else parts[0]
        if tuple(tensor.shape) != tuple(target.shape):
            shown = names[0] if len(names) == 1 else "+".join(names)
            raise AlbertError(f"{source}: tensor {shown} has shape {tuple(tensor.shape)}, but the config "
                              f"({type(model).__name__}) expects {tuple(target.shape)}")
        if first_non_finite([(name, tensor)]) is not None:
            shown = names[0] if len(names) == 1 else "+".join(names)
            raise AlbertError(f"{source}: tensor {shown} holds NaN or inf values; the checkpoint is damaged or "
                              "was saved from a diverged run")
        new_state[name] = tensor.to(target.dtype)
        used.update(names)
    report.unused = sorted(k for k in state if k not in used and k.removeprefix(THEIR_BACKBONE) not in IGNORED
                           and k not in IGNORED)
    model.load_state_dict(new_state, strict=False)
    return report


def first_non_finite(named: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """The name of the first floating-point tensor holding NaN or inf, or None. One host read per
    device (the flags are stacked first), not one per tensor: it runs at every save."""
    flags = [(name, torch.isfinite(t).all()) for name, t in named if t.is_floating_point()]
    finite: dict[str, bool] = {}
    for device in {f.device for _, f in flags}:
        group = [(name, f) for name, f in flags if f.device == device]
        finite.update(zip((name for name, _ in group), torch.stack([f for _, f in group]).tolist()))
    return next((name for name, _ in flags if not finite[name]), None)


def _is_head_key(k: str) -> bool:
    return k.split(".")[0] in {"predictions", "sop_classifier", "classifier", "qa_outputs"}


# --- writing ---------------------------------------------------------------------------------

def to_hf_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our state dict under transformers' names (fused q/k/v split back into three tensors)."""
    table = mapping(model.config, has_backbone(model))
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        theirs = table[name]
        tensor = tensor.detach().cpu().contiguous()
        if isinstance(theirs, tuple):
            for n, part in zip(theirs, tensor.chunk(len(theirs), 0)):
                out[n] = part.contiguous()
        else:
            out[theirs] = tensor
    return out


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> None:
    """Write config.json + model.safetensors that `transformers.<Cls>.from_pretrained` loads
    with no missing or unexpected keys."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config.replace(architectures=[type(model).__name__])

    with atomic_path(directory / "model.safetensors") as tmp:
        try:
            save_file(to_hf_state_dict(model), str(tmp), metadata={"format": "pt"})
        except SafetensorError as e:  # its own error for a full disk: atomic_path names the file
            raise as_os_error(e, directory) from None
    config.save(directory)
