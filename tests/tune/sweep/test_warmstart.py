"""--warm-start: earlier sweeps as evidence (same objective) or as a fading prior (another task
or model); sources refused in one line; the first proposals from what worked before."""
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from albert.tune.sweep import synthetic
from albert.errors import AlbertError
from albert.tune.search.sampler import History, Observation
from albert.tune.sweep.settings import SweepSettings
from albert.tune.search.space import LogUniform, Space, Uniform
from albert.tune.sweep.storage import Storage
from albert.tune.sweep.run import run_sweep
from albert.tune.search.sampler import TOP_CONFIGS
from albert.tune.sweep.warmstart import PRIOR_RESULTS

SPACE = Space({"lr": LogUniform(1e-5, 1e-3), "warmup": Uniform(0.0, 0.3)})
OPTIMUM = {"lr": 10 ** -4.0, "warmup": 0.05}


def objective(config):
    """Larger is better; the maximum 1 at OPTIMUM."""
    return 1.0 - (math.log10(config["lr"]) + 4.0) ** 2 - 20 * (config["warmup"] - 0.05) ** 2


def settings(tmp_path, name, task="ner", sampler="gp", space=SPACE, warm=None, **kw):
    return SweepSettings(sweep_dir=str(tmp_path / name), task=task, objective=synthetic.curve, space=space.to_json(),
                         sampler=sampler,
                         scheduler="random", max_resource=3, fixed={"synthetic_sleep_ms": 0},
                         warm_start=[str(tmp_path / w) for w in warm] if warm else None, **kw)


def write_source(tmp_path, name="source", task="ner", space=SPACE, n=24, fn=objective):
    """A finished random-scheduler sweep's database: n configurations of `space`, each trained to
    max_resource with the metric fn(config) (real SQLite, as a sweep writes it)."""
    s = settings(tmp_path, name, task=task, space=space, sampler="random")
    store = Storage.create(s.sweep_dir, {"settings": s.to_dict(), "space": space.to_json()})
    for i in range(n):
        config = space.sample(7, i)
        tid = store.add_trial({**s.fixed, **config}, i, 0, 3, sample_index=i)
        store.record(tid, 3, fn(config), "result")
        store.update_trial(tid, state="completed", resource=3, metric=fn(config))
    store.close()
    best = max((space.sample(7, i) for i in range(n)), key=fn)
    return s.sweep_dir, best


def unit_distance(space, a, b):
    return float(np.linalg.norm(space.encode(a) - space.encode(b)))


def test_first_proposal_of_another_task_is_the_sources_best_and_then_the_model_goes_near_the_optimum(tmp_path):
    _, best = write_source(tmp_path)
    sweep = settings(tmp_path, "new", task="sst2", warm=["source"])
    sampler = sweep.make_sampler(sweep.validate())
    assert [s.use for s in sampler.warm.sources] == ["prior"]
    first = sampler.propose(0, History((), (), "max", 3, 3, (3,)))
    assert first.info["how"] == "warm-start" and first.config == best
    # A cold sweep's first proposal is a quasi-random point, far from the optimum on this objective.
    cold = SweepSettings(**{**sweep.to_dict(), "warm_start": None}).make_sampler(SPACE).propose(0, History(
        (), (), "max", 3, 3, (3,)))
    assert unit_distance(SPACE, first.config, OPTIMUM) < unit_distance(SPACE, cold.config, OPTIMUM)
    # After two results of its own (far from the optimum), the model with the prior mean
    # proposes near the source's optimum, not near what this sweep has tried.
    own = tuple(Observation(i + 1, c, 3, objective(c)) for i, c in enumerate(
        [{"lr": 1e-5, "warmup": 0.3}, {"lr": 1e-3, "warmup": 0.0}]))
    p = sampler.propose(5, History(own, (), "max", 3, 3, (3,)))
    assert p.info["how"] == "model" and unit_distance(SPACE, p.config, OPTIMUM) < 0.2, p.config


def test_the_same_task_is_evidence_and_the_model_proposes_from_the_first_trial(tmp_path):
    write_source(tmp_path)
    sweep = settings(tmp_path, "new", task="ner", warm=["source"])
    sampler = sweep.make_sampler(sweep.validate())
    assert [s.use for s in sampler.warm.sources] == ["evidence"]
    first = sampler.propose(0, History((), (), "max", 3, 3, (3,)))
    assert first.info["how"] == "model" and first.info["observations"] == 24
    assert unit_distance(SPACE, first.config, OPTIMUM) < 0.1, first.config


def test_the_priors_weight_falls_as_the_sweeps_own_results_arrive(tmp_path):
    write_source(tmp_path)
    sweep = settings(tmp_path, "new", task="sst2", warm=["source"])
    sampler = sweep.make_sampler(sweep.validate())
    # This task's optimum is elsewhere: the prior's pull must fade as its own results say so.
    moved = {"lr": 10 ** -4.8, "warmup": 0.25}

    def here(c):
        return 1.0 - (math.log10(c["lr"]) + 4.8) ** 2 - 20 * (c["warmup"] - 0.25) ** 2

    weights, distances = [], []
    for n in (2, 10, 40):
        own = tuple(Observation(i + 1, c, 3, here(c)) for i, c in enumerate(SPACE.sample(99, i) for i in range(n)))
        p = sampler.propose(n + 5, History(own, (), "max", 3, 3, (3,)))
        weights.append(p.info["prior_weight"])
        distances.append(unit_distance(SPACE, p.config, moved))
    assert weights == [pytest.approx(PRIOR_RESULTS / (PRIOR_RESULTS + n), abs=1e-4) for n in (2, 10, 40)]
    assert weights[0] > weights[1] > weights[2]
    assert distances[-1] < 0.15 and distances[-1] < distances[0], distances


def test_random_sampler_tries_the_sources_best_first_then_draws(tmp_path):
    write_source(tmp_path)
    sweep = settings(tmp_path, "new", task="sst2", sampler="random", warm=["source"])
    sampler = sweep.make_sampler(sweep.validate())
    empty = History((), (), "max", 3, 3, (3,))
    proposals = [sampler.propose(i, empty) for i in range(TOP_CONFIGS + 2)]
    ranked = sorted((SPACE.sample(7, i) for i in range(24)), key=objective, reverse=True)
    assert [p.config for p in proposals[:TOP_CONFIGS]] == ranked[:TOP_CONFIGS]
    assert all(p.info["how"] == "warm-start" for p in proposals[:TOP_CONFIGS])
    assert [p.info["how"] for p in proposals[TOP_CONFIGS:]] == ["random", "random"]
    assert proposals[TOP_CONFIGS].config == SPACE.sample(0, TOP_CONFIGS)


def test_a_source_sharing_some_names_projects_on_this_space(tmp_path):
    # The source searched lr and dropout; this sweep lr and warmup: lr comes from the source.
    theirs = Space({"lr": LogUniform(1e-5, 1e-3), "dropout": Uniform(0.0, 0.3)})
    write_source(tmp_path, space=theirs, fn=lambda c: -abs(math.log10(c["lr"]) + 4.0))
    sweep = settings(tmp_path, "new", task="ner", warm=["source"])
    sampler = sweep.make_sampler(sweep.validate())
    assert sampler.warm.sources[0].use == "prior" and sampler.warm.sources[0].shared == ("lr",)
    first = sampler.propose(0, History((), (), "max", 3, 3, (3,))).config
    assert set(first) == {"lr", "warmup"} and abs(math.log10(first["lr"]) + 4.0) < 0.1


@pytest.mark.parametrize("make, message", [
    (lambda tmp: None, "not a sweep directory (no sweep.db)"),
    (lambda tmp: (tmp / "source").mkdir() or (tmp / "source" / "sweep.db").write_bytes(b"not sqlite" * 100),
     "sweep.db is not a readable sweep database"),
    (lambda tmp: write_source(tmp, space=Space({"dropout_x": Uniform(0.0, 1.0)}), fn=lambda c: c["dropout_x"]),
     "no hyperparameter in common with this sweep's space (it searched dropout_x)"),
])
def test_incompatible_sources_are_refused_in_one_line(tmp_path, make, message):
    make(tmp_path)
    sweep = settings(tmp_path, "new", warm=["source"])
    with pytest.raises(AlbertError, match="--warm-start .*source") as e:
        sweep.validate()
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "new").exists()


def test_a_resume_whose_source_changed_is_refused(tmp_path):
    write_source(tmp_path)
    sweep = settings(tmp_path, "new", task="sst2", warm=["source"], budget=3, progress=False)
    run_sweep(sweep)
    recorded = Storage.open(sweep.sweep_dir).meta()["warm_start"]
    assert [(s["use"], len(s["sha256"])) for s in recorded] == [("prior", 64)]
    assert json.loads((Path(sweep.sweep_dir) / "summary.json").read_text())["sampler"]["warm_start"] == recorded
    run_sweep(resume_dir=sweep.sweep_dir)  # unchanged: resumes
    store = Storage.open(tmp_path / "source")
    store.record(1, 3, 0.5, "result")  # the source sweep went on
    store.close()
    with pytest.raises(AlbertError, match="--warm-start source .*source changed since this sweep started"):
        run_sweep(resume_dir=sweep.sweep_dir)


# --- the command line, end to end: a CoNLL-2003 sweep warm-starts an SST-2 one --------------------

REPO = Path(__file__).resolve().parents[3]
TINY = ["--preset", "tiny", "--sampler", "gp", "--max-train-samples", "32", "--max-eval-samples", "32",
        "--max-seq-length", "32", "--eta", "2", "--no-progress"]


def tune(*args, background=False):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO / "tune.py"), *map(str, args)]
    if background:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def proposed(sweep_dir):
    """(sample index, hyperparameters, how) of every search trial sweep.db recorded."""
    if not (Path(sweep_dir) / "sweep.db").exists():
        return []
    with sqlite3.connect(Path(sweep_dir) / "sweep.db") as db:
        try:
            rows = db.execute("SELECT t.sample_index, t.config, p.info FROM trials t JOIN proposals p "
                              "ON p.trial_id = t.id WHERE t.kind = 'search' ORDER BY t.sample_index").fetchall()
        except sqlite3.OperationalError:  # the sweep is still creating its tables
            return []
    names = ("lr", "batch_size", "warmup", "weight_decay", "dropout", "layer_lr_decay")
    return [(i, {n: json.loads(c)[n] for n in names}, json.loads(info)["how"]) for i, c, info in rows]


@pytest.mark.slow  # the default suite stays under 10 minutes on 2 cores; run with -m slow
def test_warm_started_sst2_sweep_killed_and_resumed_proposes_what_an_uninterrupted_one_does(tmp_path):
    data = Path(os.environ.get("ALBERT_DATA", "data"))
    if not ((data / "glue" / "SST-2").is_dir() and (data / "conll2003").is_dir()):
        pytest.skip("needs the SST-2 and CoNLL-2003 data (ALBERT_DATA)")
    ner = tmp_path / "ner"
    done = tune("--task", "ner", "--budget", 2, "--max-resource", 2, "--output-dir", ner, *TINY)
    assert done.returncode == 0, done.stderr
    # Two trials from the CoNLL-2003 sweep's best configurations, then two from the model.
    warm = ["--task", "sst2", "--budget", 4, "--max-resource", 2, "--initial-trials", 2, "--warm-start", ner, *TINY]
    whole = tune(*warm, "--output-dir", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    killed = tmp_path / "killed"
    proc = tune(*warm, "--output-dir", killed, background=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(proposed(killed)) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(proposed(killed)) < 4
    resumed = tune("--resume", killed, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    expected = proposed(tmp_path / "whole")
    assert proposed(killed) == expected and len(expected) == 4
    assert [how for _, _, how in expected] == ["warm-start", "warm-start", "model", "model"]
    assert json.loads((killed / "summary.json").read_text())["sampler"]["warm_start"][0]["use"] == "prior"


def test_resume_refuses_other_sources_on_the_command_line(tmp_path):
    from albert.tune.command import differences

    recorded = {"task": "sst2", "warm_start": [str(tmp_path / "a")]}
    assert differences(recorded, tmp_path / "s", {"warm_start": [str(tmp_path / "a")]}) == []
    assert differences(recorded, tmp_path / "s", {"warm_start": [str(tmp_path / "b")]}) == [
        f"warm_start {[str(tmp_path / 'a')]!r}, not {[str(tmp_path / 'b')]!r}"]
