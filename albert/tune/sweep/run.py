"""The sweep: hand jobs from a scheduler to worker processes, record everything, write the report.

    summary = run_sweep(SweepSettings(sweep_dir="runs/rte-sweep", task="rte", objective=pkg.mod.fn,
                                      budget=40, workers=2))
    summary = run_sweep(resume_dir="runs/rte-sweep")        # after a crash or Ctrl-C

The main loop gives every free worker a job (the scheduler's promotion first, else a new trial
while fewer than `budget` configurations have been tried), answers the workers' intermediate
reports with the scheduler's stop decisions, and writes each event to `sweep.db` before acting
on it. A resume replays the recorded results into a fresh scheduler and re-issues the jobs that
were running, from their last checkpoints.

First Ctrl-C: start no new job and let running ones finish (resumable); second: kill the workers
(their jobs are re-run from their checkpoints on resume).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from ...atomic import write_json
from ...dirlock import LOCK_FILE, DirectoryLock, lock_directory
from ...errors import AlbertError
from ...progress import duration
from .. import report as reporting
from ..asha import Job, Scheduler, make_scheduler
from ..search.space import Space
from . import proposals
from .estimate import StepRate, TrialProgress, expected_steps_left, seconds_left
from .runner import Assignment, Died, Done, Error, Report, WorkerPool, plan_workers
from .settings import IDENTITY, SweepSettings, identity_differences, trial_seed  # noqa: F401 (re-exported)
from .storage import TERMINAL, Storage, TrialRecord, finished_a_job
from .warmstart import check_unchanged

FAIL_FAST = 3  # failed trials with no result yet, after which the sweep stops
PROGRESS_EVERY_S = 10.0  # off a terminal: a status line at least this often
DIVERGED = "diverged: "  # how a diverged trial's error starts (a result about its hyperparameters, not a bug)

class Progress:
    """The sweep's status: on a terminal one live line (carriage return); otherwise (a log file, a
    pipe) a line each time a trial finishes and at least every `every` seconds. Written to `stream`
    (default: sys.stderr as it is at each line)."""

    def __init__(self, enabled: bool, every: float = PROGRESS_EVERY_S, terminal: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.stream = stream
        self.terminal = self._out().isatty() if terminal is None else terminal
        self.enabled = enabled
        self.every = every
        self.last = 0.0
        self.last_key: Any = None

    def update(self, line: Callable[[], str], force: bool = False, key: Any = None) -> None:
        """`key`: what counts as news (e.g. the number of finished trials); a change prints at once."""
        if not self.enabled:
            return
        now = time.monotonic()
        if self.terminal:
            if force or now - self.last > 0.2:
                self.last = now
                self._out().write("\r" + line()[:150].ljust(80))
                self._out().flush()
            return
        if force or key != self.last_key or now - self.last >= self.every:
            self.last, self.last_key = now, key
            print(line(), file=self._out(), flush=True)

    def close(self) -> None:
        if self.enabled and self.terminal:
            self._out().write("\n")

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr


class _Interrupt:
    """SIGINT: the first asks for a graceful stop, the second aborts."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = None

    def __enter__(self) -> "_Interrupt":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: finishing the running jobs (Ctrl-C again to abort; --resume continues)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class Sweep:
    """One sweep's state while it runs: storage, scheduler, workers and the jobs in flight."""

    def __init__(self, settings: SweepSettings, space: Space, storage: Storage, warm: Any = None) -> None:
        self.settings, self.space, self.storage = settings, space, storage
        self.dir = Path(settings.sweep_dir)
        self.scheduler: Scheduler = make_scheduler(settings.scheduler, settings.min_resource, settings.max_resource,
                                                   settings.eta, settings.mode)
        self.sampler = settings.make_sampler(space, warm)
        self.pending: collections.deque[tuple[int, Job]] = collections.deque()
        self.running: dict[int, Job] = {}
        self.stopped: set[int] = set()  # trials the scheduler stopped during their current job
        self.reached: dict[int, int] = {}  # resource of the last report in the current job
        self.trials: dict[int, TrialRecord] = {t.id: t for t in storage.trials()}
        self.stop_reason: str | None = None
        self.started = time.monotonic()
        self.jobs_done = 0  # jobs ended (a result, an error, a dead worker): news for the progress lines
        self.rate = StepRate()  # steps trained per second in this session, for the ETA

    # --- rebuilding after a crash -------------------------------------------------------------

    def replay(self) -> None:
        """Feed the recorded results to the fresh scheduler in arrival order; re-issue interrupted jobs."""
        search = {t.id for t in self.trials.values() if t.kind == "search"}
        for r in self.storage.results():
            if r.trial_id not in search or r.source == "error":  # failures: fail() below
                continue
            if r.source == "report":
                self.scheduler.should_stop(r.trial_id, r.resource, r.metric)
            else:
                self.scheduler.report(r.trial_id, r.resource, r.metric)
        for t in self.trials.values():
            if t.state == "failed":
                self.scheduler.fail(t.id)
            elif t.state in ("queued", "running"):
                job = Job("new" if t.job_from == 0 else "promote", t.id, t.job_from, t.job_to)
                if t.kind == "search":
                    self.scheduler.claim(job)
                self.storage.update_trial(t.id, state="queued")
                self.pending.append((t.id, job))

    # --- choosing jobs ------------------------------------------------------------------------

    def next_job(self) -> tuple[int, Job] | None:
        if self.stop_reason is not None:
            return None
        if self.pending:
            return self.pending.popleft()
        allow_new = self.storage.count("search") < self.settings.budget
        job = self.scheduler.suggest(allow_new)
        if job is None and not allow_new and not self.running:
            job = self.scheduler.drain()
        if job is None:
            return None
        if job.kind == "new":
            job = job._replace(trial_id=self.new_trial(job))
        return job.trial_id, job

    def new_trial(self, job: Job) -> int:
        """Ask the sampler for the next configuration; record it with what the sampler saw."""
        index = self.storage.count("search")
        pending = sorted((tid, j.to_resource) for tid, j in [*self.running.items(), *self.pending]
                         if self.trials[tid].kind == "search")
        configs = {t.id: t.config for t in self.trials.values() if t.kind == "search"}
        hyper, record = proposals.propose(self.storage, self.sampler, index, self.scheduler.rungs, self.settings.mode,
                                          pending, configs)
        config = {**self.settings.fixed, **hyper}
        # A searched seed is the trial's training seed; otherwise each index gets its own.
        seed = int(hyper["seed"]) if "seed" in hyper else trial_seed(self.settings.master_seed, index)
        with self.storage.transaction():
            tid = self.storage.add_trial(config, seed, job.from_resource, job.to_resource, sample_index=index)
            self.storage.add_proposal(tid, record["sampler"], record["seen"], record["pending"], record["info"])
        self.trials[tid] = self.storage.trial(tid)
        return tid

    def trial_dir(self, trial_id: int) -> Path:
        return self.dir / "trials" / f"{trial_id:05d}"

    def dispatch(self, pool: WorkerPool) -> None:
        for worker in pool.free():
            nxt = self.next_job()
            if nxt is None:
                return
            tid, job = nxt
            trial = self.trials[tid]
            tdir = self.trial_dir(tid)
            self.storage.start_job(tid, job.from_resource, job.to_resource, worker.name, str(tdir))
            self.running[tid] = job
            self.stopped.discard(tid)
            self.reached[tid] = job.from_resource
            pool.submit(worker, Assignment(tid, trial.config, str(tdir), job.from_resource, job.to_resource,
                                           self.settings.max_resource, trial.seed))

    # --- what workers say ---------------------------------------------------------------------

    def on_report(self, pool: WorkerPool, ev: Report) -> None:
        with self.storage.transaction():
            self.storage.record(ev.trial_id, ev.resource, ev.metric, "report", ev.loss)
            self.storage.heartbeat(ev.trial_id)
        if self.trials[ev.trial_id].kind == "search":
            stop = self.scheduler.should_stop(ev.trial_id, ev.resource, ev.metric)
        else:  # a confirm run is never cut short, unless it diverges
            stop = not math.isfinite(ev.metric)
        self.reached[ev.trial_id] = max(self.reached.get(ev.trial_id, 0), ev.resource)
        if stop:
            self.stopped.add(ev.trial_id)
        pool.reply(ev.worker, not stop)

    def on_done(self, ev: Done) -> None:
        tid, metric = ev.trial_id, ev.metric
        job = self.running.pop(tid)
        trial = self.trials[tid]
        if not math.isfinite(metric) or tid in self.stopped:
            resource = self.reached.get(tid, job.from_resource)
            fields = {"state": "pruned", "resource": resource, "metric": metric}
            if not math.isfinite(metric):
                fields.update(state="failed", error=f"non-finite metric {metric} at resource {resource}")
        else:
            resource = job.to_resource
            done = resource >= self.settings.max_resource or trial.kind == "confirm"
            fields = {"state": "completed" if done else "paused", "resource": resource, "metric": metric}
        with self.storage.transaction():
            self.storage.record(tid, resource, metric, "result")
            self.storage.update_trial(tid, **fields)
        if trial.kind == "search":
            self.scheduler.report(tid, resource, metric)

    def on_error(self, ev: Error) -> None:
        job = self.running.pop(ev.trial_id)
        text = DIVERGED + ev.text if ev.diverged else ev.text
        with self.storage.transaction():
            self.storage.record(ev.trial_id, job.from_resource, math.nan, "error")
            self.storage.update_trial(ev.trial_id, state="failed", error=text, resource=job.from_resource)
        self.scheduler.fail(ev.trial_id)
        # A setting that breaks every trial (a bad path, a too-long sequence) should stop the sweep
        # with its message, not burn the whole budget on copies of one traceback. A diverged
        # trial says its learning rate was too high: the search goes on.
        scored = any(r.source != "error" for r in self.storage.results())
        broken = [t for t in self.storage.trials() if t.state == "failed" and not (t.error or "").startswith(DIVERGED)]
        if not scored and not ev.diverged and len(broken) >= FAIL_FAST:
            last = ev.text.strip().splitlines()[-1] if ev.text.strip() else "unknown error"
            raise AlbertError(f"the first {FAIL_FAST} trials all failed, the last with: {last} "
                              f"(full tracebacks in {self.dir / 'sweep.db'}; fix and --resume)")

    def on_died(self, ev: Died) -> None:
        if ev.assignment is None:  # a worker we retired (GPU memory), or one that died between jobs
            return
        tid = ev.assignment.trial_id
        job = self.running.pop(tid)
        trial = self.storage.trial(tid)
        reason = f"worker {ev.worker.name} exited with code {ev.exitcode}"
        if not ev.started:  # never ran: not the trial's fault
            self.storage.update_trial(tid, state="queued")
            self.pending.appendleft((tid, job))
        elif trial.retries < self.settings.max_retries:
            self.storage.update_trial(tid, state="queued", retries=trial.retries + 1, error=f"{reason}; re-queued")
            self.pending.appendleft((tid, job))
        else:
            with self.storage.transaction():
                self.storage.record(tid, job.from_resource, math.nan, "error")
                self.storage.update_trial(tid, state="failed", error=reason, resource=job.from_resource)
            self.scheduler.fail(tid)

    # --- the loop -----------------------------------------------------------------------------

    def drive(self, pool: WorkerPool, interrupt: _Interrupt, progress: Progress) -> None:
        """Run jobs until there is nothing left to start and nothing running."""
        budget_s = self.settings.time_budget
        while True:
            if interrupt.requested and self.stop_reason is None:
                self.stop_reason = "interrupt"
            if budget_s is not None and time.monotonic() - self.started > budget_s and self.stop_reason is None:
                self.stop_reason = "time"
            self.dispatch(pool)
            if not self.running and not pool.replacing():
                return
            timeout = 0.5
            if budget_s is not None and self.stop_reason is None:
                timeout = max(0.01, min(timeout, budget_s - (time.monotonic() - self.started)))
            for ev in pool.wait(timeout):
                self.jobs_done += not isinstance(ev, Report)
                if isinstance(ev, Report):
                    self.on_report(pool, ev)
                elif isinstance(ev, Done):
                    self.on_done(ev)
                elif isinstance(ev, Error):
                    self.on_error(ev)
                elif isinstance(ev, Died):
                    self.on_died(ev)
            progress.update(self.status_line, key=self.jobs_done)

    def status_line(self) -> str:
        """done/total, the states, the best so far with the metric's name, elapsed time and ETA."""
        search = self.storage.trials("search")
        counts = collections.Counter(t.state for t in search)
        # Trials that have finished a job, promoted ones training again included, so that the
        # count a user reads never falls when ASHA resumes a paused trial.
        finished = sum(finished_a_job(t) for t in search)
        best = self.best_trial()
        name = self.settings.metric()
        best_text = (f"best {name} {best.metric:.4g} (trial {best.id}, {best.resource} steps)" if best
                     else f"best {name} -")
        elapsed = time.monotonic() - self.started
        timing = duration(elapsed)
        eta = self.seconds_left(search) if self.stop_reason is None else None
        if eta is not None and finished < self.settings.budget:
            timing += f", ETA ~{duration(eta)}"
        return (f"[sweep] {finished}/{self.settings.budget} trials done ({len(self.running)} running, "
                f"{counts['paused']} paused, {counts['completed']} completed, {counts['pruned']} pruned, "
                f"{counts['failed']} failed) | {best_text} | {timing}")

    def seconds_left(self, search: list[TrialRecord]) -> float | None:
        """The search's ETA: the steps ASHA is expected to spend still, at the measured step rate."""
        progress = [TrialProgress(t.state, max(t.resource, self.reached.get(t.id, 0) if t.id in self.running else 0),
                                  t.job_to if t.state in ("queued", "running") and t.job_to else t.resource)
                    for t in search]
        self.rate.observe(sum(p.resource for p in progress))
        left = expected_steps_left(self.scheduler.rungs, self.settings.eta, self.settings.scheduler,
                                   self.settings.budget, progress)
        return seconds_left(left, self.rate)

    def best_trial(self, kind: str = "search") -> TrialRecord | None:
        trials = [t for t in self.storage.trials(kind) if t.metric is not None and t.state != "failed"]
        ranked = reporting.ranked(trials, self.settings.mode)
        return ranked[0] if ranked else None

    def finish_search(self) -> None:
        """Budget spent and nothing promotable: trials left waiting at a rung were pruned there."""
        for t in self.storage.trials("search"):
            if t.state == "paused":
                self.storage.update_trial(t.id, state="pruned")

    # --- --confirm-top K --confirm-seeds S ----------------------------------------------------

    def confirm_parents(self) -> list[TrialRecord]:
        """The K best configurations: those trained to max_resource first, then by the rung they reached."""
        scored = [t for t in self.storage.trials("search")
                  if t.state != "failed" and t.metric is not None and math.isfinite(t.metric)]
        return reporting.ranked(scored, self.settings.mode)[: self.settings.confirm_top]

    def queue_confirm(self) -> None:
        existing = {(t.parent, t.sample_index): t for t in self.storage.trials("confirm")}
        queued = {tid for tid, _ in self.pending} | set(self.running)
        for parent in self.confirm_parents():
            for k in range(1, self.settings.confirm_seeds + 1):
                t = existing.get((parent.id, k))
                if t is None:
                    seed = trial_seed(self.settings.master_seed, parent.sample_index, k)
                    tid = self.storage.add_trial(parent.config, seed, 0, self.settings.max_resource, kind="confirm",
                                                 sample_index=k, parent=parent.id)
                    self.trials[tid] = self.storage.trial(tid)
                elif t.state in TERMINAL or t.id in queued:
                    continue
                else:
                    tid = t.id
                self.pending.append((tid, Job("new", tid, 0, self.settings.max_resource)))

    def confirm_summary(self) -> list[dict[str, Any]]:
        children: dict[int, list[float]] = collections.defaultdict(list)
        for t in self.storage.trials("confirm"):
            if t.state == "completed" and t.metric is not None and math.isfinite(t.metric):
                children[t.parent].append(t.metric)
        rows = []
        for parent in self.confirm_parents():
            # Only runs at max_resource are comparable: the parent's own counts if it got there.
            own = [parent.metric] if parent.resource >= self.settings.max_resource else []
            values = [*own, *children[parent.id]]
            if not values:
                continue
            rows.append({"trial_id": parent.id, "metrics": values, "mean": float(np.mean(values)),
                         "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                         "hyperparameters": {n: parent.config.get(n) for n in self.space}})
        sign = -1.0 if self.settings.mode == "max" else 1.0
        return sorted(rows, key=lambda r: (sign * r["mean"], r["trial_id"]))

    # --- the report ---------------------------------------------------------------------------

    def write_report(self, finished: bool) -> dict[str, Any]:
        s = self.settings
        trials = self.storage.trials()
        names = list(self.space)
        rungs = self.scheduler.rungs
        metric = s.metric()
        reporting.write_trials_csv(self.dir / "trials.csv", reporting.trial_rows(trials, names, rungs, metric))
        compute = reporting.compute_used(trials, s.max_resource)
        confirm = self.confirm_summary() if s.confirm_top else []
        best = self.best_trial()
        if confirm:
            best = self.storage.trial(confirm[0]["trial_id"])
        elapsed = time.monotonic() - self.started
        sampler = proposals.sampler_summary(self.storage, s, type(self.sampler))
        sampler["loop_share"] = round(sampler["proposal_s"] / elapsed, 4) if elapsed > 0 else None
        summary: dict[str, Any] = {
            "sweep_dir": str(self.dir), "task": s.task, "metric": metric, "mode": s.mode,
            "scheduler": s.scheduler, "sampler": sampler,
            "finished": finished, "stop_reason": self.stop_reason, "elapsed_s": elapsed,
            "tried": self.storage.count("search"), "budget": s.budget,
            "states": dict(collections.Counter(t.state for t in trials if t.kind == "search")),
            "compute": compute, "rungs": rungs, "confirm": confirm, "best": None,
            # A model's pick among the tried configurations (the GP's: posterior mean at full resource).
            "model_best": type(self.sampler).recommendation(
                proposals.history_at(self.storage, self.space, rungs, s.mode, self.storage.last_seq(), []),
                self.space, rungs, s.mode, s.master_seed),
        }
        if best is not None:
            extra = {"confirm": confirm[0]} if confirm else {}
            reporting.copy_best(best, self.dir, extra)
            summary["best"] = {"trial_id": best.id, "metric": best.metric, "resource": best.resource,
                               "hyperparameters": {n: best.config.get(n) for n in names}, **extra}
        summary["plots"] = reporting.plot(self.dir, trials, self.storage.results(), self.space, rungs, s.mode, metric)
        if s.report_to == "tensorboard":
            summary["tensorboard"] = reporting.write_hparams(self.dir / "tensorboard", trials, list(self.space), metric)
        write_json(self.dir / "summary.json", summary)
        return summary


def check_settings(settings: SweepSettings) -> tuple[Space, list]:
    """Everything that can be refused, refused before the sweep directory is touched."""
    space = settings.validate()
    specs = plan_workers(settings.device, settings.workers, settings.trials_per_gpu, settings.gpus)
    return space, specs


def _open(settings: SweepSettings | None, resume_dir: str | Path | None,
          checked: tuple[Space, list] | None) -> tuple[SweepSettings, Space, list, Storage, bool, Any]:
    """The sweep's settings, space, worker specs, database, whether it resumes, and its loaded
    warm-start sources (a resume whose sources changed is refused)."""
    if resume_dir is None:
        space, specs = checked  # run_sweep checked a new sweep's settings before taking the lock
        warm = settings.load_warm_start(space)
        storage = Storage.create(settings.sweep_dir, {"settings": settings.to_dict(), "space": space.to_json(),
                                                      "warm_start": warm.record() if warm else []})
        return settings, space, specs, storage, False, warm
    storage = Storage.open(resume_dir)
    try:
        stored = SweepSettings.from_dict(storage.meta()["settings"])
        if settings is not None:
            differ = identity_differences(stored, settings)
            if differ:
                raise AlbertError(f"--resume {resume_dir}: this sweep was run with {'; '.join(differ)} "
                                  "(settings that define the search cannot change; start a new --output-dir)")
            settings = dataclasses.replace(settings, sweep_dir=str(resume_dir))
        else:
            settings = dataclasses.replace(stored, sweep_dir=str(resume_dir))
        space, specs = check_settings(settings)
        warm = settings.load_warm_start(space)
        check_unchanged(storage.meta().get("warm_start"), warm, str(resume_dir))
        storage.set_meta("settings", settings.to_dict())
    except BaseException:
        storage.close()
        raise
    return settings, space, specs, storage, True, warm


def run_sweep(settings: SweepSettings | None = None, resume_dir: str | Path | None = None) -> dict[str, Any]:
    """Run (or resume) a sweep to its budget; return the summary also written to summary.json.

    The sweep directory is locked (albert/dirlock.py) for the sweep's life, workers included: a
    second sweep or --resume on it is refused with one line naming this process."""
    checked = None
    if resume_dir is None:
        if settings is None:
            raise AlbertError("run_sweep needs settings or --resume DIR")
        checked = check_settings(settings)  # a refused start leaves nothing behind, not even the directory
    directory = resume_dir if resume_dir is not None else settings.sweep_dir
    with lock_sweep_dir(directory) as lock:
        return _run_locked(settings, resume_dir, lock, checked)


def lock_sweep_dir(directory: str | Path, wait_s: float = 10.0) -> DirectoryLock:
    """lock_directory, except that a lock whose holder has exited is waited for (up to `wait_s`):
    after a kill -9 of a sweep its workers hold the lock they were handed until the kernel has
    delivered their death signal (PR_SET_PDEATHSIG), a matter of milliseconds."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return lock_directory(directory)
        except AlbertError:
            if time.monotonic() > deadline or _holder_alive(Path(directory)):
                raise
            time.sleep(0.1)


def _holder_alive(directory: Path) -> bool:
    try:
        pid = int(json.loads((directory / LOCK_FILE).read_text())["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, KeyError, TypeError):
        return True  # unknown: refuse at once rather than wait on a guess
    return True


def _run_locked(settings: SweepSettings | None, resume_dir: str | Path | None, lock,
                checked: tuple[Space, list] | None) -> dict[str, Any]:
    settings, space, specs, storage, resuming, warm = _open(settings, resume_dir, checked)
    sweep = Sweep(settings, space, storage, warm)
    if resuming:
        sweep.replay()
    progress = Progress(settings.progress)
    pool = None
    try:
        pool = WorkerPool(settings.objective, specs, recycle_gpu_bytes=settings.recycle_gpu_mib * 2**20, lock=lock)
        try:
            with _Interrupt() as interrupt:
                sweep.drive(pool, interrupt, progress)
                search_done = sweep.stop_reason is None
                if search_done:
                    sweep.finish_search()
                    if settings.confirm_top:
                        sweep.queue_confirm()
                        sweep.drive(pool, interrupt, progress)
                progress.update(sweep.status_line, force=True)
                pool.close()
                pool = None
            finished = sweep.stop_reason is None
            progress.close()
            summary = sweep.write_report(finished)
        except KeyboardInterrupt:
            # Second Ctrl-C (wherever it lands): stop the workers now (their jobs re-run from
            # checkpoints on --resume), and still write what the sweep has before exiting 130.
            if pool is not None:
                pool.close(kill=True)
                pool = None
            sweep.stop_reason = "interrupt"
            progress.close()
            sweep.write_report(finished=False)
            raise
        board = reporting.leaderboard(storage.trials("search"), list(space), settings.mode, settings.metric())
        # The leaderboard is the sweep's result: printed whether or not the live line was shown.
        print(board)
        c = summary["compute"]
        print(f"compute used: {c['resource']} resource units = {c['full_trainings']:.2f} full trainings")
        line = reporting.sensitivity(summary["model_best"])
        if line:
            print(line)
        for row in summary["confirm"]:
            print(f"confirm trial {row['trial_id']}: {row['mean']:.4g} ± {row['std']:.2g} "
                  f"over {len(row['metrics'])} seeds")
        return summary
    finally:
        if pool is not None:
            pool.close(kill=True)
        storage.close()
