"""One training loop for fine-tuning and pretraining.

The loop: a step takes one global batch (see data/sampler.py), runs it as micro-batches
with gradient accumulation under autocast, clips, and steps the optimizer and the schedule.
It evaluates and checkpoints on a cadence, keeps the best model, stops early on patience,
skips non-finite steps, and resumes exactly: a run killed after a checkpoint and resumed
logs the same per-step losses as one that was never interrupted.

Contract with the caller:
- `train_data[i]` (or `train_data.__getitems__(indices)`) gives one row, whatever the collate
  understands.
- `collate_fn(rows)` returns a dict of tensors that is passed as keyword arguments to the
  model, whose output has `.loss` (a mean over the micro-batch). If the collate function has
  parameters named `epoch` and/or `indices`, it also gets the epoch number and the rows'
  dataset indices, so random choices (pretraining masks) can be drawn from
  (seed, epoch, index) and stay the same however the run is split, resumed or parallelised.
- Micro-batch losses are weighted by their share of the step's rows, so accumulating
  micro-batches equals one large batch for per-example-mean losses.
- Under `torchrun` (WORLD_SIZE > 1) each process gets its share of every global batch;
  only rank 0 writes files.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import math
import os
import random
import re
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .atomic import atomic_write, write_json
from .data.sampler import LengthGroupedSampler
from .errors import AlbertError
from .optim import make_optimizer, make_schedule

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


class TrainingWarning(UserWarning):
    """Something went wrong that training recovers from (a skipped step, a bad checkpoint)."""


@dataclass
class TrainConfig:
    output_dir: str
    lr: float = 3e-5
    batch_size: int = 32              # rows per micro-batch on each process
    grad_accum: int = 1
    max_steps: int | None = None      # overrides epochs
    epochs: float = 3.0
    warmup: float = 0.1               # < 1: ratio of total steps; >= 1: steps
    schedule: str = "linear"          # linear | polynomial | constant
    power: float = 1.0
    optimizer: str = "adamw"          # adamw | lamb
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    max_grad_norm: float = 1.0        # <= 0: no clipping
    layer_lr_decay: float | None = None
    precision: str = "auto"           # auto: bf16 on CUDA GPUs that support it, else fp32; fp32 | bf16 | fp16
    eval_every: int = 0               # steps; 0: at the end of each epoch (and of training)
    log_every: int = 10
    save_every: int = 0               # steps; 0: at each evaluation
    keep_last: int = 2
    patience: int | None = None       # evaluations without improvement before stopping
    metric: str = "loss"
    greater_is_better: bool = False
    seed: int = 42
    num_workers: int = 0
    group_by_length: bool = True
    device: str = "auto"
    compile: bool = False
    max_bad_steps: int = 10           # consecutive non-finite losses before stopping
    auto_accumulate: bool = False     # on CUDA OOM: halve the micro-batch, double accumulation, retry
    ddp_find_unused: bool = False     # DDP find_unused_parameters, for models with unused heads
    schedule_steps: int | None = None # length of the LR schedule if not the run's length (tuning rungs
                                      # train part of a run on the full run's schedule)
    overwrite: bool = False           # a fresh (not resumed) run may delete an earlier run's checkpoints

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise AlbertError(f"invalid training option: {msg}")

        need(self.lr > 0, f"lr must be positive, got {self.lr}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}")
        need(self.max_steps is None or self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        need(self.max_steps is not None or self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        need(self.warmup >= 0, f"warmup must be >= 0, got {self.warmup}")
        need(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        need(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        need(self.eval_every >= 0 and self.save_every >= 0, "eval_every and save_every must be >= 0")
        need(self.keep_last >= 1, f"keep_last must be >= 1, got {self.keep_last}")
        need(self.patience is None or self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        need(self.max_bad_steps >= 1, f"max_bad_steps must be >= 1, got {self.max_bad_steps}")
        need(self.schedule_steps is None or self.schedule_steps >= 1,
             f"schedule_steps must be >= 1, got {self.schedule_steps}")

    def trajectory_settings(self) -> dict[str, Any]:
        """The settings that shape the training trajectory (not where or how it is logged)."""
        d = dataclasses.asdict(self)
        for k in ("output_dir", "log_every", "num_workers", "device", "compile", "keep_last", "overwrite",
                  "max_steps"):
            d.pop(k)
        return json.loads(json.dumps(d, sort_keys=True, default=str))

    def fingerprint(self) -> str:
        """Hash of `trajectory_settings()`."""
        return hashlib.sha256(json.dumps(self.trajectory_settings(), sort_keys=True).encode()).hexdigest()[:16]


# Dense peak FLOP/s per GPU: (bf16/fp16 tensor cores, fp32 without TF32). First match wins.
PEAK_FLOPS = (
    ("H100 PCIe", 756e12, 51e12),
    ("H100", 989e12, 67e12),
    ("H200", 989e12, 67e12),
    ("A100", 312e12, 19.5e12),
    ("V100", 125e12, 15.7e12),
)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"auto" -> bf16 on CUDA GPUs that support it, else fp32; anything else as given."""
    if precision == "auto":
        device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                              "cpu" if device == "auto" else device)
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def peak_flops(device: torch.device, precision: str) -> float | None:
    """Peak FLOP/s of one device at `precision`, or None when unknown (CPUs, other GPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, half, full in PEAK_FLOPS:
        if key in name:
            return half if precision in ("bf16", "fp16") else full
    return None


# --- distributed ------------------------------------------------------------------------------
class Distributed:
    """The process group when launched by torchrun (WORLD_SIZE > 1); trivial otherwise."""

    def __init__(self) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world_size > 1
        self._owns_group = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def setup(self, device: torch.device) -> None:
        if self.enabled and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            self._owns_group = True

    def teardown(self) -> None:
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(t)
        return t

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


# --- random state -----------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict:
    """Python, numpy, torch and CUDA generator states, as types torch.load(weights_only=True) accepts."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"name": name, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (evaluation) without disturbing training's random streams."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


# --- checkpoints ------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file's data, or a directory's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointStore:
    """`root/step-N/` directories of torch.save files plus a manifest.json with their sha256.

    A checkpoint is written into a hidden temporary directory, fsynced, and renamed into
    place, so `step-N/` either exists complete or not at all; the manifest still guards
    against files damaged afterwards. Only the newest `keep_last` are kept.
    """

    def __init__(self, root: Path, keep_last: int, fingerprint: str, settings: dict[str, Any] | None = None):
        self.root, self.keep_last, self.fingerprint = root, keep_last, fingerprint
        self.settings = settings  # what the fingerprint hashes, so a mismatch can be named

    def steps(self) -> list[tuple[int, Path]]:
        """Checkpoint directories, newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.iterdir():
            m = re.fullmatch(r"step-(\d+)", p.name)
            if m and p.is_dir():
                found.append((int(m.group(1)), p))
        return sorted(found, reverse=True)

    def save(self, step: int, objects: dict[str, Any]) -> Path:
        final = self.root / f"step-{step}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Only partial checkpoints are ever left in temporary directories (a kill mid-save).
            for stale in self.root.glob(".tmp-step-*"):
                shutil.rmtree(stale, ignore_errors=True)
            tmp = self.root / f".tmp-step-{step}-{os.getpid()}"
            tmp.mkdir()
            try:
                files = {}
                for name, obj in objects.items():
                    path = tmp / f"{name}.pt"
                    torch.save(obj, path)
                    _fsync(path)
                    files[path.name] = _sha256(path)
                manifest = {"format": 1, "step": step, "config": self.fingerprint, "files": files}
                if self.settings is not None:
                    manifest["settings"] = self.settings
                with atomic_write(tmp / "manifest.json") as f:
                    json.dump(manifest, f, indent=2)
                _fsync(tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        # torch.save reports a full disk as a RuntimeError from its zip writer.
        except (OSError, RuntimeError, AlbertError) as e:
            cause = e.__cause__ if isinstance(e, AlbertError) and e.__cause__ is not None else e
            reason = getattr(cause, "strerror", None) or str(cause).strip().splitlines()[0]
            kept = self.steps()
            previous = f"the previous checkpoint {kept[0][1]} is intact" if kept else "no earlier checkpoint exists"
            raise AlbertError(f"{final}: cannot write the checkpoint ({reason}); {previous}") from e
        if final.exists():  # the same step saved again (e.g. after a resume): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(self.root)
        for _, old in self.steps()[self.keep_last:]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def verify(self, path: Path) -> str | None:
        """None when the checkpoint is complete and intact, else what is wrong with it."""
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            files = manifest["files"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"unreadable manifest.json ({e})"
        for name in ("model.pt", "optimizer.pt", "trainer.pt"):
            if name not in files:
                return f"manifest lists no {name}"
        for name, digest in files.items():
            p = path / name
            if not p.is_file():
                return f"{name} is missing"
            if _sha256(p) != digest:
                return f"{name} does not match its sha256 in manifest.json (truncated or corrupt)"
        for name in files:
            # A file put there with a matching manifest must still be tensors and plain data: it
            # is unpickled without running code (weights_only) and its tensors only mapped (mmap).
            try:
                torch.load(path / name, map_location="cpu", weights_only=True, mmap=True)
            except Exception as e:
                return f"{name} is not a checkpoint file ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})"
        return None

    def newest_valid(self) -> Path | None:
        """The newest checkpoint that verifies; warns about each newer one that does not."""
        for _, path in self.steps():
            problem = self.verify(path)
            if problem is None:
                return path
            warnings.warn(f"{path}: skipping checkpoint: {problem}; falling back to an older one",
                          TrainingWarning, stacklevel=3)
        return None

    def manifest(self, path: Path) -> dict:
        return json.loads((path / "manifest.json").read_text())

    def clear(self) -> None:
        for _, path in self.steps():
            shutil.rmtree(path, ignore_errors=True)
        if self.root.is_dir():
            for p in self.root.glob(".tmp-step-*"):
                shutil.rmtree(p, ignore_errors=True)

    @staticmethod
    def load(path: Path, name: str, map_location: Any = "cpu") -> Any:
        # weights_only: a checkpoint holds tensors and plain data, never code.
        try:
            return torch.load(path / f"{name}.pt", map_location=map_location, weights_only=True)
        except Exception as e:  # refused globals (pickled code), a foreign or damaged file
            raise AlbertError(f"{path / f'{name}.pt'}: not a checkpoint this trainer wrote "
                              f"({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})") from None


def _differences(saved: dict[str, Any] | None, now: dict[str, Any] | None) -> str:
    """" (lr 0.001 -> 0.002, ...)" naming the settings that changed, when the manifest recorded them."""
    if not isinstance(saved, dict) or now is None:
        return ""
    changed = [f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
               if saved.get(k) != now.get(k)]
    return f" ({', '.join(changed)})" if changed else ""


def refuse_earlier_run(output_dir: str | os.PathLike) -> None:
    """A fresh run must not take over (or overwrite the config.json of) an earlier run's directory."""
    steps = CheckpointStore(Path(output_dir) / "checkpoints", 1, "").steps()
    if steps:
        raise AlbertError(f"{output_dir}: holds checkpoints of an earlier run (up to step {steps[0][0]}); "
                          "pass --resume to continue it, or use another --output-dir")


# --- logging ----------------------------------------------------------------------------------
class RunLog:
    """log.jsonl (one JSON object per logged step or evaluation) and, when available, TensorBoard."""

    def __init__(self, output_dir: Path, enabled: bool):
        self.path = output_dir / "log.jsonl"
        self.tb_dir = output_dir / "tensorboard"
        self.enabled = enabled
        self._file = None
        self._tb = None

    def open(self, resume_step: int | None) -> None:
        """Start the log; on resume keep only the lines up to the checkpoint's step."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by the kill
                if record.get("step", 0) <= resume_step:
                    kept.append(line)
        with atomic_write(self.path) as f:
            f.writelines(line + "\n" for line in kept)
        self._file = open(self.path, "a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard not installed: skip it
            return
        purge = None if resume_step is None else resume_step + 1
        self._tb = SummaryWriter(str(self.tb_dir), purge_step=purge)

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as e:
            raise AlbertError(f"{self.path}: cannot write the log ({e.strerror or e})") from e
        if self._tb is not None:
            prefix = record.get("type", "train")
            for k, v in record.items():
                if k not in ("type", "step") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{prefix}/{k}", v, record["step"])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


# --- data feed --------------------------------------------------------------------------------
class MicroBatch(NamedTuple):
    batch: dict[str, torch.Tensor]
    rows: int
    tokens: int


class _IndexedRows(torch.utils.data.Dataset):
    """Hands the collate the rows *and* their indices (DataLoader calls __getitems__)."""

    def __init__(self, data: Any):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitems__(self, indices: list[int]) -> tuple[list[int], list[Any]]:
        getitems = getattr(self.data, "__getitems__", None)
        rows = getitems(indices) if getitems is not None else [self.data[i] for i in indices]
        return indices, rows


class _Collate:
    """Calls the user's collate with `epoch=` / `indices=` when its signature asks for them."""

    def __init__(self, fn: Callable, epoch: int):
        self.fn, self.epoch = fn, epoch
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self.wants_epoch = var_kw or "epoch" in params
        self.wants_indices = var_kw or "indices" in params

    def __call__(self, item: tuple[list[int], list[Any]]) -> MicroBatch:
        indices, rows = item
        kwargs: dict[str, Any] = {}
        if self.wants_epoch:
            kwargs["epoch"] = self.epoch
        if self.wants_indices:
            kwargs["indices"] = list(indices)
        batch = self.fn(rows, **kwargs)
        if "attention_mask" in batch:
            tokens = int(batch["attention_mask"].sum())
        elif "input_ids" in batch:
            tokens = batch["input_ids"].numel()
        else:
            tokens = 0
        return MicroBatch(batch, len(rows), tokens)


# --- the trainer ------------------------------------------------------------------------------
class Trainer:
    """Fine-tuning and pretraining loop; see the module docstring for the data contract.

    - `lengths`: one length per row, for length-grouped batches (ignored when
      `config.group_by_length` is False); without it batches are plainly random.
    - `evaluate(model) -> metrics`: run on rank 0 at each evaluation (the model is in eval
      mode under no_grad and autocast; training's random state is put back afterwards).
    - `save_best(model, directory)`: writes the best model (HF format) into a fresh
      directory that then replaces `output_dir/best`.
    - `step_metrics(output, batch) -> metrics`: extra numbers for the log (e.g. MLM
      accuracy), computed only on logged steps, averaged over that step's micro-batches.
    - `flops_per_token`: training FLOPs per token, for MFU on GPUs with a known peak.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, train_data: Any, collate_fn: Callable, *,
                 lengths: Any = None,
                 evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
                 save_best: Callable[[nn.Module, Path], None] | None = None,
                 step_metrics: Callable[[Any, dict], dict[str, float]] | None = None,
                 flops_per_token: float | None = None, progress: bool = True,
                 on_evaluate: Callable[[int, dict[str, float]], bool | None] | None = None):
        config.validate()
        self.config = cfg = config
        self.output_dir = Path(cfg.output_dir)
        self.evaluate_fn, self.save_best_fn, self.step_metrics_fn = evaluate, save_best, step_metrics
        self.flops_per_token, self.progress = flops_per_token, progress
        self.on_evaluate = on_evaluate  # (step, metrics) -> False to stop (the tuner's pruning)
        self.train_data, self.collate_fn = train_data, collate_fn

        self.dist = Distributed()
        self.device = self._resolve_device(cfg.device)
        self.dist.setup(self.device)
        self.precision = self._resolve_precision(cfg.precision)
        self.peak_flops = peak_flops(self.device, self.precision)

        self.model = model.to(self.device)
        forward_model: nn.Module = self.model
        if cfg.compile:
            # The MLM head's masked-position gather has a data-dependent shape: let dynamo capture
            # it instead of breaking the graph there (one graph for pretraining instead of five).
            torch._dynamo.config.capture_dynamic_output_shape_ops = True
            forward_model = torch.compile(forward_model)
        if self.dist.enabled:
            forward_model = DistributedDataParallel(
                forward_model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.ddp_find_unused)
        self.forward_model = forward_model

        self.sampler = LengthGroupedSampler(
            len(train_data), cfg.batch_size, lengths=lengths if cfg.group_by_length else None,
            grad_accum=cfg.grad_accum, rank=self.dist.rank, world_size=self.dist.world_size, seed=cfg.seed)
        self.steps_per_epoch = self.sampler.num_steps
        self.total_steps = cfg.max_steps or math.ceil(cfg.epochs * self.steps_per_epoch)
        schedule_steps = cfg.schedule_steps or self.total_steps
        warmup = math.ceil(cfg.warmup * schedule_steps) if cfg.warmup < 1 else int(cfg.warmup)

        self.optimizer = make_optimizer(self.model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.betas, cfg.eps,
                                        cfg.layer_lr_decay)
        self.scheduler = make_schedule(self.optimizer, warmup, schedule_steps, cfg.schedule, cfg.power)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.params = [p for p in self.model.parameters() if p.requires_grad]

        self.store = CheckpointStore(self.output_dir / "checkpoints", cfg.keep_last, cfg.fingerprint(),
                                     cfg.trajectory_settings())
        self.log = RunLog(self.output_dir, enabled=self.dist.is_main)
        self._reset_state()

    # --- setup helpers ----------------------------------------------------------------------
    def _resolve_device(self, name: str) -> torch.device:
        if name == "auto":
            name = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        try:
            device = torch.device(name)
        except RuntimeError as e:
            raise AlbertError(f"invalid training option: device {name!r} ({e})") from None
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise AlbertError(f"invalid training option: device {name!r} but CUDA is not available")
            if device.index is None:
                device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(device)
        return device

    def _resolve_precision(self, precision: str) -> str:
        return resolve_precision(precision, self.device)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _reset_state(self) -> None:
        self.step = 0
        self.epoch = 0
        self.epoch_step = 0  # steps done in the current epoch
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.best_metrics: dict[str, float] | None = None
        self.last_metrics: dict[str, float] | None = None
        self.evals_without_improvement = 0
        self.bad_steps = 0
        self.skipped_steps = 0
        self.stopped_by_callback = False

    # --- checkpoints ------------------------------------------------------------------------
    def _trainer_state(self) -> dict:
        return {
            "step": self.step, "epoch": self.epoch, "epoch_step": self.epoch_step,
            "micro_batch": self.sampler.batch_size,
            "best_metric": self.best_metric, "best_step": self.best_step, "best_metrics": self.best_metrics,
            "last_metrics": self.last_metrics,
            "evals_without_improvement": self.evals_without_improvement,
            "bad_steps": self.bad_steps, "skipped_steps": self.skipped_steps,
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "global_batch": self.sampler.global_batch,
        }

    def save_checkpoint(self) -> Path | None:
        """Write `checkpoints/step-N/` (rank 0; every rank contributes its RNG state)."""
        rngs = self.dist.gather(rng_state())
        path = None
        if self.dist.is_main:
            state = self._trainer_state()
            state["rng"] = rngs
            path = self.store.save(self.step, {"model": self.model.state_dict(),
                                               "optimizer": self.optimizer.state_dict(), "trainer": state})
        self.dist.barrier()
        return path

    def _restore(self) -> int | None:
        """Load the newest intact checkpoint; its step, or None when there is none."""
        found = self.store.newest_valid() if self.dist.is_main else None
        found = self.dist.broadcast(None if found is None else str(found))
        if found is None:
            if self.dist.is_main and self.store.steps():
                if not self.config.overwrite:  # never delete a run's checkpoints unasked
                    raise AlbertError(f"{self.store.root}: no intact checkpoint to resume from (each was skipped, "
                                      "see the warnings); pass --overwrite to start the run over")
                warnings.warn(f"{self.store.root}: no intact checkpoint; starting from scratch",
                              TrainingWarning, stacklevel=3)
            return None
        path = Path(found)
        manifest = self.store.manifest(path)
        if manifest.get("config") != self.store.fingerprint:
            warnings.warn(f"{path}: saved with different training options than this run's"
                          f"{_differences(manifest.get('settings'), self.store.settings)}; "
                          "the resumed run will not match an uninterrupted one", TrainingWarning, stacklevel=3)
        try:
            self.model.load_state_dict(self.store.load(path, "model", self.device))
            self.optimizer.load_state_dict(self.store.load(path, "optimizer", self.device))
        except (RuntimeError, ValueError, KeyError) as e:
            detail = " ".join(str(e).split())[:300]
            raise AlbertError(f"{path}: the checkpoint does not fit this run's model ({detail}); it was written "
                              "by a run with another model or task: resume with the same options, or use "
                              "another --output-dir") from None
        state = self.store.load(path, "trainer")
        if state["global_batch"] != self.sampler.global_batch:
            raise AlbertError(f"{path}: saved with a global batch of {state['global_batch']} rows, this run uses "
                              f"{self.sampler.global_batch} (batch_size x grad_accum x processes); resume with "
                              "the same values")
        sched = dict(state["scheduler"])
        # The schedule's shape (total steps, warmup) comes from this run's options.
        sched["lr_lambdas"] = [None] * len(self.scheduler.lr_lambdas)
        self.scheduler.load_state_dict(sched)
        self.scaler.load_state_dict(state["scaler"])
        for k in ("step", "epoch", "epoch_step", "best_metric", "best_step", "best_metrics", "last_metrics",
                  "evals_without_improvement", "bad_steps", "skipped_steps"):
            setattr(self, k, state[k])
        self.sampler.set_micro_batch(state["micro_batch"])
        rngs = state["rng"]
        if self.dist.rank < len(rngs):
            set_rng_state(rngs[self.dist.rank])
        else:
            seed_everything(self.config.seed + self.dist.rank + self.step)
        return self.step

    # --- evaluation -------------------------------------------------------------------------
    def _better(self, value: float) -> bool:
        if self.best_metric is None:
            return True
        return value > self.best_metric if self.config.greater_is_better else value < self.best_metric

    def _evaluate(self) -> bool:
        """Evaluate, keep the best model; True when patience has run out."""
        if self.evaluate_fn is None:
            return False
        metrics = None
        if self.dist.is_main:
            try:
                with preserved_rng(), torch.no_grad(), self._autocast():
                    metrics = {k: float(v) for k, v in self.evaluate_fn(self.model).items()}
            except _OOM:
                raise AlbertError(f"out of GPU memory while evaluating at step {self.step}; lower the evaluation "
                                  "batch size (--eval-batch-size)") from None
            self.model.train()
        metrics = self.dist.broadcast(metrics)
        name = self.config.metric
        if name not in metrics:
            raise AlbertError(f"invalid training option: metric {name!r} is not among the evaluation's "
                              f"metrics ({', '.join(sorted(metrics)) or 'none'})")
        self.last_metrics = metrics
        improved = self._better(metrics[name])
        if improved:
            self.best_metric, self.best_step, self.best_metrics = metrics[name], self.step, metrics
            self.evals_without_improvement = 0
            if self.save_best_fn is not None and self.dist.is_main:
                self._save_best()
            self.dist.barrier()
        else:
            self.evals_without_improvement += 1
        self.log.write({"type": "eval", "step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
                        **metrics, "best": improved})
        if self.on_evaluate is not None and self.dist.broadcast(
                self.on_evaluate(self.step, metrics) if self.dist.is_main else None) is False:
            self.stopped_by_callback = True
            return True
        patience = self.config.patience
        return patience is not None and self.evals_without_improvement >= patience

    def _save_best(self) -> None:
        """save_best into a temporary directory, then swap it in for `best/`."""
        best = self.output_dir / "best"
        tmp = self.output_dir / f".best.tmp-{os.getpid()}"
        old = self.output_dir / ".best.old"
        for stale in self.output_dir.glob(".best.tmp-*"):  # left by a kill mid-save
            shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            self.save_best_fn(self.model, tmp)
            for p in tmp.rglob("*"):
                if p.is_file():
                    _fsync(p)
            _fsync(tmp)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(e, OSError):
                raise AlbertError(f"{best}: cannot write the best model ({e.strerror or e}); "
                                  "the previous best/ is intact") from e
            raise
        shutil.rmtree(old, ignore_errors=True)
        if best.exists():
            os.replace(best, old)
        os.replace(tmp, best)
        _fsync(self.output_dir)
        shutil.rmtree(old, ignore_errors=True)

    # --- one step ---------------------------------------------------------------------------
    def _feed(self) -> Iterator[list[MicroBatch]]:
        """The rest of the current epoch, one list of micro-batches per step."""
        self.sampler.set_epoch(self.epoch)
        self.sampler.skip(self.epoch_step)
        plan = self.sampler.steps()
        # The loader draws its worker seed from this generator, not from the global RNG,
        # which would otherwise shift dropout masks whenever a loader is (re)created.
        seed = int(np.random.SeedSequence([self.config.seed, self.epoch, self.dist.rank]).generate_state(1)[0])
        loader = torch.utils.data.DataLoader(
            _IndexedRows(self.train_data), batch_sampler=[mb for step in plan for mb in step],
            collate_fn=_Collate(self.collate_fn, self.epoch), num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(seed))
        it = iter(loader)
        for step in plan:
            yield [next(it) for _ in step]

    def _train_step(self, micro: list[MicroBatch], want_metrics: bool) -> dict[str, Any]:
        """Forward/backward every micro-batch, then clip and step; returns the step's numbers."""
        total_rows = sum(mb.rows for mb in micro)
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float32)
        metrics: dict[str, float] = {}
        for j, mb in enumerate(micro):
            batch = {k: v.to(self.device, non_blocking=True) for k, v in mb.batch.items()}
            weight = mb.rows / total_rows
            last = j == len(micro) - 1
            sync = contextlib.nullcontext() if last or not self.dist.enabled else self.forward_model.no_sync()
            with sync:
                with self._autocast():
                    out = self.forward_model(**batch)
                if getattr(out, "loss", None) is None:
                    raise AlbertError("the model returned no loss: the collate function must add the labels")
                self.scaler.scale(out.loss.float() * weight).backward()
            loss_sum += out.loss.detach().float() * weight
            if want_metrics and self.step_metrics_fn is not None:
                for k, v in self.step_metrics_fn(out, batch).items():
                    metrics[k] = metrics.get(k, 0.0) + float(v) * weight
        stats = torch.stack([loss_sum, torch.tensor(float(total_rows), device=self.device),
                             torch.tensor(float(sum(mb.tokens for mb in micro)), device=self.device)])
        loss, rows, tokens = self.dist.all_sum(stats).tolist()
        loss /= self.dist.world_size
        lr = max(g["lr"] for g in self.optimizer.param_groups)
        result = {"loss": loss, "rows": rows, "tokens": tokens, "lr": lr, "metrics": metrics, "grad_norm": None}

        if math.isfinite(loss):
            self.scaler.unscale_(self.optimizer)
            max_norm = self.config.max_grad_norm if self.config.max_grad_norm > 0 else float("inf")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))
            result["grad_norm"] = grad_norm
            # In fp16 an overflowing gradient is the scaler's business: it skips and rescales.
            if math.isfinite(grad_norm) or self.precision == "fp16":
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.bad_steps = 0
                return result
        self._skip_step(result)
        return result

    def _skip_step(self, result: dict) -> None:
        """A non-finite loss or gradient: drop the gradients; give up after too many in a row."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.precision == "fp16" and math.isfinite(result["loss"]):
            self.scaler.update()  # unscale_ was called: close the scaler's step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "scheduler.step() before optimizer.step()"
            self.scheduler.step()  # the schedule follows the data, skipped or not
        self.bad_steps += 1
        self.skipped_steps += 1
        result["skipped"] = True
        what = "loss" if not math.isfinite(result["loss"]) else "gradient norm"
        step = self.step + 1
        if self.bad_steps >= self.config.max_bad_steps:
            last = self.store.steps()
            where = f"the last good checkpoint is {last[0][1]}" if last else "no checkpoint was written"
            raise AlbertError(f"training diverged: {self.bad_steps} consecutive steps with a non-finite {what} "
                              f"(last at step {step}); {where}. Try a lower lr (now {self.config.lr}), "
                              "more warmup, or precision='fp32'")
        warnings.warn(f"step {step}: non-finite {what} ({result['loss']}); skipping the update "
                      f"({self.bad_steps}/{self.config.max_bad_steps} in a row)", TrainingWarning, stacklevel=2)

    def _handle_oom(self) -> None:
        """Free what the failed step held; halve the micro-batch or explain what to do."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        micro = self.sampler.batch_size
        accum = self.sampler.grad_accum
        if self.config.auto_accumulate and micro > 1 and not self.dist.enabled:
            self.sampler.set_micro_batch(micro // 2)
            warnings.warn(f"step {self.step + 1}: out of memory with micro-batch {micro}; retrying with micro-batch "
                          f"{micro // 2} and {self.sampler.grad_accum} accumulation steps (same data per step)",
                          TrainingWarning, stacklevel=2)
            return
        raise AlbertError(f"out of GPU memory at step {self.step + 1} with batch_size {micro} per device "
                          f"(grad_accum {accum}): try batch_size {max(1, micro // 2)} with grad_accum {accum * 2} "
                          "(the same effective batch), or auto_accumulate=True")

    # --- the loop ---------------------------------------------------------------------------
    def train(self, resume: bool = False) -> dict[str, Any]:
        """Train to `max_steps` (or `epochs`); returns the run's metrics and throughput."""
        cfg = self.config
        started = time.perf_counter()
        self._reset_state()
        seed_everything(cfg.seed + self.dist.rank)
        self.model.train()
        resumed_at = self._restore() if resume else None
        if resumed_at is None and self.dist.is_main:
            if self.store.steps():
                if not cfg.overwrite:
                    refuse_earlier_run(self.output_dir)
                warnings.warn(f"{self.store.root}: removing checkpoints of an earlier run (overwrite=True)",
                              TrainingWarning, stacklevel=2)
            self.store.clear()
        self.dist.barrier()
        self.log.open(resumed_at)
        try:
            return self._loop(started)
        finally:
            self.log.close()
            self.dist.teardown()

    def _loop(self, started: float) -> dict[str, Any]:
        cfg = self.config
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, desc="train", dynamic_ncols=True,
                   disable=not (self.progress and self.dist.is_main))
        train_time = 0.0
        seen_rows = seen_tokens = 0.0
        window: dict[str, Any] = {"loss": [], "grad_norm": [], "rows": 0.0, "tokens": 0.0, "time": 0.0}
        stopped_early = False
        done = self.step >= self.total_steps
        try:
            while not done:
                clock = time.perf_counter()
                for micro in self._feed():
                    want_metrics = (self.step + 1) % cfg.log_every == 0
                    try:
                        result = self._train_step(micro, want_metrics)
                    except _OOM:
                        result = None
                    if result is None:
                        # Outside the except block, so the traceback's tensors can be freed.
                        del micro
                        self._handle_oom()
                        break  # rebuild the epoch's feed from this step with smaller micro-batches
                    self.step += 1
                    self.epoch_step += 1
                    elapsed = time.perf_counter() - clock
                    train_time += elapsed
                    seen_rows += result["rows"]
                    seen_tokens += result["tokens"]
                    window["rows"] += result["rows"]
                    window["tokens"] += result["tokens"]
                    window["time"] += elapsed
                    if not result.get("skipped"):
                        window["loss"].append(result["loss"])
                        window["grad_norm"].append(result["grad_norm"])
                    bar.update(1)

                    if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                        record = self._log_record(window, result)
                        self.log.write(record)
                        bar.set_postfix({k: f"{record[k]:.4g}" for k in ("loss", "lr", "samples_per_s")
                                         if record.get(k) is not None})
                        window = {"loss": [], "grad_norm": [], "rows": 0.0, "tokens": 0.0, "time": 0.0}

                    epoch_end = self.epoch_step >= self.steps_per_epoch
                    last = self.step >= self.total_steps
                    at_eval = self.step % cfg.eval_every == 0 if cfg.eval_every else epoch_end
                    evaluated = at_eval or last
                    if evaluated:
                        stopped_early = self._evaluate()
                    if epoch_end:
                        self.epoch += 1
                        self.epoch_step = 0
                    save = self.step % cfg.save_every == 0 if cfg.save_every else evaluated
                    # During a run of non-finite steps, keep_last must not rotate away the last
                    # checkpoint saved before it began (the one a divergence error points to).
                    save = save and self.bad_steps == 0
                    if save or last or stopped_early:
                        self.save_checkpoint()
                    clock = time.perf_counter()  # evaluation and saving are not training time
                    if last or stopped_early:
                        done = True
                        break
        finally:
            bar.close()
        results = self._results(started, train_time, seen_rows, seen_tokens, stopped_early)
        if self.dist.is_main:
            write_json(self.output_dir / "results.json", results)
        return results

    def _log_record(self, window: dict, result: dict) -> dict[str, Any]:
        dt = max(window["time"], 1e-9)
        losses = window["loss"]
        norms = [g for g in window["grad_norm"] if g is not None]
        tokens_per_s = window["tokens"] / dt
        record: dict[str, Any] = {
            "type": "train", "step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4),
            "loss": sum(losses) / len(losses) if losses else None,  # None: every step skipped
            "lr": result["lr"],
            "grad_norm": sum(norms) / len(norms) if norms else None,
            "samples_per_s": window["rows"] / dt, "tokens_per_s": tokens_per_s,
        }
        mfu = self._mfu(tokens_per_s)
        if mfu is not None:
            record["mfu"] = mfu
        if result.get("skipped"):
            record["skipped"] = True
        record.update(result["metrics"])
        return record

    def _mfu(self, tokens_per_s: float) -> float | None:
        if self.flops_per_token is None or self.peak_flops is None:
            return None
        return tokens_per_s * self.flops_per_token / (self.peak_flops * self.dist.world_size)

    def _results(self, started: float, train_time: float, rows: float, tokens: float,
                 stopped_early: bool) -> dict[str, Any]:
        tokens_per_s = tokens / train_time if train_time > 0 else None
        return {
            "steps": self.step,
            "epochs": round(self.step / self.steps_per_epoch, 4),
            "final": self.last_metrics,
            "best": self.best_metrics,
            "best_step": self.best_step,
            "best_metric": self.best_metric,
            "metric": self.config.metric,
            "stopped_early": stopped_early and not self.stopped_by_callback,
            "stopped_by_callback": self.stopped_by_callback,
            "skipped_steps": self.skipped_steps,
            "wall_time_s": time.perf_counter() - started,
            "train_samples_per_s": rows / train_time if train_time > 0 else None,
            "tokens_per_s": tokens_per_s,
            "mfu": self._mfu(tokens_per_s) if tokens_per_s is not None else None,
            "precision": self.precision,
            "device": str(self.device),
            "world_size": self.dist.world_size,
        }
