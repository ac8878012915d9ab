"""`python tune.py`: search fine-tuning hyperparameters for one task with ASHA (or random search).

The sweep directory holds sweep.db (every trial, rung result and heartbeat), trials/<id>/ (each
trial's run: config.json, checkpoints, best model), trials.csv, summary.json, best/ (the best
trial's run directory: `python train.py <sweep>/best/config.json` retrains it) and plots.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AlbertError
from .space import HYPERPARAMETERS, Space

OBJECTIVE = "albert.tune.objective:finetune"


@dataclass
class TuneArgs:
    task: str | None = None
    budget: int = 20                   # configurations tried, pruned and failed ones included
    time_budget: float | None = None   # seconds; then no new trial starts
    output_dir: str | None = None      # the sweep directory
    resume: str | None = None          # continue the sweep in this directory
    scheduler: str = "asha"            # asha | hyperband (stop-only) | random (every trial to max_resource)
    eta: int = 3
    min_resource: int | None = None    # steps at the first rung (default: max_resource / eta^3)
    max_resource: int = 1000           # steps of a full training
    space: str | None = None           # JSON search space (default: the task's)
    seed: int = 0
    workers: int = 1                   # CPU worker processes
    trials_per_gpu: int = 1
    device: str = "auto"               # auto | cpu | cuda
    confirm_top: int = 0
    confirm_seeds: int = 0
    backend: str = "local"             # local | ray
    # Fine-tuning options that stay fixed across trials:
    model: str | None = None
    preset: str | None = None
    tokenizer: str | None = None
    data_dir: str | None = None
    train_file: str | None = None
    dev_file: str | None = None
    max_seq_length: int | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    precision: str = "auto"
    progress: bool = True


FIXED = ("task", "model", "preset", "tokenizer", "data_dir", "train_file", "dev_file", "max_seq_length",
         "max_train_samples", "max_eval_samples", "precision")


def settings_from(args: TuneArgs):
    from ..tasks import get_task
    from .sweep import SweepSettings

    if not args.output_dir:
        raise AlbertError("--output-dir (the sweep directory) is required")
    if not args.task:
        raise AlbertError("--task is required (or --resume DIR)")
    task = get_task(args.task)
    if args.model is None and args.preset is None:
        raise AlbertError("give --model (a checkpoint directory or hub name) or --preset (random initialisation)")
    if args.max_resource < 1:
        raise AlbertError(f"--max-resource must be >= 1 step, got {args.max_resource}")
    min_resource = args.min_resource or max(1, args.max_resource // args.eta ** 3)
    space = _read_space(args.space).to_json() if args.space else None
    device = args.device
    if device == "auto":
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    fixed = {k: getattr(args, k) for k in FIXED if getattr(args, k) is not None}
    fixed["task"] = task.name
    return SweepSettings(
        sweep_dir=args.output_dir, task=task.name, objective=OBJECTIVE, space=space, fixed=fixed,
        scheduler=args.scheduler, mode="max" if task.greater_is_better else "min", min_resource=min_resource,
        max_resource=args.max_resource, eta=args.eta, budget=args.budget, time_budget=args.time_budget,
        master_seed=args.seed, device=device, workers=args.workers, trials_per_gpu=args.trials_per_gpu,
        confirm_top=args.confirm_top, confirm_seeds=args.confirm_seeds, progress=args.progress)


def _read_space(spec: str) -> Space:
    """--space takes a JSON file or, as its help shows, the JSON object itself."""
    if not spec.lstrip().startswith("{"):
        return Space.from_json(spec, allowed_names=HYPERPARAMETERS)
    try:
        value = json.loads(spec)
    except json.JSONDecodeError as e:
        raise AlbertError(f"--space: invalid JSON: {e.msg} (column {e.colno})") from None
    return Space.from_dict(value, HYPERPARAMETERS, source="--space")


def run(args: TuneArgs) -> dict[str, Any]:
    from .sweep import run_sweep

    if args.backend not in ("local", "ray"):
        raise AlbertError(f"--backend must be local or ray, got {args.backend!r}")
    if args.budget < 1:
        raise AlbertError(f"--budget must be a positive number of configurations, got {args.budget}")
    if args.resume and (Path(args.resume) / "ray_sweep.json").exists():
        from .ray_backend import resume_with_ray
        return resume_with_ray(args.resume)
    if args.resume:
        if not (Path(args.resume) / "sweep.db").exists():
            raise AlbertError(f"{args.resume}: no sweep.db; not a sweep directory")
        if args.task:
            from ..tasks import get_task
            from .storage import Storage
            meta = Storage.open(Path(args.resume)).meta()
            recorded = (meta.get("settings") or meta).get("task")
            if recorded is not None and recorded != get_task(args.task).name:
                raise AlbertError(f"{args.resume}: this sweep is for task {recorded!r}, not {args.task!r}")
        return run_sweep(resume_dir=args.resume)
    settings = settings_from(args)
    if args.backend == "ray":
        from .ray_backend import run_with_ray
        return run_with_ray(settings)
    return run_sweep(settings)
