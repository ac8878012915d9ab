"""The fine-tuning objective the tuner's workers call (see runner.py for the interface).

A trial's configuration is the sweep's fixed fine-tuning options (task, model or preset, data,
...) merged with the sampled hyperparameters. Resource = optimizer steps. Every trial follows the
LR schedule of `max_resource` steps, so trials compared at a rung have seen the same schedule; a
promotion, or a job re-run after an interruption, resumes the trial from its own newest checkpoint
instead of starting again.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

from ...errors import AlbertError
from ...finetune import FinetuneArgs, run
from ...tasks import get_task

def finetune_args(config: dict[str, Any], trial_dir: str, to_resource: int, max_resource: int, seed: int):
    names = {f.name for f in dataclasses.fields(FinetuneArgs)}
    values = dict(config)  # the space's names are fine-tuning options' names
    unknown = sorted(set(values) - names)
    if unknown:
        raise AlbertError(f"not fine-tuning options: {', '.join(unknown)}")
    if "batch_size" in values:
        values["batch_size"] = int(values["batch_size"])
    values.update(output_dir=trial_dir, max_steps=to_resource, schedule_steps=max_resource, epochs=None,
                  seed=seed, progress=False, eval_every=0, keep_last=1, overwrite=True,
                  predict=False)
    return FinetuneArgs(**values)


def finetune(config: dict[str, Any], trial_dir: str, from_resource: int, to_resource: int, max_resource: int,
             seed: int, report: Callable[..., bool]) -> float:
    """Fine-tune to `to_resource` steps (resuming from `from_resource`) and return the task's
    main metric on the validation split; each evaluation is reported with its validation loss."""
    args = finetune_args(config, trial_dir, to_resource, max_resource, seed)
    task = get_task(args.task)
    # Whatever job this is: a job cut short (kill -9 of the sweep, a worker that died) left its
    # checkpoints, and the trial goes on from the newest intact one, as `finetune.py --resume`
    # does; a first job with none starts from step 0.
    resume = (Path(trial_dir) / "checkpoints").is_dir()

    def on_evaluate(step: int, metrics: dict[str, float]) -> bool:
        return report(step, float(metrics[task.main_metric]), loss=metrics.get("loss"))

    results = run(args, resume=resume, report=on_evaluate)
    value = results["final"][task.main_metric] if results.get("final") else results["best"][task.main_metric]
    value = float(value)
    return value if math.isfinite(value) else float("nan")
