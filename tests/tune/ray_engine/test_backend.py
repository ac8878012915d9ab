"""`--backend ray`: the space mapping, resources, Ray results -> our report, the missing-Ray error, and
(when Ray is installed) real sweeps with the synthetic objective on a local Ray."""
import csv
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from albert.errors import AlbertError
from albert.tune.ray_engine import backend as ray_backend
from albert.tune.command import run
from albert.tune.ray_engine.backend import (INDEX_KEY, MISSING_RAY, SEED_KEY, ray_space_spec, records, run_with_ray, segments,
                                     trial_resources)
from albert.tune.search.space import Choice, IntUniform, LogUniform, Space, Uniform
from albert.tune.sweep.run import SweepSettings
from albert.tune.sweep import synthetic
from albert.tune.sweep.synthetic import metric_at

SPACE = Space({"lr": LogUniform(1e-5, 1e-3), "warmup": Uniform(0.0, 0.2), "grad_accum": IntUniform(2, 5),
               "batch_size": Choice([16, 32])})


def settings(tmp_path, name="sweep", **kw):
    base = dict(sweep_dir=str(tmp_path / name), task="rte", objective=synthetic.curve, budget=9,
                min_resource=1, max_resource=9, eta=3, workers=2, progress=False, fixed={"synthetic_sleep_ms": 0})
    base.update(kw)
    return SweepSettings(**base)


# --- no Ray needed ----------------------------------------------------------------------------

def test_space_spec_names_the_ray_sampler_of_each_distribution():
    assert ray_space_spec(SPACE) == {
        "lr": {"fn": "loguniform", "args": [1e-5, 1e-3]},
        "warmup": {"fn": "uniform", "args": [0.0, 0.2]},
        "grad_accum": {"fn": "randint", "args": [2, 6]},  # ray's randint excludes the upper bound
        "batch_size": {"fn": "choice", "args": [[16, 32]]},
    }


def test_trial_resources_per_device():
    cpu16 = {"CPU": 16.0}
    # CPU: `workers` trials at a time, each with an equal share of the CPUs, at most one node's.
    s = SweepSettings(sweep_dir="x", task="rte", device="cpu", workers=2)
    assert trial_resources(s, cpu16, node_cpus=16) == ({"cpu": 8}, 8, 2)
    assert trial_resources(s, {"CPU": 64.0}, node_cpus=16) == ({"cpu": 16}, 16, 2)
    assert trial_resources(SweepSettings(sweep_dir="x", task="rte", device="cpu", workers=32), cpu16, 16) == \
        ({"cpu": 1}, 1, 32)
    # GPU: 1/trials_per_gpu of a GPU each (rounded down to Ray's 4 decimals), concurrency left to Ray.
    s = SweepSettings(sweep_dir="x", task="rte", device="cuda", trials_per_gpu=3)
    resources, threads, concurrent = trial_resources(s, {"CPU": 16.0, "GPU": 2.0}, 16)
    assert resources == {"cpu": 1, "gpu": 0.3333} and 3 * resources["gpu"] <= 1 and threads is concurrent is None
    auto = SweepSettings(sweep_dir="x", task="rte", device="auto")
    assert trial_resources(auto, {"CPU": 4.0, "GPU": 1.0}, 4)[0] == {"cpu": 1, "gpu": 1.0}
    assert trial_resources(auto, {"CPU": 4.0}, 4)[0] == {"cpu": 4}
    with pytest.raises(AlbertError, match="no GPU"):
        trial_resources(SweepSettings(sweep_dir="x", task="rte", device="cuda"), cpu16, 16)


def _result(ray_id, config, rows, error=None):
    import pandas as pd
    frame = pd.DataFrame([{"resource": r, "metric": m, "rung": rung, "timestamp": 1000 + i}
                          for i, (r, m, rung) in enumerate(rows)]) if rows else None
    return SimpleNamespace(path=f"/exp/ray/{ray_id}", config=config, metrics_dataframe=frame, error=error,
                           checkpoint=None)


def test_records_turn_ray_results_into_our_trials():
    s = SweepSettings(sweep_dir="x", task="rte", min_resource=1, max_resource=9, eta=3)
    results = [  # out of order: ids follow Ray's creation counter
        _result("ab_00002", {"lr": 3e-5, SEED_KEY: 7}, [(1, 0.5, True), (2, 0.55, False), (3, 0.6, True)]),
        _result("ab_00000", {"lr": 1e-5, SEED_KEY: 5},
                [(1, 0.4, True), (3, 0.7, True), (5, 0.75, False), (9, 0.8, True)]),
        _result("ab_00001", {"lr": 2e-5, SEED_KEY: 6}, [(1, math.nan, True)]),
        _result("ab_00003", {"lr": 4e-5, SEED_KEY: 8}, [], error=RuntimeError("boom")),
    ]
    trials, rows, _ = records(results, s)
    assert [t.worker for t in trials] == ["ab_00000", "ab_00001", "ab_00002", "ab_00003"]
    assert [t.id for t in trials] == [1, 2, 3, 4]
    done, nan, pruned, failed = trials
    assert (done.state, done.resource, done.metric, done.seed) == ("completed", 9, 0.8, 5)
    assert done.rung_metrics == {1: 0.4, 3: 0.7, 9: 0.8}  # the report at 5 is a learning-curve point, not a rung
    assert done.config == {"lr": 1e-5}  # the seed is not a hyperparameter
    assert (pruned.state, pruned.resource, pruned.rung_metrics) == ("pruned", 3, {1: 0.5, 3: 0.6})
    assert nan.state == "failed" and "non-finite" in nan.error and nan.resource == 1
    assert failed.state == "failed" and failed.error == "boom" and failed.resource == 0
    assert [(r.trial_id, r.resource, r.source) for r in rows if r.trial_id == 1] == \
        [(1, 1, "result"), (1, 3, "result"), (1, 5, "report"), (1, 9, "result")]


def test_records_follow_the_searchers_suggestion_order_not_rays_hex_ids():
    s = SweepSettings(sweep_dir="x", task="rte", min_resource=1, max_resource=9, eta=3)
    results = [_result(ray_id, {"lr": lr, SEED_KEY: 1, INDEX_KEY: index}, [(9, 0.5, True)])
               for ray_id, lr, index in [("0a1b", 1e-5, 2), ("ff00", 2e-5, 0), ("77cc", 3e-5, 1)]]
    trials, _, _ = records(results, s)
    assert [(t.id, t.worker, t.config) for t in trials] == \
        [(1, "ff00", {"lr": 2e-5}), (2, "77cc", {"lr": 3e-5}), (3, "0a1b", {"lr": 1e-5})]


def test_interrupted_trials_are_marked_so():
    s = SweepSettings(sweep_dir="x", task="rte", min_resource=1, max_resource=9, eta=3)
    results = [_result("ab_00000", {"lr": 1e-5}, [(1, 0.4, True), (3, 0.5, True)]),
               _result("ab_00001", {"lr": 2e-5}, [(1, 0.3, True)]),
               _result("ab_00002", {"lr": 3e-5}, [(1, 0.4, True), (3, 0.5, True), (9, 0.6, True)])]
    trials, _, _ = records(results, s, unfinished={"ab_00000", "ab_00002"})
    assert [t.state for t in trials] == ["interrupted", "pruned", "completed"]  # a finished trial stays finished


def test_a_refused_connection_names_token_authentication():
    log = "[W gcs_client.cc:210] Failed to get cluster ID from GCS server: Unauthenticated: RPC error: " \
          "InvalidAuthToken: Authentication token is missing or incorrect\n" * 20
    line = ray_backend.connect_error("10.0.0.1:6379", ConnectionError("Failed to connect to Ray cluster"), log)
    assert "\n" not in line and "InvalidAuthToken" in line and "RAY_AUTH_MODE=token" in line
    assert ray_backend.connect_error("h:1", ConnectionError("Failed to connect\nmore"), "") == \
        "cannot connect to the Ray cluster at RAY_ADDRESS='h:1': Failed to connect"


def test_a_trial_reports_each_evaluation_and_each_rung_with_its_validation_loss(tmp_path):
    """The Ray trainable's loop, with a stand-in for Ray's API: every evaluation is reported with
    the metric and the validation loss the objective gave, the rung's end once, with a checkpoint."""
    from albert.tune.ray_engine.searcher import LOSS, METRIC, RESOURCE
    from albert.tune.sweep.synthetic import curve

    sent = []
    api = SimpleNamespace(report=lambda row, checkpoint=None: sent.append((row, checkpoint is not None)),
                          get_checkpoint=lambda: None, Checkpoint=SimpleNamespace(from_directory=lambda d: d))
    plan = ray_backend.TrialPlan("albert.tune.sweep.synthetic:curve", (1, 3, 9), 9, None)
    config = {"lr": 1e-4, "synthetic_sleep_ms": 0}
    ray_backend._run_rungs(api, curve, config, 7, plan, tmp_path)
    assert [(row[RESOURCE], row["rung"], saved) for row, saved in sent] == \
        [(r, r in (1, 3, 9), r in (1, 3, 9)) for r in range(1, 10)]
    for row, _ in sent:
        assert row[METRIC] == pytest.approx(metric_at(config, row[RESOURCE], 7))
        assert row[LOSS] == pytest.approx(1.0 - row[METRIC])  # the synthetic objective's loss


def test_missing_ray_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(AlbertError) as e:
        run_with_ray(settings(tmp_path))
    assert str(e.value) == MISSING_RAY == "--backend ray needs Ray Tune: pip install 'ray[tune]'"
    with pytest.raises(AlbertError, match=r"pip install 'ray\[tune\]'"):
        run({"task": "rte", "preset": "micro", "sweep_dir": str(tmp_path / "cli"), "backend": "ray", "device": "cpu"})
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "cli").exists()
    with pytest.raises(AlbertError, match="not a --backend ray sweep"):
        ray_backend.resume_with_ray(tmp_path)


# --- with Ray installed -----------------------------------------------------------------------

def test_space_samples_stay_in_our_ranges_including_int_ends():
    tune = pytest.importorskip("ray.tune")
    space = ray_backend.ray_param_space(SPACE, {"task": "rte"}, tune)
    assert space["task"] == "rte" and set(space) == {"task", *SPACE, SEED_KEY}
    rng = np.random.default_rng(0)
    draws = {name: np.asarray(space[name].sample(size=4000, random_state=rng)) for name in SPACE}
    assert 1e-5 <= draws["lr"].min() and draws["lr"].max() <= 1e-3
    # log-uniform: half the draws below the geometric mean of the bounds
    assert abs(np.mean(draws["lr"] < 1e-4) - 0.5) < 0.05
    assert 0.0 <= draws["warmup"].min() and draws["warmup"].max() <= 0.2
    assert set(draws["grad_accum"].tolist()) == {2, 3, 4, 5}  # both ends, as our IntUniform
    assert set(draws["batch_size"].tolist()) == {16, 32}


@pytest.mark.parametrize("low,high,eta", [(1, 27, 3), (3, 27, 3), (37, 1000, 3), (1, 100, 4), (5, 5, 3)])
def test_segments_end_at_rays_asha_milestones(low, high, eta):
    pytest.importorskip("ray.tune")
    from ray.tune.schedulers import ASHAScheduler

    sched = ASHAScheduler(time_attr="resource", grace_period=low, max_t=high, reduction_factor=eta)
    milestones = {int(m) for m, _ in sched._brackets[0]._rungs}  # Ray's private bracket: what it compares at
    assert segments(low, high, eta) == sorted(milestones | {high})


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    # address "local": our own instance, even when a cluster (another test's) runs on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=80 * 2**20)
    yield ray
    ray.shutdown()


def _rows(sweep_dir):
    with open(Path(sweep_dir) / "trials.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_synthetic_sweep_on_ray_end_to_end(tmp_path, local_ray):
    nan_lr = 4e-5  # with --seed 0, Ray's 7th draw has lr 4.3e-5: a diverging trial
    s = settings(tmp_path, fixed={"synthetic_sleep_ms": 2, "synthetic_nan_lr": nan_lr})
    summary = run_with_ray(s)
    rows = _rows(s.sweep_dir)
    assert summary["tried"] == len(rows) == 9 and summary["backend"] == "ray"
    assert summary["rungs"] == [1, 3, 9]
    for row in rows:
        config = {"lr": float(row["lr"]), "warmup": float(row["warmup"]),
                  "dropout": float(row["dropout"]),
                  "layer_lr_decay": float(row["layer_lr_decay"]), "weight_decay": float(row["weight_decay"]),
                  "batch_size": int(row["batch_size"])}
        resource = int(row["resource"])
        if config["lr"] > nan_lr:  # stopped by us at its first report: Ray's ASHA ignores NaN
            assert (row["state"], resource) == ("failed", 1)
            continue
        assert row["state"] == ("completed" if resource == 9 else "pruned")
        assert resource in (1, 3, 9)  # stopped at a rung, never between
        # The objective ran with the recorded configuration and seed, one job per rung.
        for r in (1, 3, 9):
            if r <= resource:
                assert float(row[f"accuracy@{r}"]) == pytest.approx(metric_at(config, r, int(row["seed"])))
    states = [row["state"] for row in rows]
    assert "failed" in states and "pruned" in states and "completed" in states
    assert summary["compute"]["resource"] == sum(int(row["resource"]) for row in rows) < 9 * 9
    best = summary["best"]
    best_row = rows[best["trial_id"] - 1]
    assert best_row["state"] == "completed" and best["metric"] == max(
        float(r["accuracy"]) for r in rows if r["state"] == "completed")
    # best/ is the best trial's last checkpoint: its run config and the synthetic checkpoint at 9.
    saved = json.loads((Path(s.sweep_dir) / "best" / "checkpoint.json").read_text())
    assert saved["resource"] == 9 and [h[:2] for h in saved["history"]] == [[0, 1], [1, 3], [3, 9]]
    assert json.loads((Path(s.sweep_dir) / "best" / "best.json").read_text())["trial_id"] == best["trial_id"]
    assert (Path(s.sweep_dir) / "ray").is_dir() and json.loads((Path(s.sweep_dir) / "summary.json").read_text())

    # The same seed draws the same configurations in the same order.
    again = run_with_ray(settings(tmp_path, "again", fixed=s.fixed))
    keys = ["lr", "batch_size", "warmup", "weight_decay", "dropout", "layer_lr_decay", "seed"]
    assert [[r[k] for k in keys] for r in _rows(again["sweep_dir"])] == [[r[k] for k in keys] for r in rows]

    # Resuming (or re-running) the finished sweep restores Ray's experiment and rebuilds the same report.
    rerun = ray_backend.resume_with_ray(s.sweep_dir)
    assert _rows(s.sweep_dir) == rows and rerun["best"] == summary["best"]
    with pytest.raises(AlbertError, match="was run with eta 3, not 2"):
        run_with_ray(settings(tmp_path, eta=2, fixed=s.fixed))
