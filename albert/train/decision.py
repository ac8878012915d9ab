"""When to evaluate, save and stop: pure functions of the loop's counters, so each rule can be
read (and tested) as a table.

After every optimizer step the loop asks `decide`; an evaluation then reports whether the run
improved (`judge`). An evaluation that ends the run (patience, or the tuner pruning the trial)
also saves a checkpoint and stops, whatever `decide` said.
"""
from __future__ import annotations

import math
from typing import NamedTuple


class Decision(NamedTuple):
    evaluate: bool
    save: bool
    stop: bool


def decide(*, step: int, total_steps: int, epoch_end: bool, eval_every: int, save_every: int,
           bad_steps: int) -> Decision:
    """What to do after optimizer step `step` (1-based).

    - evaluate every `eval_every` steps, or at each epoch's end when it is 0, and at the last step;
    - save every `save_every` steps, or at each evaluation when it is 0, and always at the last
      step;
    - stop at the last step;
    - but during a run of non-finite steps (`bad_steps` > 0) neither evaluate nor save, not even
      at the last step: the weights just gave a non-finite loss, so they must not become best/
      or a metric, and rotating away old checkpoints must never drop the last one saved before
      the trouble began. (A run that stops inside such a run has diverged: the loop says so.)
    """
    last = step >= total_steps
    evaluate = (step % eval_every == 0 if eval_every else epoch_end) or last
    save = (step % save_every == 0 if save_every else evaluate) or last
    healthy = bad_steps == 0
    return Decision(evaluate=evaluate and healthy, save=save and healthy, stop=last)


class Judgement(NamedTuple):
    improved: bool
    evals_without_improvement: int
    out_of_patience: bool


def judge(value: float, best: float | None, *, greater_is_better: bool, evals_without_improvement: int,
          patience: int | None) -> Judgement:
    """Whether an evaluation's `value` beats the `best` so far (the first finite one always does),
    the new count of evaluations without improvement, and whether that count has used up
    `patience` (None: never). NaN or inf never improves: it must not become best/, nor block
    every later value by comparing false with it."""
    improved = math.isfinite(value) and (best is None or (value > best if greater_is_better else value < best))
    count = 0 if improved else evals_without_improvement + 1
    return Judgement(improved, count, patience is not None and count >= patience)
