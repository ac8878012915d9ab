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
from typing import Any, Iterable

from ..errors import AlbertError
from .space import HYPERPARAMETERS, Space, default_space

OBJECTIVE = "albert.tune.objective:finetune"


@dataclass
class TuneArgs:
    task: str | None = None
    budget: int = 20                   # configurations tried, pruned and failed ones included
    time_budget: float | None = None   # seconds; then no new trial starts
    output_dir: str | None = None      # the sweep directory
    resume: str | None = None          # continue the sweep in this directory
    scheduler: str = "asha"            # asha | hyperband (stop-only) | random (every trial to max_resource)
    sampler: str = "random"            # random | gp (Bayesian optimisation)
    acquisition: str = "ei"            # gp: ei | pi | ucb
    initial_trials: int | None = None  # gp: quasi-random trials before the model takes over
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
    device = _auto_device() if args.device == "auto" else args.device
    fixed = {k: getattr(args, k) for k in FIXED if getattr(args, k) is not None}
    fixed["task"] = task.name
    return SweepSettings(
        sweep_dir=args.output_dir, task=task.name, objective=OBJECTIVE, space=space, fixed=fixed,
        scheduler=args.scheduler, sampler=args.sampler, acquisition=args.acquisition,
        initial_trials=args.initial_trials, mode="max" if task.greater_is_better else "min", min_resource=min_resource,
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


# Options a --resume may change: applied, and reported on stderr. Every other option given with
# --resume must match the sweep (it would change what the recorded results mean).
ADJUSTABLE = ("budget", "time_budget", "workers", "trials_per_gpu", "device", "confirm_top", "confirm_seeds",
              "progress")
# Options that belong to the command itself, not to the sweep.
COMMAND = ("resume",)


def run(args: TuneArgs, given: Iterable[str] | None = None) -> dict[str, Any]:
    """Start a sweep, or resume one (`given`: the options named on the command line; by default
    those that differ from TuneArgs' defaults)."""
    from .sampler import check_sampler_options
    from .sweep import run_sweep

    given = set(given) if given is not None else _non_default(args)
    if args.backend not in ("local", "ray"):
        raise AlbertError(f"--backend must be local or ray, got {args.backend!r}")
    if args.budget < 1:
        raise AlbertError(f"--budget must be a positive number of configurations, got {args.budget}")
    check_sampler_options(args.sampler, args.acquisition, args.initial_trials)
    if args.resume:
        return resume(args, given)
    settings = settings_from(args)
    if args.backend == "ray":
        from .ray_backend import run_with_ray
        return run_with_ray(settings)
    return run_sweep(settings)


def resume(args: TuneArgs, given: set[str]) -> dict[str, Any]:
    """--resume DIR: refuse options that would change the search (one line listing them all),
    apply those that may change (ADJUSTABLE) and say so, then continue the sweep."""
    import sys

    from .storage import Storage
    from .sweep import SweepSettings, run_sweep

    sweep_dir = Path(args.resume)
    ray_file = sweep_dir / "ray_sweep.json"
    if ray_file.exists():
        recorded = json.loads(ray_file.read_text(encoding="utf-8"))
    elif (sweep_dir / "sweep.db").exists():
        storage = Storage.open(sweep_dir)
        try:
            meta = storage.meta()
        finally:
            storage.close()
        recorded = meta.get("settings") or meta
    else:
        raise AlbertError(f"{args.resume}: no sweep.db; not a sweep directory")
    differ = differences(recorded, args, given, ray=ray_file.exists())
    if differ:
        raise AlbertError(f"--resume {args.resume}: this sweep is for {'; '.join(differ)} (options that change "
                          "the search cannot change on --resume; start a new --output-dir)")
    stored = SweepSettings.from_dict({**recorded, "sweep_dir": str(sweep_dir)})
    changes = {name: getattr(args, name) for name in ADJUSTABLE if name in given}
    if changes.get("device") == "auto":
        changes["device"] = _auto_device()
    changes = {k: v for k, v in changes.items() if getattr(stored, k) != v}
    if changes and ray_file.exists() and set(changes) - {"progress"}:
        raise AlbertError(f"--resume {args.resume}: a --backend ray sweep continues Ray's experiment as it was "
                          f"started; {', '.join('--' + k.replace('_', '-') for k in changes)} cannot change")
    updated = dataclasses.replace(stored, **changes)
    shown = [f"{k.replace('_', '-')} {getattr(stored, k)!r} -> {v!r}" for k, v in changes.items() if k != "progress"]
    if shown:
        print(f"resuming {args.resume} with {', '.join(shown)}", file=sys.stderr, flush=True)
    if ray_file.exists():
        from .ray_backend import run_with_ray
        return run_with_ray(updated)
    return run_sweep(updated, resume_dir=args.resume)


def differences(recorded: dict[str, Any], args: TuneArgs, given: set[str], ray: bool = False) -> list[str]:
    """"option recorded, not given" for each option on the command line that defines the search
    and differs from what the sweep recorded."""
    from ..tasks import get_task
    from .sweep import SweepSettings

    defaults = {f.name: f.default for f in dataclasses.fields(SweepSettings) if f.default is not dataclasses.MISSING}
    fixed = recorded.get("fixed")
    task = recorded.get("task")
    out = []
    for name in sorted(given - set(ADJUSTABLE) - set(COMMAND)):
        value = getattr(args, name)
        if name == "task":
            was, now = task, get_task(value).name if value else value
        elif name == "output_dir":
            was, now = str(Path(args.resume).resolve()), str(Path(value).resolve()) if value else value
        elif name == "space":
            was = recorded.get("space")
            if was is None and task is not None and "space" in recorded:
                was = default_space(task).to_json()
            now = _read_space(value).to_json() if value else None
        elif name == "seed":
            was, now = recorded.get("master_seed"), value
        elif name == "backend":
            was, now = "ray" if ray else "local", value
        elif name in FIXED:
            if fixed is None:
                continue
            was, now = fixed.get(name), value
        elif name in defaults:  # a sweep recorded before a setting existed ran with its default
            was, now = recorded.get(name, defaults[name]), value
        else:
            continue
        if was != now:
            out.append(f"{name} {was!r}, not {now!r}")
    return out


def _non_default(args: TuneArgs) -> set[str]:
    return {f.name for f in dataclasses.fields(TuneArgs)
            if getattr(args, f.name) != (f.default if f.default is not dataclasses.MISSING else None)}


def _auto_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
