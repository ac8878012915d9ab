"""Trial schedulers: which job to run next, and whether a running trial should stop.

The narrow interface the sweep loop uses (all three schedulers share it):

    suggest(allow_new) -> Job | None      the next job, or None when nothing can run now
    report(trial_id, resource, metric)    a result at the end of a job (or at a rung)
    should_stop(trial_id, resource, metric) -> bool
                                          asked at every intermediate report of a running job
    fail(trial_id)                        the trial died; never schedule it again

A scheduler knows nothing about processes, storage or time, and every decision depends only on
the sequence of calls, so replaying the recorded results into a fresh scheduler rebuilds it.

- `ASHA`: the promotion variant of asynchronous successive halving (Li et al., MLSys 2020,
  Algorithm 2): a trial trains to one rung, pauses, and is later promoted (resumed from its
  checkpoint) to the next rung if it is in the top 1/eta of that rung.
- `AsyncHyperBand`: the stopping variant (as Ray Tune's AsyncHyperBandScheduler with one
  bracket): each trial trains straight to max_resource and is stopped at a rung if it is worse
  than the (1 - 1/eta) quantile of the results recorded at that rung before it.
- `RandomSearch`: every trial to max_resource; only non-finite metrics stop a trial.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..errors import AlbertError


class Job(NamedTuple):
    kind: str  # "new" (trial_id None until the sweep creates the trial) or "promote"
    trial_id: int | None
    from_resource: int
    to_resource: int


def make_rungs(min_resource: int, max_resource: int, eta: int) -> list[int]:
    """min_resource * eta**k below max_resource, then max_resource itself as the top rung."""
    if not (isinstance(min_resource, int) and min_resource >= 1):
        raise AlbertError(f"--min-resource must be a positive integer, got {min_resource!r}")
    if not (isinstance(max_resource, int) and max_resource >= min_resource):
        raise AlbertError(f"--max-resource must be an integer >= --min-resource {min_resource}, got {max_resource!r}")
    if not (isinstance(eta, int) and eta >= 2):
        raise AlbertError(f"--eta must be an integer >= 2, got {eta!r}")
    rungs = []
    r = min_resource
    while r < max_resource:
        rungs.append(r)
        r *= eta
    rungs.append(max_resource)
    return rungs


class _Ranker:
    """Orders metrics best-first for a mode; non-finite metrics rank below every finite one."""

    def __init__(self, mode: str) -> None:
        if mode not in ("max", "min"):
            raise AlbertError(f"--mode must be 'max' or 'min', got {mode!r}")
        self.mode = mode

    def key(self, metric: float, trial_id: int) -> tuple:
        # Ties go to the older trial so decisions never depend on dict order.
        if not math.isfinite(metric):
            return (1, 0.0, trial_id)
        return (0, -metric if self.mode == "max" else metric, trial_id)

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b


class Scheduler:
    """Shared bookkeeping: rungs, per-rung results, dead trials."""

    name = "base"

    def __init__(self, min_resource: int, max_resource: int, eta: int = 3, mode: str = "max") -> None:
        self.rungs = make_rungs(min_resource, max_resource, eta)
        self.min_resource, self.max_resource, self.eta = min_resource, max_resource, eta
        self.ranker = _Ranker(mode)
        self.mode = mode
        # rung index -> {trial_id: metric}, in the order the results arrived
        self.results: list[dict[int, float]] = [{} for _ in self.rungs]
        self.dead: set[int] = set()

    def rung_index(self, resource: int) -> int | None:
        try:
            return self.rungs.index(resource)
        except ValueError:
            return None

    def report(self, trial_id: int, resource: int, metric: float) -> None:
        if not math.isfinite(metric):
            self.dead.add(trial_id)
        k = self.rung_index(resource)
        # The first result at a rung stands: a job re-run after a crash must not move a decision.
        if k is not None and trial_id not in self.results[k]:
            self.results[k][trial_id] = float(metric)

    def should_stop(self, trial_id: int, resource: int, metric: float) -> bool:
        if not math.isfinite(metric):
            self.dead.add(trial_id)
            return True
        return False

    def fail(self, trial_id: int) -> None:
        self.dead.add(trial_id)

    def suggest(self, allow_new: bool = True) -> Job | None:
        raise NotImplementedError

    def claim(self, job: Job) -> None:
        """Mark a job re-issued from storage (after a resume) as handed out."""

    def drain(self) -> Job | None:
        """The budget is spent and nothing runs: a last job that the regular rule would not give,
        or None when the sweep is done."""
        return None

    def top(self, k: int, n: int) -> list[int]:
        """The best `n` trials recorded at rung `k`, best first."""
        ranked = sorted(self.results[k].items(), key=lambda kv: self.ranker.key(kv[1], kv[0]))
        return [tid for tid, _ in ranked[:n]]


class ASHA(Scheduler):
    """Asynchronous successive halving, promotion variant (Li et al. 2020, Algorithm 2)."""

    name = "asha"

    def __init__(self, min_resource: int, max_resource: int, eta: int = 3, mode: str = "max") -> None:
        super().__init__(min_resource, max_resource, eta, mode)
        self.promoted: list[set[int]] = [set() for _ in self.rungs]

    def promotable(self, k: int) -> list[int]:
        """Trials in the top floor(n_k / eta) of rung k that have not left it yet, best first."""
        candidates = self.top(k, len(self.results[k]) // self.eta)
        return [t for t in candidates if t not in self.promoted[k] and t not in self.dead]

    def suggest(self, allow_new: bool = True) -> Job | None:
        # Highest rungs first: finishing a good trial beats widening the bottom rung.
        for k in range(len(self.rungs) - 2, -1, -1):
            ready = self.promotable(k)
            if ready:
                job = Job("promote", ready[0], self.rungs[k], self.rungs[k + 1])
                self.claim(job)
                return job
        if allow_new:
            return Job("new", None, 0, self.rungs[0])
        return None

    def drain(self) -> Job | None:
        """With a finite budget a rung can hold fewer than eta results, and then nothing is ever
        promoted out of it. Until some trial has reached max_resource, promote the best remaining
        trial of the highest rung that has results, so the sweep ends with a fully trained winner."""
        if any(math.isfinite(v) for v in self.results[-1].values()):
            return None
        for k in range(len(self.rungs) - 2, -1, -1):
            ready = [t for t in self.top(k, len(self.results[k]))
                     if t not in self.promoted[k] and t not in self.dead and math.isfinite(self.results[k][t])]
            if ready:
                job = Job("promote", ready[0], self.rungs[k], self.rungs[k + 1])
                self.claim(job)
                return job
        return None

    def claim(self, job: Job) -> None:
        if job.kind == "promote":
            k = self.rung_index(job.from_resource)
            if k is not None:
                self.promoted[k].add(job.trial_id)

    def report(self, trial_id: int, resource: int, metric: float) -> None:
        super().report(trial_id, resource, metric)
        # A result above rung k means the trial was promoted out of every rung below it.
        for k, r in enumerate(self.rungs):
            if r < resource:
                self.promoted[k].add(trial_id)


class AsyncHyperBand(Scheduler):
    """Stop-only ASHA: one job per trial to max_resource, cut at rungs by a quantile rule."""

    name = "hyperband"

    def suggest(self, allow_new: bool = True) -> Job | None:
        return Job("new", None, 0, self.max_resource) if allow_new else None

    def cutoff(self, k: int) -> float | None:
        """The (1 - 1/eta) quantile of the finite results at rung k, in the direction of `mode`."""
        values = [v for v in self.results[k].values() if math.isfinite(v)]
        if not values:
            return None
        q = 1.0 - 1.0 / self.eta if self.mode == "max" else 1.0 / self.eta
        return float(np.quantile(values, q))

    def should_stop(self, trial_id: int, resource: int, metric: float) -> bool:
        if super().should_stop(trial_id, resource, metric):
            self.report(trial_id, resource, metric)
            return True
        # Decide at the highest rung (below the top) that this report has reached and not yet recorded.
        for k in range(len(self.rungs) - 2, -1, -1):
            if resource < self.rungs[k]:
                continue
            if trial_id in self.results[k]:
                return trial_id in self.dead
            cut = self.cutoff(k)
            self.results[k][trial_id] = float(metric)
            if cut is not None and self.ranker.better(cut, metric):
                self.dead.add(trial_id)
                return True
            return False
        return trial_id in self.dead

    def report(self, trial_id: int, resource: int, metric: float) -> None:
        k = self.rung_index(resource)
        if k is not None and k < len(self.rungs) - 1 and trial_id not in self.results[k] and math.isfinite(metric):
            # A rung result that did not pass through should_stop (a replay): decide it the same way.
            self.should_stop(trial_id, resource, metric)
            return
        super().report(trial_id, resource, metric)


class RandomSearch(Scheduler):
    """Every trial to max_resource: the baseline ASHA is measured against."""

    name = "random"

    def suggest(self, allow_new: bool = True) -> Job | None:
        return Job("new", None, 0, self.max_resource) if allow_new else None


SCHEDULERS: dict[str, type[Scheduler]] = {"asha": ASHA, "hyperband": AsyncHyperBand, "random": RandomSearch}


def make_scheduler(name: str, min_resource: int, max_resource: int, eta: int = 3, mode: str = "max") -> Scheduler:
    if name not in SCHEDULERS:
        raise AlbertError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}")
    return SCHEDULERS[name](min_resource, max_resource, eta, mode)
