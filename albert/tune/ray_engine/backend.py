"""`--backend ray`: the same search space and objective, scheduled by Ray Tune's ASHA, so a sweep can use a cluster.

    summary = run_with_ray(SweepSettings(sweep_dir="runs/rte-ray", task="rte", objective=finetune, ...))

Ray's ASHAScheduler is the *stopping* variant of asynchronous successive halving (it is Ray's
AsyncHyperBandScheduler with one bracket, the same rule as our local `--scheduler hyperband`):
every trial trains continuously towards max_resource and Ray stops it at a rung if its metric is
below the (1 - 1/eta) quantile of what earlier trials reported at that rung. There is no
pause-and-promote as in the local `asha`. With `--sampler gp` the configurations come from our
GP sampler acting as Ray's searcher (ray_searcher.py), learning from every rung Ray reports.

A trial runs the objective once per rung: job 0 -> r1, then r1 -> r2, ... each resuming from the
trial's own checkpoint with the LR schedule of max_resource, exactly as a local promotion does.
So an objective that evaluates only at the end of a job (the fine-tuning objective) is evaluated
at every rung without any change to it, and after each rung the trial directory is reported to
Ray as a checkpoint: a trial whose actor dies, or an interrupted experiment re-run with the same
command, continues from its last rung instead of from step 0.

The sweep directory gets the local backend's report (trials.csv, summary.json, best/ with a
config.json that retrains into best/retrain, plots) plus ray/, Ray's experiment directory
(storage_path; one checkpoint, the latest, per trial) and ray.log, everything Ray printed
(ray_console.py: the console shows only our status lines). There is no sweep.db. Trial ids
follow creation order (the searcher's suggestion order with --sampler gp); Ctrl-C stops Ray's
experiment, marks the trials it stopped "interrupted" and `tune.py --resume` continues them.
"""
from __future__ import annotations

import collections
import dataclasses
import gc
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ... import optional
from ...atomic import write_json
from ...errors import AlbertError
from .. import report as reporting
from ..asha import make_rungs
from ..search.space import Choice, IntUniform, LogUniform, Space, Uniform
from ..sweep.run import IDENTITY, SweepSettings
from ..sweep.runner import canonical_objective, load_objective, objective_name
from ..sweep.storage import ResultRecord, TrialRecord
from .console import INTERRUPTED, RAY_LOG, RayConsole, status_callback
from .searcher import INDEX_KEY, LOSS, METRIC, RESOURCE, SEED_KEY, ray_searcher

MISSING_RAY = "--backend ray needs Ray Tune: pip install 'ray[tune]'"
MIN_RAY = (2, 7)  # storage_path and Checkpoint-based persistence

EXPERIMENT = "ray"                     # Ray's experiment directory inside the sweep directory
SETTINGS_FILE = "ray_sweep.json"       # the settings a re-run must match
PROGRESS_FILE = "albert_ray_progress.json"  # in each checkpoint: the rung it was taken at
# Fixed options that name files: Ray runs trials in their own working directory, so relative
# paths are made absolute (and must then exist on every node of a cluster).
PATH_OPTIONS = ("model", "tokenizer", "data_dir", "train_file", "dev_file")
# Environment the trials need on every node (Ray does not forward the driver's environment to a cluster).
FORWARDED_ENV = ("ALBERT_DATA", "ALBERT_CACHE")


# --- the search space ---------------------------------------------------------------------------

def ray_space_spec(space: Space) -> dict[str, dict[str, Any]]:
    """Each distribution as the ray.tune sampler that draws from it: {name: {"fn": ..., "args": [...]}}.

    Pure (no Ray needed). ray.tune.randint excludes its upper bound while our IntUniform includes
    it, hence high + 1."""
    spec: dict[str, dict[str, Any]] = {}
    for name, dist in space.items():
        if isinstance(dist, LogUniform):
            spec[name] = {"fn": "loguniform", "args": [dist.low, dist.high]}
        elif isinstance(dist, Uniform):
            spec[name] = {"fn": "uniform", "args": [dist.low, dist.high]}
        elif isinstance(dist, IntUniform):
            spec[name] = {"fn": "randint", "args": [dist.low, dist.high + 1]}
        elif isinstance(dist, Choice):
            spec[name] = {"fn": "choice", "args": [list(dist.options)]}
        else:  # a new Distribution type must be mapped here
            raise AlbertError(f"hyperparameter {name!r}: {type(dist).__name__} has no Ray Tune equivalent")
    return spec


def ray_param_space(space: Space, fixed: dict[str, Any], tune: Any) -> dict[str, Any]:
    """Ray's param_space: the fixed settings as constants, each searched name as a ray.tune domain,
    and the trial's training seed."""
    searched = {name: getattr(tune, s["fn"])(*s["args"]) for name, s in ray_space_spec(space).items()}
    return {**fixed, **searched, SEED_KEY: tune.randint(0, 2**31 - 1)}


def segments(min_resource: int, max_resource: int, eta: int) -> list[int]:
    """Where a trial's jobs end: Ray's ASHA milestones (min_resource * eta**k <= max_resource),
    then max_resource. Same list as the local schedulers' rungs."""
    return make_rungs(min_resource, max_resource, eta)


# --- the Ray API of the installed version ---------------------------------------------------------

def ray_api() -> SimpleNamespace:
    """The Ray Tune entry points we use, wherever the installed version keeps them (ray.tune since
    2.41; ray.train from 2.7 to 2.40)."""
    try:
        ray, tune = optional.load("ray"), optional.load("ray.tune")
    except ImportError:
        raise AlbertError(MISSING_RAY) from None
    version = tuple(int(p) for p in ray.__version__.split(".")[:2] if p.isdigit())
    if version < MIN_RAY:
        raise AlbertError(f"--backend ray needs Ray >= {'.'.join(map(str, MIN_RAY))}, found {ray.__version__}: "
                          "pip install -U 'ray[tune]'")
    try:
        train = optional.load("ray.train")
    except ImportError:
        train = None

    def pick(name: str) -> Any:
        found = getattr(tune, name, None) or getattr(train, name, None)
        if found is None:
            raise AlbertError(f"Ray {ray.__version__} has no ray.tune.{name} or ray.train.{name}; "
                              "pip install -U 'ray[tune]'")
        return found

    return SimpleNamespace(
        ray=ray, tune=tune, version=ray.__version__, report=pick("report"), get_checkpoint=pick("get_checkpoint"),
        Checkpoint=pick("Checkpoint"), RunConfig=pick("RunConfig"), CheckpointConfig=pick("CheckpointConfig"),
        FailureConfig=pick("FailureConfig"))


# --- the trainable (runs in Ray's worker processes) -------------------------------------------

@dataclass(frozen=True)
class TrialPlan:
    objective: str  # "module:function": the trial imports it in Ray's worker
    rungs: tuple[int, ...]
    max_resource: int
    threads: int | None  # torch threads of a CPU trial


def _plain(value: Any) -> Any:
    # Ray's samplers hand back numpy scalars; objectives and JSON want Python ones.
    return value.item() if isinstance(value, np.generic) else value


def _limit_threads(threads: int | None) -> None:
    if not threads:
        return
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def _restore(api: SimpleNamespace, work: Path) -> int:
    """Unpack the trial's last rung checkpoint into `work` (Ray's retry or experiment restore); its resource."""
    checkpoint = api.get_checkpoint()
    if checkpoint is None:
        return 0
    checkpoint.to_directory(str(work))
    return int(json.loads((work / PROGRESS_FILE).read_text())["resource"])


def albert_trial(config: dict[str, Any], plan: TrialPlan) -> None:
    """Ray function trainable: run the objective one rung at a time, report each rung with a checkpoint.

    Ray stops a trial inside `report` (the function trainable reports synchronously), so a pruned
    trial never starts its next job."""
    api = ray_api()
    _limit_threads(plan.threads)
    objective = load_objective(plan.objective)
    config = {k: _plain(v) for k, v in config.items()}
    seed = int(config.pop(SEED_KEY))
    config.pop(INDEX_KEY, None)
    # A temporary working copy: what lasts is the checkpoint Ray persists under the sweep's ray/.
    try:
        with tempfile.TemporaryDirectory(prefix="albert-ray-trial-") as tmp:
            _run_rungs(api, objective, config, seed, plan, Path(tmp))
    finally:  # also when Ray stops the trial (SystemExit inside report)
        _release_gpu_cache()


def _run_rungs(api: SimpleNamespace, objective: Any, config: dict[str, Any], seed: int, plan: TrialPlan,
               work: Path) -> None:
    start = _restore(api, work)
    for target in (r for r in plan.rungs if r > start):
        reached, end_loss = start, math.nan

        def report(resource: int, metric: float, loss: float | None = None, _end: int = target) -> bool:
            nonlocal reached, end_loss
            reached = max(reached, int(resource))
            loss = math.nan if loss is None else float(loss)
            if resource < _end:
                api.report({RESOURCE: int(resource), METRIC: float(metric), LOSS: loss, "rung": False})
            else:  # the job's end is reported below, with the checkpoint
                end_loss = loss
            return math.isfinite(metric)  # a diverged run stops (Ray's ASHA ignores NaN)

        metric = float(objective(config=config, trial_dir=str(work), from_resource=start, to_resource=target,
                                 max_resource=plan.max_resource, seed=seed, report=report))
        if not math.isfinite(metric):
            if not start < reached < target:  # else report() has sent it already
                api.report({RESOURCE: reached, METRIC: metric, "rung": reached == target})
            return  # no checkpoint: nothing worth resuming
        write_json(work / PROGRESS_FILE, {"resource": target, "metric": metric})
        api.report({RESOURCE: target, METRIC: metric, LOSS: end_loss, "rung": True},
                   checkpoint=api.Checkpoint.from_directory(str(work)))
        start = target


def _release_gpu_cache() -> None:
    # Actors are reused across trials: hand cached blocks back so trials sharing the GPU can have them.
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


# --- the driver -----------------------------------------------------------------------------

def _absolute_paths(fixed: dict[str, Any]) -> dict[str, Any]:
    out = dict(fixed)
    for key in PATH_OPTIONS:
        value = out.get(key)
        if isinstance(value, str) and Path(value).exists():
            out[key] = str(Path(value).resolve())
    return out


def _check_rerun(settings: SweepSettings, sweep_dir: Path) -> None:
    """A re-run continues Ray's experiment, so it must be the same sweep."""
    if (sweep_dir / "sweep.db").exists():
        raise AlbertError(f"{sweep_dir}: holds a local-backend sweep (sweep.db); choose a new directory for --backend ray")
    path = sweep_dir / SETTINGS_FILE
    if not path.exists():
        return
    stored, current = json.loads(path.read_text(encoding="utf-8")), settings.to_dict()
    for name in (*IDENTITY, "budget"):  # Ray restores num_samples with the experiment
        was, now = stored.get(name), current[name]
        if name == "objective" and isinstance(was, str):
            was = canonical_objective(was)
        if was != now:
            raise AlbertError(f"{sweep_dir}: this Ray sweep was run with {name} {was!r}, not {now!r} "
                              "(a re-run continues it; choose a new --output-dir to change settings)")


def _init_ray(api: SimpleNamespace, console: RayConsole) -> bool:
    """Connect to RAY_ADDRESS's cluster, or start a local Ray; True if we started it (and must shut it down)."""
    if api.ray.is_initialized():
        return False
    env = {k: str(Path(os.environ[k]).resolve()) if Path(os.environ[k]).exists() else os.environ[k]
           for k in FORWARDED_ENV if os.environ.get(k)}
    # The trials' output is relayed to the driver, where RayConsole sends it to ray.log.
    kwargs: dict[str, Any] = {"log_to_driver": True}
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    if not os.environ.get("RAY_ADDRESS"):
        # "local": a new instance of our own, never a cluster that `ray start` left running here.
        kwargs.update(address="local", include_dashboard=False)
    try:
        api.ray.init(**kwargs)
    except (ConnectionError, RuntimeError) as e:
        # The cause (e.g. InvalidAuthToken) is only in the warnings Ray's core wrote to the log.
        raise AlbertError(connect_error(os.environ.get("RAY_ADDRESS"), e, console.log_text())) from None
    return True


def connect_error(address: str | None, error: BaseException, log: str = "") -> str:
    """One line for a failed ray.init, naming the cluster's token authentication when that refused us."""
    if "InvalidAuthToken" in log or "InvalidAuthToken" in str(error):
        return (f"cannot connect to the Ray cluster at RAY_ADDRESS={address!r}: its token authentication refused "
                "this machine (InvalidAuthToken); set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the head "
                "node's token (`ray get-auth-token` there), as on every node")
    lines = str(error).strip().splitlines()
    return f"cannot connect to the Ray cluster at RAY_ADDRESS={address!r}: {lines[0] if lines else type(error).__name__}"


def trial_resources(settings: SweepSettings, cluster: dict[str, float], node_cpus: float) -> tuple[dict[str, float], int | None, int | None]:
    """(resources per trial, torch threads per trial, max concurrent trials) for the settings on this cluster.

    GPUs: 1/trials_per_gpu of a GPU and one CPU each; Ray packs as many as the cluster holds.
    CPUs: `workers` trials at a time, each with an equal share of the cluster's CPUs (at most a node's)."""
    device = settings.device
    if device == "auto":
        device = "cuda" if cluster.get("GPU", 0) > 0 else "cpu"
    if device == "cuda":
        if cluster.get("GPU", 0) <= 0:
            raise AlbertError("--device cuda: the Ray cluster has no GPU")
        if settings.trials_per_gpu < 1:
            raise AlbertError(f"--trials-per-gpu must be >= 1, got {settings.trials_per_gpu}")
        # Ray keeps 4 decimals of a fractional resource; round down so k trials never ask for > 1 GPU.
        gpu = 1.0 if settings.trials_per_gpu == 1 else math.floor(10_000 / settings.trials_per_gpu) / 10_000
        return {"cpu": 1, "gpu": gpu}, None, None
    if device != "cpu":
        raise AlbertError(f"--device must be cpu, cuda or auto, got {settings.device!r}")
    if settings.workers < 1:
        raise AlbertError(f"--workers must be >= 1, got {settings.workers}")
    threads = int(max(1, min(cluster.get("CPU", 1) // settings.workers, node_cpus or 1)))
    return {"cpu": threads}, threads, settings.workers


def _node_cpus(ray: Any) -> float:
    return max((n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=1)


def _scheduler(api: SimpleNamespace, settings: SweepSettings) -> Any:
    schedulers = optional.load("ray.tune.schedulers")
    if settings.scheduler == "random":
        return schedulers.FIFOScheduler()
    # Local "asha" promotes paused trials; Ray's ASHA stops running ones (local "hyperband").
    return schedulers.ASHAScheduler(time_attr=RESOURCE, grace_period=settings.min_resource, max_t=settings.max_resource,
                                    reduction_factor=settings.eta, brackets=1)


def _tuner(api: SimpleNamespace, settings: SweepSettings, space: Space, sweep_dir: Path, trainable: Any) -> Any:
    exp = sweep_dir / EXPERIMENT
    if api.tune.Tuner.can_restore(str(exp)):
        # An interrupted run of the same sweep: unfinished and errored trials go on from their last rung.
        return api.tune.Tuner.restore(str(exp), trainable=trainable.fn, resume_unfinished=True, resume_errored=True)
    fixed = _absolute_paths(settings.fixed)
    if settings.sampler == "random":
        # Seeded: the k-th configuration drawn is the same on every run with this --seed.
        variants = optional.load("ray.tune.search.basic_variant")
        search = variants.BasicVariantGenerator(max_concurrent=trainable.max_concurrent or 0,
                                                random_state=settings.master_seed)
        param_space = ray_param_space(space, fixed, api.tune)
    else:  # our model-based sampler, as Ray's searcher; Ray's param_space keeps only the fixed options
        searchers = optional.load("ray.tune.search")
        search = ray_searcher(dataclasses.replace(settings, fixed=fixed), space, searchers.Searcher)
        if trainable.max_concurrent:
            search = searchers.ConcurrencyLimiter(search, max_concurrent=trainable.max_concurrent)
        param_space = fixed
    tune_config = api.tune.TuneConfig(
        metric=METRIC, mode=settings.mode, scheduler=_scheduler(api, settings), num_samples=settings.budget,
        search_alg=search,
        time_budget_s=settings.time_budget, reuse_actors=True,
        trial_dirname_creator=_trial_dirname)
    run_config = api.RunConfig(
        # verbose 0: no progress tables; our status line comes from the callback (ray_console.py).
        name=EXPERIMENT, storage_path=str(sweep_dir.resolve()), verbose=0,
        callbacks=[status_callback(api.tune.Callback)],
        checkpoint_config=api.CheckpointConfig(num_to_keep=1),
        failure_config=api.FailureConfig(max_failures=settings.max_retries))
    return api.tune.Tuner(trainable.fn, param_space=param_space, tune_config=tune_config, run_config=run_config)


def run_with_ray(settings: SweepSettings) -> dict[str, Any]:
    """Run the sweep on Ray Tune (a local Ray, or the cluster RAY_ADDRESS names); write the local
    backend's report and return the summary also written to summary.json.

    Running it again on the same --output-dir continues an interrupted experiment (Tuner.restore)."""
    api = ray_api()
    space = settings.validate()
    if settings.confirm_top:
        raise AlbertError("--confirm-top/--confirm-seeds are not supported with --backend ray (use the local backend)")
    sweep_dir = Path(settings.sweep_dir)
    _check_rerun(settings, sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_json(sweep_dir / SETTINGS_FILE, settings.to_dict())

    # Every rung is a checkpoint, so Ray snapshots its experiment state often; that is intended.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    with RayConsole(sweep_dir / RAY_LOG, settings.progress) as console:
        console.watch(settings.budget, settings.max_resource, settings.metric(), settings.mode, _order)
        started_ray = _init_ray(api, console)
        started = time.monotonic()
        try:
            resources, threads, concurrent = trial_resources(settings, api.ray.cluster_resources(),
                                                             _node_cpus(api.ray))
            plan = TrialPlan(objective_name(settings.objective),
                             tuple(segments(settings.min_resource, settings.max_resource, settings.eta)),
                             settings.max_resource, threads)
            fn = api.tune.with_resources(api.tune.with_parameters(albert_trial, plan=plan), resources)
            tuner = _tuner(api, settings, space, sweep_dir, SimpleNamespace(fn=fn, max_concurrent=concurrent))
            grid = tuner.fit()
            elapsed = time.monotonic() - started
        finally:
            if started_ray:
                api.ray.shutdown()
        unfinished = console.unfinished if console.interrupted else set()
    return write_report(settings, space, sweep_dir, list(grid), elapsed, unfinished, console.interrupted)


def resume_with_ray(sweep_dir: str | Path) -> dict[str, Any]:
    """`--resume DIR` for a Ray sweep: continue it with the settings it was started with."""
    path = Path(sweep_dir) / SETTINGS_FILE
    if not path.is_file():
        raise AlbertError(f"{sweep_dir}: no {SETTINGS_FILE}; not a --backend ray sweep directory")
    stored = SweepSettings.from_dict(json.loads(path.read_text(encoding="utf-8")))
    return run_with_ray(dataclasses.replace(stored, sweep_dir=str(sweep_dir)))


# --- the report -------------------------------------------------------------------------------

def _ray_trial_id(result: Any) -> str:
    return Path(result.path).name


def _order(ray_id: str, config: dict[str, Any] | None) -> tuple[int, str]:
    """Creation order: our searcher's index in the configuration; else Ray's own trial ids,
    "<run prefix>_<5-digit counter>" (Ray's random search), whose counter is creation order."""
    if config and INDEX_KEY in config:
        return (int(config[INDEX_KEY]), ray_id)
    tail = ray_id.rsplit("_", 1)[-1]
    return (int(tail) if tail.isdigit() else sys.maxsize, ray_id)


def _local_checkpoint(result: Any, sweep_dir: Path) -> str | None:
    """A local directory holding the result's last checkpoint (downloaded if storage is remote)."""
    ckpt = result.checkpoint
    if ckpt is None:
        return None
    if Path(ckpt.path).is_dir():
        return ckpt.path
    return ckpt.to_directory(str(sweep_dir / ".best.download"))


def records(results: list[Any], settings: SweepSettings, unfinished: set[str] = frozenset()
            ) -> tuple[list[TrialRecord], list[ResultRecord], dict[int, Any]]:
    """Ray's results as the local backend's trial and result records (ids 1, 2, ... in creation
    order). `unfinished`: Ray trial ids stopped by Ctrl-C before their end (state "interrupted")."""
    trials, rows = [], []
    by_id: dict[int, Any] = {}
    for index, result in enumerate(sorted(results, key=lambda r: _order(_ray_trial_id(r), r.config))):
        tid = index + 1
        by_id[tid] = result
        config = dict(result.config or {})
        seed = int(config.pop(SEED_KEY, 0))
        config.pop(INDEX_KEY, None)
        history = result.metrics_dataframe
        reports = [] if history is None or RESOURCE not in history else history.to_dict("records")
        rung_metrics: dict[int, float] = {}
        resource, metric, created, updated = 0, None, time.time(), time.time()
        for rep in reports:
            r, m = int(rep[RESOURCE]), float(rep[METRIC])
            at_rung = bool(rep.get("rung", True))
            if at_rung:
                rung_metrics.setdefault(r, m)
            resource, metric = r, m
            stamp = float(rep.get("timestamp", created))
            created, updated = min(created, stamp), stamp
            rows.append((stamp, tid, r, m, "result" if at_rung else "report"))
        if result.error is not None:
            state = "failed"
        elif resource >= settings.max_resource:
            state = "completed"
        elif _ray_trial_id(result) in unfinished:
            state = INTERRUPTED
        else:
            state = "pruned"
        if metric is not None and not math.isfinite(metric):
            state = "failed"
        error = None
        if result.error is not None:
            error = str(result.error)
        elif state == "failed":
            error = f"non-finite metric {metric} at resource {resource}"
        trials.append(TrialRecord(
            id=tid, kind="search", sample_index=index, parent=None, config=config, seed=seed, state=state,
            job_from=None, job_to=None, resource=resource, metric=metric, checkpoint=None, heartbeat=None,
            worker=_ray_trial_id(result), error=error, retries=0, created=created, updated=updated,
            rung_metrics=rung_metrics))
    results_out = [ResultRecord(seq, tid, r, m, stamp, source)
                   for seq, (stamp, tid, r, m, source) in enumerate(sorted(rows, key=lambda row: row[0]), start=1)]
    return trials, results_out, by_id


def write_report(settings: SweepSettings, space: Space, sweep_dir: Path, results: list[Any],
                 elapsed: float, unfinished: set[str] = frozenset(), interrupted: bool = False) -> dict[str, Any]:
    trials, result_rows, by_id = records(results, settings, unfinished)
    names = list(space)
    rungs = segments(settings.min_resource, settings.max_resource, settings.eta)
    rows = reporting.trial_rows(trials, names, rungs, settings.metric())
    for row, t in zip(rows, trials):
        row["ray_trial"] = t.worker
    reporting.write_trials_csv(sweep_dir / "trials.csv", rows)
    if trials and all(t.state == "failed" for t in trials):
        last = (trials[-1].error or "unknown error").strip().splitlines()[-1]
        raise AlbertError(f"all {len(trials)} trials failed, the last with: {last} "
                          f"(Ray's logs and errors in {sweep_dir / EXPERIMENT})")
    ranked = reporting.ranked([t for t in trials if t.metric is not None and t.state != "failed"], settings.mode)
    best = ranked[0] if ranked else None
    out_of_time = settings.time_budget is not None and elapsed >= settings.time_budget
    summary: dict[str, Any] = {
        "sweep_dir": str(sweep_dir), "task": settings.task, "backend": "ray", "scheduler": settings.scheduler,
        # Ray's ASHA stops trials at rungs (like local "hyperband"); it never pauses and promotes.
        "ray_scheduler": "FIFOScheduler" if settings.scheduler == "random" else "AsyncHyperBandScheduler",
        "finished": not (out_of_time or interrupted), "elapsed_s": elapsed,
        "stop_reason": "interrupt" if interrupted else "time" if out_of_time else None,
        "tried": len(trials), "budget": settings.budget,
        "states": dict(collections.Counter(t.state for t in trials)),
        "compute": reporting.compute_used(trials, settings.max_resource), "rungs": rungs, "confirm": [],
        "best": None, "ray_experiment": str(sweep_dir / EXPERIMENT),
    }
    if best is not None:
        best = dataclasses.replace(best, checkpoint=_local_checkpoint(by_id[best.id], sweep_dir))
        reporting.copy_best(best, sweep_dir, {"ray_trial": best.worker})
        summary["best"] = {"trial_id": best.id, "metric": best.metric, "resource": best.resource,
                           "hyperparameters": {n: best.config.get(n) for n in names}, "ray_trial": best.worker}
    summary["plots"] = reporting.plot(sweep_dir, trials, result_rows, space, rungs, settings.mode, settings.metric())
    write_json(sweep_dir / "summary.json", summary)
    if settings.progress:
        print(reporting.leaderboard(trials, names, settings.mode, settings.metric()))
        c = summary["compute"]
        print(f"compute used: {c['resource']} resource units = {c['full_trainings']:.2f} full trainings")
    return summary
