"""ALBERT model configuration: one dataclass, the published v2 shapes, and HF config.json I/O."""
from __future__ import annotations

import dataclasses
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from .atomic import read_json_object, write_json
from .errors import AlbertError, require
from .schema import check_values, is_number


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    # The tanh approximation ALBERT was trained with ("gelu_new" in transformers).
    return F.gelu(x, approximate="tanh")


def _gelu_fast(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


# The one table of activations: the names transformers' config.json uses for `hidden_act`,
# and the function each stands for. Validation and the model both read it.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu": F.gelu,
    "gelu_fast": _gelu_fast,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


@dataclass
class AlbertConfig:
    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_hidden_groups: int = 1
    inner_group_num: int = 1
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    classifier_dropout_prob: float | None = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int | None = 0         # null (transformers allows it): no padding row
    bos_token_id: int | None = 2
    eos_token_id: int | None = 3
    # Task-head settings, saved in config.json the way transformers does.
    num_labels: int = 2
    id2label: dict[int, str] | None = None
    problem_type: str | None = None
    architectures: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    # Where the values came from (a config.json path), for error messages; not a setting.
    source: InitVar[str] = "ALBERT config"

    def __post_init__(self, source: str) -> None:
        self.validate(source)

    def validate(self, source: str = "ALBERT config") -> None:
        """Whether the values make sense together; raise `AlbertError("<source>: key 'x': ...")` if not.
        (Their types are checked by `from_hf_dict`, which reads untrusted JSON.)"""
        def key(name: str, ok: bool, problem: str) -> None:
            require(ok, f"{source}: key {name!r}: {problem}")

        for name in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_hidden_groups",
                     "inner_group_num", "num_attention_heads", "intermediate_size", "max_position_embeddings",
                     "type_vocab_size", "num_labels"):
            v = getattr(self, name)
            key(name, isinstance(v, int) and not isinstance(v, bool) and v > 0, f"must be a positive integer, got {v!r}")
        key("hidden_size", self.hidden_size % self.num_attention_heads == 0,
            f"{self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}")
        key("num_hidden_groups", self.num_hidden_groups <= self.num_hidden_layers,
            f"{self.num_hidden_groups} exceeds num_hidden_layers {self.num_hidden_layers}")
        key("hidden_act", self.hidden_act in ACTIVATIONS,
            f"{self.hidden_act!r} is not one of {', '.join(ACTIVATIONS)}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout_prob"):
            v = getattr(self, name)
            key(name, v is None and name == "classifier_dropout_prob" or is_number(v) and 0.0 <= v < 1.0,
                f"must be in [0, 1), got {v!r}")
        key("layer_norm_eps", is_number(self.layer_norm_eps) and self.layer_norm_eps > 0,
            f"must be a positive number, got {self.layer_norm_eps!r}")
        key("initializer_range", is_number(self.initializer_range) and self.initializer_range >= 0,
            f"must be a number >= 0, got {self.initializer_range!r}")
        # The embedding's padding row: outside the vocabulary, torch fails with an AssertionError.
        key("pad_token_id", self.pad_token_id is None or 0 <= self.pad_token_id < self.vocab_size,
            f"{self.pad_token_id} is outside the vocabulary (vocab_size {self.vocab_size})")
        if self.id2label is not None:
            key("id2label", sorted(self.id2label) == list(range(len(self.id2label))),
                f"keys must be the label ids 0..{len(self.id2label) - 1}, got {sorted(self.id2label)}")
            key("num_labels", self.num_labels == len(self.id2label),
                f"{self.num_labels} disagrees with the {len(self.id2label)} labels of id2label")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def group_of_layer(self, i: int) -> int:
        """The parameter group that layer i uses (ALBERT's cross-layer sharing rule)."""
        return int(i / (self.num_hidden_layers / self.num_hidden_groups))

    def replace(self, **changes: Any) -> "AlbertConfig":
        return dataclasses.replace(self, **changes)

    # --- Hugging Face config.json ---------------------------------------------------------
    def to_hf_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d = {**self.extra, **d}
        id2label = d.pop("id2label")
        if id2label is None:
            id2label = {i: f"LABEL_{i}" for i in range(self.num_labels)}
        d["id2label"] = {str(k): v for k, v in id2label.items()}
        d["label2id"] = {v: int(k) for k, v in id2label.items()}
        d.pop("num_labels")  # transformers derives it from id2label
        if d["architectures"] is None:
            d.pop("architectures")
        if d["problem_type"] is None:
            d.pop("problem_type")
        d["model_type"] = "albert"
        d["position_embedding_type"] = "absolute"
        return d

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> "AlbertConfig":
        """A config from a Hugging Face config.json object; every value is type-checked, and a
        bad one is an `AlbertError("<source>: key 'x': expected ..., got ...")`. Keys transformers
        writes that mean nothing here (output_attentions, dtype, ...) are kept in `extra`."""
        if d.get("model_type") not in ("albert", None):
            raise AlbertError(f"{source}: model_type is {d.get('model_type')!r}, not 'albert'")
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise AlbertError(f"{source}: position_embedding_type {d['position_embedding_type']!r} is not supported")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = check_values(cls, {k: v for k, v in d.items() if k in names}, source)
        if kwargs.get("id2label"):  # transformers writes no num_labels: it is id2label's length
            kwargs.setdefault("num_labels", len(kwargs["id2label"]))  # (one that disagrees is refused)
        else:
            kwargs["id2label"] = None
        ignored = {"model_type", "label2id", "position_embedding_type", "transformers_version",
                   "torch_dtype", "dtype"}
        extra = {k: v for k, v in d.items() if k not in names and k not in ignored}
        return cls(**kwargs, extra=extra, source=source)

    @classmethod
    def from_json_file(cls, path: str | Path) -> "AlbertConfig":
        path = Path(path)
        d = read_json_object(path)
        if "model_type" not in d:
            raise AlbertError(f"{path}: no model_type; this is not an ALBERT config.json")
        return cls.from_hf_dict(d, source=str(path))

    def save(self, directory: str | Path) -> None:
        write_json(Path(directory) / "config.json", self.to_hf_dict())


# The published ALBERT v2 shapes (google-research/albert, albert_*_v2 configs), plus small
# shapes for tests and quick runs. Vocabulary size follows the tokenizer when one is given.
PRESETS: dict[str, dict[str, Any]] = {
    "base": dict(embedding_size=128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072),
    "large": dict(embedding_size=128, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096),
    "xlarge": dict(embedding_size=128, hidden_size=2048, num_hidden_layers=24, num_attention_heads=16,
                   intermediate_size=8192),
    "xxlarge": dict(embedding_size=128, hidden_size=4096, num_hidden_layers=12, num_attention_heads=64,
                    intermediate_size=16384),
    # Quick runs on a CPU: a few minutes of pretraining show learning.
    "small": dict(embedding_size=128, hidden_size=256, num_hidden_layers=6, num_attention_heads=4,
                  intermediate_size=1024, max_position_embeddings=512),
    "tiny": dict(embedding_size=64, hidden_size=128, num_hidden_layers=4, num_attention_heads=2,
                 intermediate_size=512, max_position_embeddings=512),
    # Unit tests.
    "micro": dict(vocab_size=1000, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=128),
}


def preset(name: str, **overrides: Any) -> AlbertConfig:
    """An `AlbertConfig` for a named preset, with field overrides (e.g. vocab_size)."""
    if name not in PRESETS:
        raise AlbertError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return AlbertConfig(**{**PRESETS[name], **overrides})
