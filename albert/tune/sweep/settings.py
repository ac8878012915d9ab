"""A sweep's settings: what defines its search (IDENTITY) and how it runs, checked before
anything is written."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import AlbertError, require
from ...tasks import get_task
from ...train.options import REPORT_TO
from ..asha import make_scheduler
from ..search.acquisition import ACQUISITIONS
from ..search.gp import GPSampler
from ..search.sampler import Feasibility, RandomSampler, Sampler
from ..search.space import ARCHITECTURE, Space, architecture_problem, current_names, default_space
from .runner import Objective, load_objective, objective_name
from .objective import finetune
from .warmstart import load

# Settings that define the sweep: a resume must not change them (the recorded results would lie).
IDENTITY = ("task", "objective", "space", "fixed", "scheduler", "mode", "min_resource", "max_resource", "eta",
            "master_seed", "sampler", "acquisition", "initial_trials", "warm_start")


@dataclass
class SweepSettings:
    """Everything a sweep is: tune.py's options are these fields (under FLAGS' names where they
    differ), with the same defaults; `fixed` holds the fine-tuning options given to every trial.
    A default left None (min_resource, space) is computed from the others."""

    sweep_dir: str = ""  # "": tune.py claims a new runs/tune-<task>-<time>
    task: str = "ner"
    objective: Objective = finetune  # a module-level function (runner.py states its interface)
    space: dict[str, Any] | None = None  # Space.to_json() form; None: default_space(task)
    fixed: dict[str, Any] = field(default_factory=dict)  # merged into every trial's configuration
    scheduler: str = "asha"  # asha | hyperband | random
    sampler: str = "random"  # random | gp: how new trials' configurations are chosen
    acquisition: str = "ei"  # gp: ei | pi | ucb
    initial_trials: int | None = None  # gp: quasi-random (Sobol) trials before the model (default 5)
    warm_start: list[str] | None = None  # earlier sweep directories (absolute) whose results guide the search
    mode: str = "max"
    # Three rungs by default, the first at a ninth of a full training (eta 3): on the recorded
    # tiny-model curves (bench/results/curves-ner.json) the metric at an eighth of the run does not
    # rank the final one, at a quarter it starts to. None: max_resource / eta^2 rounded up, so that
    # eta^2 times it reaches max_resource (rounded down, 1000 // 9 made rungs at 111, 333, 999, 1000).
    min_resource: int | None = None
    max_resource: int = 1000  # steps of a full training
    eta: int = 3
    budget: int = 20  # configurations tried, pruned and failed ones included
    time_budget: float | None = None  # seconds; then no new job starts
    master_seed: int = 0
    device: str = "auto"  # cpu | cuda | auto
    workers: int = 1  # CPU workers (ignored on GPUs: trials_per_gpu per GPU)
    trials_per_gpu: int = 1
    gpus: list[str] | None = None  # GPU ids to use; None: CUDA_VISIBLE_DEVICES or all visible
    max_retries: int = 1  # re-runs of a job whose worker died
    confirm_top: int = 0
    confirm_seeds: int = 0
    recycle_gpu_mib: int = 512
    progress: bool = True
    metric_name: str | None = None  # what the objective returns, for reports; None: the task's main metric
    report_to: str = "none"  # none | tensorboard: HParams of every trial under sweep_dir/tensorboard

    def __post_init__(self) -> None:
        if isinstance(self.space, Space):
            self.space = self.space.to_json()
        elif isinstance(self.space, dict):  # as stored by a sweep, perhaps under former names
            self.space = current_names(self.space)
        if self.min_resource is None and _is_int(self.eta) and self.eta >= 2 and _is_int(self.max_resource):
            self.min_resource = max(1, -(-self.max_resource // self.eta ** 2))

    def check_numbers(self) -> None:
        """Every number, checked before any is computed with: a bad one is one line naming its option."""
        require(_is_int(self.eta) and self.eta >= 2, f"--eta must be an integer >= 2, got {self.eta}")
        require(_is_int(self.max_resource) and self.max_resource >= 1,
                f"--max-resource must be >= 1 step, got {self.max_resource}")
        require(_is_int(self.min_resource) and 1 <= self.min_resource <= self.max_resource,
                f"--min-resource must be between 1 and --max-resource {self.max_resource}, got {self.min_resource}")
        require(_is_int(self.budget) and self.budget >= 1,
                f"--budget must be a positive number of configurations, got {self.budget!r}")
        require(self.time_budget is None or self.time_budget > 0,
                f"--time-budget must be positive seconds, got {self.time_budget!r}")
        require(_is_int(self.workers) and self.workers >= 1, f"--workers must be >= 1, got {self.workers}")
        require(_is_int(self.trials_per_gpu) and self.trials_per_gpu >= 1,
                f"--trials-per-gpu must be >= 1, got {self.trials_per_gpu}")
        require(self.confirm_top >= 0, f"--confirm-top must be >= 0, got {self.confirm_top}")
        require(self.confirm_seeds >= 0, f"--confirm-seeds must be >= 0, got {self.confirm_seeds}")
        require(not self.confirm_top or self.confirm_seeds, "--confirm-top needs --confirm-seeds >= 1")
        require(_is_int(self.master_seed) and 0 <= self.master_seed < 2**32,
                f"--seed must be in [0, 2^32), got {self.master_seed}")
        require(self.max_retries >= 0, f"--max-retries must be >= 0, got {self.max_retries}")
        check_sampler_options(self.sampler, self.acquisition, self.initial_trials)

    def validate(self) -> Space:
        """Check every setting, before anything is written; the search space."""
        objective_name(self.objective)
        self.check_numbers()
        make_scheduler(self.scheduler, self.min_resource, self.max_resource, self.eta, self.mode)
        require(self.report_to in REPORT_TO,
                f"--report-to must be one of {', '.join(REPORT_TO)}, got {self.report_to!r}")
        space = Space.from_dict(self.space, source="--space") if self.space is not None else default_space(self.task)
        clash = sorted(set(space) & set(self.fixed))
        if clash:
            raise AlbertError(f"hyperparameter(s) {', '.join(clash)} are both searched and fixed")
        shape = [n for n in space if n in ARCHITECTURE]
        if shape and self.fixed.get("model") is not None:
            raise AlbertError(f"--space: {', '.join(shape)}: a --model checkpoint has its own architecture; "
                              "search the architecture of a --preset (random initialisation) instead")
        if "max_steps" in space and self.scheduler != "random":
            raise AlbertError(f"--space: max_steps is the resource --scheduler {self.scheduler} allocates; "
                              "search it only with --scheduler random")
        self.make_sampler(space).random_config(0)  # a space with no valid configuration (or a bad source): say so now
        return space

    def load_warm_start(self, space: Space):
        """The --warm-start sources (warmstart.WarmStart), checked; None without any."""
        if not self.warm_start:
            return None
        rungs = make_scheduler(self.scheduler, self.min_resource, self.max_resource, self.eta, self.mode).rungs
        return load(self.warm_start, space=space, task=self.task, objective=objective_name(self.objective),
                    fixed=self.fixed, mode=self.mode, rungs=rungs)

    def metric(self) -> str:
        """The name of the metric trials are ranked by (`f1`, `accuracy`), "metric" when unknown."""
        if self.metric_name:
            return self.metric_name
        try:
            return get_task(self.task).main_metric
        except AlbertError:
            return "metric"

    def make_sampler(self, space: Space, warm: Any = None) -> Sampler:
        """The sampler, with `warm` (a loaded WarmStart) or else the --warm-start sources loaded now."""
        fixed = self.fixed
        sampler = make_sampler(self.sampler, space, self.master_seed, acquisition=self.acquisition,
                               initial_trials=self.initial_trials,
                               feasible=lambda config: architecture_problem({**fixed, **config}))
        sampler.warm = warm if warm is not None else self.load_warm_start(space)
        return sampler

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the objective by its name."""
        return {**dataclasses.asdict(self), "objective": objective_name(self.objective)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SweepSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in names}
        if isinstance(values.get("objective"), str):
            values["objective"] = load_objective(values["objective"])
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def trial_seed(master_seed: int, index: int, repeat: int = 0) -> int:
    """The training seed of configuration `index` (repeat > 0: the extra seeds of --confirm-seeds)."""
    return int(np.random.SeedSequence([master_seed, index, 0x5EED, repeat]).generate_state(1)[0] & 0x7FFFFFFF)


def identity_differences(stored: SweepSettings, settings: SweepSettings) -> list[str]:
    """"name was, not now" for every setting that defines the search and differs."""
    was, now = stored.to_dict(), settings.to_dict()
    return [f"{name} {was[name]!r}, not {now[name]!r}" for name in IDENTITY if was[name] != now[name]]


# The samplers by --sampler name: a new one is its own module and a line here.
SAMPLERS: dict[str, type[Sampler]] = {"random": RandomSampler, "gp": GPSampler}


def check_sampler_options(sampler: str, acquisition: str, initial_trials: int | None) -> None:
    """The option values alone, before any sweep state exists."""
    if sampler not in SAMPLERS:
        raise AlbertError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if acquisition not in ACQUISITIONS:
        raise AlbertError(f"--acquisition must be one of {', '.join(ACQUISITIONS)}, got {acquisition!r}")
    if initial_trials is not None and (isinstance(initial_trials, bool) or not isinstance(initial_trials, int)
                                       or initial_trials < 1):
        raise AlbertError(f"--initial-trials must be a positive integer, got {initial_trials!r}")


def make_sampler(name: str, space: Space, master_seed: int = 0, *, feasible: Feasibility | None = None,
                 **options: Any) -> Sampler:
    """The sampler `name` (a key of SAMPLERS) for `space`; `options` (e.g. acquisition,
    initial_trials) go to the samplers that take them."""
    if name not in SAMPLERS:
        raise AlbertError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")
    cls = SAMPLERS[name]
    return cls(space, master_seed, feasible, **{k: v for k, v in options.items() if k in cls.options})
