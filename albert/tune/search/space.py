"""Search spaces: a few distributions and a `Space` that samples one configuration per trial.

A trial's configuration depends only on (master_seed, trial_index), never on how many draws
came before it, so trial 7 is the same configuration whatever order trials finish in and
after a resume.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ...config import PRESETS
from ...defaults import tune_lr_range
from ...errors import AlbertError, located
from ...tasks import get_task


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def validate(self, name: str) -> None:
        if not (_is_number(self.low) and _is_number(self.high)):
            raise AlbertError(f"hyperparameter {name!r}: bounds must be finite numbers, got {self.low!r}..{self.high!r}")
        if self.low >= self.high:
            raise AlbertError(f"hyperparameter {name!r}: empty range, low {self.low} >= high {self.high}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    width = 1

    def encode(self, value: Any) -> list[float]:
        return [(float(value) - self.low) / (self.high - self.low)]

    def decode(self, u: Sequence[float]) -> float:
        return self.from_quantile(u[0])

    def from_quantile(self, q: float) -> float:
        return float(min(max(self.low + float(q) * (self.high - self.low), self.low), self.high))

    def to_json(self) -> dict[str, Any]:
        return {"type": "uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def validate(self, name: str) -> None:
        Uniform(self.low, self.high).validate(name)
        if self.low <= 0:
            raise AlbertError(f"hyperparameter {name!r}: log-uniform needs low > 0, got {self.low}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    width = 1

    def encode(self, value: Any) -> list[float]:
        return [math.log(float(value) / self.low) / math.log(self.high / self.low)]

    def decode(self, u: Sequence[float]) -> float:
        return self.from_quantile(u[0])

    def from_quantile(self, q: float) -> float:
        value = self.low * math.exp(float(q) * math.log(self.high / self.low))
        return float(min(max(value, self.low), self.high))

    def to_json(self) -> dict[str, Any]:
        return {"type": "loguniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class IntUniform:
    """An integer in [low, high], both ends included."""

    low: int
    high: int

    def validate(self, name: str) -> None:
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high)):
            raise AlbertError(f"hyperparameter {name!r}: int bounds must be integers, got {self.low!r}..{self.high!r}")
        if self.low >= self.high:
            raise AlbertError(f"hyperparameter {name!r}: empty range, low {self.low} >= high {self.high} "
                              "(use a choice with one value for a constant)")

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high, endpoint=True))

    width = 1

    def encode(self, value: Any) -> list[float]:
        # The centre of the value's bin: every integer owns an equal share of [0, 1].
        return [(int(value) - self.low + 0.5) / (self.high - self.low + 1)]

    def decode(self, u: Sequence[float]) -> int:
        return self.from_quantile(u[0])

    def from_quantile(self, q: float) -> int:
        return int(min(self.low + math.floor(max(float(q), 0.0) * (self.high - self.low + 1)), self.high))

    def to_json(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Choice:
    options: tuple

    def __init__(self, options: Iterable[Any]) -> None:
        object.__setattr__(self, "options", tuple(options))

    def validate(self, name: str) -> None:
        if not self.options:
            raise AlbertError(f"hyperparameter {name!r}: choice has no values")
        try:
            json.dumps(list(self.options))
        except TypeError as e:
            raise AlbertError(f"hyperparameter {name!r}: choice values must be JSON values ({e})") from None

    def sample(self, rng: np.random.Generator) -> Any:
        value = self.options[int(rng.integers(len(self.options)))]
        return value.item() if isinstance(value, np.generic) else value

    @property
    def width(self) -> int:
        return len(self.options)

    def encode(self, value: Any) -> list[float]:
        """One-hot: the options are unordered, so none is nearer another than the rest."""
        return [1.0 if value == option and type(value) is type(option) else 0.0 for option in self.options]

    def decode(self, u: Sequence[float]) -> Any:
        return self.options[int(np.argmax(u))]

    def from_quantile(self, q: float) -> Any:
        return self.options[min(int(float(q) * len(self.options)), len(self.options) - 1)]

    def to_json(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.options)}


Distribution = Uniform | LogUniform | IntUniform | Choice

_TYPES = {"uniform": Uniform, "loguniform": LogUniform, "log_uniform": LogUniform,
          "int": IntUniform, "intuniform": IntUniform, "choice": Choice}

# The shape of a random initialisation (--preset sweeps only; albert.finetune.ARCHITECTURE).
ARCHITECTURE = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "embedding_size",
                "hidden_act")
# Hyperparameters the fine-tuning objective (albert.tune.sweep.objective) understands; `--space` files
# may name only these. The resource (steps) is the scheduler's; `max_steps` may be searched only
# when it is not (--scheduler random: each trial then trains its own number of steps).
HYPERPARAMETERS = ("lr", "batch_size", "warmup", "weight_decay", "dropout", "hidden_dropout",
                   "attention_dropout", "layer_lr_decay", "max_grad_norm", "grad_accum", "seed",
                   "max_steps", "max_seq_length", *ARCHITECTURE)


# The names spaces used before they became fine-tuning option names; spaces, sweeps and tables
# written with them still read (every old name sorts where its new one does, so draws are unchanged).
FORMER_NAMES = {"warmup_ratio": "warmup", "classifier_dropout": "dropout", "hidden_dropout_prob": "hidden_dropout",
                "attention_probs_dropout_prob": "attention_dropout"}


def current_names(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` (a configuration or a space's JSON form) with former hyperparameter names replaced."""
    return {FORMER_NAMES.get(name, name): value for name, value in config.items()}


class Space(Mapping[str, Distribution]):
    """An ordered mapping hyperparameter name -> distribution, validated on construction."""

    def __init__(self, distributions: Mapping[str, Distribution]) -> None:
        self._dists: dict[str, Distribution] = {}
        for name, dist in distributions.items():
            if not isinstance(dist, (Uniform, LogUniform, IntUniform, Choice)):
                raise AlbertError(f"hyperparameter {name!r}: {dist!r} is not a distribution")
            dist.validate(name)
            self._dists[name] = dist

    def __getitem__(self, name: str) -> Distribution:
        return self._dists[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dists)

    def __len__(self) -> int:
        return len(self._dists)

    def __repr__(self) -> str:
        return f"Space({self._dists!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self._dists == other._dists

    def sample(self, master_seed: int, trial_index: int, attempt: int = 0) -> dict[str, Any]:
        """Trial `trial_index`'s configuration: a pure function of (master_seed, trial_index), and
        of `attempt` when an earlier draw was rejected (e.g. heads that do not divide hidden size)."""
        if trial_index < 0:
            raise ValueError(f"trial_index must be >= 0, got {trial_index}")
        rng = np.random.default_rng([master_seed, trial_index] + ([attempt] if attempt else []))
        # Draw in name order (not insertion order) so reordering a --space file keeps trials the same.
        return {name: self._dists[name].sample(rng) for name in sorted(self._dists)}

    # --- the unit cube, where model-based samplers work ---------------------------------------

    @property
    def names(self) -> list[str]:
        """Hyperparameter names in the order of the unit-cube coordinates (sorted, like sample)."""
        return sorted(self._dists)

    @property
    def width(self) -> int:
        """Unit-cube dimensions: one per number, one per option of a choice (one-hot)."""
        return sum(self._dists[n].width for n in self.names)

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """A configuration as a point of [0, 1]^width: log scale for log-uniform, integers at the
        centre of their bin, choices one-hot."""
        return np.array([u for n in self.names for u in self._dists[n].encode(config[n])], dtype=float)

    def coordinates(self) -> dict[str, slice]:
        """Each hyperparameter's unit-cube coordinates (one, or one per option of a choice)."""
        out, i = {}, 0
        for n in self.names:
            out[n] = slice(i, i + self._dists[n].width)
            i += self._dists[n].width
        return out

    def decode(self, point: Sequence[float]) -> dict[str, Any]:
        """The configuration of a unit-cube point: integers rounded (their bin), a choice its
        largest coordinate. decode(encode(c)) gives c back: integers and choices exactly,
        numbers to float rounding (a relative 1e-15)."""
        return {n: self._dists[n].decode(point[s]) for n, s in self.coordinates().items()}

    def from_quantiles(self, qs: Sequence[float]) -> dict[str, Any]:
        """One value per hyperparameter from a point of [0, 1]^len(self) (a quasi-random design)."""
        return {n: self._dists[n].from_quantile(q) for n, q in zip(self.names, qs)}

    def kinds(self) -> list[str]:
        """Per unit-cube coordinate: "continuous" (uniform, log-uniform), "int" or "onehot"."""
        out = []
        for n in self.names:
            dist = self._dists[n]
            kind = "onehot" if isinstance(dist, Choice) else "int" if isinstance(dist, IntUniform) else "continuous"
            out += [kind] * dist.width
        return out

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {name: dist.to_json() for name, dist in self._dists.items()}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], allowed_names: Iterable[str] | None = None,
                  source: str = "<space>") -> "Space":
        """Parse `{"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-4}, ...}`."""
        if not isinstance(spec, Mapping):
            raise located(source, None, f"a search space must be a JSON object, got {type(spec).__name__}")
        allowed = None if allowed_names is None else set(allowed_names)
        dists: dict[str, Distribution] = {}
        for name, entry in current_names(spec).items():
            where = f"{source}: key {name!r}"
            if allowed is not None and name not in allowed:
                raise AlbertError(f"{where}: unknown hyperparameter (known: {', '.join(sorted(allowed))})")
            if isinstance(entry, list):  # shorthand for a choice
                entry = {"type": "choice", "values": entry}
            if not isinstance(entry, Mapping) or "type" not in entry:
                raise AlbertError(f"{where}: expected an object with a \"type\", got {entry!r}")
            kind = str(entry["type"]).lower()
            if kind not in _TYPES:
                raise AlbertError(f"{where}: unknown type {entry['type']!r} (one of {', '.join(sorted(_TYPES))})")
            fields = {k: v for k, v in entry.items() if k != "type"}
            need = ("values",) if kind == "choice" else ("low", "high")
            if set(fields) != set(need):
                raise AlbertError(f"{where}: type {kind!r} takes exactly {', '.join(need)}, got {', '.join(fields) or 'nothing'}")
            if kind == "choice":
                if not isinstance(fields["values"], list):
                    raise AlbertError(f"{where}: \"values\" must be a list")
                dist = Choice(fields["values"])
            else:
                dist = _TYPES[kind](fields["low"], fields["high"])
            try:
                dist.validate(name)
            except AlbertError as e:
                raise AlbertError(f"{source}: {e}") from None
            dists[name] = dist
        if not dists:
            raise located(source, None, "the search space is empty")
        return cls(dists)

    @classmethod
    def from_json(cls, path: str | Path, allowed_names: Iterable[str] | None = HYPERPARAMETERS) -> "Space":
        """Read a `--space` file; an unknown name or a bad range raises AlbertError naming file and key."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise located(path, None, f"cannot read search space: {e.strerror}") from None
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise located(path, e.lineno, f"invalid JSON: {e.msg}") from None
        return cls.from_dict(spec, allowed_names, source=str(path))


def architecture_problem(config: Mapping[str, Any]) -> str | None:
    """Why a trial's configuration (fixed options merged with the sampled ones) cannot be built,
    or None. The preset's shape fills in what the configuration leaves out."""
    shape = {**PRESETS.get(config.get("preset") or "", {}), **config}
    heads, hidden = shape.get("num_attention_heads"), shape.get("hidden_size")
    if isinstance(heads, int) and isinstance(hidden, int) and heads > 0 and hidden % heads:
        return f"num_attention_heads {heads} does not divide hidden_size {hidden}"
    return None


def default_space(task: str, *, pretrained: bool = True, hidden_size: int = 768) -> Space:
    """The search space used when no --space is given: the ALBERT paper's fine-tuning ranges, with
    the learning rate's range adapted to the starting point (albert/defaults.py `tune_lr_range`):
    a random initialisation or a small pretrained model needs far larger rates than the paper's."""
    squad = task.lower().startswith("squad")
    try:
        task_lr = get_task(task).defaults["lr"]
    except AlbertError:  # a task name only the synthetic objective knows
        task_lr = 1e-5
    low, high, _ = tune_lr_range(task_lr, pretrained=pretrained, hidden_size=hidden_size)
    return Space({
        "lr": LogUniform(low, high),
        # SQuAD's 384-token windows need more memory per example; 48 is the paper's SQuAD batch size.
        "batch_size": Choice([16, 32, 48] if squad else [16, 32, 64]),
        "warmup": Uniform(0.0, 0.2),
        "weight_decay": Choice([0.0, 0.01, 0.1]),
        "dropout": Uniform(0.0, 0.2),
        "layer_lr_decay": Uniform(0.7, 1.0),
    })
