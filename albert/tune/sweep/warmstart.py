"""Warm start: what earlier sweeps learnt, for a new one (`tune.py --warm-start DIR [DIR ...]`).

A source is an earlier sweep directory whose space shares hyperparameter names with this one.
How it is used depends on whether its results measure this sweep's objective:

- evidence: the same task, objective, fixed settings (model or preset, data, sequence length...),
  direction, rungs and hyperparameter names. Its results are results of this objective: they
  join the history every proposal sees (trial ids negative, so they never clash with this
  sweep's), and the GP models from the first proposal on, with no quasi-random design.
- prior: anything else (another task, model, resource, or a space that shares only some names).
  A GP fitted to each source's results (on the shared names, in its own standardised units)
  gives a prior mean; this sweep's GP models the residual of its own results from that mean
  (the stacked residual of Golovin et al. 2017, "Google Vizier"), with the prior's weight
  PRIOR_RESULTS / (PRIOR_RESULTS + n) falling as this sweep's n results come in.

Either way the first proposals are the sources' best configurations (round-robin over the
sources, best first; trials trained furthest rank first, as in the leaderboard), projected on
this space: numbers clipped to its ranges, names a source lacks (or an option it lacks) from
the sweep's quasi-random design. The GP sampler uses them in place of its Sobol design (prior
sources); the random sampler proposes them first, then draws at random.

Every source is read-only and hashed (its settings, space, trials and results): sweep.db records
the sources and hashes, and a resume whose source changed since is refused.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ...errors import AlbertError
from ..asha import make_scheduler
from ..report import ranked
from ..search.gp import Surrogate
from ..search.sampler import History, Observation, build_history
from ..search.space import Choice, IntUniform, Space
from .runner import canonical_objective
from .storage import Storage

PRIOR_RESULTS = 10  # this sweep's results at which a prior source weighs half
_ID_STRIDE = 1_000_000  # evidence trial ids: -(source number * stride + trial id)


@dataclass
class Source:
    """One earlier sweep, as this sweep reads it."""

    path: str
    digest: str
    task: str
    use: str                        # "evidence" or "prior"
    shared: tuple[str, ...]         # hyperparameter names in common with this sweep's space
    history: History                # its results, configurations restricted to the shared names
    ranked: list[dict[str, Any]] = field(default_factory=list)  # its configurations, best first

    def record(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.digest, "task": self.task, "use": self.use,
                "shared": list(self.shared), "results": len(self.history.observations)}


class WarmStart:
    """The loaded sources of a sweep; what its sampler asks of them."""

    def __init__(self, sources: Sequence[Source], space: Space) -> None:
        self.sources, self.space = list(sources), space
        self._prior: Callable[[np.ndarray], np.ndarray] | None = None
        self._prior_fitted = False

    def record(self) -> list[dict[str, Any]]:
        """What sweep.db and summary.json record: each source's path, content hash and use."""
        return [s.record() for s in self.sources]

    @property
    def has_evidence(self) -> bool:
        return any(s.use == "evidence" for s in self.sources)

    @property
    def has_prior(self) -> bool:
        return any(s.use == "prior" for s in self.sources)

    def with_evidence(self, history: History) -> History:
        """`history` with the evidence sources' results before this sweep's own."""
        extra = []
        for k, s in enumerate(self.sources, start=1):
            if s.use == "evidence":
                extra += [Observation(-(k * _ID_STRIDE + o.trial_id), o.config, o.resource, o.value, o.loss)
                          for o in s.history.observations]
        if not extra:
            return history
        return History((*extra, *history.observations), history.pending, history.mode, history.max_resource,
                       history.min_resource, history.rungs)

    def top(self) -> list[dict[str, Any]]:
        """The sources' configurations (shared names only), best first, round-robin over the
        sources, each once."""
        out, seen = [], set()
        for rank in range(max((len(s.ranked) for s in self.sources), default=0)):
            for s in self.sources:
                if rank < len(s.ranked):
                    key = json.dumps(s.ranked[rank], sort_keys=True, default=str)
                    if key not in seen:
                        seen.add(key)
                        out.append(s.ranked[rank])
        return out

    def project(self, partial: Mapping[str, Any], filler: Mapping[str, Any]) -> dict[str, Any]:
        """A source's configuration in this space: numbers clipped to its ranges, the rest
        (names or options the source lacks) from `filler`, a configuration of this space."""
        out = dict(filler)
        for name, value in partial.items():
            dist = self.space[name]
            if isinstance(dist, Choice):
                if value in dist.options:
                    out[name] = value
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                low, high = dist.low, dist.high
                clipped = min(max(value, low), high)
                out[name] = int(round(clipped)) if isinstance(dist, IntUniform) else float(clipped)
        return out

    def prior_weight(self, own_results: int) -> float:
        """The prior mean's weight with `own_results` results of this sweep in the model."""
        return PRIOR_RESULTS / (PRIOR_RESULTS + own_results)

    def prior_mean(self, seed: int) -> Callable[[np.ndarray], np.ndarray] | None:
        """unit-cube points of this space (model inputs; extra columns ignored) -> the mean of
        the prior sources' GP means there, each in its own standardised units; None without
        prior sources. Fitted once (seeded), so every proposal sees the same prior."""
        if self._prior_fitted:
            return self._prior

        means = []
        coordinates = self.space.coordinates()
        for s in self.sources:
            finite = [o for o in s.history.observations if math.isfinite(o.value)]
            if s.use != "prior" or len(finite) < 2:
                continue
            sub = Space({n: self.space[n] for n in s.shared})
            columns = np.concatenate([np.arange(self.space.width)[coordinates[n]] for n in sub.names])
            model = Surrogate.fit(sub, s.history, seed, min_points=len(sub) + 1)
            means.append((model, columns))
        if means:
            def prior(points: np.ndarray) -> np.ndarray:
                points = np.atleast_2d(points)
                return np.mean([m.predict(points[:, cols])[0] for m, cols in means], axis=0)
            self._prior = prior
        self._prior_fitted = True
        return self._prior


def load(paths: Iterable[str], *, space: Space, task: str, objective: str, fixed: Mapping[str, Any], mode: str,
         rungs: Sequence[int]) -> WarmStart:
    """The sources at `paths`, checked: each must be a readable sweep directory whose space
    shares a hyperparameter name with `space` (else one line naming it, AlbertError)."""
    sources = []
    for path in paths:
        store = Storage.read_only(path, "--warm-start")
        try:
            meta = store.meta()
            settings = meta.get("settings") or {}
            theirs = Space.from_dict(meta.get("space") or settings.get("space") or {}, source=f"--warm-start {path}")
            shared = tuple(sorted(set(theirs) & set(space)))
            if not shared:
                raise AlbertError(f"--warm-start {path}: no hyperparameter in common with this sweep's space "
                                  f"(it searched {', '.join(sorted(theirs))})")
            trials = [t for t in store.trials("search")]
            results = [(r.trial_id, r.resource, r.metric, r.loss, r.source) for r in store.results()]
            their_rungs = make_scheduler(settings.get("scheduler", "asha"), settings["min_resource"],
                                         settings["max_resource"], settings["eta"], settings.get("mode", "max")).rungs
        except (KeyError, TypeError, ValueError) as e:
            raise AlbertError(f"--warm-start {path}: sweep.db lacks its settings ({e!r})") from None
        finally:
            store.close()
        digest = hashlib.sha256(json.dumps(
            {"settings": settings, "space": theirs.to_json(), "trials": [[t.id, t.config] for t in trials],
             "results": results}, sort_keys=True, default=str).encode()).hexdigest()
        same = (settings.get("task") == task and canonical_objective(str(settings.get("objective"))) == objective
                and settings.get("fixed") == dict(fixed) and settings.get("mode") == mode
                and list(their_rungs) == list(rungs) and set(theirs) == set(space))
        sub = Space({n: space[n] for n in shared})
        configs = {t.id: t.config for t in trials}
        recorded = [(tid, max(res, their_rungs[0]), math.nan, math.nan) if src == "error" else (tid, res, m, loss)
                    for tid, res, m, loss, src in results]
        history = build_history(sub, configs, recorded, [], their_rungs, settings.get("mode", "max"))
        good = [t for t in trials if t.state != "failed" and t.metric is not None and math.isfinite(t.metric)]
        best = [{n: t.config[n] for n in shared} for t in ranked(good, settings.get("mode", "max"))]
        sources.append(Source(str(Path(path).resolve()), digest, str(settings.get("task")),
                              "evidence" if same else "prior", shared, history, best))
    return WarmStart(sources, space)


def check_unchanged(recorded: Sequence[Mapping[str, Any]] | None, warm: WarmStart | None, resume_dir: str) -> None:
    """Refuse a resume whose sources' contents changed since the sweep started."""
    now = {s["path"]: s["sha256"] for s in (warm.record() if warm else [])}
    was = {s["path"]: s["sha256"] for s in (recorded or [])}
    changed = sorted(p for p in was if now.get(p) != was[p])
    if changed or set(now) != set(was):
        which = ", ".join(changed or sorted(set(now) ^ set(was)))
        raise AlbertError(f"--resume {resume_dir}: --warm-start source {which} "
                          "changed since this sweep started (its proposals would differ); start a new --output-dir")
