"""`python tune.py`: search fine-tuning hyperparameters for one task with ASHA (or random search).

The sweep directory holds sweep.db (every trial, rung result and heartbeat), trials/<id>/ (each
trial's run: config.json, checkpoints, best model), trials.csv, summary.json, best/ (the best
trial's run directory: `python train.py <sweep>/best/config.json` retrains it) and plots.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoint import load_config, resolve
from ..config import PRESETS
from ..defaults import tune_lr_range
from ..dirlock import lock_directory
from ..errors import AlbertError, require
from ..finetune import FinetuneArgs
from ..runconfig import add_arguments
from ..rundir import claim_run_dir, default_model, hub_unavailable
from ..tasks import get_task
from .ray_engine.backend import run_with_ray
from .search.space import HYPERPARAMETERS, Space, current_names, default_space
from .sweep.run import SweepSettings, check_settings, lock_sweep_dir, run_sweep
from .sweep.storage import Storage

# tune.py's options are SweepSettings' fields, these two under the names users know; the fine-tuning
# options fixed across trials (FIXED) go to `fixed`; `resume` and `backend` belong to the command.
FLAGS = {"sweep_dir": "output_dir", "master_seed": "seed"}
OPTIONS = ("task", "budget", "time_budget", "sweep_dir", "scheduler", "sampler", "acquisition", "initial_trials",
           "eta", "min_resource", "max_resource", "master_seed", "workers", "trials_per_gpu", "device",
           "confirm_top", "confirm_seeds", "progress", "report_to")  # and space, warm_start: add_options
FIXED = ("model", "preset", "tokenizer", "data_dir", "train_file", "dev_file", "max_seq_length",
         "max_train_samples", "max_eval_samples", "precision")
BACKENDS = ("local", "ray")


def add_options(parser: argparse.ArgumentParser, helps: dict[str, str]) -> None:
    """tune.py's options: values land under SweepSettings' field names (FIXED ones under their own)."""
    add_arguments(parser, SweepSettings, helps, only=OPTIONS, flags=FLAGS)
    parser.add_argument("--space", default=argparse.SUPPRESS, help=helps["space"])
    # Several directories after one flag: the dataclass-typed options take one value each.
    parser.add_argument("--warm-start", nargs="+", metavar="SWEEP_DIR", default=argparse.SUPPRESS,
                        help=helps["warm_start"])
    parser.add_argument("--resume", metavar="SWEEP_DIR", default=argparse.SUPPRESS, help=helps["resume"])
    parser.add_argument("--backend", choices=BACKENDS, default=argparse.SUPPRESS, help=helps["backend"])
    fine_tuning = parser.add_argument_group("fine-tuning options, the same in every trial")
    add_arguments(fine_tuning, FinetuneArgs, helps, only=FIXED)


def settings_from(options: dict[str, Any], say: Callable[[str], None] = lambda line: None) -> SweepSettings:
    """The sweep's settings from tune.py's options (`options`: by field name, only those given),
    defaults resolved (task, model, search space; `say` gets a line for each default chosen), every
    number checked before any is computed with. The sweep directory is left empty ("") when no
    --output-dir is given: `run` claims a new one once everything has been checked."""
    unknown = set(options) - set(OPTIONS) - set(FIXED) - {"space", "warm_start"}
    require(not unknown, f"not options of tune.py: {', '.join(sorted(unknown))}")
    own = {k: v for k, v in options.items() if k in OPTIONS}
    # --precision is recorded when not given too, as it always was: warm start and --resume compare
    # `fixed` as a whole.
    fixed = {k: v for k in FIXED if (v := options.get(k, "auto" if k == "precision" else None)) is not None}
    settings = SweepSettings(**own, warm_start=_warm_paths(options.get("warm_start")))
    settings.check_numbers()
    # The options every trial's fine-tuning gets: finetune.py's own checks, now rather than in each
    # trial (where the sweep would stop after three failed trials).
    FinetuneArgs(task=settings.task, **fixed).validate()
    if "task" not in options:
        say(f"no --task: tuning {settings.task} (CoNLL-2003 named entities, as `finetune.py --task {settings.task}`)")
    task = get_task(settings.task)
    if fixed.get("model") is None and fixed.get("preset") is None:
        fixed["model"] = _default_model(say)
    if options.get("space"):
        space = _read_space(options["space"]).to_json()
    else:
        space = _default_space(task, fixed.get("model"), fixed.get("preset"), say).to_json()
    return dataclasses.replace(
        settings, task=task.name, fixed={"task": task.name, **fixed}, space=space,
        device=_auto_device() if settings.device == "auto" else settings.device,
        mode="max" if task.greater_is_better else "min", metric_name=task.main_metric)


def _warm_paths(paths: list[str] | None) -> list[str] | None:
    """--warm-start's directories as absolute paths (what the sweep records and a resume compares)."""
    return [str(Path(p).resolve()) for p in paths] if paths else None


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


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Start a sweep, or resume one. `options`: tune.py's, by SweepSettings field name (FIXED ones
    by their own), only those given on the command line, plus `resume` and `backend`."""
    options = dict(options)
    resume_dir, given_backend = options.pop("resume", None), options.pop("backend", None)
    backend = given_backend or "local"
    require(backend in BACKENDS, f"--backend must be local or ray, got {backend!r}")
    require(not (options.get("warm_start") and backend == "ray"), "--warm-start works with --backend local only")
    if resume_dir:
        # The numbers given are checked as for a new sweep (settings_from does it there).
        SweepSettings(**{k: v for k, v in options.items() if k in OPTIONS}).check_numbers()
        return resume(resume_dir, options, given_backend)

    # What the defaults chose is said once the start cannot be refused any more (a refusal is one line).
    notes: list[str] = []
    settings = settings_from(options, say=notes.append)
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
        if backend == "ray":
            return run_with_ray(settings)
        return run_sweep(settings)


def resume(sweep_dir: str, options: dict[str, Any], backend: str | None = None) -> dict[str, Any]:
    """--resume DIR: refuse options that would change the search (one line listing them all),
    apply those that may change (ADJUSTABLE) and say so, then continue the sweep. The directory's
    lock is taken first: while another process runs the sweep, nothing else is said or done."""
    if not Path(sweep_dir).is_dir():
        raise AlbertError(f"{sweep_dir}: no sweep.db; not a sweep directory")
    with lock_sweep_dir(sweep_dir):
        return _resume(Path(sweep_dir), options, backend)


def _resume(sweep_dir: Path, options: dict[str, Any], backend: str | None) -> dict[str, Any]:
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
        raise AlbertError(f"{sweep_dir}: no sweep.db; not a sweep directory")
    given = {**options, "backend": backend} if backend else options
    differ = differences(recorded, sweep_dir, given, ray=ray_file.exists())
    if differ:
        raise AlbertError(f"--resume {sweep_dir}: this sweep is for {'; '.join(differ)} (options that change "
                          "the search cannot change on --resume; start a new --output-dir)")
    stored = SweepSettings.from_dict({**recorded, "sweep_dir": str(sweep_dir)})
    changes = {name: options[name] for name in ADJUSTABLE if name in options}
    if changes.get("device") == "auto":
        changes["device"] = _auto_device()
    changes = {k: v for k, v in changes.items() if getattr(stored, k) != v}
    if changes and ray_file.exists() and set(changes) - {"progress"}:
        raise AlbertError(f"--resume {sweep_dir}: a --backend ray sweep continues Ray's experiment as it was "
                          f"started; {', '.join('--' + k.replace('_', '-') for k in changes)} cannot change")
    updated = dataclasses.replace(stored, **changes)
    shown = [f"{k.replace('_', '-')} {getattr(stored, k)!r} -> {v!r}" for k, v in changes.items() if k != "progress"]
    if shown:
        print(f"resuming {sweep_dir} with {', '.join(shown)}", file=sys.stderr, flush=True)
    if ray_file.exists():
        return run_with_ray(updated)
    return run_sweep(updated, resume_dir=str(sweep_dir))


def differences(recorded: dict[str, Any], sweep_dir: str | Path, options: dict[str, Any],
                ray: bool = False) -> list[str]:
    """"option recorded, not given" for each option given with --resume (`options`, by field
    name, and `backend`) that defines the search and differs from what the sweep recorded."""
    defaults = {f.name: f.default for f in dataclasses.fields(SweepSettings) if f.default is not dataclasses.MISSING}
    fixed = recorded.get("fixed")
    task = recorded.get("task")
    out = []
    for name in sorted(set(options) - set(ADJUSTABLE)):
        value = options[name]
        if name == "task":
            was, now = task, get_task(value).name if value else value
        elif name == "sweep_dir":
            was, now = str(Path(sweep_dir).resolve()), str(Path(value).resolve()) if value else value
        elif name == "space":
            was = current_names(recorded["space"]) if recorded.get("space") else recorded.get("space")
            if was is None and task is not None and "space" in recorded:
                was = default_space(task).to_json()
            now = _read_space(value).to_json() if value else None
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
            out.append(f"{FLAGS.get(name, name)} {was!r}, not {now!r}")
    return out


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _auto_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
