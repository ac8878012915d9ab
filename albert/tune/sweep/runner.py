"""Worker processes that run trials, and the objective interface they call.

An objective is a module-level function (workers are spawned and import it by its name,
"module:function") called in a worker as

    fn(config, trial_dir, from_resource, to_resource, max_resource, seed, report) -> float

It continues from the checkpoint in `trial_dir` when from_resource > 0, trains up to
to_resource with the LR schedule of max_resource, calls `report(resource, metric)` at its
evaluations (False back means: stop now; `report(resource, metric, loss=...)` adds the validation
loss, which the GP sampler models where the metric ties), saves its checkpoint in trial_dir and
returns the metric at the resource it reached.

Workers live across trials so the objective's module (torch, tokenizers, data) is imported once
per worker. They are started with the "spawn" context, each with its own CUDA_VISIBLE_DEVICES
(set in the environment the child is created with, before anything can import torch) or its
own share of the CPU threads. A worker dies with the sweep process (PR_SET_PDEATHSIG), ignores
Ctrl-C (the sweep decides how to stop), and is replaced when it exits or holds on to GPU memory.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import threading
import traceback
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

from tqdm import tqdm

from ...errors import AlbertError, TrainingDiverged

Objective = Callable[..., float]


def objective_name(fn: Objective) -> str:
    """"module:function": the name workers import `fn` by, and the one sweep.db records."""
    name = f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', '')}"
    try:
        found = load_objective(name)
    except (ImportError, AlbertError):
        found = None
    if found is not fn:
        raise AlbertError(f"the objective {name} must be a function defined at the top of an importable "
                          "module: the trials' worker processes import it by that name")
    return name


# Where objectives recorded by earlier versions (sweep.db, ray-settings.json) live now.
MOVED = {"albert.tune.objective": "albert.tune.sweep.objective", "albert.tune.synthetic": "albert.tune.sweep.synthetic"}


def canonical_objective(name: str) -> str:
    """A recorded objective name as this version names it (an older sweep's record compares equal)."""
    module_name, sep, attr = name.partition(":")
    return MOVED.get(module_name, module_name) + sep + attr


def load_objective(name: str) -> Objective:
    """The function "module:function" names."""
    module_name, _, attr = canonical_objective(name).partition(":")
    if not module_name or not attr:
        raise AlbertError(f"an objective is named 'module:function', got {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise AlbertError(f"the objective {name}: no module named {e.name!r}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise AlbertError(f"the objective {name}: module {module_name} has no function {attr!r}")
    return fn


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    env: dict[str, str]
    threads: int | None  # torch intra-op threads
    memory_fraction: float | None = None  # of its GPU's memory, when several trials share the GPU


def plan_workers(device: str = "cpu", workers: int = 1, trials_per_gpu: int = 1,
                 gpus: list[str] | None = None) -> list[WorkerSpec]:
    """One spec per worker: `trials_per_gpu` workers pinned to each GPU, or `workers` CPU workers."""
    if device not in ("cpu", "cuda", "auto"):
        raise AlbertError(f"--device must be cpu, cuda or auto, got {device!r}")
    if device != "cpu" and gpus is None:
        gpus = _visible_gpus()
    if device == "cuda" and not gpus:
        raise AlbertError("--device cuda: no GPU is visible")
    if device != "cpu" and gpus:
        if trials_per_gpu < 1:
            raise AlbertError(f"--trials-per-gpu must be >= 1, got {trials_per_gpu}")
        # The host's cores are shared by every trial on every GPU (data loading, the Python loop):
        # without a cap each would start os.cpu_count() OpenMP threads.
        threads = thread_cap(len(gpus) * trials_per_gpu)
        fraction = gpu_memory_fraction(trials_per_gpu)
        return [WorkerSpec(f"gpu{g}.{i}", {"CUDA_VISIBLE_DEVICES": str(g), **_thread_env(threads)}, threads, fraction)
                for g in gpus for i in range(trials_per_gpu)]
    if workers < 1:
        raise AlbertError(f"--workers must be >= 1, got {workers}")
    # Split the cores so N workers do not each start os.cpu_count() threads and thrash.
    threads = thread_cap(workers)
    env = {"CUDA_VISIBLE_DEVICES": "", **_thread_env(threads)}
    return [WorkerSpec(f"cpu{i}", env, threads) for i in range(workers)]


def thread_cap(concurrent: int, cpus: int | None = None) -> int:
    """Threads per worker when `concurrent` trials share the host's `cpus` cores (default: all)."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, concurrent))


def gpu_memory_fraction(trials_per_gpu: int) -> float | None:
    """Each worker's share of its GPU's memory: 1/k with k trials per GPU; None (no cap) for one."""
    return None if trials_per_gpu <= 1 else 1.0 / trials_per_gpu


def _thread_env(threads: int) -> dict[str, str]:
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def _visible_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


@dataclass(frozen=True)
class Assignment:
    """One job for a worker: which trial, from which resource to which, where."""

    trial_id: int
    config: dict[str, Any]
    trial_dir: str
    from_resource: int
    to_resource: int
    max_resource: int
    seed: int


# Events the pool hands back to the sweep loop.
@dataclass
class Report:
    worker: "Worker"
    trial_id: int
    resource: int
    metric: float
    loss: float | None = None  # the validation loss, when the objective reported one


@dataclass
class Done:
    worker: "Worker"
    trial_id: int
    metric: float
    gpu_bytes: int


@dataclass
class Error:
    worker: "Worker"
    trial_id: int
    text: str
    diverged: bool = False  # the objective raised TrainingDiverged: `text` is its one-line message


@dataclass
class Died:
    worker: "Worker"
    assignment: Assignment | None
    exitcode: int | None
    started: bool  # False: it died before importing the objective, so its assignment never ran


Event = Report | Done | Error | Died


# --- the worker process ----------------------------------------------------------------------

def _die_with_parent(parent_pid: int) -> None:
    # A kill -9 of the sweep must not leave orphans finishing trials nobody will record.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _gpu_bytes_held() -> int:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return 0
    gc.collect()
    torch.cuda.empty_cache()
    return int(torch.cuda.memory_allocated())


def _thread_lock_for_tqdm() -> None:
    """tqdm's default lock is a multiprocessing semaphore, made by the first bar (even a disabled
    one). A worker killed when a sweep is aborted (a second Ctrl-C) leaves it behind, and Python's
    resource tracker warns about "leaked semaphore objects" as the command exits. A worker draws
    no bar that another process shares, so a thread lock serves."""
    tqdm.set_lock(threading.RLock())


def _worker_main(conn, objective: str, threads: int | None, parent_pid: int, lock: Any = None,
                 memory_fraction: float | None = None) -> None:
    # `lock`: the sweep directory's DirectoryLock, handed over (unpickling it adopted the
    # descriptor); kept referenced for the worker's life, so the worker works under it.
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _thread_lock_for_tqdm()
    try:
        fn = load_objective(objective)
    except BaseException:
        conn.send(("fatal", traceback.format_exc(limit=8)))
        return
    torch = sys.modules.get("torch")
    if memory_fraction is not None and torch is None:
        import torch  # the objective may import it lazily; the cap must be set before it runs
    if torch is not None and threads:
        torch.set_num_threads(threads)  # imported later, torch reads OMP_NUM_THREADS from the spec's env
    if memory_fraction is not None and torch.cuda.is_available():
        # k trials on one GPU: each gets 1/k of its memory, so one cannot starve the others.
        torch.cuda.set_per_process_memory_fraction(memory_fraction)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        job = Assignment(**msg[1])

        def report(resource: int, metric: float, loss: float | None = None, _tid: int = job.trial_id) -> bool:
            conn.send(("report", _tid, int(resource), float(metric), None if loss is None else float(loss)))
            return bool(conn.recv())

        try:
            metric = float(fn(config=job.config, trial_dir=job.trial_dir, from_resource=job.from_resource,
                              to_resource=job.to_resource, max_resource=job.max_resource, seed=job.seed,
                              report=report))
        except TrainingDiverged as e:  # a result about the configuration (too high an lr), not a bug
            conn.send(("error", job.trial_id, str(e), True))
            continue
        except Exception:
            conn.send(("error", job.trial_id, traceback.format_exc(limit=20), False))
            continue
        conn.send(("done", job.trial_id, metric, _gpu_bytes_held()))


# --- the pool, in the sweep process ----------------------------------------------------------

class Worker:
    def __init__(self, spec: WorkerSpec, process: mp.process.BaseProcess, conn) -> None:
        self.spec, self.process, self.conn = spec, process, conn
        self.assignment: Assignment | None = None
        self.retiring = False
        self.ready = False  # imported the objective

    @property
    def name(self) -> str:
        return f"{self.spec.name}:{self.process.pid}"

    @property
    def busy(self) -> bool:
        return self.assignment is not None


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    # A spawned child starts with the parent's environment as it is at start(): set it only then.
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class WorkerPool:
    """Long-lived worker processes; `submit` an assignment to a free one, `wait` for what they say."""

    # Workers dying this many times in a row before they import the objective stop the sweep.
    MAX_START_FAILURES = 3

    def __init__(self, objective: Objective, specs: list[WorkerSpec], recycle_gpu_bytes: int = 512 * 2**20,
                 lock: Any = None) -> None:
        """`lock`: the sweep directory's DirectoryLock (albert/dirlock.py), handed to every worker."""
        self.objective = objective_name(objective)
        self.lock = lock
        self.recycle_gpu_bytes = recycle_gpu_bytes
        self.start_failures = 0
        self.ctx = mp.get_context("spawn")
        self.workers: list[Worker] = [self._start(spec) for spec in specs]

    def _start(self, spec: WorkerSpec) -> Worker:
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(target=_worker_main, args=(child_conn, self.objective, spec.threads, os.getpid(),
                                                           self.lock, spec.memory_fraction),
                                # Not daemonic: an objective may start DataLoader workers of its own.
                                name=f"albert-tune-{spec.name}", daemon=False)
        with _environ(spec.env):
            proc.start()
        child_conn.close()  # so a dead worker reads as EOF here
        return Worker(spec, proc, parent_conn)

    def free(self) -> list[Worker]:
        return [w for w in self.workers if not w.busy and not w.retiring]

    def busy(self) -> list[Worker]:
        return [w for w in self.workers if w.busy]

    def replacing(self) -> bool:
        """A worker is being recycled: its replacement starts when it has exited."""
        return any(w.retiring for w in self.workers)

    def submit(self, worker: Worker, assignment: Assignment) -> None:
        assert not worker.busy
        worker.assignment = assignment
        worker.conn.send(("run", asdict(assignment)))

    def reply(self, worker: Worker, keep_going: bool) -> None:
        with contextlib.suppress(OSError):  # the worker may be gone; its death is reported separately
            worker.conn.send(keep_going)

    def wait(self, timeout: float | None) -> list[Event]:
        """Block until a worker says something or exits (or `timeout`); return what happened."""
        handles = {}
        for w in self.workers:
            handles[w.conn] = w
            handles[w.process.sentinel] = w
        events: list[Event] = []
        for ready in mp.connection.wait(list(handles), timeout):
            w = handles[ready]
            if w not in self.workers:
                continue
            if ready is w.conn:
                events.extend(self._drain(w))
            if not w.process.is_alive() and w in self.workers:
                events.extend(self._drain(w))
                events.append(self._bury(w))
        return events

    def _drain(self, w: Worker) -> list[Event]:
        events: list[Event] = []
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                events.extend(self._message(w, msg))
        except (EOFError, OSError):
            pass
        return events

    def _message(self, w: Worker, msg: tuple) -> list[Event]:
        kind = msg[0]
        if kind == "ready":
            w.ready = True
            self.start_failures = 0
            return []
        if kind == "report":
            return [Report(w, msg[1], msg[2], msg[3], msg[4])]
        if kind == "fatal":
            self.close(kill=True)
            raise AlbertError(f"the objective {self.objective} failed to import in a worker:\n{msg[1]}")
        w.assignment = None
        if kind == "done":
            if msg[3] > self.recycle_gpu_bytes:
                # The objective left tensors alive (a leak, or a cache): start afresh before the next trial.
                self._retire(w)
            return [Done(w, msg[1], msg[2], msg[3])]
        if kind == "error":
            return [Error(w, msg[1], msg[2], bool(msg[3]) if len(msg) > 3 else False)]
        raise RuntimeError(f"unknown message from worker {w.name}: {msg!r}")

    def _retire(self, w: Worker) -> None:
        w.retiring = True
        with contextlib.suppress(OSError):
            w.conn.send(("stop",))

    def _bury(self, w: Worker) -> Died:
        w.process.join(timeout=5)
        self.workers.remove(w)
        with contextlib.suppress(OSError):
            w.conn.close()
        if not w.ready:
            self.start_failures += 1
            if self.start_failures >= self.MAX_START_FAILURES:
                self.close(kill=True)
                raise AlbertError(
                    f"workers keep dying before they start (exit code {w.process.exitcode}); a script that "
                    "calls run_sweep must do so under `if __name__ == '__main__':` (workers are spawned and "
                    "re-import the main module)")
        event = Died(w, w.assignment, w.process.exitcode, w.ready)
        self.workers.append(self._start(w.spec))
        return event

    def close(self, kill: bool = False) -> None:
        """Stop every worker: politely between trials, or at once (`kill`) in the middle of them."""
        for w in self.workers:
            if kill:
                w.process.kill()
            else:
                with contextlib.suppress(OSError):
                    w.conn.send(("stop",))
        for w in self.workers:
            w.process.join(timeout=30 if not kill else 5)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            with contextlib.suppress(OSError):
                w.conn.close()
        self.workers = []
