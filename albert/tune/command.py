"""`python tune.py`: search fine-tuning hyperparameters for one task with ASHA (or random search).

The sweep directory holds sweep.db (every trial, rung result and heartbeat), trials/<id>/ (each
trial's run: config.json, checkpoints, best model), trials.csv, summary.json, best/ (the best
trial's run directory: `python train.py <sweep>/best/config.json` retrains it) and plots.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from ..checkpoint import load_config, resolve
from ..config import PRESETS
from ..defaults import tune_lr_range
from ..dirlock import lock_directory
from ..errors import AlbertError, require
from ..finetune import FinetuneArgs
from ..rundir import claim_run_dir, default_model, hub_unavailable
from ..tasks import get_task
from .ray_engine.backend import run_with_ray
from .search.space import HYPERPARAMETERS, Space, current_names, default_space
from .sweep.objective import finetune
from .sweep.run import SweepSettings, check_settings, lock_sweep_dir, run_sweep
from .sweep.settings import check_sampler_options
from .sweep.storage import Storage

REPORT_TO = ("none", "tensorboard")


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
    warm_start: list[str] | None = None  # earlier sweep directories to learn from (tune.py --warm-start DIR ...)
    eta: int = 3
    min_resource: int | None = None    # steps at the first rung (default: max_resource / eta^2, rounded up)
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
    report_to: str = "none"            # none | tensorboard (HParams: each trial's hyperparameters and metric)


FIXED = ("task", "model", "preset", "tokenizer", "data_dir", "train_file", "dev_file", "max_seq_length",
         "max_train_samples", "max_eval_samples", "precision")


DEFAULT_TASK = "ner"  # as `finetune.py --task ner`: CoNLL-2003, the task this project starts with


def settings_from(args: TuneArgs, say: Callable[[str], None] = lambda line: None):
    """The sweep's settings from tune.py's options, defaults resolved (task, model, search space;
    `say` gets a line for each default chosen). The sweep directory is left empty ("") when no
    --output-dir is given: `run` claims a new one once everything has been checked."""
    if not args.task:
        say(f"no --task: tuning {DEFAULT_TASK} (CoNLL-2003 named entities, as `finetune.py --task {DEFAULT_TASK}`)")
    task = get_task(args.task or DEFAULT_TASK)
    check_numbers(args)  # before any of them is computed with (--eta 0 divided by zero here)
    # Three rungs by default, the first at a ninth of a full training (eta 3): on the recorded
    # tiny-model curves (bench/results/curves-ner.json) the F1 at an eighth of the run does not rank
    # the final one (rank correlation -0.08), at a quarter it starts to (0.54). Rounded up, so that
    # eta^2 times it reaches max_resource: rounded down, 1000 // 9 = 111 made rungs at 111, 333,
    # 999 and a fourth, 1-step one at 1000.
    min_resource = args.min_resource if args.min_resource is not None else max(1, -(-args.max_resource // args.eta ** 2))
    model = args.model
    if model is None and args.preset is None:
        model = _default_model(say)
    if args.space:
        space = _read_space(args.space).to_json()
    else:
        space = _default_space(task, model, args.preset, say).to_json()
    if args.report_to not in REPORT_TO:
        raise AlbertError(f"--report-to must be one of {', '.join(REPORT_TO)}, got {args.report_to!r}")
    device = _auto_device() if args.device == "auto" else args.device
    fixed = {k: getattr(args, k) for k in FIXED if getattr(args, k) is not None}
    fixed["task"] = task.name
    if model is not None:
        fixed["model"] = model
    return SweepSettings(
        sweep_dir=args.output_dir or "", task=task.name, objective=finetune, space=space, fixed=fixed,
        scheduler=args.scheduler, sampler=args.sampler, acquisition=args.acquisition,
        initial_trials=args.initial_trials, warm_start=_warm_paths(args.warm_start),
        mode="max" if task.greater_is_better else "min", min_resource=min_resource,
        max_resource=args.max_resource, eta=args.eta, budget=args.budget, time_budget=args.time_budget,
        master_seed=args.seed, device=device, workers=args.workers, trials_per_gpu=args.trials_per_gpu,
        confirm_top=args.confirm_top, confirm_seeds=args.confirm_seeds, progress=args.progress,
        metric_name=task.main_metric, report_to=args.report_to)


def _warm_paths(paths: list[str] | None) -> list[str] | None:
    """--warm-start's directories as absolute paths (what the sweep records and a resume compares)."""
    return [str(Path(p).resolve()) for p in paths] if paths else None


def check_numbers(args: TuneArgs) -> None:
    """Every number tune.py takes, checked before any is used (the rungs, the workers, the trials'
    fine-tuning options): a bad one is one line naming the option, before anything is written."""
    require(args.eta >= 2, f"--eta must be an integer >= 2, got {args.eta}")
    require(args.max_resource >= 1, f"--max-resource must be >= 1 step, got {args.max_resource}")
    require(args.min_resource is None or 1 <= args.min_resource <= args.max_resource,
            f"--min-resource must be between 1 and --max-resource {args.max_resource}, got {args.min_resource}")
    require(args.budget >= 1, f"--budget must be a positive number of configurations, got {args.budget}")
    require(args.time_budget is None or args.time_budget > 0,
            f"--time-budget must be positive seconds, got {args.time_budget}")
    require(args.workers >= 1, f"--workers must be >= 1, got {args.workers}")
    require(args.trials_per_gpu >= 1, f"--trials-per-gpu must be >= 1, got {args.trials_per_gpu}")
    require(args.confirm_top >= 0, f"--confirm-top must be >= 0, got {args.confirm_top}")
    require(args.confirm_seeds >= 0, f"--confirm-seeds must be >= 0, got {args.confirm_seeds}")
    require(0 <= args.seed < 2**32, f"--seed must be in [0, 2^32), got {args.seed}")
    # The options every trial's fine-tuning gets: finetune.py's own checks, now rather than in
    # each trial (where the sweep would stop after three failed trials).
    FinetuneArgs(task=args.task or DEFAULT_TASK, **{k: getattr(args, k) for k in FIXED if k != "task"}).validate()


def _default_model(say: Callable[[str], None]) -> str:
    """rundir.default_model: the newest local pretraining run's final/, else the hub's model
    (fetched now, in the sweep process, so that offline the sweep stops before it starts)."""
    name, line = default_model()
    if Path(name).is_dir():
        name = str(Path(name).resolve())  # every trial (and best/config.json) must find it from anywhere
    else:
        try:
            resolve(name)
        except AlbertError as e:
            raise hub_unavailable(e) from None
    say(line)
    return name


def _default_space(task, model: str | None, preset: str | None, say: Callable[[str], None]) -> Space:
    """default_space for this starting point: a random initialisation (--preset), a small
    pretrained model, or one of the published size; says which range it chose and why."""
    if model is not None:
        pretrained, hidden = True, load_config(resolve(model)).hidden_size
    else:
        if preset not in PRESETS:
            raise AlbertError(f"--preset: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        pretrained, hidden = False, PRESETS[preset]["hidden_size"]
    space = default_space(task.name, pretrained=pretrained, hidden_size=hidden)
    low, high, why = tune_lr_range(task.defaults["lr"], pretrained=pretrained, hidden_size=hidden)
    others = ", ".join(f"{n} {_describe(space[n])}" for n in space if n != "lr")
    say(f"search space: lr {low:g}..{high:g} log-uniform ({why}); {others} (--space to choose)")
    return space


def _describe(dist: Any) -> str:
    if hasattr(dist, "options"):
        return "{" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in dist.options) + "}"
    return f"{dist.low:g}..{dist.high:g}"


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
              "progress", "report_to")
# Options that belong to the command itself, not to the sweep.
COMMAND = ("resume",)


def run(args: TuneArgs, given: Iterable[str] | None = None) -> dict[str, Any]:
    """Start a sweep, or resume one (`given`: the options named on the command line; by default
    those that differ from TuneArgs' defaults)."""
    given = set(given) if given is not None else _non_default(args)
    if args.backend not in ("local", "ray"):
        raise AlbertError(f"--backend must be local or ray, got {args.backend!r}")
    if args.warm_start and args.backend == "ray":
        raise AlbertError("--warm-start works with --backend local only")
    check_numbers(args)
    check_sampler_options(args.sampler, args.acquisition, args.initial_trials)
    if args.resume:
        return resume(args, given)

    # What the defaults chose is said once the start cannot be refused any more (a refusal is one line).
    notes: list[str] = []
    settings = settings_from(args, say=notes.append)
    check_settings(settings)  # before a default directory is claimed, or a given one created
    if not settings.sweep_dir:
        settings = dataclasses.replace(settings, sweep_dir=str(claim_run_dir(f"tune-{settings.task}")))
        notes.append(f"sweep directory: {settings.sweep_dir} (pass --output-dir to choose)")
    with lock_directory(settings.sweep_dir):  # the sweep takes it again (same process): held throughout
        if (Path(settings.sweep_dir) / "sweep.db").exists():
            raise AlbertError(f"{settings.sweep_dir}: already holds a sweep (sweep.db); continue it with "
                              f"--resume {settings.sweep_dir}, or choose a new --output-dir")
        for line in notes:
            _say(line)
        if args.backend == "ray":
            return run_with_ray(settings)
        return run_sweep(settings)


def resume(args: TuneArgs, given: set[str]) -> dict[str, Any]:
    """--resume DIR: refuse options that would change the search (one line listing them all),
    apply those that may change (ADJUSTABLE) and say so, then continue the sweep. The directory's
    lock is taken first: while another process runs the sweep, nothing else is said or done."""
    if not Path(args.resume).is_dir():
        raise AlbertError(f"{args.resume}: no sweep.db; not a sweep directory")
    with lock_sweep_dir(args.resume):
        return _resume(args, given)


def _resume(args: TuneArgs, given: set[str]) -> dict[str, Any]:
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
        return run_with_ray(updated)
    return run_sweep(updated, resume_dir=args.resume)


def differences(recorded: dict[str, Any], args: TuneArgs, given: set[str], ray: bool = False) -> list[str]:
    """"option recorded, not given" for each option on the command line that defines the search
    and differs from what the sweep recorded."""
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
            was = current_names(recorded["space"]) if recorded.get("space") else recorded.get("space")
            if was is None and task is not None and "space" in recorded:
                was = default_space(task).to_json()
            now = _read_space(value).to_json() if value else None
        elif name == "seed":
            was, now = recorded.get("master_seed"), value
        elif name == "warm_start":
            was, now = recorded.get("warm_start"), _warm_paths(value)
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


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _non_default(args: TuneArgs) -> set[str]:
    return {f.name for f in dataclasses.fields(TuneArgs)
            if getattr(args, f.name) != (f.default if f.default is not dataclasses.MISSING else None)}


def _auto_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
