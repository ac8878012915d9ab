"""The sweep's ETA: the training steps the scheduler is still expected to spend, divided by the
step rate measured so far.

Counting trials finished instead swings wildly under ASHA: the first trials to finish are the
cheap, pruned ones (a first rung is a ninth of a full training), and a promoted trial costs many
of them. Here the sweep is expected to follow ASHA's rung structure: the top 1/eta of a rung
reaches the next one, so of `budget` trials budget / eta^k reach rung k. The rate is the steps
the sweep's trials gained per second of this session, all workers together.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True)
class TrialProgress:
    """What the estimate needs of one trial: its state, the steps it has trained, and the steps
    its current job trains to (its resource when it has no job)."""

    state: str
    resource: int
    target: int


def expected_steps_left(rungs: list[int], eta: int, scheduler: str, budget: int,
                        trials: Iterable[TrialProgress]) -> float:
    """Steps the sweep is expected to train from now on. Of the budget's trials, budget / eta^k
    are expected to reach rung k (all of them with --scheduler random); the stretch up to rung k
    is still to train for those not there yet or on their way (the rest of the stretch, for a
    job in flight)."""
    trials = list(trials)
    left, expected = 0.0, float(max(budget, len(trials)))
    for k, high in enumerate(rungs):
        low = rungs[k - 1] if k else 0
        if k and scheduler != "random":
            expected /= eta
        there = [t for t in trials if max(t.resource, t.target) >= high]  # reached it, or training toward it
        left += max(0.0, expected - len(there)) * (high - low)
        left += sum(high - max(low, t.resource) for t in there if t.state in ("queued", "running") and t.resource < high)
    return left


class StepRate:
    """Training steps per second since the first observation (this session's start), for all
    workers together. `clock` is time.monotonic (a test passes its own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.first: tuple[float, float] | None = None  # (time, steps) at the first observation
        self.last: tuple[float, float] | None = None

    def observe(self, steps_done: float) -> None:
        now = self.clock()
        if self.first is None:
            self.first = (now, steps_done)
        self.last = (now, steps_done)

    def per_second(self) -> float | None:
        if self.first is None or self.last is None:
            return None
        seconds, steps = self.last[0] - self.first[0], self.last[1] - self.first[1]
        return steps / seconds if seconds > 0 and steps > 0 else None


def seconds_left(steps_left: float, rate: StepRate) -> float | None:
    """The ETA in seconds; None until a step has been measured."""
    per_second = rate.per_second()
    return None if per_second is None else steps_left / per_second
