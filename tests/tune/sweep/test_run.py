"""The sweep end to end with the synthetic objective: search quality, reproducibility, failures,
kill -9 and resume, the report, and user errors."""
import contextlib
import dataclasses
import csv
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from albert.errors import AlbertError
from albert.tune.search.space import default_space
from albert.tune.sweep.storage import Storage
from albert.tune.sweep.run import SweepSettings, run_sweep
from albert.tune.sweep import synthetic
from albert.tune.sweep.synthetic import CHECKPOINT, final_metric

REPO = Path(__file__).resolve().parents[3]


def make(tmp_path, name="sweep", **kw):
    fixed = {"synthetic_sleep_ms": 0, **kw.pop("fixed", {})}
    base = dict(sweep_dir=str(tmp_path / name), task="rte", objective=synthetic.curve, budget=9, max_resource=9, eta=3,
                progress=False,
                fixed=fixed)
    base.update(kw)
    return SweepSettings(**base)


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_asha_finds_nearly_the_best_with_a_third_of_the_resource(tmp_path):
    fixed = {"synthetic_eval_every": 1000}  # one report per job: this test counts resource, not reports
    asha = run_sweep(make(tmp_path, "asha", scheduler="asha", budget=81, max_resource=27, fixed=fixed))
    rand = run_sweep(make(tmp_path, "random", scheduler="random", budget=81, max_resource=27, fixed=fixed))
    assert asha["tried"] == rand["tried"] == 81
    assert rand["compute"]["resource"] == 81 * 27
    assert asha["compute"]["resource"] <= rand["compute"]["resource"] / 3
    # Same 81 configurations (same master seed): ASHA's best is within 0.01 of the best of all of them.
    assert rand["best"]["resource"] == asha["best"]["resource"] == 27
    assert asha["best"]["metric"] >= rand["best"]["metric"] - 0.01
    best_possible = max(final_metric(default_space("rte").sample(0, i)) for i in range(81)) - 0.3 * 27 ** -0.7
    assert rand["best"]["metric"] == pytest.approx(best_possible, abs=0.1)
    # A finished ASHA sweep stops only when nothing is promotable: the final top third of every rung
    # went up. (More may have: a trial promoted early can drop out of the top later.)
    store = Storage.open(asha["sweep_dir"])
    trials = store.trials()
    rungs = asha["rungs"]
    for k in range(len(rungs) - 1):
        ranked = sorted((t for t in trials if rungs[k] in t.rung_metrics), key=lambda t: -t.rung_metrics[rungs[k]])
        went_up = {t.id for t in trials if rungs[k + 1] in t.rung_metrics}
        assert {t.id for t in ranked[: len(ranked) // 3]} <= went_up
    assert len([t for t in trials if t.state == "completed"]) >= 81 // 27
    store.close()


def test_reproducible_with_one_worker_and_a_seed(tmp_path):
    fixed = {"synthetic_noise": 0.01}
    a = run_sweep(make(tmp_path, "a", budget=12, master_seed=3, fixed=fixed))
    b = run_sweep(make(tmp_path, "b", budget=12, master_seed=3, fixed=fixed))
    c = run_sweep(make(tmp_path, "c", budget=12, master_seed=4, fixed=fixed))
    text = {k: (tmp_path / k / "trials.csv").read_text() for k in "abc"}
    assert text["a"] == text["b"]
    assert text["a"] != text["c"]
    assert a["best"] == b["best"] and a["compute"] == b["compute"]
    rows = list(csv.DictReader(text["a"].splitlines()))
    assert len(rows) == 12 and set(rows[0]) >= {"id", "state", "lr", "batch_size", "accuracy@1", "accuracy@9",
                                                "accuracy", "resource"}
    assert (tmp_path / "a" / "best" / "config.json").is_file()
    assert json.loads((tmp_path / "a" / "best" / "best.json").read_text())["trial_id"] == a["best"]["trial_id"]


def test_nan_trials_are_stopped_at_once(tmp_path):
    log = tmp_path / "log.jsonl"
    out = run_sweep(make(tmp_path, scheduler="random", budget=12, master_seed=1,
                         fixed={"synthetic_nan_lr": 4e-5, "synthetic_log": str(log)}))
    store = Storage.open(out["sweep_dir"])
    trials = store.trials()
    nan = [t for t in trials if t.config["lr"] > 4e-5]
    assert nan and len(nan) < len(trials)
    for t in trials:
        reports = [r for r in store.results(t.id) if r.source == "report"]
        if t in nan:
            assert t.state == "failed" and "non-finite" in t.error and t.resource == 1
            assert [r.resource for r in reports] == [1] and math.isnan(reports[0].metric)
        else:
            assert t.state == "completed" and t.resource == 9 and len(reports) == 9
    ends = {Path(e["trial_dir"]).name: e["end"] for e in read_log(log) if e["event"] == "end"}
    assert all(ends[f"{t.id:05d}"] == 1 for t in nan)  # the objective itself stopped after 1 unit
    store.close()


def test_dead_worker_requeued_once_and_raising_objective_fails(tmp_path):
    log = tmp_path / "log.jsonl"
    out = run_sweep(make(tmp_path, budget=6, fixed={"synthetic_die_once": str(tmp_path / "died"),
                                                    "synthetic_error_lr": 7e-5, "synthetic_log": str(log)}))
    store = Storage.open(out["sweep_dir"])
    trials = {t.id: t for t in store.trials()}
    retried = [t for t in trials.values() if t.retries]
    assert len(retried) == 1 and "exited with code 3; re-queued" in retried[0].error
    assert retried[0].state != "failed"
    starts = Counter(Path(e["trial_dir"]).name for e in read_log(log) if e["event"] == "start")
    assert starts[f"{retried[0].id:05d}"] == sum(1 for r in retried[0].rung_metrics) + 1  # killed once, run again
    raising = [t for t in trials.values() if t.config["lr"] > 7e-5]
    assert raising and all(t.state == "failed" and "ValueError: synthetic failure" in t.error for t in raising)
    assert out["tried"] == 6 and all(t.state in ("completed", "pruned", "failed") for t in trials.values())
    store.close()


def _rows(db, sql):
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_kill_9_halfway_then_resume_loses_and_repeats_nothing(tmp_path):
    log = tmp_path / "log.jsonl"
    settings = make(tmp_path, budget=24, workers=2, max_resource=9,
                    fixed={"synthetic_sleep_ms": 5, "synthetic_log": str(log)})
    proc = _start_sweep_process(settings)
    db = Path(settings.sweep_dir) / "sweep.db"
    _wait_until(proc, db, 8)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_states = Counter(s for (s,) in _rows(db, "SELECT state FROM trials"))
    assert sum(killed_states.values()) < 24
    workers = {w.split(":")[1] for (w,) in _rows(db, "SELECT worker FROM trials WHERE worker IS NOT NULL")}
    time.sleep(0.3)
    for pid in workers:  # the workers died with the sweep (no orphan finishing a trial)
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]

    out = run_sweep(resume_dir=settings.sweep_dir)
    assert out["finished"] and out["tried"] == 24
    store = Storage.open(settings.sweep_dir)
    trials = store.trials()
    assert [t.sample_index for t in trials] == list(range(24))  # budget continued, no index twice
    assert all(t.state in ("completed", "pruned", "failed") for t in trials)
    assert not any(t.state == "failed" for t in trials)
    rungs = out["rungs"]
    for t in trials:
        # finished work is not lost: the rung results chain up to the resource reached ...
        assert sorted(t.rung_metrics) == [r for r in rungs if r <= t.resource]
        results = [r.resource for r in store.results(t.id) if r.source == "result"]
        assert len(results) == len(set(results))  # ... and each rung was recorded once
        # the objective's own record: each job trained once, from the checkpoint the last one left
        history = json.loads((Path(t.checkpoint) / CHECKPOINT).read_text())["history"]
        assert [h[:2] for h in history] == [[a, b] for a, b in zip([0] + rungs, rungs) if b <= t.resource]
    ends = Counter((e["trial_dir"], e["start"]) for e in read_log(log) if e["event"] == "end")
    assert max(ends.values()) == 1  # no job ran to completion twice
    assert sum(ends.values()) >= sum(len(t.rung_metrics) for t in trials) - killed_states["running"]
    store.close()


def _tune(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(REPO / "tune.py"), *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _holds_lock(pid: int, lock_file: Path) -> bool:
    with contextlib.suppress(OSError):
        return any(os.readlink(fd) == str(lock_file) for fd in Path(f"/proc/{pid}/fd").iterdir())
    return False


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def test_one_process_per_sweep_directory_and_kill_9_then_resume(tmp_path):
    """Issue 12: `tune.py --resume D` (or a new sweep into D) while a sweep runs on D is refused
    in one line naming the holder's pid, exit 2, and changes nothing; the workers hold the lock
    with the sweep; after kill -9 of the holder, --resume takes the directory and finishes."""
    # Long enough that the holder still runs when the two refused starts (each importing torch,
    # seconds on a loaded machine) meet it.
    settings = make(tmp_path, budget=8, workers=2, fixed={"synthetic_sleep_ms": 600})
    Storage.create(settings.sweep_dir, {"settings": settings.to_dict()}).close()  # created, not started
    holder = _tune("--resume", settings.sweep_dir, "--no-progress")
    db = Path(settings.sweep_dir) / "sweep.db"
    _wait_until(holder, db, 2)
    lock_file = (Path(settings.sweep_dir) / ".lock").resolve()
    workers = [c for c in _children(holder.pid) if _holds_lock(c, lock_file)]
    assert len(workers) == 2  # spawned workers work under the sweep's lock (a third child: the resource tracker)
    before = _rows(db, "SELECT id, state, resource FROM trials")
    for second in (_tune("--resume", settings.sweep_dir, "--no-progress"),
                   _tune("--task", "sst2", "--preset", "tiny", "--output-dir", settings.sweep_dir, "--no-progress")):
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        lines = err.strip().splitlines()
        # (A holder that exited first means its trials were too short for this machine's load.)
        assert len(lines) == 1 and f"in use by another process (pid {holder.pid}" in lines[0], \
            (err, f"holder exit code: {holder.poll()}")
        assert "Traceback" not in err
    assert len(_rows(db, "SELECT id FROM trials")) >= len(before)  # the holder went on; nothing was reset
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    resumed = _tune("--resume", settings.sweep_dir, "--no-progress")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    summary = json.loads((Path(settings.sweep_dir) / "summary.json").read_text())
    assert summary["finished"] and summary["tried"] == 8
    store = Storage.open(settings.sweep_dir)
    try:
        trials = store.trials()
        assert [t.sample_index for t in trials] == list(range(8))
        assert all(t.state in ("completed", "pruned") for t in trials)
        for t in trials:  # each rung recorded once, though the holder died with jobs in flight
            results = [r.resource for r in store.results(t.id) if r.source == "result"]
            assert len(results) == len(set(results))
    finally:
        store.close()
    assert not (Path(settings.sweep_dir) / ".lock").exists()  # released at the end


def test_ctrl_c_exits_130_after_writing_the_report(tmp_path):
    """Issue 11: an interrupted sweep exits 130 like the other commands: after the first Ctrl-C
    once the running jobs finished, after the second at once; summary.json is written both times."""
    for presses in (1, 2):
        settings = make(tmp_path, f"sweep{presses}", budget=20, workers=2, fixed={"synthetic_sleep_ms": 20})
        Storage.create(settings.sweep_dir, {"settings": settings.to_dict()}).close()
        proc = _tune("--resume", settings.sweep_dir, "--no-progress")
        db = Path(settings.sweep_dir) / "sweep.db"
        _wait_until(proc, db, 3)
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        summary = json.loads((Path(settings.sweep_dir) / "summary.json").read_text())
        assert summary["stop_reason"] == "interrupt" and not summary["finished"]
        assert (Path(settings.sweep_dir) / "trials.csv").is_file()


def test_progress_lines_off_a_terminal(tmp_path, capsys):
    """Issue 11: with stderr a file or a pipe, the sweep still says how far it is: a line per
    finished trial, with done/total, the best so far named by its metric, and an ETA."""
    run_sweep(make(tmp_path, budget=6, progress=True))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[sweep]")]
    assert "\r" not in "".join(lines)
    done = [int(line.split()[1].split("/")[0]) for line in lines]
    assert done[-1] == 6 and set(range(1, 7)) <= set(done)  # one line (at least) per trial done
    store = Storage.open(str(tmp_path / "sweep"))
    jobs = sum(1 for r in store.results() if r.source == "result")
    store.close()
    assert len(lines) >= jobs  # and one per job (a promotion too), not only every 10 s
    assert all(line.split()[1].endswith("/6") for line in lines)
    assert "best accuracy " in lines[-1] and any("ETA ~" in line for line in lines)


def test_tensorboard_hparams_one_run_per_scored_trial(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = run_sweep(make(tmp_path, budget=6, report_to="tensorboard"))
    board = Path(out["tensorboard"])
    runs = sorted(p.name for p in board.iterdir() if p.is_dir())
    store = Storage.open(out["sweep_dir"])
    scored = [t for t in store.trials() if t.state != "failed" and t.metric is not None]
    store.close()
    assert runs == sorted(f"trial-{t.id}" for t in scored)
    events = EventAccumulator(str(board / runs[0]))
    events.Reload()
    assert "hparams" in events.PluginTagToContent("hparams") or events.PluginTagToContent("hparams")
    assert events.Scalars("hparam/accuracy")[0].value == pytest.approx(
        next(t.metric for t in scored if f"trial-{t.id}" == runs[0]))
    run_sweep(resume_dir=out["sweep_dir"])  # a resumed sweep rewrites the runs: each trial once
    assert sorted(p.name for p in board.iterdir() if p.is_dir()) == runs


def test_confirm_top_reruns_with_extra_seeds(tmp_path):
    out = run_sweep(make(tmp_path, budget=9, confirm_top=2, confirm_seeds=2, fixed={"synthetic_noise": 0.02}))
    store = Storage.open(out["sweep_dir"])
    confirm = store.trials("confirm")
    assert len(confirm) == 4 and all(t.state == "completed" and t.resource == 9 for t in confirm)
    rows = out["confirm"]
    assert len(rows) == 2
    for row in rows:
        parent = store.trial(row["trial_id"])
        kids = sorted(t.metric for t in confirm if t.parent == parent.id)
        # the second best stopped at a lower rung under ASHA: only the runs at max_resource count
        own = [parent.metric] if parent.resource == 9 else []
        assert sorted(row["metrics"]) == sorted([*own, *kids])
        assert len({t.seed for t in confirm if t.parent == parent.id} | {parent.seed}) == 3
        assert row["mean"] == pytest.approx(np.mean(row["metrics"]))
        assert row["std"] == pytest.approx(np.std(row["metrics"], ddof=1)) and row["std"] > 0
    assert rows[0]["mean"] >= rows[1]["mean"]
    best = json.loads((Path(out["sweep_dir"]) / "best" / "best.json").read_text())
    assert best["trial_id"] == rows[0]["trial_id"] == out["best"]["trial_id"]
    assert len(list(csv.DictReader((Path(out["sweep_dir"]) / "trials.csv").open()))) == 13
    store.close()


def test_hyperband_stops_trials_at_rungs(tmp_path):
    out = run_sweep(make(tmp_path, scheduler="hyperband", budget=12, max_resource=9))
    store = Storage.open(out["sweep_dir"])
    trials = store.trials()
    pruned = [t for t in trials if t.state == "pruned"]
    assert pruned and all(t.resource in (1, 3) for t in pruned)
    assert any(t.state == "completed" and t.resource == 9 for t in trials)
    assert out["compute"]["resource"] == sum(t.resource for t in trials) < 12 * 9
    store.close()


def test_time_budget_stops_starting_jobs(tmp_path):
    t0 = time.monotonic()
    out = run_sweep(make(tmp_path, budget=500, time_budget=1.0, fixed={"synthetic_sleep_ms": 20}))
    assert out["stop_reason"] == "time" and not out["finished"] and out["tried"] < 500
    assert time.monotonic() - t0 < 10
    assert "running" not in out["states"]


def test_user_errors(tmp_path):
    with pytest.raises(AlbertError, match="--budget"):
        run_sweep(make(tmp_path, budget=0))
    with pytest.raises(AlbertError, match="'lr': empty range"):
        run_sweep(make(tmp_path, space={"lr": {"type": "uniform", "low": 1e-4, "high": 1e-4}}))
    with pytest.raises(AlbertError, match="no sweep to resume"):
        run_sweep(resume_dir=tmp_path / "nothing")
    with pytest.raises(AlbertError, match="both searched and fixed"):
        run_sweep(make(tmp_path, fixed={"lr": 1e-5}))
    # a sweep for rte cannot be resumed as a sweep for cola
    settings = make(tmp_path, "rte")
    Storage.create(settings.sweep_dir, {"settings": settings.to_dict()}).close()
    with pytest.raises(AlbertError, match="task 'rte', not 'cola'"):
        run_sweep(make(tmp_path, "rte", task="cola"), resume_dir=settings.sweep_dir)
    with pytest.raises(AlbertError, match="already holds a sweep"):
        run_sweep(settings)
    def local(**kwargs):  # workers could not import it by name
        return 0.0

    with pytest.raises(AlbertError, match="must be a function defined at the top of an importable module"):
        run_sweep(make(tmp_path, "other", objective=local))
    assert not (tmp_path / "other").exists()


def _start_sweep_process(settings):
    code = ("import sys, json\nfrom albert.tune.sweep.run import SweepSettings, run_sweep\n"
            "run_sweep(SweepSettings.from_dict(json.loads(sys.argv[1])))\n")
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(settings.to_dict())], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def _wait_until(proc, db, finished_at_least):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                states = Counter(s for (s,) in _rows(db, "SELECT state FROM trials"))
            except sqlite3.OperationalError:  # schema not written yet
                states = Counter()
            if states["paused"] + states["completed"] + states["pruned"] >= finished_at_least and states["running"]:
                return
        time.sleep(0.01)
    raise AssertionError("the sweep finished (or hung) before it could be interrupted")


def test_ctrl_c_finishes_running_jobs_then_resume_completes(tmp_path):
    settings = make(tmp_path, budget=20, workers=2, fixed={"synthetic_sleep_ms": 5})
    proc = _start_sweep_process(settings)
    db = Path(settings.sweep_dir) / "sweep.db"
    _wait_until(proc, db, 5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    summary = json.loads((Path(settings.sweep_dir) / "summary.json").read_text())
    assert summary["stop_reason"] == "interrupt" and not summary["finished"] and summary["tried"] < 20
    states = Counter(s for (s,) in _rows(db, "SELECT state FROM trials"))
    assert states["running"] == 0 and states["queued"] == 0  # the running jobs were let finish
    out = run_sweep(resume_dir=settings.sweep_dir)
    assert out["finished"] and out["tried"] == 20


def test_worker_recycled_when_it_holds_memory(tmp_path):
    # A negative threshold makes every worker look like it leaked: each job gets a fresh process.
    out = run_sweep(make(tmp_path, budget=3, min_resource=1, max_resource=1, recycle_gpu_mib=-1))
    store = Storage.open(out["sweep_dir"])
    trials = store.trials()
    assert [t.state for t in trials] == ["completed"] * 3
    assert len({t.worker for t in trials}) == 3
    store.close()


def test_plots_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_sweep(make(tmp_path, budget=6))
    assert out["plots"] == ["learning_curves.png", "parallel_coordinates.png"]
    for name in out["plots"]:
        assert (Path(out["sweep_dir"]) / name).read_bytes()[:4] == b"\x89PNG"


def test_workers_are_pinned_to_their_gpu(tmp_path):
    # No GPU needed: the pinning is the environment each worker is started with, which the
    # synthetic objective records.
    log = tmp_path / "log.jsonl"
    out = run_sweep(make(tmp_path, budget=8, device="cuda", gpus=["3", "5"], trials_per_gpu=2,
                         fixed={"synthetic_sleep_ms": 3, "synthetic_log": str(log)}))
    store = Storage.open(out["sweep_dir"])
    seen = {}
    for e in read_log(log):
        if e["event"] == "start":
            seen.setdefault(e["pid"], set()).add(e["cuda_visible_devices"])
    assert all(len(v) == 1 for v in seen.values())
    pinned = {pid: v.pop() for pid, v in seen.items()}
    assert set(pinned.values()) <= {"3", "5"}
    for t in store.trials():  # trials.worker is "gpu<id>.<slot>:<pid>"
        name, pid = t.worker.split(":")
        assert name.startswith(f"gpu{pinned[int(pid)]}.")
    assert len({t.worker.split(":")[0] for t in store.trials()}) >= 2
    store.close()


def test_cpu_workers_split_the_threads(tmp_path):
    from albert.tune.sweep.runner import plan_workers

    specs = plan_workers("cpu", workers=2)
    assert [s.name for s in specs] == ["cpu0", "cpu1"]
    assert all(s.env["CUDA_VISIBLE_DEVICES"] == "" and s.threads == max(1, (os.cpu_count() or 1) // 2) for s in specs)
    specs = plan_workers("cuda", trials_per_gpu=3, gpus=["0", "1"])
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in specs] == ["0", "0", "0", "1", "1", "1"]
    with pytest.raises(AlbertError, match="no GPU"):
        plan_workers("cuda", gpus=[])
    with pytest.raises(AlbertError, match="--workers"):
        plan_workers("cpu", workers=0)


# --- model-based sampling ----------------------------------------------------------------------

def _configs(sweep_dir):
    store = Storage.open(sweep_dir)
    try:
        return [(t.sample_index, t.config, t.seed) for t in store.trials("search")]
    finally:
        store.close()


def test_gp_proposals_are_recorded_and_recompute_from_the_database(tmp_path):
    """Two workers: which results exist at each proposal depends on timing, so the sweep records
    what each proposal saw; proposing again from that record gives the same configuration."""
    from albert.tune.sweep import proposals

    settings = make(tmp_path, sampler="gp", initial_trials=4, budget=14, workers=2,
                    fixed={"synthetic_sleep_ms": 2})
    out = run_sweep(settings)
    # The model waits for initial_trials results: index 4 is quasi-random too when the other
    # worker still runs one of the first four (timing); from index 5 on, four have results.
    how = out["sampler"]["how"]
    assert out["sampler"]["name"] == "gp" and how["sobol"] in (4, 5) and how["sobol"] + how["model"] == 14
    store = Storage.open(settings.sweep_dir)
    # Which trials reach the last rung depends on the two workers' timing; the recommendation
    # needs three of them (GPSampler.recommendation).
    full = {t.id for t in store.trials("search") if max(t.rung_metrics, default=0) >= max(out["rungs"])}
    if len(full) >= 3:
        assert out["model_best"]["trial_id"] in full and math.isfinite(out["model_best"]["predicted"])
    else:
        assert out["model_best"] is None
    records = store.proposals()
    assert len(records) == 14 and any(p.pending for p in records)  # proposed while the other worker ran
    # The validation loss each report carried is in the record, beside its metric.
    reports = store.results(source="report")
    assert reports and all(r.loss == pytest.approx(1.0 - r.metric) for r in reports)
    sampler = settings.make_sampler(default_space("rte"))
    again = proposals.recompute(store, sampler, out["rungs"], "max")
    store.close()
    assert len(again) == 14 and all(row["same"] for row in again), [r for r in again if not r["same"]]


def test_gp_sweep_killed_and_resumed_proposes_what_an_uninterrupted_one_does(tmp_path):
    """One worker: kill -9 halfway, resume; every trial's configuration and seed equal those of
    the same sweep run without interruption."""
    kw = dict(sampler="gp", initial_trials=3, budget=10, workers=1, fixed={"synthetic_sleep_ms": 3})
    whole = make(tmp_path, "whole", **kw)
    run_sweep(whole)
    killed = make(tmp_path, "killed", **kw)
    proc = _start_sweep_process(killed)
    db = Path(killed.sweep_dir) / "sweep.db"
    _wait_until(proc, db, 5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 5 <= len(_configs(killed.sweep_dir)) < 10
    out = run_sweep(resume_dir=killed.sweep_dir)
    assert out["finished"] and out["tried"] == 10
    assert _configs(killed.sweep_dir) == _configs(whole.sweep_dir)


def test_gp_summary_names_the_sensitivity_of_each_hyperparameter(tmp_path, capsys):
    """Twelve full trainings of the synthetic objective (its optimum depends on lr, warmup,
    dropout and layer decay, not on batch size or weight decay): the GP's length scale for each
    hyperparameter is in summary.json, and the sweep prints them shortest first."""
    space = default_space("rte")
    out = run_sweep(make(tmp_path, sampler="gp", scheduler="random", budget=12, initial_trials=5))
    best = out["model_best"]
    assert best["results"] == 12 and set(best["length_scales"]) == set(space)
    assert all(v > 0 for v in best["length_scales"].values())
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sensitivity")]
    assert len(printed) == 1 and "from 12 full trainings" in printed[0]
    order = sorted(best["length_scales"], key=lambda k: (best["length_scales"][k], k))
    assert printed[0].index(order[0]) < printed[0].index(order[-1])
    assert best["length_scales"]["lr"] < best["length_scales"]["weight_decay"]


def test_a_sweep_written_under_the_former_names_resumes_as_under_the_new(tmp_path):
    """Space keys are fine-tuning option names now (warmup, dropout, ...). A sweep.db written
    before, its space and its trials under warmup_ratio and classifier_dropout, resumes with its
    search unchanged: the same configurations as a sweep that ran under the new names throughout."""
    whole = run_sweep(make(tmp_path, "whole", sampler="gp", budget=8, initial_trials=3))
    old = make(tmp_path, "old", sampler="gp", budget=5, initial_trials=3)
    run_sweep(old)
    former = {"warmup": "warmup_ratio", "dropout": "classifier_dropout"}
    db = sqlite3.connect(tmp_path / "old" / "sweep.db")
    with db:
        for key, value in db.execute("SELECT key, value FROM meta").fetchall():
            text = value
            for new, was in former.items():
                text = text.replace(f'"{new}"', f'"{was}"')
            db.execute("UPDATE meta SET value = ? WHERE key = ?", (text, key))
        for trial_id, config in db.execute("SELECT id, config FROM trials").fetchall():
            renamed = {former.get(k, k): v for k, v in json.loads(config).items()}
            db.execute("UPDATE trials SET config = ? WHERE id = ?", (json.dumps(renamed), trial_id))
    assert "warmup_ratio" in db.execute("SELECT config FROM trials").fetchone()[0]
    db.close()
    resumed = run_sweep(dataclasses.replace(old, budget=8), resume_dir=old.sweep_dir)
    assert resumed["tried"] == 8
    configs = {}
    for name in ("whole", "old"):
        store = Storage.open(tmp_path / name)
        configs[name] = [t.config for t in store.trials()]
        store.close()
    assert configs["old"] == configs["whole"] and {"warmup", "dropout"} <= set(configs["old"][0])
