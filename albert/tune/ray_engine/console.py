"""What a `--backend ray` sweep shows on the console, and how it stops on Ctrl-C.

    with RayConsole(sweep_dir / RAY_LOG, progress=True) as console:
        console.watch(budget, max_resource, metric_name, mode, order)
        ... ray.init(); Tuner(..., RunConfig(callbacks=[status_callback(Callback)])).fit() ...
    console.interrupted, console.unfinished   # after Ctrl-C: the Ray trial ids that had not ended

Our status lines (the local backend's `[sweep] ...` line) go to the console; everything Ray
itself says goes to `<sweep>/ray.log`: the driver's `ray` loggers, Python warnings raised while
the sweep runs, whatever is printed while Ray runs (its experiment banner, and the trial
processes' output its log thread relays: per-trial checkpoint lines, the trials' own output).
Ray's progress tables are switched off (RunConfig verbose 0).

Ctrl-C: Ray's own SIGINT handler would stop the experiment and advise `Tuner.restore(...)`, and
Tuner.fit() would return as if the sweep had ended. We take SIGINT instead (Ray reads
TUNE_DISABLE_SIGINT_HANDLER) and ask Ray for the same graceful stop through SIGUSR1, which Ray
handles alike; so the sweep knows it was interrupted, marks the trials still running as
"interrupted" and exits 130 with `tune.py --resume`. A second Ctrl-C aborts at once.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ...progress import duration
from ..sweep.run import Progress
from .searcher import METRIC, RESOURCE

RAY_LOG = "ray.log"
INTERRUPTED = "interrupted"   # the trials.csv state of a trial Ctrl-C stopped before its end
# Ray's loggers and the logger Python warnings go to while captured.
LOGGERS = ("ray", "py.warnings")


class RayConsole:
    """Context manager: Ray's output to `log_path`, our status lines and Ctrl-C handling (see the module)."""

    def __init__(self, log_path: Path, progress: bool) -> None:
        self.log_path, self.progress = Path(log_path), progress
        self.interrupted = False
        self.unfinished: set[str] = set()   # Ray trial ids not ended when the sweep stopped
        self._saved: dict[str, Any] = {}

    # --- redirection ----------------------------------------------------------------------------

    def __enter__(self) -> "RayConsole":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8", buffering=1)
        handler = logging.StreamHandler(self._log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._handler = handler
        self._saved["loggers"] = []
        for name in LOGGERS:
            logger = logging.getLogger(name)
            self._saved["loggers"].append((logger, list(logger.handlers), logger.propagate))
            logger.handlers = [handler]
            logger.propagate = False
        logging.captureWarnings(True)
        # Everything printed while Ray runs is Ray's (its banner, the trial output its log thread
        # relays, and its C++ core's warnings, written to file descriptor 2 directly, hence the
        # redirection of the descriptors); our own lines are written to the console's own streams,
        # never by swapping sys.stdout, which Ray's log thread prints to at the same time.
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self._console = tuple(os.fdopen(os.dup(fd), "w", buffering=1) for fd in (1, 2))
        for fd in (1, 2):
            os.dup2(self._log.fileno(), fd)
        self._saved["env"] = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        if threading.current_thread() is threading.main_thread():
            self._saved["sigint"] = signal.signal(signal.SIGINT, self._on_sigint)
        _current.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _current.remove(self)
        if "sigint" in self._saved:
            signal.signal(signal.SIGINT, self._saved["sigint"])
        if self._saved["env"] is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = self._saved["env"]
        for stream in (sys.stdout, sys.stderr, self._log):
            stream.flush()
        for fd, console in zip((1, 2), self._console):
            os.dup2(console.fileno(), fd)
            console.close()
        logging.captureWarnings(False)
        for logger, handlers, propagate in self._saved["loggers"]:
            logger.handlers, logger.propagate = handlers, propagate
        self._log.close()

    # --- Ctrl-C ---------------------------------------------------------------------------------

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        ray_stops = callable(signal.getsignal(signal.SIGUSR1))  # Ray's handler, installed while fit() runs
        print("\ninterrupt: stopping the trials at their last rung checkpoint "
              "(Ctrl-C again to abort; --resume continues)", file=self._console[1], flush=True)
        if not ray_stops:  # Ray's loop is not running (yet, or any more): nothing to stop gracefully
            raise KeyboardInterrupt
        signal.raise_signal(signal.SIGUSR1)

    # --- status lines ---------------------------------------------------------------------------

    def watch(self, budget: int, max_resource: int, metric_name: str, mode: str,
              order: Callable[[str, dict], tuple]) -> None:
        """What the status line needs; `order(trial_id, config)` ranks trials in creation order (our ids)."""
        self._line_args = (budget, max_resource, metric_name, mode, order)
        self._progress = Progress(self.progress, terminal=self._console[1].isatty(), stream=self._console[1])
        self._started = time.monotonic()

    def _line(self, trials: list) -> Callable[[], str]:
        return lambda: status_line(trials, *self._line_args, time.monotonic() - self._started)

    def log_text(self) -> str:
        """What Ray has written to the log so far (to name the cause of a failure)."""
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def step_end(self, trials: list) -> None:
        if self.interrupted:
            # Ray marks the trials it stops TERMINATED; they were running when Ctrl-C came.
            return
        self.unfinished = {t.trial_id for t in trials if t.status not in ("TERMINATED", "ERROR")}
        self._progress.update(self._line(trials), key=len(trials) - len(self.unfinished))

    def experiment_end(self, trials: list) -> None:
        if self.interrupted:  # Ray ends the experiment after an interrupt too; the report says the rest
            return
        self.unfinished = set()
        # The last line on a terminal; in a log it was printed when the last trial ended.
        self._progress.update(self._line(trials), force=self._progress.terminal, key=len(trials))
        self._progress.close()


_current: list[RayConsole] = []  # the console of the sweep this process runs (a stack: at most one)


def _step_end(trials: list) -> None:
    if _current:
        _current[-1].step_end(trials)


def _experiment_end(trials: list) -> None:
    if _current:
        _current[-1].experiment_end(trials)


def status_callback(base: type) -> Any:
    """A ray.tune.Callback (`base`) feeding the running RayConsole. It holds no state: Ray pickles
    the callbacks with the experiment, and a resumed sweep's copy must reach the new console."""

    class AlbertStatus(base):
        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            _step_end(trials)

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            _experiment_end(trials)

    return AlbertStatus()


def status_line(trials: list, budget: int, max_resource: int, metric_name: str, mode: str,
                order: Callable[[str, dict], tuple], elapsed: float) -> str:
    """The local backend's status line from Ray's Trial objects: done/budget, the states, the best
    so far (by our trial id) and the time elapsed."""
    ids = {t.trial_id: k + 1 for k, t in enumerate(sorted(trials, key=lambda t: order(t.trial_id, t.config)))}
    counts = {"running": 0, "completed": 0, "pruned": 0, "failed": 0}
    best = None
    for t in trials:
        last = t.last_result or {}
        resource, metric = last.get(RESOURCE), last.get(METRIC)
        finite = metric is not None and metric == metric and abs(metric) != float("inf")
        if t.status == "RUNNING":
            counts["running"] += 1
        elif t.status == "ERROR" or (t.status == "TERMINATED" and metric is not None and not finite):
            counts["failed"] += 1
        elif t.status == "TERMINATED":
            counts["completed" if (resource or 0) >= max_resource else "pruned"] += 1
        if finite and t.status != "ERROR" and (best is None or (metric > best[0] if mode == "max" else metric < best[0])):
            best = (metric, ids[t.trial_id], resource)
    done = counts["completed"] + counts["pruned"] + counts["failed"]
    best_text = f"best {metric_name} {best[0]:.4g} (trial {best[1]}, {best[2]} steps)" if best else f"best {metric_name} -"
    return (f"[sweep] {done}/{budget} trials done ({counts['running']} running, {counts['completed']} completed, "
            f"{counts['pruned']} pruned, {counts['failed']} failed) | {best_text} | {duration(elapsed)}")
