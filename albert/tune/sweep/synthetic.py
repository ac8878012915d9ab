"""Synthetic objectives with known learning curves, for testing and benchmarking the tuner.

`curve` trains nothing: the metric at resource r is

    metric(r) = final(config) - a(config) * r ** -0.7  (+ optional Gaussian noise)

where `final` peaks at lr = 10**-4.6, warmup 0.1, dropout 0.1, layer decay 0.85, and `a` is
larger for small learning rates, so slow learners look bad early and curves cross the way real
fine-tuning curves do. Each report carries a validation loss of 1 - metric, as fine-tuning's
reports carry theirs. It behaves like a real objective otherwise: it keeps a small checkpoint
(the resource reached, the metric, and the history of jobs it ran) in the trial directory,
continues from it, writes the run's config.json, sleeps a few ms per unit of resource, and
honours a stop from `report`.

Knobs, read from the configuration (put them in the sweep's fixed settings):
  synthetic_sleep_ms   sleep per unit of resource (default 2)
  synthetic_noise      standard deviation of the noise (default 0)
  synthetic_nan_lr     lr above which the run diverges: NaN from resource 1 on (default none)
  synthetic_error_lr   lr above which the objective raises (a bug in a trial, not a crash)
  synthetic_eval_every report every this many units (default 1)
  synthetic_log        append one JSON line per job start and end to this file
  synthetic_die_once   a path: the first job to see it missing creates it and kills its worker
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ...atomic import write_json

CHECKPOINT = "checkpoint.json"


def final_metric(config: dict[str, Any]) -> float:
    """The metric a configuration converges to (what a perfect tuner would maximise)."""
    lr = float(config.get("lr", 10 ** -4.6))
    return (0.92
            - 0.25 * (math.log10(lr) + 4.6) ** 2
            - 0.3 * (float(config.get("warmup", 0.1)) - 0.1) ** 2
            - 0.5 * (float(config.get("dropout", 0.1)) - 0.1) ** 2
            - 0.2 * (float(config.get("layer_lr_decay", 0.85)) - 0.85) ** 2
            - 0.05 * float(config.get("weight_decay", 0.0))
            - 0.004 * abs(math.log2(float(config.get("batch_size", 32)) / 32)))


def metric_at(config: dict[str, Any], resource: int, seed: int = 0) -> float:
    """The noisy learning curve at `resource` (>= 1)."""
    nan_lr = config.get("synthetic_nan_lr")
    lr = float(config.get("lr", 10 ** -4.6))
    if nan_lr is not None and lr > float(nan_lr):
        return math.nan
    # Small learning rates start further from their final value.
    slowness = min(max((math.log10(lr) + 5.3) / 1.3, 0.0), 1.0)
    a = 0.3 + 0.4 * (1.0 - slowness)
    value = final_metric(config) - a * resource ** -0.7
    noise = float(config.get("synthetic_noise", 0.0))
    if noise:
        value += noise * float(np.random.default_rng([seed, resource]).standard_normal())
    return value


def _log(config: dict[str, Any], **entry: Any) -> None:
    path = config.get("synthetic_log")
    if path:
        with open(path, "a", encoding="utf-8") as f:  # O_APPEND: lines from several workers do not interleave
            f.write(json.dumps(entry) + "\n")


def curve(config: dict[str, Any], trial_dir: str, from_resource: int, to_resource: int, max_resource: int,
          seed: int, report: Callable[..., bool]) -> float:
    trial = Path(trial_dir)
    trial.mkdir(parents=True, exist_ok=True)
    ckpt_path = trial / CHECKPOINT
    ckpt = json.loads(ckpt_path.read_text()) if ckpt_path.exists() else None
    history = ckpt["history"] if ckpt else []
    if history and history[-1][0] == from_resource:
        # This job finished before a crash but the sweep never heard of it: give its result again.
        return float(ckpt["metric"]) if ckpt["metric"] is not None else math.nan
    if from_resource > 0 and (ckpt is None or ckpt["resource"] != from_resource):
        raise RuntimeError(f"{ckpt_path}: checkpoint at {ckpt and ckpt['resource']}, job starts at {from_resource}")
    if from_resource == 0:
        write_json(trial / "config.json", {"hyperparameters": config, "seed": seed, "max_resource": max_resource})

    if config.get("synthetic_error_lr") is not None and float(config["lr"]) > float(config["synthetic_error_lr"]):
        raise ValueError(f"synthetic failure: lr {config['lr']} > {config['synthetic_error_lr']}")
    die_marker = config.get("synthetic_die_once")
    _log(config, event="start", trial_dir=str(trial), start=from_resource, end=to_resource, pid=os.getpid(),
         cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"), omp_threads=os.environ.get("OMP_NUM_THREADS"))
    if die_marker and not os.path.exists(die_marker):
        Path(die_marker).touch()
        os._exit(3)

    sleep = float(config.get("synthetic_sleep_ms", 2)) / 1000.0
    every = int(config.get("synthetic_eval_every", 1))
    reached, metric = from_resource, math.nan
    for r in range(from_resource + 1, to_resource + 1):
        if sleep:
            time.sleep(sleep)
        reached = r
        if r % every and r != to_resource:
            continue
        metric = metric_at(config, r, seed)
        if not report(r, metric, loss=1.0 - metric) or math.isnan(metric):
            break
    write_json(ckpt_path, {"resource": reached, "metric": None if math.isnan(metric) else metric,
                           "history": history + [[from_resource, reached, os.getpid()]]})
    _log(config, event="end", trial_dir=str(trial), start=from_resource, end=reached, pid=os.getpid())
    return metric


def trivial(config: dict[str, Any], trial_dir: str, from_resource: int, to_resource: int, max_resource: int,
            seed: int, report: Callable[..., bool]) -> float:
    """No work, no files: what is left of a trial's cost is the tuner's own overhead."""
    value = -(float(config.get("x", 0.0)) - 0.3) ** 2 - (float(config.get("y", 0.0)) - 0.7) ** 2
    report(to_resource, value)
    return value
