"""Samplers: which configuration a new trial tries. Schedulers (asha.py) decide how long trials
run; samplers decide what they run, as Optuna separates samplers from pruners.

    sampler = settings.make_sampler(space)  # albert/tune/sweep/settings.py: random | gp
    proposal = sampler.propose(index, history)     # -> Proposal(config, info)

`history` is everything known when trial `index` is proposed: every result so far, per trial
and resource (so a model can learn from the rungs of pruned trials, not only from finished
ones), and the configurations of trials still queued or running. A proposal is a pure function
of (space, master seed, index, history): the sweep records the history each proposal saw (its
last result sequence number and the pending trials, in sweep.db), so a resumed sweep re-proposes
exactly what an uninterrupted one would have from the same results, and any proposal can be
recomputed from the database (`recompute`).

- `random`: `Space.sample(master_seed, index)`, ignoring the history (the baseline; the same draws
  as before samplers existed).
- `gp`: Gaussian-process Bayesian optimisation (gp.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ...errors import AlbertError
from .space import Space

TOP_CONFIGS = 5  # with --warm-start, the random sampler's first proposals: this many of the sources' best
MAX_ATTEMPTS = 100  # draws per proposal before a space whose configurations are all invalid is refused

# Why a configuration cannot run (e.g. heads that do not divide the hidden size), or None.
Feasibility = Callable[[Mapping[str, Any]], "str | None"]


@dataclass(frozen=True)
class Observation:
    """A trial's metric at a resource (NaN: the trial diverged or failed there), and its
    validation loss there when the objective reported one (NaN: none)."""

    trial_id: int
    config: Mapping[str, Any]
    resource: int
    value: float
    loss: float = math.nan


@dataclass(frozen=True)
class Pending:
    """A trial queued or running: its configuration and the resource its job trains to."""

    trial_id: int
    config: Mapping[str, Any]
    resource: int


@dataclass(frozen=True)
class History:
    observations: tuple[Observation, ...]
    pending: tuple[Pending, ...]
    mode: str            # "max" or "min": the direction of the metric
    max_resource: int    # a full training; the resource the model predicts at
    min_resource: int = 1
    rungs: tuple[int, ...] = ()  # the scheduler's rungs (empty: every result is a full training)

    def finished_trials(self) -> set[int]:
        return {o.trial_id for o in self.observations}


@dataclass
class Proposal:
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)  # how it was chosen: recorded in sweep.db


class Sampler:
    """Proposes configurations from `space`; subclasses implement `propose`."""

    name = "base"
    options: tuple[str, ...] = ()  # the sweep options (settings fields) its constructor takes as keywords

    def __init__(self, space: Space, master_seed: int = 0, feasible: Feasibility | None = None) -> None:
        self.space, self.master_seed = space, master_seed
        self.feasible = feasible or (lambda config: None)
        self.warm: Any = None  # warmstart.WarmStart: earlier sweeps' results (--warm-start), or None

    def propose(self, index: int, history: History) -> Proposal:
        raise NotImplementedError

    @classmethod
    def summary_fields(cls, settings: Any) -> dict[str, Any]:
        """What summary.json's "sampler" says of this sampler's own options (none by default)."""
        return {}

    @classmethod
    def recommendation(cls, history: History, space: Space, rungs: list[int], mode: str,
                       seed: int) -> dict[str, Any] | None:
        """summary.json's "model_best": the configuration a model of the results (`history`, every
        recorded result) recommends (a sampler without a model: None)."""
        return None

    def random_config(self, index: int) -> Proposal:
        """`Space.sample(master_seed, index)`, drawn again (attempt 1, 2, ...) while it is infeasible."""
        problem = None
        for attempt in range(MAX_ATTEMPTS):
            config = self.space.sample(self.master_seed, index, attempt)
            problem = self.feasible(config)
            if problem is None:
                return Proposal(config, {"how": "random", **({"redrawn": attempt} if attempt else {})})
        raise AlbertError(f"the search space gave no valid configuration in {MAX_ATTEMPTS} draws "
                          f"(the last: {problem}); narrow --space")

    def warm_config(self, index: int, filler: Proposal) -> Proposal:
        """Proposal `index` from the warm-start sources' best configurations (the index-th of
        them, projected on this space with `filler` for what a source lacks), or `filler` when
        they are used up or that one is infeasible here."""
        top = self.warm.top() if self.warm is not None else []
        if index < len(top):
            config = self.warm.project(top[index], filler.config)
            if self.feasible(config) is None:
                return Proposal(config, {"how": "warm-start", "rank": index})
        return filler


class RandomSampler(Sampler):
    """Independent uniform draws (log-uniform where the space says so); with --warm-start the
    sources' TOP_CONFIGS best configurations first."""

    name = "random"

    def propose(self, index: int, history: History) -> Proposal:
        if self.warm is not None and index < TOP_CONFIGS:
            return self.warm_config(index, self.random_config(index))
        return self.random_config(index)


# --- building the history from what a sweep recorded -------------------------------------------

def rung_observations(results: Iterable[tuple], rungs: Sequence[int]) -> dict[tuple[int, int], tuple]:
    """(trial, rung) -> (resource, metric[, loss]): for each rung, a trial's first result at or
    past it and below the next rung, in arrival order.

    `results` are (trial_id, resource, metric[, loss]) in the order they were recorded. A job re-run after
    a crash reports its resources again: the first report stands, as in the schedulers. Of a
    stop-only scheduler's reports between rungs, the first past a rung is the one the scheduler
    decided on there; the rest add little and are left out, which keeps the model's data small."""
    ordered = sorted(rungs)
    out: dict[tuple[int, int], tuple] = {}
    for trial_id, resource, *values in results:
        below = [r for r in ordered if r <= resource]
        if below and (trial_id, below[-1]) not in out:
            out[trial_id, below[-1]] = (resource, *values)
    return out


def build_history(space: Space, configs: Mapping[int, Mapping[str, Any]],
                  results: Iterable[tuple], pending: Iterable[tuple[int, int]],
                  rungs: Sequence[int], mode: str) -> History:
    """A History from recorded data: `configs` trial id -> configuration (search trials; others
    are left out), `results` (trial, resource, metric[, validation loss or None]) in arrival
    order (NaN: diverged or failed, evidence too), `pending` (trial, to_resource)."""
    names = list(space)
    pick = {tid: {n: c[n] for n in names} for tid, c in configs.items()}
    observed = rung_observations((row for row in results if row[0] in pick), rungs)
    observations = tuple(Observation(tid, pick[tid], resource, float(metric), _loss(rest))
                         for (tid, _), (resource, metric, *rest) in sorted(observed.items()))
    waiting = tuple(Pending(tid, pick[tid], to) for tid, to in sorted(pending) if tid in pick)
    return History(observations, waiting, mode, max(rungs), min(rungs), tuple(sorted(rungs)))


def _loss(rest: Sequence[Any]) -> float:
    return float(rest[0]) if rest and rest[0] is not None else math.nan
