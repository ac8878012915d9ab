"""A sampler's input and output, kept in sweep.db: what each proposal saw, and checking it.

A proposal for trial index i sees the results recorded so far (up to a result sequence number)
and the trials pending then. Both are written with the trial, in the same transaction, so

- a resumed sweep re-issues recorded trials exactly (their configurations are in the trials
  table) and proposes new ones from the recorded results, the same way; with one worker the
  results, and so the proposals, are those of an uninterrupted sweep;
- `recompute` rebuilds every recorded proposal's input from the database and proposes again:
  equal configurations show that each proposal is a function of the recorded history alone,
  whatever the timing of parallel workers made that history.
"""
from __future__ import annotations

import math
import time
from typing import Any, Iterable, Mapping

from ..search.sampler import History, Sampler, build_history
from ..search.space import Space
from .storage import Storage

# Trial states whose job has not reported its end: the pending trials of a proposal.
PENDING_STATES = ("queued", "running")


def recorded_results(storage: Storage, rungs: list[int],
                     upto: int | None = None) -> list[tuple[int, int, float, float]]:
    """(trial, resource, metric, validation loss or NaN) in arrival order; a failed job (source
    'error') counts as NaN at the first rung it would have reached, so failures steer the model too."""
    out = []
    for r in storage.results(upto=upto):
        if r.source == "error":
            out.append((r.trial_id, max(r.resource, rungs[0]), math.nan, math.nan))
        else:
            out.append((r.trial_id, r.resource, r.metric, r.loss))
    return out


def history_at(storage: Storage, space: Space, rungs: list[int], mode: str, seen: int,
               pending: Iterable[tuple[int, int]], configs: Mapping[int, Mapping[str, Any]] | None = None) -> History:
    """The history a proposal saw: results up to `seen`, and the `pending` (trial, to_resource)."""
    if configs is None:
        configs = {t.id: t.config for t in storage.trials("search")}
    return build_history(space, configs, recorded_results(storage, rungs, seen), pending, rungs, mode)


def propose(storage: Storage, sampler: Sampler, index: int, rungs: list[int], mode: str,
            pending: list[tuple[int, int]], configs: Mapping[int, Mapping[str, Any]]) -> tuple[dict[str, Any], dict]:
    """Propose trial `index` from everything recorded now; (hyperparameters, the proposal record)."""
    seen = storage.last_seq()
    history = history_at(storage, sampler.space, rungs, mode, seen, pending, configs)
    started = time.perf_counter()
    proposal = sampler.propose(index, history)
    info = {**proposal.info, "wall_ms": round(1000 * (time.perf_counter() - started), 1)}
    return proposal.config, {"sampler": sampler.name, "seen": seen, "pending": pending, "info": info}


def recompute(storage: Storage, sampler: Sampler, rungs: list[int], mode: str) -> list[dict[str, Any]]:
    """Propose every recorded search trial again from its recorded input; one row per trial with
    `same` True when the configuration is the one the sweep ran."""
    trials = {t.id: t for t in storage.trials("search")}
    names = list(sampler.space)
    rows = []
    for p in storage.proposals():
        trial = trials[p.trial_id]
        # A proposal saw the trials created before it, never itself or later ones.
        before = {tid: t.config for tid, t in trials.items() if tid < p.trial_id}
        history = history_at(storage, sampler.space, rungs, mode, p.seen, p.pending, before)
        again = sampler.propose(trial.sample_index, history).config
        recorded = {n: trial.config[n] for n in names}
        rows.append({"trial_id": p.trial_id, "same": again == recorded, "recorded": recorded, "again": again})
    return rows


def sampler_summary(storage: Storage, settings: Any, sampler: type[Sampler]) -> dict[str, Any]:
    """summary.json's "sampler": which, how its proposals were made, and what they cost.

    `proposal_s` is wall time the sweep loop spent proposing; `loop_share` is its share of the
    sweep's wall time, during which workers that finish or report wait for an answer."""
    rows = storage.proposals()
    ms = sorted(p.info.get("wall_ms", 0.0) for p in rows)
    how: dict[str, int] = {}
    for p in rows:
        how[p.info.get("how", "?")] = how.get(p.info.get("how", "?"), 0) + 1
    out: dict[str, Any] = {"name": settings.sampler, "proposals": len(rows), "how": how,
                           "proposal_s": round(sum(ms) / 1000, 3),
                           "proposal_ms": {"median": ms[len(ms) // 2] if ms else None, "max": ms[-1] if ms else None}}
    if settings.warm_start:
        out["warm_start"] = storage.meta().get("warm_start", [])
    out.update(sampler.summary_fields(settings))
    return out
