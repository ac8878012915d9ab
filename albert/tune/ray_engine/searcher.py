"""`--backend ray --sampler gp`: our sampler as a Ray Tune searcher, so a cluster sweep gets the
same search as a local one.

Ray asks a searcher for each new trial's configuration (`suggest`), tells it every reported
result (`on_trial_result`) and each trial's end (`on_trial_complete`), and checkpoints it with
the experiment (`save` / `restore`). `SamplerSearcher` answers from the sampler with the same
history a local sweep builds: every rung result (Ray's ASHA reports each rung, see
ray_backend.albert_trial), failures as NaN, and the trials still running as pending. It needs
no Ray itself; `ray_searcher` mixes in Ray's `Searcher` base class when Ray is there.

The local backend's random sampler draws the same configurations as before on Ray (Ray's
seeded BasicVariantGenerator); this adapter serves the model-based sampler.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ...atomic import write_json
from ..asha import make_rungs
from ..search.sampler import build_history
from ..search.space import Space
from ..sweep.settings import trial_seed

RESOURCE, METRIC = "resource", "metric"     # the keys reported to Ray (time_attr and metric)
LOSS = "validation_loss"               # reported beside them when the objective gives one (NaN: none)
SEED_KEY = "trial_seed"                # sampled with the configuration, popped before the objective sees it
# Our trial index (suggestion order) in a searcher's configuration, popped like the seed: with a
# searcher Ray names trials with random hex ids, so the report orders trials by this instead.
INDEX_KEY = "trial_index"


class SamplerSearcher:
    """Ray Tune's Searcher protocol over a sweep's sampler. Trial k (in suggest order) is our
    trial index k: proposal k sees what was reported before it, as in a local sweep."""

    def __init__(self, settings: Any, space: Space) -> None:
        self.sampler = settings.make_sampler(space)
        # `goal`, not `mode`: Ray's Searcher has a read-only `mode` property.
        self.space, self.fixed, self.goal = space, dict(settings.fixed), settings.mode
        self.master_seed, self.max_resource = settings.master_seed, settings.max_resource
        self.rungs = make_rungs(settings.min_resource, settings.max_resource, settings.eta)
        self._trial_seed = trial_seed
        self.index: dict[str, int] = {}      # Ray's trial id -> our trial index
        self.configs: dict[int, dict[str, Any]] = {}
        self.results: list[tuple[int, int, float, float]] = []  # (index, resource, metric, loss), arrival order
        self.running: set[int] = set()

    # --- Ray's Searcher interface ------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # the space is ours; Ray's param_space holds only the fixed options

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        index = len(self.index)
        history = build_history(self.space, self.configs, self.results,
                                [(i, self.max_resource) for i in sorted(self.running)], self.rungs, self.goal)
        config = self.sampler.propose(index, history).config
        self.index[trial_id], self.configs[index] = index, config
        self.running.add(index)
        seed = int(config["seed"]) if "seed" in config else self._trial_seed(self.master_seed, index)
        return {**self.fixed, **config, SEED_KEY: seed, INDEX_KEY: index}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        index = self.index.get(trial_id)
        if index is not None and RESOURCE in result and METRIC in result:
            self.results.append((index, int(result[RESOURCE]), float(result[METRIC]),
                                 float(result.get(LOSS, math.nan))))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        index = self.index.get(trial_id)
        if index is None:
            return
        self.running.discard(index)
        if error and not any(row[0] == index for row in self.results):
            self.results.append((index, self.rungs[0], math.nan, math.nan))  # a failure is evidence too

    def save(self, checkpoint_path: str) -> None:
        write_json(checkpoint_path, self.get_state())

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(json.loads(Path(checkpoint_path).read_text(encoding="utf-8")))

    # --- state ----------------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        # NaN is not JSON: a failure is stored as null.
        return {"index": self.index, "configs": {str(k): v for k, v in self.configs.items()},
                "results": [[i, r, *(None if math.isnan(v) else v for v in rest)] for i, r, *rest in self.results],
                "running": sorted(self.running)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.index = {k: int(v) for k, v in state["index"].items()}
        self.configs = {int(k): v for k, v in state["configs"].items()}
        # A state saved before losses were kept has three values a row: the loss is then NaN.
        self.results = [(int(i), int(r), *(math.nan if v is None else float(v) for v in (rest + [None])[:2]))
                        for i, r, *rest in state["results"]]
        # Trials running when the experiment stopped are re-run by Ray under the same ids.
        self.running = set(state["running"])


def ray_searcher(settings: Any, space: Space, base: type) -> Any:
    """A SamplerSearcher that is also a `base` (ray.tune.search.Searcher), as Ray's Tuner requires."""

    class AlbertSearcher(SamplerSearcher, base):
        def __init__(self) -> None:
            base.__init__(self, metric=METRIC, mode=settings.mode)
            SamplerSearcher.__init__(self, settings, space)

    return AlbertSearcher()
